//! Kafka requests the API's pages share (Metadata, ListOffsets, Fetch) and the
//! JSON form of a record. Every call goes through the caller's in-process
//! Kafka client, so the principal's ACLs apply.

use std::collections::BTreeMap;

use base64::Engine as _;
use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    BrokerId, FetchRequest, ListOffsetsRequest, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Record, RecordBatchDecoder};
use serde::Serialize;

use super::error::{ApiError, ApiResult};
use crate::kafka::KafkaClient;

/// Versions the broker serves (handlers/api_versions.rs) with the fields used here.
pub const METADATA_VERSION: i16 = 12;
pub const LIST_OFFSETS_VERSION: i16 = 7;
/// v12: topics by name (v13 switches to topic ids), flexible encoding.
pub const FETCH_VERSION: i16 = 12;

/// Which records a read shows (a Fetch's and ListOffsets' `isolation_level`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// Below the last stable offset only, without the records of aborted
    /// transactions: what a transactional application's consumers see.
    #[default]
    ReadCommitted,
    /// Every record, those of aborted and still open transactions too.
    ReadUncommitted,
}

impl Isolation {
    fn level(self) -> i8 {
        match self {
            Isolation::ReadUncommitted => 0,
            Isolation::ReadCommitted => 1,
        }
    }

    /// The `isolation` query parameter (read_committed when absent).
    pub fn parse(v: Option<&str>) -> ApiResult<Isolation> {
        match v {
            None | Some("") | Some("read_committed") => Ok(Isolation::ReadCommitted),
            Some("read_uncommitted") => Ok(Isolation::ReadUncommitted),
            Some(other) => Err(ApiError::bad_request(format!(
                "bad isolation '{other}' (read_committed or read_uncommitted)"
            ))),
        }
    }
}

/// ListOffsets' special timestamps.
pub const LATEST: i64 = -1;
pub const EARLIEST: i64 = -2;

/// One Fetch answers at most this much (the broker may go one batch over).
pub const FETCH_BYTES_MAX: i32 = 1024 * 1024;
/// A record's value (and key) is cut to this in answers.
pub const VALUE_BYTES_MAX: usize = 256 * 1024;

pub fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Rejects a topic name that cannot be valid before it reaches a request
/// (the broker validates it again; this bounds what goes into errors).
pub fn check_topic_name(name: &str) -> ApiResult<()> {
    if name.is_empty() || name.len() > 249 {
        return Err(ApiError::bad_request(
            "a topic name has 1 to 249 characters",
        ));
    }
    Ok(())
}

/// Metadata for `topics` (None: every topic the principal may describe).
pub async fn metadata(
    client: &KafkaClient,
    topics: Option<&[&str]>,
) -> ApiResult<MetadataResponse> {
    let mut req = MetadataRequest::default();
    req.topics = topics.map(|ts| {
        ts.iter()
            .map(|t| {
                let mut m = MetadataRequestTopic::default();
                m.name = Some(TopicName(sb(t)));
                m
            })
            .collect()
    });
    req.allow_auto_topic_creation = false;
    Ok(client.call(&req, METADATA_VERSION).await?)
}

/// What the API needs of one topic's metadata.
pub struct TopicMeta {
    pub name: String,
    pub id: uuid::Uuid,
    pub internal: bool,
    /// (partition, leader), sorted by partition.
    pub partitions: Vec<(i32, i32)>,
}

/// One topic's metadata: 404 if unknown, 403 if the principal may not describe it.
pub async fn topic_meta(client: &KafkaClient, name: &str) -> ApiResult<TopicMeta> {
    check_topic_name(name)?;
    let md = metadata(client, Some(&[name])).await?;
    let Some(t) = md.topics.into_iter().next() else {
        return Err(ApiError::not_found(format!("no topic '{name}'")));
    };
    if t.error_code != 0 {
        return Err(ApiError::kafka(t.error_code, None));
    }
    let mut partitions: Vec<(i32, i32)> = t
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.leader_id.0))
        .collect();
    partitions.sort();
    Ok(TopicMeta {
        name: name.to_string(),
        id: t.topic_id,
        internal: t.is_internal,
        partitions,
    })
}

/// ListOffsets of `partitions` at `timestamp` (LATEST, EARLIEST or epoch ms):
/// partition → offset (-1 when no record is at or after the timestamp).
pub async fn list_offsets(
    client: &KafkaClient,
    topic: &str,
    partitions: &[i32],
    timestamp: i64,
) -> ApiResult<BTreeMap<i32, i64>> {
    list_offsets_with(
        client,
        topic,
        partitions,
        timestamp,
        Isolation::ReadUncommitted,
    )
    .await
}

