//! `/metrics` of a real `herald serve` process, scraped over HTTP while
//! librdkafka (the rdkafka crate) produces, consumes and commits.
//!
//! The text is checked by a strict OpenMetrics parser written here: every
//! line is a descriptor, a sample of the family last described, or the
//! final `# EOF`; no series appears twice; histogram buckets are cumulative
//! and `+Inf` equals `_count`.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::time::{Duration, Instant};

use common::{BrokerProcess, create_topic};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

#[derive(Debug)]
struct Family {
    kind: Kind,
    samples: Vec<Sample>,
}

/// Parsed exposition: families by name.
struct Exposition(HashMap<String, Family>);

impl Exposition {
    /// The value of the sample `name` with exactly `labels`.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.0
            .values()
            .flat_map(|f| &f.samples)
            .find(|s| s.name == name && s.labels == want)
            .map(|s| s.value)
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
    }

    /// Sum of every sample `name` whose labels include `labels`.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .values()
            .flat_map(|f| &f.samples)
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .sum()
    }
}

/// Label set `{a="x",b="y"}` (the braces stripped), with OpenMetrics escapes.
fn parse_labels(s: &str, line: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        assert!(
            !key.is_empty()
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !key.starts_with(|c: char| c.is_ascii_digit()),
            "bad label name {key:?} in {line}"
        );
        assert_eq!(chars.next(), Some('"'), "label value not quoted in {line}");
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('\\') => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some('"') => value.push('"'),
                    Some('\\') => value.push('\\'),
                    other => panic!("bad escape {other:?} in {line}"),
                },
                Some('"') => break,
                Some(c) => value.push(c),
                None => panic!("unterminated label value in {line}"),
            }
        }
        assert!(
            out.insert(key.clone(), value).is_none(),
            "label {key} twice in {line}"
        );
        match chars.next() {
            Some(',') | None => {}
            other => panic!("expected ',' or end, got {other:?} in {line}"),
        }
    }
    out
}

