//! The log of one partition: an ordered set of segments, the log start offset,
//! producer state (idempotence and transactions, see `transactions.rs`), and
//! the rules for rolling, retention and recovery.
//!
//! Disk assumptions (see docs/storage-format.md): a write that returned may be
//! lost or torn at any byte until fsync returns; fsync of a file makes its data
//! durable; rename is atomic; a directory must be fsynced for a new file name to
//! survive a crash. Everything but `.log` files and the log start checkpoint is
//! derived state, rebuilt after an unclean shutdown (the cleaner checkpoint of
//! compacted logs is a hint whose loss only costs work, see `compaction.rs`).

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::batch::{self, BatchHeader};
use crate::compaction::{self, CompactionReport};
use crate::compression;
use crate::config::LogConfig;
use crate::error::{LogError, Result};
use crate::fault::{self, FileOp};
use crate::producer_state::{OPEN_TXNS_PER_PARTITION_MAX, ProducerStateTable, SequenceVerdict};
use crate::records;
use crate::segment::{ReadPlan, SEGMENT_BYTES_LIMIT, Segment};

mod transactions;
pub use transactions::{ABORTED_TXNS_PER_READ_MAX, AbortedTxn, AbortedTxnsPlan, CommittedRead};

pub const CLEAN_SHUTDOWN_FILE: &str = ".clean-shutdown";
const LOG_START_FILE: &str = "log-start-offset";
/// Idempotent producer state as of a segment roll or clean close, so producers
/// whose batches retention deleted are still known after a restart.
pub const PRODUCER_SNAPSHOT_FILE: &str = "producer-snapshot";

/// Result of one append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// Broker time stamped into `LogAppendTime` batches, else -1.
    pub log_append_time_ms: i64,
    /// The batch was a retry of one already written; nothing new was appended.
    pub duplicate: bool,
    pub records: u64,
}

/// What opening the log found and repaired.
#[derive(Debug, Default, Clone)]
pub struct OpenReport {
    pub clean_shutdown: bool,
    pub segments: usize,
    pub batches_scanned: u64,
    pub truncated_bytes: u64,
    pub duration: Duration,
}

/// A batch found by timestamp: its header and whole bytes (for record-level search).
#[derive(Debug, Clone)]
pub struct TimestampHit {
    pub header: BatchHeader,
    pub batch: Vec<u8>,
}

/// How far the log is known to be on disk: every offset below `offset`, which
/// is the batch boundary at byte `position` of segment `segment_base`. With
/// fsync on ack, reads stop there (the high watermark).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Durable {
    offset: i64,
    segment_base: i64,
    position: u64,
}

/// One group-commit fsync, taken under the log's lock and run without it.
#[derive(Debug, Clone)]
pub struct SyncTarget {
    file: Arc<File>,
    path: PathBuf,
    durable: Durable,
}

impl SyncTarget {
    /// The log end offset this fsync makes durable.
    pub fn end_offset(&self) -> i64 {
        self.durable.offset
    }

    /// fdatasync of the active segment (through the fault seam).
    pub fn sync(&self) -> std::io::Result<()> {
        fault::check(FileOp::Fsync, &self.path)?;
        self.file.sync_data()
    }
}

#[derive(Debug)]
pub struct PartitionLog {
    dir: PathBuf,
    config: LogConfig,
    segments: BTreeMap<i64, Segment>,
    log_start_offset: i64,
    producers: ProducerStateTable,
    active_created: Instant,
    unflushed_messages: u64,
    last_flush: Instant,
    durable: Durable,
    /// Set when a write or fsync failed in a way that leaves the files (or the
    /// page cache behind them) in doubt: EIO, or a failed append that could not
    /// be undone. The log then refuses everything, is never closed cleanly, and
    /// the next open recovers it from what is on disk. A failed fsync is never
    /// retried: Linux may have dropped the dirty pages, so a second fsync could
    /// succeed without the data ("fsyncgate").
    offline: Option<String>,
    /// The last append failed for lack of space (for a log line per episode).
    out_of_space: bool,
    /// Transactions whose marker is written but not yet below the high
    /// watermark (fsync on ack, before the marker's fsync): (first offset,
    /// marker offset), in marker order. They still hold the last stable
    /// offset back, as Kafka's unreplicated transactions do.
    completed_unstable: VecDeque<(i64, i64)>,
    /// Whether a segment may hold aborted transaction index entries (set at
    /// open and by every entry written, never cleared while open): a
    /// read_committed read of a partition that never saw an abort looks at
    /// no segment's index (librdkafka consumers read committed by default).
    aborted_txns_indexed: bool,
}

pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    fault::check(FileOp::Fsync, dir)?;
    File::open(dir)?.sync_all()?;
    Ok(())
}

impl PartitionLog {
    /// Opens (or creates) the log in `dir`, recovering it if it was not closed cleanly.
    pub fn open(dir: &Path, config: LogConfig) -> Result<(PartitionLog, OpenReport)> {
        let started = Instant::now();
        let created = !dir.exists();
        std::fs::create_dir_all(dir)?;
        if created && let Some(parent) = dir.parent() {
            // The new directory's entry is durable only once its parent is
            // fsynced: without it a power loss could take the partition, with
            // every record already acknowledged in it, away.
            fsync_dir(parent)?;
        }
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        let clean = marker.exists();
        if clean {
            // The removal must be durable before anything is written: a marker
            // that reappeared after a crash would make the next open skip the
            // recovery (CRC-checked scan) of an active segment written since.
            std::fs::remove_file(&marker)?;
            fsync_dir(dir)?;
        }
        let mut report = OpenReport {
            clean_shutdown: clean,
            ..Default::default()
        };

        // A compaction a crash interrupted: finish or discard its segment swap
        // before the segments are listed.
        compaction::recover_interrupted_swaps(dir)?;

        let mut bases = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Some(stem) = name.strip_suffix(".log")
                && let Ok(base) = stem.parse::<i64>()
                && base >= 0
            {
                bases.push(base);
            }
        }
        bases.sort_unstable();

        let checkpoint = read_log_start(dir)?;
        let mut segments = BTreeMap::new();
        let mut expected_next: Option<i64> = None;
        // A closed segment may end below the next one's base (compaction
        // removed its last records), so a gap alone is no sign of loss; a
        // segment truncated by this recovery is.
        let mut truncated_before = false;
        let count = bases.len();
        for (i, base) in bases.iter().copied().enumerate() {
            if let Some(next) = expected_next
                && (truncated_before || base < next)
            {
                // After a truncated segment (or overlapping it): later data cannot be trusted.
                tracing::warn!(dir = %dir.display(), base, next, "dropping segment after a truncated one");
                let (seg, _) = Segment::open(dir, base, false, config.index_interval_bytes)?;
                seg.delete()?;
                continue;
            }
            let is_last = i + 1 == count;
            let (seg, summary) =
                Segment::open(dir, base, !clean && is_last, config.index_interval_bytes)?;
            report.batches_scanned += summary.batches;
            report.truncated_bytes += summary.truncated_bytes;
            if summary.truncated_bytes > 0 {
                tracing::warn!(
                    dir = %dir.display(),
                    segment = base,
                    truncated_bytes = summary.truncated_bytes,
                    "truncated a torn or corrupt tail"
                );
            }
            truncated_before |= summary.truncated_bytes > 0;
            expected_next = Some(seg.next_offset());
            segments.insert(base, seg);
        }
        // An empty trailing segment other than the first is harmless; keep it.
        if segments.is_empty() {
            let base = checkpoint.unwrap_or(0);
            segments.insert(base, Segment::create(dir, base)?);
            fsync_dir(dir)?;
        }
        let first_base = *segments.keys().next().unwrap_or(&0);
        let next_offset = segments
            .values()
            .next_back()
            .map(|s| s.next_offset())
            .unwrap_or(0);
        let log_start_offset = checkpoint
            .unwrap_or(first_base)
            .max(first_base)
            .min(next_offset);
        if checkpoint.is_some_and(|c| c != log_start_offset) {
            // Recovery lost offsets the checkpoint had deleted (or segments it
            // had not caught up with): persist the start actually in force, or
            // offsets written from now on would vanish at the next open.
            write_log_start(dir, log_start_offset)?;
        }

