//! KIP-848 (`group.protocol=consumer`) groups across a broker restart, with
//! librdkafka (2.12, the rdkafka crate): the members keep their ids, epochs
//! and partitions, no rebalance callback fires, and consumption goes on from
//! where it was without duplicates. Also DescribeGroups v6 and
//! ConsumerGroupDescribe v1 on the wire.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{BrokerProcess, create_topic, kafka_wire};
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, GroupId,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::ClientContext;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::producer::FutureRecord;

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

async fn produce(b: &BrokerProcess, from: i32, n: i32) {
    let p = b.producer(&[("linger.ms", "0")]);
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
    produce(&b, 0, 60).await;

    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    let mut rebalances = Vec::new();
    let mut seen = Vec::new();
    for i in 0..MEMBERS {
        let count = Arc::new(AtomicUsize::new(0));
        let s = Arc::new(Mutex::new(Seen::default()));
        rebalances.push(count.clone());
        seen.push(s.clone());
        let mut cfg = b.client_config();
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
    let total = |seen: &[Arc<Mutex<Seen>>]| -> usize {
        seen.iter().map(|s| s.lock().unwrap().records.len()).sum()
    };
    wait_for("the group to settle and consume 60 records", 60, || {
        total(&seen) >= 60
            && group_view(&b.addr)
                .is_some_and(|(_, m)| m.len() == MEMBERS && m.values().all(|(_, p)| p.len() == 2))
    });
    // Let the last commits land.
    std::thread::sleep(Duration::from_millis(500));
    let before = group_view(&b.addr).expect("stable");
    let rebalances_before: Vec<usize> = rebalances
        .iter()
        .map(|r| r.load(Ordering::SeqCst))
        .collect();
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
    produce(&b, 60, 60).await;
    wait_for("the 60 records produced after the restart", 60, || {
        total(&seen) >= 120
    });
    // A few heartbeats after the restart.
    std::thread::sleep(Duration::from_secs(3));
    let after = group_view(&b.addr).expect("stable after the restart");
    assert_eq!(after, before, "members, epochs or partitions changed");
    let rebalances_after: Vec<usize> = rebalances
        .iter()
        .map(|r| r.load(Ordering::SeqCst))
        .collect();
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
    let mut all: Vec<(i32, i64)> = seen
        .iter()
        .flat_map(|s| s.lock().unwrap().records.clone())
        .collect();
    all.sort();
    let n = all.len();
    all.dedup();
    assert_eq!(n, all.len(), "duplicates after the restart");
    assert_eq!(all.len(), 120);
    for p in 0..PARTITIONS {
        let offs: Vec<i64> = all
            .iter()
            .filter(|(q, _)| *q == p)
            .map(|(_, o)| *o)
            .collect();
        assert_eq!(offs, (0..20).collect::<Vec<i64>>(), "partition {p}");
    }
    eprintln!(
        "broker down and back in {restart_ms} ms; rebalances per member {rebalances_after:?}"
    );
}