/// As [`list_offsets`] with `isolation`: LATEST is the last stable offset
/// with read_committed.
pub async fn list_offsets_with(
    client: &KafkaClient,
    topic: &str,
    partitions: &[i32],
    timestamp: i64,
    isolation: Isolation,
) -> ApiResult<BTreeMap<i32, i64>> {
    let mut req = ListOffsetsRequest::default();
    req.replica_id = BrokerId(-1);
    req.isolation_level = isolation.level();
    let mut t = ListOffsetsTopic::default();
    t.name = TopicName(sb(topic));
    t.partitions = partitions
        .iter()
        .map(|p| {
            let mut lp = ListOffsetsPartition::default();
            lp.partition_index = *p;
            lp.current_leader_epoch = -1;
            lp.timestamp = timestamp;
            lp
        })
        .collect();
    req.topics = vec![t];
    let resp = client.call(&req, LIST_OFFSETS_VERSION).await?;
    let mut out = BTreeMap::new();
    for t in resp.topics {
        for p in t.partitions {
            if p.error_code != 0 {
                return Err(ApiError::kafka(p.error_code, None));
            }
            out.insert(p.partition_index, p.offset);
        }
    }
    Ok(out)
}

/// Log start and high watermark of each partition.
pub async fn watermarks(
    client: &KafkaClient,
    topic: &str,
    partitions: &[i32],
) -> ApiResult<BTreeMap<i32, (i64, i64)>> {
    watermarks_with(client, topic, partitions, Isolation::ReadUncommitted).await
}

/// Log start and the end a reader with `isolation` reads to: the high
/// watermark, or with read_committed the last stable offset.
pub async fn watermarks_with(
    client: &KafkaClient,
    topic: &str,
    partitions: &[i32],
    isolation: Isolation,
) -> ApiResult<BTreeMap<i32, (i64, i64)>> {
    let low = list_offsets(client, topic, partitions, EARLIEST).await?;
    let high = list_offsets_with(client, topic, partitions, LATEST, isolation).await?;
    Ok(low
        .into_iter()
        .map(|(p, l)| (p, (l, high.get(&p).copied().unwrap_or(l))))
        .collect())
}

/// What one Fetch gave for one partition.
pub struct Fetched {
    pub partition: i32,
    /// Data records at or after the fetch offset (control records left out,
    /// and with read_committed those of aborted transactions).
    pub records: Vec<Record>,
    /// Bytes the broker sent for this partition.
    pub bytes: usize,
    /// The offset after the last batch read: where the next fetch starts
    /// (past control batches too, so a read never stalls on them).
    pub next_offset: i64,
    pub high_watermark: i64,
    pub log_start: i64,
}

/// Fetches `positions` (partition, offset) of `topic`, waiting up to
/// `max_wait_ms` for data. An offset below the log start (retention) is
/// answered from the log start.
pub async fn fetch(
    client: &KafkaClient,
    topic: &str,
    positions: &[(i32, i64)],
    max_wait_ms: i32,
    isolation: Isolation,
) -> ApiResult<Vec<Fetched>> {
    fetch_sized(
        client,
        topic,
        positions,
        max_wait_ms,
        FETCH_BYTES_MAX,
        isolation,
    )
    .await
}

