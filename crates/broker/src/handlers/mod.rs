//! One module per Kafka API. `dispatch` checks the API key and version against
//! what Herald serves, decodes the request (the frame is already size-capped),
//! and calls the handler.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};

use herald_security::acl::{CLUSTER_NAME, Operation, ResourceType};

use crate::broker::Broker;
use crate::error::ProtocolError;
use crate::server::PendingResponse;

pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod alter_configs;
pub mod alter_user_scram_credentials;
pub mod api_versions;
pub mod consumer_group_describe;
pub mod consumer_group_heartbeat;
pub mod create_acls;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_acls;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_acls;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod describe_transactions;
pub mod describe_user_scram_credentials;
pub mod end_txn;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod list_transactions;
pub mod message_sets;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod sync_group;
pub mod txn_offset_commit;

/// KIP-588: clients older than `fenced_from` know PRODUCER_FENCED as
/// INVALID_PRODUCER_EPOCH.
pub fn fenced_for_version(
    e: kafka_protocol::ResponseError,
    version: i16,
    fenced_from: i16,
) -> kafka_protocol::ResponseError {
    if e == kafka_protocol::ResponseError::ProducerFenced && version < fenced_from {
        kafka_protocol::ResponseError::InvalidProducerEpoch
    } else {
        e
    }
}

/// A handler's answer: bytes now (None: no response, acks=0), or later.
pub enum Reply {
    Now(Option<Bytes>),
    Later(PendingResponse),
}

/// What a handler knows about the request it serves.
#[derive(Clone)]
pub struct Ctx {
    pub broker: Arc<Broker>,
    pub api_key: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
    /// The peer as Kafka shows it in group descriptions ("/127.0.0.1").
    pub client_host: String,
    /// The peer's address as ACLs name hosts ("127.0.0.1").
    pub client_ip: Arc<str>,
    /// The listener the request came in on (Metadata gives its endpoints).
    pub listener: Arc<str>,
    /// `User:NAME`, or `User:ANONYMOUS`.
    pub principal: Arc<str>,
}

impl Ctx {
    /// Whether this request's principal may do `operation` on the resource
    /// (always, without an authorizer); denials are counted and logged.
    pub fn authorize(&self, operation: Operation, resource_type: ResourceType, name: &str) -> bool {
        self.broker.security.authorize(
            &self.principal,
            &self.client_ip,
            operation,
            resource_type,
            name,
        )
    }

    /// `authorize` without logging a denial (for filtering lists).
    pub fn may(&self, operation: Operation, resource_type: ResourceType, name: &str) -> bool {
        self.broker.security.allowed_quietly(
            &self.principal,
            &self.client_ip,
            operation,
            resource_type,
            name,
        )
    }

    /// On the cluster resource.
    pub fn authorize_cluster(&self, operation: Operation) -> bool {
        self.authorize(operation, ResourceType::Cluster, CLUSTER_NAME)
    }

    /// Encodes a response with its header and size prefix.
    pub fn encode<R: Encodable + HeaderVersion>(&self, response: &R) -> Bytes {
        encode_response(self.correlation_id, self.api_key, self.version, response)
    }
    pub fn reply<R: Encodable + HeaderVersion>(
        &self,
        response: &R,
    ) -> Result<Reply, ProtocolError> {
        Ok(Reply::Now(Some(self.encode(response))))
    }
}

pub fn encode_response<R: Encodable + HeaderVersion>(
    correlation_id: i32,
    api_key: ApiKey,
    version: i16,
    response: &R,
) -> Bytes {
    let header_version = api_key.response_header_version(version);
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    buf.put_i32(correlation_id);
    if header_version >= 1 {
        buf.put_u8(0); // no tagged fields
    }
    if let Err(e) = response.encode(&mut buf, version) {
        // Only reachable through a handler bug (a field set that the version
        // cannot carry). An empty frame tells the writer to close the connection,
        // so the client fails fast instead of timing out.
        tracing::error!(?api_key, version, error = %e, "failed to encode response; closing connection");
        return Bytes::new();
    }
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    buf.freeze()
}

fn decode<T: Decodable>(buf: &mut Bytes, api_key: i16, version: i16) -> Result<T, ProtocolError> {
    T::decode(buf, version).map_err(|e| ProtocolError::Malformed {
        api_key,
        version,
        reason: e.to_string(),
    })
}

