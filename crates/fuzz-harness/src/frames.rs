//! Valid request frames for every API and version Herald serves, built with
//! kafka-protocol's types and filled from a seed (topics, partitions,
//! strings, record batches), and the mutations the property tests apply to
//! them.

use bytes::{Bytes, BytesMut};
use herald_broker::handlers::api_versions::served_range;
use herald_log::batch::build::{Options, SimpleRecord, batch_with};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use uuid::Uuid;

/// Every API key Herald serves with its served version range, as the
/// ApiVersions handler says.
pub fn served_apis() -> Vec<(ApiKey, i16, i16)> {
    ApiKey::iter()
        .filter_map(|k| served_range(k).map(|(lo, hi)| (k, lo, hi)))
        .collect()
}

/// A small deterministic generator (SplitMix64): a request is a function of
/// its seed, so a failing case can be rebuilt from the numbers proptest prints.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    pub fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
    /// 0 to `n_max` items (biased small).
    pub fn count(&mut self, n_max: u64) -> usize {
        if self.chance(4) {
            0
        } else {
            1 + self.below(n_max.max(1)) as usize
        }
    }
    pub fn i32_edgy(&mut self) -> i32 {
        match self.below(8) {
            0 => -1,
            1 => 0,
            2 => i32::MAX,
            3 => i32::MIN,
            _ => self.below(1000) as i32,
        }
    }
    pub fn i64_edgy(&mut self) -> i64 {
        match self.below(8) {
            0 => -1,
            1 => -2,
            2 => i64::MAX,
            3 => i64::MIN,
            4 => 0,
            _ => self.below(100) as i64,
        }
    }
    pub fn bytes(&mut self, len_max: u64) -> Vec<u8> {
        let n = self.below(len_max + 1) as usize;
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// What the generated requests can name: the broker's real topics.
#[derive(Clone, Debug, Default)]
pub struct Known {
    /// (name, id, partition count).
    pub topics: Vec<(String, Uuid, i32)>,
}

const NAMES: &[&str] = &[
    "orders",
    "a",
    "fuzz.x_y-z",
    "..",
    "bad/name",
    "",
    "\u{7f}ctl",
    "grüße",
    "__consumer_offsets",
];

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

impl Known {
    fn topic(&self, r: &mut Rng) -> (String, Uuid, i32) {
        if !self.topics.is_empty() && !r.chance(4) {
            return self.topics[r.below(self.topics.len() as u64) as usize].clone();
        }
        let name = if r.chance(3) {
            format!("gen-{}", r.below(64))
        } else if r.chance(20) {
            "x".repeat(250)
        } else {
            r.pick(NAMES).to_string()
        };
        (name, Uuid::from_u128(r.next_u64() as u128), 1)
    }
    fn topic_name(&self, r: &mut Rng) -> TopicName {
        TopicName(s(&self.topic(r).0))
    }
    fn partition(&self, r: &mut Rng, count: i32) -> i32 {
        match r.below(10) {
            0 => -1,
            1 => count,
            2 => i32::MAX,
            _ => r.below(count.max(1) as u64) as i32,
        }
    }
}

fn string(r: &mut Rng) -> StrBytes {
    match r.below(6) {
        0 => s(""),
        1 => s(&format!("m-{}", r.below(16))),
        2 => s(r.pick(NAMES)),
        _ => s(&format!("s{}", r.below(1_000_000))),
    }
}

fn group(r: &mut Rng) -> GroupId {
    GroupId(if r.chance(8) {
        s("")
    } else {
        s(&format!("g{}", r.below(8)))
    })
}

/// `Some(value)` three times in four.
macro_rules! opt {
    ($r:expr, $v:expr $(,)?) => {{
        let v = $v;
        if $r.chance(4) { None } else { Some(v) }
    }};
}

/// One or more valid record batches, sometimes compressed or idempotent.
pub fn records(r: &mut Rng) -> Bytes {
    let mut out = Vec::new();
    for _ in 0..1 + r.below(2) {
        type KeyValue = (Option<Vec<u8>>, Option<Vec<u8>>);
        let values: Vec<KeyValue> = (0..1 + r.below(4))
            .map(|_| {
                let key = if r.chance(3) { None } else { Some(r.bytes(8)) };
                let value = if r.chance(8) { None } else { Some(r.bytes(64)) };
                (key, value)
            })
            .collect();
        let recs: Vec<SimpleRecord<'_>> = values
            .iter()
            .enumerate()
            .map(|(i, (k, v))| SimpleRecord {
                key: k.as_deref(),
                value: v.as_deref(),
                timestamp_ms: 1_700_000_000_000 + i as i64,
            })
            .collect();
        let idempotent = r.chance(3);
        out.extend(batch_with(
            &recs,
            Options {
                producer_id: if idempotent { r.below(4) as i64 } else { -1 },
                producer_epoch: if idempotent { 0 } else { -1 },
                base_sequence: if idempotent { r.below(3) as i32 } else { -1 },
                compression: r.below(5) as i16,
            },
        ));
    }
    Bytes::from(out)
}

/// A valid frame: size prefix, request header, body.
pub struct Frame {
    pub bytes: Vec<u8>,
    /// Where the body starts (after the size prefix and the header).
    pub body_start: usize,
    /// Whether the header and body use the flexible (tagged fields) encoding.
    pub flexible: bool,
}

/// Builds a populated request of `api_key` at `version`. Err names what
/// could not be encoded (a generator bug the tests report).
pub fn request_frame(
    api_key: ApiKey,
    version: i16,
    seed: u64,
    known: &Known,
) -> Result<Frame, String> {
    let mut r = Rng::new(seed);
    let body = body(api_key, version, &mut r, known)?;
    let header_version = api_key.request_header_version(version);
    let mut header = RequestHeader::default();
    header.request_api_key = api_key as i16;
    header.request_api_version = version;
    header.correlation_id = r.below(1 << 20) as i32;
    header.client_id = if r.chance(5) {
        None
    } else {
        Some(s("fuzz-client"))
    };
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, header_version)
        .map_err(|e| format!("header v{header_version}: {e}"))?;
    let body_start = 4 + buf.len();
    buf.extend_from_slice(&body);
    let mut bytes = (buf.len() as i32).to_be_bytes().to_vec();
    bytes.extend_from_slice(&buf);
    Ok(Frame {
        bytes,
        body_start,
        flexible: header_version >= 2,
    })
}

