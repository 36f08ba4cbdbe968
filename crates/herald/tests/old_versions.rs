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

fn commit(
    s: &mut TcpStream,
    version: i16,
    group: &str,
    generation: i32,
    member: &str,
    topic: &str,
    offset: i64,
) -> i16 {
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::{GroupId, OffsetCommitRequest, OffsetCommitResponse};
    let mut p = OffsetCommitRequestPartition::default();
    p.partition_index = 0;
    p.committed_offset = offset;
    p.committed_metadata = Some(StrBytes::from_string(format!("v{version}")));
    let mut t = OffsetCommitRequestTopic::default();
    t.name = topic_name(topic);
    t.partitions = vec![p];
    let mut req = OffsetCommitRequest::default();
    req.group_id = GroupId(StrBytes::from_string(group.to_string()));
    req.generation_id_or_member_epoch = generation;
    req.member_id = StrBytes::from_string(member.to_string());
    req.topics = vec![t];
    s.write_all(&frame(ApiKey::OffsetCommit, version, 4, &req))
        .expect("write");
    let r: OffsetCommitResponse =
        read_response(s, ApiKey::OffsetCommit, version).expect("OffsetCommit answered");
    r.topics[0].partitions[0].error_code
}

/// OffsetFetch of partition 0: (error, offset, metadata).
fn fetch_offset(
    s: &mut TcpStream,
    version: i16,
    group: &str,
    topic: &str,
) -> (i16, i64, Option<String>) {
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse};
    let mut t = OffsetFetchRequestTopic::default();
    t.name = topic_name(topic);
    t.partition_indexes = vec![0];
    let mut req = OffsetFetchRequest::default();
    req.group_id = GroupId(StrBytes::from_string(group.to_string()));
    req.topics = Some(vec![t]);
    s.write_all(&frame(ApiKey::OffsetFetch, version, 5, &req))
        .expect("write");
    let r: OffsetFetchResponse =
        read_response(s, ApiKey::OffsetFetch, version).expect("OffsetFetch answered");
    let p = &r.topics[0].partitions[0];
    (
        p.error_code,
        p.committed_offset,
        p.metadata.as_ref().map(|m| m.to_string()),
    )
}

#[test]
fn offset_commit_v0_v1_read_back_with_offset_fetch_v0_v1() {
    let b = BrokerProcess::start(&[]);
    let mut s = connect(&b.addr);
    create_topic(&mut s, "old-commits", 1);

    // v0: no generation, no member (a standalone commit).
    assert_eq!(commit(&mut s, 0, "g0", -1, "", "old-commits", 7), 0);
    assert_eq!(
        fetch_offset(&mut s, 0, "g0", "old-commits"),
        (0, 7, Some("v0".into()))
    );
    assert_eq!(
        fetch_offset(&mut s, 1, "g0", "old-commits"),
        (0, 7, Some("v0".into()))
    );
    // v1 as sarama sends it outside a group: generation -1, member "",
    // commit_timestamp -1 (the broker's time).
    assert_eq!(commit(&mut s, 1, "g1", -1, "", "old-commits", 11), 0);
    assert_eq!(
        fetch_offset(&mut s, 0, "g1", "old-commits"),
        (0, 11, Some("v1".into()))
    );
    // A newer version reads them too, and a v0 commit replaces a v1 one.
    assert_eq!(
        fetch_offset(&mut s, 7, "g1", "old-commits").1,
        11,
        "OffsetFetch v7"
    );
    assert_eq!(commit(&mut s, 0, "g1", -1, "", "old-commits", 12), 0);
    assert_eq!(fetch_offset(&mut s, 1, "g1", "old-commits").1, 12);
    // Nothing committed: -1, no error.
    assert_eq!(fetch_offset(&mut s, 0, "nobody", "old-commits").1, -1);
    // An unknown topic is refused per partition.
    assert_eq!(commit(&mut s, 0, "g0", -1, "", "no-such-topic", 1), 3);
}

