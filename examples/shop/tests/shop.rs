//! The shop end to end on an embedded Herald: every order ends shipped,
//! cancelled or dead-lettered; retries happen; replay rebuilds analytics.

use shop::{ShopOptions, replay_analytics, run_shop};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shop_settles_every_order_and_replay_reproduces_analytics() {
    let broker = herald_events::EmbeddedBroker::start().expect("broker");
    let brokers = broker.bootstrap_servers();
    let report = run_shop(ShopOptions {
        brokers: brokers.clone(),
        orders: 400,
        show: 0,
        partitions: 3,
        quiet: true,
    })
    .await
    .expect("shop ran");
    assert_eq!(
        report.shipped + report.cancelled + report.dead_lettered,
        400,
        "{report:?}"
    );
    // Orders 99 and 349 always break the payment gateway: 3 attempts, then the DLQ.
    assert_eq!(report.dead_lettered, 2);
    // Orders 3, 23, ..., 383 time out twice (40 retries); 99 and 349 twice before the DLQ.
    assert_eq!(report.payment_retries, 44);
    // Orders 7, 57, ..., 357 are declined; orders beyond the 20 scarce items run out.
    let a = &report.analytics;
    assert_eq!(a.events_by_type.get("PaymentFailed"), Some(&8));
    assert_eq!(a.events_by_type.get("OrderPlaced"), Some(&400));
    assert_eq!(
        a.orders_cancelled,
        a.events_by_type["PaymentFailed"] + a.events_by_type["OutOfStock"],
        "compensation"
    );
    assert!(
        a.events_by_type.get("OutOfStock").copied().unwrap_or(0) > 0,
        "{a:?}"
    );
    assert!(a.revenue_cents > 0);

    let replayed = replay_analytics(&brokers).await.expect("replay");
    assert_eq!(
        &replayed, a,
        "replaying from offset 0 rebuilds the same analytics"
    );
}

/// PaymentReceived and PaymentFailed events in `shop.payments` as a
/// read_committed consumer sees them: how many per order.
fn payments_per_order(brokers: &str) -> std::collections::BTreeMap<String, u32> {
    use rdkafka::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use std::time::{Duration, Instant};
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "shop-test-payments-reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer");
    let md = c
        .fetch_metadata(Some(shop::events::PAYMENTS), Duration::from_secs(10))
        .expect("metadata");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..md.topics()[0].partitions().len() as i32 {
        tpl.add_partition_offset(shop::events::PAYMENTS, p, rdkafka::Offset::Beginning)
            .expect("tpl");
    }
    c.assign(&tpl).expect("assign");
    let mut out = std::collections::BTreeMap::new();
    let mut idle_since = Instant::now();
    while idle_since.elapsed() < Duration::from_secs(2) {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            idle_since = Instant::now();
            let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
            *out.entry(key).or_insert(0) += 1;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_are_not_duplicated_across_a_restart_of_the_payment_service() {
    use std::time::{Duration, Instant};
    let broker = herald_events::EmbeddedBroker::start().expect("broker");
    let brokers = broker.bootstrap_servers();
    shop::create_topics(&brokers, 3).await.expect("topics");
    let orders: Vec<_> = (1..=200).map(shop::make_order).collect();
    herald_events::Publisher::new(&brokers, "shop/storefront")
        .expect("storefront")
        .publish_all(&orders)
        .await
        .expect("orders placed");

    // The payment service crashes (its task is killed) part way through.
    let first = shop::payment_service_quiet(&brokers).expect("payment");
    let watched = first.clone();
    let task = tokio::spawn(async move { first.run(std::future::pending()).await });
    let deadline = Instant::now() + Duration::from_secs(90);
    while watched.metrics().handled < 60 {
        assert!(Instant::now() < deadline, "{:?}", watched.metrics());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    task.abort();
    let _ = task.await;

    // Restarted, it settles the rest: every order but 99 (its gateway always
    // breaks: dead-lettered) gets exactly one payment outcome.
    let second = shop::payment_service_quiet(&brokers).expect("payment");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        second
            .run(async {
                let _ = stopped.await;
            })
            .await
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let b = brokers.clone();
        let seen = tokio::task::spawn_blocking(move || payments_per_order(&b))
            .await
            .expect("join");
        if seen.len() >= 199 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} orders paid or declined; missing {:?}",
            seen.len(),
            (1..=200)
                .map(|n| format!("order-{n:05}"))
                .filter(|o| !seen.contains_key(o))
                .collect::<Vec<_>>()
        );
    }
    let _ = stop.send(());
    running.await.expect("join").expect("payment ran cleanly");

    let b = brokers.clone();
    let seen = tokio::task::spawn_blocking(move || payments_per_order(&b))
        .await
        .expect("join");
    let expected: Vec<String> = (1..=200)
        .filter(|n| *n != 99)
        .map(|n| format!("order-{n:05}"))
        .collect();
    assert_eq!(seen.keys().cloned().collect::<Vec<_>>(), expected);
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "orders paid more than once: {twice:?}");
}