/// As [`fetch`], each partition answering at most `partition_bytes_max`
/// (but at least its first batch, KIP-74).
pub async fn fetch_sized(
    client: &KafkaClient,
    topic: &str,
    positions: &[(i32, i64)],
    max_wait_ms: i32,
    partition_bytes_max: i32,
    isolation: Isolation,
) -> ApiResult<Vec<Fetched>> {
    let mut req = FetchRequest::default();
    req.replica_id = BrokerId(-1);
    req.max_wait_ms = max_wait_ms;
    req.min_bytes = if max_wait_ms > 0 { 1 } else { 0 };
    req.max_bytes = FETCH_BYTES_MAX;
    req.isolation_level = isolation.level();
    req.session_id = 0;
    req.session_epoch = -1;
    req.cluster_id = None;
    let mut ft = FetchTopic::default();
    ft.topic = TopicName(sb(topic));
    ft.partitions = positions
        .iter()
        .map(|(p, o)| {
            let mut fp = FetchPartition::default();
            fp.partition = *p;
            fp.current_leader_epoch = -1;
            fp.fetch_offset = *o;
            fp.last_fetched_epoch = -1;
            fp.log_start_offset = -1;
            fp.partition_max_bytes = partition_bytes_max.clamp(1, FETCH_BYTES_MAX);
            fp
        })
        .collect();
    req.topics = vec![ft];
    let resp = client.call(&req, FETCH_VERSION).await?;
    if resp.error_code != 0 {
        return Err(ApiError::kafka(resp.error_code, None));
    }
    let mut out = Vec::new();
    for t in resp.responses {
        for pd in t.partitions {
            let asked = positions
                .iter()
                .find(|(p, _)| *p == pd.partition_index)
                .map(|(_, o)| *o)
                .unwrap_or(0);
            if pd.error_code == kafka_protocol::ResponseError::OffsetOutOfRange.code() {
                // Below the log start: Kafka's auto.offset.reset=earliest; at or
                // past the end: nothing yet.
                let next = if asked < pd.log_start_offset || pd.high_watermark < 0 {
                    pd.log_start_offset.max(0)
                } else {
                    asked.min(pd.high_watermark)
                };
                out.push(Fetched {
                    partition: pd.partition_index,
                    records: Vec::new(),
                    bytes: 0,
                    next_offset: next,
                    high_watermark: pd.high_watermark,
                    log_start: pd.log_start_offset,
                });
                continue;
            }
            if pd.error_code != 0 {
                return Err(ApiError::kafka(pd.error_code, None));
            }
            let bytes = pd.records.as_ref().map(|r| r.len()).unwrap_or(0);
            // Only a read_committed answer lists aborted transactions; the
            // broker bounds the list by the range it read.
            let aborted: Vec<(i64, i64)> = pd
                .aborted_transactions
                .unwrap_or_default()
                .iter()
                .map(|a| (a.producer_id.0, a.first_offset))
                .collect();
            let (records, next) = decode(pd.records.unwrap_or_default(), asked, &aborted)?;
            out.push(Fetched {
                partition: pd.partition_index,
                records,
                bytes,
                next_offset: next.max(asked),
                high_watermark: pd.high_watermark,
                log_start: pd.log_start_offset,
            });
        }
    }
    Ok(out)
}

/// Length of a v2 batch's fixed prefix before its `batch_length` ends.
const BATCH_PREFIX_BYTES: usize = 12;

/// A v2 batch's attributes: the batch is part of a transaction...
const ATTR_TRANSACTIONAL: i16 = 0x10;
/// ...or holds a transaction marker (a control record).
const ATTR_CONTROL: i16 = 0x20;
/// A control record's type (its key: version int16, type int16).
const CONTROL_TYPE_ABORT: i16 = 0;

/// Decodes the complete batches of `data` (a fetch may end with a partial
/// one), keeping data records at or after `from`. Returns them and the offset
/// after the last complete batch.
///
/// `aborted` (producer id, first offset) are the aborted transactions a
/// read_committed Fetch reported; their batches are left out as Kafka's
/// consumer does it: a producer's transactional batches are dropped from its
/// aborted transaction's first offset until its ABORT marker.
pub fn decode(mut data: Bytes, from: i64, aborted: &[(i64, i64)]) -> ApiResult<(Vec<Record>, i64)> {
    let mut records = Vec::new();
    let mut next = from;
    let mut pending: Vec<(i64, i64)> = aborted.to_vec();
    // Latest first offset at the end, so the next to start pops off.
    pending.sort_by_key(|(_, first)| std::cmp::Reverse(*first));
    let mut aborting: std::collections::HashSet<i64> = std::collections::HashSet::new();
    while data.len() >= BATCH_PREFIX_BYTES {
        let base_offset = i64::from_be_bytes(data[0..8].try_into().unwrap_or([0; 8]));
        let batch_len = i32::from_be_bytes(data[8..12].try_into().unwrap_or([0; 4]));
        let Ok(batch_len) = usize::try_from(batch_len) else {
            break;
        };
        let Some(total) = batch_len.checked_add(BATCH_PREFIX_BYTES) else {
            break;
        };
        if total > data.len() {
            break;
        }
        // last_offset_delta (after base offset, length, leader epoch, magic,
        // crc and attributes): the batch's offsets end there even when
        // compaction removed its last records, so the next read moves past it.
        let last_delta = data
            .get(23..27)
            .and_then(|b| b.try_into().ok())
            .map(i32::from_be_bytes)
            .unwrap_or(0)
            .max(0);
        next = next.max(
            base_offset
                .saturating_add(i64::from(last_delta))
                .saturating_add(1),
        );
        let attributes = data
            .get(21..23)
            .and_then(|b| b.try_into().ok())
            .map(i16::from_be_bytes)
            .unwrap_or(0);
        let producer_id = data
            .get(43..51)
            .and_then(|b| b.try_into().ok())
            .map(i64::from_be_bytes)
            .unwrap_or(-1);
        let last_offset = base_offset.saturating_add(i64::from(last_delta));
        while pending
            .last()
            .is_some_and(|(_, first)| *first <= last_offset)
        {
            if let Some((pid, _)) = pending.pop() {
                aborting.insert(pid);
            }
        }
        let transactional = attributes & ATTR_TRANSACTIONAL != 0;
        let control = attributes & ATTR_CONTROL != 0;
        let dropped = transactional && !control && aborting.contains(&producer_id);
        let mut batch = data.split_to(total);
        if dropped {
            continue;
        }
        let set = RecordBatchDecoder::decode(&mut batch).map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::BAD_GATEWAY,
                "CORRUPT_MESSAGE",
                format!("cannot decode the batch at offset {base_offset}: {e}"),
            )
        })?;
        for r in set.records {
            next = next.max(r.offset + 1);
            if r.control {
                let kind = r
                    .key
                    .as_ref()
                    .and_then(|k| k.get(2..4))
                    .and_then(|b| b.try_into().ok())
                    .map(i16::from_be_bytes);
                if kind == Some(CONTROL_TYPE_ABORT) {
                    aborting.remove(&producer_id);
                }
            } else if r.offset >= from {
                records.push(r);
            }
        }
    }
    Ok((records, next))
}

