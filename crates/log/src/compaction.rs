//! Log compaction (Kafka's `cleanup.policy=compact`): keeps, in the closed
//! segments, only the last record of each key.
//!
//! One pass, as Kafka's cleaner does it:
//! 1. The dirty range runs from the cleaner checkpoint (first dirty offset) to
//!    the first uncleanable offset: the active segment's base, the base of
//!    the first dirty segment holding a record younger than
//!    `min.compaction.lag.ms`, or the last stable offset, whichever is first
//!    (nothing of an undecided transaction is cleaned). Nothing is done
//!    unless the dirty bytes are more than `min.cleanable.dirty.ratio` of the
//!    cleanable bytes, or (`max.compaction.lag.ms`, KIP-354) the first batch
//!    of a dirty segment is older than that lag.
//! 2. A key map (key → offset of its last record) is built from the dirty
//!    range, batch by batch, within `compaction_key_map_bytes_max`. If it
//!    fills up, the pass cleans only up to the first batch that did not fit
//!    (`map_end`); the next pass goes on from there.
//! 3. Every closed segment below `map_end`, from the first, is rewritten. A
//!    record below `map_end` is kept iff it has a key, no later record of its
//!    key is in the map, and it is not a tombstone that has been in the
//!    cleaned part for `delete.retention.ms`. Batches are rewritten without
//!    re-encoding records: kept records are copied verbatim, recompressed with
//!    the batch's codec, under the same header (base offset, last offset
//!    delta, producer fields, timestamps) with a new count, length and CRC. A
//!    batch left without records is dropped, except a producer's last batch,
//!    which stays as an empty uncompressed batch (as Kafka does).
//!    Transactions (Kafka's `CleanedTransactionMetadata`): the records of
//!    aborted transactions go (their batches are dropped, they never enter the
//!    key map); committed transactional records are cleaned like any other.
//!    A transaction marker stays while a batch of its transaction is in the
//!    log; the first pass that finds none sets its delete horizon (KIP-534:
//!    attribute bit 6, base timestamp = now + `delete.retention.ms`), and the
//!    first pass after the horizon removes it, with its entry in the aborted
//!    transaction index (rewritten before the segment is swapped in).
//! 4. Each rewritten segment is swapped in (see `swap_in`); then the
//!    checkpoint moves to `map_end`.
//!
//! The log start offset, the offset of every kept record, and the active
//! segment never change.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::batch::{self, BATCH_HEADER_BYTES, BATCH_LENGTH_MIN, BatchHeader};
use crate::compression::{self, Codec};
use crate::config::LogConfig;
use crate::error::{LogError, Result};
use crate::partition_log::fsync_dir;
use crate::producer_state::ProducerStateTable;
use crate::records::{self, RecordView};
use crate::segment::{self, SEGMENT_BYTES_LIMIT, Segment};
use crate::txn_index::{self, AbortedTxnEntry, Collected, TxnIndexView};

mod checkpoint;

pub(crate) use checkpoint::read_checkpoint;
pub use checkpoint::{CLEANER_CHECKPOINT_BYTES_MAX, CLEANER_CHECKPOINT_FILE, CLEANER_PASSES_MAX};
use checkpoint::{CleanerCheckpoint, write_checkpoint};

/// Memory charged per key map entry on top of the key's bytes (hash table
/// slot, boxed key header, offset, allocator slack).
pub const KEY_MAP_ENTRY_OVERHEAD_BYTES: u64 = 64;
/// A batch's records may decompress to at most this many times
/// max(`max.message.bytes`, the batch's size); a batch beyond is an error.
pub const DECOMPRESSED_BYTES_FACTOR: usize = 64;
/// `<base>.log.cleaned`: a cleaned segment being written; deleted at open.
pub const CLEANED_SUFFIX: &str = ".cleaned";
/// `<base>.log.swap`: a complete, fsynced cleaned segment; swapped in at open.
pub const SWAP_SUFFIX: &str = ".swap";
/// Most aborted transactions overlapping one segment that a pass holds in
/// memory (32 bytes each); a segment with more is an error, as a key map too
/// small for one batch is.
pub const ABORTED_TXNS_PER_SEGMENT_MAX: usize = 1 << 20;
/// Verbatim runs of a segment are copied through a buffer of this size.
const COPY_CHUNK_BYTES: usize = 1 << 20;

