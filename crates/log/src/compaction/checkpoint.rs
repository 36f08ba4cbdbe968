//! The cleaner checkpoint (`<partition>/cleaner-checkpoint`): where the
//! dirty part of a compacted log starts, and when each range of offsets
//! became clean (for `delete.retention.ms`). Format in docs/storage-format.md.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use crate::error::{LogError, Result};
use crate::partition_log::fsync_dir;

/// Per-partition cleaner state: where the dirty part starts, and when each
/// range of offsets became clean (for `delete.retention.ms`).
pub const CLEANER_CHECKPOINT_FILE: &str = "cleaner-checkpoint";
/// A checkpoint file larger than this is not read (it is corrupt).
pub const CLEANER_CHECKPOINT_BYTES_MAX: u64 = 8 * 1024;
/// Passes remembered in the checkpoint. Beyond it the oldest is merged into
/// the next one, which makes tombstones below it live longer, never shorter.
pub const CLEANER_PASSES_MAX: usize = 64;
/// The cleaner checkpoint: passes as `(clean end offset, cleaned at ms)`,
/// both increasing. Offsets below a pass's end and at or above the previous
/// pass's end became clean at that pass's time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CleanerCheckpoint {
    passes: Vec<(i64, i64)>,
}

impl CleanerCheckpoint {
    pub(crate) fn first_dirty_offset(&self) -> Option<i64> {
        self.passes.last().map(|p| p.0)
    }

    /// When `offset` entered the cleaned part; None while it is dirty.
    pub(super) fn cleaned_at_ms(&self, offset: i64) -> Option<i64> {
        let i = self.passes.partition_point(|p| p.0 <= offset);
        self.passes.get(i).map(|p| p.1)
    }

    pub(super) fn record_pass(&mut self, clean_end: i64, now_ms: i64) {
        let (last_end, last_ms) = self.passes.last().copied().unwrap_or((i64::MIN, i64::MIN));
        assert!(clean_end > last_end, "a pass moves the checkpoint forward");
        // A clock that went back must not make earlier passes look younger.
        self.passes.push((clean_end, now_ms.max(last_ms)));
        while self.passes.len() > CLEANER_PASSES_MAX {
            self.passes.remove(0);
        }
    }

    /// Line 1 `herald-cleaner-checkpoint 1 <passes>`, then one line per pass:
    /// `<clean end offset> <cleaned at ms>`.
    fn encode(&self) -> String {
        let mut out = format!("herald-cleaner-checkpoint 1 {}\n", self.passes.len());
        for (end, at) in &self.passes {
            out.push_str(&format!("{end} {at}\n"));
        }
        out
    }

    fn decode(text: &str) -> Option<CleanerCheckpoint> {
        let mut lines = text.lines();
        let head: Vec<&str> = lines.next()?.split(' ').collect();
        if head.len() != 3 || head[0] != "herald-cleaner-checkpoint" || head[1] != "1" {
            return None;
        }
        let count: usize = head[2].parse().ok()?;
        if count > CLEANER_PASSES_MAX {
            return None;
        }
        let mut passes = Vec::with_capacity(count);
        for line in lines {
            let (end, at) = line.split_once(' ')?;
            let pass: (i64, i64) = (end.parse().ok()?, at.parse().ok()?);
            let ordered = match passes.last() {
                Some(&(e, a)) => pass.0 > e && pass.1 >= a,
                None => pass.0 >= 0,
            };
            if !ordered || passes.len() == count {
                return None;
            }
            passes.push(pass);
        }
        (passes.len() == count).then_some(CleanerCheckpoint { passes })
    }
}

/// Reads the checkpoint. A missing one is empty; an unreadable one too (with
/// a warning): everything is then dirty again and every tombstone's retention
/// restarts, which costs work and keeps tombstones longer, never loses data.
pub(crate) fn read_checkpoint(dir: &Path) -> Result<CleanerCheckpoint> {
    let path = dir.join(CLEANER_CHECKPOINT_FILE);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(CleanerCheckpoint::default());
        }
        Err(e) => return Err(LogError::Io(e)),
    };
    if file.metadata()?.len() <= CLEANER_CHECKPOINT_BYTES_MAX {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if let Some(c) = CleanerCheckpoint::decode(&text) {
            return Ok(c);
        }
    }
    tracing::warn!(path = %path.display(), "unreadable cleaner checkpoint; starting over");
    Ok(CleanerCheckpoint::default())
}

/// Replaces the checkpoint atomically: tmp, fsync, rename, fsync the directory.
pub(super) fn write_checkpoint(dir: &Path, checkpoint: &CleanerCheckpoint) -> Result<()> {
    let text = checkpoint.encode();
    assert!(text.len() as u64 <= CLEANER_CHECKPOINT_BYTES_MAX);
    assert_eq!(CleanerCheckpoint::decode(&text).as_ref(), Some(checkpoint));
    let tmp = dir.join(format!("{CLEANER_CHECKPOINT_FILE}.tmp"));
    let mut f = File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(CLEANER_CHECKPOINT_FILE))?;
    fsync_dir(dir)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_round_trips_and_rejects_disorder() {
        let mut c = CleanerCheckpoint::default();
        assert_eq!(c.cleaned_at_ms(0), None);
        c.record_pass(10, 100);
        c.record_pass(20, 90); // clock went back: stays at 100
        c.record_pass(30, 300);
        assert_eq!(c.first_dirty_offset(), Some(30));
        assert_eq!(c.cleaned_at_ms(0), Some(100));
        assert_eq!(c.cleaned_at_ms(10), Some(100));
        assert_eq!(c.cleaned_at_ms(29), Some(300));
        assert_eq!(c.cleaned_at_ms(30), None);
        assert_eq!(CleanerCheckpoint::decode(&c.encode()), Some(c.clone()));
        for bad in [
            "",
            "herald-cleaner-checkpoint 1 2\n10 100\n",
            "herald-cleaner-checkpoint 1 2\n10 100\n5 200\n",
            "herald-cleaner-checkpoint 1 2\n10 100\n20 50\n",
            "herald-cleaner-checkpoint 2 1\n10 100\n",
            "herald-cleaner-checkpoint 1 1\n-1 100\n",
            "herald-cleaner-checkpoint 1 1\n10 x\n",
            "herald-cleaner-checkpoint 1 65\n",
        ] {
            assert_eq!(CleanerCheckpoint::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn checkpoint_history_is_bounded_conservatively() {
        let mut c = CleanerCheckpoint::default();
        for i in 1..=(CLEANER_PASSES_MAX as i64 + 10) {
            c.record_pass(i * 10, i * 1000);
        }
        assert_eq!(c.passes.len(), CLEANER_PASSES_MAX);
        // Offsets of forgotten passes take the oldest remembered time: later, never earlier.
        assert_eq!(c.cleaned_at_ms(0), Some(11_000));
        assert!(c.encode().len() as u64 <= CLEANER_CHECKPOINT_BYTES_MAX);
    }
}
