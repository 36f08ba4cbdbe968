//! `herald bench produce|consume|e2e|sink`: load generator on librdkafka with
//! HDR-histogram latencies, and the null broker to compare against.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::{Args, Subcommand};
use hdrhistogram::Histogram;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, ToBytes};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::json;

use super::{Common, REQUEST_TIMEOUT, Table, metadata, print_json};

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Produce as fast as allowed and report throughput and ack latency.
    Produce(BenchArgs),
    /// Consume a topic from the beginning and report throughput.
    Consume(BenchArgs),
    /// Produce at a rate while consuming; report end-to-end latency.
    E2e(BenchArgs),
    /// Run the null broker (accepts and acknowledges produce without storing).
    Sink(super::sink::SinkArgs),
}

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    #[arg(long, short = 't', default_value = "herald-bench")]
    pub topic: String,
    /// Message size in bytes (at least 8: the send time is in the payload).
    #[arg(long, short = 's', default_value_t = 100)]
    pub size: usize,
    /// Messages to send (or read); ignored with --duration.
    #[arg(long, short = 'c', default_value_t = 1_000_000)]
    pub count: u64,
    /// Run for this many seconds instead of a count.
    #[arg(long, short = 'd')]
    pub duration: Option<f64>,
    /// Messages per second across all producers (0: unlimited; e2e default 1000).
    #[arg(long, short = 'r')]
    pub rate: Option<u64>,
    /// Partitions of the topic if it is created.
    #[arg(long, short = 'p', default_value_t = 1)]
    pub partitions: i32,
    #[arg(long, default_value = "all")]
    pub acks: String,
    #[arg(long, short = 'z', default_value = "none")]
    pub compression: String,
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    /// Producer batch.size in bytes.
    #[arg(long, default_value_t = 1_000_000)]
    pub batch_size: u64,
    /// Producer instances (each its own connection and thread).
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// Idempotent producers (`enable.idempotence=true`); implied by
    /// --transaction-records.
    #[arg(long)]
    pub idempotence: bool,
    /// Records per transaction (0: none). Each producer gets its own
    /// transactional id and commits every this many records, waiting for the
    /// commit before the next transaction begins, as a transactional
    /// application does.
    #[arg(long, default_value_t = 0)]
    pub transaction_records: u64,
    /// Hide the progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

/// How long a bench producer waits for InitProducerId and for each commit.
const TXN_TIMEOUT: Duration = Duration::from_secs(60);

/// Latencies are recorded in microseconds, up to an hour.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).expect("histogram"))
}

/// Latency is recorded for one message in this many (counts stay exact).
const LATENCY_SAMPLE: u64 = 8;
/// The producer reads the clock once per this many messages.
const CLOCK_EVERY: u64 = 16;

struct Stats {
    start: Instant,
    acked: AtomicU64,
    failed: AtomicU64,
    bytes: AtomicU64,
    /// Transactions committed (--transaction-records).
    transactions: AtomicU64,
    latency_us: Mutex<Histogram<u64>>,
    last_error: Mutex<Option<String>>,
}

impl Stats {
    fn new() -> Arc<Stats> {
        Stats::with_start(Instant::now())
    }
    fn with_start(start: Instant) -> Arc<Stats> {
        Arc::new(Stats {
            start,
            acked: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            transactions: AtomicU64::new(0),
            latency_us: Mutex::new(histogram()),
            last_error: Mutex::new(None),
        })
    }
    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
    fn record_payload(&self, payload: &[u8]) {
        let n = self.acked.fetch_add(1, Ordering::Relaxed);
        self.bytes
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
        // Sample one message in LATENCY_SAMPLE: reading the clock for every message
        // costs the load generator ~10% of its throughput.
        if n.is_multiple_of(LATENCY_SAMPLE) && payload.len() >= 8 {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&payload[..8]);
            let sent = u64::from_le_bytes(ts);
            let us = self.now_ns().saturating_sub(sent) / 1000;
            if let Ok(mut h) = self.latency_us.lock() {
                let _ = h.record(us.max(1));
            }
        }
    }
}

struct BenchContext(Arc<Stats>);
impl ClientContext for BenchContext {}
impl ProducerContext for BenchContext {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => self.0.record_payload(m.payload().unwrap_or(&[])),
            Err((e, _)) => {
                self.0.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut l) = self.0.last_error.lock() {
                    *l = Some(e.to_string());
                }
            }
        }
    }
}

