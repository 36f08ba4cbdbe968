//! The `request` target: a byte stream as a client connection would send it,
//! cut into size-prefixed frames by the broker's own `connection::FrameReader`
//! (harness limits), each read by `handlers::parse` and served by
//! `handlers::dispatch` against one in-process broker (temporary data
//! directory, created once per process).
//!
//! A response is checked the way a client would read it: its size prefix
//! matches its bytes, the correlation id is the request's, and the body decodes
//! as the response type of that API and version with nothing left over.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{Buf, Bytes};
use herald_broker::handlers::{self, Connection, Reply};
use herald_broker::{Broker, BrokerConfig, RunningBroker};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;

pub use herald_broker::connection::FRAME_BYTES_MIN;
/// Frames larger than this are refused by the harness's broker, as
/// `socket.request.max.bytes` would. Small, so that a fuzzer's length fields
/// are judged against a limit it can reach.
pub const FRAME_BYTES_MAX: usize = 1 << 20;
/// At most this many frames of one input are served (a pipelining client).
pub const FRAMES_PER_INPUT_MAX: usize = 16;
/// Topics that always exist, so generated requests reach real partitions.
pub const BASE_TOPICS: &[(&str, i32)] = &[("fuzz-a", 3), ("fuzz-b", 1)];
/// Partition count limit of the harness's broker (a fuzzed CreateTopics must
/// not create thousands of directories per input).
pub const PARTITIONS_PER_TOPIC_MAX: i32 = 8;
/// More topics than this (created by fuzzed requests) are deleted after an input.
const EXTRA_TOPICS_MAX: usize = 32;

/// What the broker did with one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A well-formed response for the request's API and version.
    Response,
    /// No response by design (Produce with acks=0).
    NoResponse,
    /// An answer that waits (a long-poll Fetch, a JoinGroup in a rebalance)
    /// and was not ready within the harness's wait; dropped, as a client
    /// disconnecting would.
    Pending,
    /// A protocol error: the connection would be closed and a line logged.
    Closed(String),
    /// The frame's size is outside the accepted range or the input ended
    /// inside a frame: the connection would be closed.
    FrameRejected(String),
}

pub struct Harness {
    runtime: tokio::runtime::Runtime,
    broker: Arc<Broker>,
    conn: Connection,
    wait: Duration,
    _running: RunningBroker,
    _dir: tempfile::TempDir,
}

static SHARED: OnceLock<Harness> = OnceLock::new();

