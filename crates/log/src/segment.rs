//! One segment: `<base_offset:020>.log` with its `.index` and `.timeindex`,
//! and its `.txnindex` once it holds an abort marker (see `txn_index.rs`).
//!
//! The `.log` file is a concatenation of record batches with broker-assigned
//! offsets, increasing: dense as appended, with gaps in closed segments that
//! compaction rewrote (removed records' offsets are never reused). Positions
//! and relative offsets are u32, so a segment is rolled before it reaches
//! 2 GiB or 2^32 offsets.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::batch::{self, BATCH_HEADER_BYTES, BatchHeader, LOG_OVERHEAD_BYTES};
use crate::error::{LogError, Result};
use crate::fault::{self, FileOp, WriteAction};
use crate::offset_index::{OffsetIndex, OffsetIndexEntry};
use crate::time_index::{TimeIndex, TimeIndexEntry};
use crate::txn_index::{AbortedTxnEntry, TxnIndex};

/// Segments never grow past this: index positions are u32 and must stay < 2^31.
pub const SEGMENT_BYTES_LIMIT: u64 = (i32::MAX as u64) - (64 << 20);

pub fn log_file_name(base_offset: i64) -> String {
    format!("{base_offset:020}.log")
}
pub fn index_file_name(base_offset: i64) -> String {
    format!("{base_offset:020}.index")
}
pub fn time_index_file_name(base_offset: i64) -> String {
    format!("{base_offset:020}.timeindex")
}

/// An append that failed: the error, and whether the segment was put back
/// exactly as it was before (files truncated to their old sizes, in-memory
/// state restored). If it was not, the segment's files cannot be trusted.
#[derive(Debug)]
pub struct AppendFailure {
    pub error: std::io::Error,
    pub rolled_back: bool,
}

/// The state an append changes, saved to undo a failed one.
#[derive(Debug, Clone, Copy)]
struct SavePoint {
    size_bytes: u64,
    next_offset: i64,
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
    first_batch_timestamp: i64,
    bytes_since_index_entry: u64,
    offset_entries: usize,
    time_entries: usize,
    txn_entries: u64,
}

/// What a scan of a segment's `.log` found.
#[derive(Debug, Default, Clone, Copy)]
pub struct ScanSummary {
    pub valid_bytes: u64,
    pub batches: u64,
    pub truncated_bytes: u64,
}

#[derive(Debug)]
pub struct Segment {
    pub base_offset: i64,
    log_path: PathBuf,
    index_path: PathBuf,
    time_index_path: PathBuf,
    log: Arc<File>,
    index_file: File,
    time_index_file: File,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    txn_index: TxnIndex,
    size_bytes: u64,
    next_offset: i64,
    /// Largest batch max timestamp in the segment, -1 when empty.
    max_timestamp: i64,
    /// Base offset of the batch that first reached `max_timestamp`.
    offset_of_max_timestamp: i64,
    /// Max timestamp of the first batch; drives roll by age (-1 when empty).
    first_batch_timestamp: i64,
    bytes_since_index_entry: u64,
}

impl Segment {
    fn paths(dir: &Path, base_offset: i64) -> (PathBuf, PathBuf, PathBuf) {
        (
            dir.join(log_file_name(base_offset)),
            dir.join(index_file_name(base_offset)),
            dir.join(time_index_file_name(base_offset)),
        )
    }

