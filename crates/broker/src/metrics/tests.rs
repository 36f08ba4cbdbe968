//! `render` against a broker served in-process, driven over its Kafka port.

use std::collections::BTreeMap;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, ProduceRequest, ProduceResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use herald_log::batch::build::{SimpleRecord, batch};

async fn call<Q: Encodable, R: Decodable>(
    s: &mut TcpStream,
    key: ApiKey,
    version: i16,
    req: &Q,
) -> R {
    let mut h = RequestHeader::default();
    h.request_api_key = key as i16;
    h.request_api_version = version;
    h.correlation_id = 7;
    h.client_id = Some(StrBytes::from_static_str("metrics-test"));
    let mut body = BytesMut::new();
    h.encode(&mut body, key.request_header_version(version))
        .expect("header");
    req.encode(&mut body, version).expect("body");
    s.write_all(&(body.len() as i32).to_be_bytes())
        .await
        .expect("write");
    s.write_all(&body).await.expect("write");
    let size = s.read_i32().await.expect("size") as usize;
    let mut buf = vec![0u8; size];
    s.read_exact(&mut buf).await.expect("read");
    let mut b = Bytes::from(buf);
    b.get_i32();
    if key.response_header_version(version) >= 1 {
        b.get_u8();
    }
    R::decode(&mut b, version).expect("decode")
}

/// The value of the sample written exactly as `series` (name and labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn render_counts_what_the_kafka_port_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = crate::BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        ..Default::default()
    };
    let running = crate::start(config).await.expect("start");
    let broker = running.broker.clone();
    broker
        .topics
        .create("m", 2, BTreeMap::new())
        .await
        .expect("create");
    let mut s = TcpStream::connect(running.addr).await.expect("connect");

    let records: Vec<SimpleRecord> = (0..3)
        .map(|_| SimpleRecord {
            key: None,
            value: Some(b"hello"),
            timestamp_ms: 1,
        })
        .collect();
    let payload = Bytes::from(batch(&records, -1, -1, -1));
    let mut pd = PartitionProduceData::default();
    pd.index = 0;
    pd.records = Some(payload.clone());
    let mut td = TopicProduceData::default();
    td.name = TopicName(StrBytes::from_static_str("m"));
    td.partition_data = vec![pd];
    let mut unknown = PartitionProduceData::default();
    unknown.index = 9;
    unknown.records = Some(payload.clone());
    td.partition_data.push(unknown);
    let mut produce = ProduceRequest::default();
    produce.acks = -1;
    produce.timeout_ms = 5000;
    produce.topic_data = vec![td];
    let r: ProduceResponse = call(&mut s, ApiKey::Produce, 9, &produce).await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    assert_eq!(r.responses[0].partition_responses[1].error_code, 3);

    let mut fp = FetchPartition::default();
    fp.partition = 0;
    fp.fetch_offset = 0;
    fp.partition_max_bytes = 1 << 20;
    let mut ft = FetchTopic::default();
    ft.topic = TopicName(StrBytes::from_static_str("m"));
    ft.partitions = vec![fp];
    let mut fetch = FetchRequest::default();
    fetch.max_bytes = 1 << 20;
    fetch.topics = vec![ft];
    let f: FetchResponse = call(&mut s, ApiKey::Fetch, 11, &fetch).await;
    assert!(
        f.responses[0].partitions[0]
            .records
            .as_ref()
            .is_some_and(|r| !r.is_empty())
    );

    let text = super::render(&broker).await;
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert_eq!(
        sample(&text, "herald_topic_records_in_total{topic=\"m\"}"),
        Some(3.0)
    );
    assert_eq!(
        sample(&text, "herald_topic_bytes_in_total{topic=\"m\"}"),
        Some(payload.len() as f64)
    );
    assert_eq!(
        sample(&text, "herald_topic_records_out_total{topic=\"m\"}"),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &text,
            "herald_kafka_requests_total{api=\"Produce\",version=\"9\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "herald_kafka_request_errors_total{api=\"Produce\",error=\"UNKNOWN_TOPIC_OR_PARTITION\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "herald_kafka_request_duration_seconds_count{api=\"Fetch\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "herald_partition_high_watermark{topic=\"m\",partition=\"0\"}"
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &text,
            "herald_partition_log_end_offset{topic=\"m\",partition=\"1\"}"
        ),
        Some(0.0)
    );
    assert_eq!(sample(&text, "herald_partitions"), Some(2.0));
    assert_eq!(
        sample(&text, "herald_connections{listener=\"PLAINTEXT\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "herald_produce_durable_duration_seconds_count"),
        Some(1.0)
    );
    assert!(
        sample(&text, "herald_log_fsync_duration_seconds_count").is_some_and(|n| n >= 1.0),
        "{text}"
    );
    let t = broker.metrics.traffic_totals();
    assert_eq!((t.records_in, t.records_out), (3, 3));
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_series_are_capped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = crate::BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        metrics_partition_series_max: 3,
        metrics_enabled: false,
        ..Default::default()
    };
    let running = crate::start(config).await.expect("start");
    let broker = running.broker.clone();
    broker
        .topics
        .create("a", 2, BTreeMap::new())
        .await
        .expect("create");
    broker
        .topics
        .create("b", 2, BTreeMap::new())
        .await
        .expect("create");
    let text = super::render(&broker).await;
    let series = text
        .lines()
        .filter(|l| l.starts_with("herald_partition_high_watermark{"))
        .count();
    assert_eq!(series, 3, "{text}");
    assert_eq!(sample(&text, "herald_partition_series_dropped"), Some(1.0));
    assert_eq!(sample(&text, "herald_partitions"), Some(4.0));
    running.shutdown().await;
}
