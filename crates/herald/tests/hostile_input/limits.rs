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

// ---------------------------------------------------------------------------
// Extreme offsets, epochs and timestamps: arithmetic on them must not panic.

#[test]
fn extreme_offsets_timestamps_and_epochs_are_answered() {
    // The codes are Kafka's for each: out-of-range offsets, unknown epochs,
    // invalid special timestamps, timeouts outside the group bounds.
    let mut c = Case::start(&[]);
    let mut s = c.connect();
    create_topic(&mut s, "ext", 1, &[]);
    assert_eq!(produce_one(&mut s, "ext", one_record(b"v")), 0);
    for off in [i64::MAX, i64::MIN, -1, -2, 1 << 62] {
        let mut req = fetch_req_for(&[("ext", 0)], i32::MIN);
        req.topics[0].partitions[0].fetch_offset = off;
        req.topics[0].partitions[0].partition_max_bytes = i32::MIN;
        req.topics[0].partitions[0].log_start_offset = off;
        req.max_wait_ms = i32::MIN;
        req.min_bytes = i32::MAX;
        let r: FetchResponse = call(&mut s, ApiKey::Fetch, 12, &req);
        let code = r.responses[0].partitions[0].error_code;
        assert_eq!(code, code::OFFSET_OUT_OF_RANGE, "fetch offset {off}");
    }
    // ListOffsets v8: (timestamp, current leader epoch) -> (code, offset).
    let cases: &[(i64, i32, i16, i64)] = &[
        (i64::MAX, -1, code::NONE, -1), // no record that late
        (i64::MIN, -1, code::INVALID_REQUEST, -1),
        (-3, -1, code::NONE, 0),             // KIP-734 max timestamp
        (-4, -1, code::NONE, 0),             // KIP-405 earliest local
        (-5, -1, code::INVALID_REQUEST, -1), // KIP-1005 latest tiered: from v9
        (-99, -1, code::INVALID_REQUEST, -1),
        (-1, i32::MAX, code::UNKNOWN_LEADER_EPOCH, -1),
        (i64::MIN, i32::MAX, code::UNKNOWN_LEADER_EPOCH, -1),
    ];
    for &(ts, epoch, want, offset) in cases {
        let mut p = list_offsets_request::ListOffsetsPartition::default();
        p.timestamp = ts;
        p.current_leader_epoch = epoch;
        let mut t = list_offsets_request::ListOffsetsTopic::default();
        t.name = topic_name("ext");
        t.partitions = vec![p];
        let mut req = ListOffsetsRequest::default();
        req.replica_id = BrokerId(-1);
        req.isolation_level = 7;
        req.topics = vec![t];
        let r: ListOffsetsResponse = call(&mut s, ApiKey::ListOffsets, 8, &req);
        let p = &r.topics[0].partitions[0];
        assert_eq!(
            (p.error_code, p.offset),
            (want, offset),
            "ts {ts} epoch {epoch}"
        );
    }
    // DeleteRecords beyond the high watermark (1), or negative other than -1.
    for off in [i64::MAX, i64::MIN, -5, 2] {
        let mut p = delete_records_request::DeleteRecordsPartition::default();
        p.offset = off;
        let mut t = delete_records_request::DeleteRecordsTopic::default();
        t.name = topic_name("ext");
        t.partitions = vec![p];
        let mut req = DeleteRecordsRequest::default();
        req.timeout_ms = i32::MIN;
        req.topics = vec![t];
        let r: DeleteRecordsResponse = call(&mut s, ApiKey::DeleteRecords, 2, &req);
        let code = r.topics[0].partitions[0].error_code;
        assert_eq!(code, code::OFFSET_OUT_OF_RANGE, "delete records to {off}");
    }
    // OffsetForLeaderEpoch: (epoch) -> (code, end offset).
    for (epoch, want, end) in [
        (i32::MAX, code::UNKNOWN_LEADER_EPOCH, -1),
        (i32::MIN, code::NONE, -1),
        (-1, code::NONE, -1),
        (0, code::NONE, 1),
    ] {
        let mut p = offset_for_leader_epoch_request::OffsetForLeaderPartition::default();
        p.leader_epoch = epoch;
        p.current_leader_epoch = epoch;
        let mut t = offset_for_leader_epoch_request::OffsetForLeaderTopic::default();
        t.topic = topic_name("ext");
        t.partitions = vec![p];
        let mut req = OffsetForLeaderEpochRequest::default();
        req.replica_id = BrokerId(-1);
        req.topics = vec![t];
        let r: OffsetForLeaderEpochResponse = call(&mut s, ApiKey::OffsetForLeaderEpoch, 4, &req);
        let p = &r.topics[0].partitions[0];
        assert_eq!((p.error_code, p.end_offset), (want, end), "epoch {epoch}");
    }
    // JoinGroup v3 session timeouts outside [6 s, 30 min]; any rebalance timeout.
    let mut p = join_group_request::JoinGroupRequestProtocol::default();
    p.name = sb("range");
    for (session, rebalance, want) in [
        (i32::MAX, i32::MAX, code::INVALID_SESSION_TIMEOUT),
        (i32::MIN, i32::MIN, code::INVALID_SESSION_TIMEOUT),
        (6000, i32::MIN, code::NONE),
    ] {
        let mut req = JoinGroupRequest::default();
        req.group_id = GroupId(sb("jg"));
        req.session_timeout_ms = session;
        req.rebalance_timeout_ms = rebalance;
        req.protocol_type = sb("consumer");
        req.protocols = vec![p.clone()];
        let r: JoinGroupResponse = call(&mut s, ApiKey::JoinGroup, 3, &req);
        assert_eq!(r.error_code, want, "join {session} {rebalance}");
    }
    let mut hb = HeartbeatRequest::default();
    hb.group_id = GroupId(sb("jg"));
    hb.generation_id = i32::MIN;
    hb.member_id = sb("nobody");
    let r: HeartbeatResponse = call(&mut s, ApiKey::Heartbeat, 4, &hb);
    assert_eq!(r.error_code, code::UNKNOWN_MEMBER_ID);
    // KIP-848: a member epoch below -2 is INVALID_REQUEST.
    let mut cg = ConsumerGroupHeartbeatRequest::default();
    cg.group_id = GroupId(sb("cg"));
    cg.member_id = sb("m");
    cg.member_epoch = i32::MIN;
    cg.rebalance_timeout_ms = i32::MIN;
    let r: ConsumerGroupHeartbeatResponse = call(&mut s, ApiKey::ConsumerGroupHeartbeat, 0, &cg);
    assert_eq!(r.error_code, code::INVALID_REQUEST);
    assert_eq!(c.b.log_count(&["panicked"]), 0, "a panic was logged");
    c.still_serves();
}
