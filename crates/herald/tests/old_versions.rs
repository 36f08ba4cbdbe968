//! The old API versions Kafka 3.x served and 4.0 removed (KIP-896), as old
//! tools send them (Burrow: ListOffsets v0; sarama's default config:
//! OffsetCommit v1, Metadata v0; old kafka-go: CreateTopics v0), at the wire
//! level against a real broker.

mod common;

use std::io::Write;
use std::net::TcpStream;

use bytes::Bytes;
use common::BrokerProcess;
use common::kafka_wire::{connect, creatable, frame, read_response};
use herald_log::batch::build;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    ListOffsetsRequest, ListOffsetsResponse, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

fn create_topic(s: &mut TcpStream, name: &str, partitions: i32) {
    let mut req = CreateTopicsRequest::default();
    req.topics = vec![creatable(name, partitions, &[])];
    req.timeout_ms = 5000;
    s.write_all(&frame(ApiKey::CreateTopics, 7, 1, &req))
        .expect("write");
    let r: CreateTopicsResponse =
        read_response(s, ApiKey::CreateTopics, 7).expect("CreateTopics answered");
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
}

/// Produces records with the given timestamps to partition 0 (Produce v9).
fn produce(s: &mut TcpStream, topic: &str, timestamps_ms: &[i64]) {
    let records: Vec<build::SimpleRecord<'_>> = timestamps_ms
        .iter()
        .map(|t| build::SimpleRecord {
            key: None,
            value: Some(b"v"),
            timestamp_ms: *t,
        })
        .collect();
    let mut pd = PartitionProduceData::default();
    pd.index = 0;
    pd.records = Some(Bytes::from(build::batch(&records, -1, -1, -1)));
    let mut td = TopicProduceData::default();
    td.name = topic_name(topic);
    td.partition_data = vec![pd];
    let mut req = ProduceRequest::default();
    req.acks = -1;
    req.timeout_ms = 5000;
    req.topic_data = vec![td];
    s.write_all(&frame(ApiKey::Produce, 9, 2, &req))
        .expect("write");
    let r: ProduceResponse = read_response(s, ApiKey::Produce, 9).expect("Produce answered");
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
}

/// One ListOffsets v0 question: (error code, old_style_offsets).
fn list_offsets_v0(
    s: &mut TcpStream,
    topic: &str,
    partition: i32,
    timestamp: i64,
    max_num_offsets: i32,
) -> (i16, Vec<i64>) {
    let mut p = ListOffsetsPartition::default();
    p.partition_index = partition;
    p.timestamp = timestamp;
    p.max_num_offsets = max_num_offsets;
    let mut t = ListOffsetsTopic::default();
    t.name = topic_name(topic);
    t.partitions = vec![p];
    let mut req = ListOffsetsRequest::default();
    req.replica_id = (-1).into();
    req.topics = vec![t];
    s.write_all(&frame(ApiKey::ListOffsets, 0, 3, &req))
        .expect("write");
    let r: ListOffsetsResponse =
        read_response(s, ApiKey::ListOffsets, 0).expect("ListOffsets v0 answered");
    let pr = &r.topics[0].partitions[0];
    assert_eq!(pr.partition_index, partition);
    (pr.error_code, pr.old_style_offsets.clone())
}

#[test]
fn list_offsets_v0_answers_old_style_offsets_as_kafka_3() {
    let b = BrokerProcess::start(&[]);
    let mut s = connect(&b.addr);

    // ApiVersions advertises ListOffsets from v0.
    s.write_all(&frame(
        ApiKey::ApiVersions,
        3,
        0,
        &ApiVersionsRequest::default(),
    ))
    .expect("write");
    let v: ApiVersionsResponse =
        read_response(&mut s, ApiKey::ApiVersions, 3).expect("ApiVersions answered");
    let lo = v
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::ListOffsets as i16)
        .expect("ListOffsets advertised");
    assert_eq!(lo.min_version, 0);

    create_topic(&mut s, "old-offsets", 1);
    // An empty partition: the log start only, whatever is asked.
    assert_eq!(
        list_offsets_v0(&mut s, "old-offsets", 0, -1, 10),
        (0, vec![0])
    );
    assert_eq!(
        list_offsets_v0(&mut s, "old-offsets", 0, -2, 10),
        (0, vec![0])
    );

    produce(&mut s, "old-offsets", &[1_000, 2_000, 3_000]);

    // Latest (-1): the log end offset, then the log start, newest first, up to
    // max_num_offsets (Burrow and sarama ask for 1).
    assert_eq!(
        list_offsets_v0(&mut s, "old-offsets", 0, -1, 10),
        (0, vec![3, 0])
    );
    assert_eq!(
        list_offsets_v0(&mut s, "old-offsets", 0, -1, 1),
        (0, vec![3])
    );
    // Earliest (-2): the log start only.
    assert_eq!(
        list_offsets_v0(&mut s, "old-offsets", 0, -2, 10),
        (0, vec![0])
    );
    // A time: the first record at or after it, then the log start.
    assert_eq!(
        list_offsets_v0(&mut s, "old-offsets", 0, 2_000, 10),
        (0, vec![1, 0])
    );
    assert_eq!(
        list_offsets_v0(&mut s, "old-offsets", 0, 1_500, 1),
        (0, vec![1])
    );
    assert_eq!(
        list_offsets_v0(&mut s, "old-offsets", 0, 0, 10),
        (0, vec![0])
    );
    // After every record: the log end.
    assert_eq!(
        list_offsets_v0(&mut s, "old-offsets", 0, 9_000, 10),
        (0, vec![3, 0])
    );
    // Other negative timestamps matched no segment in Kafka 3.x: an empty list.
    assert_eq!(
        list_offsets_v0(&mut s, "old-offsets", 0, -3, 10),
        (0, vec![])
    );
    // Zero offsets asked: none given.
    assert_eq!(
        list_offsets_v0(&mut s, "old-offsets", 0, -1, 0),
        (0, vec![])
    );
    // A negative count is refused (Kafka 3.x failed with UNKNOWN_SERVER_ERROR).
    assert_eq!(list_offsets_v0(&mut s, "old-offsets", 0, -1, -1).0, 42);
    // Unknown partition and topic.
    assert_eq!(
        list_offsets_v0(&mut s, "old-offsets", 7, -1, 1),
        (3, vec![])
    );
    assert_eq!(
        list_offsets_v0(&mut s, "no-such-topic", 0, -1, 1),
        (3, vec![])
    );
}