/// A header of a record, in answers.
#[derive(Serialize, Clone)]
pub struct HeaderJson {
    pub key: String,
    pub value: Option<String>,
    pub value_b64: Option<String>,
}

/// A record, in answers (docs/console.md, "Message").
#[derive(Serialize, Clone)]
pub struct Message {
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<String>,
    pub key_b64: Option<String>,
    pub value: Option<String>,
    pub value_b64: Option<String>,
    pub value_truncated: bool,
    pub headers: Vec<HeaderJson>,
    pub event_type: Option<String>,
}

/// The text (when UTF-8) and base64 of `bytes`, cut to [`VALUE_BYTES_MAX`].
fn text_and_b64(bytes: Option<&[u8]>) -> (Option<String>, Option<String>, bool) {
    let Some(b) = bytes else {
        return (None, None, false);
    };
    let truncated = b.len() > VALUE_BYTES_MAX;
    let mut cut = &b[..b.len().min(VALUE_BYTES_MAX)];
    // Cut on a character boundary so a long UTF-8 value stays text.
    if truncated
        && let Err(e) = std::str::from_utf8(cut)
        && e.error_len().is_none()
    {
        cut = &cut[..e.valid_up_to()];
    }
    let text = std::str::from_utf8(cut).ok().map(str::to_string);
    let b64 = base64::engine::general_purpose::STANDARD.encode(cut);
    (text, Some(b64), truncated)
}

/// A record's headers as (name, value).
pub fn headers_of(r: &Record) -> Vec<(String, Option<Bytes>)> {
    r.headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// The Herald envelope's `eventType` (crates/events/src/event.rs): the
/// `eventType` header, else the JSON value's top-level `eventType`.
pub fn event_type(headers: &[(String, Option<Bytes>)], value: Option<&[u8]>) -> Option<String> {
    if let Some((_, Some(v))) = headers.iter().find(|(k, _)| k == "eventType") {
        return std::str::from_utf8(v).ok().map(str::to_string);
    }
    #[derive(serde::Deserialize)]
    struct Envelope {
        #[serde(rename = "eventType")]
        event_type: Option<String>,
    }
    let v = value?;
    // Only objects can carry it; skip parsing anything else.
    if v.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return None;
    }
    serde_json::from_slice::<Envelope>(v).ok()?.event_type
}

pub fn message(
    partition: i32,
    r: &Record,
    headers: &[(String, Option<Bytes>)],
    event_type: Option<String>,
) -> Message {
    let (key, key_b64, _) = text_and_b64(r.key.as_deref());
    let (value, value_b64, value_truncated) = text_and_b64(r.value.as_deref());
    Message {
        partition,
        offset: r.offset,
        timestamp: r.timestamp,
        key,
        key_b64,
        value,
        value_b64,
        value_truncated,
        headers: headers
            .iter()
            .map(|(k, v)| {
                let (value, value_b64, _) = text_and_b64(v.as_deref());
                HeaderJson {
                    key: k.clone(),
                    value,
                    value_b64,
                }
            })
            .collect(),
        event_type,
    }
}

