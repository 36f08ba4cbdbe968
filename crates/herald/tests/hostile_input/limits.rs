//! Values out of range in well-formed requests: each is answered with a
//! Kafka error code, and nothing is allocated or written for it.

use super::*;

// ---------------------------------------------------------------------------
// Counts and sizes a client chooses.

#[test]
fn create_topics_with_absurd_partition_counts_is_invalid_partitions() {
    let mut c = Case::start(&[]);
    let data = c.b.data_dir().to_path_buf();
    let before = tree(&data);
    let mut s = c.connect();
    let r = create_topics(
        &mut s,
        vec![
            creatable("huge", i32::MAX, &[]),
            creatable("zero", 0, &[]),
            creatable("negative", -5, &[]),
        ],
    );
    let codes: Vec<_> = r.topics.iter().map(|t| t.error_code).collect();
    assert_eq!(codes, vec![code::INVALID_PARTITIONS; 3], "{r:?}");
    assert_eq!(tree(&data), before, "nothing on disk");
    c.still_serves();
}

#[test]
fn create_partitions_to_i32_max_is_invalid_partitions() {
    let mut c = Case::start(&[]);
    let mut s = c.connect();
    create_topic(&mut s, "grow", 1, &[]);
    let mut req = CreatePartitionsRequest::default();
    req.timeout_ms = 5000;
    let mut t = create_partitions_request::CreatePartitionsTopic::default();
    t.name = topic_name("grow");
    t.count = i32::MAX;
    req.topics = vec![t];
    let r: CreatePartitionsResponse = call(&mut s, ApiKey::CreatePartitions, 3, &req);
    assert_eq!(r.results[0].error_code, code::INVALID_PARTITIONS);
    assert_eq!(partition_count(&mut s, "grow"), Some(1));
    c.still_serves();
}

#[test]
fn produce_with_acks_5_is_invalid_required_acks() {
    let mut c = Case::start(&[]);
    let mut s = c.connect();
    create_topic(&mut s, "acks", 1, &[]);
    let mut pd = PartitionProduceData::default();
    pd.records = Some(Bytes::from(one_record(b"v")));
    let mut td = TopicProduceData::default();
    td.name = topic_name("acks");
    td.partition_data = vec![pd];
    let mut req = ProduceRequest::default();
    req.acks = 5;
    req.timeout_ms = 1000;
    req.topic_data = vec![td];
    let r: ProduceResponse = call(&mut s, ApiKey::Produce, 9, &req);
    assert_eq!(
        r.responses[0].partition_responses[0].error_code,
        code::INVALID_REQUIRED_ACKS
    );
    assert_nothing_written(&mut s, "acks");
    c.still_serves();
}

#[test]
fn offset_commit_with_metadata_over_4096_bytes_is_offset_metadata_too_large() {
    let mut c = Case::start(&[]);
    let mut s = c.connect();
    create_topic(&mut s, "committed", 1, &[]);
    let mut p = offset_commit_request::OffsetCommitRequestPartition::default();
    p.partition_index = 0;
    p.committed_offset = 0;
    p.committed_metadata = Some(sb(&"m".repeat(4097)));
    let mut t = offset_commit_request::OffsetCommitRequestTopic::default();
    t.name = topic_name("committed");
    t.partitions = vec![p];
    // A standalone commit (generation -1, no member), as an admin client makes.
    let mut req = OffsetCommitRequest::default();
    req.group_id = GroupId(sb("g"));
    req.generation_id_or_member_epoch = -1;
    req.topics = vec![t];
    let r: OffsetCommitResponse = call(&mut s, ApiKey::OffsetCommit, 8, &req);
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        code::OFFSET_METADATA_TOO_LARGE
    );
    c.still_serves();
}

#[test]
fn join_group_with_too_many_protocols_is_invalid_request() {
    let mut c = Case::start(&[]);
    let mut s = c.connect();
    let mut req = JoinGroupRequest::default();
    req.group_id = GroupId(sb("many"));
    req.session_timeout_ms = 10_000;
    req.rebalance_timeout_ms = 10_000;
    req.protocol_type = sb("consumer");
    req.protocols = (0..10_000)
        .map(|i| {
            let mut p = join_group_request::JoinGroupRequestProtocol::default();
            p.name = sb(&format!("p{i}"));
            p
        })
        .collect();
    let r: JoinGroupResponse = call(&mut s, ApiKey::JoinGroup, 9, &req);
    assert_eq!(r.error_code, code::INVALID_REQUEST);
    c.still_serves();
}
