//! Negative and huge lengths and counts in every served API.

use super::*;

// ---------------------------------------------------------------------------
// Negative and huge lengths and counts in every API Herald serves. Each row
// of `length_cases!` encodes a valid request with kafka-protocol, marking one
// string (or bytes) field and the first field of one array's only element;
// `length_case` then finds the length prefix and the array count by the
// markers and makes five requests of it: string length negative, string
// length huge, array count negative, array count huge, body cut in half.
// Each is sent to its own broker. `every_served_api_has_length_cases` checks
// the rows against the ranges the broker advertises, so a newly served API
// fails the catalogue until it has a row.

/// The marked string or bytes field.
const M: &str = "hostile-str";
/// The string that starts an array's only element.
const E: &str = "hostile-elem";
/// The bytes of a Produce request's records field.
const R: &str = "hostile-records";
/// A topic id that starts an array's only element.
const U: [u8; 16] = [0x5a; 16];

#[derive(Clone, Copy, Debug)]
enum Kind {
    Str,
    Bytes,
    Raw,
}

/// Where a field is: its marker, how it is encoded, and for an array element,
/// how many bytes of the element come before the marked field.
#[derive(Clone, Copy, Debug)]
struct At {
    marker: &'static [u8],
    kind: Kind,
    gap: usize,
}

const fn string(m: &'static str) -> Option<At> {
    Some(At {
        marker: m.as_bytes(),
        kind: Kind::Str,
        gap: 0,
    })
}

const fn bytes_field(m: &'static str) -> Option<At> {
    Some(At {
        marker: m.as_bytes(),
        kind: Kind::Bytes,
        gap: 0,
    })
}

/// An element whose marked string comes after `gap` bytes (an int8 resource type, a uuid).
const fn string_after(m: &'static str, gap: usize) -> Option<At> {
    Some(At {
        marker: m.as_bytes(),
        kind: Kind::Str,
        gap,
    })
}

const fn uuid_first() -> Option<At> {
    Some(At {
        marker: &U,
        kind: Kind::Raw,
        gap: 0,
    })
}

fn prefix_len(kind: Kind, flex: bool) -> usize {
    match (kind, flex) {
        (Kind::Raw, _) => 0,
        (_, true) => 1, // unsigned varint of length + 1, one byte for short markers
        (Kind::Str, false) => 2,
        (Kind::Bytes, false) => 4,
    }
}

/// Java reads a compact length of 2^32-1 as -1 - 1 = -2: negative.
const VARINT_NEGATIVE: [u8; 5] = [0xff, 0xff, 0xff, 0xff, 0x0f];
const VARINT_HUGE: [u8; 5] = [0xff, 0xff, 0xff, 0xff, 0x07];

#[derive(Clone, Copy, Debug)]
enum Mutation {
    StringLengthNegative,
    StringLengthHuge,
    ArrayCountNegative,
    ArrayCountHuge,
    BodyCutInHalf,
}

/// The body with one mutation applied; None if the request has no such field.
fn mutate(
    body: &[u8],
    flex: bool,
    str_at: Option<At>,
    arr_at: Option<At>,
    m: Mutation,
) -> Option<Vec<u8>> {
    use Mutation::*;
    let mut out = body.to_vec();
    match m {
        StringLengthNegative | StringLengthHuge => {
            let at = str_at?;
            let pos = find(body, at.marker);
            let n = prefix_len(at.kind, flex);
            let len = at.marker.len();
            let replacement: Vec<u8> = match (flex, at.kind, m) {
                (true, _, StringLengthNegative) => VARINT_NEGATIVE.to_vec(),
                (true, _, _) => VARINT_HUGE.to_vec(),
                (false, Kind::Str, StringLengthNegative) => (-2i16).to_be_bytes().to_vec(),
                (false, Kind::Str, _) => i16::MAX.to_be_bytes().to_vec(),
                (false, _, StringLengthNegative) => (-2i32).to_be_bytes().to_vec(),
                (false, _, _) => i32::MAX.to_be_bytes().to_vec(),
            };
            let expected: Vec<u8> = match (flex, at.kind) {
                (true, _) => vec![len as u8 + 1],
                (false, Kind::Str) => (len as i16).to_be_bytes().to_vec(),
                (false, _) => (len as i32).to_be_bytes().to_vec(),
            };
            assert_eq!(&body[pos - n..pos], &expected[..], "{at:?}: length prefix");
            out.splice(pos - n..pos, replacement);
        }
        ArrayCountNegative | ArrayCountHuge => {
            let at = arr_at?;
            let elem = find(body, at.marker) - prefix_len(at.kind, flex) - at.gap;
            let (n, expected, replacement): (usize, Vec<u8>, Vec<u8>) = match (flex, m) {
                (true, ArrayCountNegative) => (1, vec![2], VARINT_NEGATIVE.to_vec()),
                (true, _) => (1, vec![2], VARINT_HUGE.to_vec()),
                (false, ArrayCountNegative) => {
                    (4, vec![0, 0, 0, 1], (-2i32).to_be_bytes().to_vec())
                }
                (false, _) => (4, vec![0, 0, 0, 1], i32::MAX.to_be_bytes().to_vec()),
            };
            assert_eq!(
                &body[elem - n..elem],
                &expected[..],
                "{at:?}: array count of 1"
            );
            out.splice(elem - n..elem, replacement);
        }
        BodyCutInHalf => {
            if body.is_empty() {
                return None;
            }
            out.truncate(body.len() / 2);
        }
    }
    Some(out)
}