/// Parses `partitions=0,1,2` against the topic's partitions (None or empty: all).
pub fn choose_partitions(all: &[(i32, i32)], asked: Option<&str>) -> ApiResult<Vec<i32>> {
    let all: Vec<i32> = all.iter().map(|(p, _)| *p).collect();
    let Some(asked) = asked.filter(|s| !s.trim().is_empty()) else {
        return Ok(all);
    };
    let mut out = Vec::new();
    for part in asked.split(',') {
        let p: i32 = part
            .trim()
            .parse()
            .map_err(|_| ApiError::bad_request(format!("bad partition '{part}'")))?;
        if !all.contains(&p) {
            return Err(ApiError::not_found(format!("no partition {p}")));
        }
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// `axum::Json`, with a malformed body answered as the API's JSON error
/// (400 BAD_REQUEST) rather than axum's plain-text 400/415/422.
pub struct JsonBody<T>(pub T);

impl<S, T> axum::extract::FromRequest<S> for JsonBody<T>
where
    axum::Json<T>:
        axum::extract::FromRequest<S, Rejection = axum::extract::rejection::JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> ApiResult<Self> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(JsonBody(v)),
            Err(e) => Err(ApiError::bad_request(e.body_text())),
        }
    }
}

/// `axum::extract::Query`, with bad parameters answered as the API's JSON error.
pub struct QueryParams<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for QueryParams<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> ApiResult<Self> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(QueryParams(v)),
            Err(e) => Err(ApiError::bad_request(e.body_text())),
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::indexmap::IndexMap;
    use kafka_protocol::records::{
        Compression, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    use super::*;

    /// One batch of `values` at `base`: transactional for `producer_id` >= 0.
    fn batch(out: &mut BytesMut, base: i64, producer_id: i64, values: &[&str]) {
        let records: Vec<Record> = values
            .iter()
            .enumerate()
            .map(|(i, v)| Record {
                transactional: producer_id >= 0,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id,
                producer_epoch: 0,
                timestamp_type: TimestampType::Creation,
                offset: base + i as i64,
                sequence: if producer_id >= 0 { i as i32 } else { -1 },
                timestamp: 1_000,
                key: None,
                value: Some(Bytes::copy_from_slice(v.as_bytes())),
                headers: IndexMap::new(),
            })
            .collect();
        encode(out, &records);
    }

    /// A transaction marker of `producer_id` at `offset`.
    fn marker(out: &mut BytesMut, offset: i64, producer_id: i64, commit: bool) {
        let mut key = vec![0u8, 0];
        key.extend_from_slice(&(i16::from(commit)).to_be_bytes());
        let r = Record {
            transactional: true,
            control: true,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: -1,
            timestamp: 1_000,
            key: Some(Bytes::from(key)),
            value: Some(Bytes::from_static(&[0, 0, 0, 0, 0, 0])),
            headers: IndexMap::new(),
        };
        encode(out, &[r]);
    }

    fn encode(out: &mut BytesMut, records: &[Record]) {
        RecordBatchEncoder::encode(
            out,
            records.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .expect("encode");
    }

    fn values(records: &[Record]) -> Vec<String> {
        records
            .iter()
            .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
            .collect()
    }

    #[test]
    fn aborted_transactions_and_markers_are_left_out() {
        let mut log = BytesMut::new();
        batch(&mut log, 0, 7, &["a1", "a2"]); // aborted, producer 7
        batch(&mut log, 2, 8, &["c1"]); // committed, producer 8
        batch(&mut log, 3, -1, &["plain"]);
        marker(&mut log, 4, 7, false);
        marker(&mut log, 5, 8, true);
        batch(&mut log, 6, 7, &["c2"]); // producer 7's next transaction, committed
        marker(&mut log, 7, 7, true);
        let data = log.freeze();

        let (all, next) = decode(data.clone(), 0, &[]).expect("decode");
        assert_eq!(values(&all), ["a1", "a2", "c1", "plain", "c2"]);
        assert_eq!(next, 8, "past the last marker");

        let (committed, next) = decode(data.clone(), 0, &[(7, 0)]).expect("decode");
        assert_eq!(values(&committed), ["c1", "plain", "c2"]);
        assert_eq!(next, 8);

        // From inside the aborted transaction: still left out.
        let (from1, _) = decode(data, 1, &[(7, 0)]).expect("decode");
        assert_eq!(values(&from1), ["c1", "plain", "c2"]);
    }

    #[test]
    fn isolation_parses_with_read_committed_by_default() {
        assert_eq!(Isolation::parse(None).ok(), Some(Isolation::ReadCommitted));
        assert_eq!(
            Isolation::parse(Some("read_uncommitted")).ok(),
            Some(Isolation::ReadUncommitted)
        );
        assert!(Isolation::parse(Some("dirty")).is_err());
    }
}
