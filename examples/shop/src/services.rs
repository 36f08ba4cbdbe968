//! The services. Each is a subscriber in its own consumer group; none knows
//! who consumes what it publishes.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herald_events::{Context, Publisher, RetryPolicy, Subscriber};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::events::*;

#[derive(Debug, Clone)]
pub struct ShopOptions {
    pub brokers: String,
    pub orders: u32,
    /// Orders whose full timeline is printed.
    pub show: u32,
    pub partitions: i32,
    pub quiet: bool,
}

/// Derived view: what analytics knows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Analytics {
    pub events_by_type: BTreeMap<String, u64>,
    pub revenue_cents: u64,
    pub orders_shipped: u64,
    pub orders_cancelled: u64,
}

impl Analytics {
    pub fn events(&self) -> u64 {
        self.events_by_type.values().sum()
    }
}

#[derive(Debug, Clone)]
pub struct ShopReport {
    pub orders: u32,
    pub shipped: u64,
    pub cancelled: u64,
    pub payment_retries: u64,
    pub dead_lettered: u64,
    pub analytics: Analytics,
    pub wall: Duration,
}

fn order_number(order_id: &str) -> u32 {
    order_id.trim_start_matches("order-").parse().unwrap_or(0)
}

struct Timeline {
    start: Instant,
    show: u32,
    quiet: bool,
}

impl Timeline {
    fn say(&self, service: &str, order_id: &str, what: String) {
        if !self.quiet && order_number(order_id) <= self.show {
            println!(
                "[{:>7.1} ms] {service:<13} {order_id}  {what}",
                self.start.elapsed().as_secs_f64() * 1000.0
            );
        }
    }
}

fn dollars(cents: u64) -> String {
    format!("${}.{:02}", cents / 100, cents % 100)
}

const SKUS: [(&str, u64, u32); 5] = [
    ("book", 1_250, 100_000),
    ("mug", 900, 100_000),
    ("lamp", 4_500, 100_000),
    ("poster", 1_500, 100_000),
    // Scarce: some orders will find it out of stock.
    ("signed-vinyl", 9_900, 20),
];

/// The storefront's order number `n`.
pub fn make_order(n: u32) -> OrderPlaced {
    let mut items = vec![Item {
        sku: SKUS[(n % 4) as usize].0.into(),
        qty: 1 + n % 3,
        price_cents: SKUS[(n % 4) as usize].1,
    }];
    if n.is_multiple_of(10) {
        items.push(Item {
            sku: "signed-vinyl".into(),
            qty: 1,
            price_cents: SKUS[4].1,
        });
    }
    let total_cents = items.iter().map(|i| i.price_cents * i.qty as u64).sum();
    OrderPlaced {
        order_id: format!("order-{n:05}"),
        customer: format!("customer-{}", n % 37),
        items,
        total_cents,
    }
}

pub async fn create_topics(brokers: &str, partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let topics: Vec<NewTopic> = ALL_TOPICS
        .iter()
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(-1)))
        .collect();
    for r in admin
        .create_topics(topics.iter(), &AdminOptions::new())
        .await?
    {
        match r {
            Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => anyhow::bail!("cannot create {t}: {e}"),
        }
    }
    Ok(())
}