#[test]
fn old_group_api_versions_join_sync_heartbeat_commit_leave() {
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::messages::{
        GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
        LeaveGroupRequest, LeaveGroupResponse, SyncGroupRequest, SyncGroupResponse,
    };
    let b = BrokerProcess::start(&[]);
    let mut s = connect(&b.addr);
    create_topic(&mut s, "old-group", 1);
    let group = GroupId(StrBytes::from_static_str("old-g"));

    // JoinGroup v0: no rebalance timeout (the session timeout serves).
    let mut j = JoinGroupRequest::default();
    j.group_id = group.clone();
    j.session_timeout_ms = 10_000;
    j.member_id = StrBytes::from_static_str("");
    j.protocol_type = StrBytes::from_static_str("consumer");
    let mut p = JoinGroupRequestProtocol::default();
    p.name = StrBytes::from_static_str("range");
    p.metadata = Bytes::from_static(b"\x00\x00\x00\x00\x00\x01\x00\x09old-group\xff\xff\xff\xff");
    j.protocols = vec![p];
    s.write_all(&frame(ApiKey::JoinGroup, 0, 10, &j))
        .expect("write");
    let jr: JoinGroupResponse = read_response(&mut s, ApiKey::JoinGroup, 0).expect("JoinGroup");
    assert_eq!(jr.error_code, 0);
    assert_eq!(jr.leader, jr.member_id);
    let generation = jr.generation_id;
    assert!(generation >= 1);

    let mut sg = SyncGroupRequest::default();
    sg.group_id = group.clone();
    sg.generation_id = generation;
    sg.member_id = jr.member_id.clone();
    s.write_all(&frame(ApiKey::SyncGroup, 0, 11, &sg))
        .expect("write");
    let sr: SyncGroupResponse = read_response(&mut s, ApiKey::SyncGroup, 0).expect("SyncGroup");
    assert_eq!(sr.error_code, 0);

    let mut hb = HeartbeatRequest::default();
    hb.group_id = group.clone();
    hb.generation_id = generation;
    hb.member_id = jr.member_id.clone();
    s.write_all(&frame(ApiKey::Heartbeat, 0, 12, &hb))
        .expect("write");
    let hr: HeartbeatResponse = read_response(&mut s, ApiKey::Heartbeat, 0).expect("Heartbeat");
    assert_eq!(hr.error_code, 0);

    // OffsetCommit v1 with the generation (sarama's consumer group), then a
    // stale generation and a v0 (standalone) commit to a live group refused.
    let member = jr.member_id.to_string();
    assert_eq!(
        commit(&mut s, 1, "old-g", generation, &member, "old-group", 5),
        0
    );
    assert_eq!(fetch_offset(&mut s, 1, "old-g", "old-group").1, 5);
    assert_eq!(
        commit(&mut s, 1, "old-g", generation + 1, &member, "old-group", 6),
        22,
        "ILLEGAL_GENERATION"
    );
    assert_ne!(commit(&mut s, 0, "old-g", -1, "", "old-group", 6), 0);
    assert_eq!(fetch_offset(&mut s, 0, "old-g", "old-group").1, 5);

    let mut l = LeaveGroupRequest::default();
    l.group_id = group;
    l.member_id = jr.member_id.clone();
    s.write_all(&frame(ApiKey::LeaveGroup, 0, 13, &l))
        .expect("write");
    let lr: LeaveGroupResponse = read_response(&mut s, ApiKey::LeaveGroup, 0).expect("LeaveGroup");
    assert_eq!(lr.error_code, 0);
    // The group is empty now: a standalone v0 commit is accepted again.
    assert_eq!(commit(&mut s, 0, "old-g", -1, "", "old-group", 8), 0);
}

#[test]
fn create_topics_v0_v1_delete_topics_v0_metadata_v0() {
    use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};
    let b = BrokerProcess::start(&[]);
    let mut s = connect(&b.addr);

    let create = |s: &mut TcpStream, version: i16, name: &str, validate_only: bool| {
        let mut req = CreateTopicsRequest::default();
        req.topics = vec![creatable(name, 2, &[])];
        req.timeout_ms = 5000;
        req.validate_only = validate_only;
        s.write_all(&frame(ApiKey::CreateTopics, version, 20, &req))
            .expect("write");
        let r: CreateTopicsResponse =
            read_response(s, ApiKey::CreateTopics, version).expect("CreateTopics answered");
        (
            r.topics[0].error_code,
            r.topics[0].error_message.as_ref().map(|m| m.to_string()),
        )
    };
    assert_eq!(create(&mut s, 0, "made-v0", false), (0, None));
    // Again: TOPIC_ALREADY_EXISTS; v0 has no message to carry.
    assert_eq!(create(&mut s, 0, "made-v0", false), (36, None));
    let (code, message) = create(&mut s, 1, "made-v0", false);
    assert_eq!(code, 36);
    assert!(message.is_some(), "v1 carries the error message");
    // v1 validate_only: checked, not created.
    assert_eq!(create(&mut s, 1, "only-checked", true).0, 0);
    assert_eq!(create(&mut s, 1, "made-v1", false).0, 0);

    // v0's empty list is every topic, Kafka's internal ones included.
    assert_eq!(
        metadata_v0(&mut s),
        vec![
            ("__consumer_offsets".to_string(), 1),
            ("__transaction_state".to_string(), 1),
            ("made-v0".to_string(), 2),
            ("made-v1".to_string(), 2)
        ]
    );

    // DeleteTopics v0.
    let mut req = DeleteTopicsRequest::default();
    req.topic_names = vec![topic_name("made-v0"), topic_name("never-made")];
    req.timeout_ms = 5000;
    s.write_all(&frame(ApiKey::DeleteTopics, 0, 22, &req))
        .expect("write");
    let r: DeleteTopicsResponse =
        read_response(&mut s, ApiKey::DeleteTopics, 0).expect("DeleteTopics v0");
    let mut codes: Vec<(String, i16)> = r
        .responses
        .iter()
        .map(|t| (t.name.as_ref().unwrap().to_string(), t.error_code))
        .collect();
    codes.sort();
    assert_eq!(
        codes,
        vec![("made-v0".to_string(), 0), ("never-made".to_string(), 3)]
    );
    assert_eq!(
        metadata_v0(&mut s),
        vec![
            ("__consumer_offsets".to_string(), 1),
            ("__transaction_state".to_string(), 1),
            ("made-v1".to_string(), 2)
        ]
    );
}