fn enc<T: Encodable>(t: T, version: i16) -> Result<Vec<u8>, String> {
    let mut buf = BytesMut::new();
    t.encode(&mut buf, version).map_err(|e| e.to_string())?;
    Ok(buf.to_vec())
}

fn body(api_key: ApiKey, v: i16, r: &mut Rng, k: &Known) -> Result<Vec<u8>, String> {
    let err = |e: String| format!("{api_key:?} v{v}: {e}");
    match api_key {
        ApiKey::Produce => {
            let mut q = ProduceRequest::default();
            q.acks = r.pick(&[-1, 0, 1, 2]);
            q.timeout_ms = 1000;
            if v >= 3 && r.chance(6) {
                q.transactional_id = Some(TransactionalId(string(r)));
            }
            for _ in 0..r.count(2) {
                let (name, id, n) = k.topic(r);
                let mut t = produce_request::TopicProduceData::default();
                if v >= 13 {
                    t.topic_id = id;
                } else {
                    t.name = TopicName(s(&name));
                }
                for _ in 0..r.count(2) {
                    let mut p = produce_request::PartitionProduceData::default();
                    p.index = k.partition(r, n);
                    p.records = if r.chance(10) { None } else { Some(records(r)) };
                    t.partition_data.push(p);
                }
                q.topic_data.push(t);
            }
            enc(q, v).map_err(err)
        }
        ApiKey::Fetch => {
            let mut q = FetchRequest::default();
            q.max_wait_ms = if r.chance(10) { 50 } else { 0 };
            q.min_bytes = r.below(2) as i32;
            q.max_bytes = r.i32_edgy();
            q.isolation_level = r.below(2) as i8;
            if v >= 7 {
                q.session_id = if r.chance(4) { r.i32_edgy() } else { 0 };
                q.session_epoch = if r.chance(4) { r.i32_edgy() } else { -1 };
            }
            for _ in 0..r.count(2) {
                let (name, id, n) = k.topic(r);
                let mut t = fetch_request::FetchTopic::default();
                if v >= 13 {
                    t.topic_id = id;
                } else {
                    t.topic = TopicName(s(&name));
                }
                for _ in 0..r.count(2) {
                    let mut p = fetch_request::FetchPartition::default();
                    p.partition = k.partition(r, n);
                    p.fetch_offset = r.i64_edgy();
                    p.partition_max_bytes = r.i32_edgy();
                    if v >= 9 {
                        p.current_leader_epoch = -1;
                    }
                    t.partitions.push(p);
                }
                q.topics.push(t);
            }
            if v >= 7 && r.chance(4) {
                let (name, id, _) = k.topic(r);
                let mut f = fetch_request::ForgottenTopic::default();
                if v >= 13 {
                    f.topic_id = id;
                } else {
                    f.topic = TopicName(s(&name));
                }
                f.partitions = vec![0, 1];
                q.forgotten_topics_data.push(f);
            }
            if v >= 11 {
                q.rack_id = string(r);
            }
            enc(q, v).map_err(err)
        }
        ApiKey::ListOffsets => {
            let mut q = ListOffsetsRequest::default();
            q.replica_id = BrokerId(-1);
            if v >= 2 {
                q.isolation_level = r.below(2) as i8;
            }
            for _ in 0..r.count(2) {
                let (name, _, n) = k.topic(r);
                let mut t = list_offsets_request::ListOffsetsTopic::default();
                t.name = TopicName(s(&name));
                for _ in 0..r.count(3) {
                    let mut p = list_offsets_request::ListOffsetsPartition::default();
                    p.partition_index = k.partition(r, n);
                    p.timestamp = r.pick(&[-1, -2, -3, -4, -5, 0, 1_700_000_000_000, i64::MAX]);
                    if v == 0 {
                        p.max_num_offsets = r.pick(&[1, 0, -1, 2, i32::MAX, i32::MIN]);
                    }
                    t.partitions.push(p);
                }
                q.topics.push(t);
            }
            if v >= 10 {
                q.timeout_ms = 1000;
            }
            enc(q, v).map_err(err)
        }
        ApiKey::Metadata => {
            let mut q = MetadataRequest::default();
            q.topics = if r.chance(3) && v >= 1 {
                None
            } else {
                Some(
                    (0..r.count(3))
                        .map(|_| {
                            let (name, id, _) = k.topic(r);
                            let mut t = metadata_request::MetadataRequestTopic::default();
                            t.name = Some(TopicName(s(&name)));
                            if v >= 10 && r.chance(3) {
                                t.topic_id = id;
                                t.name = None;
                            }
                            t
                        })
                        .collect(),
                )
            };
            if v >= 4 {
                q.allow_auto_topic_creation = r.chance(2);
            }
            if (8..=10).contains(&v) {
                q.include_cluster_authorized_operations = r.chance(2);
            }
            if v >= 8 {
                q.include_topic_authorized_operations = r.chance(2);
            }
            enc(q, v).map_err(err)
        }
        ApiKey::ApiVersions => {
            let mut q = ApiVersionsRequest::default();
            if v >= 3 {
                q.client_software_name = s("herald-fuzz");
                q.client_software_version = string(r);
            }
            enc(q, v).map_err(err)
        }
        ApiKey::CreateTopics => {
            let mut q = CreateTopicsRequest::default();
            for _ in 0..r.count(2) {
                let mut t = create_topics_request::CreatableTopic::default();
                t.name = k.topic_name(r);
                t.num_partitions = r.pick(&[-1, 0, 1, 2, 9, i32::MAX]);
                t.replication_factor = r.pick(&[-1, 1, 3]);
                if r.chance(4) {
                    let mut a = create_topics_request::CreatableReplicaAssignment::default();
                    a.partition_index = 0;
                    a.broker_ids = vec![BrokerId(0)];
                    t.assignments.push(a);
                }
                for _ in 0..r.count(2) {
                    let mut c = create_topics_request::CreatableTopicConfig::default();
                    c.name = s(r.pick(&[
                        "cleanup.policy",
                        "retention.ms",
                        "compression.type",
                        "segment.bytes",
                        "max.message.bytes",
                        "bogus",
                    ]));
                    c.value = opt!(r, s(r.pick(&["compact", "-1", "zstd", "1", "x", ""])));
                    t.configs.push(c);
                }
                q.topics.push(t);
            }
            q.timeout_ms = 1000;
            if v >= 1 {
                q.validate_only = r.chance(2);
            }
            enc(q, v).map_err(err)
        }
        ApiKey::DeleteTopics => {
            let mut q = DeleteTopicsRequest::default();
            for _ in 0..r.count(2) {
                let (name, id, _) = k.topic(r);
                if v >= 6 {
                    let mut t = delete_topics_request::DeleteTopicState::default();
                    if r.chance(2) {
                        t.topic_id = id;
                    } else {
                        t.name = Some(TopicName(s(&name)));
                    }
                    q.topics.push(t);
                } else {
                    // Only generated names: deleting a base topic would make
                    // every later case start from a different broker.
                    q.topic_names
                        .push(TopicName(s(&format!("gen-{}", r.below(64)))));
                }
            }
            q.timeout_ms = 1000;
            enc(q, v).map_err(err)
        }
        ApiKey::DeleteRecords => {
            let mut q = DeleteRecordsRequest::default();
            for _ in 0..r.count(2) {
                let (name, _, n) = k.topic(r);
                let mut t = delete_records_request::DeleteRecordsTopic::default();
                t.name = TopicName(s(&name));
                let mut p = delete_records_request::DeleteRecordsPartition::default();
                p.partition_index = k.partition(r, n);
                p.offset = r.i64_edgy();
                t.partitions.push(p);
                q.topics.push(t);
            }
            q.timeout_ms = 1000;
            enc(q, v).map_err(err)
        }
        ApiKey::InitProducerId => {
            let mut q = InitProducerIdRequest::default();
            q.transactional_id = if r.chance(3) {
                Some(TransactionalId(string(r)))
            } else {
                None
            };
            q.transaction_timeout_ms = r.i32_edgy();
            if v >= 3 {
                q.producer_id = ProducerId(r.i64_edgy());
                q.producer_epoch = r.pick(&[-1, 0, i16::MAX]);
            }
            enc(q, v).map_err(err)
        }
        ApiKey::OffsetForLeaderEpoch => {
            let mut q = OffsetForLeaderEpochRequest::default();
            q.replica_id = BrokerId(-1);
            for _ in 0..r.count(2) {
                let (name, _, n) = k.topic(r);
                let mut t = offset_for_leader_epoch_request::OffsetForLeaderTopic::default();
                t.topic = TopicName(s(&name));
                let mut p = offset_for_leader_epoch_request::OffsetForLeaderPartition::default();
                p.partition = k.partition(r, n);
                p.current_leader_epoch = r.i32_edgy();
                p.leader_epoch = r.i32_edgy();
                t.partitions.push(p);
                q.topics.push(t);
            }
            enc(q, v).map_err(err)
        }
        ApiKey::DescribeConfigs => {
            let mut q = DescribeConfigsRequest::default();
            for _ in 0..r.count(2) {
                let mut c = describe_configs_request::DescribeConfigsResource::default();
                c.resource_type = r.pick(&[2, 4, 16, 0, -1]);
                c.resource_name = if c.resource_type == 4 {
                    s("0")
                } else {
                    s(&k.topic(r).0)
                };
                c.configuration_keys = opt!(r, vec![s("retention.ms"), string(r)]);
                q.resources.push(c);
            }
            if v >= 1 {
                q.include_synonyms = r.chance(2);
            }
            if v >= 3 {
                q.include_documentation = r.chance(2);
            }
            enc(q, v).map_err(err)
        }
        ApiKey::AlterConfigs => {
            let mut q = AlterConfigsRequest::default();
            for _ in 0..r.count(2) {
                let mut c = alter_configs_request::AlterConfigsResource::default();
                c.resource_type = r.pick(&[2, 4, 0]);
                c.resource_name = if c.resource_type == 4 {
                    s("")
                } else {
                    s(&k.topic(r).0)
                };
                let mut a = alter_configs_request::AlterableConfig::default();
                a.name = s(r.pick(&["retention.ms", "cleanup.policy", "bogus"]));
                a.value = opt!(r, s(r.pick(&["1000", "compact", "x"])));
                c.configs.push(a);
                q.resources.push(c);
            }
            // Validate-only mostly: a real change would alter the broker for
            // every later case.
            q.validate_only = !r.chance(8);
            enc(q, v).map_err(err)
        }
        ApiKey::CreatePartitions => {
            let mut q = CreatePartitionsRequest::default();
            for _ in 0..r.count(2) {
                let mut t = create_partitions_request::CreatePartitionsTopic::default();
                t.name = k.topic_name(r);
                t.count = r.pick(&[-1, 0, 1, 4, 9, i32::MAX]);
                if r.chance(4) {
                    let mut a = create_partitions_request::CreatePartitionsAssignment::default();
                    a.broker_ids = vec![BrokerId(0)];
                    t.assignments = Some(vec![a]);
                }
                q.topics.push(t);
            }
            q.timeout_ms = 1000;
            q.validate_only = !r.chance(4);
            enc(q, v).map_err(err)
        }
        ApiKey::IncrementalAlterConfigs => {
            let mut q = IncrementalAlterConfigsRequest::default();
            for _ in 0..r.count(2) {
                let mut c = incremental_alter_configs_request::AlterConfigsResource::default();
                c.resource_type = r.pick(&[2, 4, 16]);
                c.resource_name = s(&k.topic(r).0);
                let mut a = incremental_alter_configs_request::AlterableConfig::default();
                a.name = s(r.pick(&["retention.ms", "cleanup.policy", "bogus"]));
                a.config_operation = r.pick(&[0, 1, 2, 3, 9]);
                a.value = opt!(r, s(r.pick(&["1000", "compact,delete", ""])));
                c.configs.push(a);
                q.resources.push(c);
            }
            q.validate_only = !r.chance(8);
            enc(q, v).map_err(err)
        }
        ApiKey::DescribeCluster => {
            let mut q = DescribeClusterRequest::default();
            q.include_cluster_authorized_operations = r.chance(2);
            if v >= 1 {
                q.endpoint_type = r.pick(&[1, 2, 0]);
            }
            enc(q, v).map_err(err)
        }
        ApiKey::DescribeLogDirs => {
            let mut q = DescribeLogDirsRequest::default();
            q.topics = opt!(
                r,
                (0..r.count(2))
                    .map(|_| {
                        let mut t = describe_log_dirs_request::DescribableLogDirTopic::default();
                        t.topic = k.topic_name(r);
                        t.partitions = vec![0, -1, 7];
                        t
                    })
                    .collect(),
            );
            enc(q, v).map_err(err)
        }
        ApiKey::FindCoordinator => {
            let mut q = FindCoordinatorRequest::default();
            if v <= 3 {
                q.key = string(r);
            } else {
                q.coordinator_keys = (0..r.count(3)).map(|_| string(r)).collect();
            }
            if v >= 1 {
                q.key_type = r.pick(&[0, 1, 2, -1]);
            }
            enc(q, v).map_err(err)
        }
        ApiKey::JoinGroup => {
            let mut q = JoinGroupRequest::default();
            q.group_id = group(r);
            q.session_timeout_ms = r.pick(&[10_000, 0, -1, i32::MAX]);
            if v >= 1 {
                q.rebalance_timeout_ms = r.pick(&[100, 0, -1]);
            }
            q.member_id = if r.chance(2) { s("") } else { string(r) };
            if v >= 5 {
                q.group_instance_id = if r.chance(3) { Some(string(r)) } else { None };
            }
            q.protocol_type = s(r.pick(&["consumer", "connect", ""]));
            for _ in 0..r.count(3) {
                let mut p = join_group_request::JoinGroupRequestProtocol::default();
                p.name = s(r.pick(&["range", "roundrobin", "cooperative-sticky", ""]));
                p.metadata = Bytes::from(r.bytes(32));
                q.protocols.push(p);
            }
            if v >= 8 {
                q.reason = opt!(r, string(r));
            }
            enc(q, v).map_err(err)
        }
        ApiKey::SyncGroup => {
            let mut q = SyncGroupRequest::default();
            q.group_id = group(r);
            q.generation_id = r.i32_edgy();
            q.member_id = string(r);
            if v >= 3 {
                q.group_instance_id = if r.chance(3) { Some(string(r)) } else { None };
            }
            if v >= 5 {
                q.protocol_type = opt!(r, s("consumer"));
                q.protocol_name = opt!(r, s("range"));
            }
            for _ in 0..r.count(2) {
                let mut a = sync_group_request::SyncGroupRequestAssignment::default();
                a.member_id = string(r);
                a.assignment = Bytes::from(r.bytes(32));
                q.assignments.push(a);
            }
            enc(q, v).map_err(err)
        }
        ApiKey::Heartbeat => {
            let mut q = HeartbeatRequest::default();
            q.group_id = group(r);
            q.generation_id = r.i32_edgy();
            q.member_id = string(r);
            if v >= 3 {
                q.group_instance_id = if r.chance(3) { Some(string(r)) } else { None };
            }
            enc(q, v).map_err(err)
        }
        ApiKey::LeaveGroup => {
            let mut q = LeaveGroupRequest::default();
            q.group_id = group(r);
            if v <= 2 {
                q.member_id = string(r);
            } else {
                for _ in 0..r.count(3) {
                    let mut m = leave_group_request::MemberIdentity::default();
                    m.member_id = string(r);
                    m.group_instance_id = if r.chance(3) { Some(string(r)) } else { None };
                    if v >= 5 {
                        m.reason = opt!(r, string(r));
                    }
                    q.members.push(m);
                }
            }
            enc(q, v).map_err(err)
        }
        ApiKey::OffsetCommit => {
            let mut q = OffsetCommitRequest::default();
            q.group_id = group(r);
            q.generation_id_or_member_epoch = r.pick(&[-1, 0, 1, i32::MAX]);
            q.member_id = if r.chance(2) { s("") } else { string(r) };
            if v >= 7 {
                q.group_instance_id = if r.chance(3) { Some(string(r)) } else { None };
            }
            if (2..=4).contains(&v) {
                q.retention_time_ms = r.pick(&[-1, 0, 1000]);
            }
            for _ in 0..r.count(2) {
                let (name, _, n) = k.topic(r);
                let mut t = offset_commit_request::OffsetCommitRequestTopic::default();
                t.name = TopicName(s(&name));
                for _ in 0..r.count(2) {
                    let mut p = offset_commit_request::OffsetCommitRequestPartition::default();
                    p.partition_index = k.partition(r, n);
                    p.committed_offset = r.i64_edgy();
                    if v >= 6 {
                        p.committed_leader_epoch = r.i32_edgy();
                    }
                    if v == 1 {
                        p.commit_timestamp = r.i64_edgy();
                    }
                    p.committed_metadata = opt!(r, string(r));
                    t.partitions.push(p);
                }
                q.topics.push(t);
            }
            enc(q, v).map_err(err)
        }
        ApiKey::OffsetFetch => {
            let mut q = OffsetFetchRequest::default();
            let topics = |r: &mut Rng| -> Vec<(String, Uuid, i32)> {
                (0..r.count(2)).map(|_| k.topic(r)).collect()
            };
            if v <= 7 {
                q.group_id = group(r);
                q.topics = if v >= 2 && r.chance(3) {
                    None
                } else {
                    Some(
                        topics(r)
                            .into_iter()
                            .map(|(name, _, _)| {
                                let mut t =
                                    offset_fetch_request::OffsetFetchRequestTopic::default();
                                t.name = TopicName(s(&name));
                                t.partition_indexes = vec![0, 1, -1];
                                t
                            })
                            .collect(),
                    )
                };
            } else {
                for _ in 0..r.count(2) {
                    let mut g = offset_fetch_request::OffsetFetchRequestGroup::default();
                    g.group_id = group(r);
                    if v >= 9 {
                        g.member_id = opt!(r, string(r));
                        g.member_epoch = r.pick(&[-1, 0, 5]);
                    }
                    g.topics = if r.chance(3) {
                        None
                    } else {
                        Some(
                            topics(r)
                                .into_iter()
                                .map(|(name, _, _)| {
                                    let mut t =
                                        offset_fetch_request::OffsetFetchRequestTopics::default();
                                    t.name = TopicName(s(&name));
                                    t.partition_indexes = vec![0, 2];
                                    t
                                })
                                .collect(),
                        )
                    };
                    q.groups.push(g);
                }
            }
            if v >= 7 {
                q.require_stable = r.chance(2);
            }
            enc(q, v).map_err(err)
        }
        ApiKey::OffsetDelete => {
            let mut q = OffsetDeleteRequest::default();
            q.group_id = group(r);
            for _ in 0..r.count(2) {
                let (name, _, n) = k.topic(r);
                let mut t = offset_delete_request::OffsetDeleteRequestTopic::default();
                t.name = TopicName(s(&name));
                let mut p = offset_delete_request::OffsetDeleteRequestPartition::default();
                p.partition_index = k.partition(r, n);
                t.partitions.push(p);
                q.topics.push(t);
            }
            enc(q, v).map_err(err)
        }
        ApiKey::DeleteGroups => {
            let mut q = DeleteGroupsRequest::default();
            q.groups_names = (0..r.count(3)).map(|_| group(r)).collect();
            enc(q, v).map_err(err)
        }
        ApiKey::DescribeGroups => {
            let mut q = DescribeGroupsRequest::default();
            q.groups = (0..r.count(3)).map(|_| group(r)).collect();
            if v >= 3 {
                q.include_authorized_operations = r.chance(2);
            }
            enc(q, v).map_err(err)
        }
        ApiKey::ListGroups => {
            let mut q = ListGroupsRequest::default();
            if v >= 4 {
                q.states_filter = (0..r.count(2))
                    .map(|_| s(r.pick(&["Stable", "Empty", "bogus"])))
                    .collect();
            }
            if v >= 5 {
                q.types_filter = (0..r.count(2))
                    .map(|_| s(r.pick(&["classic", "consumer", "x"])))
                    .collect();
            }
            enc(q, v).map_err(err)
        }
        ApiKey::ConsumerGroupHeartbeat => {
            let mut q = ConsumerGroupHeartbeatRequest::default();
            q.group_id = group(r);
            q.member_id = if r.chance(2) {
                s(&Uuid::from_u128(r.next_u64() as u128).to_string())
            } else {
                string(r)
            };
            q.member_epoch = r.pick(&[0, -1, -2, 1, i32::MAX]);
            q.instance_id = if r.chance(3) { Some(string(r)) } else { None };
            q.rack_id = opt!(r, string(r));
            q.rebalance_timeout_ms = r.pick(&[-1, 0, 100, 30_000]);
            q.subscribed_topic_names = opt!(r, (0..r.count(3)).map(|_| k.topic_name(r)).collect());
            if v >= 1 && r.chance(3) {
                q.subscribed_topic_regex = Some(s(r.pick(&["fuzz-.*", "(", "a{99999}", ""])));
            }
            q.server_assignor = opt!(r, s(r.pick(&["uniform", "range", "bogus"])));
            q.topic_partitions = opt!(
                r,
                (0..r.count(2))
                    .map(|_| {
                        let (_, id, _) = k.topic(r);
                        let mut t = consumer_group_heartbeat_request::TopicPartitions::default();
                        t.topic_id = id;
                        t.partitions = vec![0, 1];
                        t
                    })
                    .collect(),
            );
            enc(q, v).map_err(err)
        }
        ApiKey::ConsumerGroupDescribe => {
            let mut q = ConsumerGroupDescribeRequest::default();
            q.group_ids = (0..r.count(3)).map(|_| group(r)).collect();
            q.include_authorized_operations = r.chance(2);
            enc(q, v).map_err(err)
        }
        ApiKey::SaslHandshake => {
            let mut q = SaslHandshakeRequest::default();
            q.mechanism = s(r.pick(&["PLAIN", "SCRAM-SHA-256", "bogus"]));
            enc(q, v).map_err(err)
        }
        ApiKey::SaslAuthenticate => {
            let mut q = SaslAuthenticateRequest::default();
            q.auth_bytes = Bytes::from(r.bytes(32));
            enc(q, v).map_err(err)
        }
        ApiKey::DescribeAcls => {
            let mut q = DescribeAclsRequest::default();
            q.resource_type_filter = r.pick(&[1, 2, 3, 4, 0, 99]);
            q.resource_name_filter = opt!(r, string(r));
            q.pattern_type_filter = r.pick(&[1, 2, 3, 4, 0]);
            q.principal_filter = opt!(r, s("User:alice"));
            q.host_filter = opt!(r, s("*"));
            q.operation = r.pick(&[1, 2, 3, 0, 42]);
            q.permission_type = r.pick(&[1, 2, 3, 0]);
            enc(q, v).map_err(err)
        }
        ApiKey::CreateAcls => {
            let mut q = CreateAclsRequest::default();
            for _ in 0..r.count(2) {
                let mut a = create_acls_request::AclCreation::default();
                a.resource_type = r.pick(&[2, 3, 4, 0]);
                a.resource_name = string(r);
                a.resource_pattern_type = r.pick(&[3, 4, 1, 0]);
                a.principal = s(r.pick(&["User:alice", "bogus", ""]));
                a.host = s(r.pick(&["*", "127.0.0.1", ""]));
                a.operation = r.pick(&[2, 3, 4, 0, 99]);
                a.permission_type = r.pick(&[2, 3, 0]);
                q.creations.push(a);
            }
            enc(q, v).map_err(err)
        }
        ApiKey::DeleteAcls => {
            let mut q = DeleteAclsRequest::default();
            for _ in 0..r.count(2) {
                let mut f = delete_acls_request::DeleteAclsFilter::default();
                f.resource_type_filter = r.pick(&[1, 2, 0]);
                f.resource_name_filter = opt!(r, string(r));
                f.pattern_type_filter = r.pick(&[1, 3, 0]);
                f.principal_filter = opt!(r, s("User:alice"));
                f.host_filter = None;
                f.operation = r.pick(&[1, 2, 0]);
                f.permission_type = r.pick(&[1, 3, 0]);
                q.filters.push(f);
            }
            enc(q, v).map_err(err)
        }
        ApiKey::DescribeUserScramCredentials => {
            let mut q = DescribeUserScramCredentialsRequest::default();
            q.users = opt!(
                r,
                (0..r.count(2))
                    .map(|_| {
                        let mut u = describe_user_scram_credentials_request::UserName::default();
                        u.name = string(r);
                        u
                    })
                    .collect(),
            );
            enc(q, v).map_err(err)
        }
        ApiKey::AlterUserScramCredentials => {
            let mut q = AlterUserScramCredentialsRequest::default();
            for _ in 0..r.count(2) {
                let mut d =
                    alter_user_scram_credentials_request::ScramCredentialDeletion::default();
                d.name = string(r);
                d.mechanism = r.pick(&[1, 2, 0, 9]);
                q.deletions.push(d);
            }
            for _ in 0..r.count(2) {
                let mut u =
                    alter_user_scram_credentials_request::ScramCredentialUpsertion::default();
                u.name = string(r);
                u.mechanism = r.pick(&[1, 2, 0]);
                u.iterations = r.pick(&[4096, 0, -1, i32::MAX]);
                u.salt = Bytes::from(r.bytes(16));
                u.salted_password = Bytes::from(r.bytes(32));
                q.upsertions.push(u);
            }
            enc(q, v).map_err(err)
        }
        ApiKey::AddPartitionsToTxn => {
            let mut q = AddPartitionsToTxnRequest::default();
            let topics =
                |r: &mut Rng| -> Vec<add_partitions_to_txn_request::AddPartitionsToTxnTopic> {
                    (0..r.count(2))
                        .map(|_| {
                            let (name, _, count) = k.topic(r);
                            let mut t =
                                add_partitions_to_txn_request::AddPartitionsToTxnTopic::default();
                            t.name = TopicName(s(&name));
                            t.partitions = (0..r.count(3)).map(|_| k.partition(r, count)).collect();
                            t
                        })
                        .collect()
                };
            if v >= 4 {
                for _ in 0..r.count(2) {
                    let mut t =
                        add_partitions_to_txn_request::AddPartitionsToTxnTransaction::default();
                    t.transactional_id = TransactionalId(string(r));
                    t.producer_id = ProducerId(r.i64_edgy());
                    t.producer_epoch = r.pick(&[-1, 0, i16::MAX]);
                    t.verify_only = r.chance(2);
                    t.topics = topics(r);
                    q.transactions.push(t);
                }
            } else {
                q.v3_and_below_transactional_id = TransactionalId(string(r));
                q.v3_and_below_producer_id = ProducerId(r.i64_edgy());
                q.v3_and_below_producer_epoch = r.pick(&[-1, 0, i16::MAX]);
                q.v3_and_below_topics = topics(r);
            }
            enc(q, v).map_err(err)
        }
        ApiKey::AddOffsetsToTxn => {
            let mut q = AddOffsetsToTxnRequest::default();
            q.transactional_id = TransactionalId(string(r));
            q.producer_id = ProducerId(r.i64_edgy());
            q.producer_epoch = r.pick(&[-1, 0, i16::MAX]);
            q.group_id = group(r);
            enc(q, v).map_err(err)
        }
        ApiKey::EndTxn => {
            let mut q = EndTxnRequest::default();
            q.transactional_id = TransactionalId(string(r));
            q.producer_id = ProducerId(r.i64_edgy());
            q.producer_epoch = r.pick(&[-1, 0, i16::MAX]);
            q.committed = r.chance(2);
            enc(q, v).map_err(err)
        }
        ApiKey::TxnOffsetCommit => {
            let mut q = TxnOffsetCommitRequest::default();
            q.transactional_id = TransactionalId(string(r));
            q.group_id = group(r);
            q.producer_id = ProducerId(r.i64_edgy());
            q.producer_epoch = r.pick(&[-1, 0, i16::MAX]);
            if v >= 3 {
                q.generation_id = r.i32_edgy();
                q.member_id = string(r);
                q.group_instance_id = opt!(r, string(r));
            }
            for _ in 0..r.count(2) {
                let (name, _, count) = k.topic(r);
                let mut t = txn_offset_commit_request::TxnOffsetCommitRequestTopic::default();
                t.name = TopicName(s(&name));
                for _ in 0..r.count(2) {
                    let mut p =
                        txn_offset_commit_request::TxnOffsetCommitRequestPartition::default();
                    p.partition_index = k.partition(r, count);
                    p.committed_offset = r.i64_edgy();
                    if v >= 2 {
                        p.committed_leader_epoch = r.pick(&[-1, 0, i32::MAX]);
                    }
                    p.committed_metadata = opt!(r, string(r));
                    t.partitions.push(p);
                }
                q.topics.push(t);
            }
            enc(q, v).map_err(err)
        }
        ApiKey::DescribeProducers => {
            let mut q = DescribeProducersRequest::default();
            for _ in 0..r.count(2) {
                let (name, _, count) = k.topic(r);
                let mut t = describe_producers_request::TopicRequest::default();
                t.name = TopicName(s(&name));
                t.partition_indexes = (0..r.count(3)).map(|_| k.partition(r, count)).collect();
                q.topics.push(t);
            }
            enc(q, v).map_err(err)
        }
        ApiKey::DescribeTransactions => {
            let mut q = DescribeTransactionsRequest::default();
            q.transactional_ids = (0..r.count(3))
                .map(|_| TransactionalId(string(r)))
                .collect();
            enc(q, v).map_err(err)
        }
        ApiKey::ListTransactions => {
            let mut q = ListTransactionsRequest::default();
            q.state_filters = (0..r.count(2))
                .map(|_| s(r.pick(&["Ongoing", "Empty", "CompleteAbort", "bogus"])))
                .collect();
            q.producer_id_filters = (0..r.count(2))
                .map(|_| ProducerId(r.pick(&[0, 1, -1, i64::MAX])))
                .collect();
            if v >= 1 {
                q.duration_filter = r.pick(&[-1, 0, 1000, i64::MAX, i64::MIN]);
            }
            if v >= 2 {
                q.transactional_id_pattern = opt!(
                    r,
                    s(r.pick(&["", ".*", "pay-[0-9]+", "(", "a{1000}{1000}"]))
                );
            }
            enc(q, v).map_err(err)
        }
        other => Err(format!("no generator for {other:?}")),
    }
}
