//! A segment's aborted transaction index, `<base>.txnindex` (Kafka's
//! `TransactionIndex`, same bytes): one entry per ABORT marker in the segment
//! that ended a transaction open on the partition, in marker offset order.
//!
//! Entry (34 bytes, big endian):
//! ```text
//!  0 version             i16  0
//!  2 producer_id         i64
//! 10 first_offset        i64  the transaction's first offset on this partition
//! 18 last_offset         i64  the abort marker's offset (in this segment)
//! 26 last_stable_offset  i64  the LSO once the marker was written: the first
//!                             offset of the oldest transaction still open, else
//!                             last_offset + 1
//! ```
//!
//! Derived state: written with its marker (all or nothing, see
//! `Segment::append_with`), fsynced with its segment at roll, rebuilt by
//! recovery for the segments it replays (see `PartitionLog::open`). The file
//! only exists once a segment has an entry. Reads happen outside the log's
//! lock through [`TxnIndexView`] (the file is append-only; an entry appended
//! later ends a transaction that was still open when the read was planned,
//! which starts at or above the last stable offset, so it never concerns
//! records the read returns).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::batch::BATCH_LENGTH_MIN;
use crate::error::{LogError, Result};
use crate::fault::{self, FileOp, WriteAction};

pub const TXN_INDEX_ENTRY_BYTES: usize = 34;
pub const TXN_INDEX_VERSION: i16 = 0;
/// Entries are read through a buffer of at most this many bytes.
const READ_CHUNK_BYTES: usize = 1927 * TXN_INDEX_ENTRY_BYTES;

pub fn txn_index_file_name(base_offset: i64) -> String {
    format!("{base_offset:020}.txnindex")
}

/// One aborted transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxnEntry {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
    pub last_stable_offset: i64,
}

impl AbortedTxnEntry {
    pub fn encode(&self) -> [u8; TXN_INDEX_ENTRY_BYTES] {
        let mut b = [0u8; TXN_INDEX_ENTRY_BYTES];
        b[0..2].copy_from_slice(&TXN_INDEX_VERSION.to_be_bytes());
        b[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        b[10..18].copy_from_slice(&self.first_offset.to_be_bytes());
        b[18..26].copy_from_slice(&self.last_offset.to_be_bytes());
        b[26..34].copy_from_slice(&self.last_stable_offset.to_be_bytes());
        b
    }

    /// None for an entry no Herald writes (another version, offsets out of order).
    pub fn decode(b: &[u8]) -> Option<AbortedTxnEntry> {
        let b: &[u8; TXN_INDEX_ENTRY_BYTES] = b.get(..TXN_INDEX_ENTRY_BYTES)?.try_into().ok()?;
        let i64_at = |at: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[at..at + 8]);
            i64::from_be_bytes(a)
        };
        if i16::from_be_bytes([b[0], b[1]]) != TXN_INDEX_VERSION {
            return None;
        }
        let e = AbortedTxnEntry {
            producer_id: i64_at(2),
            first_offset: i64_at(10),
            last_offset: i64_at(18),
            last_stable_offset: i64_at(26),
        };
        (e.producer_id >= 0
            && 0 <= e.first_offset
            && e.first_offset < e.last_offset
            && e.last_stable_offset <= e.last_offset.saturating_add(1))
        .then_some(e)
    }
}

/// How a [`TxnIndexView::collect`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collected {
    /// No entry of a later segment can concern the range either.
    Complete,
    /// Later segments' entries may.
    Continue,
    /// `limit` entries were found before the end.
    Full,
}

/// The aborted transaction index of one segment.
#[derive(Debug)]
pub struct TxnIndex {
    path: PathBuf,
    /// None until the first entry (the file is created then).
    file: Option<Arc<File>>,
    entries: u64,
    /// The last entry's marker offset (-1 without entries).
    last_offset: i64,
}

impl TxnIndex {
    fn path_in(dir: &Path, base_offset: i64) -> PathBuf {
        dir.join(txn_index_file_name(base_offset))
    }

    /// An index without entries, nothing read or written (until `load`).
    pub(crate) fn empty(dir: &Path, base_offset: i64) -> TxnIndex {
        TxnIndex {
            path: Self::path_in(dir, base_offset),
            file: None,
            entries: 0,
            last_offset: -1,
        }
    }