        let mut log = PartitionLog {
            dir: dir.to_path_buf(),
            config,
            segments,
            log_start_offset,
            producers: ProducerStateTable::default(),
            active_created: Instant::now(),
            unflushed_messages: 0,
            last_flush: Instant::now(),
            durable: Durable {
                offset: 0,
                segment_base: 0,
                position: 0,
            },
            offline: None,
            out_of_space: false,
            completed_unstable: VecDeque::new(),
            aborted_txns_indexed: false,
        };
        if !clean {
            // What a crashed process wrote may still be only in the page cache:
            // make it durable before it is exposed below the high watermark.
            log.active().sync()?;
        }
        log.durable = log.durable_now();
        log.rebuild_producer_state()?;
        log.aborted_txns_indexed = log.segments.values().any(|s| s.txn_index().entries() > 0);
        report.segments = log.segments.len();
        report.duration = started.elapsed();
        Ok((log, report))
    }

    fn write_producer_snapshot(&self) -> Result<()> {
        let text = self.producers.encode_snapshot(self.log_end_offset());
        let tmp = self.dir.join(format!("{PRODUCER_SNAPSHOT_FILE}.tmp"));
        let written = write_synced(&tmp, text.as_bytes())
            .and_then(|()| std::fs::rename(&tmp, self.dir.join(PRODUCER_SNAPSHOT_FILE)));
        if let Err(e) = written {
            // No half-written temp file left behind (a full disk).
            let _ = std::fs::remove_file(&tmp);
            return Err(LogError::Io(e));
        }
        Ok(())
    }

    /// The durable point if everything written so far is on disk.
    fn durable_now(&self) -> Durable {
        let a = self.active();
        Durable {
            offset: a.next_offset(),
            segment_base: a.base_offset,
            position: a.size_bytes(),
        }
    }

    /// Takes the log offline after a failure that leaves its files in doubt;
    /// returns the error to answer with.
    fn fail(&mut self, e: std::io::Error) -> LogError {
        if self.offline.is_none() {
            self.offline = Some(e.to_string());
        }
        LogError::Io(e)
    }

    /// A failure that may only be lack of space (nothing was left half
    /// written): answered, the log stays online. Anything else takes it offline.
    fn fail_unless_space(&mut self, e: LogError) -> LogError {
        match e {
            LogError::Io(io) if fault::is_out_of_space(&io) => {
                self.note_out_of_space(&io);
                LogError::Io(io)
            }
            LogError::Io(io) => self.fail(io),
            other => other,
        }
    }

    fn note_out_of_space(&mut self, e: &std::io::Error) {
        if !self.out_of_space {
            tracing::warn!(dir = %self.dir.display(), error = %e, "disk full: appends to this partition fail until space is freed");
            self.out_of_space = true;
        }
    }

    /// Why the log is offline (a failed write or fsync), if it is.
    pub fn offline_reason(&self) -> Option<&str> {
        self.offline.as_deref()
    }

    /// Takes the log offline: a group-commit fsync done outside the lock failed.
    pub fn set_offline(&mut self, reason: String) {
        if self.offline.is_none() {
            self.offline = Some(reason);
        }
    }

    fn check_online(&self) -> Result<()> {
        match self.offline {
            Some(_) => Err(LogError::StorageUnavailable),
            None => Ok(()),
        }
    }

    fn active(&self) -> &Segment {
        self.segments
            .values()
            .next_back()
            .expect("a log always has an active segment")
    }
    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log always has an active segment")
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }
    /// The offset the next record will get (log end offset).
    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset()
    }
    /// The end of what consumers may read: with fsync on ack
    /// (`flush.messages=1`) the durable offset, so nothing not yet fsynced is
    /// ever shown; otherwise (Kafka's relaxed flush) the log end offset.
    pub fn high_watermark(&self) -> i64 {
        if self.config.fsync_on_ack() {
            self.durable.offset.min(self.log_end_offset())
        } else {
            self.log_end_offset()
        }
    }
    /// The last stable offset (LSO): below it every transaction is decided,
    /// so a read_committed consumer reads up to it. The first offset of the
    /// oldest open transaction (or of one whose marker is not yet below the
    /// high watermark), else the high watermark; never below the log start.
    /// O(log open transactions), plus the markers awaiting their fsync.
    pub fn last_stable_offset(&self) -> i64 {
        let hw = self.high_watermark();
        let mut lso = hw;
        if let Some(first) = self.producers.first_open_txn_offset() {
            lso = lso.min(first);
        }
        for &(first, marker) in &self.completed_unstable {
            if marker >= hw {
                lso = lso.min(first);
            }
        }
        lso.max(self.log_start_offset.min(hw))
    }
    /// Every offset below this is known to be fsynced.
    pub fn durable_offset(&self) -> i64 {
        self.durable.offset
    }
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.size_bytes()).sum()
    }
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
    pub fn producers(&self) -> &ProducerStateTable {
        &self.producers
    }
    pub fn unflushed_messages(&self) -> u64 {
        self.unflushed_messages
    }
    pub fn since_last_flush(&self) -> Duration {
        self.last_flush.elapsed()
    }

    /// Validates and appends the batches of one produce request for this
    /// partition. Either all batches are appended or none.
    pub fn append(&mut self, records: &[u8], now_ms: i64) -> Result<AppendInfo> {
        self.check_online()?;
        if !self.config.compact && self.config.compression.is_none() {
            return self.append_checked(records, now_ms);
        }
        // Off the hot path: topics that need the records themselves looked at.
        let batches = batch::split(records)?;
        let mut owned: Option<Vec<u8>> = None;
        for (i, b) in batches.iter().enumerate() {
            let header = batch::validate_produced(b)?;
            if self.config.compact {
                check_keys(b, &header, i)?;
            }
            if let Some(codec) = self.config.compression {
                match compression::recompress(b, codec, RECORDS_DECOMPRESSED_BYTES_MAX)? {
                    Some(new) => owned.get_or_insert_with(Vec::new).extend_from_slice(&new),
                    None => owned.get_or_insert_with(Vec::new).extend_from_slice(b),
                }
            }
        }
        match owned {
            Some(o) => self.append_checked(&o, now_ms),
            None => self.append_checked(records, now_ms),
        }
    }

    fn append_checked(&mut self, records: &[u8], now_ms: i64) -> Result<AppendInfo> {
        let batches = batch::split(records)?;
        if batches.is_empty() {
            return Err(LogError::InvalidRecord("no record batch"));
        }
        let mut headers = Vec::with_capacity(batches.len());
        let mut records_count = 0u64;
        for b in &batches {
            if b.len() > self.config.message_bytes_max {
                return Err(LogError::MessageTooLarge {
                    bytes: b.len(),
                    max: self.config.message_bytes_max,
                });
            }
            let h = batch::validate_produced(b)?;
            records_count += h.records_count as u64;
            headers.push(h);
        }
        // Idempotence: every batch is checked against its producer's state, or
        // against the producer's batches earlier in this request if it has
        // some. A retry of a cached batch is answered with its offset.
        // Only a later batch of the same request reads it: made only for
        // requests of several batches with a producer id (nothing to build or
        // drop for one batch, the usual case).
        let mut in_request: Option<ProducerStateTable> = None;
        let several = headers.len() > 1;
        let mut txns_begun = 0usize;
        for h in &headers {
            let earlier = in_request
                .as_ref()
                .filter(|t| h.has_producer_id() && t.get(h.producer_id).is_some());
            let earlier_in_request = earlier.is_some();
            let verdict = match earlier {
                Some(t) => t.check(h)?,
                None => self.producers.check(h)?,
            };
            if h.is_transactional()
                && !earlier_in_request
                && self.producers.open_txn_of(h.producer_id).is_none()
            {
                txns_begun += 1;
            }
            match verdict {
                SequenceVerdict::Append
                    if several && h.has_producer_id() && h.base_sequence >= 0 =>
                {
                    in_request.get_or_insert_with(Default::default).record(h)
                }
                SequenceVerdict::Append => {}
                SequenceVerdict::Duplicate { base_offset } if headers.len() == 1 => {
                    return Ok(AppendInfo {
                        base_offset,
                        last_offset: base_offset + h.last_offset_delta as i64,
                        log_append_time_ms: -1,
                        duplicate: true,
                        records: 0,
                    });
                }
                SequenceVerdict::Duplicate { .. } => {
                    return Err(LogError::InvalidRecord(
                        "duplicate batch inside a multi-batch request",
                    ));
                }
            }
        }

        if txns_begun > 0
            && self.producers.open_txn_count() + txns_begun > OPEN_TXNS_PER_PARTITION_MAX
        {
            return Err(LogError::TooManyOpenTransactions {
                max: OPEN_TXNS_PER_PARTITION_MAX,
            });
        }

        let total_bytes = records.len() as u64;
        if let Err(e) = self.maybe_roll(total_bytes, records_count) {
            return Err(self.fail_unless_space(e));
        }

        let base_offset = self.log_end_offset();
        let log_append_time_ms = if self.config.log_append_time {
            now_ms
        } else {
            -1
        };
        let interval = self.config.index_interval_bytes;
        let mut next = base_offset;
        if self.config.log_append_time {
            // LogAppendTime rewrites CRC-covered fields: work on a copy.
            let mut owned = records.to_vec();
            let mut pos = 0usize;
            for h in headers.iter_mut() {
                let len = h.total_bytes();
                let slice = &mut owned[pos..pos + len];
                batch::assign_offset(slice, next, 0);
                batch::set_log_append_time(slice, now_ms);
                *h = BatchHeader::parse(slice)?;
                debug_assert!(batch::validate(slice).is_ok());
                next = h.next_offset();
                pos += len;
            }
            let r = self
                .active_mut()
                .append(&[std::io::IoSlice::new(&owned)], &headers, interval);
            self.check_appended(r)?;
        } else {
            // The producer's bytes are written as they are; only the 16-byte prefix
            // (base offset, length, leader epoch), which the CRC does not cover,
            // comes from the broker. No copy of the payload.
            let mut prefixes = Vec::with_capacity(headers.len());
            for (h, b) in headers.iter_mut().zip(&batches) {
                let mut prefix = [0u8; 16];
                prefix.copy_from_slice(&b[..16]);
                batch::assign_offset(&mut prefix, next, 0);
                h.base_offset = next;
                h.partition_leader_epoch = 0;
                next = h.next_offset();
                prefixes.push(prefix);
            }
            let mut parts = Vec::with_capacity(batches.len() * 2);
            for (prefix, b) in prefixes.iter().zip(&batches) {
                parts.push(std::io::IoSlice::new(prefix));
                parts.push(std::io::IoSlice::new(&b[16..]));
            }
            let r = self.active_mut().append(&parts, &headers, interval);
            self.check_appended(r)?;
        }
        for h in &headers {
            self.producers.record(h);
        }
        self.unflushed_messages += records_count;
        Ok(AppendInfo {
            base_offset,
            last_offset: next - 1,
            log_append_time_ms,
            duplicate: false,
            records: records_count,
        })
    }

    /// A failed append was undone: out of space, the log stays online (the
    /// producer gets an error and may retry once space is freed); any other
    /// failure, or one that could not be undone, takes the log offline.
    fn check_appended(
        &mut self,
        r: std::result::Result<(), crate::segment::AppendFailure>,
    ) -> Result<()> {
        match r {
            Ok(()) => {
                if self.out_of_space {
                    tracing::info!(dir = %self.dir.display(), "appends succeed again after a full disk");
                    self.out_of_space = false;
                }
                Ok(())
            }
            Err(f) if f.rolled_back && fault::is_out_of_space(&f.error) => {
                self.note_out_of_space(&f.error);
                Err(LogError::Io(f.error))
            }
            Err(f) => Err(self.fail(f.error)),
        }
    }

    fn maybe_roll(&mut self, incoming_bytes: u64, incoming_records: u64) -> Result<()> {
        let active = self.active();
        if active.is_empty() {
            return Ok(());
        }
        let bytes_max = self.config.segment_bytes_max.min(SEGMENT_BYTES_LIMIT);
        let full = active.size_bytes() + incoming_bytes > bytes_max;
        let old = self.active_created.elapsed() >= self.config.segment_roll_age();
        let offsets_exhausted = active.next_offset() - active.base_offset + incoming_records as i64
            > u32::MAX as i64 / 2;
        if full || old || offsets_exhausted {
            self.roll()?;
        }
        Ok(())
    }

    /// Closes the active segment (fsynced with its indexes) and starts a new one.
    ///
    /// A failed fsync takes the log offline. A new segment that cannot be
    /// created (disk full) is removed again and the old one stays active, so
    /// the log is as before; a producer snapshot that cannot be written only
    /// costs the restart a longer rebuild, so the roll goes on without it.
    pub fn roll(&mut self) -> Result<()> {
        self.check_online()?;
        let next = self.log_end_offset();
        if let Err(e) = self.active_mut().sync_all() {
            return Err(match e {
                LogError::Io(io) => self.fail(io),
                other => other,
            });
        }
        self.advance_durable(self.durable_now());
        let seg = Segment::create(&self.dir, next)?;
        self.segments.insert(next, seg);
        // The new, empty segment: everything below `next` is durable.
        self.advance_durable(self.durable_now());
        if let Err(e) = self.write_producer_snapshot() {
            tracing::warn!(dir = %self.dir.display(), error = %e, "producer snapshot not written at roll");
        }
        if let Err(e) = fsync_dir(&self.dir) {
            return Err(match e {
                LogError::Io(io) => self.fail(io),
                other => other,
            });
        }
        self.active_created = Instant::now();
        Ok(())
    }

    /// Moves the durable point forward (never back: a group-commit fsync that
    /// finishes after a roll made more durable is stale).
    fn advance_durable(&mut self, d: Durable) {
        if d.offset > self.durable.offset
            || (d.offset == self.durable.offset && d.segment_base > self.durable.segment_base)
        {
            self.durable = d;
        }
        while self
            .completed_unstable
            .front()
            .is_some_and(|&(_, marker)| marker < self.durable.offset)
        {
            self.completed_unstable.pop_front();
        }
    }

    /// Rolls the active segment if it is older than `segment.ms` (or a shorter
    /// `max.compaction.lag.ms`; called periodically).
    pub fn roll_if_old(&mut self) -> Result<bool> {
        self.check_online()?;
        if !self.active().is_empty()
            && self.active_created.elapsed() >= self.config.segment_roll_age()
        {
            self.roll()?;
            return Ok(true);
        }
        Ok(false)
    }

    fn check_offset(&self, offset: i64) -> Result<()> {
        let end = self.log_end_offset();
        if offset < self.log_start_offset || offset > end {
            return Err(LogError::OffsetOutOfRange {
                offset,
                start: self.log_start_offset,
                end,
            });
        }
        Ok(())
    }

    /// Reads whole batches starting with the one that contains `offset`, up to
    /// `max_bytes` (but at least one whole batch). Empty at the log end.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<Vec<u8>> {
        match self.read_plan(offset, max_bytes)? {
            Some(plan) => plan.execute(),
            None => Ok(Vec::new()),
        }
    }

    /// As [`PartitionLog::read`], but returns the plan, to be executed after the
    /// caller released the log's lock (None at the log end). Reads up to the
    /// log end offset: for the broker's own logs; consumers use
    /// [`PartitionLog::fetch_plan`].
    pub fn read_plan(&self, offset: i64, max_bytes: usize) -> Result<Option<ReadPlan>> {
        self.plan_until(offset, max_bytes, None)
    }

    /// What a consumer's Fetch may read: as [`PartitionLog::read_plan`], but
    /// nothing at or above the high watermark. With fsync on ack a consumer
    /// thus never sees a record that is not yet on disk.
    pub fn fetch_plan(&self, offset: i64, max_bytes: usize) -> Result<Option<ReadPlan>> {
        let limit = self.config.fsync_on_ack().then_some(self.durable);
        self.plan_until(offset, max_bytes, limit)
    }

    /// Plans a read from `offset` that stops before `limit` (a batch
    /// boundary: its offset, segment and byte position), or at the log end.
    fn plan_until(
        &self,
        offset: i64,
        max_bytes: usize,
        limit: Option<Durable>,
    ) -> Result<Option<ReadPlan>> {
        self.check_offset(offset)?;
        if limit.is_some_and(|l| offset >= l.offset.min(self.log_end_offset())) {
            return Ok(None);
        }
        for (_, seg) in self
            .segments
            .range(..=offset)
            .next_back()
            .into_iter()
            .chain(self.segments.range(offset + 1..))
        {
            if let Some((pos, _)) = seg.find_position(offset)? {
                let end = match limit {
                    None => seg.size_bytes(),
                    Some(l) if seg.base_offset < l.segment_base => seg.size_bytes(),
                    Some(l) if seg.base_offset == l.segment_base => l.position,
                    Some(_) => 0,
                };
                return seg.read_plan_until(pos, max_bytes, end);
            }
        }
        Ok(None)
    }

    /// The first batch whose max timestamp is >= `timestamp_ms`, at or after the log start.
    pub fn find_timestamp(&self, timestamp_ms: i64) -> Result<Option<TimestampHit>> {
        for seg in self.segments.values() {
            if seg.next_offset() <= self.log_start_offset {
                continue;
            }
            // Search only from the log start: a hit below it must not hide a
            // later batch of the same segment.
            if let Some((pos, header)) = seg.find_timestamp(timestamp_ms, self.log_start_offset)? {
                debug_assert!(header.last_offset() >= self.log_start_offset);
                let batch = seg.read_batch(pos, &header)?;
                return Ok(Some(TimestampHit { header, batch }));
            }
        }
        Ok(None)
    }

    /// The batch holding the largest timestamp (first one to reach it).
    pub fn find_max_timestamp(&self) -> Result<Option<TimestampHit>> {
        // The first segment to reach the largest timestamp (`max_by_key` would
        // pick the last of equal ones).
        let mut best: Option<&Segment> = None;
        for s in self.segments.values().filter(|s| !s.is_empty()) {
            if best.is_none_or(|b| s.max_timestamp() > b.max_timestamp()) {
                best = Some(s);
            }
        }
        let Some(seg) = best else { return Ok(None) };
        let Some((pos, header)) = seg.find_position(seg.offset_of_max_timestamp())? else {
            return Ok(None);
        };
        let batch = seg.read_batch(pos, &header)?;
        Ok(Some(TimestampHit { header, batch }))
    }

    /// DeleteRecords: moves the log start offset up to `offset` (<= log end) and
    /// deletes segments wholly below it. Returns the new log start offset.
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64> {
        let end = self.log_end_offset();
        if offset > end || offset < 0 {
            return Err(LogError::OffsetOutOfRange {
                offset,
                start: self.log_start_offset,
                end,
            });
        }
        if offset > self.log_start_offset {
            self.log_start_offset = offset;
            write_log_start(&self.dir, offset)?;
            self.delete_segments_below_start()?;
        }
        Ok(self.log_start_offset)
    }

    fn delete_segments_below_start(&mut self) -> Result<()> {
        loop {
            let mut iter = self.segments.iter();
            let (Some((&base, first)), Some(_)) = (iter.next(), iter.next()) else {
                break;
            };
            if first.next_offset() > self.log_start_offset {
                break;
            }
            if let Some(seg) = self.segments.remove(&base) {
                seg.delete()?;
            }
        }
        // Everything deleted up to the active segment: if it too is below the
        // start offset, start a fresh one there.
        if self.active().next_offset() <= self.log_start_offset && !self.active().is_empty() {
            let start = self.log_start_offset;
            self.active_mut().sync_all()?;
            self.segments
                .insert(start, Segment::create(&self.dir, start)?);
            self.advance_durable(self.durable_now());
            let old: Vec<i64> = self
                .segments
                .keys()
                .copied()
                .filter(|&b| b < start)
                .collect();
            for b in old {
                if let Some(seg) = self.segments.remove(&b) {
                    seg.delete()?;
                }
            }
            fsync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Applies `retention.ms` and `retention.bytes`: deletes whole segments from
    /// the oldest, advancing the log start offset. Returns segments deleted.
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<usize> {
        let mut deleted = 0;
        loop {
            if self.segments.len() < 2 {
                // Expire the active segment by rolling it first, as Kafka does.
                let expired = match self.config.retention_age_max {
                    Some(age) => {
                        let a = self.active();
                        !a.is_empty() && a.max_timestamp() < now_ms - age.as_millis() as i64
                    }
                    None => false,
                };
                if expired {
                    self.roll()?;
                    continue;
                }
                break;
            }
            let Some((&base, oldest)) = self.segments.iter().next() else {
                break;
            };
            let by_age = self
                .config
                .retention_age_max
                .is_some_and(|age| oldest.max_timestamp() < now_ms - age.as_millis() as i64);
            let by_size = self
                .config
                .retention_bytes_max
                .is_some_and(|max| self.size_bytes() - oldest.size_bytes() >= max);
            if !(by_age || by_size) {
                break;
            }
            let next_start = oldest.next_offset();
            if let Some(seg) = self.segments.remove(&base) {
                seg.delete()?;
            }
            if next_start > self.log_start_offset {
                self.log_start_offset = next_start;
                write_log_start(&self.dir, next_start)?;
            }
            deleted += 1;
        }
        Ok(deleted)
    }

    /// One log compaction pass (`cleanup.policy=compact`, see
    /// [`crate::compaction`]): in the closed segments, keeps only the last
    /// record of each key (tombstones until `delete.retention.ms` after they
    /// were cleaned). Does nothing unless `config.compact` and the dirty ratio
    /// reaches `min.cleanable.dirty.ratio`. Offsets, the log start offset and
    /// the active segment are unchanged. `now_ms` is the clock for
    /// `min.compaction.lag.ms` and `delete.retention.ms`.
    ///
    /// Reads issued before the call keep reading the old segment files.
    pub fn compact(&mut self, now_ms: i64) -> Result<CompactionReport> {
        let last_stable = self.last_stable_offset();
        compaction::compact(
            &self.dir,
            &self.config,
            &mut self.segments,
            self.log_start_offset,
            last_stable,
            &self.producers,
            now_ms,
        )
    }

    /// What a group-commit fsync done without the log's lock must sync, and
    /// how far it makes the log durable. Data in rolled segments was synced
    /// when they were rolled.
    pub fn sync_target(&self) -> Result<SyncTarget> {
        self.check_online()?;
        let a = self.active();
        Ok(SyncTarget {
            file: a.file(),
            path: a.log_path().to_path_buf(),
            durable: self.durable_now(),
        })
    }

    /// Notes that `target`'s fsync succeeded: everything below its end offset
    /// is durable (and readable, with fsync on ack).
    pub fn mark_flushed(&mut self, target: &SyncTarget) {
        if target.durable.offset >= self.log_end_offset() {
            self.unflushed_messages = 0;
        }
        self.last_flush = Instant::now();
        self.advance_durable(target.durable);
    }

    /// fsyncs the active segment now.
    pub fn flush(&mut self) -> Result<()> {
        self.check_online()?;
        if let Err(e) = self.active().sync() {
            return Err(match e {
                LogError::Io(io) => self.fail(io),
                other => other,
            });
        }
        self.unflushed_messages = 0;
        self.last_flush = Instant::now();
        self.advance_durable(self.durable_now());
        Ok(())
    }

    /// Flushes everything and marks the log as cleanly closed, so the next open
    /// trusts the indexes instead of rescanning the active segment. A log that
    /// went offline is never marked clean: the next open recovers it.
    pub fn close(mut self) -> Result<()> {
        self.check_online()?;
        self.active_mut().sync_all()?;
        self.write_producer_snapshot()?;
        write_synced(&self.dir.join(CLEAN_SHUTDOWN_FILE), b"clean\n")?;
        fsync_dir(&self.dir)?;
        Ok(())
    }

    /// Deletes the log and its directory.
    pub fn delete(self) -> Result<()> {
        let dir = self.dir.clone();
        drop(self);
        std::fs::remove_dir_all(dir)?;
        Ok(())
    }
}

fn read_log_start(dir: &Path) -> Result<Option<i64>> {
    match std::fs::read_to_string(dir.join(LOG_START_FILE)) {
        Ok(s) => Ok(s.trim().parse::<i64>().ok().filter(|v| *v >= 0)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LogError::Io(e)),
    }
}

/// Creates (truncates) `path` and writes `bytes` to it, fsynced, through the fault seam.
pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    fault::check(FileOp::Create, path)?;
    let mut f = File::create(path)?;
    if let fault::WriteAction::Partial(errno) = fault::check_write(path)? {
        f.write_all(&bytes[..bytes.len() / 2])?;
        return Err(fault::injected(errno));
    }
    f.write_all(bytes)?;
    fault::check(FileOp::Fsync, path)?;
    f.sync_all()
}