/// Metadata v0 for every topic (v0's empty list): (name, partitions), sorted.
fn metadata_v0(s: &mut TcpStream) -> Vec<(String, usize)> {
    use kafka_protocol::messages::{MetadataRequest, MetadataResponse};
    let mut req = MetadataRequest::default();
    req.topics = Some(vec![]);
    s.write_all(&frame(ApiKey::Metadata, 0, 21, &req))
        .expect("write");
    let r: MetadataResponse = read_response(s, ApiKey::Metadata, 0).expect("Metadata v0");
    let mut t: Vec<(String, usize)> = r
        .topics
        .iter()
        .map(|t| (t.name.as_ref().unwrap().to_string(), t.partitions.len()))
        .collect();
    t.sort();
    t
}

/// Cluster mode (three brokers on PostgreSQL and S3): a topic made with
/// CreateTopics v0 on one broker is listed by Metadata v0 on the others,
/// ListOffsets v0 on another broker answers from the shared log, v0/v1
/// commits are kept by the group's coordinator and read back with
/// OffsetFetch v0 from the broker that takes the group over when it is
/// killed, and DeleteTopics v0 removes the topic everywhere.
#[test]
fn old_versions_in_cluster_mode() {
    use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};
    let mut cluster = common::cluster::Cluster::start(3, 25);
    let addr = |c: &common::cluster::Cluster, id: i32| c.brokers[(id - 1) as usize].addr.clone();
    let mut s1 = connect(&addr(&cluster, 1));

    let mut req = CreateTopicsRequest::default();
    req.topics = vec![creatable("old-cluster", 1, &[])];
    req.timeout_ms = 5000;
    s1.write_all(&frame(ApiKey::CreateTopics, 0, 20, &req))
        .expect("write");
    let r: CreateTopicsResponse =
        read_response(&mut s1, ApiKey::CreateTopics, 0).expect("CreateTopics v0 answered");
    assert_eq!(r.topics[0].error_code, 0);
    // Internal topics are the single node's (its local group log).
    let user_topics = |s: &mut TcpStream| -> Vec<(String, usize)> {
        metadata_v0(s)
            .into_iter()
            .filter(|(n, _)| !n.starts_with("__"))
            .collect()
    };
    for id in [2, 3] {
        let mut s = connect(&addr(&cluster, id));
        assert_eq!(
            user_topics(&mut s),
            vec![("old-cluster".to_string(), 1)],
            "broker {id}"
        );
    }

    produce(&mut s1, "old-cluster", &[1_000, 2_000, 3_000]);
    let mut s3 = connect(&addr(&cluster, 3));
    assert_eq!(
        list_offsets_v0(&mut s3, "old-cluster", 0, -1, 10),
        (0, vec![3, 0])
    );
    assert_eq!(
        list_offsets_v0(&mut s3, "old-cluster", 0, -2, 10),
        (0, vec![0])
    );
    assert_eq!(
        list_offsets_v0(&mut s3, "old-cluster", 0, 2_000, 10),
        (0, vec![1, 0])
    );

    // Commits go to the group's coordinator; the others send the client there.
    let first = common::cluster::Cluster::coordinator_among("old-cg", &[1, 2, 3]);
    let other = (1..=3).find(|id| *id != first).expect("another broker");
    let mut c = connect(&addr(&cluster, first));
    // COORDINATOR_LOAD_IN_PROGRESS while the brokers that just started wait
    // for each other to see them (clients retry it).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let code = commit(&mut c, 0, "old-cg", -1, "", "old-cluster", 2);
        if code != 14 {
            assert_eq!(code, 0);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still loading");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        fetch_offset(&mut c, 0, "old-cg", "old-cluster"),
        (0, 2, Some("v0".into()))
    );
    assert_eq!(commit(&mut c, 1, "old-cg", -1, "", "old-cluster", 3), 0);
    let mut o = connect(&addr(&cluster, other));
    assert_eq!(
        commit(&mut o, 0, "old-cg", -1, "", "old-cluster", 9),
        16,
        "NOT_COORDINATOR"
    );
    // OffsetFetch v0 has no top-level error: the partition carries it.
    assert_eq!(
        fetch_offset(&mut o, 0, "old-cg", "old-cluster"),
        (16, -1, Some(String::new()))
    );

    // SIGKILL the coordinator: the next one reads the commit back from the
    // cluster database once the killed broker's lease lapses.
    cluster.brokers[(first - 1) as usize].kill9();
    let rest: Vec<i32> = (1..=3).filter(|id| *id != first).collect();
    let second = common::cluster::Cluster::coordinator_among("old-cg", &rest);
    let mut n = connect(&addr(&cluster, second));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let got = fetch_offset(&mut n, 0, "old-cg", "old-cluster");
        if got.0 == 0 {
            assert_eq!(got, (0, 3, Some("v1".into())), "read from broker {second}");
            break;
        }
        // NOT_COORDINATOR until the lease lapses, then COORDINATOR_LOAD_IN_PROGRESS.
        assert!([14, 16].contains(&got.0), "{got:?}");
        assert!(
            std::time::Instant::now() < deadline,
            "never answered: {got:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    let mut req = DeleteTopicsRequest::default();
    req.topic_names = vec![topic_name("old-cluster")];
    req.timeout_ms = 5000;
    n.write_all(&frame(ApiKey::DeleteTopics, 0, 22, &req))
        .expect("write");
    let r: DeleteTopicsResponse =
        read_response(&mut n, ApiKey::DeleteTopics, 0).expect("DeleteTopics v0");
    assert_eq!(r.responses[0].error_code, 0);
    for id in rest {
        let mut s = connect(&addr(&cluster, id));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !user_topics(&mut s).is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "broker {id} still lists it"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

/// A request frame with a v1 header and a hand-written body (for versions
/// kafka-protocol has no schema for).
fn raw_frame(key: ApiKey, version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&(key as i16).to_be_bytes());
    f.extend_from_slice(&version.to_be_bytes());
    f.extend_from_slice(&correlation_id.to_be_bytes());
    f.extend_from_slice(&4i16.to_be_bytes());
    f.extend_from_slice(b"test");
    f.extend_from_slice(body);
    let mut out = (f.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&f);
    out
}

fn read_raw(s: &mut TcpStream) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut size = [0u8; 4];
    s.read_exact(&mut size).ok()?;
    let mut buf = vec![0u8; i32::from_be_bytes(size) as usize];
    s.read_exact(&mut buf).ok()?;
    Some(buf)
}

