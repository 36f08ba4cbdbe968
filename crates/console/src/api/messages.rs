//! The message browser: a bounded scan of chosen partitions (seek by offset,
//! timestamp, oldest or newest; pages both ways through opaque cursors; a
//! filter), and the produce form. Records are read with Fetch and written
//! with Produce as the caller, so its ACLs apply.
//!
//! A page is a merge of the partitions in timestamp order: forward, the
//! oldest head of any partition comes next; backward, the newest. Each
//! partition is read in offset order, so a page is exactly "what the merge
//! passed over", and its cursors (each partition's position) continue it
//! without gaps or repeats. Pages are answered oldest first in both
//! directions.
//!
//! Reads are read_committed unless the query says `isolation=read_uncommitted`:
//! a page ends at the last stable offset (records of a transaction still open
//! are not shown), records of aborted transactions are left out, and control
//! batches (transaction markers) are never records. The page says which.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::{ApiError, ApiResult};
use super::filter::{self, Expr, RecordView};
use super::ops::{self, Message, sb};
use super::session::Caller;
use crate::AppState;

/// Scans (message pages, dead-letter replays) running at once per server.
pub const SCANS_MAX: usize = 4;
/// Live tails open at once per server; each holds one long-polling Fetch.
pub const TAILS_MAX: usize = 16;
/// Records a page may return.
pub const LIMIT_MAX: usize = 500;
pub const LIMIT_DEFAULT: usize = 50;
/// A scan stops after passing over this many records...
pub const SCAN_RECORDS_MAX: usize = 100_000;
/// ...or fetching this many bytes...
pub const SCAN_BYTES_MAX: usize = 64 * 1024 * 1024;
/// ...or after this long.
pub const SCAN_TIME_MAX: Duration = Duration::from_secs(5);
/// A page stops growing past this many bytes of keys and values, so 500
/// records of 256 KiB do not make a 300 MiB answer.
const PAGE_BYTES_MAX: usize = 16 * 1024 * 1024;
/// What the partitions of one scan fetch at a time, shared among them: the
/// merge needs a head from every partition, and 100 partitions fetching
/// 1 MiB each would spend the byte budget before the first record.
const SCAN_FETCH_BYTES_SHARED: usize = 16 * 1024 * 1024;
/// The least one partition's fetch asks for.
const LANE_FETCH_BYTES_MIN: usize = 16 * 1024;
/// Longest cursor accepted.
const CURSOR_BYTES_MAX: usize = 256 * 1024;
/// Produce: the broker's wait for acks=all.
const PRODUCE_TIMEOUT_MS: i32 = 30_000;
/// v9: the first flexible version; acks, topic names.
const PRODUCE_VERSION: i16 = 9;
/// Headers one produced record may carry.
const PRODUCE_HEADERS_MAX: usize = 64;

/// The server-wide bounds on concurrent work.
pub struct ScanLimits {
    pub scans: Arc<Semaphore>,
    pub tails: Arc<Semaphore>,
    /// One group offset reset at a time (redpanda#6083: resets by timestamp
    /// on a group far behind made brokers unresponsive).
    pub reset: tokio::sync::Mutex<()>,
    /// The produce form's round robin without a key.
    pub round_robin: AtomicU32,
}

impl Default for ScanLimits {
    fn default() -> Self {
        ScanLimits {
            scans: Arc::new(Semaphore::new(SCANS_MAX)),
            tails: Arc::new(Semaphore::new(TAILS_MAX)),
            reset: tokio::sync::Mutex::new(()),
            round_robin: AtomicU32::new(0),
        }
    }
}

/// A scan permit, or 429.
pub fn scan_permit(state: &AppState) -> ApiResult<OwnedSemaphorePermit> {
    state
        .api
        .scans
        .scans
        .clone()
        .try_acquire_owned()
        .map_err(|_| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TOO_MANY_SCANS",
                format!("{SCANS_MAX} scans are running; try again"),
            )
        })
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/topics/{name}/messages", get(browse).post(produce))
}