/// What one call of [`crate::PartitionLog::compact`] did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct CompactionReport {
    /// Segments rewritten and swapped in.
    pub segments_cleaned: usize,
    /// Segments deleted because compaction emptied them (never the first one).
    pub segments_deleted: usize,
    /// Size of the segments the pass read (rewritten or not), before and after.
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Records removed, tombstones and null-key records included.
    pub records_removed: u64,
    /// Tombstones (keyed records with a null value) among `records_removed`.
    pub tombstones_removed: u64,
    /// Batches removed whole.
    pub batches_removed: u64,
    /// Dirty bytes / cleanable bytes when the pass started (0 if no work).
    pub dirty_ratio: f64,
    /// The cleaner checkpoint after the call: offsets below it are clean.
    pub first_dirty_offset: i64,
    /// The key map filled up before the first uncleanable offset: calling
    /// again cleans further.
    pub key_map_full: bool,
    /// Batches of aborted transactions removed whole (also in `batches_removed`).
    pub aborted_batches_removed: u64,
    /// Transaction markers removed (their transaction's data gone and their
    /// delete horizon passed).
    pub markers_removed: u64,
    /// The pass ran below `min.cleanable.dirty.ratio` because a dirty record
    /// had waited longer than `max.compaction.lag.ms`.
    pub forced_by_max_compaction_lag: bool,
}

impl CompactionReport {
    /// Whether the pass changed anything on disk.
    pub fn did_work(&self) -> bool {
        self.segments_cleaned + self.segments_deleted > 0
    }
}

/// Key → offset of its last record in the mapped range, bounded in bytes.
struct KeyMap {
    latest: HashMap<Box<[u8]>, i64>,
    bytes: u64,
    bytes_max: u64,
}

impl KeyMap {
    fn new(bytes_max: u64) -> KeyMap {
        KeyMap {
            latest: HashMap::new(),
            bytes: 0,
            bytes_max,
        }
    }

    /// Adds the keys of one batch, or nothing if they do not all fit: the map
    /// always covers whole batches, so `map_end` is a batch boundary.
    fn try_insert_batch(&mut self, keys: &[(&[u8], i64)]) -> bool {
        let mut new_keys: HashSet<&[u8]> = HashSet::new();
        let mut need = 0u64;
        for &(k, _) in keys {
            if !self.latest.contains_key(k) && new_keys.insert(k) {
                need += k.len() as u64 + KEY_MAP_ENTRY_OVERHEAD_BYTES;
            }
        }
        if self.bytes + need > self.bytes_max {
            return false;
        }
        for &(k, offset) in keys {
            match self.latest.get_mut(k) {
                Some(o) => {
                    assert!(offset > *o, "batches are mapped in offset order");
                    *o = offset;
                }
                None => {
                    self.latest.insert(k.into(), offset);
                }
            }
        }
        self.bytes += need;
        assert!(self.bytes <= self.bytes_max);
        true
    }

    fn latest(&self, key: &[u8]) -> Option<i64> {
        self.latest.get(key).copied()
    }
}

/// Walks a segment's batches, checking each one (length within the file,
/// offsets increasing, CRC32C) before it is used: corruption is an error.
struct BatchReader<'a> {
    segment: &'a Segment,
    pos: u64,
    next_offset_min: i64,
}

impl<'a> BatchReader<'a> {
    fn new(segment: &'a Segment) -> BatchReader<'a> {
        BatchReader {
            segment,
            pos: 0,
            next_offset_min: segment.base_offset,
        }
    }

    /// The next batch: its position, header and bytes.
    fn next_batch(&mut self) -> Result<Option<(u64, BatchHeader, Vec<u8>)>> {
        let size = self.segment.size_bytes();
        if self.pos >= size {
            return Ok(None);
        }
        let header = self
            .segment
            .header_at(self.pos)?
            .ok_or(LogError::CorruptBatch("truncated batch header"))?;
        if (header.batch_length as i64) < BATCH_LENGTH_MIN as i64
            || self.pos + header.total_bytes() as u64 > size
        {
            return Err(LogError::CorruptBatch("batch length out of range"));
        }
        if header.base_offset < self.next_offset_min || header.last_offset_delta < 0 {
            return Err(LogError::CorruptBatch("batch offsets out of order"));
        }
        let bytes = self.segment.read_batch(self.pos, &header)?;
        let checked = batch::validate(&bytes)?;
        assert_eq!(checked, header);
        let pos = self.pos;
        self.pos += bytes.len() as u64;
        self.next_offset_min = header.next_offset();
        Ok(Some((pos, header, bytes)))
    }
}

/// What the pass decides for the records of one segment.
struct CleanRules<'a> {
    map: &'a KeyMap,
    /// Batches at or above it are dirty and not cleaned by this pass.
    map_end: i64,
    /// The checkpoint before this pass (tombstone ages).
    checkpoint: &'a CleanerCheckpoint,
    now_ms: i64,
    delete_retention_ms: i64,
    producer_last_batches: &'a HashSet<i64>,
    message_bytes_max: usize,
}