fn producer_config(common: &Common, a: &BenchArgs) -> anyhow::Result<ClientConfig> {
    let mut c = common.client_config()?;
    c.set("acks", &a.acks)
        .set("compression.type", &a.compression)
        .set("linger.ms", a.linger_ms.to_string())
        .set("batch.size", a.batch_size.to_string())
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("message.timeout.ms", "120000")
        .set_log_level(RDKafkaLogLevel::Error);
    if a.idempotence || a.transaction_records > 0 {
        c.set("enable.idempotence", "true");
    }
    if a.transaction_records > 0 {
        // librdkafka wants message.timeout.ms <= transaction.timeout.ms.
        c.set("transaction.timeout.ms", "120000");
    }
    Ok(c)
}

async fn ensure_topic(common: &Common, a: &BenchArgs) -> anyhow::Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let probe = common.query_consumer(None)?;
    let md = metadata(&probe, None, &common.brokers)?;
    if md.topics().iter().any(|t| t.name() == a.topic) {
        return Ok(());
    }
    let admin: AdminClient<_> = common.client_config()?.create()?;
    let _ = admin
        .create_topics(
            &[NewTopic::new(
                &a.topic,
                a.partitions,
                TopicReplication::Fixed(1),
            )],
            &AdminOptions::new(),
        )
        .await;
    Ok(())
}

fn progress(
    a: &BenchArgs,
    total: Option<u64>,
    stats: Arc<Stats>,
    done: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let hidden = a.no_progress;
    std::thread::spawn(move || {
        let bar = match total {
            Some(n) => indicatif::ProgressBar::new(n),
            None => indicatif::ProgressBar::new_spinner(),
        };
        if hidden {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} msgs {per_sec}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        while !done.load(Ordering::Relaxed) {
            bar.set_position(stats.acked.load(Ordering::Relaxed));
            std::thread::sleep(Duration::from_millis(200));
        }
        bar.finish_and_clear();
    })
}

