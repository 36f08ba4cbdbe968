//! KIP-848 (`group.protocol=consumer`) groups across a broker restart, and in
//! cluster mode across their coordinator's SIGKILL and return, with
//! librdkafka (2.12, the rdkafka crate): the members keep their ids, epochs
//! and partitions, no rebalance callback fires, and consumption goes on from
//! where it was without duplicates. Also DescribeGroups v6 and
//! ConsumerGroupDescribe v1 on the wire.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::{BrokerProcess, create_topic, kafka_wire};
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, GroupId,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::producer::FutureRecord;
use rdkafka::{ClientConfig, ClientContext};

const TOPIC: &str = "k848";
const GROUP: &str = "k848-group";
const PARTITIONS: i32 = 6;
const MEMBERS: usize = 3;

/// Counts the rebalance callbacks librdkafka fires on a member.
struct Counting(Arc<AtomicUsize>);

impl ClientContext for Counting {}

impl ConsumerContext for Counting {
    fn pre_rebalance(&self, _c: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) | Rebalance::Revoke(tpl) = r
            && tpl.count() == 0
        {
            return;
        }
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// One member's view: (partition, offset) of every record it handled.
#[derive(Default)]
struct Seen {
    records: Vec<(i32, i64)>,
}

fn describe(addr: &str, version: i16) -> ConsumerGroupDescribeResponse {
    let mut s = kafka_wire::connect(addr);
    let mut req = ConsumerGroupDescribeRequest::default();
    req.group_ids = vec![GroupId(StrBytes::from_static_str(GROUP))];
    use std::io::Write;
    s.write_all(&kafka_wire::frame(
        ApiKey::ConsumerGroupDescribe,
        version,
        1,
        &req,
    ))
    .expect("send");
    kafka_wire::read_response(&mut s, ApiKey::ConsumerGroupDescribe, version).expect("answered")
}

fn describe_groups(addr: &str, id: &str, version: i16) -> DescribeGroupsResponse {
    let mut s = kafka_wire::connect(addr);
    let mut req = DescribeGroupsRequest::default();
    req.groups = vec![GroupId(StrBytes::from_string(id.to_string()))];
    use std::io::Write;
    s.write_all(&kafka_wire::frame(ApiKey::DescribeGroups, version, 1, &req))
        .expect("send");
    kafka_wire::read_response(&mut s, ApiKey::DescribeGroups, version).expect("answered")
}

/// (group epoch, member id -> (member epoch, partitions)) once the group is
/// Stable with every member holding its share.
type GroupView = (i32, BTreeMap<String, (i32, BTreeSet<i32>)>);

fn group_view(addr: &str) -> Option<GroupView> {
    let r = describe(addr, 1);
    let g = r.groups.first()?;
    if g.error_code != 0 || g.group_state.as_str() != "Stable" {
        return None;
    }
    let members: BTreeMap<String, (i32, BTreeSet<i32>)> = g
        .members
        .iter()
        .map(|m| {
            let parts = m
                .assignment
                .topic_partitions
                .iter()
                .flat_map(|t| t.partitions.iter().copied())
                .collect();
            (m.member_id.to_string(), (m.member_epoch, parts))
        })
        .collect();
    Some((g.group_epoch, members))
}

async fn produce(base: &ClientConfig, from: i32, n: i32) {
    let p: rdkafka::producer::FutureProducer = base
        .clone()
        .set("linger.ms", "0")
        .create()
        .expect("producer");
    for i in from..from + n {
        let payload = format!("v{i}");
        p.send(
            FutureRecord::to(TOPIC)
                .partition(i % PARTITIONS)
                .key("k")
                .payload(&payload),
            Duration::from_secs(10),
        )
        .await
        .expect("produce");
    }
}

/// `MEMBERS` consumers of `TOPIC` in `GROUP` (consumer protocol), each on a
/// thread until `stop`, committing every record before the next.
struct Members {
    handles: Vec<std::thread::JoinHandle<()>>,
    rebalances: Vec<Arc<AtomicUsize>>,
    seen: Vec<Arc<Mutex<Seen>>>,
}

impl Members {
    fn start(base: &ClientConfig, stop: &Arc<AtomicBool>) -> Members {
        let mut handles = Vec::new();
        let mut rebalances = Vec::new();
        let mut seen = Vec::new();
        for i in 0..MEMBERS {
            let count = Arc::new(AtomicUsize::new(0));
            let s = Arc::new(Mutex::new(Seen::default()));
            rebalances.push(count.clone());
            seen.push(s.clone());
            let mut cfg = base.clone();
            cfg.set("group.id", GROUP)
                .set("group.protocol", "consumer")
                .set("client.id", format!("member-{i}"))
                .set("enable.auto.commit", "false")
                .set("auto.offset.reset", "earliest");
            let stop = stop.clone();
            handles.push(std::thread::spawn(move || {
                let c: BaseConsumer<Counting> =
                    cfg.create_with_context(Counting(count)).expect("consumer");
                c.subscribe(&[TOPIC]).expect("subscribe");
                while !stop.load(Ordering::SeqCst) {
                    if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                        s.lock().unwrap().records.push((m.partition(), m.offset()));
                        // Committed before the next: the uncommitted tail is
                        // at most one record per partition.
                        let _ = c.commit_message(&m, CommitMode::Sync);
                    }
                }
                c.unsubscribe();
            }));
        }
        Members {
            handles,
            rebalances,
            seen,
        }
    }
}