impl CleanRules<'_> {
    fn keep(&self, record: &RecordView<'_>, offset: i64) -> bool {
        let Some(key) = record.key else {
            // A compacted topic refuses null keys (Kafka); these predate the policy.
            return false;
        };
        if self.map.latest(key).is_some_and(|latest| latest > offset) {
            return false;
        }
        let expired_tombstone = record.value_is_null
            && self
                .checkpoint
                .cleaned_at_ms(offset)
                .is_some_and(|at| self.now_ms.saturating_sub(at) >= self.delete_retention_ms);
        !expired_tombstone
    }
}

enum BatchOutcome {
    Keep,
    Rewrite(Vec<u8>),
    Drop,
}

fn decompressed_bytes_max(message_bytes_max: usize, batch_bytes: usize) -> usize {
    message_bytes_max
        .max(batch_bytes)
        .saturating_mul(DECOMPRESSED_BYTES_FACTOR)
}

/// The records of a data batch (decompressed and framed).
fn with_records<T>(
    header: &BatchHeader,
    bytes: &[u8],
    message_bytes_max: usize,
    f: impl FnOnce(&[RecordView<'_>]) -> Result<T>,
) -> Result<T> {
    let limit = decompressed_bytes_max(message_bytes_max, bytes.len());
    let section = records::decompress(header.compression(), &bytes[BATCH_HEADER_BYTES..], limit)?;
    let parsed = records::parse(&section, header)?;
    f(&parsed)
}

/// A batch with `header_of`'s header and `section` (`records_count` records
/// compressed with `codec`) as its records: base offset, last offset delta,
/// producer fields and timestamps stay (see [`compression::with_records`]).
fn rebuild_batch(header_of: &[u8], section: &[u8], records_count: i32, codec: Codec) -> Vec<u8> {
    let out = compression::with_records(header_of, codec, section, records_count);
    // Assert before the batch reaches the disk.
    let before = BatchHeader::parse(header_of).expect("the original batch was validated");
    let after = batch::validate(&out).expect("a rebuilt batch is valid");
    assert_eq!(after.base_offset, before.base_offset);
    assert_eq!(after.last_offset_delta, before.last_offset_delta);
    assert_eq!(after.producer_id, before.producer_id);
    assert_eq!(after.producer_epoch, before.producer_epoch);
    assert_eq!(after.base_sequence, before.base_sequence);
    assert_eq!(after.base_timestamp, before.base_timestamp);
    assert_eq!(after.max_timestamp, before.max_timestamp);
    assert_eq!(after.records_count, records_count);
    out
}

/// The aborted transactions overlapping one segment, by producer: (first
/// offset, marker offset) ranges.
#[derive(Debug, Default)]
struct AbortedRanges {
    by_producer: HashMap<i64, Vec<(i64, i64)>>,
}

impl AbortedRanges {
    /// From the indexes of the segment `[base, next)` and every later one
    /// (an entry lives in its marker's segment, after the transaction's data).
    fn of_segment(views: &[(i64, TxnIndexView)], base: i64, next: i64) -> Result<AbortedRanges> {
        let mut entries: Vec<AbortedTxnEntry> = Vec::new();
        for (_, v) in views.iter().filter(|(b, _)| *b >= base) {
            match v.collect(base, next, &mut entries, ABORTED_TXNS_PER_SEGMENT_MAX)? {
                Collected::Complete => break,
                Collected::Continue => {}
                Collected::Full => {
                    return Err(LogError::InvalidRecord(
                        "too many aborted transactions overlap one segment to compact it",
                    ));
                }
            }
        }
        let mut by_producer: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
        for e in entries {
            by_producer
                .entry(e.producer_id)
                .or_default()
                .push((e.first_offset, e.last_offset));
        }
        Ok(AbortedRanges { by_producer })
    }

    /// Whether a transactional data batch belongs to an aborted transaction.
    fn contains(&self, h: &BatchHeader) -> bool {
        self.by_producer.get(&h.producer_id).is_some_and(|r| {
            r.iter()
                .any(|&(f, l)| f <= h.base_offset && h.base_offset <= l)
        })
    }
}

/// Transaction state across one pass, in offset order from the first
/// segment (Kafka's `CleanedTransactionMetadata`).
#[derive(Debug, Default)]
struct TxnTracker {
    /// Producers with a batch of their current transaction seen this pass.
    data_seen: HashSet<i64>,
    /// The segment being cleaned's aborted transactions.
    aborted: AbortedRanges,
    /// Offsets of the abort markers this segment's cleaning removes.
    dropped_abort_markers: HashSet<i64>,
}

impl TxnTracker {
    fn begin_segment(&mut self, aborted: AbortedRanges) {
        self.aborted = aborted;
        self.dropped_abort_markers.clear();
    }

    /// A transactional data batch: seen; whether it is aborted.
    fn on_data(&mut self, h: &BatchHeader) -> bool {
        self.data_seen.insert(h.producer_id);
        self.aborted.contains(h)
    }

    /// A control batch below the cleaned point. Kafka's rule
    /// (`LogCleaner`/`CleanedTransactionMetadata.onControlBatchRead`, KIP-534):
    /// a marker stays while any batch of its transaction is in the log (this
    /// pass saw one: it may be removed by this pass, the marker goes at a
    /// later one); once none is, it is removable, and is removed once its
    /// delete horizon (set by the first pass that found it removable, to
    /// now + `delete.retention.ms`) has passed, so that a consumer reading
    /// the partition meanwhile still sees it.
    fn on_marker(
        &mut self,
        h: &BatchHeader,
        bytes: &[u8],
        rules: &CleanRules<'_>,
        report: &mut CompactionReport,
    ) -> BatchOutcome {
        let seen = self.data_seen.remove(&h.producer_id);
        if h.last_offset() >= rules.map_end {
            return BatchOutcome::Keep;
        }
        let Some(marker) = batch::parse_marker(bytes, h) else {
            return BatchOutcome::Keep;
        };
        if seen {
            return BatchOutcome::Keep;
        }
        match h.delete_horizon_ms() {
            Some(horizon) if horizon <= rules.now_ms => {
                report.markers_removed += 1;
                report.batches_removed += 1;
                if !marker.commit {
                    self.dropped_abort_markers.insert(h.base_offset);
                }
                BatchOutcome::Drop
            }
            Some(_) => BatchOutcome::Keep,
            None => {
                let horizon = rules.now_ms.saturating_add(rules.delete_retention_ms);
                let mut b = batch::build::marker_batch(&marker, h.max_timestamp, Some(horizon));
                batch::assign_offset(&mut b, h.base_offset, h.partition_leader_epoch);
                BatchOutcome::Rewrite(b)
            }
        }
    }
}

fn clean_batch(
    header: &BatchHeader,
    bytes: &[u8],
    rules: &CleanRules<'_>,
    txns: &mut TxnTracker,
    report: &mut CompactionReport,
) -> Result<BatchOutcome> {
    if header.is_control() {
        return Ok(txns.on_marker(header, bytes, rules, report));
    }
    let aborted = header.is_transactional() && txns.on_data(header);
    if header.last_offset() >= rules.map_end {
        return Ok(BatchOutcome::Keep);
    }
    let is_producer_last =
        header.has_producer_id() && rules.producer_last_batches.contains(&header.base_offset);
    if aborted {
        // Kafka: an aborted transaction's records go; the producer's last
        // batch stays, emptied, for its sequence state.
        if is_producer_last {
            if header.records_count == 0 {
                return Ok(BatchOutcome::Keep);
            }
            report.records_removed += header.records_count.max(0) as u64;
            return Ok(BatchOutcome::Rewrite(rebuild_batch(
                bytes,
                &[],
                0,
                Codec::None,
            )));
        }
        report.records_removed += header.records_count.max(0) as u64;
        report.batches_removed += 1;
        report.aborted_batches_removed += 1;
        return Ok(BatchOutcome::Drop);
    }
    with_records(header, bytes, rules.message_bytes_max, |recs| {
        let mut kept: Vec<&[u8]> = Vec::with_capacity(recs.len());
        let mut tombstones_removed = 0u64;
        for r in recs {
            if rules.keep(r, header.base_offset + r.offset_delta as i64) {
                kept.push(r.bytes);
            } else if r.key.is_some() && r.value_is_null {
                tombstones_removed += 1;
            }
        }
        if recs.is_empty() && !is_producer_last {
            // An empty batch kept by an earlier pass for a producer that has
            // written since: no longer needed.
            report.batches_removed += 1;
            return Ok(BatchOutcome::Drop);
        }
        if kept.len() == recs.len() {
            return Ok(BatchOutcome::Keep);
        }
        report.records_removed += (recs.len() - kept.len()) as u64;
        report.tombstones_removed += tombstones_removed;
        if kept.is_empty() {
            if is_producer_last {
                // Kept so that a rebuild from headers still finds the
                // producer's epoch and last sequence (an empty batch, as Kafka
                // writes it: uncompressed, no records, same last offset delta).
                return Ok(BatchOutcome::Rewrite(rebuild_batch(
                    bytes,
                    &[],
                    0,
                    Codec::None,
                )));
            }
            report.batches_removed += 1;
            return Ok(BatchOutcome::Drop);
        }
        let raw: Vec<u8> = kept.concat();
        let section = records::compress(header.compression(), &raw)?;
        let count = i32::try_from(kept.len()).expect("fewer records than the batch had");
        Ok(BatchOutcome::Rewrite(rebuild_batch(
            bytes,
            &section,
            count,
            Codec::from_id(header.compression())?,
        )))
    })
}

fn suffixed(dir: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{}{suffix}", segment::log_file_name(base_offset)))
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogError::Io(e)),
    }
}