/// Parses a filter expression, or 400 FILTER with the column.
pub fn parse_filter(src: Option<&str>) -> ApiResult<Option<Expr>> {
    match src.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => filter::parse(s)
            .map(Some)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "FILTER", e.to_string())),
    }
}

/// A record as the API answers it, if it passes `filter`.
pub fn render(partition: i32, r: &Record, filter: Option<&Expr>) -> Option<Message> {
    let headers = ops::headers_of(r);
    let event_type = ops::event_type(&headers, r.value.as_deref());
    if let Some(f) = filter {
        let view = RecordView::new(
            partition,
            r.offset,
            r.timestamp,
            r.key.as_deref(),
            r.value.as_deref(),
            &headers,
            event_type.as_deref(),
        );
        if !filter::eval(f, &view) {
            return None;
        }
    }
    Some(ops::message(partition, r, &headers, event_type))
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Direction {
    Forward,
    Backward,
}

/// Per-partition positions: forward, the next offset to read; backward, the
/// offset below which records remain.
#[derive(Debug, PartialEq)]
struct Cursor {
    direction: Direction,
    positions: Vec<(i32, i64)>,
}

impl Cursor {
    fn encode(&self) -> String {
        let d = match self.direction {
            Direction::Forward => 'f',
            Direction::Backward => 'b',
        };
        let body: Vec<String> = self
            .positions
            .iter()
            .map(|(p, o)| format!("{p}:{o}"))
            .collect();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{d}|{}", body.join(",")))
    }

    fn decode(s: &str) -> ApiResult<Cursor> {
        let bad = || ApiError::bad_request("bad cursor");
        if s.len() > CURSOR_BYTES_MAX {
            return Err(bad());
        }
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| bad())?;
        let raw = String::from_utf8(raw).map_err(|_| bad())?;
        let (d, body) = raw.split_once('|').ok_or_else(bad)?;
        let direction = match d {
            "f" => Direction::Forward,
            "b" => Direction::Backward,
            _ => return Err(bad()),
        };
        let mut positions = Vec::new();
        for item in body.split(',').filter(|i| !i.is_empty()) {
            let (p, o) = item.split_once(':').ok_or_else(bad)?;
            let p: i32 = p.parse().map_err(|_| bad())?;
            let o: i64 = o.parse().map_err(|_| bad())?;
            if o < 0 || positions.iter().any(|(q, _)| *q == p) {
                return Err(bad());
            }
            positions.push((p, o));
        }
        if positions.is_empty() {
            return Err(bad());
        }
        Ok(Cursor {
            direction,
            positions,
        })
    }
}

/// What a scan may still spend.
pub struct Budget {
    pub records: usize,
    pub bytes: usize,
    pub deadline: Instant,
}

impl Budget {
    pub fn new() -> Budget {
        Budget {
            records: 0,
            bytes: 0,
            deadline: Instant::now() + SCAN_TIME_MAX,
        }
    }

    pub fn exhausted(&self) -> bool {
        self.records >= SCAN_RECORDS_MAX
            || self.bytes >= SCAN_BYTES_MAX
            || Instant::now() >= self.deadline
    }
}

impl Default for Budget {
    fn default() -> Self {
        Self::new()
    }
}

/// One partition in a scan.
struct Lane {
    partition: i32,
    /// Forward: the next offset to fetch. Backward: records below it are
    /// still to be fetched.
    fetch_pos: i64,
    low: i64,
    high: i64,
    /// Fetched, not yet passed over, in the scan's order.
    buf: VecDeque<Record>,
    /// Backward: how many offsets the next read covers (grows on each read).
    chunk: i64,
    /// What one fetch of this partition asks for.
    fetch_bytes: i32,
}