/// Parses the whole text strictly (panics naming the offending line).
fn parse(text: &str) -> Exposition {
    assert!(text.ends_with("# EOF\n"), "no final # EOF");
    let mut families: HashMap<String, Family> = HashMap::new();
    let mut current: Option<String> = None;
    let mut seen = std::collections::HashSet::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line == "# EOF" {
            assert!(lines.peek().is_none(), "text after # EOF");
            break;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (what, name, arg) = (
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
            );
            match what {
                // prometheus-client writes HELP, then TYPE, then UNIT.
                "HELP" => {
                    let next = lines.peek().copied().unwrap_or("");
                    assert!(
                        next.starts_with(&format!("# TYPE {name} ")),
                        "HELP not followed by its TYPE: {line}"
                    );
                }
                "UNIT" => {
                    assert_eq!(
                        current.as_deref(),
                        Some(name),
                        "UNIT of another family: {line}"
                    );
                    assert!(
                        name.ends_with(&format!("_{arg}")),
                        "name lacks its unit: {line}"
                    );
                }
                "TYPE" => {
                    let kind = match arg {
                        "counter" => Kind::Counter,
                        "gauge" => Kind::Gauge,
                        "histogram" => Kind::Histogram,
                        other => panic!("unexpected type {other} in {line}"),
                    };
                    assert!(
                        families
                            .insert(
                                name.to_string(),
                                Family {
                                    kind,
                                    samples: Vec::new()
                                }
                            )
                            .is_none(),
                        "family {name} described twice"
                    );
                    current = Some(name.to_string());
                }
                other => panic!("unknown descriptor {other}: {line}"),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample without a value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (
                n,
                parse_labels(l.strip_suffix('}').expect("unclosed labels"), line),
            ),
            None => (series, BTreeMap::new()),
        };
        let family_name = current.clone().expect("sample before any TYPE");
        let family = families.get_mut(&family_name).expect("family");
        let suffix_ok = match family.kind {
            Kind::Gauge => name == family_name,
            Kind::Counter => name == format!("{family_name}_total"),
            Kind::Histogram => ["_bucket", "_sum", "_count"]
                .iter()
                .any(|s| name == format!("{family_name}{s}")),
        };
        assert!(
            suffix_ok,
            "sample {name} does not belong to {family_name} ({:?})",
            family.kind
        );
        if family.kind == Kind::Counter {
            assert!(value >= 0.0 && value.is_finite(), "counter {line}");
        }
        assert!(seen.insert(series.to_string()), "series twice: {series}");
        family.samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    Exposition(families)
}

/// Every histogram: buckets ascend in `le` and are cumulative, `+Inf` is
/// last and equals `_count`; `_sum` exists. Returns how many were checked.
fn check_histograms(e: &Exposition) -> usize {
    let mut checked = 0;
    for (name, f) in &e.0 {
        if f.kind != Kind::Histogram {
            continue;
        }
        // Group by the labels other than `le`.
        let mut series: BTreeMap<Vec<(String, String)>, Vec<&Sample>> = BTreeMap::new();
        for s in &f.samples {
            let key = s
                .labels
                .iter()
                .filter(|(k, _)| *k != "le")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            series.entry(key).or_default().push(s);
        }
        for (labels, samples) in series {
            let buckets: Vec<(f64, f64)> = samples
                .iter()
                .filter(|s| s.name.ends_with("_bucket"))
                .map(|s| {
                    let le = &s.labels["le"];
                    let bound = if le == "+Inf" {
                        f64::INFINITY
                    } else {
                        le.parse().expect("le")
                    };
                    (bound, s.value)
                })
                .collect();
            assert!(!buckets.is_empty(), "{name}{labels:?} has no buckets");
            for w in buckets.windows(2) {
                assert!(w[0].0 < w[1].0, "{name}{labels:?}: le not ascending: {w:?}");
                assert!(
                    w[0].1 <= w[1].1,
                    "{name}{labels:?}: buckets not cumulative: {w:?}"
                );
            }
            let last = buckets.last().expect("bucket");
            assert_eq!(last.0, f64::INFINITY, "{name}{labels:?}: +Inf is not last");
            let count = samples
                .iter()
                .find(|s| s.name.ends_with("_count"))
                .unwrap_or_else(|| panic!("{name}{labels:?} has no _count"))
                .value;
            assert_eq!(last.1, count, "{name}{labels:?}: +Inf bucket != _count");
            let sum = samples
                .iter()
                .find(|s| s.name.ends_with("_sum"))
                .unwrap_or_else(|| panic!("{name}{labels:?} has no _sum"))
                .value;
            assert!(sum >= 0.0, "{name}{labels:?}: negative _sum");
            checked += 1;
        }
    }
    checked
}

fn scrape(http: &str) -> Exposition {
    let r = common::http::request(http, "GET", "/metrics", &[], None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some(OPENMETRICS));
    let e = parse(&r.body);
    check_histograms(&e);
    e
}

async fn produce(p: &FutureProducer, topic: &str, partition: i32, n: usize) -> u64 {
    let mut bytes = 0;
    for i in 0..n {
        let value = format!("{{\"order\":{i},\"total\":{}}}", i * 7);
        bytes += value.len() as u64;
        let key = format!("k{i}");
        p.send(
            FutureRecord::to(topic)
                .partition(partition)
                .key(&key)
                .payload(&value),
            Duration::from_secs(30),
        )
        .await
        .expect("delivered");
    }
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_produce_fetch_and_commits() {
    let broker = BrokerProcess::start(&[]);
    let http = broker.http_addr();
    let topic = "metrics-orders";
    create_topic(&broker, topic, 2).await;

    let before = scrape(&http);
    assert_eq!(
        before.get("herald_topic_records_in_total", &[("topic", topic)]),
        None,
        "no traffic yet"
    );
    assert_eq!(before.value("herald_partitions", &[]), 2.0);
    assert_eq!(
        before.value(
            "herald_partition_high_watermark",
            &[("topic", topic), ("partition", "0")]
        ),
        0.0
    );
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        assert!(
            before.value(name, &[]) > 0.0,
            "{name} should be positive for a running process"
        );
    }

    // 25 records to partition 0, acks=all (librdkafka's default).
    const N: usize = 25;
    let producer = broker.producer(&[("linger.ms", "0")]);
    let value_bytes = produce(&producer, topic, 0, N).await;
    let after_produce = scrape(&http);
    assert_eq!(
        after_produce.value("herald_topic_records_in_total", &[("topic", topic)]),
        N as f64
    );
    let bytes_in = after_produce.value("herald_topic_bytes_in_total", &[("topic", topic)]);
    assert!(
        bytes_in >= value_bytes as f64,
        "bytes_in {bytes_in} < the {value_bytes} value bytes produced"
    );
    assert_eq!(
        after_produce.value(
            "herald_partition_high_watermark",
            &[("topic", topic), ("partition", "0")]
        ),
        N as f64
    );
    let size = after_produce.value(
        "herald_partition_log_size_bytes",
        &[("topic", topic), ("partition", "0")],
    );
    assert_eq!(size, bytes_in, "the log holds exactly the batches produced");
    let produces = after_produce.sum("herald_kafka_requests_total", &[("api", "Produce")]);
    assert!(
        produces >= 1.0 && produces <= N as f64,
        "{produces} Produce requests for {N} records sent one at a time"
    );
    assert_eq!(
        after_produce.value(
            "herald_kafka_request_duration_seconds_count",
            &[("api", "Produce")]
        ),
        produces,
        "every Produce was timed"
    );
    assert_eq!(
        after_produce.value("herald_produce_durable_duration_seconds_count", &[]),
        produces,
        "every acks=all Produce was timed to durable"
    );
    assert!(after_produce.value("herald_log_fsync_duration_seconds_count", &[]) >= 1.0);
    assert!(after_produce.value("herald_log_group_commit_records_sum", &[]) >= N as f64);
    assert!(after_produce.sum("herald_connections", &[]) >= 1.0);

    // Consume all of partition 0, then commit K on it as group "metrics-billing".
    let group = "metrics-billing";
    let consumer: BaseConsumer = broker.consumer(&[("group.id", group)]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("tpl");
    consumer.assign(&tpl).expect("assign");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got = 0;
    while got < N {
        assert!(Instant::now() < deadline, "consumed {got} of {N}");
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.expect("message");
            assert_eq!(m.partition(), 0);
            got += 1;
        }
    }
    const K: i64 = 10;
    let mut commit = TopicPartitionList::new();
    commit
        .add_partition_offset(topic, 0, Offset::Offset(K))
        .expect("tpl");
    consumer
        .commit(&commit, CommitMode::Sync)
        .expect("commit offset K");

    let after = scrape(&http);
    let records_out = after.value("herald_topic_records_out_total", &[("topic", topic)]);
    assert!(
        records_out >= N as f64,
        "records_out {records_out}: the consumer read {N}"
    );
    let bytes_out = after.value("herald_topic_bytes_out_total", &[("topic", topic)]);
    assert!(
        bytes_out >= bytes_in,
        "bytes_out {bytes_out} < bytes_in {bytes_in}"
    );
    assert_eq!(
        after.value("herald_topic_records_in_total", &[("topic", topic)]),
        N as f64,
        "consuming adds nothing in"
    );
    assert!(after.sum("herald_kafka_requests_total", &[("api", "Fetch")]) >= 1.0);
    assert!(after.sum("herald_kafka_requests_total", &[("api", "OffsetCommit")]) >= 1.0);
    let all_before = after_produce.sum("herald_kafka_requests_total", &[]);
    let all_after = after.sum("herald_kafka_requests_total", &[]);
    assert!(all_after > all_before, "request counters move with traffic");
    let at = [("group", group), ("topic", topic), ("partition", "0")];
    assert_eq!(
        after.value("herald_consumer_group_committed_offset", &at),
        K as f64
    );
    assert_eq!(
        after.value("herald_consumer_group_lag", &at),
        (N as i64 - K) as f64,
        "lag = high watermark - committed"
    );
    assert!(
        check_histograms(&after) >= 3,
        "Produce, Fetch and fsync histograms at least"
    );

    // A Produce to a partition that does not exist (sent raw: librdkafka
    // refuses it locally) is counted by its Kafka error name.
    unknown_partition_produce(&broker.addr, topic);
    let last = scrape(&http);
    assert_eq!(
        last.value(
            "herald_kafka_request_errors_total",
            &[("api", "Produce"), ("error", "UNKNOWN_TOPIC_OR_PARTITION")]
        ),
        1.0
    );
    assert_eq!(
        last.value("herald_topic_records_in_total", &[("topic", topic)]),
        N as f64,
        "nothing appended"
    );
    assert_eq!(
        last.value(
            "herald_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
}

/// One raw Produce v9 of a 1-record batch to partition 7 of `topic`.
fn unknown_partition_produce(addr: &str, topic: &str) {
    use herald_log::batch::build::{SimpleRecord, batch};
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;

    let record = SimpleRecord {
        key: None,
        value: Some(b"y"),
        timestamp_ms: 1,
    };
    let mut pd = PartitionProduceData::default();
    pd.index = 7;
    pd.records = Some(bytes::Bytes::from(batch(&[record], -1, -1, -1)));
    let mut td = TopicProduceData::default();
    td.name = TopicName(StrBytes::from_string(topic.to_string()));
    td.partition_data = vec![pd];
    let mut req = ProduceRequest::default();
    req.acks = -1;
    req.timeout_ms = 5000;
    req.topic_data = vec![td];
    let mut s = common::kafka_wire::connect(addr);
    s.write_all(&common::kafka_wire::frame(ApiKey::Produce, 9, 1, &req))
        .expect("send");
    let r: ProduceResponse =
        common::kafka_wire::read_response(&mut s, ApiKey::Produce, 9).expect("answered");
    assert_eq!(r.responses[0].partition_responses[0].error_code, 3);
}

#[test]
fn metrics_partition_series_are_capped_by_the_flag() {
    let broker = BrokerProcess::start(&["--metrics-partition-series-max", "3"]);
    let http = broker.http_addr();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(create_topic(&broker, "capped", 4));
    let e = scrape(&http);
    let series = e.0["herald_partition_high_watermark"].samples.len();
    assert_eq!(series, 3);
    assert_eq!(e.value("herald_partition_series_dropped", &[]), 1.0);
    assert_eq!(e.value("herald_partitions", &[]), 4.0);
}