/// The cleaned form of a segment.
enum CleanedSegment {
    /// No record removed: the segment stays as it is.
    Unchanged,
    /// `<base>.log.cleaned` is written and fsynced: this many bytes.
    Written { bytes: u64 },
}

/// Writes the cleaned form of `seg` to `<base>.log.cleaned`, lazily: the file
/// is created at the first batch that changes, with the verbatim bytes before it.
fn clean_segment(
    dir: &Path,
    seg: &Segment,
    rules: &CleanRules<'_>,
    txns: &mut TxnTracker,
    report: &mut CompactionReport,
) -> Result<CleanedSegment> {
    let path = suffixed(dir, seg.base_offset, CLEANED_SUFFIX);
    let result = write_cleaned(&path, seg, rules, txns, report);
    if !matches!(result, Ok(CleanedSegment::Written { .. })) {
        // Nothing to swap in, or an error: no partial file stays behind.
        remove_if_exists(&path)?;
    }
    result
}

fn write_cleaned(
    path: &Path,
    seg: &Segment,
    rules: &CleanRules<'_>,
    txns: &mut TxnTracker,
    report: &mut CompactionReport,
) -> Result<CleanedSegment> {
    let source = seg.file();
    let mut out: Option<BufWriter<File>> = None;
    let mut written = 0u64;
    // Start of the run of unchanged batches not yet copied.
    let mut verbatim_from = 0u64;
    let mut chunk = Vec::new();
    let mut copy = |out: &mut BufWriter<File>, from: u64, to: u64| -> Result<u64> {
        let mut at = from;
        while at < to {
            let n = ((to - at) as usize).min(COPY_CHUNK_BYTES);
            chunk.resize(n, 0);
            source.read_exact_at(&mut chunk, at)?;
            out.write_all(&chunk)?;
            at += n as u64;
        }
        Ok(to - from)
    };
    let mut reader = BatchReader::new(seg);
    while let Some((pos, header, bytes)) = reader.next_batch()? {
        let replacement = match clean_batch(&header, &bytes, rules, txns, report)? {
            BatchOutcome::Keep => continue,
            BatchOutcome::Drop => None,
            BatchOutcome::Rewrite(b) => Some(b),
        };
        let w = match out.as_mut() {
            Some(w) => w,
            None => out.insert(BufWriter::with_capacity(
                COPY_CHUNK_BYTES,
                File::create(path)?,
            )),
        };
        written += copy(w, verbatim_from, pos)?;
        if let Some(b) = replacement {
            w.write_all(&b)?;
            written += b.len() as u64;
        }
        verbatim_from = pos + bytes.len() as u64;
    }
    let Some(mut w) = out else {
        return Ok(CleanedSegment::Unchanged);
    };
    written += copy(&mut w, verbatim_from, seg.size_bytes())?;
    if written > SEGMENT_BYTES_LIMIT {
        return Err(LogError::CorruptBatch(
            "cleaned segment would exceed the segment size limit",
        ));
    }
    w.flush()?;
    let file = w.into_inner().map_err(|e| LogError::Io(e.into_error()))?;
    file.sync_all()?;
    assert_eq!(file.metadata()?.len(), written);
    Ok(CleanedSegment::Written { bytes: written })
}