/// Builds the analytics subscriber: counts every event, and the revenue of
/// shipped orders. Events of different topics arrive in any interleaving (a
/// replay reads shipping before orders, say), so revenue is added once both the
/// order's total and its shipment are known, whichever comes second.
fn analytics_subscriber(
    brokers: &str,
    group: &str,
    view: Arc<Mutex<Analytics>>,
) -> anyhow::Result<Subscriber> {
    #[derive(Default)]
    struct Pending {
        totals: HashMap<String, u64>,
        shipped: std::collections::HashSet<String>,
    }
    let pending = Arc::new(Mutex::new(Pending::default()));
    let count = |view: &Arc<Mutex<Analytics>>, t: &str| {
        if let Ok(mut v) = view.lock() {
            *v.events_by_type.entry(t.to_string()).or_insert(0) += 1;
        }
    };
    let (v1, v2, v3, v4, v5, v6, v7) = (
        view.clone(),
        view.clone(),
        view.clone(),
        view.clone(),
        view.clone(),
        view.clone(),
        view,
    );
    let (p1, p2) = (pending.clone(), pending);
    Ok(Subscriber::builder(brokers, group)
        .deduplicate(Duration::from_secs(600))
        .on::<OrderPlaced, _, _>(move |c: Context<OrderPlaced>| {
            count(&v1, "OrderPlaced");
            if let (Ok(mut p), Ok(mut v)) = (p1.lock(), v1.lock()) {
                p.totals
                    .insert(c.event.order_id.clone(), c.event.total_cents);
                if p.shipped.contains(&c.event.order_id) {
                    v.revenue_cents += c.event.total_cents;
                }
            }
            async { Ok(()) }
        })
        .on::<PaymentReceived, _, _>(move |_| {
            count(&v2, "PaymentReceived");
            async { Ok(()) }
        })
        .on::<PaymentFailed, _, _>(move |_| {
            count(&v3, "PaymentFailed");
            async { Ok(()) }
        })
        .on::<StockReserved, _, _>(move |_| {
            count(&v4, "StockReserved");
            async { Ok(()) }
        })
        .on::<OutOfStock, _, _>(move |_| {
            count(&v5, "OutOfStock");
            async { Ok(()) }
        })
        .on::<ItemShipped, _, _>(move |c: Context<ItemShipped>| {
            count(&v6, "ItemShipped");
            if let (Ok(mut p), Ok(mut v)) = (p2.lock(), v6.lock()) {
                v.orders_shipped += 1;
                if p.shipped.insert(c.event.order_id.clone())
                    && let Some(total) = p.totals.get(&c.event.order_id)
                {
                    v.revenue_cents += total;
                }
            }
            async { Ok(()) }
        })
        .on::<OrderCancelled, _, _>(move |_| {
            count(&v7, "OrderCancelled");
            if let Ok(mut v) = v7.lock() {
                v.orders_cancelled += 1;
            }
            async { Ok(()) }
        })
        .build()?)
}

/// The payment service: card declines, a flaky gateway (retried), a broken
/// gateway (dead-lettered). Counting a payment twice is wrong, so it runs in
/// exactly-once mode: each order's PaymentReceived or PaymentFailed commits
/// in one transaction with the order's offset, and a restarted payment
/// service (the same instance, `payment-0`) neither loses nor repeats one.
fn payment_service(brokers: &str, tl: Arc<Timeline>) -> anyhow::Result<Subscriber> {
    Ok(Subscriber::builder(brokers, "payment")
        .exactly_once("payment-0")
        .source("shop/payment")
        .retry(RetryPolicy {
            attempts_in_place: 1,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
            retry_topic_delays: vec![Duration::from_millis(200), Duration::from_millis(500)],
        })
        .on::<OrderPlaced, _, _>(move |c: Context<OrderPlaced>| {
            let tl = tl.clone();
            async move {
                let n = order_number(&c.event.order_id);
                let id = c.event.order_id.clone();
                if n % 250 == 99 {
                    tl.say(
                        "payment",
                        &id,
                        format!("gateway error (attempt {})", c.attempt),
                    );
                    anyhow::bail!("payment gateway returned HTTP 502 for {id}");
                }
                // The first two attempts time out. The attempt number travels
                // with the event through the retry topics, so a restarted
                // payment service agrees on it.
                if n % 20 == 3 && c.attempt <= 2 {
                    tl.say(
                        "payment",
                        &id,
                        format!("gateway timeout, will retry (attempt {})", c.attempt),
                    );
                    anyhow::bail!("payment gateway timeout");
                }
                if n % 50 == 7 {
                    tl.say(
                        "payment",
                        &id,
                        "OrderPlaced → PaymentFailed (card declined)".into(),
                    );
                    c.publish(&PaymentFailed {
                        order_id: id,
                        reason: "card declined".into(),
                    })
                    .await?;
                } else {
                    tl.say(
                        "payment",
                        &id,
                        format!(
                            "OrderPlaced → PaymentReceived {}",
                            dollars(c.event.total_cents)
                        ),
                    );
                    c.publish(&PaymentReceived {
                        order_id: id,
                        amount_cents: c.event.total_cents,
                        items: c.event.items.clone(),
                    })
                    .await?;
                }
                Ok(())
            }
        })
        .build()?)
}

/// The payment service alone, printing nothing (for tests that stop and
/// restart it).
pub fn payment_service_quiet(brokers: &str) -> anyhow::Result<Subscriber> {
    payment_service(
        brokers,
        Arc::new(Timeline {
            start: Instant::now(),
            show: 0,
            quiet: true,
        }),
    )
}