impl Harness {
    /// The process's broker, started at the first call.
    pub fn shared() -> &'static Harness {
        SHARED.get_or_init(|| Harness::start().expect("the fuzz harness broker starts"))
    }

    fn start() -> anyhow::Result<Harness> {
        let dir = crate::storage::tempdir();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let mut config = BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            frame_bytes_max: FRAME_BYTES_MAX,
            partitions_per_topic_max: PARTITIONS_PER_TOPIC_MAX,
            group_initial_rebalance_delay: Duration::from_millis(0),
            retention_check_interval: Duration::from_secs(1),
            ..BrokerConfig::default()
        };
        // Throughput, not durability, matters here: no fsync per produce;
        // small segments and a byte retention keep the disk use bounded.
        config.log.flush_messages = u64::MAX;
        config.log.flush_interval = None;
        config.log.segment_bytes_max = 256 * 1024;
        config.log.retention_bytes_max = Some(1024 * 1024);
        let running = runtime.block_on(herald_broker::start(config))?;
        let broker = running.broker.clone();
        let wait = std::env::var("HERALD_FUZZ_WAIT_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis)
            .unwrap_or(Duration::from_millis(20));
        let peer: SocketAddr = ([127, 0, 0, 1], 40000).into();
        let h = Harness {
            runtime,
            broker,
            conn: Connection {
                peer,
                client_ip: Arc::from("127.0.0.1"),
                listener: Arc::from("PLAINTEXT"),
                principal: Arc::from("User:ANONYMOUS"),
            },
            wait,
            _running: running,
            _dir: dir,
        };
        h.ensure_base_topics();
        Ok(h)
    }

    /// The broker's data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// The topics generated requests name, with their ids.
    pub fn known_topics(&self) -> Vec<(String, uuid::Uuid, i32)> {
        BASE_TOPICS
            .iter()
            .filter_map(|(name, _)| self.broker.topics.get(name))
            .map(|t| (t.name.clone(), t.id, t.partition_count()))
            .collect()
    }

    fn ensure_base_topics(&self) {
        self.runtime.block_on(async {
            for (name, partitions) in BASE_TOPICS {
                if self.broker.topics.get(name).is_none() {
                    let _ = self
                        .broker
                        .topics
                        .create(name, *partitions, BTreeMap::new())
                        .await;
                }
            }
        });
    }

    /// Deletes topics fuzzed requests created beyond a few, and recreates the
    /// base topics if a fuzzed DeleteTopics removed them.
    fn tidy(&self) {
        let extra: Vec<String> = self
            .broker
            .topics
            .list()
            .into_iter()
            .filter(|t| !t.is_internal() && !BASE_TOPICS.iter().any(|(n, _)| *n == t.name))
            .map(|t| t.name.clone())
            .collect();
        if extra.len() > EXTRA_TOPICS_MAX {
            self.runtime.block_on(async {
                for name in &extra {
                    let _ = self.broker.topics.delete(name).await;
                }
            });
        }
        self.ensure_base_topics();
    }

    /// Serves every frame of `data` in order, as one connection would, and
    /// stops where the connection would be closed.
    pub fn run_stream(&self, data: &[u8]) -> Vec<Outcome> {
        let mut out = Vec::new();
        let mut frames = herald_broker::connection::FrameReader::new(data);
        while out.len() < FRAMES_PER_INPUT_MAX {
            let frame = self
                .runtime
                .block_on(frames.next(FRAME_BYTES_MIN, FRAME_BYTES_MAX));
            let frame = match frame {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    out.push(Outcome::FrameRejected(e.to_string()));
                    break;
                }
            };
            let outcome = self.run_frame(frame);
            let closed = matches!(outcome, Outcome::Closed(_));
            out.push(outcome);
            if closed {
                break;
            }
        }
        self.tidy();
        out
    }

    /// Serves one frame (without its size prefix), at least `FRAME_BYTES_MIN` long.
    pub fn run_frame(&self, frame: Bytes) -> Outcome {
        assert!(
            frame.len() >= FRAME_BYTES_MIN,
            "frames are size-checked first"
        );
        let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
        let version = i16::from_be_bytes([frame[2], frame[3]]);
        let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
        let mut req = match handlers::parse(frame) {
            Err(e) => return Outcome::Closed(e.to_string()),
            Ok(Err(answer)) => {
                if raw_key == ApiKey::ApiVersions as i16 {
                    // KIP-511: an ApiVersions of an unknown version gets a v0 answer.
                    check_response(&answer, ApiKey::ApiVersions, 0, correlation_id);
                } else {
                    // A MessageSet Produce/Fetch (v0-2/v0-3), answered
                    // UNSUPPORTED_VERSION in a schema kafka-protocol lacks:
                    // the frame and its header are checked.
                    assert!(
                        answer.len() >= 8,
                        "MessageSet answer shorter than its header"
                    );
                    let size = i32::from_be_bytes([answer[0], answer[1], answer[2], answer[3]]);
                    assert_eq!(
                        size as i64,
                        answer.len() as i64 - 4,
                        "MessageSet answer size"
                    );
                    let corr = i32::from_be_bytes([answer[4], answer[5], answer[6], answer[7]]);
                    assert_eq!(corr, correlation_id, "MessageSet answer correlation id");
                }
                return Outcome::Response;
            }
            Ok(Ok(r)) => r,
        };
        assert_eq!(req.api_key as i16, raw_key);
        assert_eq!(req.version, version);
        // The connection serves these two itself (sasl.rs), before dispatch;
        // here their bodies are decoded as it would.
        match req.api_key {
            ApiKey::SaslHandshake => {
                return match handlers::decode_body::<SaslHandshakeRequest>(&mut req) {
                    Ok(_) => Outcome::NoResponse,
                    Err(e) => Outcome::Closed(e.to_string()),
                };
            }
            ApiKey::SaslAuthenticate => {
                return match handlers::decode_body::<SaslAuthenticateRequest>(&mut req) {
                    Ok(_) => Outcome::NoResponse,
                    Err(e) => Outcome::Closed(e.to_string()),
                };
            }
            _ => {}
        }
        let api_key = req.api_key;
        self.runtime.block_on(async {
            let answer = match handlers::dispatch(&self.broker, req, &self.conn).await {
                Err(e) => return Outcome::Closed(e.to_string()),
                Ok(Reply::Now(bytes)) => bytes,
                Ok(Reply::Later(pending)) => match tokio::time::timeout(self.wait, pending).await {
                    Ok(bytes) => bytes,
                    Err(_) => return Outcome::Pending,
                },
            };
            match answer {
                None => Outcome::NoResponse,
                Some(bytes) => {
                    check_response(&bytes, api_key, version, correlation_id);
                    Outcome::Response
                }
            }
        })
    }
}

