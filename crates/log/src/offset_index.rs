//! Sparse offset index: maps a relative offset to a byte position in the segment's `.log`.
//!
//! File format: a sequence of 8-byte entries, each `relative_offset: u32 BE`,
//! `position: u32 BE`, both strictly increasing. The file is derived state: it is
//! rebuilt from the log whenever it is missing, torn or inconsistent.

use std::fs::File;
use std::io::Write;
use std::path::Path;

pub const OFFSET_INDEX_ENTRY_BYTES: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetIndexEntry {
    pub relative_offset: u32,
    pub position: u32,
}

#[derive(Debug, Default)]
pub struct OffsetIndex {
    entries: Vec<OffsetIndexEntry>,
}

impl OffsetIndex {
    /// Loads entries from `path`; returns None when the file is missing or not a
    /// valid index for a log of `log_bytes` bytes (the caller rebuilds).
    pub fn load(path: &Path, log_bytes: u64) -> Option<OffsetIndex> {
        let bytes = std::fs::read(path).ok()?;
        if bytes.len() % OFFSET_INDEX_ENTRY_BYTES != 0 {
            return None;
        }
        let mut entries = Vec::with_capacity(bytes.len() / OFFSET_INDEX_ENTRY_BYTES);
        for chunk in bytes.chunks_exact(OFFSET_INDEX_ENTRY_BYTES) {
            let e = OffsetIndexEntry {
                relative_offset: u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]),
                position: u32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]),
            };
            if let Some(last) = entries.last() {
                let last: &OffsetIndexEntry = last;
                if e.relative_offset <= last.relative_offset || e.position <= last.position {
                    return None;
                }
            }
            if e.position as u64 >= log_bytes {
                return None;
            }
            entries.push(e);
        }
        Some(OffsetIndex { entries })
    }

    pub fn push(&mut self, entry: OffsetIndexEntry) {
        if let Some(last) = self.entries.last() {
            debug_assert!(entry.relative_offset > last.relative_offset);
            debug_assert!(entry.position > last.position);
        }
        self.entries.push(entry);
    }

    /// The last entry whose relative offset is <= `relative_offset`.
    pub fn floor(&self, relative_offset: u32) -> Option<OffsetIndexEntry> {
        let i = self
            .entries
            .partition_point(|e| e.relative_offset <= relative_offset);
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

    /// Drops entries at or beyond `position` (after a log truncation).
    pub fn truncate_to_position(&mut self, position: u32) {
        let i = self.entries.partition_point(|e| e.position < position);
        self.entries.truncate(i);
    }

    pub fn encode_entry(e: OffsetIndexEntry) -> [u8; OFFSET_INDEX_ENTRY_BYTES] {
        let mut b = [0u8; OFFSET_INDEX_ENTRY_BYTES];
        b[..4].copy_from_slice(&e.relative_offset.to_be_bytes());
        b[4..].copy_from_slice(&e.position.to_be_bytes());
        b
    }

    /// Rewrites the whole file from memory, durably.
    pub fn write_all(&self, path: &Path) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(self.entries.len() * OFFSET_INDEX_ENTRY_BYTES);
        for e in &self.entries {
            buf.extend_from_slice(&Self::encode_entry(*e));
        }
        let mut f = File::create(path)?;
        f.write_all(&buf)?;
        f.sync_all()?;
        Ok(())
    }
}