fn length_case(key: ApiKey, version: i16, body: &[u8], str_at: Option<At>, arr_at: Option<At>) {
    use Mutation::*;
    let flex = flexible(key, version);
    let needle = format!("malformed request (API {} v{version})", key as i16);
    // The unmutated request decodes: whatever it answers, the connection stays.
    {
        let b = BrokerProcess::start(&[]);
        let mut s = connect(&b.addr);
        let mut f = header_bytes(key, version, 5);
        f.extend_from_slice(body);
        s.write_all(&sized(&f)).unwrap();
        let answered = read_frame(&mut s).is_some();
        assert!(
            answered,
            "{key:?} v{version}: the valid request was not answered"
        );
        assert_eq!(b.log_count(&[&needle]), 0);
    }
    let mut tried = 0;
    for m in [
        StringLengthNegative,
        StringLengthHuge,
        ArrayCountNegative,
        ArrayCountHuge,
        BodyCutInHalf,
    ] {
        let Some(bad) = mutate(body, flex, str_at, arr_at, m) else {
            continue;
        };
        tried += 1;
        let mut c = Case::start(&[]);
        let rss_before = c.b.rss_kib();
        let mut f = header_bytes(key, version, 5);
        f.extend_from_slice(&bad);
        let line = c.expect_close(&sized(&f), false, &[BAD_REQUEST, &needle]);
        assert!(
            c.b.rss_kib() < rss_before + 16 * 1024,
            "{key:?} v{version} {m:?}: memory grew"
        );
        eprintln!("{key:?} v{version} {m:?}: {line}");
    }
    assert!(tried >= 1, "{key:?} v{version}: no mutation applies");
}

fn enc<R: Encodable>(req: R, v: i16) -> Vec<u8> {
    body_bytes(&req, v)
}

macro_rules! length_cases {
    ($($test:ident: $key:ident, $ver:literal, str = $str:expr, arr = $arr:expr, $build:expr;)*) => {
        /// (API, version) of every row.
        const LENGTH_CASES: &[(ApiKey, i16)] = &[$((ApiKey::$key, $ver)),*];
        $(
            #[test]
            fn $test() {
                let build: fn(i16) -> Vec<u8> = $build;
                length_case(ApiKey::$key, $ver, &build($ver), $str, $arr);
            }
        )*
    };
}

fn produce_req(v: i16) -> Vec<u8> {
    let mut pd = PartitionProduceData::default();
    pd.index = 0;
    let mut td = TopicProduceData::default();
    td.name = topic_name(E);
    td.partition_data = vec![pd];
    let mut r = ProduceRequest::default();
    r.transactional_id = Some(TransactionalId(sb(M)));
    r.acks = 1;
    r.timeout_ms = 1000;
    r.topic_data = vec![td];
    enc(r, v)
}

/// Produce whose records field (nullable bytes) holds the marker: the
/// records' own length prefix is the one mutated.
fn produce_records_req(v: i16) -> Vec<u8> {
    let mut pd = PartitionProduceData::default();
    pd.index = 0;
    pd.records = Some(Bytes::from_static(R.as_bytes()));
    let mut td = TopicProduceData::default();
    td.name = topic_name(E);
    td.partition_data = vec![pd];
    let mut r = ProduceRequest::default();
    r.acks = 1;
    r.timeout_ms = 1000;
    r.topic_data = vec![td];
    enc(r, v)
}

fn fetch_req(v: i16) -> Vec<u8> {
    let mut fp = FetchPartition::default();
    fp.partition = 0;
    fp.partition_max_bytes = 1024;
    let mut ft = FetchTopic::default();
    if v >= 13 {
        ft.topic_id = uuid::Uuid::from_bytes(U);
    } else {
        ft.topic = topic_name(E);
    }
    ft.partitions = vec![fp];
    let mut r = FetchRequest::default();
    r.max_wait_ms = 0;
    r.max_bytes = 1024;
    r.topics = vec![ft];
    if v >= 11 {
        r.rack_id = sb(M);
    }
    enc(r, v)
}

fn fetch_string_field(v: i16) -> Option<At> {
    if v >= 11 { string(M) } else { string(E) }
}