impl Lane {
    fn done(&self, dir: Direction) -> bool {
        self.buf.is_empty()
            && match dir {
                Direction::Forward => self.fetch_pos >= self.high,
                Direction::Backward => self.fetch_pos <= self.low,
            }
    }

    /// Where a cursor resumes this partition.
    fn position(&self, dir: Direction) -> i64 {
        match (dir, self.buf.front()) {
            (Direction::Forward, Some(r)) => r.offset,
            (Direction::Backward, Some(r)) => r.offset + 1,
            (_, None) => self.fetch_pos,
        }
    }

    async fn refill(
        &mut self,
        caller: &Caller,
        topic: &str,
        dir: Direction,
        budget: &mut Budget,
        isolation: ops::Isolation,
    ) -> ApiResult<()> {
        match dir {
            Direction::Forward => {
                let f = fetch_one(
                    caller,
                    topic,
                    self.partition,
                    self.fetch_pos,
                    self.fetch_bytes,
                    isolation,
                )
                .await?;
                budget.bytes += f.bytes;
                // A fetch below the log start is answered from the log start.
                self.fetch_pos = f.next_offset.max(self.fetch_pos);
                if f.log_start > self.fetch_pos {
                    self.fetch_pos = f.log_start;
                }
                let high = self.high;
                self.buf
                    .extend(f.records.into_iter().filter(|r| r.offset < high));
                if self.fetch_pos > self.high {
                    self.fetch_pos = self.high;
                }
            }
            Direction::Backward => {
                let upper = self.fetch_pos;
                let from = (upper - self.chunk).max(self.low);
                self.chunk = (self.chunk * 2).min(10_000);
                let mut got = Vec::new();
                let mut cur = from;
                while cur < upper && !budget.exhausted() {
                    let f = fetch_one(
                        caller,
                        topic,
                        self.partition,
                        cur,
                        self.fetch_bytes,
                        isolation,
                    )
                    .await?;
                    budget.bytes += f.bytes;
                    let next = f.next_offset.max(f.log_start);
                    got.extend(f.records.into_iter().filter(|r| r.offset < upper));
                    if next <= cur {
                        break;
                    }
                    cur = next;
                }
                if cur < upper {
                    // Stopped by the budget inside the range: keep only the
                    // records passed over so far is not possible backward, so
                    // leave the range unread (the cursor points above it).
                    return Ok(());
                }
                got.sort_by_key(|r| std::cmp::Reverse(r.offset));
                self.buf.extend(got);
                self.fetch_pos = from;
            }
        }
        Ok(())
    }
}

async fn fetch_one(
    caller: &Caller,
    topic: &str,
    partition: i32,
    offset: i64,
    bytes: i32,
    isolation: ops::Isolation,
) -> ApiResult<ops::Fetched> {
    ops::fetch_sized(
        &caller.client,
        topic,
        &[(partition, offset)],
        0,
        bytes,
        isolation,
    )
    .await?
    .into_iter()
    .next()
    .ok_or_else(|| ApiError::new(StatusCode::BAD_GATEWAY, "BROKER", "empty fetch answer"))
}

#[derive(Deserialize)]
pub struct BrowseQuery {
    partitions: Option<String>,
    seek: Option<String>,
    offset: Option<i64>,
    timestamp: Option<i64>,
    limit: Option<usize>,
    direction: Option<String>,
    filter: Option<String>,
    cursor: Option<String>,
    /// read_committed (default) or read_uncommitted.
    isolation: Option<String>,
}

#[derive(Serialize)]
pub struct Page {
    messages: Vec<Message>,
    next_cursor: Option<String>,
    prev_cursor: Option<String>,
    scanned: usize,
    budget_exhausted: bool,
    /// How the page was read: read_committed leaves out records of aborted
    /// and open transactions.
    isolation: ops::Isolation,
}