/// A request frame whose header is read.
pub struct Request {
    pub api_key: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
    /// The body after the header.
    pub body: Bytes,
}

/// Reads a frame's header: Ok(Err(bytes)) is an answer given at once (an
/// ApiVersions of a version Herald does not know, KIP-511; a Produce or Fetch
/// of a MessageSet version, UNSUPPORTED_VERSION).
pub fn parse(frame: Bytes) -> Result<Result<Request, Bytes>, ProtocolError> {
    // The connection refuses shorter frames before this; checked here too so
    // that no caller can make the indexing below panic.
    if frame.len() < 8 {
        return Err(ProtocolError::Malformed {
            api_key: -1,
            version: -1,
            reason: format!("a {}-byte frame has no request header", frame.len()),
        });
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api_key = ApiKey::try_from(raw_key).map_err(|_| ProtocolError::UnknownApiKey(raw_key))?;
    let Some(range) = api_versions::served_range(api_key) else {
        return Err(ProtocolError::UnknownApiKey(raw_key));
    };
    if version < range.0 || version > range.1 {
        if api_key == ApiKey::ApiVersions {
            // KIP-511: answer an unknown ApiVersions version with v0 and our ranges.
            return Ok(Err(api_versions::unsupported_version_response(
                correlation_id,
            )));
        }
        if message_sets::is_message_set_version(api_key, version) {
            // Answered UNSUPPORTED_VERSION per partition (acks=0: closed).
            if let Some(answer) = message_sets::refuse(frame, api_key, version, correlation_id)? {
                return Ok(Err(answer));
            }
        }
        // Other versions Herald does not know cannot be answered in their own
        // schema (kafka-protocol has none for them): closed, as Kafka 4 does.
        return Err(ProtocolError::UnsupportedVersion {
            api_key: raw_key,
            version,
        });
    }
    let mut buf = frame;
    // Decoded at the header's own version, but a failure names the request's
    // API version (the log line said "v2" for every flexible request).
    let header =
        RequestHeader::decode(&mut buf, api_key.request_header_version(version)).map_err(|e| {
            ProtocolError::Malformed {
                api_key: raw_key,
                version,
                reason: format!("request header: {e}"),
            }
        })?;
    Ok(Ok(Request {
        api_key,
        version,
        correlation_id,
        client_id: header.client_id.map(|c| c.to_string()),
        body: buf,
    }))
}

/// Decodes a request body of the given type.
pub fn decode_body<T: Decodable>(req: &mut Request) -> Result<T, ProtocolError> {
    decode(&mut req.body, req.api_key as i16, req.version)
}

/// Who sent a request, on which listener.
#[derive(Clone)]
pub struct Connection {
    pub peer: std::net::SocketAddr,
    /// `peer`'s address as ACLs name hosts, made once per connection.
    pub client_ip: Arc<str>,
    pub listener: Arc<str>,
    pub principal: Arc<str>,
}

pub async fn dispatch(
    broker: &Arc<Broker>,
    req: Request,
    conn: &Connection,
) -> Result<Reply, ProtocolError> {
    let Request {
        api_key,
        version,
        correlation_id,
        client_id,
        body: mut buf,
    } = req;
    let raw_key = api_key as i16;
    let ctx = Ctx {
        broker: broker.clone(),
        api_key,
        version,
        correlation_id,
        client_id,
        client_host: format!("/{}", conn.peer.ip()),
        client_ip: conn.client_ip.clone(),
        listener: conn.listener.clone(),
        principal: conn.principal.clone(),
    };
    if api_key == ApiKey::Produce {
        broker.topics.engine().admit(buf.len()).await;
    }
    let b = &mut buf;
    match api_key {
        ApiKey::ApiVersions => api_versions::handle(&ctx, decode(b, raw_key, version)?),
        ApiKey::Metadata => metadata::handle(&ctx, decode(b, raw_key, version)?),
        ApiKey::Produce => produce::handle(&ctx, decode(b, raw_key, version)?),
        ApiKey::Fetch => fetch::handle(&ctx, decode(b, raw_key, version)?),
        ApiKey::ListOffsets => list_offsets::handle(&ctx, decode(b, raw_key, version)?),
        ApiKey::InitProducerId => init_producer_id::handle(&ctx, decode(b, raw_key, version)?),
        ApiKey::AddPartitionsToTxn => {
            add_partitions_to_txn::handle(&ctx, decode(b, raw_key, version)?)
        }
        ApiKey::AddOffsetsToTxn => add_offsets_to_txn::handle(&ctx, decode(b, raw_key, version)?),
        ApiKey::EndTxn => end_txn::handle(&ctx, decode(b, raw_key, version)?),
        ApiKey::TxnOffsetCommit => txn_offset_commit::handle(&ctx, decode(b, raw_key, version)?),
        ApiKey::CreateTopics => create_topics::handle(&ctx, decode(b, raw_key, version)?),
        ApiKey::DeleteTopics => delete_topics::handle(&ctx, decode(b, raw_key, version)?),
        ApiKey::CreatePartitions => create_partitions::handle(&ctx, decode(b, raw_key, version)?),
        ApiKey::DescribeConfigs => describe_configs::handle(&ctx, decode(b, raw_key, version)?),
        ApiKey::AlterConfigs => alter_configs::handle_alter(&ctx, decode(b, raw_key, version)?),
        ApiKey::IncrementalAlterConfigs => {
            alter_configs::handle_incremental(&ctx, decode(b, raw_key, version)?)
        }
        ApiKey::DeleteRecords => delete_records::handle(&ctx, decode(b, raw_key, version)?),
        ApiKey::OffsetForLeaderEpoch => {
            offset_for_leader_epoch::handle(&ctx, decode(b, raw_key, version)?)
        }
        ApiKey::DescribeCluster => describe_cluster::handle(&ctx, decode(b, raw_key, version)?),
        ApiKey::DescribeLogDirs => describe_log_dirs::handle(&ctx, decode(b, raw_key, version)?),
        ApiKey::FindCoordinator => find_coordinator::handle(&ctx, decode(b, raw_key, version)?),
        ApiKey::JoinGroup => join_group::handle(&ctx, decode(b, raw_key, version)?),
        ApiKey::SyncGroup => sync_group::handle(&ctx, decode(b, raw_key, version)?),
        ApiKey::Heartbeat => heartbeat::handle(&ctx, decode(b, raw_key, version)?),
        ApiKey::LeaveGroup => leave_group::handle(&ctx, decode(b, raw_key, version)?),
        ApiKey::OffsetCommit => offset_commit::handle(&ctx, decode(b, raw_key, version)?),
        ApiKey::OffsetFetch => offset_fetch::handle(&ctx, decode(b, raw_key, version)?),
        ApiKey::OffsetDelete => offset_delete::handle(&ctx, decode(b, raw_key, version)?),
        ApiKey::DeleteGroups => delete_groups::handle(&ctx, decode(b, raw_key, version)?),
        ApiKey::DescribeGroups => describe_groups::handle(&ctx, decode(b, raw_key, version)?),
        ApiKey::ListGroups => list_groups::handle(&ctx, decode(b, raw_key, version)?),
        ApiKey::ConsumerGroupHeartbeat => {
            consumer_group_heartbeat::handle(&ctx, decode(b, raw_key, version)?)
        }
        ApiKey::ConsumerGroupDescribe => {
            consumer_group_describe::handle(&ctx, decode(b, raw_key, version)?)
        }
        ApiKey::CreateAcls => create_acls::handle(&ctx, decode(b, raw_key, version)?),
        ApiKey::DescribeAcls => describe_acls::handle(&ctx, decode(b, raw_key, version)?),
        ApiKey::DeleteAcls => delete_acls::handle(&ctx, decode(b, raw_key, version)?),
        ApiKey::DescribeUserScramCredentials => {
            describe_user_scram_credentials::handle(&ctx, decode(b, raw_key, version)?)
        }
        ApiKey::AlterUserScramCredentials => {
            alter_user_scram_credentials::handle(&ctx, decode(b, raw_key, version)?)
        }
        ApiKey::DescribeProducers => describe_producers::handle(&ctx, decode(b, raw_key, version)?),
        ApiKey::DescribeTransactions => {
            describe_transactions::handle(&ctx, decode(b, raw_key, version)?)
        }
        ApiKey::ListTransactions => list_transactions::handle(&ctx, decode(b, raw_key, version)?),
        _ => Err(ProtocolError::UnknownApiKey(raw_key)),
    }
}

/// Answers with what `answer` computes, later: for handlers that wait on
/// storage (an engine may be remote) or on other requests.
pub fn reply_later<R, F>(ctx: &Ctx, answer: impl FnOnce(Ctx) -> F) -> Result<Reply, ProtocolError>
where
    R: Encodable + HeaderVersion,
    F: std::future::Future<Output = R> + Send + 'static,
{
    let encoder = ctx.clone();
    let pending = answer(ctx.clone());
    Ok(Reply::Later(Box::pin(async move {
        let response = pending.await;
        Some(encoder.encode(&response))
    })))
}

/// Encodes `response` once the group state log is durable (so that an
/// acknowledged commit or generation survives a crash).
pub fn reply_when_durable<R>(ctx: &Ctx, response: R) -> Reply
where
    R: Encodable + HeaderVersion + Send + 'static,
{
    reply_when_durable_or(ctx, response, |_| {})
}

/// As [`reply_when_durable`], for answers that acknowledge stored data
/// (OffsetCommit): if the group state log could not be made durable (its
/// fsync failed), `failed` turns the answer into an error first. What may
/// not be on disk is never acknowledged.
pub fn reply_when_durable_or<R>(
    ctx: &Ctx,
    mut response: R,
    failed: impl FnOnce(&mut R) + Send + 'static,
) -> Reply
where
    R: Encodable + HeaderVersion + Send + 'static,
{
    let ctx = ctx.clone();
    Reply::Later(Box::pin(async move {
        if let Err(e) = ctx.broker.groups.wait_durable().await {
            tracing::error!(error = %e, "group state log not durable");
            failed(&mut response);
        }
        Some(ctx.encode(&response))
    }))
}

/// The names that occur more than once. Kafka refuses every entry of a topic
/// named twice in one CreateTopics, CreatePartitions or DeleteTopics
/// (INVALID_REQUEST, [`DUPLICATE_TOPIC_NAME`]) and acts on none of them.
pub fn duplicate_names(
    names: impl IntoIterator<Item = String>,
) -> std::collections::HashSet<String> {
    let mut seen = std::collections::HashSet::new();
    names
        .into_iter()
        .filter(|n| !seen.insert(n.clone()))
        .collect()
}

/// Kafka's message for a topic named twice in one request.
pub const DUPLICATE_TOPIC_NAME: &str = "Duplicate topic name.";

/// Converts a protocol string to an owned Rust string.
pub fn s(v: &kafka_protocol::protocol::StrBytes) -> String {
    v.as_str().to_string()
}

/// Builds a protocol string.
pub fn sb(v: impl Into<String>) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(v.into())
}