    /// Creates an empty segment (files truncated if present).
    /// If a file cannot be created (disk full), those created are removed.
    pub fn create(dir: &Path, base_offset: i64) -> Result<Segment> {
        let (log_path, index_path, time_index_path) = Self::paths(dir, base_offset);
        let created = (|| {
            fault::check(FileOp::Create, &log_path)?;
            let log = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&log_path)?;
            fault::check(FileOp::Create, &index_path)?;
            let index_file = File::create(&index_path)?;
            fault::check(FileOp::Create, &time_index_path)?;
            let time_index_file = File::create(&time_index_path)?;
            let txn_index = TxnIndex::create(dir, base_offset)?;
            Ok::<_, std::io::Error>((log, index_file, time_index_file, txn_index))
        })();
        let (log, index_file, time_index_file, txn_index) = match created {
            Ok(files) => files,
            Err(e) => {
                for p in [&log_path, &index_path, &time_index_path] {
                    let _ = std::fs::remove_file(p);
                }
                return Err(LogError::Io(e));
            }
        };
        Ok(Segment {
            base_offset,
            log_path,
            index_path,
            time_index_path,
            log: Arc::new(log),
            index_file,
            time_index_file,
            offset_index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            txn_index,
            size_bytes: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            first_batch_timestamp: -1,
            bytes_since_index_entry: 0,
        })
    }

    /// Opens an existing segment. With `recover`, every batch is validated
    /// (length, CRC32C, offsets), a torn or corrupt tail is truncated, and the
    /// indexes are rebuilt. Without it, the indexes on disk are trusted if they
    /// are consistent, and only the tail after the last index entry is scanned.
    ///
    /// `recover` is asked only for the active segment, which is never compacted:
    /// its offsets must be dense. Closed segments may have offset gaps (records
    /// removed by compaction); their offsets need only increase.
    pub fn open(
        dir: &Path,
        base_offset: i64,
        recover: bool,
        index_interval_bytes: u64,
    ) -> Result<(Segment, ScanSummary)> {
        let (log_path, index_path, time_index_path) = Self::paths(dir, base_offset);
        let log = OpenOptions::new().read(true).write(true).open(&log_path)?;
        let file_bytes = log.metadata()?.len();
        let mut seg = Segment {
            base_offset,
            log_path,
            index_path,
            time_index_path,
            log: Arc::new(log),
            index_file: tempfile_placeholder()?,
            time_index_file: tempfile_placeholder()?,
            offset_index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            txn_index: TxnIndex::empty(dir, base_offset),
            size_bytes: file_bytes,
            next_offset: base_offset,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            first_batch_timestamp: -1,
            bytes_since_index_entry: 0,
        };
        let loaded = if recover {
            None
        } else {
            match (
                OffsetIndex::load(&seg.index_path, file_bytes),
                TimeIndex::load(&seg.time_index_path),
            ) {
                (Some(o), Some(t)) => Some((o, t)),
                _ => None,
            }
        };
        let (summary, rebuilt) = match loaded {
            Some((offset_index, time_index)) => {
                let last_entry = offset_index.floor(u32::MAX);
                let start = last_entry.map(|e| e.position as u64).unwrap_or(0);
                // Both indexes get their first entry together.
                let indexes_agree = offset_index.is_empty() == time_index.last().is_none();
                seg.offset_index = offset_index;
                seg.time_index = time_index;
                if let Some(t) = seg.time_index.last() {
                    seg.max_timestamp = t.timestamp_ms;
                    seg.offset_of_max_timestamp = base_offset + t.relative_offset as i64;
                }
                seg.first_batch_timestamp = match seg.header_at(0)? {
                    Some(h) => h.max_timestamp,
                    None => -1,
                };
                // The last offset index entry must name the batch at its position.
                let entry_ok = indexes_agree
                    && match last_entry {
                        Some(e) => seg.header_at(start)?.is_some_and(|h| {
                            h.base_offset == base_offset + e.relative_offset as i64
                        }),
                        None => true,
                    };
                let trusted = if entry_ok {
                    // Headers only: this segment was closed cleanly. The tail
                    // must read to the end of the file, and the last time index
                    // entry must match its batch.
                    let summary =
                        seg.scan_from(start, false, index_interval_bytes, false, recover)?;
                    (summary.truncated_bytes == 0 && seg.last_time_entry_matches()?)
                        .then_some(summary)
                } else {
                    None
                };
                match trusted {
                    Some(summary) => (summary, false),
                    None => {
                        // Never truncate the log on the word of a derived file:
                        // rebuild the indexes with a full recovery scan instead.
                        tracing::warn!(
                            segment = %seg.log_path.display(),
                            "index files do not match the log; rebuilding them"
                        );
                        (
                            seg.scan_from(0, true, index_interval_bytes, true, recover)?,
                            true,
                        )
                    }
                }
            }
            None => (
                seg.scan_from(0, recover, index_interval_bytes, true, recover)?,
                true,
            ),
        };
        if summary.truncated_bytes > 0 {
            seg.log.set_len(summary.valid_bytes)?;
            seg.log.sync_all()?;
        }
        seg.size_bytes = summary.valid_bytes;
        seg.offset_index
            .truncate_to_position(summary.valid_bytes as u32);
        // Trusted index files already hold what is in memory: leave them be.
        // Rewriting them unsynced at every open would let a later crash cut
        // them short, possibly at an entry boundary, where they look sound.
        if rebuilt {
            seg.offset_index.write_all(&seg.index_path)?;
            seg.time_index.write_all(&seg.time_index_path)?;
        }
        seg.index_file = OpenOptions::new().append(true).open(&seg.index_path)?;
        seg.time_index_file = OpenOptions::new().append(true).open(&seg.time_index_path)?;
        // After the scan: entries for markers the log no longer has are cut.
        seg.txn_index = TxnIndex::load(dir, base_offset, seg.next_offset, seg.size_bytes)?;
        Ok((seg, summary))
    }

    /// Walks batches from `start`. With `validate_crc`, each batch is read whole
    /// and checked; otherwise only headers are read. With `rebuild`, index
    /// entries are added as in [`Segment::append`]. With `dense`, each batch must
    /// start where the previous one ended (as appended); without, after it
    /// (compaction leaves gaps). Stops at the first batch that is torn, corrupt
    /// or out of sequence.
    fn scan_from(
        &mut self,
        start: u64,
        validate_crc: bool,
        index_interval_bytes: u64,
        rebuild: bool,
        dense: bool,
    ) -> Result<ScanSummary> {
        let file_bytes = self.log.metadata()?.len();
        let mut pos = start;
        let mut summary = ScanSummary::default();
        let mut expected_offset: Option<i64> = if start == 0 {
            Some(self.base_offset)
        } else {
            None
        };
        if rebuild {
            debug_assert_eq!(start, 0);
            self.offset_index = OffsetIndex::default();
            self.time_index = TimeIndex::default();
            self.max_timestamp = -1;
            self.offset_of_max_timestamp = self.base_offset;
            self.first_batch_timestamp = -1;
            self.next_offset = self.base_offset;
            self.bytes_since_index_entry = 0;
        }
        let mut buf = Vec::new();
        while let Some(header) = self.header_at(pos)? {
            let total = header.total_bytes() as u64;
            if (header.batch_length as i64) < batch::BATCH_LENGTH_MIN as i64
                || pos + total > file_bytes
                || header.magic != 2
                || header.last_offset_delta < 0
                || expected_offset.is_some_and(|e| {
                    if dense {
                        e != header.base_offset
                    } else {
                        header.base_offset < e
                    }
                })
                || header.base_offset < self.base_offset
                || header.last_offset() - self.base_offset > u32::MAX as i64
            {
                break;
            }
            if validate_crc {
                buf.resize(total as usize, 0);
                self.log.read_exact_at(&mut buf, pos)?;
                if batch::validate(&buf).is_err() {
                    break;
                }
            }
            if rebuild {
                self.index_batch(&header, pos, index_interval_bytes, false)?;
            } else {
                if header.max_timestamp > self.max_timestamp {
                    self.max_timestamp = header.max_timestamp;
                    self.offset_of_max_timestamp = header.base_offset;
                }
                self.bytes_since_index_entry += total;
            }
            if pos == 0 {
                self.first_batch_timestamp = header.max_timestamp;
            }
            self.next_offset = header.next_offset();
            expected_offset = Some(header.next_offset());
            pos += total;
            summary.batches += 1;
        }
        summary.valid_bytes = pos;
        summary.truncated_bytes = file_bytes - pos;
        Ok(summary)
    }

    /// Whether the last time index entry names the batch that first reached
    /// its timestamp (checked before the entry is trusted at open).
    fn last_time_entry_matches(&self) -> Result<bool> {
        let Some(t) = self.time_index.last() else {
            return Ok(true);
        };
        let offset = self.base_offset + t.relative_offset as i64;
        Ok(match self.find_position(offset)? {
            Some((_, h)) => h.base_offset == offset && h.max_timestamp == t.timestamp_ms,
            None => false,
        })
    }

    /// Reads the batch header at `pos`, or None if fewer than 61 bytes remain.
    pub fn header_at(&self, pos: u64) -> Result<Option<BatchHeader>> {
        let mut h = [0u8; BATCH_HEADER_BYTES];
        let file_bytes = self.log.metadata()?.len();
        if pos + BATCH_HEADER_BYTES as u64 > file_bytes {
            return Ok(None);
        }
        self.log.read_exact_at(&mut h, pos)?;
        Ok(Some(BatchHeader::parse(&h)?))
    }

    /// Updates in-memory state and index files for a batch written at `pos`.
    fn index_batch(
        &mut self,
        header: &BatchHeader,
        pos: u64,
        index_interval_bytes: u64,
        write_files: bool,
    ) -> Result<()> {
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.offset_of_max_timestamp = header.base_offset;
        }
        if pos == 0 {
            self.first_batch_timestamp = header.max_timestamp;
        }
        // The first batch is always findable by scanning from 0, so index every
        // `index_interval_bytes` after it.
        if self.bytes_since_index_entry >= index_interval_bytes {
            let rel = (header.base_offset - self.base_offset) as u32;
            let entry = OffsetIndexEntry {
                relative_offset: rel,
                position: pos as u32,
            };
            self.offset_index.push(entry);
            if write_files {
                fault::check(FileOp::Write, &self.index_path)?;
                self.index_file
                    .write_all(&OffsetIndex::encode_entry(entry))?;
            }
            let t = TimeIndexEntry {
                timestamp_ms: self.max_timestamp,
                relative_offset: (self.offset_of_max_timestamp - self.base_offset) as u32,
            };
            if self.time_index.maybe_push(t) && write_files {
                fault::check(FileOp::Write, &self.time_index_path)?;
                self.time_index_file
                    .write_all(&TimeIndex::encode_entry(t))?;
            }
            self.bytes_since_index_entry = 0;
        }
        self.bytes_since_index_entry += header.total_bytes() as u64;
        Ok(())
    }

    /// Appends batches whose offsets are already assigned. `headers` describe
    /// the batches in `bytes`, in order. All or nothing: a failed append (a
    /// short write on a full disk, an index write that failed) is undone, the
    /// files truncated back to their sizes before it, so that nothing of it
    /// is read or recovered later.
    pub fn append(
        &mut self,
        parts: &[std::io::IoSlice<'_>],
        headers: &[BatchHeader],
        index_interval_bytes: u64,
    ) -> std::result::Result<(), AppendFailure> {
        self.append_with(parts, headers, index_interval_bytes, None)
    }

    /// As [`Segment::append`], also appending `txn_entry` to the aborted
    /// transaction index (an abort marker that ends an open transaction),
    /// all or nothing with the batches.
    pub fn append_with(
        &mut self,
        parts: &[std::io::IoSlice<'_>],
        headers: &[BatchHeader],
        index_interval_bytes: u64,
        txn_entry: Option<&AbortedTxnEntry>,
    ) -> std::result::Result<(), AppendFailure> {
        let saved = SavePoint {
            size_bytes: self.size_bytes,
            next_offset: self.next_offset,
            max_timestamp: self.max_timestamp,
            offset_of_max_timestamp: self.offset_of_max_timestamp,
            first_batch_timestamp: self.first_batch_timestamp,
            bytes_since_index_entry: self.bytes_since_index_entry,
            offset_entries: self.offset_index.len(),
            time_entries: self.time_index.len(),
            txn_entries: self.txn_index.entries(),
        };
        let appended = self
            .append_inner(parts, headers, index_interval_bytes)
            .and_then(|()| match txn_entry {
                Some(e) => self.txn_index.append(e),
                None => Ok(()),
            });
        match appended {
            Ok(()) => Ok(()),
            Err(e) => {
                let error = match e {
                    LogError::Io(e) => e,
                    other => std::io::Error::other(other.to_string()),
                };
                let rolled_back = match self.roll_back(saved) {
                    Ok(()) => true,
                    Err(undo) => {
                        tracing::error!(segment = %self.log_path.display(), error = %undo, "could not undo a failed append");
                        false
                    }
                };
                Err(AppendFailure { error, rolled_back })
            }
        }
    }

    /// Puts the segment back as it was at `saved`: files cut to their old
    /// lengths (index files hold exactly the in-memory entries), state restored.
    fn roll_back(&mut self, saved: SavePoint) -> std::io::Result<()> {
        self.log.set_len(saved.size_bytes)?;
        self.index_file.set_len(
            (saved.offset_entries * crate::offset_index::OFFSET_INDEX_ENTRY_BYTES) as u64,
        )?;
        self.time_index_file
            .set_len((saved.time_entries * crate::time_index::TIME_INDEX_ENTRY_BYTES) as u64)?;
        self.txn_index.truncate_entries(saved.txn_entries)?;
        self.offset_index.truncate_entries(saved.offset_entries);
        self.time_index.truncate_entries(saved.time_entries);
        self.size_bytes = saved.size_bytes;
        self.next_offset = saved.next_offset;
        self.max_timestamp = saved.max_timestamp;
        self.offset_of_max_timestamp = saved.offset_of_max_timestamp;
        self.first_batch_timestamp = saved.first_batch_timestamp;
        self.bytes_since_index_entry = saved.bytes_since_index_entry;
        Ok(())
    }

    fn append_inner(
        &mut self,
        parts: &[std::io::IoSlice<'_>],
        headers: &[BatchHeader],
        index_interval_bytes: u64,
    ) -> Result<()> {
        debug_assert_eq!(
            headers.first().map(|h| h.base_offset),
            Some(self.next_offset)
        );
        let start = self.size_bytes;
        let total: usize = parts.iter().map(|p| p.len()).sum();
        write_all_vectored_at(&self.log, &self.log_path, parts, start)?;
        let mut pos = start;
        for h in headers {
            self.index_batch(h, pos, index_interval_bytes, true)?;
            pos += h.total_bytes() as u64;
            self.next_offset = h.next_offset();
        }
        debug_assert_eq!(pos, start + total as u64);
        self.size_bytes = pos;
        Ok(())
    }

    /// Position of the batch containing `offset` (or the first batch after it),
    /// None if `offset` is at or beyond the segment's end.
    pub fn find_position(&self, offset: i64) -> Result<Option<(u64, BatchHeader)>> {
        if offset >= self.next_offset {
            return Ok(None);
        }
        let rel = (offset.max(self.base_offset) - self.base_offset) as u32;
        let entry = self.offset_index.floor(rel);
        let mut pos = entry.map(|e| e.position as u64).unwrap_or(0);
        let mut expected = entry.map(|e| self.base_offset + e.relative_offset as i64);
        let mut from_start = entry.is_none();
        while pos < self.size_bytes {
            let Some(h) = self.header_at(pos)? else { break };
            // An index entry can name a position inside a batch whose bytes
            // happen to carry the expected offset: check the header's own
            // fields before its length moves `pos` (a length of -12 made
            // this loop spin forever; found by the `index` fuzz target).
            let bad_entry = expected.take().is_some_and(|e| h.base_offset != e);
            let plausible = self.plausible_at(pos, &h);
            if bad_entry || !plausible {
                if from_start {
                    return Err(LogError::CorruptBatch(
                        "unreadable batch header inside a segment",
                    ));
                }
                // A damaged index entry: fall back to scanning from the start.
                tracing::warn!(
                    segment = %self.log_path.display(),
                    position = pos,
                    "offset index entry does not match the log"
                );
                pos = 0;
                from_start = true;
                continue;
            }
            if h.last_offset() >= offset {
                return Ok(Some((pos, h)));
            }
            pos += h.total_bytes() as u64;
        }
        Ok(None)
    }

    /// Whether `h`, read at `pos`, can be a batch of this segment: magic 2, a
    /// length that fits the segment, offsets within it.
    fn plausible_at(&self, pos: u64, h: &BatchHeader) -> bool {
        h.magic == 2
            && h.batch_length as i64 >= batch::BATCH_LENGTH_MIN as i64
            && pos + h.total_bytes() as u64 <= self.size_bytes
            && h.last_offset_delta >= 0
            && h.base_offset >= self.base_offset
            && h.base_offset < self.next_offset
    }

    /// Position of the first batch whose max timestamp is >= `timestamp_ms`
    /// among the batches that end at or after `min_offset` (the log start offset).
    pub fn find_timestamp(
        &self,
        timestamp_ms: i64,
        min_offset: i64,
    ) -> Result<Option<(u64, BatchHeader)>> {
        if self.max_timestamp < timestamp_ms {
            return Ok(None);
        }
        let entry = self.time_index.floor(timestamp_ms);
        let entry_offset = entry.map(|e| self.base_offset + e.relative_offset as i64);
        let start_offset = entry_offset.unwrap_or(self.base_offset).max(min_offset);
        let Some((mut pos, h)) = self.find_position(start_offset)? else {
            return Ok(None);
        };
        // A time index entry names the batch that first reached its timestamp.
        // If the one used does not, it is damaged: search from the start.
        if let (Some(e), Some(offset)) = (entry, entry_offset)
            && offset >= min_offset
            && (h.base_offset != offset || h.max_timestamp != e.timestamp_ms)
        {
            tracing::warn!(
                segment = %self.log_path.display(),
                offset,
                "time index entry does not match the log"
            );
            let Some((p, _)) = self.find_position(self.base_offset.max(min_offset))? else {
                return Ok(None);
            };
            pos = p;
        }
        while pos < self.size_bytes {
            let Some(h) = self.header_at(pos)? else { break };
            if !self.plausible_at(pos, &h) {
                return Err(LogError::CorruptBatch(
                    "unreadable batch header inside a segment",
                ));
            }
            if h.max_timestamp >= timestamp_ms {
                return Ok(Some((pos, h)));
            }
            pos += h.total_bytes() as u64;
        }
        Ok(None)
    }

    /// Plans a read of whole batches starting at `pos`: at most `max_bytes`, but
    /// always the complete first batch (KIP-74). The plan holds the file and the
    /// bytes committed now, so it can run without the log's lock.
    pub fn read_plan(&self, pos: u64, max_bytes: usize) -> Result<Option<ReadPlan>> {
        self.read_plan_until(pos, max_bytes, self.size_bytes)
    }

    /// As [`Segment::read_plan`], reading nothing at or after byte `end` (a
    /// batch boundary: the high watermark's position).
    pub fn read_plan_until(
        &self,
        pos: u64,
        max_bytes: usize,
        end: u64,
    ) -> Result<Option<ReadPlan>> {
        let end = end.min(self.size_bytes);
        if pos >= end {
            return Ok(None);
        }
        let Some(first) = self.header_at(pos)? else {
            return Ok(None);
        };
        let available = (end - pos) as usize;
        let want = max_bytes.max(first.total_bytes()).min(available);
        Ok(Some(ReadPlan {
            file: self.log.clone(),
            pos,
            len: want,
        }))
    }

    /// Reads whole batches starting at `pos` (see [`Segment::read_plan`]).
    pub fn read_batches(&self, pos: u64, max_bytes: usize) -> Result<Vec<u8>> {
        match self.read_plan(pos, max_bytes)? {
            Some(plan) => plan.execute(),
            None => Ok(Vec::new()),
        }
    }

    /// Reads one whole batch at `pos`.
    pub fn read_batch(&self, pos: u64, header: &BatchHeader) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; header.total_bytes()];
        self.log.read_exact_at(&mut buf, pos)?;
        Ok(buf)
    }

    pub fn sync(&self) -> Result<()> {
        fault::check(FileOp::Fsync, &self.log_path)?;
        self.log.sync_data()?;
        Ok(())
    }

    /// fsyncs data and the index files (done when the segment is rolled or closed).
    pub fn sync_all(&mut self) -> Result<()> {
        self.sync()?;
        fault::check(FileOp::Fsync, &self.index_path)?;
        self.index_file.sync_data()?;
        fault::check(FileOp::Fsync, &self.time_index_path)?;
        self.time_index_file.sync_data()?;
        self.txn_index.sync()
    }

    pub fn file(&self) -> Arc<File> {
        self.log.clone()
    }
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }
    pub fn offset_of_max_timestamp(&self) -> i64 {
        self.offset_of_max_timestamp
    }
    pub fn first_batch_timestamp(&self) -> i64 {
        self.first_batch_timestamp
    }
    pub fn is_empty(&self) -> bool {
        self.size_bytes == 0
    }
    pub fn txn_index(&self) -> &TxnIndex {
        &self.txn_index
    }
    pub(crate) fn txn_index_mut(&mut self) -> &mut TxnIndex {
        &mut self.txn_index
    }

    /// Deletes the segment's files.
    pub fn delete(self) -> Result<()> {
        self.txn_index.delete()?;
        for p in [&self.log_path, &self.index_path, &self.time_index_path] {
            match std::fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(LogError::Io(e)),
            }
        }
        Ok(())
    }
}