    /// The index of a new segment: none, and a file left by an earlier
    /// segment of that name is removed.
    pub(crate) fn create(dir: &Path, base_offset: i64) -> std::io::Result<TxnIndex> {
        let path = Self::path_in(dir, base_offset);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(TxnIndex {
            path,
            file: None,
            entries: 0,
            last_offset: -1,
        })
    }

    /// Loads the index of a segment whose batches lie in `[base_offset,
    /// next_offset)` and that holds `segment_bytes` bytes. Whatever does not
    /// read as entries of this segment in increasing marker order (a torn
    /// tail, an entry for a marker recovery truncated, garbage) is cut off:
    /// the file is bounded by one entry per possible batch of the segment.
    pub(crate) fn load(
        dir: &Path,
        base_offset: i64,
        next_offset: i64,
        segment_bytes: u64,
    ) -> Result<TxnIndex> {
        let path = Self::path_in(dir, base_offset);
        let file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(TxnIndex {
                    path,
                    file: None,
                    entries: 0,
                    last_offset: -1,
                });
            }
            Err(e) => return Err(LogError::Io(e)),
        };
        let file_bytes = file.metadata()?.len();
        let entries_max = segment_bytes / (BATCH_LENGTH_MIN as u64 + 12) + 1;
        let whole = (file_bytes / TXN_INDEX_ENTRY_BYTES as u64).min(entries_max);
        let mut valid = 0u64;
        let mut last_offset = -1i64;
        let mut buf = Vec::new();
        'read: while valid < whole {
            let n = ((whole - valid) as usize * TXN_INDEX_ENTRY_BYTES).min(READ_CHUNK_BYTES);
            buf.resize(n, 0);
            file.read_exact_at(&mut buf, valid * TXN_INDEX_ENTRY_BYTES as u64)?;
            for chunk in buf.chunks_exact(TXN_INDEX_ENTRY_BYTES) {
                match AbortedTxnEntry::decode(chunk) {
                    Some(e)
                        if e.last_offset > last_offset
                            && e.last_offset >= base_offset
                            && e.last_offset < next_offset =>
                    {
                        last_offset = e.last_offset;
                        valid += 1;
                    }
                    _ => break 'read,
                }
            }
        }
        let valid_bytes = valid * TXN_INDEX_ENTRY_BYTES as u64;
        if valid_bytes != file_bytes {
            tracing::warn!(
                path = %path.display(),
                kept_entries = valid,
                cut_bytes = file_bytes - valid_bytes,
                "transaction index does not match its segment; cut after its last sound entry"
            );
            file.set_len(valid_bytes)?;
            file.sync_all()?;
        }
        Ok(TxnIndex {
            path,
            file: Some(Arc::new(file)),
            entries: valid,
            last_offset,
        })
    }

    pub fn entries(&self) -> u64 {
        self.entries
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one entry (its marker is being written to the segment).
    pub(crate) fn append(&mut self, entry: &AbortedTxnEntry) -> Result<()> {
        assert!(
            entry.last_offset > self.last_offset,
            "entries are appended in marker order"
        );
        let file = match &self.file {
            Some(f) => f.clone(),
            None => {
                fault::check(FileOp::Create, &self.path)?;
                let f = Arc::new(
                    OpenOptions::new()
                        .read(true)
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .open(&self.path)?,
                );
                self.file = Some(f.clone());
                f
            }
        };
        let bytes = entry.encode();
        let at = self.entries * TXN_INDEX_ENTRY_BYTES as u64;
        if let WriteAction::Partial(errno) = fault::check_write(&self.path)? {
            file.write_all_at(&bytes[..TXN_INDEX_ENTRY_BYTES / 2], at)?;
            return Err(LogError::Io(fault::injected(errno)));
        }
        file.write_all_at(&bytes, at)?;
        self.entries += 1;
        self.last_offset = entry.last_offset;
        Ok(())
    }

    /// Keeps the first `entries` entries (undoing a failed append).
    pub(crate) fn truncate_entries(&mut self, entries: u64) -> std::io::Result<()> {
        if entries >= self.entries {
            if let Some(f) = &self.file {
                // A torn append may have written past the last entry.
                f.set_len(self.entries * TXN_INDEX_ENTRY_BYTES as u64)?;
            }
            return Ok(());
        }
        let Some(f) = &self.file else { return Ok(()) };
        f.set_len(entries * TXN_INDEX_ENTRY_BYTES as u64)?;
        self.entries = entries;
        self.last_offset = match entries.checked_sub(1) {
            Some(i) => self.read_entry(i)?.map(|e| e.last_offset).unwrap_or(-1),
            None => -1,
        };
        Ok(())
    }

    /// Drops the entries of markers at or after `offset` (recovery replays
    /// them). Returns whether anything was dropped.
    pub(crate) fn truncate_from_offset(&mut self, offset: i64) -> Result<bool> {
        if self.entries == 0 || self.last_offset < offset {
            return Ok(false);
        }
        let keep = match self.view() {
            Some(v) => v.first_at_or_after(offset)?,
            None => 0,
        };
        self.truncate_entries(keep)?;
        Ok(true)
    }

    fn read_entry(&self, i: u64) -> std::io::Result<Option<AbortedTxnEntry>> {
        match self.view() {
            Some(v) => v.entry(i),
            None => Ok(None),
        }
    }

    /// fsyncs the file (at roll and close, and after recovery rebuilt it).
    pub(crate) fn sync(&self) -> Result<()> {
        if let Some(f) = &self.file {
            fault::check(FileOp::Fsync, &self.path)?;
            f.sync_data()?;
        }
        Ok(())
    }

    /// A read handle on the entries there are now; None without entries.
    pub fn view(&self) -> Option<TxnIndexView> {
        let file = self.file.as_ref()?;
        (self.entries > 0).then(|| TxnIndexView {
            file: file.clone(),
            entries: self.entries,
        })
    }

    /// Every entry (compaction rewrites the index of a cleaned segment).
    pub fn all_entries(&self) -> Result<Vec<AbortedTxnEntry>> {
        let mut out = Vec::new();
        if let Some(v) = self.view() {
            v.collect(i64::MIN, i64::MAX, &mut out, usize::MAX)?;
        }
        Ok(out)
    }

    pub(crate) fn delete(&self) -> Result<()> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(LogError::Io(e)),
        }
    }
}

