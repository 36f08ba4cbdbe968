//! The SDK against an in-process Herald (EmbeddedBroker) with librdkafka.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herald_events::retry::headers as h;
use herald_events::{EmbeddedBroker, Event, Publisher, RetryPolicy, Subscriber};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Tick {
    key: String,
    seq: u32,
}

impl Event for Tick {
    const EVENT_TYPE: &'static str = "TickHappened";
    const TOPIC: &'static str = "ticks";
    fn key(&self) -> String {
        self.key.clone()
    }
}

async fn create_topic(broker: &EmbeddedBroker, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .create()
        .expect("admin");
    let r = admin
        .create_topics(
            &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .expect("create");
    r[0].as_ref().expect("created");
}

type Seen = Arc<Mutex<Vec<(String, u32, u32)>>>;

/// Runs `sub` until `done()` or the timeout, then shuts it down gracefully.
async fn run_until(sub: Subscriber, done: impl Fn() -> bool, timeout: Duration) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        sub.run(async {
            let _ = rx.await;
        })
        .await
    });
    let deadline = Instant::now() + timeout;
    while !done() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = tx.send(());
    task.await.expect("join").expect("subscriber ran cleanly");
}

fn collector(
    seen: &Seen,
) -> impl Fn(herald_events::Context<Tick>) -> std::future::Ready<anyhow::Result<()>>
+ Send
+ Sync
+ 'static {
    let seen = seen.clone();
    move |ctx| {
        seen.lock()
            .expect("lock")
            .push((ctx.event.key.clone(), ctx.event.seq, ctx.attempt));
        std::future::ready(Ok(()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_group_gets_every_event_once_in_key_order() {
    let broker = EmbeddedBroker::start().expect("broker");
    let addr = broker.bootstrap_servers();
    create_topic(&broker, Tick::TOPIC, 3).await;
    let publisher = Publisher::new(&addr, "test").expect("publisher");
    let mut events = Vec::new();
    for seq in 0..30 {
        for k in 0..10 {
            events.push(Tick {
                key: format!("k{k}"),
                seq,
            });
        }
    }
    publisher.publish_all(&events).await.expect("published");

    let groups = ["payment", "inventory"];
    let mut runs = Vec::new();
    let mut seens = Vec::new();
    for g in groups {
        let seen: Seen = Arc::new(Mutex::new(Vec::new()));
        let sub = Subscriber::builder(&addr, g)
            .on::<Tick, _, _>(collector(&seen))
            .build()
            .expect("subscriber");
        let s2 = seen.clone();
        runs.push(tokio::spawn(run_until(
            sub,
            move || s2.lock().expect("lock").len() >= 300,
            Duration::from_secs(60),
        )));
        seens.push(seen);
    }
    for r in runs {
        r.await.expect("join");
    }
    for (g, seen) in groups.iter().zip(&seens) {
        let seen = seen.lock().expect("lock");
        assert_eq!(seen.len(), 300, "group {g} got every event exactly once");
        let mut last: HashMap<&str, u32> = HashMap::new();
        for (k, seq, _) in seen.iter() {
            if let Some(prev) = last.insert(k, *seq) {
                assert!(
                    *seq == prev + 1,
                    "group {g}: key {k} out of order ({prev} then {seq})"
                );
            } else {
                assert_eq!(*seq, 0);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_least_once_across_a_consumer_crash() {
    let broker = EmbeddedBroker::start().expect("broker");
    let addr = broker.bootstrap_servers();
    create_topic(&broker, Tick::TOPIC, 1).await;
    let publisher = Publisher::new(&addr, "test").expect("publisher");
    let events: Vec<Tick> = (0..100)
        .map(|seq| Tick {
            key: "only".into(),
            seq,
        })
        .collect();
    publisher.publish_all(&events).await.expect("published");

    // The first instance handles some events slowly and is killed mid-stream (task aborted).
    let first: Seen = Arc::new(Mutex::new(Vec::new()));
    let f2 = first.clone();
    let sub = Subscriber::builder(&addr, "crashy")
        .on::<Tick, _, _>(move |ctx| {
            let f = f2.clone();
            async move {
                f.lock()
                    .expect("lock")
                    .push((ctx.event.key.clone(), ctx.event.seq, ctx.attempt));
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(())
            }
        })
        .build()
        .expect("subscriber");
    let task = tokio::spawn(async move { sub.run(std::future::pending()).await });
    let deadline = Instant::now() + Duration::from_secs(30);
    while first.lock().expect("lock").len() < 30 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    task.abort();
    let _ = task.await;
    let handled_first = first.lock().expect("lock").len();
    assert!(
        handled_first >= 30,
        "the first instance handled {handled_first}"
    );

    let second: Seen = Arc::new(Mutex::new(Vec::new()));
    let sub = Subscriber::builder(&addr, "crashy")
        .on::<Tick, _, _>(collector(&second))
        .build()
        .expect("subscriber");
    let s2 = second.clone();
    let f3 = first.clone();
    run_until(
        sub,
        move || {
            let mut all: Vec<u32> = f3.lock().expect("lock").iter().map(|x| x.1).collect();
            all.extend(s2.lock().expect("lock").iter().map(|x| x.1));
            all.sort_unstable();
            all.dedup();
            all.len() == 100 && s2.lock().expect("lock").last().map(|x| x.1) == Some(99)
        },
        Duration::from_secs(60),
    )
    .await;
    let mut all: Vec<u32> = first.lock().expect("lock").iter().map(|x| x.1).collect();
    all.extend(second.lock().expect("lock").iter().map(|x| x.1));
    all.sort_unstable();
    all.dedup();
    assert_eq!(
        all,
        (0..100).collect::<Vec<_>>(),
        "every event handled at least once"
    );
    // The second instance resumed near where the first stopped, not from scratch.
    let resumed_at = second
        .lock()
        .expect("lock")
        .first()
        .map(|x| x.1)
        .unwrap_or(0);
    assert!(
        resumed_at > 0,
        "resumed from committed offsets, got {resumed_at}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_event_is_retried_without_blocking_other_keys() {
    let broker = EmbeddedBroker::start().expect("broker");
    let addr = broker.bootstrap_servers();
    create_topic(&broker, Tick::TOPIC, 1).await;
    let publisher = Publisher::new(&addr, "test").expect("publisher");
    let log: Arc<Mutex<Vec<(String, u32, u32)>>> = Arc::new(Mutex::new(Vec::new()));
    let l2 = log.clone();
    let sub = Subscriber::builder(&addr, "retrying")
        .retry(RetryPolicy {
            attempts_in_place: 1,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(10),
            retry_topic_delays: vec![Duration::from_millis(300), Duration::from_millis(300)],
        })
        .on::<Tick, _, _>(move |ctx| {
            let l = l2.clone();
            async move {
                if ctx.event.key == "flaky" && ctx.attempt < 3 {
                    anyhow::bail!("payment gateway timeout (attempt {})", ctx.attempt);
                }
                l.lock()
                    .expect("lock")
                    .push((ctx.event.key.clone(), ctx.event.seq, ctx.attempt));
                Ok(())
            }
        })
        .build()
        .expect("subscriber");
    let mut events = vec![Tick {
        key: "flaky".into(),
        seq: 0,
    }];
    events.extend((0..20).map(|seq| Tick {
        key: "steady".into(),
        seq,
    }));
    publisher.publish_all(&events).await.expect("published");
    let l3 = log.clone();
    let metrics_sub = sub.clone();
    run_until(
        sub,
        move || l3.lock().expect("lock").len() >= 21,
        Duration::from_secs(60),
    )
    .await;
    let log = log.lock().expect("lock");
    assert_eq!(log.len(), 21);
    let flaky_pos = log
        .iter()
        .position(|x| x.0 == "flaky")
        .expect("flaky handled");
    assert_eq!(flaky_pos, 20, "the 20 steady events went first: {log:?}");
    assert_eq!(log[flaky_pos].2, 3, "succeeded on the third attempt");
    let m = metrics_sub.metrics();
    assert_eq!(m.retried, 2);
    assert_eq!(m.handled, 21);
    assert_eq!(m.dead_lettered, 0);
}

/// A record's value and headers.
type Record = (Option<Vec<u8>>, HashMap<String, String>);

fn read_all(addr: &str, topic: &str, expect: usize) -> Vec<Record> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", "reader")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("tpl");
    c.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while out.len() < expect && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            let headers = m
                .headers()
                .map(|hs| {
                    hs.iter()
                        .map(|x| {
                            (
                                x.key.to_string(),
                                String::from_utf8_lossy(x.value.unwrap_or_default()).into_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push((m.payload().map(|p| p.to_vec()), headers));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_events_are_dead_lettered_with_headers_and_replay_brings_them_back() {
    let broker = EmbeddedBroker::start().expect("broker");
    let addr = broker.bootstrap_servers();
    create_topic(&broker, Tick::TOPIC, 1).await;
    let publisher = Publisher::new(&addr, "test").expect("publisher");
    let fixed = Arc::new(AtomicBool::new(false));
    let handled = Arc::new(AtomicU32::new(0));
    let (f2, h2) = (fixed.clone(), handled.clone());
    let sub = Subscriber::builder(&addr, "strict")
        .retry(RetryPolicy {
            attempts_in_place: 2,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(10),
            retry_topic_delays: vec![Duration::from_millis(100)],
        })
        .on::<Tick, _, _>(move |ctx| {
            let (f, h) = (f2.clone(), h2.clone());
            async move {
                if ctx.event.key == "poison" && !f.load(Ordering::SeqCst) {
                    anyhow::bail!("cannot ship to the moon");
                }
                h.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .build()
        .expect("subscriber");
    let poison = publisher
        .publish(&Tick {
            key: "poison".into(),
            seq: 7,
        })
        .await
        .expect("published");
    publisher
        .publish(&Tick {
            key: "fine".into(),
            seq: 1,
        })
        .await
        .expect("published");

    // Undecodable records: not JSON at all, and an envelope whose data has the wrong shape.
    let raw: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &addr)
        .create()
        .expect("producer");
    raw.send(
        FutureRecord::<(), _>::to(Tick::TOPIC).payload("not json"),
        Duration::from_secs(5),
    )
    .await
    .expect("sent");
    let bad = r#"{"eventType":"TickHappened","eventId":"x","timestamp":"2026-01-01T00:00:00Z","source":"t","data":{"nope":1}}"#;
    raw.send(
        FutureRecord::<(), _>::to(Tick::TOPIC).payload(bad),
        Duration::from_secs(5),
    )
    .await
    .expect("sent");

    let metrics_sub = sub.clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        sub.run(async {
            let _ = rx.await;
        })
        .await
    });
    let dlq = read_all(&addr, "ticks.dlq", 3);
    assert_eq!(
        dlq.len(),
        3,
        "poison, not-JSON and wrong-shape records are dead-lettered"
    );
    let poisoned = dlq
        .iter()
        .find(|(_, hs)| hs.get(h::ATTEMPTS).map(String::as_str) == Some("4"))
        .expect("the poison record: 2 attempts in place, twice (main topic, one retry topic)");
    let hs = &poisoned.1;
    assert_eq!(hs[h::ORIGINAL_TOPIC], "ticks");
    assert_eq!(hs[h::ORIGINAL_PARTITION], poison.partition.to_string());
    assert_eq!(hs[h::ORIGINAL_OFFSET], poison.offset.to_string());
    assert!(hs[h::ERROR].contains("cannot ship to the moon"), "{hs:?}");
    assert!(hs.contains_key(h::FAILED_AT));
    assert_eq!(hs["eventType"], "TickHappened", "original headers kept");
    let undecodable = dlq
        .iter()
        .filter(|(_, hs)| hs.get(h::ATTEMPTS).map(String::as_str) == Some("0"))
        .count();
    assert_eq!(
        undecodable, 2,
        "undecodable records go to the DLQ at once, without attempts"
    );
    assert_eq!(handled.load(Ordering::SeqCst), 1);

    // Fix the cause, replay: the poison event comes back and is handled.
    fixed.store(true, Ordering::SeqCst);
    let replayed = herald_events::dead_letter::replay_dead_letters(&addr, Tick::TOPIC)
        .await
        .expect("replay");
    assert_eq!(replayed, 3);
    let deadline = Instant::now() + Duration::from_secs(30);
    while handled.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        handled.load(Ordering::SeqCst),
        2,
        "the replayed event was handled"
    );
    assert_eq!(
        herald_events::dead_letter::replay_dead_letters(&addr, Tick::TOPIC)
            .await
            .expect("replay"),
        2,
        "the two undecodable records were dead-lettered again and are replayable; nothing else"
    );
    let _ = tx.send(());
    task.await.expect("join").expect("clean");
    assert!(metrics_sub.metrics().dead_lettered >= 3);
}