/// A read of committed bytes of one segment, done outside the log's lock.
/// Segments are append-only and a deleted segment's file stays readable
/// through this handle, so the bytes cannot change under the reader.
#[derive(Debug, Clone)]
pub struct ReadPlan {
    file: Arc<File>,
    pos: u64,
    len: usize,
}

impl ReadPlan {
    /// Bytes planned (the first batch whole, even beyond the asked maximum).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads the planned bytes, cut after the last whole batch.
    pub fn execute(&self) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; self.len];
        self.file.read_exact_at(&mut buf, self.pos)?;
        let mut end = 0usize;
        while let Some(total) = batch::peek_total_bytes(&buf[end..]) {
            if total < LOG_OVERHEAD_BYTES as i64 || end as i64 + total > buf.len() as i64 {
                break;
            }
            end += total as usize;
        }
        buf.truncate(end);
        Ok(buf)
    }
}

/// pwritev until every byte of `parts` is written at `offset` (writes may be short).
fn write_all_vectored_at(
    file: &File,
    path: &Path,
    parts: &[std::io::IoSlice<'_>],
    mut offset: u64,
) -> std::io::Result<()> {
    // IOV_MAX is 1024 on Linux: write in chunks of at most that many slices.
    const IOV_MAX: usize = 1024;
    let mut owned: Vec<std::io::IoSlice<'_>> = parts.to_vec();
    let mut slices: &mut [std::io::IoSlice<'_>] = &mut owned;
    if let WriteAction::Partial(errno) = fault::check_write(path)? {
        // A short write, as a filling disk gives: the first slice, then the error.
        if let Some(first) = slices.first() {
            rustix::io::pwrite(file, first, offset).map_err(std::io::Error::from)?;
        }
        return Err(fault::injected(errno));
    }
    while !slices.is_empty() {
        let n = slices.len().min(IOV_MAX);
        let written =
            rustix::io::pwritev(file, &slices[..n], offset).map_err(std::io::Error::from)?;
        if written == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::WriteZero,
                "pwritev wrote nothing",
            ));
        }
        offset += written as u64;
        std::io::IoSlice::advance_slices(&mut slices, written);
    }
    Ok(())
}

/// A write-only handle used until the real index files are opened.
fn tempfile_placeholder() -> Result<File> {
    Ok(OpenOptions::new().write(true).open("/dev/null")?)
}