/// Swaps a fsynced `<base>.log.cleaned` in for `<base>.log`:
/// 1. rename `.log.cleaned` → `.log.swap`, fsync the directory: the commit
///    point (a `.swap` is complete; a `.cleaned` may not be);
/// 2. [`complete_swap`].
fn swap_in(dir: &Path, base_offset: i64) -> Result<()> {
    std::fs::rename(
        suffixed(dir, base_offset, CLEANED_SUFFIX),
        suffixed(dir, base_offset, SWAP_SUFFIX),
    )?;
    fsync_dir(dir)?;
    complete_swap(dir, base_offset)
}

/// 1. delete the segment's `.index` and `.timeindex`, fsync the directory (the
///    old indexes must never describe the new log; missing ones are rebuilt);
/// 2. rename `.log.swap` → `.log` (atomic replace), fsync the directory.
fn complete_swap(dir: &Path, base_offset: i64) -> Result<()> {
    remove_if_exists(&dir.join(segment::index_file_name(base_offset)))?;
    remove_if_exists(&dir.join(segment::time_index_file_name(base_offset)))?;
    fsync_dir(dir)?;
    std::fs::rename(
        suffixed(dir, base_offset, SWAP_SUFFIX),
        dir.join(segment::log_file_name(base_offset)),
    )?;
    fsync_dir(dir)?;
    Ok(())
}