/// Runs every service, places `orders` orders, waits for each to end
/// (shipped, cancelled, or dead-lettered), and reports.
pub async fn run_shop(opts: ShopOptions) -> anyhow::Result<ShopReport> {
    let started = Instant::now();
    let brokers = opts.brokers.clone();
    create_topics(&brokers, opts.partitions).await?;
    let tl = Arc::new(Timeline {
        start: started,
        show: opts.show,
        quiet: opts.quiet,
    });

    let payment = payment_service(&brokers, tl.clone())?;

    // inventory: reserves the paid items (the payment event carries them, so
    // inventory does not depend on seeing OrderPlaced first, from another topic).
    let inv_pub = Publisher::new(&brokers, "shop/inventory")?;
    let stock: Arc<Mutex<HashMap<String, u32>>> = Arc::new(Mutex::new(
        SKUS.iter().map(|(s, _, q)| (s.to_string(), *q)).collect(),
    ));
    let tl2 = tl.clone();
    let inventory = Subscriber::builder(&brokers, "inventory")
        .on::<PaymentReceived, _, _>(move |c: Context<PaymentReceived>| {
            let (p, stock, tl) = (inv_pub.clone(), stock.clone(), tl2.clone());
            async move {
                let id = c.event.order_id.clone();
                let items = c.event.items.clone();
                let short = {
                    let mut s = stock.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
                    let short = items
                        .iter()
                        .find(|i| s.get(&i.sku).copied().unwrap_or(0) < i.qty)
                        .map(|i| i.sku.clone());
                    if short.is_none() {
                        for i in &items {
                            if let Some(q) = s.get_mut(&i.sku) {
                                *q -= i.qty;
                            }
                        }
                    }
                    short
                };
                match short {
                    Some(sku) => {
                        tl.say(
                            "inventory",
                            &id,
                            format!("PaymentReceived → OutOfStock ({sku})"),
                        );
                        p.publish(&OutOfStock { order_id: id, sku }).await?;
                    }
                    None => {
                        tl.say("inventory", &id, "PaymentReceived → StockReserved".into());
                        p.publish(&StockReserved {
                            order_id: id,
                            items,
                        })
                        .await?;
                    }
                }
                Ok(())
            }
        })
        .build()?;

    let ship_pub = Publisher::new(&brokers, "shop/shipping")?;
    let tl3 = tl.clone();
    let shipping = Subscriber::builder(&brokers, "shipping")
        .on::<StockReserved, _, _>(move |c: Context<StockReserved>| {
            let (p, tl) = (ship_pub.clone(), tl3.clone());
            async move {
                let id = c.event.order_id.clone();
                let tracking = format!("HX{:08}", order_number(&id) * 7919 % 100_000_000);
                tl.say(
                    "shipping",
                    &id,
                    format!("StockReserved → ItemShipped ({tracking})"),
                );
                p.publish(&ItemShipped {
                    order_id: id,
                    carrier: "herald-post".into(),
                    tracking,
                })
                .await?;
                Ok(())
            }
        })
        .build()?;

    // order: compensation. A failed payment or missing stock cancels the order
    // (and refunds it when it was paid).
    let order_pub = Publisher::new(&brokers, "shop/order")?;
    let (op1, op2, tl4, tl5) = (order_pub.clone(), order_pub, tl.clone(), tl.clone());
    let order = Subscriber::builder(&brokers, "order")
        .on::<PaymentFailed, _, _>(move |c: Context<PaymentFailed>| {
            let (p, tl) = (op1.clone(), tl4.clone());
            async move {
                tl.say(
                    "order",
                    &c.event.order_id,
                    format!("PaymentFailed → OrderCancelled ({})", c.event.reason),
                );
                p.publish(&OrderCancelled {
                    order_id: c.event.order_id,
                    reason: c.event.reason,
                })
                .await?;
                Ok(())
            }
        })
        .on::<OutOfStock, _, _>(move |c: Context<OutOfStock>| {
            let (p, tl) = (op2.clone(), tl5.clone());
            async move {
                tl.say(
                    "order",
                    &c.event.order_id,
                    format!(
                        "OutOfStock → refund, OrderCancelled ({} sold out)",
                        c.event.sku
                    ),
                );
                p.publish(&OrderCancelled {
                    order_id: c.event.order_id,
                    reason: format!("{} out of stock", c.event.sku),
                })
                .await?;
                Ok(())
            }
        })
        .build()?;

    let emails = Arc::new(AtomicU64::new(0));
    let (e1, e2, e3, tl6, tl7) = (
        emails.clone(),
        emails.clone(),
        emails.clone(),
        tl.clone(),
        tl.clone(),
    );
    let notification = Subscriber::builder(&brokers, "notification")
        .on::<OrderPlaced, _, _>(move |_| {
            e1.fetch_add(1, Ordering::Relaxed);
            async { Ok(()) }
        })
        .on::<ItemShipped, _, _>(move |c: Context<ItemShipped>| {
            e2.fetch_add(1, Ordering::Relaxed);
            tl6.say(
                "notification",
                &c.event.order_id,
                format!("email: your order is on its way ({})", c.event.tracking),
            );
            async { Ok(()) }
        })
        .on::<OrderCancelled, _, _>(move |c: Context<OrderCancelled>| {
            e3.fetch_add(1, Ordering::Relaxed);
            tl7.say(
                "notification",
                &c.event.order_id,
                format!("email: order cancelled ({})", c.event.reason),
            );
            async { Ok(()) }
        })
        .build()?;

    let view = Arc::new(Mutex::new(Analytics::default()));
    let analytics = analytics_subscriber(&brokers, "analytics", view.clone())?;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    let services = [
        payment.clone(),
        inventory,
        shipping,
        order,
        notification,
        analytics,
    ];
    // An order whose event is dead-lettered by any service ends there.
    let watched: Vec<Subscriber> = services[..4].to_vec();
    for s in services {
        let mut rx = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            s.run(async move {
                let _ = rx.changed().await;
            })
            .await
        }));
    }

    // The storefront places the orders.
    let storefront = Publisher::new(&brokers, "shop/storefront")?;
    let orders: Vec<OrderPlaced> = (1..=opts.orders).map(make_order).collect();
    for o in orders.iter().take(opts.show as usize) {
        tl.say(
            "storefront",
            &o.order_id,
            format!(
                "OrderPlaced {} ({} items)",
                dollars(o.total_cents),
                o.items.len()
            ),
        );
    }
    storefront.publish_all(&orders).await?;

    // Each order ends shipped, cancelled, or in the payment dead-letter topic.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let (shipped, cancelled) = view
            .lock()
            .map(|v| (v.orders_shipped, v.orders_cancelled))
            .unwrap_or((0, 0));
        let dead: u64 = watched.iter().map(|s| s.metrics().dead_lettered).sum();
        if shipped + cancelled + dead >= opts.orders as u64 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop_tx.send(true);
    for t in tasks {
        t.await??;
    }
    let analytics = view.lock().map(|v| v.clone()).unwrap_or_default();
    let m = payment.metrics();
    Ok(ShopReport {
        orders: opts.orders,
        shipped: analytics.orders_shipped,
        cancelled: analytics.orders_cancelled,
        payment_retries: m.retried,
        dead_lettered: m.dead_lettered,
        analytics,
        wall: started.elapsed(),
    })
}