/// Panics unless `frame` is a well-formed response: size prefix, correlation
/// id, header, and a body that decodes fully as `api_key`'s response of `version`.
pub fn check_response(frame: &[u8], api_key: ApiKey, version: i16, correlation_id: i32) {
    assert!(
        !frame.is_empty(),
        "{api_key:?} v{version}: the handler's response did not encode (an empty frame closes the connection)"
    );
    assert!(
        frame.len() >= 8,
        "{api_key:?} v{version}: response shorter than its header"
    );
    let size = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
    assert_eq!(
        size as i64,
        frame.len() as i64 - 4,
        "{api_key:?} v{version}: size prefix does not match the response"
    );
    let mut buf = Bytes::copy_from_slice(&frame[4..]);
    let header = ResponseHeader::decode(&mut buf, api_key.response_header_version(version))
        .unwrap_or_else(|e| panic!("{api_key:?} v{version}: response header: {e}"));
    assert_eq!(
        header.correlation_id, correlation_id,
        "{api_key:?} v{version}: correlation id"
    );
    let decoded = decode_response(api_key, version, &mut buf);
    if let Err(e) = decoded {
        panic!("{api_key:?} v{version}: response body does not decode: {e}");
    }
    assert_eq!(
        buf.remaining(),
        0,
        "{api_key:?} v{version}: bytes left after the response body"
    );
}

macro_rules! decode_as {
    ($buf:expr, $version:expr, $key:expr, { $($variant:ident => $ty:ty),* $(,)? }) => {
        match $key {
            $(ApiKey::$variant => <$ty>::decode($buf, $version).map(|_| ()).map_err(|e| e.to_string()),)*
            other => Err(format!("no response type listed for {other:?}")),
        }
    };
}

fn decode_response(api_key: ApiKey, version: i16, buf: &mut Bytes) -> Result<(), String> {
    decode_as!(buf, version, api_key, {
        Produce => ProduceResponse,
        Fetch => FetchResponse,
        ListOffsets => ListOffsetsResponse,
        Metadata => MetadataResponse,
        ApiVersions => ApiVersionsResponse,
        CreateTopics => CreateTopicsResponse,
        DeleteTopics => DeleteTopicsResponse,
        DeleteRecords => DeleteRecordsResponse,
        InitProducerId => InitProducerIdResponse,
        OffsetForLeaderEpoch => OffsetForLeaderEpochResponse,
        DescribeConfigs => DescribeConfigsResponse,
        AlterConfigs => AlterConfigsResponse,
        CreatePartitions => CreatePartitionsResponse,
        IncrementalAlterConfigs => IncrementalAlterConfigsResponse,
        DescribeCluster => DescribeClusterResponse,
        DescribeLogDirs => DescribeLogDirsResponse,
        FindCoordinator => FindCoordinatorResponse,
        JoinGroup => JoinGroupResponse,
        SyncGroup => SyncGroupResponse,
        Heartbeat => HeartbeatResponse,
        LeaveGroup => LeaveGroupResponse,
        OffsetCommit => OffsetCommitResponse,
        OffsetFetch => OffsetFetchResponse,
        OffsetDelete => OffsetDeleteResponse,
        DeleteGroups => DeleteGroupsResponse,
        DescribeGroups => DescribeGroupsResponse,
        ListGroups => ListGroupsResponse,
        ConsumerGroupHeartbeat => ConsumerGroupHeartbeatResponse,
        ConsumerGroupDescribe => ConsumerGroupDescribeResponse,
        SaslHandshake => SaslHandshakeResponse,
        SaslAuthenticate => SaslAuthenticateResponse,
        DescribeAcls => DescribeAclsResponse,
        CreateAcls => CreateAclsResponse,
        DeleteAcls => DeleteAclsResponse,
        DescribeUserScramCredentials => DescribeUserScramCredentialsResponse,
        AlterUserScramCredentials => AlterUserScramCredentialsResponse,
        AddPartitionsToTxn => AddPartitionsToTxnResponse,
        AddOffsetsToTxn => AddOffsetsToTxnResponse,
        EndTxn => EndTxnResponse,
        TxnOffsetCommit => TxnOffsetCommitResponse,
        DescribeProducers => DescribeProducersResponse,
        DescribeTransactions => DescribeTransactionsResponse,
        ListTransactions => ListTransactionsResponse,
    })
}