/// Deletes a segment that compaction emptied: indexes first, so that a crash
/// leaves at worst orphan index files (ignored), never a `.log` without its
/// place in the order. (Its transaction index may go first: every marker in
/// it is being removed because its transaction's data is already gone.)
fn delete_emptied(dir: &Path, base_offset: i64) -> Result<()> {
    remove_if_exists(&dir.join(txn_index::txn_index_file_name(base_offset)))?;
    remove_if_exists(&dir.join(segment::index_file_name(base_offset)))?;
    remove_if_exists(&dir.join(segment::time_index_file_name(base_offset)))?;
    remove_if_exists(&dir.join(segment::log_file_name(base_offset)))?;
    fsync_dir(dir)?;
    Ok(())
}

fn parse_base(stem: &str) -> Option<i64> {
    stem.parse::<i64>().ok().filter(|b| *b >= 0)
}

/// Replaces the aborted transaction index of a cleaned segment by its
/// entries without those of `dropped` markers, before the segment is swapped
/// in: written to `<base>.txnindex.cleaned`, fsynced, renamed over
/// `<base>.txnindex` (removed if nothing is left), directory fsynced. A crash
/// between this and the segment swap leaves markers without their entries
/// whose transactions' data is already gone, which reads the same.
fn rewrite_txn_index(dir: &Path, seg: &Segment, dropped: &HashSet<i64>) -> Result<()> {
    let target = dir.join(txn_index::txn_index_file_name(seg.base_offset));
    let tmp = dir.join(format!(
        "{}{CLEANED_SUFFIX}",
        txn_index::txn_index_file_name(seg.base_offset)
    ));
    let kept = match seg.txn_index().view() {
        Some(v) => {
            let mut out = BufWriter::new(File::create(&tmp)?);
            let kept = v.write_filtered(&mut out, |e| !dropped.contains(&e.last_offset))?;
            let file = out.into_inner().map_err(|e| LogError::Io(e.into_error()))?;
            file.sync_all()?;
            kept
        }
        None => 0,
    };
    if kept == 0 {
        remove_if_exists(&tmp)?;
        remove_if_exists(&target)?;
    } else {
        std::fs::rename(&tmp, &target)?;
    }
    fsync_dir(dir)
}

/// Finishes or discards swaps a crash interrupted (called at open, before
/// segments are listed): a `.log.cleaned` is deleted (the old segment is
/// intact), a `.log.swap` is completed (it is complete and durable), a
/// `.txnindex.cleaned` is deleted (the index it would replace still holds
/// every entry of its segment's markers).
pub(crate) fn recover_interrupted_swaps(dir: &Path) -> Result<()> {
    let mut cleaned = Vec::new();
    let mut swaps = Vec::new();
    let mut txn_cleaned = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(&format!(".txnindex{CLEANED_SUFFIX}")) {
            txn_cleaned.push(dir.join(&*name));
        } else if let Some(base) = name
            .strip_suffix(&format!(".log{CLEANED_SUFFIX}"))
            .and_then(parse_base)
        {
            cleaned.push(base);
        } else if let Some(base) = name
            .strip_suffix(&format!(".log{SWAP_SUFFIX}"))
            .and_then(parse_base)
        {
            swaps.push(base);
        }
    }
    for &base in &cleaned {
        tracing::warn!(dir = %dir.display(), segment = base, "discarding an unfinished cleaned segment");
        remove_if_exists(&suffixed(dir, base, CLEANED_SUFFIX))?;
    }
    for path in &txn_cleaned {
        tracing::warn!(path = %path.display(), "discarding an unfinished cleaned transaction index");
        remove_if_exists(path)?;
    }
    for &base in &swaps {
        if dir.join(segment::log_file_name(base)).exists() {
            tracing::warn!(dir = %dir.display(), segment = base, "completing an interrupted segment swap");
            complete_swap(dir, base)?;
        } else {
            // Not made by this protocol (the .log is replaced, never removed first).
            tracing::warn!(dir = %dir.display(), segment = base, "removing a swap file without its segment");
            remove_if_exists(&suffixed(dir, base, SWAP_SUFFIX))?;
        }
    }
    if !cleaned.is_empty() || !swaps.is_empty() || !txn_cleaned.is_empty() {
        fsync_dir(dir)?;
    }
    Ok(())
}

