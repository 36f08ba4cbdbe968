//! The subscriber's exactly-once mode against an in-process Herald
//! (EmbeddedBroker) with librdkafka: a handler's outputs and its input's
//! offset commit in one transaction; a failing attempt's outputs are aborted
//! (never seen by read_committed consumers) and the input is handled again; a
//! subscriber killed inside a transaction and restarted, or joined by a
//! second instance (a rebalance), produces every output exactly once; a
//! member that lost its partition while a transaction was open (it outlasted
//! max.poll.interval.ms) aborts that transaction and the event is handled
//! again.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herald_events::{Context, EmbeddedBroker, Event, Publisher, RetryPolicy, Subscriber};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Charge {
    id: u32,
}

impl Event for Charge {
    const EVENT_TYPE: &'static str = "ChargeRequested";
    const TOPIC: &'static str = "eos.charges";
    fn key(&self) -> String {
        format!("c{}", self.id)
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Charged {
    id: u32,
    attempt: u32,
}

impl Event for Charged {
    const EVENT_TYPE: &'static str = "ChargeCompleted";
    const TOPIC: &'static str = "eos.charged";
    fn key(&self) -> String {
        format!("c{}", self.id)
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

async fn publish_charges(addr: &str, ids: std::ops::Range<u32>) {
    let publisher = Publisher::new(addr, "test/storefront").expect("publisher");
    let charges: Vec<Charge> = ids.map(|id| Charge { id }).collect();
    publisher.publish_all(&charges).await.expect("published");
}

/// Every value of `topic` a consumer with `isolation` reads from the start
/// of every partition, once nothing new arrived for 2 s (by id: how many
/// times, and the attempts that produced them).
fn read_outputs(addr: &str, isolation: &str) -> BTreeMap<u32, Vec<u32>> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", "eos-test-reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .create()
        .expect("consumer");
    let md = c
        .fetch_metadata(Some(Charged::TOPIC), Duration::from_secs(10))
        .expect("metadata");
    let partitions = md.topics()[0].partitions().len() as i32;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(Charged::TOPIC, p, Offset::Beginning)
            .expect("tpl");
    }
    c.assign(&tpl).expect("assign");
    let mut out: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    let mut idle_since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && idle_since.elapsed() < Duration::from_secs(2) {
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                idle_since = Instant::now();
                let v: serde_json::Value =
                    serde_json::from_slice(m.payload().unwrap_or_default()).expect("envelope");
                let data: Charged = serde_json::from_value(v["data"].clone()).expect("data");
                out.entry(data.id).or_default().push(data.attempt);
            }
            Some(Err(e)) => panic!("consume: {e}"),
            None => {}
        }
    }
    out
}

/// The committed offsets of `group` on the input topic, summed over partitions.
fn committed_total(addr: &str, group: &str, partitions: i32) -> i64 {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(Charge::TOPIC, p);
    }
    let got = c
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed");
    got.elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            _ => 0,
        })
        .sum()
}

fn no_retry_topics(attempts_in_place: u32) -> RetryPolicy {
    RetryPolicy {
        attempts_in_place,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(20),
        retry_topic_delays: vec![],
    }
}

