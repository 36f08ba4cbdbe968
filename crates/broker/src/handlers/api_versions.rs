//! ApiVersions (key 18): the version ranges Herald serves.
//!
//! The maxima switch client features on and off, so they are honest: each is
//! the highest version whose fields Herald implements.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};

use super::{Ctx, Reply};
use crate::error::ProtocolError;

/// (API, advertised min, served min, max).
const VERSIONS: &[(ApiKey, i16, i16, i16)] = &[
    // Advertised from 0 like Kafka 4.0: librdkafka looks for Produce v0 before it
    // enables compression. Versions below 3 (magic 0/1) are not served.
    (ApiKey::Produce, 0, 3, 11),
    (ApiKey::Fetch, 4, 4, 16),
    (ApiKey::ListOffsets, 0, 0, 8),
    (ApiKey::Metadata, 0, 0, 12),
    (ApiKey::ApiVersions, 0, 0, 4),
    (ApiKey::CreateTopics, 2, 2, 7),
    (ApiKey::DeleteTopics, 1, 1, 6),
    (ApiKey::DeleteRecords, 0, 0, 2),
    (ApiKey::InitProducerId, 0, 0, 5),
    // Transactions (KIP-98) with KIP-890 part 1 verification; not part 2
    // (EndTxn v5, implicit adds by Produce v12): the `transaction.version`
    // feature is not advertised, so clients keep to transactions v1.
    (ApiKey::AddPartitionsToTxn, 0, 0, 5),
    (ApiKey::AddOffsetsToTxn, 0, 0, 4),
    (ApiKey::EndTxn, 0, 0, 4),
    (ApiKey::TxnOffsetCommit, 0, 0, 5),
    (ApiKey::OffsetForLeaderEpoch, 2, 2, 4),
    (ApiKey::DescribeConfigs, 1, 1, 4),
    (ApiKey::AlterConfigs, 0, 0, 2),
    (ApiKey::CreatePartitions, 0, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 0, 1),
    (ApiKey::DescribeCluster, 0, 0, 1),
    (ApiKey::DescribeLogDirs, 1, 1, 4),
    (ApiKey::FindCoordinator, 0, 0, 6),
    (ApiKey::JoinGroup, 0, 0, 9),
    (ApiKey::SyncGroup, 0, 0, 5),
    (ApiKey::Heartbeat, 0, 0, 4),
    (ApiKey::LeaveGroup, 0, 0, 5),
    (ApiKey::OffsetCommit, 2, 2, 9),
    (ApiKey::OffsetFetch, 1, 1, 9),
    (ApiKey::OffsetDelete, 0, 0, 0),
    (ApiKey::DeleteGroups, 0, 0, 2),
    (ApiKey::DescribeGroups, 0, 0, 5),
    (ApiKey::ListGroups, 0, 0, 5),
    (ApiKey::ConsumerGroupHeartbeat, 0, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 0, 0),
    // Served by the connection (sasl.rs), not dispatched.
    (ApiKey::SaslHandshake, 0, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 0, 2),
    (ApiKey::DescribeAcls, 1, 1, 3),
    (ApiKey::CreateAcls, 1, 1, 3),
    (ApiKey::DeleteAcls, 1, 1, 3),
    (ApiKey::DescribeUserScramCredentials, 0, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0, 0),
    // Transactions admin (kafka-transactions.sh): the crate's newest
    // versions, all of which Kafka 4.1+ serves.
    (ApiKey::DescribeProducers, 0, 0, 0),
    (ApiKey::DescribeTransactions, 0, 0, 0),
    (ApiKey::ListTransactions, 0, 0, 2),
];

/// The versions Herald decodes for `api_key`, if it serves it at all.
pub fn served_range(api_key: ApiKey) -> Option<(i16, i16)> {
    VERSIONS.iter().find(|v| v.0 == api_key).map(|v| (v.2, v.3))
}

fn api_keys() -> Vec<ApiVersion> {
    VERSIONS
        .iter()
        .map(|(key, advertised_min, _, max)| {
            let mut v = ApiVersion::default();
            v.api_key = *key as i16;
            v.min_version = *advertised_min;
            v.max_version = *max;
            v
        })
        .collect()
}

pub fn handle(ctx: &Ctx, _req: ApiVersionsRequest) -> Result<Reply, ProtocolError> {
    let mut resp = ApiVersionsResponse::default();
    resp.api_keys = api_keys();
    resp.finalized_features_epoch = -1;
    ctx.reply(&resp)
}

/// KIP-511: a request of a version we do not know gets a v0 response with
/// UNSUPPORTED_VERSION and our ranges, so the client can retry with one we serve.
pub fn unsupported_version_response(correlation_id: i32) -> bytes::Bytes {
    let mut resp = ApiVersionsResponse::default();
    resp.error_code = ResponseError::UnsupportedVersion.code();
    resp.api_keys = api_keys();
    super::encode_response(correlation_id, ApiKey::ApiVersions, 0, &resp)
}
