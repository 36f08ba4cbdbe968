//! Durability under SIGKILL: produce with acks=all while the broker is killed
//! at random moments and restarted; every acknowledged message must be in the
//! log exactly once, in order.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use common::{BrokerProcess, create_topic};
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};

fn pseudo_random(bound: u64) -> u64 {
    let n = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(7) as u64;
    (n.wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        >> 33)
        % bound
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_kill_9_exactly_once_in_order() {
    let mut broker = BrokerProcess::start(&[]);
    create_topic(&broker, "durable", 1).await;
    let producer = broker.producer(&[
        ("enable.idempotence", "true"),
        ("acks", "all"),
        ("linger.ms", "1"),
        ("message.timeout.ms", "180000"),
        ("reconnect.backoff.ms", "20"),
        ("reconnect.backoff.max.ms", "200"),
        ("retry.backoff.ms", "20"),
    ]);
    let acked: Arc<Mutex<Vec<u64>>> = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = {
        let producer = producer.clone();
        let acked = acked.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut pending = tokio::task::JoinSet::new();
            let mut i: u64 = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let value = format!("{i:012}");
                match producer.send_result(FutureRecord::<(), _>::to("durable").payload(&value)) {
                    Ok(f) => {
                        let acked = acked.clone();
                        let n = i;
                        pending.spawn(async move {
                            if let Ok(Ok(_)) = f.await {
                                acked.lock().expect("lock").push(n);
                            }
                        });
                        i += 1;
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                }
                if i.is_multiple_of(200) {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            while pending.join_next().await.is_some() {}
            i
        })
    };

    for round in 0..5 {
        tokio::time::sleep(Duration::from_millis(300 + pseudo_random(700))).await;
        let before = acked.lock().expect("lock").len();
        broker.kill9();
        tokio::time::sleep(Duration::from_millis(50 + pseudo_random(200))).await;
        broker.restart();
        eprintln!("round {round}: killed after {before} acks, restarted");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let sent = tokio::time::timeout(Duration::from_secs(200), sender)
        .await
        .expect("producer drained")
        .expect("join");
    let mut acked = acked.lock().expect("lock").clone();
    acked.sort_unstable();
    assert!(
        acked.len() > 100,
        "the test produced too little to mean anything: {}",
        acked.len()
    );
    eprintln!("sent {sent}, acknowledged {}", acked.len());

    let consumer = broker.consumer(&[]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("durable", 0, Offset::Beginning)
        .expect("tpl");
    consumer.assign(&tpl).expect("assign");
    let end = consumer
        .fetch_watermarks("durable", 0, Duration::from_secs(10))
        .expect("watermarks")
        .1;
    let mut log: Vec<u64> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last_offset = -1;
    while last_offset + 1 < end {
        assert!(
            Instant::now() < deadline,
            "timed out reading back at offset {last_offset} of {end}"
        );
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.expect("message");
            last_offset = m.offset();
            let v: u64 = std::str::from_utf8(m.payload().expect("payload"))
                .expect("utf8")
                .parse()
                .expect("number");
            log.push(v);
        }
    }
    // In order and without duplicates (idempotence across restarts)...
    for w in log.windows(2) {
        assert!(
            w[0] < w[1],
            "log out of order or duplicated: {} then {}",
            w[0],
            w[1]
        );
    }
    // ...and every acknowledged message present.
    let present: std::collections::HashSet<u64> = log.iter().copied().collect();
    let missing: Vec<u64> = acked
        .iter()
        .copied()
        .filter(|v| !present.contains(v))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged messages lost, first {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
}