async fn browse(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ops::QueryParams(q): ops::QueryParams<BrowseQuery>,
) -> ApiResult<Json<Page>> {
    let _permit = scan_permit(&state)?;
    let filter = parse_filter(q.filter.as_deref())?;
    let limit = q.limit.unwrap_or(LIMIT_DEFAULT).clamp(1, LIMIT_MAX);
    let isolation = ops::Isolation::parse(q.isolation.as_deref())?;
    let meta = ops::topic_meta(&caller.client, &name).await?;
    let cursor = q.cursor.as_deref().map(Cursor::decode).transpose()?;
    let partitions: Vec<i32> = match &cursor {
        Some(c) => {
            let known: Vec<i32> = meta.partitions.iter().map(|(p, _)| *p).collect();
            if c.positions.iter().any(|(p, _)| !known.contains(p)) {
                return Err(ApiError::bad_request(
                    "the cursor names an unknown partition",
                ));
            }
            c.positions.iter().map(|(p, _)| *p).collect()
        }
        None => ops::choose_partitions(&meta.partitions, q.partitions.as_deref())?,
    };
    // With read_committed the end is the last stable offset.
    let marks = ops::watermarks_with(&caller.client, &name, &partitions, isolation).await?;
    let asked_direction = match q.direction.as_deref() {
        None | Some("") | Some("forward") => Direction::Forward,
        Some("backward") => Direction::Backward,
        Some(d) => return Err(ApiError::bad_request(format!("bad direction '{d}'"))),
    };
    let (direction, starts): (Direction, Vec<(i32, i64)>) = match cursor {
        Some(c) => (c.direction, c.positions),
        None => match q.seek.as_deref().unwrap_or("oldest") {
            "oldest" => (
                asked_direction,
                partitions.iter().map(|p| (*p, marks[p].0)).collect(),
            ),
            "newest" => (
                Direction::Backward,
                partitions.iter().map(|p| (*p, marks[p].1)).collect(),
            ),
            "offset" => {
                let o = q
                    .offset
                    .ok_or_else(|| ApiError::bad_request("seek=offset needs offset"))?;
                (
                    asked_direction,
                    partitions
                        .iter()
                        .map(|p| (*p, o.clamp(marks[p].0, marks[p].1)))
                        .collect(),
                )
            }
            "timestamp" => {
                let ts = q.timestamp.filter(|t| *t >= 0).ok_or_else(|| {
                    ApiError::bad_request("seek=timestamp needs timestamp (epoch ms)")
                })?;
                let found = ops::list_offsets(&caller.client, &name, &partitions, ts).await?;
                (
                    asked_direction,
                    partitions
                        .iter()
                        .map(|p| {
                            let o = found
                                .get(p)
                                .copied()
                                .filter(|o| *o >= 0)
                                .unwrap_or(marks[p].1);
                            (*p, o.clamp(marks[p].0, marks[p].1))
                        })
                        .collect(),
                )
            }
            s => return Err(ApiError::bad_request(format!("bad seek '{s}'"))),
        },
    };
    let fetch_bytes = (SCAN_FETCH_BYTES_SHARED / starts.len().max(1))
        .clamp(LANE_FETCH_BYTES_MIN, ops::FETCH_BYTES_MAX as usize) as i32;
    let mut lanes: Vec<Lane> = starts
        .iter()
        .map(|(p, o)| {
            let (low, high) = marks.get(p).copied().unwrap_or((0, 0));
            Lane {
                partition: *p,
                fetch_pos: (*o).clamp(low, high),
                low,
                high,
                buf: VecDeque::new(),
                chunk: (limit as i64).max(64),
                fetch_bytes,
            }
        })
        .collect();
    let start_positions: Vec<(i32, i64)> =
        lanes.iter().map(|l| (l.partition, l.fetch_pos)).collect();
    let mut budget = Budget::new();
    let mut messages = Vec::new();
    let mut page_bytes = 0usize;
    let mut scanned = 0usize;
    let mut budget_exhausted = false;
    // Cleared when the byte or time budget stops fetching: the records
    // already fetched are still merged (a page then makes progress even when
    // the partitions' first batches alone exceed the budget; its order is
    // exact among the partitions that have a head).
    let mut fetching = true;
    while messages.len() < limit && page_bytes < PAGE_BYTES_MAX {
        // Every partition needs its head before the merge can choose.
        for lane in lanes.iter_mut() {
            while fetching && lane.buf.is_empty() && !lane.done(direction) {
                if budget.exhausted() {
                    budget_exhausted = true;
                    fetching = false;
                    break;
                }
                let before = lane.fetch_pos;
                lane.refill(&caller, &name, direction, &mut budget, isolation)
                    .await?;
                if lane.buf.is_empty() && lane.fetch_pos == before {
                    // No progress (the budget stopped a backward range).
                    budget_exhausted = budget.exhausted();
                    fetching = false;
                }
            }
        }
        let next = lanes
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.buf.front().map(|r| (i, r.timestamp, l.partition)))
            .reduce(|a, b| {
                let better = match direction {
                    Direction::Forward => (b.1, b.2) < (a.1, a.2),
                    Direction::Backward => (b.1, b.2) > (a.1, a.2),
                };
                if better { b } else { a }
            });
        let Some((i, _, _)) = next else { break };
        if budget.records >= SCAN_RECORDS_MAX || Instant::now() >= budget.deadline {
            budget_exhausted = true;
            break;
        }
        let Some(r) = lanes[i].buf.pop_front() else {
            break;
        };
        budget.records += 1;
        scanned += 1;
        if let Some(m) = render(lanes[i].partition, &r, filter.as_ref()) {
            page_bytes += m.value.as_ref().map_or(0, String::len)
                + m.value_b64.as_ref().map_or(0, String::len);
            messages.push(m);
        }
    }
    let end_positions: Vec<(i32, i64)> = lanes
        .iter()
        .map(|l| (l.partition, l.position(direction)))
        .collect();
    let more_after = |ps: &[(i32, i64)]| ps.iter().any(|(p, o)| *o < marks[p].1);
    let more_before = |ps: &[(i32, i64)]| ps.iter().any(|(p, o)| *o > marks[p].0);
    let cursor = |d: Direction, ps: &[(i32, i64)]| {
        Some(
            Cursor {
                direction: d,
                positions: ps.to_vec(),
            }
            .encode(),
        )
    };
    let (next_cursor, prev_cursor) = match direction {
        Direction::Forward => (
            more_after(&end_positions)
                .then(|| cursor(Direction::Forward, &end_positions))
                .flatten(),
            more_before(&start_positions)
                .then(|| cursor(Direction::Backward, &start_positions))
                .flatten(),
        ),
        Direction::Backward => {
            messages.reverse();
            (
                more_after(&start_positions)
                    .then(|| cursor(Direction::Forward, &start_positions))
                    .flatten(),
                more_before(&end_positions)
                    .then(|| cursor(Direction::Backward, &end_positions))
                    .flatten(),
            )
        }
    };
    Ok(Json(Page {
        messages,
        next_cursor,
        prev_cursor,
        scanned,
        budget_exhausted,
        isolation,
    }))
}

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`), which its
/// default partitioner applies to the key bytes.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner gives `key` among `count`
/// (`Utils.toPositive(murmur2(key)) % count`).
pub fn partition_for_key(key: &[u8], count: usize) -> i32 {
    ((murmur2(key) & 0x7fff_ffff) as usize % count.max(1)) as i32
}

#[derive(Deserialize)]
pub struct ProduceHeader {
    key: String,
    value: Option<String>,
}

#[derive(Deserialize)]
pub struct ProduceBody {
    partition: Option<i32>,
    key: Option<String>,
    value: Option<String>,
    #[serde(default)]
    headers: Vec<ProduceHeader>,
}

#[derive(Serialize)]
struct Produced {
    partition: i32,
    offset: i64,
}

/// Produces one record (v2 batch, no compression, acks=all) and returns
/// where it went.
pub async fn produce_one(
    caller: &Caller,
    topic: &str,
    partition: i32,
    key: Option<Bytes>,
    value: Option<Bytes>,
    headers: IndexMap<StrBytes, Option<Bytes>>,
) -> ApiResult<i64> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: now_ms,
        key,
        value,
        headers,
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        std::iter::once(&record),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| ApiError::bad_request(format!("cannot encode the record: {e}")))?;
    let mut pd = PartitionProduceData::default();
    pd.index = partition;
    pd.records = Some(buf.freeze());
    let mut td = TopicProduceData::default();
    td.name = TopicName(sb(topic));
    td.partition_data = vec![pd];
    let mut req = ProduceRequest::default();
    req.transactional_id = None;
    req.acks = -1;
    req.timeout_ms = PRODUCE_TIMEOUT_MS;
    req.topic_data = vec![td];
    let resp = caller.client.call(&req, PRODUCE_VERSION).await?;
    let p = resp
        .responses
        .into_iter()
        .flat_map(|t| t.partition_responses)
        .next()
        .ok_or_else(|| ApiError::new(StatusCode::BAD_GATEWAY, "BROKER", "empty produce answer"))?;
    if p.error_code != 0 {
        return Err(ApiError::kafka(
            p.error_code,
            p.error_message.as_ref().map(|m| m.as_str()),
        ));
    }
    Ok(p.base_offset)
}

async fn produce(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ops::JsonBody(body): ops::JsonBody<ProduceBody>,
) -> ApiResult<impl IntoResponse> {
    let meta = ops::topic_meta(&caller.client, &name).await?;
    let count = meta.partitions.len();
    if count == 0 {
        return Err(ApiError::not_found(format!(
            "topic '{name}' has no partitions"
        )));
    }
    if body.headers.len() > PRODUCE_HEADERS_MAX {
        return Err(ApiError::bad_request(format!(
            "at most {PRODUCE_HEADERS_MAX} headers"
        )));
    }
    let partition = match (body.partition, &body.key) {
        (Some(p), _) => {
            if !meta.partitions.iter().any(|(q, _)| *q == p) {
                return Err(ApiError::not_found(format!("no partition {p}")));
            }
            p
        }
        (None, Some(k)) => meta.partitions[partition_for_key(k.as_bytes(), count) as usize].0,
        (None, None) => {
            let n = state.api.scans.round_robin.fetch_add(1, Ordering::Relaxed);
            meta.partitions[n as usize % count].0
        }
    };
    let headers: IndexMap<StrBytes, Option<Bytes>> = body
        .headers
        .into_iter()
        .map(|h| (sb(&h.key), h.value.map(Bytes::from)))
        .collect();
    let offset = produce_one(
        &caller,
        &name,
        partition,
        body.key.map(Bytes::from),
        body.value.map(Bytes::from),
        headers,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(Produced { partition, offset })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        // Values from Kafka's UtilsTest.testMurmur2.
        assert_eq!(murmur2(b"21"), -973932308);
        assert_eq!(murmur2(b"foobar"), -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1486304829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58897971
        );
        assert_eq!(murmur2(b"abc"), 479470107);
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = Cursor {
            direction: Direction::Backward,
            positions: vec![(0, 10), (2, 0)],
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        for bad in ["", "!!", "Zg", "eHx8", &"A".repeat(CURSOR_BYTES_MAX + 1)] {
            assert!(Cursor::decode(bad).is_err(), "{bad}");
        }
        let neg = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("f|0:-1");
        assert!(Cursor::decode(&neg).is_err());
        let dup = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("f|0:1,0:2");
        assert!(Cursor::decode(&dup).is_err());
    }
}