/// The entries of one segment's index as of a read's planning.
#[derive(Debug, Clone)]
pub struct TxnIndexView {
    file: Arc<File>,
    entries: u64,
}

impl TxnIndexView {
    fn entry(&self, i: u64) -> std::io::Result<Option<AbortedTxnEntry>> {
        if i >= self.entries {
            return Ok(None);
        }
        let mut b = [0u8; TXN_INDEX_ENTRY_BYTES];
        match self
            .file
            .read_exact_at(&mut b, i * TXN_INDEX_ENTRY_BYTES as u64)
        {
            Ok(()) => Ok(AbortedTxnEntry::decode(&b)),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Index of the first entry whose marker is at or after `offset`
    /// (entries are in marker order: a binary search).
    fn first_at_or_after(&self, offset: i64) -> std::io::Result<u64> {
        let (mut lo, mut hi) = (0u64, self.entries);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.entry(mid)? {
                Some(e) if e.last_offset < offset => lo = mid + 1,
                _ => hi = mid,
            }
        }
        Ok(lo)
    }

    /// Writes the entries `keep` accepts to `out`, streaming; returns how many.
    pub(crate) fn write_filtered(
        &self,
        out: &mut impl std::io::Write,
        keep: impl Fn(&AbortedTxnEntry) -> bool,
    ) -> Result<u64> {
        let mut kept = 0u64;
        let mut i = 0u64;
        let mut buf = Vec::new();
        while i < self.entries {
            let n = ((self.entries - i) as usize * TXN_INDEX_ENTRY_BYTES).min(READ_CHUNK_BYTES);
            buf.resize(n, 0);
            self.file
                .read_exact_at(&mut buf, i * TXN_INDEX_ENTRY_BYTES as u64)?;
            for chunk in buf.chunks_exact(TXN_INDEX_ENTRY_BYTES) {
                i += 1;
                let e = AbortedTxnEntry::decode(chunk)
                    .ok_or(LogError::CorruptBatch("unreadable transaction index entry"))?;
                if keep(&e) {
                    out.write_all(chunk)?;
                    kept += 1;
                }
            }
        }
        out.flush()?;
        Ok(kept)
    }

    /// Kafka's `TransactionIndex.collectAbortedTxns`: appends to `out` every
    /// entry whose transaction overlaps `[fetch_offset, upper_bound)` (its
    /// marker at or after the fetch offset, its first offset below the
    /// bound), at most `limit` in all. Complete once an entry's last stable
    /// offset reaches the bound: every later transaction starts at or after it.
    pub fn collect(
        &self,
        fetch_offset: i64,
        upper_bound: i64,
        out: &mut Vec<AbortedTxnEntry>,
        limit: usize,
    ) -> Result<Collected> {
        let mut i = self.first_at_or_after(fetch_offset)?;
        let mut buf = Vec::new();
        while i < self.entries {
            let n = ((self.entries - i) as usize * TXN_INDEX_ENTRY_BYTES).min(READ_CHUNK_BYTES);
            buf.resize(n, 0);
            match self
                .file
                .read_exact_at(&mut buf, i * TXN_INDEX_ENTRY_BYTES as u64)
            {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(LogError::Io(e)),
            }
            for chunk in buf.chunks_exact(TXN_INDEX_ENTRY_BYTES) {
                i += 1;
                let Some(e) = AbortedTxnEntry::decode(chunk) else {
                    return Err(LogError::CorruptBatch("unreadable transaction index entry"));
                };
                if e.last_offset < fetch_offset {
                    continue;
                }
                if e.first_offset < upper_bound {
                    if out.len() >= limit {
                        return Ok(Collected::Full);
                    }
                    out.push(e);
                }
                if e.last_stable_offset >= upper_bound {
                    return Ok(Collected::Complete);
                }
            }
        }
        Ok(Collected::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(pid: i64, first: i64, last: i64, lso: i64) -> AbortedTxnEntry {
        AbortedTxnEntry {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: lso,
        }
    }

    #[test]
    fn entry_bytes_are_kafkas() {
        let e = entry(0x0102_0304_0506_0708, 10, 20, 21);
        let b = e.encode();
        let mut expect = vec![0, 0];
        expect.extend_from_slice(&0x0102_0304_0506_0708i64.to_be_bytes());
        expect.extend_from_slice(&10i64.to_be_bytes());
        expect.extend_from_slice(&20i64.to_be_bytes());
        expect.extend_from_slice(&21i64.to_be_bytes());
        assert_eq!(b.to_vec(), expect);
        assert_eq!(AbortedTxnEntry::decode(&b), Some(e));
        let mut v1 = b;
        v1[1] = 1;
        assert_eq!(AbortedTxnEntry::decode(&v1), None, "unknown version");
        assert_eq!(AbortedTxnEntry::decode(&b[..33]), None);
        assert_eq!(AbortedTxnEntry::decode(&entry(1, 20, 10, 5).encode()), None);
    }

    #[test]
    fn collect_selects_overlapping_transactions_and_stops_at_the_lso() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = TxnIndex::create(dir.path(), 0).unwrap();
        // (pid, first, marker, lso): 2 was still open when 1 aborted (lso 3).
        let entries = [
            entry(1, 0, 5, 3),
            entry(2, 3, 9, 10),
            entry(3, 12, 15, 16),
            entry(4, 20, 30, 31),
        ];
        for e in &entries {
            idx.append(e).unwrap();
        }
        let v = idx.view().unwrap();
        let got = |from: i64, upper: i64, limit: usize| {
            let mut out = Vec::new();
            let c = v.collect(from, upper, &mut out, limit).unwrap();
            (out.iter().map(|e| e.producer_id).collect::<Vec<_>>(), c)
        };
        assert_eq!(got(0, 100, 10), (vec![1, 2, 3, 4], Collected::Continue));
        // Marker before the fetch offset: not reported.
        assert_eq!(got(6, 100, 10), (vec![2, 3, 4], Collected::Continue));
        // First offset at or past the bound: not reported; lso 10 >= 10: complete.
        assert_eq!(got(0, 3, 10), (vec![1], Collected::Complete));
        assert_eq!(got(0, 2, 10), (vec![1], Collected::Complete));
        assert_eq!(got(0, 10, 10), (vec![1, 2], Collected::Complete));
        assert_eq!(got(10, 13, 10), (vec![3], Collected::Complete));
        assert_eq!(got(0, 100, 2), (vec![1, 2], Collected::Full));
        // Reopened: the same; an entry for a marker beyond the segment is cut.
        drop(idx);
        let idx = TxnIndex::load(dir.path(), 0, 25, 1 << 20).unwrap();
        assert_eq!(idx.entries(), 3);
        assert_eq!(idx.all_entries().unwrap(), entries[..3]);
    }

    #[test]
    fn load_cuts_torn_and_corrupt_tails_and_bounds_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = TxnIndex::create(dir.path(), 100).unwrap();
        idx.append(&entry(1, 50, 100, 101)).unwrap();
        idx.append(&entry(2, 90, 110, 111)).unwrap();
        let path = idx.path().to_path_buf();
        drop(idx);
        // A torn third entry.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&entry(3, 95, 120, 121).encode()[..20]);
        std::fs::write(&path, &bytes).unwrap();
        let idx = TxnIndex::load(dir.path(), 100, 200, 1 << 20).unwrap();
        assert_eq!(idx.entries(), 2);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 68);
        drop(idx);
        // Garbage after a sound entry, and out-of-order entries.
        let mut bytes = entry(1, 50, 100, 101).encode().to_vec();
        bytes.extend_from_slice(&[0xff; 34]);
        bytes.extend_from_slice(&entry(2, 90, 110, 111).encode());
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(
            TxnIndex::load(dir.path(), 100, 200, 1 << 20)
                .unwrap()
                .entries(),
            1
        );
        let mut bytes = entry(2, 90, 110, 111).encode().to_vec();
        bytes.extend_from_slice(&entry(1, 50, 105, 106).encode());
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(
            TxnIndex::load(dir.path(), 100, 200, 1 << 20)
                .unwrap()
                .entries(),
            1
        );
        // A huge file of plausible entries: at most one per possible batch.
        let mut bytes = Vec::new();
        for i in 0..1000 {
            bytes.extend_from_slice(&entry(1, 100 + i, 101 + i, 102 + i).encode());
        }
        std::fs::write(&path, &bytes).unwrap();
        let idx = TxnIndex::load(dir.path(), 100, 100_000, 610).unwrap();
        assert_eq!(idx.entries(), 11);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            11 * TXN_INDEX_ENTRY_BYTES as u64
        );
    }

    #[test]
    fn any_bytes_load_as_a_sound_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(txn_index_file_name(0));
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let good: Vec<u8> = (0..20)
            .flat_map(|i| entry(1 + i, i * 10, i * 10 + 5, i * 10 + 6).encode())
            .collect();
        for round in 0..300 {
            let mut bytes = good.clone();
            bytes.truncate(next() as usize % (good.len() + 1));
            for _ in 0..(round % 4) {
                if !bytes.is_empty() {
                    let i = next() as usize % bytes.len();
                    bytes[i] = next() as u8;
                }
            }
            std::fs::write(&path, &bytes).unwrap();
            let idx = TxnIndex::load(dir.path(), 0, 150, 1 << 20).unwrap();
            let entries = idx.all_entries().unwrap();
            assert_eq!(entries.len() as u64, idx.entries());
            assert!(
                entries
                    .windows(2)
                    .all(|w| w[0].last_offset < w[1].last_offset)
            );
            assert!(entries.iter().all(|e| e.last_offset < 150));
            assert_eq!(
                std::fs::metadata(&path).unwrap().len(),
                idx.entries() * TXN_INDEX_ENTRY_BYTES as u64
            );
            let mut out = Vec::new();
            if let Some(v) = idx.view() {
                v.collect(0, 200, &mut out, 100).unwrap();
            }
            assert_eq!(out, entries);
        }
    }

    #[test]
    fn truncation_from_an_offset_and_undo() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = TxnIndex::create(dir.path(), 0).unwrap();
        for i in 0..5 {
            idx.append(&entry(i + 1, i * 10, i * 10 + 5, i * 10 + 6))
                .unwrap();
        }
        assert!(idx.truncate_from_offset(25).unwrap());
        assert_eq!(idx.entries(), 2);
        assert!(!idx.truncate_from_offset(25).unwrap());
        idx.append(&entry(9, 26, 27, 28)).unwrap();
        idx.truncate_entries(2).unwrap();
        assert_eq!(idx.entries(), 2);
        idx.append(&entry(9, 16, 17, 18)).unwrap();
        assert_eq!(idx.all_entries().unwrap().len(), 3);
        // A stale file of an earlier segment with this name goes at create.
        let idx = TxnIndex::create(dir.path(), 0).unwrap();
        assert!(!idx.path().exists());
    }
}