/// The records a read_committed consumer (as the analytics subscriber is)
/// reads in `topic` now: counted, not taken from the watermarks, because
/// transaction markers take offsets too (the payment service writes
/// shop.payments in transactions).
fn count_records(brokers: &str, topic: &str) -> anyhow::Result<i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "shop-probe")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .create()?;
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let parts = md
        .topics()
        .first()
        .map(|x| x.partitions().len() as i32)
        .unwrap_or(0);
    let mut tpl = TopicPartitionList::new();
    for p in 0..parts {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    c.assign(&tpl)?;
    let mut at_end = std::collections::HashSet::new();
    let mut count = 0i64;
    let deadline = Instant::now() + Duration::from_secs(60);
    while at_end.len() < parts as usize {
        if Instant::now() > deadline {
            anyhow::bail!("could not read {topic} to its end");
        }
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(_)) => count += 1,
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => return Err(e.into()),
            None => {}
        }
    }
    Ok(count)
}

/// Rebuilds the analytics view from offset 0 in a fresh consumer group.
pub async fn replay_analytics(brokers: &str) -> anyhow::Result<Analytics> {
    // Everything in the four topics now: the replay is complete when it has seen that many events.
    let mut expected = 0i64;
    for t in ALL_TOPICS {
        expected += count_records(brokers, t)?;
    }
    let view = Arc::new(Mutex::new(Analytics::default()));
    let group = format!("analytics-replay-{}", uuid::Uuid::now_v7());
    let sub = analytics_subscriber(brokers, &group, view.clone())?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        sub.run(async {
            let _ = rx.await;
        })
        .await
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    while view.lock().map(|v| v.events() as i64).unwrap_or(0) < expected
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = tx.send(());
    task.await??;
    let v = view.lock().map(|v| v.clone()).unwrap_or_default();
    Ok(v)
}