/// Waits until every message sent is delivered (or failed). rdkafka's
/// `commit_transaction` first flushes, and its flush, finding messages in
/// flight, polls for up to 100 ms; but a ThreadedProducer's own thread takes
/// the delivery events, so every commit would wait those 100 ms (measured:
/// 102 ms per commit, against 2-7 ms for librdkafka's commit called from C).
/// Once nothing is in flight, that flush returns at once.
fn wait_delivered(producer: &ThreadedProducer<BenchContext>) -> anyhow::Result<()> {
    let deadline = Instant::now() + TXN_TIMEOUT;
    while producer.in_flight_count() > 0 {
        if Instant::now() >= deadline {
            bail!("messages still in flight after {TXN_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    Ok(())
}

/// Runs `producers` threads sending `per_producer` messages each (or until
/// `deadline`), paced to `rate` msgs/s overall if set.
fn run_producers(
    common: &Common,
    a: &BenchArgs,
    stats: Arc<Stats>,
    rate: u64,
    deadline: Option<Instant>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let n = a.producers.max(1);
    let per_producer = a.count / n as u64;
    let txn_records = a.transaction_records;
    let mut handles = Vec::new();
    for i in 0..n {
        let mut cfg = producer_config(common, a)?;
        if txn_records > 0 {
            // One transactional id per producer and run: producers of one run must
            // not fence each other, nor a later run this one's leftovers.
            cfg.set(
                "transactional.id",
                format!("herald-bench-{}-{i}", std::process::id()),
            );
        }
        let producer: ThreadedProducer<BenchContext> =
            cfg.create_with_context(BenchContext(stats.clone()))?;
        if txn_records > 0 {
            producer.init_transactions(TXN_TIMEOUT)?;
            producer.begin_transaction()?;
        }
        let stats = stats.clone();
        let topic = a.topic.clone();
        let size = a.size.max(8);
        let stop = stop.clone();
        let per_thread_rate = rate as f64 / n as f64;
        handles.push(std::thread::spawn(move || -> anyhow::Result<()> {
            let mut payload = vec![b'h'; size];
            let started = Instant::now();
            let mut sent = 0u64;
            loop {
                if (sent.is_multiple_of(CLOCK_EVERY)
                    && deadline.is_some_and(|d| Instant::now() >= d))
                    || stop.load(Ordering::Relaxed)
                {
                    break;
                }
                if deadline.is_none() && sent >= per_producer {
                    break;
                }
                if per_thread_rate > 0.0 {
                    let due = started + Duration::from_secs_f64(sent as f64 / per_thread_rate);
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                }
                if sent.is_multiple_of(CLOCK_EVERY) || per_thread_rate > 0.0 {
                    payload[..8].copy_from_slice(&stats.now_ns().to_le_bytes());
                }
                let mut record: BaseRecord<'_, (), [u8]> =
                    BaseRecord::to(&topic).payload(payload.as_slice());
                loop {
                    match producer.send(record) {
                        Ok(()) => break,
                        Err((
                            rdkafka::error::KafkaError::MessageProduction(
                                rdkafka::types::RDKafkaErrorCode::QueueFull,
                            ),
                            r,
                        )) => {
                            record = r;
                            std::thread::sleep(Duration::from_micros(200));
                        }
                        Err((e, _)) => bail!("produce failed: {e}"),
                    }
                }
                sent += 1;
                if txn_records > 0 && sent.is_multiple_of(txn_records) {
                    wait_delivered(&producer)?;
                    producer.commit_transaction(TXN_TIMEOUT)?;
                    stats.transactions.fetch_add(1, Ordering::Relaxed);
                    producer.begin_transaction()?;
                }
            }
            if txn_records > 0 {
                // The last, partial (or empty) transaction.
                wait_delivered(&producer)?;
                producer.commit_transaction(TXN_TIMEOUT)?;
                if !sent.is_multiple_of(txn_records) {
                    stats.transactions.fetch_add(1, Ordering::Relaxed);
                }
            }
            producer.flush(Duration::from_secs(120))?;
            Ok(())
        }));
    }
    for h in handles {
        h.join()
            .map_err(|_| anyhow::anyhow!("producer thread panicked"))??;
    }
    Ok(())
}

fn report(
    common: &Common,
    kind: &str,
    a: &BenchArgs,
    stats: &Stats,
    elapsed: Duration,
    with_latency: bool,
) {
    let msgs = stats.acked.load(Ordering::Relaxed);
    let bytes = stats.bytes.load(Ordering::Relaxed);
    let secs = elapsed.as_secs_f64().max(1e-9);
    let h = stats
        .latency_us
        .lock()
        .map(|h| h.clone())
        .unwrap_or_else(|_| histogram());
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let failed = stats.failed.load(Ordering::Relaxed);
    if common.json() {
        let mut v = json!({
            "kind": kind, "topic": a.topic, "size": a.size, "acks": a.acks, "compression": a.compression,
            "messages": msgs, "failed": failed, "seconds": secs, "msgs_per_sec": msgs as f64 / secs,
            "mb_per_sec": bytes as f64 / secs / 1e6,
        });
        if a.transaction_records > 0 {
            v["transaction_records"] = json!(a.transaction_records);
            v["transactions"] = json!(stats.transactions.load(Ordering::Relaxed));
        } else if a.idempotence {
            v["idempotence"] = json!(true);
        }
        if with_latency {
            v["latency_ms"] = json!({"p50": ms(0.5), "p95": ms(0.95), "p99": ms(0.99), "p99_9": ms(0.999), "max": h.max() as f64 / 1000.0});
        }
        print_json(&v);
        return;
    }
    let mut headers = vec!["BENCH", "MESSAGES", "SECONDS", "MSG/S", "MB/S"];
    if with_latency {
        headers.extend(["P50 ms", "P95 ms", "P99 ms", "P99.9 ms", "MAX ms"]);
    }
    let mut t = Table::new(&headers);
    let mut row = vec![
        format!(
            "{kind} {}B acks={}{}",
            a.size,
            a.acks,
            if a.transaction_records > 0 {
                format!(" txn={}", a.transaction_records)
            } else if a.idempotence {
                " idempotent".to_string()
            } else {
                String::new()
            }
        ),
        msgs.to_string(),
        format!("{secs:.2}"),
        format!("{:.0}", msgs as f64 / secs),
        format!("{:.1}", bytes as f64 / secs / 1e6),
    ];
    if with_latency {
        row.extend(
            [
                ms(0.5),
                ms(0.95),
                ms(0.99),
                ms(0.999),
                h.max() as f64 / 1000.0,
            ]
            .iter()
            .map(|v| format!("{v:.2}")),
        );
    }
    t.row(row);
    t.print();
    if failed > 0 {
        eprintln!(
            "{failed} messages failed: {}",
            stats
                .last_error
                .lock()
                .ok()
                .and_then(|l| l.clone())
                .unwrap_or_default()
        );
    }
}

pub async fn run(common: &Common, cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Sink(args) => super::sink::run(args).await,
        BenchCommand::Produce(a) => {
            if a.size < 8 {
                bail!("--size must be at least 8 bytes");
            }
            ensure_topic(common, &a).await?;
            let stats = Stats::new();
            let done = Arc::new(AtomicBool::new(false));
            let deadline = a
                .duration
                .map(|d| Instant::now() + Duration::from_secs_f64(d));
            let bar = progress(
                &a,
                if deadline.is_some() {
                    None
                } else {
                    Some(a.count)
                },
                stats.clone(),
                done.clone(),
            );
            let started = Instant::now();
            let (c, a2, s2) = (common.clone(), a.clone(), stats.clone());
            let result = tokio::task::spawn_blocking(move || {
                run_producers(
                    &c,
                    &a2,
                    s2,
                    a2.rate.unwrap_or(0),
                    deadline,
                    Arc::new(AtomicBool::new(false)),
                )
            })
            .await?;
            let elapsed = started.elapsed();
            done.store(true, Ordering::Relaxed);
            let _ = bar.join();
            result?;
            report(common, "produce", &a, &stats, elapsed, true);
            Ok(())
        }
        BenchCommand::Consume(a) => {
            let c: BaseConsumer = {
                let mut cfg = common.client_config()?;
                cfg.set("group.id", "herald-bench-consume")
                    .set("enable.auto.commit", "false")
                    .set("fetch.max.bytes", "52428800")
                    // librdkafka stops fetching for fetch.queue.backoff.ms (1 s) whenever
                    // 100 000 messages wait locally; a reader this fast needs a deeper queue.
                    .set("queued.min.messages", "1000000");
                cfg.create()?
            };
            let md = metadata(&c, Some(&a.topic), &common.brokers)?;
            let partitions = super::require_topic(&md, &a.topic)?;
            let mut available = 0i64;
            let mut tpl = TopicPartitionList::new();
            for p in 0..partitions {
                let (low, high) = c.fetch_watermarks(&a.topic, p, REQUEST_TIMEOUT)?;
                available += high - low;
                tpl.add_partition_offset(&a.topic, p, Offset::Beginning)?;
            }
            let target = (a.count as i64).min(available).max(0) as u64;
            c.assign(&tpl)?;
            let stats = Stats::new();
            let done = Arc::new(AtomicBool::new(false));
            let bar = progress(&a, Some(target), stats.clone(), done.clone());
            let started = Instant::now();
            while stats.acked.load(Ordering::Relaxed) < target {
                match c.poll(Duration::from_millis(500)) {
                    Some(Ok(m)) => {
                        stats.acked.fetch_add(1, Ordering::Relaxed);
                        stats.bytes.fetch_add(
                            m.payload().map(|p| p.to_bytes().len()).unwrap_or(0) as u64,
                            Ordering::Relaxed,
                        );
                    }
                    Some(Err(e)) => bail!("consume failed: {e}"),
                    None => {
                        if started.elapsed() > Duration::from_secs(600) {
                            bail!("consume stalled");
                        }
                    }
                }
            }
            let elapsed = started.elapsed();
            done.store(true, Ordering::Relaxed);
            let _ = bar.join();
            report(common, "consume", &a, &stats, elapsed, false);
            Ok(())
        }
        BenchCommand::E2e(a) => {
            if a.size < 8 {
                bail!("--size must be at least 8 bytes");
            }
            ensure_topic(common, &a).await?;
            let rate = a.rate.unwrap_or(1000);
            let seconds = a.duration.unwrap_or(10.0);
            let stats = Stats::new();
            // Consumer first, positioned at the end, so it sees only this run's messages.
            let c: BaseConsumer = {
                let mut cfg = common.client_config()?;
                cfg.set("group.id", "herald-bench-e2e")
                    .set("enable.auto.commit", "false");
                cfg.create()?
            };
            let md = metadata(&c, Some(&a.topic), &common.brokers)?;
            let partitions = super::require_topic(&md, &a.topic)?;
            let mut tpl = TopicPartitionList::new();
            for p in 0..partitions {
                let (_, high) = c.fetch_watermarks(&a.topic, p, REQUEST_TIMEOUT)?;
                tpl.add_partition_offset(&a.topic, p, Offset::Offset(high))?;
            }
            c.assign(&tpl)?;
            let stop = Arc::new(AtomicBool::new(false));
            let consumer_stats = stats.clone();
            let consumer_stop = stop.clone();
            let consumer = std::thread::spawn(move || {
                while !consumer_stop.load(Ordering::Relaxed) {
                    if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                        consumer_stats.record_payload(m.payload().unwrap_or(&[]));
                    }
                }
            });
            // Producer acks are counted apart from consumer latencies, on the same clock.
            let producer_stats = Stats::with_start(stats.start);
            let done = Arc::new(AtomicBool::new(false));
            let bar = progress(&a, None, stats.clone(), done.clone());
            let deadline = Some(Instant::now() + Duration::from_secs_f64(seconds));
            let (cc, a2, ps) = (common.clone(), a.clone(), producer_stats.clone());
            let started = Instant::now();
            let result = tokio::task::spawn_blocking(move || {
                run_producers(
                    &cc,
                    &a2,
                    ps,
                    rate,
                    deadline,
                    Arc::new(AtomicBool::new(false)),
                )
            })
            .await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            stop.store(true, Ordering::Relaxed);
            let _ = consumer.join();
            let elapsed = started.elapsed();
            done.store(true, Ordering::Relaxed);
            let _ = bar.join();
            result?;
            report(common, "e2e", &a, &stats, elapsed, true);
            Ok(())
        }
    }
}