length_cases! {
    lengths_produce_v3: Produce, 3, str = string(M), arr = string(E), produce_req;
    lengths_produce_v11: Produce, 11, str = string(M), arr = string(E), produce_req;
    lengths_produce_records_v3: Produce, 3, str = bytes_field(R), arr = string(E), produce_records_req;
    lengths_produce_records_v11: Produce, 11, str = bytes_field(R), arr = string(E), produce_records_req;
    lengths_fetch_v4: Fetch, 4, str = fetch_string_field(4), arr = string(E), fetch_req;
    lengths_fetch_v12: Fetch, 12, str = fetch_string_field(12), arr = string(E), fetch_req;
    lengths_fetch_v16: Fetch, 16, str = fetch_string_field(16), arr = uuid_first(), fetch_req;
    lengths_list_offsets_v1: ListOffsets, 1, str = string(E), arr = string(E), |v| {
        let mut t = list_offsets_request::ListOffsetsTopic::default();
        t.name = topic_name(E);
        let mut r = ListOffsetsRequest::default();
        r.topics = vec![t];
        enc(r, v)
    };
    lengths_list_offsets_v0: ListOffsets, 0, str = string(E), arr = string(E), |v| {
        let mut t = list_offsets_request::ListOffsetsTopic::default();
        t.name = topic_name(E);
        let mut r = ListOffsetsRequest::default();
        r.topics = vec![t];
        enc(r, v)
    };
    lengths_list_offsets_v8: ListOffsets, 8, str = string(E), arr = string(E), |v| {
        let mut t = list_offsets_request::ListOffsetsTopic::default();
        t.name = topic_name(E);
        let mut r = ListOffsetsRequest::default();
        r.topics = vec![t];
        enc(r, v)
    };
    lengths_metadata_v0: Metadata, 0, str = string(E), arr = string(E), |v| {
        let mut t = metadata_request::MetadataRequestTopic::default();
        t.name = Some(topic_name(E));
        let mut r = MetadataRequest::default();
        r.topics = Some(vec![t]);
        enc(r, v)
    };
    lengths_metadata_v1: Metadata, 1, str = string(E), arr = string(E), |v| {
        let mut t = metadata_request::MetadataRequestTopic::default();
        t.name = Some(topic_name(E));
        let mut r = MetadataRequest::default();
        r.topics = Some(vec![t]);
        enc(r, v)
    };
    lengths_metadata_v12: Metadata, 12, str = string(E), arr = string_after(E, 16), |v| {
        let mut t = metadata_request::MetadataRequestTopic::default();
        t.name = Some(topic_name(E));
        let mut r = MetadataRequest::default();
        r.topics = Some(vec![t]);
        enc(r, v)
    };
    lengths_api_versions_v3: ApiVersions, 3, str = string(M), arr = None, |v| {
        let mut r = ApiVersionsRequest::default();
        r.client_software_name = sb(M);
        r.client_software_version = sb("1.0");
        enc(r, v)
    };
    lengths_api_versions_v4: ApiVersions, 4, str = string(M), arr = None, |v| {
        let mut r = ApiVersionsRequest::default();
        r.client_software_name = sb(M);
        r.client_software_version = sb("1.0");
        enc(r, v)
    };
    lengths_create_topics_v2: CreateTopics, 2, str = string(E), arr = string(E), |v| {
        let mut t = CreatableTopic::default();
        t.name = topic_name(E);
        t.num_partitions = 1;
        t.replication_factor = 1;
        let mut r = CreateTopicsRequest::default();
        r.topics = vec![t];
        r.validate_only = true;
        enc(r, v)
    };
    lengths_create_topics_v0: CreateTopics, 0, str = string(E), arr = string(E), |v| {
        let mut t = CreatableTopic::default();
        t.name = topic_name(E);
        t.num_partitions = 1;
        t.replication_factor = 1;
        let mut r = CreateTopicsRequest::default();
        r.topics = vec![t];
        enc(r, v)
    };
    lengths_create_topics_v7: CreateTopics, 7, str = string(E), arr = string(E), |v| {
        let mut t = CreatableTopic::default();
        t.name = topic_name(E);
        t.num_partitions = 1;
        t.replication_factor = 1;
        let mut r = CreateTopicsRequest::default();
        r.topics = vec![t];
        r.validate_only = true;
        enc(r, v)
    };
    lengths_delete_topics_v1: DeleteTopics, 1, str = string(E), arr = string(E), |v| {
        let mut r = DeleteTopicsRequest::default();
        r.topic_names = vec![topic_name(E)];
        enc(r, v)
    };
    lengths_delete_topics_v0: DeleteTopics, 0, str = string(E), arr = string(E), |v| {
        let mut r = DeleteTopicsRequest::default();
        r.topic_names = vec![topic_name(E)];
        enc(r, v)
    };
    lengths_delete_topics_v6: DeleteTopics, 6, str = string(E), arr = string(E), |v| {
        let mut t = delete_topics_request::DeleteTopicState::default();
        t.name = Some(topic_name(E));
        let mut r = DeleteTopicsRequest::default();
        r.topics = vec![t];
        enc(r, v)
    };
    lengths_delete_records_v0: DeleteRecords, 0, str = string(E), arr = string(E), |v| {
        let mut t = delete_records_request::DeleteRecordsTopic::default();
        t.name = topic_name(E);
        let mut r = DeleteRecordsRequest::default();
        r.topics = vec![t];
        enc(r, v)
    };
    lengths_delete_records_v2: DeleteRecords, 2, str = string(E), arr = string(E), |v| {
        let mut t = delete_records_request::DeleteRecordsTopic::default();
        t.name = topic_name(E);
        let mut r = DeleteRecordsRequest::default();
        r.topics = vec![t];
        enc(r, v)
    };
    lengths_init_producer_id_v0: InitProducerId, 0, str = string(M), arr = None, |v| {
        let mut r = InitProducerIdRequest::default();
        r.transactional_id = Some(TransactionalId(sb(M)));
        enc(r, v)
    };
    lengths_init_producer_id_v5: InitProducerId, 5, str = string(M), arr = None, |v| {
        let mut r = InitProducerIdRequest::default();
        r.transactional_id = Some(TransactionalId(sb(M)));
        enc(r, v)
    };
    lengths_offset_for_leader_epoch_v2: OffsetForLeaderEpoch, 2, str = string(E), arr = string(E), |v| {
        let mut t = offset_for_leader_epoch_request::OffsetForLeaderTopic::default();
        t.topic = topic_name(E);
        let mut r = OffsetForLeaderEpochRequest::default();
        r.topics = vec![t];
        enc(r, v)
    };
    lengths_offset_for_leader_epoch_v4: OffsetForLeaderEpoch, 4, str = string(E), arr = string(E), |v| {
        let mut t = offset_for_leader_epoch_request::OffsetForLeaderTopic::default();
        t.topic = topic_name(E);
        let mut r = OffsetForLeaderEpochRequest::default();
        r.topics = vec![t];
        enc(r, v)
    };
    lengths_describe_configs_v1: DescribeConfigs, 1, str = string(E), arr = string_after(E, 1), |v| {
        let mut res = describe_configs_request::DescribeConfigsResource::default();
        res.resource_type = 2;
        res.resource_name = sb(E);
        let mut r = DescribeConfigsRequest::default();
        r.resources = vec![res];
        enc(r, v)
    };
    lengths_describe_configs_v4: DescribeConfigs, 4, str = string(E), arr = string_after(E, 1), |v| {
        let mut res = describe_configs_request::DescribeConfigsResource::default();
        res.resource_type = 2;
        res.resource_name = sb(E);
        let mut r = DescribeConfigsRequest::default();
        r.resources = vec![res];
        enc(r, v)
    };
    lengths_alter_configs_v0: AlterConfigs, 0, str = string(E), arr = string_after(E, 1), |v| {
        let mut res = alter_configs_request::AlterConfigsResource::default();
        res.resource_type = 2;
        res.resource_name = sb(E);
        let mut r = AlterConfigsRequest::default();
        r.resources = vec![res];
        r.validate_only = true;
        enc(r, v)
    };
    lengths_alter_configs_v2: AlterConfigs, 2, str = string(E), arr = string_after(E, 1), |v| {
        let mut res = alter_configs_request::AlterConfigsResource::default();
        res.resource_type = 2;
        res.resource_name = sb(E);
        let mut r = AlterConfigsRequest::default();
        r.resources = vec![res];
        r.validate_only = true;
        enc(r, v)
    };
    lengths_create_partitions_v0: CreatePartitions, 0, str = string(E), arr = string(E), |v| {
        let mut t = create_partitions_request::CreatePartitionsTopic::default();
        t.name = topic_name(E);
        t.count = 2;
        let mut r = CreatePartitionsRequest::default();
        r.topics = vec![t];
        r.validate_only = true;
        enc(r, v)
    };
    lengths_create_partitions_v3: CreatePartitions, 3, str = string(E), arr = string(E), |v| {
        let mut t = create_partitions_request::CreatePartitionsTopic::default();
        t.name = topic_name(E);
        t.count = 2;
        let mut r = CreatePartitionsRequest::default();
        r.topics = vec![t];
        r.validate_only = true;
        enc(r, v)
    };
    lengths_incremental_alter_configs_v0: IncrementalAlterConfigs, 0, str = string(E), arr = string_after(E, 1), |v| {
        let mut res = incremental_alter_configs_request::AlterConfigsResource::default();
        res.resource_type = 2;
        res.resource_name = sb(E);
        let mut r = IncrementalAlterConfigsRequest::default();
        r.resources = vec![res];
        r.validate_only = true;
        enc(r, v)
    };
    lengths_incremental_alter_configs_v1: IncrementalAlterConfigs, 1, str = string(E), arr = string_after(E, 1), |v| {
        let mut res = incremental_alter_configs_request::AlterConfigsResource::default();
        res.resource_type = 2;
        res.resource_name = sb(E);
        let mut r = IncrementalAlterConfigsRequest::default();
        r.resources = vec![res];
        r.validate_only = true;
        enc(r, v)
    };
    lengths_describe_cluster_v0: DescribeCluster, 0, str = None, arr = None, |v| {
        enc(DescribeClusterRequest::default(), v)
    };
    lengths_describe_cluster_v1: DescribeCluster, 1, str = None, arr = None, |v| {
        enc(DescribeClusterRequest::default(), v)
    };
    lengths_describe_log_dirs_v1: DescribeLogDirs, 1, str = string(E), arr = string(E), |v| {
        let mut t = describe_log_dirs_request::DescribableLogDirTopic::default();
        t.topic = topic_name(E);
        let mut r = DescribeLogDirsRequest::default();
        r.topics = Some(vec![t]);
        enc(r, v)
    };
    lengths_describe_log_dirs_v4: DescribeLogDirs, 4, str = string(E), arr = string(E), |v| {
        let mut t = describe_log_dirs_request::DescribableLogDirTopic::default();
        t.topic = topic_name(E);
        let mut r = DescribeLogDirsRequest::default();
        r.topics = Some(vec![t]);
        enc(r, v)
    };
    lengths_find_coordinator_v0: FindCoordinator, 0, str = string(M), arr = None, |v| {
        let mut r = FindCoordinatorRequest::default();
        r.key = sb(M);
        enc(r, v)
    };
    lengths_find_coordinator_v6: FindCoordinator, 6, str = string(E), arr = string(E), |v| {
        let mut r = FindCoordinatorRequest::default();
        r.coordinator_keys = vec![sb(E)];
        enc(r, v)
    };
    lengths_join_group_v0: JoinGroup, 0, str = string(M), arr = string(E), |v| {
        let mut p = join_group_request::JoinGroupRequestProtocol::default();
        p.name = sb(E);
        p.metadata = Bytes::from_static(b"m");
        let mut r = JoinGroupRequest::default();
        r.group_id = GroupId(sb(M));
        r.session_timeout_ms = 10_000;
        r.protocol_type = sb("consumer");
        r.protocols = vec![p];
        enc(r, v)
    };
    lengths_join_group_v9: JoinGroup, 9, str = string(M), arr = string(E), |v| {
        let mut p = join_group_request::JoinGroupRequestProtocol::default();
        p.name = sb(E);
        p.metadata = Bytes::from_static(b"m");
        let mut r = JoinGroupRequest::default();
        r.group_id = GroupId(sb(M));
        r.session_timeout_ms = 10_000;
        r.rebalance_timeout_ms = 10_000;
        r.member_id = sb("m-1");
        r.protocol_type = sb("consumer");
        r.protocols = vec![p];
        enc(r, v)
    };
    lengths_sync_group_v0: SyncGroup, 0, str = string(M), arr = string(E), |v| {
        let mut a = sync_group_request::SyncGroupRequestAssignment::default();
        a.member_id = sb(E);
        let mut r = SyncGroupRequest::default();
        r.group_id = GroupId(sb(M));
        r.member_id = sb("m-1");
        r.assignments = vec![a];
        enc(r, v)
    };
    lengths_sync_group_v5: SyncGroup, 5, str = string(M), arr = string(E), |v| {
        let mut a = sync_group_request::SyncGroupRequestAssignment::default();
        a.member_id = sb(E);
        let mut r = SyncGroupRequest::default();
        r.group_id = GroupId(sb(M));
        r.member_id = sb("m-1");
        r.assignments = vec![a];
        enc(r, v)
    };
    lengths_heartbeat_v0: Heartbeat, 0, str = string(M), arr = None, |v| {
        let mut r = HeartbeatRequest::default();
        r.group_id = GroupId(sb(M));
        enc(r, v)
    };
    lengths_heartbeat_v4: Heartbeat, 4, str = string(M), arr = None, |v| {
        let mut r = HeartbeatRequest::default();
        r.group_id = GroupId(sb(M));
        enc(r, v)
    };
    lengths_leave_group_v0: LeaveGroup, 0, str = string(M), arr = None, |v| {
        let mut r = LeaveGroupRequest::default();
        r.group_id = GroupId(sb(M));
        r.member_id = sb("m-1");
        enc(r, v)
    };
    lengths_leave_group_v5: LeaveGroup, 5, str = string(M), arr = string(E), |v| {
        let mut m = leave_group_request::MemberIdentity::default();
        m.member_id = sb(E);
        let mut r = LeaveGroupRequest::default();
        r.group_id = GroupId(sb(M));
        r.members = vec![m];
        enc(r, v)
    };
    lengths_offset_commit_v2: OffsetCommit, 2, str = string(M), arr = string(E), |v| {
        let mut t = offset_commit_request::OffsetCommitRequestTopic::default();
        t.name = topic_name(E);
        let mut r = OffsetCommitRequest::default();
        r.group_id = GroupId(sb(M));
        r.topics = vec![t];
        enc(r, v)
    };
    lengths_offset_commit_v0: OffsetCommit, 0, str = string(M), arr = string(E), |v| {
        let mut t = offset_commit_request::OffsetCommitRequestTopic::default();
        t.name = topic_name(E);
        let mut r = OffsetCommitRequest::default();
        r.group_id = GroupId(sb(M));
        r.topics = vec![t];
        enc(r, v)
    };
    lengths_offset_commit_v9: OffsetCommit, 9, str = string(M), arr = string(E), |v| {
        let mut t = offset_commit_request::OffsetCommitRequestTopic::default();
        t.name = topic_name(E);
        let mut r = OffsetCommitRequest::default();
        r.group_id = GroupId(sb(M));
        r.topics = vec![t];
        enc(r, v)
    };
    lengths_offset_fetch_v1: OffsetFetch, 1, str = string(M), arr = string(E), |v| {
        let mut t = offset_fetch_request::OffsetFetchRequestTopic::default();
        t.name = topic_name(E);
        let mut r = OffsetFetchRequest::default();
        r.group_id = GroupId(sb(M));
        r.topics = Some(vec![t]);
        enc(r, v)
    };
    lengths_offset_fetch_v0: OffsetFetch, 0, str = string(M), arr = string(E), |v| {
        let mut t = offset_fetch_request::OffsetFetchRequestTopic::default();
        t.name = topic_name(E);
        let mut r = OffsetFetchRequest::default();
        r.group_id = GroupId(sb(M));
        r.topics = Some(vec![t]);
        enc(r, v)
    };
    lengths_offset_fetch_v9: OffsetFetch, 9, str = string(E), arr = string(E), |v| {
        let mut g = offset_fetch_request::OffsetFetchRequestGroup::default();
        g.group_id = GroupId(sb(E));
        let mut r = OffsetFetchRequest::default();
        r.groups = vec![g];
        enc(r, v)
    };
    lengths_offset_delete_v0: OffsetDelete, 0, str = string(M), arr = string(E), |v| {
        let mut t = offset_delete_request::OffsetDeleteRequestTopic::default();
        t.name = topic_name(E);
        let mut r = OffsetDeleteRequest::default();
        r.group_id = GroupId(sb(M));
        r.topics = vec![t];
        enc(r, v)
    };
    lengths_delete_groups_v0: DeleteGroups, 0, str = string(E), arr = string(E), |v| {
        let mut r = DeleteGroupsRequest::default();
        r.groups_names = vec![GroupId(sb(E))];
        enc(r, v)
    };
    lengths_delete_groups_v2: DeleteGroups, 2, str = string(E), arr = string(E), |v| {
        let mut r = DeleteGroupsRequest::default();
        r.groups_names = vec![GroupId(sb(E))];
        enc(r, v)
    };
    lengths_describe_groups_v0: DescribeGroups, 0, str = string(E), arr = string(E), |v| {
        let mut r = DescribeGroupsRequest::default();
        r.groups = vec![GroupId(sb(E))];
        enc(r, v)
    };
    lengths_describe_groups_v5: DescribeGroups, 5, str = string(E), arr = string(E), |v| {
        let mut r = DescribeGroupsRequest::default();
        r.groups = vec![GroupId(sb(E))];
        enc(r, v)
    };
    lengths_describe_groups_v6: DescribeGroups, 6, str = string(E), arr = string(E), |v| {
        let mut r = DescribeGroupsRequest::default();
        r.groups = vec![GroupId(sb(E))];
        enc(r, v)
    };
    lengths_list_groups_v4: ListGroups, 4, str = string(E), arr = string(E), |v| {
        let mut r = ListGroupsRequest::default();
        r.states_filter = vec![sb(E)];
        enc(r, v)
    };
    lengths_list_groups_v5: ListGroups, 5, str = string(E), arr = string(E), |v| {
        let mut r = ListGroupsRequest::default();
        r.types_filter = vec![sb(E)];
        enc(r, v)
    };
    lengths_consumer_group_heartbeat_v0: ConsumerGroupHeartbeat, 0, str = string(M), arr = string(E), |v| {
        let mut r = ConsumerGroupHeartbeatRequest::default();
        r.group_id = GroupId(sb(M));
        r.member_id = sb("m-1");
        r.subscribed_topic_names = Some(vec![topic_name(E)]);
        enc(r, v)
    };
    lengths_consumer_group_heartbeat_v1: ConsumerGroupHeartbeat, 1, str = string(M), arr = string(E), |v| {
        let mut r = ConsumerGroupHeartbeatRequest::default();
        r.group_id = GroupId(sb(M));
        r.member_id = sb("m-1");
        r.subscribed_topic_names = Some(vec![topic_name(E)]);
        enc(r, v)
    };
    lengths_consumer_group_describe_v0: ConsumerGroupDescribe, 0, str = string(E), arr = string(E), |v| {
        let mut r = ConsumerGroupDescribeRequest::default();
        r.group_ids = vec![GroupId(sb(E))];
        enc(r, v)
    };
    lengths_consumer_group_describe_v1: ConsumerGroupDescribe, 1, str = string(E), arr = string(E), |v| {
        let mut r = ConsumerGroupDescribeRequest::default();
        r.group_ids = vec![GroupId(sb(E))];
        enc(r, v)
    };
    lengths_describe_acls_v1: DescribeAcls, 1, str = string(M), arr = None, |v| {
        let mut r = DescribeAclsRequest::default();
        r.resource_type_filter = 1;
        r.resource_name_filter = Some(sb(M));
        r.pattern_type_filter = 1;
        r.operation = 1;
        r.permission_type = 1;
        enc(r, v)
    };
    lengths_describe_acls_v3: DescribeAcls, 3, str = string(M), arr = None, |v| {
        let mut r = DescribeAclsRequest::default();
        r.resource_type_filter = 1;
        r.resource_name_filter = Some(sb(M));
        r.pattern_type_filter = 1;
        r.operation = 1;
        r.permission_type = 1;
        enc(r, v)
    };
    lengths_create_acls_v1: CreateAcls, 1, str = string(E), arr = string_after(E, 1), |v| {
        let mut a = create_acls_request::AclCreation::default();
        a.resource_type = 2;
        a.resource_name = sb(E);
        a.resource_pattern_type = 3;
        a.principal = sb("User:x");
        a.host = sb("*");
        a.operation = 3;
        a.permission_type = 3;
        let mut r = CreateAclsRequest::default();
        r.creations = vec![a];
        enc(r, v)
    };
    lengths_create_acls_v3: CreateAcls, 3, str = string(E), arr = string_after(E, 1), |v| {
        let mut a = create_acls_request::AclCreation::default();
        a.resource_type = 2;
        a.resource_name = sb(E);
        a.resource_pattern_type = 3;
        a.principal = sb("User:x");
        a.host = sb("*");
        a.operation = 3;
        a.permission_type = 3;
        let mut r = CreateAclsRequest::default();
        r.creations = vec![a];
        enc(r, v)
    };
    lengths_delete_acls_v1: DeleteAcls, 1, str = string(E), arr = string_after(E, 1), |v| {
        let mut f = delete_acls_request::DeleteAclsFilter::default();
        f.resource_type_filter = 2;
        f.resource_name_filter = Some(sb(E));
        f.pattern_type_filter = 3;
        f.operation = 1;
        f.permission_type = 1;
        let mut r = DeleteAclsRequest::default();
        r.filters = vec![f];
        enc(r, v)
    };
    lengths_delete_acls_v3: DeleteAcls, 3, str = string(E), arr = string_after(E, 1), |v| {
        let mut f = delete_acls_request::DeleteAclsFilter::default();
        f.resource_type_filter = 2;
        f.resource_name_filter = Some(sb(E));
        f.pattern_type_filter = 3;
        f.operation = 1;
        f.permission_type = 1;
        let mut r = DeleteAclsRequest::default();
        r.filters = vec![f];
        enc(r, v)
    };
    lengths_describe_user_scram_credentials_v0: DescribeUserScramCredentials, 0, str = string(E), arr = string(E), |v| {
        let mut u = describe_user_scram_credentials_request::UserName::default();
        u.name = sb(E);
        let mut r = DescribeUserScramCredentialsRequest::default();
        r.users = Some(vec![u]);
        enc(r, v)
    };
    lengths_alter_user_scram_credentials_v0: AlterUserScramCredentials, 0, str = string(E), arr = string(E), |v| {
        let mut d = alter_user_scram_credentials_request::ScramCredentialDeletion::default();
        d.name = sb(E);
        d.mechanism = 1;
        let mut r = AlterUserScramCredentialsRequest::default();
        r.deletions = vec![d];
        enc(r, v)
    };
    lengths_add_partitions_to_txn_v0: AddPartitionsToTxn, 0, str = string(M), arr = string(E), |v| {
        let mut t = add_partitions_to_txn_request::AddPartitionsToTxnTopic::default();
        t.name = topic_name(E);
        t.partitions = vec![0];
        let mut r = AddPartitionsToTxnRequest::default();
        r.v3_and_below_transactional_id = TransactionalId(sb(M));
        r.v3_and_below_topics = vec![t];
        enc(r, v)
    };
    lengths_add_partitions_to_txn_v5: AddPartitionsToTxn, 5, str = string(E), arr = string(E), |v| {
        let mut t = add_partitions_to_txn_request::AddPartitionsToTxnTransaction::default();
        t.transactional_id = TransactionalId(sb(E));
        let mut r = AddPartitionsToTxnRequest::default();
        r.transactions = vec![t];
        enc(r, v)
    };
    lengths_add_offsets_to_txn_v0: AddOffsetsToTxn, 0, str = string(M), arr = None, |v| {
        let mut r = AddOffsetsToTxnRequest::default();
        r.transactional_id = TransactionalId(sb(M));
        r.group_id = GroupId(sb("g"));
        enc(r, v)
    };
    lengths_add_offsets_to_txn_v4: AddOffsetsToTxn, 4, str = string(M), arr = None, |v| {
        let mut r = AddOffsetsToTxnRequest::default();
        r.transactional_id = TransactionalId(sb(M));
        r.group_id = GroupId(sb("g"));
        enc(r, v)
    };
    lengths_end_txn_v0: EndTxn, 0, str = string(M), arr = None, |v| {
        let mut r = EndTxnRequest::default();
        r.transactional_id = TransactionalId(sb(M));
        enc(r, v)
    };
    lengths_end_txn_v4: EndTxn, 4, str = string(M), arr = None, |v| {
        let mut r = EndTxnRequest::default();
        r.transactional_id = TransactionalId(sb(M));
        enc(r, v)
    };
    lengths_txn_offset_commit_v0: TxnOffsetCommit, 0, str = string(M), arr = string(E), |v| {
        let mut t = txn_offset_commit_request::TxnOffsetCommitRequestTopic::default();
        t.name = topic_name(E);
        let mut r = TxnOffsetCommitRequest::default();
        r.transactional_id = TransactionalId(sb(M));
        r.group_id = GroupId(sb("g"));
        r.topics = vec![t];
        enc(r, v)
    };
    lengths_txn_offset_commit_v5: TxnOffsetCommit, 5, str = string(M), arr = string(E), |v| {
        let mut t = txn_offset_commit_request::TxnOffsetCommitRequestTopic::default();
        t.name = topic_name(E);
        let mut r = TxnOffsetCommitRequest::default();
        r.transactional_id = TransactionalId(sb(M));
        r.group_id = GroupId(sb("g"));
        r.topics = vec![t];
        enc(r, v)
    };
    lengths_describe_producers_v0: DescribeProducers, 0, str = string(E), arr = string(E), |v| {
        let mut t = describe_producers_request::TopicRequest::default();
        t.name = TopicName(sb(E));
        t.partition_indexes = vec![0];
        let mut r = DescribeProducersRequest::default();
        r.topics = vec![t];
        enc(r, v)
    };
    lengths_describe_transactions_v0: DescribeTransactions, 0, str = string(E), arr = string(E), |v| {
        let mut r = DescribeTransactionsRequest::default();
        r.transactional_ids = vec![TransactionalId(sb(E))];
        enc(r, v)
    };
    lengths_list_transactions_v0: ListTransactions, 0, str = string(E), arr = string(E), |v| {
        let mut r = ListTransactionsRequest::default();
        r.state_filters = vec![sb(E)];
        enc(r, v)
    };
    lengths_list_transactions_v2: ListTransactions, 2, str = string(M), arr = string(E), |v| {
        let mut r = ListTransactionsRequest::default();
        r.state_filters = vec![sb(E)];
        r.transactional_id_pattern = Some(sb(M));
        enc(r, v)
    };
    lengths_sasl_handshake_v0: SaslHandshake, 0, str = string(M), arr = None, |v| {
        let mut r = SaslHandshakeRequest::default();
        r.mechanism = sb(M);
        enc(r, v)
    };
    lengths_sasl_handshake_v1: SaslHandshake, 1, str = string(M), arr = None, |v| {
        let mut r = SaslHandshakeRequest::default();
        r.mechanism = sb(M);
        enc(r, v)
    };
    lengths_sasl_authenticate_v0: SaslAuthenticate, 0, str = bytes_field(M), arr = None, |v| {
        let mut r = SaslAuthenticateRequest::default();
        r.auth_bytes = Bytes::from_static(M.as_bytes());
        enc(r, v)
    };
    lengths_sasl_authenticate_v2: SaslAuthenticate, 2, str = bytes_field(M), arr = None, |v| {
        let mut r = SaslAuthenticateRequest::default();
        r.auth_bytes = Bytes::from_static(M.as_bytes());
        enc(r, v)
    };
}