/// Kafka's "not requested" value of authorized-operations fields.
pub const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;
/// The operations Kafka reports for each resource type.
pub const TOPIC_OPERATIONS: &[Operation] = &[
    Operation::Read,
    Operation::Write,
    Operation::Create,
    Operation::Delete,
    Operation::Alter,
    Operation::Describe,
    Operation::DescribeConfigs,
    Operation::AlterConfigs,
];
/// Groups have configs since KIP-848: Kafka 4 reports DESCRIBE_CONFIGS and
/// ALTER_CONFIGS too.
pub const GROUP_OPERATIONS: &[Operation] = &[
    Operation::Read,
    Operation::Describe,
    Operation::Delete,
    Operation::DescribeConfigs,
    Operation::AlterConfigs,
];
pub const CLUSTER_OPERATIONS: &[Operation] = &[
    Operation::Create,
    Operation::Alter,
    Operation::Describe,
    Operation::ClusterAction,
    Operation::DescribeConfigs,
    Operation::AlterConfigs,
    Operation::IdempotentWrite,
];

/// The bit set (1 << operation code) of `operations` the principal may do
/// on the resource (KIP-430's authorized operations).
pub fn authorized_operations(
    ctx: &Ctx,
    resource_type: ResourceType,
    name: &str,
    operations: &[Operation],
) -> i32 {
    operations
        .iter()
        .filter(|op| ctx.may(**op, resource_type, name))
        .fold(0, |bits, op| bits | (1 << op.code()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_shorter_than_a_header_are_refused_not_indexed() {
        for n in 0..8 {
            let frame = Bytes::from(vec![0u8; n]);
            assert!(
                matches!(parse(frame), Err(ProtocolError::Malformed { .. })),
                "{n} bytes"
            );
        }
    }
}