fn duration_ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// One compaction pass over `segments` (the last one is the active segment).
pub(crate) fn compact(
    dir: &Path,
    config: &LogConfig,
    segments: &mut BTreeMap<i64, Segment>,
    log_start_offset: i64,
    last_stable_offset: i64,
    producers: &ProducerStateTable,
    now_ms: i64,
) -> Result<CompactionReport> {
    let mut report = CompactionReport::default();
    let active_base = *segments
        .keys()
        .next_back()
        .expect("a log always has an active segment");
    let first_base = *segments.keys().next().expect("a log always has a segment");
    let mut checkpoint = read_checkpoint(dir)?;
    if checkpoint
        .first_dirty_offset()
        .is_some_and(|d| d > active_base)
    {
        // The log lost offsets the checkpoint calls clean (recovery dropped
        // segments): offsets appended again there were never cleaned.
        tracing::warn!(dir = %dir.display(), "cleaner checkpoint past the active segment; starting over");
        checkpoint = CleanerCheckpoint::default();
    }
    let first_dirty = checkpoint
        .first_dirty_offset()
        .unwrap_or(log_start_offset)
        .max(log_start_offset);
    report.first_dirty_offset = first_dirty;
    if !config.compact {
        return Ok(report);
    }

    // The cleanable range, and how dirty it is.
    let lag_ms = duration_ms(config.min_compaction_lag);
    let mut first_uncleanable = active_base;
    let (mut clean_bytes, mut dirty_bytes) = (0u64, 0u64);
    for seg in segments.range(..active_base).map(|(_, s)| s) {
        if seg.next_offset() <= first_dirty {
            clean_bytes += seg.size_bytes();
            continue;
        }
        if (lag_ms > 0 && seg.max_timestamp() > now_ms.saturating_sub(lag_ms))
            || seg.base_offset >= last_stable_offset
        {
            first_uncleanable = seg.base_offset;
            break;
        }
        dirty_bytes += seg.size_bytes();
    }
    // Kafka: never clean at or beyond the last stable offset (a batch
    // boundary), so no undecided transaction is touched.
    let first_uncleanable = first_uncleanable.min(last_stable_offset);
    if dirty_bytes == 0 || first_uncleanable <= first_dirty {
        return Ok(report);
    }
    let dirty_ratio = dirty_bytes as f64 / (clean_bytes + dirty_bytes) as f64;
    // Kafka cleans a log only when its dirty ratio is above the minimum.
    if dirty_ratio <= config.min_cleanable_dirty_ratio {
        // KIP-354: a record dirty for longer than max.compaction.lag.ms is
        // cleaned whatever the ratio. Like Kafka, a segment's age is the max
        // timestamp of its first batch (non-positive timestamps are ignored).
        let overdue = match config.max_compaction_lag {
            Some(lag) => {
                let clean_until_ms = now_ms.saturating_sub(duration_ms(lag));
                let mut overdue = false;
                for seg in segments.range(..first_uncleanable).map(|(_, s)| s) {
                    if seg.next_offset() <= first_dirty {
                        continue;
                    }
                    if let Some(h) = seg.header_at(0)?
                        && h.max_timestamp > 0
                        && h.max_timestamp < clean_until_ms
                    {
                        overdue = true;
                        break;
                    }
                }
                overdue
            }
            None => false,
        };
        if !overdue {
            return Ok(report);
        }
        report.forced_by_max_compaction_lag = true;
    }
    report.dirty_ratio = dirty_ratio;

    // Every aborted transaction index, as of now (an entry sits in its
    // marker's segment).
    let txn_views: Vec<(i64, TxnIndexView)> = segments
        .iter()
        .filter_map(|(&b, s)| s.txn_index().view().map(|v| (b, v)))
        .collect();
    let aborted_of = |seg: &Segment| {
        if txn_views.is_empty() {
            Ok(AbortedRanges::default())
        } else {
            AbortedRanges::of_segment(&txn_views, seg.base_offset, seg.next_offset())
        }
    };

    // The key map of the dirty range, as far as it fits.
    let mut map = KeyMap::new(config.compaction_key_map_bytes_max);
    let mut map_end = first_uncleanable;
    'segments: for seg in segments.range(..first_uncleanable).map(|(_, s)| s) {
        if seg.next_offset() <= first_dirty {
            continue;
        }
        let aborted = aborted_of(seg)?;
        let mut reader = BatchReader::new(seg);
        while let Some((_, header, bytes)) = reader.next_batch()? {
            if header.base_offset >= first_uncleanable {
                break 'segments;
            }
            if header.base_offset < first_dirty
                || header.is_control()
                || (header.is_transactional() && aborted.contains(&header))
            {
                // Markers hold no keys; aborted records never shadow others.
                continue;
            }
            let fitted = with_records(&header, &bytes, config.message_bytes_max, |recs| {
                let keys: Vec<(&[u8], i64)> = recs
                    .iter()
                    .filter_map(|r| {
                        r.key
                            .map(|k| (k, header.base_offset + r.offset_delta as i64))
                    })
                    .collect();
                Ok(map.try_insert_batch(&keys))
            })?;
            if !fitted {
                if header.base_offset <= first_dirty {
                    return Err(LogError::InvalidRecord(
                        "compaction_key_map_bytes_max cannot hold the keys of one batch",
                    ));
                }
                map_end = header.base_offset;
                report.key_map_full = true;
                break 'segments;
            }
        }
    }
    assert!(first_dirty < map_end && map_end <= first_uncleanable);

    // Rewrite every closed segment below map_end, oldest first: when a
    // tombstone goes, the older records of its key are already gone.
    let producer_last_batches = producers.last_batch_base_offsets();
    let rules = CleanRules {
        map: &map,
        map_end,
        checkpoint: &checkpoint,
        now_ms,
        delete_retention_ms: duration_ms(config.delete_retention),
        producer_last_batches: &producer_last_batches,
        message_bytes_max: config.message_bytes_max,
    };
    let bases: Vec<i64> = segments.range(..map_end).map(|(&b, _)| b).collect();
    let mut txns = TxnTracker::default();
    for base in bases {
        assert!(base < active_base, "the active segment is never cleaned");
        let seg = &segments[&base];
        report.bytes_before += seg.size_bytes();
        txns.begin_segment(aborted_of(seg)?);
        let cleaned = clean_segment(dir, seg, &rules, &mut txns, &mut report)?;
        if !txns.dropped_abort_markers.is_empty() {
            // Before the swap: an entry must never outlive its marker.
            rewrite_txn_index(dir, seg, &txns.dropped_abort_markers)?;
        }
        match cleaned {
            CleanedSegment::Unchanged => report.bytes_after += seg.size_bytes(),
            CleanedSegment::Written { bytes: 0 } if base != first_base => {
                // Emptied: deleted, not kept as an empty file. The first
                // segment stays (its name anchors the log start offset).
                remove_if_exists(&suffixed(dir, base, CLEANED_SUFFIX))?;
                delete_emptied(dir, base)?;
                segments.remove(&base);
                report.segments_deleted += 1;
            }
            CleanedSegment::Written { bytes } => {
                let old_next = seg.next_offset();
                swap_in(dir, base)?;
                // Read back: the indexes are rebuilt by a scan of the new file.
                let (cleaned, summary) =
                    Segment::open(dir, base, false, config.index_interval_bytes)?;
                if summary.truncated_bytes != 0 || cleaned.size_bytes() != bytes {
                    return Err(LogError::CorruptBatch("cleaned segment does not read back"));
                }
                assert!(cleaned.next_offset() <= old_next);
                segments.insert(base, cleaned);
                report.segments_cleaned += 1;
                report.bytes_after += bytes;
            }
        }
    }

    checkpoint.record_pass(map_end, now_ms);
    write_checkpoint(dir, &checkpoint)?;
    report.first_dirty_offset = map_end;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_map_takes_whole_batches_within_its_bound() {
        let mut m = KeyMap::new(2 * (KEY_MAP_ENTRY_OVERHEAD_BYTES + 1));
        assert!(m.try_insert_batch(&[(b"a", 1), (b"a", 2)]));
        assert!(m.try_insert_batch(&[(b"b", 3), (b"a", 4)]));
        assert!(!m.try_insert_batch(&[(b"a", 5), (b"c", 6)]));
        assert_eq!(
            m.latest(b"a"),
            Some(4),
            "a batch that did not fit left no trace"
        );
        assert_eq!(m.latest(b"c"), None);
        assert!(m.try_insert_batch(&[(b"b", 7)]));
        assert_eq!(m.latest(b"b"), Some(7));
    }
}