fn write_log_start(dir: &Path, offset: i64) -> Result<()> {
    let tmp = dir.join(format!("{LOG_START_FILE}.tmp"));
    let written = write_synced(&tmp, format!("{offset}\n").as_bytes())
        .and_then(|()| std::fs::rename(&tmp, dir.join(LOG_START_FILE)));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(LogError::Io(e));
    }
    fsync_dir(dir)?;
    Ok(())
}

/// Most bytes one batch's records may decompress to when the broker has to
/// look inside (compacted or recompressed topics): a bound on memory per request.
pub const RECORDS_DECOMPRESSED_BYTES_MAX: usize = 128 << 20;

/// Compacted topics keep the latest record per key, so a record without a key
/// is refused (Kafka: INVALID_RECORD with one record error per such record).
fn check_keys(b: &[u8], header: &BatchHeader, batch_index: usize) -> Result<()> {
    let section = compression::records_section(b, RECORDS_DECOMPRESSED_BYTES_MAX)?;
    let mut refused = Vec::new();
    for (i, r) in records::parse(&section, header)?.iter().enumerate() {
        if r.key.is_none() {
            refused.push((
                i as i32,
                "Compacted topic cannot accept message without key.",
            ));
        }
    }
    if refused.is_empty() {
        return Ok(());
    }
    Err(LogError::InvalidRecords {
        batch_index,
        records: refused,
        message: "compacted topic cannot accept records without a key",
    })
}