/// The rows above cover every API the broker advertises, at its highest
/// version and at its lowest served one.
#[test]
fn every_served_api_has_length_cases() {
    let b = BrokerProcess::start(&[]);
    let mut s = connect(&b.addr);
    s.write_all(&frame(
        ApiKey::ApiVersions,
        3,
        1,
        &ApiVersionsRequest::default(),
    ))
    .unwrap();
    let (_, r): (i32, ApiVersionsResponse) =
        decode_frame(read_frame(&mut s).unwrap(), ApiKey::ApiVersions, 3);
    let mut missing = Vec::new();
    for k in &r.api_keys {
        let key = ApiKey::try_from(k.api_key).expect("a known key");
        // Produce is advertised from v0 for librdkafka but served from v3.
        let min = if key == ApiKey::Produce {
            3
        } else {
            k.min_version
        };
        for v in [min, k.max_version] {
            let v = match (key, v) {
                // ApiVersions v0-2 and ListGroups v0-3 have no fields at all.
                (ApiKey::ApiVersions, v) if v < 3 => 3,
                (ApiKey::ListGroups, v) if v < 4 => 4,
                _ => v,
            };
            if !LENGTH_CASES.contains(&(key, v)) {
                missing.push(format!("{key:?} v{v}"));
            }
        }
    }
    assert!(missing.is_empty(), "no length/count rows for {missing:?}");
}