fn topic_array(name: &str, partitions: &[(i32, &[u8])]) -> Vec<u8> {
    let mut b = 1i32.to_be_bytes().to_vec();
    b.extend_from_slice(&(name.len() as i16).to_be_bytes());
    b.extend_from_slice(name.as_bytes());
    b.extend_from_slice(&(partitions.len() as i32).to_be_bytes());
    for (p, rest) in partitions {
        b.extend_from_slice(&p.to_be_bytes());
        b.extend_from_slice(rest);
    }
    b
}

#[test]
fn message_set_versions_get_unsupported_version_others_a_closed_connection() {
    let b = BrokerProcess::start(&[]);
    let mut s = connect(&b.addr);
    create_topic(&mut s, "old-format", 2);

    // Produce v2 (acks=1), one partition with a 12-byte MessageSet.
    for version in 0..=2i16 {
        let mut body = 1i16.to_be_bytes().to_vec(); // acks
        body.extend_from_slice(&5000i32.to_be_bytes());
        let mut set = 12i32.to_be_bytes().to_vec();
        set.extend_from_slice(&[0u8; 12]);
        body.extend_from_slice(&topic_array("old-format", &[(1, &set)]));
        s.write_all(&raw_frame(
            ApiKey::Produce,
            version,
            40 + version as i32,
            &body,
        ))
        .expect("write");
        let r = read_raw(&mut s).expect("Produce answered");
        // correlation id, topics[1]: name, partitions[1]: index 1, error 35,
        // base_offset -1, (v2) log_append_time -1; (v1+) throttle 0.
        let mut want = (40 + version as i32).to_be_bytes().to_vec();
        want.extend_from_slice(&1i32.to_be_bytes());
        want.extend_from_slice(&10i16.to_be_bytes());
        want.extend_from_slice(b"old-format");
        want.extend_from_slice(&1i32.to_be_bytes());
        want.extend_from_slice(&1i32.to_be_bytes());
        want.extend_from_slice(&35i16.to_be_bytes());
        want.extend_from_slice(&(-1i64).to_be_bytes());
        if version >= 2 {
            want.extend_from_slice(&(-1i64).to_be_bytes());
        }
        if version >= 1 {
            want.extend_from_slice(&0i32.to_be_bytes());
        }
        assert_eq!(r, want, "Produce v{version}");
    }

    // Fetch v3 and v0.
    for version in [0i16, 3] {
        let mut body = (-1i32).to_be_bytes().to_vec(); // replica
        body.extend_from_slice(&100i32.to_be_bytes()); // max wait
        body.extend_from_slice(&1i32.to_be_bytes()); // min bytes
        if version >= 3 {
            body.extend_from_slice(&(1i32 << 20).to_be_bytes());
        }
        let mut part = 0i64.to_be_bytes().to_vec();
        part.extend_from_slice(&(1i32 << 20).to_be_bytes());
        body.extend_from_slice(&topic_array("old-format", &[(0, &part)]));
        s.write_all(&raw_frame(ApiKey::Fetch, version, 50, &body))
            .expect("write");
        let r = read_raw(&mut s).expect("Fetch answered");
        let mut want = 50i32.to_be_bytes().to_vec();
        if version >= 1 {
            want.extend_from_slice(&0i32.to_be_bytes()); // throttle
        }
        want.extend_from_slice(&1i32.to_be_bytes());
        want.extend_from_slice(&10i16.to_be_bytes());
        want.extend_from_slice(b"old-format");
        want.extend_from_slice(&1i32.to_be_bytes());
        want.extend_from_slice(&0i32.to_be_bytes());
        want.extend_from_slice(&35i16.to_be_bytes());
        want.extend_from_slice(&(-1i64).to_be_bytes());
        want.extend_from_slice(&0i32.to_be_bytes());
        assert_eq!(r, want, "Fetch v{version}");
    }

    // The connection still serves the versions Herald knows.
    assert_eq!(
        list_offsets_v0(&mut s, "old-format", 0, -1, 1),
        (0, vec![0])
    );

    // A truncated MessageSet request: closed, not answered.
    let mut t = connect(&b.addr);
    let mut body = 1i16.to_be_bytes().to_vec();
    body.extend_from_slice(&5000i32.to_be_bytes());
    body.extend_from_slice(&1000i32.to_be_bytes()); // 1000 topics in 0 bytes
    t.write_all(&raw_frame(ApiKey::Produce, 2, 60, &body))
        .expect("write");
    assert!(common::kafka_wire::closed(&mut t), "truncated Produce v2");

    // Produce v2 with acks=0: no answer may be sent; closed.
    let mut t = connect(&b.addr);
    let mut body = 0i16.to_be_bytes().to_vec();
    body.extend_from_slice(&5000i32.to_be_bytes());
    body.extend_from_slice(&topic_array("old-format", &[(0, &0i32.to_be_bytes())]));
    t.write_all(&raw_frame(ApiKey::Produce, 2, 61, &body))
        .expect("write");
    assert!(common::kafka_wire::closed(&mut t), "acks=0 Produce v2");

    // A version above the maximum has no schema to answer in: closed, and
    // the broker says why.
    let mut t = connect(&b.addr);
    t.write_all(&raw_frame(ApiKey::ListOffsets, 99, 62, &[]))
        .expect("write");
    assert!(common::kafka_wire::closed(&mut t), "ListOffsets v99");
    assert!(
        b.wait_log(&["closing connection", "unsupported version 99 of API 2"])
            .is_some()
    );
    // Fetch v4 still works on a new connection (the broker is fine).
    assert_eq!(
        list_offsets_v0(&mut connect(&b.addr), "old-format", 1, -2, 1),
        (0, vec![0])
    );
}
