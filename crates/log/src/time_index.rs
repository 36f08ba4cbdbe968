//! Sparse time index: maps a timestamp to the first offset at which the log's
//! running maximum timestamp reached it.
//!
//! File format: a sequence of 12-byte entries, `timestamp_ms: i64 BE`,
//! `relative_offset: u32 BE`, timestamps strictly increasing. Every batch before
//! an entry's offset has a max timestamp below the entry's timestamp, so a search
//! for T may start at the last entry with timestamp <= T. Derived state, rebuilt
//! like the offset index.

use std::fs::File;
use std::io::Write;
use std::path::Path;

pub const TIME_INDEX_ENTRY_BYTES: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeIndexEntry {
    pub timestamp_ms: i64,
    pub relative_offset: u32,
}

#[derive(Debug, Default)]
pub struct TimeIndex {
    entries: Vec<TimeIndexEntry>,
}

impl TimeIndex {
    pub fn load(path: &Path) -> Option<TimeIndex> {
        let bytes = std::fs::read(path).ok()?;
        if bytes.len() % TIME_INDEX_ENTRY_BYTES != 0 {
            return None;
        }
        let mut entries: Vec<TimeIndexEntry> =
            Vec::with_capacity(bytes.len() / TIME_INDEX_ENTRY_BYTES);
        for c in bytes.chunks_exact(TIME_INDEX_ENTRY_BYTES) {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&c[..8]);
            let e = TimeIndexEntry {
                timestamp_ms: i64::from_be_bytes(ts),
                relative_offset: u32::from_be_bytes([c[8], c[9], c[10], c[11]]),
            };
            if let Some(last) = entries.last()
                && (e.timestamp_ms <= last.timestamp_ms || e.relative_offset < last.relative_offset)
            {
                return None;
            }
            entries.push(e);
        }
        Some(TimeIndex { entries })
    }

    pub fn last(&self) -> Option<TimeIndexEntry> {
        self.entries.last().copied()
    }

    /// Adds an entry if `timestamp_ms` is above the last one; returns whether it was added.
    pub fn maybe_push(&mut self, entry: TimeIndexEntry) -> bool {
        if let Some(last) = self.entries.last()
            && entry.timestamp_ms <= last.timestamp_ms
        {
            return false;
        }
        self.entries.push(entry);
        true
    }

    /// The last entry with timestamp <= `timestamp_ms`.
    pub fn floor(&self, timestamp_ms: i64) -> Option<TimeIndexEntry> {
        let i = self
            .entries
            .partition_point(|e| e.timestamp_ms <= timestamp_ms);
        if i == 0 {
            None
        } else {
            Some(self.entries[i - 1])
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Keeps the first `count` entries (undoing a failed append).
    pub fn truncate_entries(&mut self, count: usize) {
        self.entries.truncate(count);
    }

    /// Drops entries at or beyond `relative_offset`.
    pub fn truncate_to_offset(&mut self, relative_offset: u32) {
        let i = self
            .entries
            .partition_point(|e| e.relative_offset < relative_offset);
        self.entries.truncate(i);
    }

    pub fn encode_entry(e: TimeIndexEntry) -> [u8; TIME_INDEX_ENTRY_BYTES] {
        let mut b = [0u8; TIME_INDEX_ENTRY_BYTES];
        b[..8].copy_from_slice(&e.timestamp_ms.to_be_bytes());
        b[8..].copy_from_slice(&e.relative_offset.to_be_bytes());
        b
    }

    /// Rewrites the whole file from memory, durably.
    pub fn write_all(&self, path: &Path) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(self.entries.len() * TIME_INDEX_ENTRY_BYTES);
        for e in &self.entries {
            buf.extend_from_slice(&Self::encode_entry(*e));
        }
        let mut f = File::create(path)?;
        f.write_all(&buf)?;
        f.sync_all()?;
        Ok(())
    }
}