/// Every record each member handled, checked to be `n` per partition from
/// offset 0, none twice.
fn assert_each_record_once(seen: &[Arc<Mutex<Seen>>], per_partition: i64) {
    let mut all: Vec<(i32, i64)> = seen
        .iter()
        .flat_map(|s| s.lock().unwrap().records.clone())
        .collect();
    all.sort();
    let n = all.len();
    all.dedup();
    assert_eq!(n, all.len(), "records consumed twice");
    for p in 0..PARTITIONS {
        let offs: Vec<i64> = all
            .iter()
            .filter(|(q, _)| *q == p)
            .map(|(_, o)| *o)
            .collect();
        assert_eq!(
            offs,
            (0..per_partition).collect::<Vec<i64>>(),
            "partition {p}"
        );
    }
}

fn counts(rebalances: &[Arc<AtomicUsize>]) -> Vec<usize> {
    rebalances
        .iter()
        .map(|r| r.load(Ordering::SeqCst))
        .collect()
}

fn total(seen: &[Arc<Mutex<Seen>>]) -> usize {
    seen.iter().map(|s| s.lock().unwrap().records.len()).sum()
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_group_keeps_its_members_and_assignment_across_a_restart() {
    let mut b = BrokerProcess::start(&["--group-consumer-heartbeat-interval-ms", "1000"]);
    create_topic(&b, TOPIC, PARTITIONS).await;
    produce(&b.client_config(), 0, 60).await;

    let stop = Arc::new(AtomicBool::new(false));
    let members = Members::start(&b.client_config(), &stop);
    let (handles, rebalances, seen) = (members.handles, members.rebalances, members.seen);
    wait_for("the group to settle and consume 60 records", 60, || {
        total(&seen) >= 60
            && group_view(&b.addr)
                .is_some_and(|(_, m)| m.len() == MEMBERS && m.values().all(|(_, p)| p.len() == 2))
    });
    // Let the last commits land.
    std::thread::sleep(Duration::from_millis(500));
    let before = group_view(&b.addr).expect("stable");
    let rebalances_before = counts(&rebalances);
    let joins_before = b.log_count(&["consumer group member joined"]);
    assert_eq!(joins_before, MEMBERS);

    // ConsumerGroupDescribe v1: every member is a consumer-protocol member.
    let d = describe(&b.addr, 1);
    assert!(d.groups[0].members.iter().all(|m| m.member_type == 1));
    assert!(
        describe(&b.addr, 0).groups[0]
            .members
            .iter()
            .all(|m| m.member_type == -1)
    );
    // DescribeGroups v6 tells a consumer group apart from a classic one
    // (KIP-1043); v5 shows it as Dead.
    let v6 = describe_groups(&b.addr, GROUP, 6);
    assert_eq!(v6.groups[0].error_code, 69, "{v6:?}");
    assert_eq!(
        v6.groups[0].error_message.as_deref(),
        Some(format!("Group {GROUP} is not a classic group.").as_str())
    );
    let v5 = describe_groups(&b.addr, GROUP, 5);
    assert_eq!(v5.groups[0].error_code, 0);
    assert_eq!(v5.groups[0].group_state.as_str(), "Dead");
    let absent = describe_groups(&b.addr, "absent", 6);
    assert_eq!(absent.groups[0].error_code, 69);
    assert_eq!(
        absent.groups[0].error_message.as_deref(),
        Some("Group absent not found.")
    );

    // Restart the broker under the running consumers.
    let t = Instant::now();
    b.stop();
    std::thread::sleep(Duration::from_secs(1));
    b.restart();
    let restart_ms = t.elapsed().as_millis();
    produce(&b.client_config(), 60, 60).await;
    wait_for("the 60 records produced after the restart", 60, || {
        total(&seen) >= 120
    });
    // A few heartbeats after the restart.
    std::thread::sleep(Duration::from_secs(3));
    let after = group_view(&b.addr).expect("stable after the restart");
    assert_eq!(after, before, "members, epochs or partitions changed");
    let rebalances_after = counts(&rebalances);
    assert_eq!(
        rebalances_after, rebalances_before,
        "a rebalance callback fired"
    );
    assert_eq!(
        b.log_count(&["consumer group member joined"]),
        joins_before,
        "a member joined again"
    );
    assert_eq!(b.log_count(&["consumer group member removed"]), 0);

    stop.store(true, Ordering::SeqCst);
    for h in handles {
        h.join().expect("consumer thread");
    }
    // Every record once: nothing was consumed twice, nothing skipped.
    assert_each_record_once(&seen, 20);
    eprintln!(
        "broker down and back in {restart_ms} ms; rebalances per member {rebalances_after:?}"
    );
}

/// Cluster mode: the group's records live in PostgreSQL. Its coordinator is
/// SIGKILLed under the running members; the broker that takes the group over
/// loads it (members, epochs, assignment, offsets) and the members go on with
/// it, then again when the killed broker returns and takes the group back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_cluster_mode_the_group_survives_its_coordinator_being_killed() {
    let mut cluster =
        Cluster::start_with(3, 25, &["--group-consumer-heartbeat-interval-ms", "1000"]);
    cluster.create_topic(TOPIC, PARTITIONS).await;
    let all = cluster.client(&[]);
    produce(&all, 0, 60).await;
    let first = Cluster::coordinator_among(GROUP, &[1, 2, 3]);
    let rest: Vec<i32> = (1..=3).filter(|id| *id != first).collect();
    let second = Cluster::coordinator_among(GROUP, &rest);
    let addr = |c: &Cluster, id: i32| c.brokers[(id - 1) as usize].addr.clone();

    let stop = Arc::new(AtomicBool::new(false));
    let Members {
        handles,
        rebalances,
        seen,
    } = Members::start(&all, &stop);
    let first_addr = addr(&cluster, first);
    wait_for("the group to settle and consume 60 records", 60, || {
        total(&seen) >= 60
            && group_view(&first_addr)
                .is_some_and(|(_, m)| m.len() == MEMBERS && m.values().all(|(_, p)| p.len() == 2))
    });
    std::thread::sleep(Duration::from_millis(500));
    let before = group_view(&first_addr).expect("stable");
    let rebalances_before = counts(&rebalances);
    let joined = |c: &Cluster| {
        c.brokers
            .iter()
            .map(|b| b.log_count(&["consumer group member joined"]))
            .sum::<usize>()
    };
    assert_eq!(joined(&cluster), MEMBERS);

    // SIGKILL the coordinator: `second` takes the group over once the
    // killed broker's lease lapses.
    let t = Instant::now();
    cluster.brokers[(first - 1) as usize].kill9();
    let second_addr = addr(&cluster, second);
    wait_for("the next coordinator to serve the group", 60, || {
        group_view(&second_addr).is_some()
    });
    let takeover_ms = t.elapsed().as_millis();
    let survivors = cluster
        .client(&[])
        .set("bootstrap.servers", &second_addr)
        .clone();
    produce(&survivors, 60, 60).await;
    wait_for("the 60 records produced after the kill", 60, || {
        total(&seen) >= 120
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        group_view(&second_addr),
        Some(before.clone()),
        "members, epochs or partitions changed when {second} took the group over"
    );

    // The killed broker returns and takes the group back (rendezvous).
    cluster.brokers[(first - 1) as usize].restart();
    wait_for("the returned broker to serve the group again", 60, || {
        group_view(&first_addr).is_some()
    });
    produce(&all, 120, 60).await;
    wait_for("the 60 records produced after the return", 60, || {
        total(&seen) >= 180
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        group_view(&first_addr),
        Some(before),
        "members, epochs or partitions changed when {first} took the group back"
    );
    assert_eq!(
        counts(&rebalances),
        rebalances_before,
        "a rebalance callback fired"
    );
    assert_eq!(joined(&cluster), MEMBERS, "a member joined again");

    stop.store(true, Ordering::SeqCst);
    for h in handles {
        h.join().expect("consumer thread");
    }
    assert_each_record_once(&seen, 30);
    eprintln!("broker {second} served the group {takeover_ms} ms after broker {first} was killed");
}

/// The Java client (kafka-clients 4.3, `group.protocol=consumer`) across a
/// broker restart: its members keep their ids, epochs and partitions (its
/// rebalance listener fires only for the first assignment) and read every
/// record once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_members_keep_their_assignment_across_a_restart() {
    use std::io::BufRead;
    let (cp, _classes) = common::java::compile("tests/python/java/Kip848RestartCheck.java");
    let mut b = BrokerProcess::start(&["--group-consumer-heartbeat-interval-ms", "1000"]);
    create_topic(&b, TOPIC, PARTITIONS).await;
    produce(&b.client_config(), 0, 60).await;
    let mut java = std::process::Command::new("java")
        .arg("-cp")
        .arg(&cp)
        .arg("Kip848RestartCheck")
        .arg(&b.addr)
        .arg(TOPIC)
        .arg(GROUP)
        .arg(MEMBERS.to_string())
        .arg("120")
        .arg("120")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("java");
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let reader = {
        let out = java.stdout.take().expect("stdout");
        let lines = lines.clone();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(l);
            }
        })
    };
    let count = |prefix: &str| {
        lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with(prefix))
            .count()
    };
    wait_for(
        "the Java group to settle and consume 60 records",
        90,
        || {
            count("RECORD ") >= 60
                && group_view(&b.addr).is_some_and(|(_, m)| {
                    m.len() == MEMBERS && m.values().all(|(_, p)| p.len() == 2)
                })
        },
    );
    std::thread::sleep(Duration::from_millis(1500));
    let before = group_view(&b.addr).expect("stable");
    let listener_before = count("ASSIGNED ") + count("REVOKED ") + count("LOST ");

    b.stop();
    std::thread::sleep(Duration::from_secs(1));
    b.restart();
    produce(&b.client_config(), 60, 60).await;
    let status = java.wait().expect("java exit");
    reader.join().expect("reader");
    let lines = lines.lock().unwrap().clone();
    let mut stderr = String::new();
    if let Some(mut e) = java.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut stderr);
    }
    let tail = &stderr[stderr.len().saturating_sub(3000)..];
    assert!(
        status.success(),
        "Kip848RestartCheck failed:\n{}\n{tail}",
        lines.join("\n")
    );
    // The members reported their ids and epochs before closing.
    let epochs: BTreeMap<String, i32> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("EPOCH "))
        .filter_map(|l| {
            let mut f = l.split(' ');
            let (_, id, epoch) = (f.next()?, f.next()?, f.next()?);
            Some((id.to_string(), epoch.parse().ok()?))
        })
        .collect();
    let expected: BTreeMap<String, i32> = before
        .1
        .iter()
        .map(|(id, (e, _))| (id.clone(), *e))
        .collect();
    assert_eq!(
        epochs,
        expected,
        "member ids or epochs changed:\n{}",
        lines.join("\n")
    );
    let listener_after = lines
        .iter()
        .filter(|l| {
            l.starts_with("ASSIGNED ") || l.starts_with("REVOKED ") || l.starts_with("LOST ")
        })
        .count();
    assert_eq!(
        listener_after,
        listener_before,
        "the rebalance listener fired after the restart:\n{}",
        lines.join("\n")
    );
    let mut records: Vec<(i32, i64)> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("RECORD "))
        .filter_map(|l| {
            let mut f = l.split(' ');
            let (_, p, o) = (f.next()?, f.next()?, f.next()?);
            Some((p.parse().ok()?, o.parse().ok()?))
        })
        .collect();
    records.sort();
    let n = records.len();
    records.dedup();
    assert_eq!(n, records.len(), "records consumed twice");
    assert_eq!(records.len(), 120);
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("ERROR ") || l.starts_with("COMMIT-FAILED ")),
        "{}",
        lines.join("\n")
    );
}