/// A handler that publishes `Charged` for each `Charge`, and fails after
/// publishing when `fail(id, attempt)` says so.
fn charger(
    fail: impl Fn(u32, u32) -> bool + Send + Sync + 'static,
    handled: Arc<AtomicU32>,
) -> impl Fn(
    Context<Charge>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send>>
+ Send
+ Sync
+ 'static {
    let fail = Arc::new(fail);
    move |ctx: Context<Charge>| {
        let fail = fail.clone();
        let handled = handled.clone();
        Box::pin(async move {
            ctx.publish(&Charged {
                id: ctx.event.id,
                attempt: ctx.attempt,
            })
            .await?;
            if fail(ctx.event.id, ctx.attempt) {
                anyhow::bail!("charge {} failed on attempt {}", ctx.event.id, ctx.attempt);
            }
            handled.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
    }
}

async fn wait_for(what: &str, done: impl Fn() -> bool, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn spawn(
    sub: Subscriber,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        sub.run(async {
            let _ = rx.await;
        })
        .await
        .expect("subscriber ran cleanly");
    });
    (tx, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_and_offsets_commit_together() {
    let broker = EmbeddedBroker::start().expect("broker");
    let addr = broker.bootstrap_servers();
    create_topic(&broker, Charge::TOPIC, 3).await;
    create_topic(&broker, Charged::TOPIC, 3).await;
    publish_charges(&addr, 0..30).await;

    let handled = Arc::new(AtomicU32::new(0));
    let sub = Subscriber::builder(&addr, "eos-payments")
        .retry(no_retry_topics(1))
        .exactly_once("instance-0")
        .on::<Charge, _, _>(charger(|_, _| false, handled.clone()))
        .build()
        .expect("subscriber");
    let metrics = sub.clone();
    let (stop, task) = spawn(sub);
    let h = handled.clone();
    wait_for(
        "30 charges",
        move || h.load(Ordering::SeqCst) >= 30,
        Duration::from_secs(90),
    )
    .await;
    let _ = stop.send(());
    task.await.expect("join");

    let committed = read_outputs(&addr, "read_committed");
    assert_eq!(committed.len(), 30, "{committed:?}");
    assert!(
        committed.values().all(|attempts| attempts == &[1]),
        "one output per charge: {committed:?}"
    );
    // The offsets committed with the outputs, and only with them (auto commit is off).
    assert_eq!(committed_total(&addr, "eos-payments", 3), 30);
    let m = metrics.metrics();
    assert_eq!(m.handled, 30);
    assert_eq!(m.aborted, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_attempt_is_aborted_and_the_input_handled_again() {
    let broker = EmbeddedBroker::start().expect("broker");
    let addr = broker.bootstrap_servers();
    create_topic(&broker, Charge::TOPIC, 2).await;
    create_topic(&broker, Charged::TOPIC, 2).await;
    publish_charges(&addr, 0..12).await;

    // Every 5th charge fails on its first attempt after publishing its
    // output; charge 7 always fails and ends in the dead-letter topic.
    let handled = Arc::new(AtomicU32::new(0));
    let sub = Subscriber::builder(&addr, "eos-flaky")
        .retry(no_retry_topics(2))
        .exactly_once("instance-0")
        .on::<Charge, _, _>(charger(
            |id, attempt| id == 7 || (id % 5 == 0 && attempt == 1),
            handled.clone(),
        ))
        .build()
        .expect("subscriber");
    let metrics = sub.clone();
    let (stop, task) = spawn(sub);
    let m2 = metrics.clone();
    wait_for(
        "11 handled and one dead letter",
        move || {
            let m = m2.metrics();
            m.handled >= 11 && m.dead_lettered >= 1
        },
        Duration::from_secs(90),
    )
    .await;
    let _ = stop.send(());
    task.await.expect("join");

    let committed = read_outputs(&addr, "read_committed");
    let expected: Vec<u32> = (0..12).filter(|id| *id != 7).collect();
    assert_eq!(committed.keys().copied().collect::<Vec<_>>(), expected);
    for (id, attempts) in &committed {
        let want = if id % 5 == 0 { vec![2] } else { vec![1] };
        assert_eq!(
            attempts, &want,
            "charge {id}: only the successful attempt's output"
        );
    }
    // The aborted attempts' outputs were written, then aborted: a
    // read_uncommitted consumer sees them.
    let uncommitted = read_outputs(&addr, "read_uncommitted");
    assert_eq!(uncommitted.get(&0), Some(&vec![1, 2]));
    assert_eq!(uncommitted.get(&5), Some(&vec![1, 2]));
    assert_eq!(uncommitted.get(&7), Some(&vec![1, 2]));
    let m = metrics.metrics();
    assert_eq!(m.dead_lettered, 1);
    assert!(m.aborted >= 5, "attempt 1 of 0, 5, 10 and both of 7: {m:?}");
    // Every input's offset is committed, the dead-lettered one's too.
    assert_eq!(committed_total(&addr, "eos-flaky", 2), 12);
    let dlq = dead_letters(&addr);
    assert_eq!(dlq, ["c7"], "the dead letter committed with its offset");
    // Replay reads the transactional dead-letter topic to its end (past the
    // commit markers) and moves the one record back.
    let replayed = tokio::time::timeout(
        Duration::from_secs(30),
        herald_events::dead_letter::replay_dead_letters(&addr, Charge::TOPIC),
    )
    .await
    .expect("replay finished")
    .expect("replay");
    assert_eq!(replayed, 1);
}

/// Keys of the records in the input's dead-letter topic (read_committed).
fn dead_letters(addr: &str) -> Vec<String> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", "eos-test-dlq")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer");
    let topic = format!("{}.dlq", Charge::TOPIC);
    let md = c
        .fetch_metadata(Some(&topic), Duration::from_secs(10))
        .expect("metadata");
    let mut tpl = TopicPartitionList::new();
    for p in 0..md.topics()[0].partitions().len() as i32 {
        tpl.add_partition_offset(&topic, p, Offset::Beginning)
            .expect("tpl");
    }
    c.assign(&tpl).expect("assign");
    let mut keys = Vec::new();
    let mut idle_since = Instant::now();
    while idle_since.elapsed() < Duration::from_secs(2) {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            idle_since = Instant::now();
            keys.push(String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned());
        }
    }
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_killed_inside_a_transaction_and_restarted_does_not_duplicate_outputs() {
    let broker = EmbeddedBroker::start().expect("broker");
    let addr = broker.bootstrap_servers();
    create_topic(&broker, Charge::TOPIC, 1).await;
    create_topic(&broker, Charged::TOPIC, 1).await;
    publish_charges(&addr, 0..20).await;

    // The first run publishes charge 9's output, then hangs inside its
    // transaction until the task is killed.
    let first = Arc::new(AtomicU32::new(0));
    let stuck = Arc::new(Mutex::new(false));
    let (f, s) = (first.clone(), stuck.clone());
    let sub = Subscriber::builder(&addr, "eos-restart")
        .retry(no_retry_topics(1))
        .exactly_once("instance-0")
        .on::<Charge, _, _>(move |ctx: Context<Charge>| {
            let (f, s) = (f.clone(), s.clone());
            async move {
                ctx.publish(&Charged {
                    id: ctx.event.id,
                    attempt: ctx.attempt,
                })
                .await?;
                if ctx.event.id == 9 {
                    *s.lock().expect("lock") = true;
                    std::future::pending::<()>().await;
                }
                f.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .build()
        .expect("subscriber");
    let task = tokio::spawn(async move { sub.run(std::future::pending()).await });
    let s2 = stuck.clone();
    wait_for(
        "the first run to hang in charge 9",
        move || *s2.lock().expect("lock"),
        Duration::from_secs(90),
    )
    .await;
    task.abort();
    let _ = task.await;
    assert_eq!(first.load(Ordering::SeqCst), 9, "charges 0..=8 committed");

    // The same instance again: its init_transactions aborts what the killed
    // one left open; it resumes from the committed offset, charge 9.
    let second = Arc::new(AtomicU32::new(0));
    let sub = Subscriber::builder(&addr, "eos-restart")
        .retry(no_retry_topics(1))
        .exactly_once("instance-0")
        .on::<Charge, _, _>(charger(|_, _| false, second.clone()))
        .build()
        .expect("subscriber");
    let (stop, task) = spawn(sub);
    let s3 = second.clone();
    wait_for(
        "charges 9..20 after the restart",
        move || s3.load(Ordering::SeqCst) >= 11,
        Duration::from_secs(120),
    )
    .await;
    let _ = stop.send(());
    task.await.expect("join");

    let committed = read_outputs(&addr, "read_committed");
    assert_eq!(committed.len(), 20, "{committed:?}");
    assert!(
        committed.values().all(|a| a.len() == 1),
        "each charge's output exactly once: {committed:?}"
    );
    // The killed run's output for charge 9 is in the log, aborted.
    assert_eq!(
        read_outputs(&addr, "read_uncommitted")
            .get(&9)
            .map(Vec::len),
        Some(2)
    );
    assert_eq!(committed_total(&addr, "eos-restart", 1), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_joining_rebalances_without_duplicates_or_loss() {
    let broker = EmbeddedBroker::start().expect("broker");
    let addr = broker.bootstrap_servers();
    create_topic(&broker, Charge::TOPIC, 4).await;
    create_topic(&broker, Charged::TOPIC, 4).await;
    publish_charges(&addr, 0..40).await;

    let build = |instance: &str, handled: &Arc<AtomicU32>| {
        let h = handled.clone();
        Subscriber::builder(&addr, "eos-shared")
            .retry(no_retry_topics(1))
            // Members hear of the rebalance sooner (librdkafka's default is 3 s).
            .config("heartbeat.interval.ms", "300")
            .exactly_once(instance)
            .on::<Charge, _, _>(move |ctx: Context<Charge>| {
                let h = h.clone();
                async move {
                    ctx.publish(&Charged {
                        id: ctx.event.id,
                        attempt: ctx.attempt,
                    })
                    .await?;
                    // Slow enough that the rebalance lands mid-stream.
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    h.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                }
            })
            .build()
            .expect("subscriber")
    };
    let (a_handled, b_handled) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let (stop_a, task_a) = spawn(build("a", &a_handled));
    let a2 = a_handled.clone();
    wait_for(
        "the first instance to start",
        move || a2.load(Ordering::SeqCst) >= 5,
        Duration::from_secs(90),
    )
    .await;
    let (stop_b, task_b) = spawn(build("b", &b_handled));
    // A trickle, so that work remains once the second instance has its
    // partitions.
    let publisher = Publisher::new(&addr, "test/storefront").expect("publisher");
    for id in 40..80 {
        publisher.publish(&Charge { id }).await.expect("published");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Handled counts run ahead of commits (an attempt aborted by the
    // rebalance was handled, then handled again): wait for the offsets.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let a = addr.clone();
        let total = tokio::task::spawn_blocking(move || committed_total(&a, "eos-shared", 4))
            .await
            .expect("join");
        if total >= 80 {
            break;
        }
        assert!(Instant::now() < deadline, "committed {total} of 80");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        b_handled.load(Ordering::SeqCst) > 0,
        "the second instance got partitions"
    );
    let _ = stop_a.send(());
    let _ = stop_b.send(());
    task_a.await.expect("join a");
    task_b.await.expect("join b");

    let committed = read_outputs(&addr, "read_committed");
    assert_eq!(committed.len(), 80, "{committed:?}");
    assert!(
        committed.values().all(|a| a.len() == 1),
        "no output twice across the rebalance: {committed:?}"
    );
    assert_eq!(committed_total(&addr, "eos-shared", 4), 80);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_loses_its_partition_mid_transaction_aborts_it() {
    let broker = EmbeddedBroker::start_with(|c| {
        c.group_min_session_timeout = Duration::from_millis(500);
    })
    .expect("broker");
    let addr = broker.bootstrap_servers();
    create_topic(&broker, Charge::TOPIC, 1).await;
    create_topic(&broker, Charged::TOPIC, 1).await;
    publish_charges(&addr, 0..6).await;

    // Charge 3's first handling outlasts max.poll.interval.ms: librdkafka
    // leaves the group meanwhile (a rebalance), so the transaction holding
    // its output cannot commit its offset; it is aborted and charge 3 is
    // handled again once the member has rejoined.
    let slow_once = Arc::new(AtomicU32::new(0));
    let handled = Arc::new(AtomicU32::new(0));
    let (s, h) = (slow_once.clone(), handled.clone());
    let sub = Subscriber::builder(&addr, "eos-wedged")
        .retry(no_retry_topics(1))
        .exactly_once("instance-0")
        .config("session.timeout.ms", "1000")
        .config("heartbeat.interval.ms", "200")
        .config("max.poll.interval.ms", "1500")
        .on::<Charge, _, _>(move |ctx: Context<Charge>| {
            let (s, h) = (s.clone(), h.clone());
            async move {
                ctx.publish(&Charged {
                    id: ctx.event.id,
                    attempt: ctx.attempt,
                })
                .await?;
                if ctx.event.id == 3 && s.fetch_add(1, Ordering::SeqCst) == 0 {
                    tokio::time::sleep(Duration::from_millis(4000)).await;
                }
                h.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .build()
        .expect("subscriber");
    let metrics = sub.clone();
    let (stop, task) = spawn(sub);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let a = addr.clone();
        let total = tokio::task::spawn_blocking(move || committed_total(&a, "eos-wedged", 1))
            .await
            .expect("join");
        if total >= 6 {
            break;
        }
        assert!(Instant::now() < deadline, "committed {total} of 6");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = stop.send(());
    task.await.expect("join");

    assert_eq!(
        slow_once.load(Ordering::SeqCst),
        2,
        "charge 3 handled twice"
    );
    assert!(metrics.metrics().aborted >= 1, "{:?}", metrics.metrics());
    let committed = read_outputs(&addr, "read_committed");
    assert_eq!(committed.len(), 6, "{committed:?}");
    assert!(
        committed.values().all(|a| a.len() == 1),
        "each output once: {committed:?}"
    );
    assert_eq!(
        read_outputs(&addr, "read_uncommitted")
            .get(&3)
            .map(Vec::len),
        Some(2),
        "the aborted transaction's output is in the log"
    );
}
