//! Fault injection under the log: the narrow seam that every data write,
//! fsync, file creation and metadata write of the storage engine passes
//! through, so tests can make one of them fail (EIO, ENOSPC) or stall for a
//! chosen partition or file.
//!
//! Unarmed (no rule installed, always the case outside tests) a check is one
//! relaxed atomic load. Rules are process-wide and match on a substring of the
//! file's path (a topic-partition directory such as `/topics/t1/0/`, or a file
//! name), so in-process tests that use distinct topic names do not disturb
//! each other.

use std::io;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// The file operations the seam covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileOp {
    /// A data write (segment, index, checkpoint, metadata file).
    Write,
    /// fsync/fdatasync of a file or a directory.
    Fsync,
    /// Creating a new file (a segment on roll, a temp file).
    Create,
}

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Fail with this errno (`libc`-style: 5 = EIO, 28 = ENOSPC), writing nothing.
    Errno(i32),
    /// Writes only: write part of the bytes, then fail with this errno (a short
    /// write, as a filling disk gives). For other operations, same as `Errno`.
    PartialWrite(i32),
    /// Sleep this long, then do the operation.
    Delay(Duration),
}

pub const EIO: i32 = 5;
pub const ENOSPC: i32 = 28;

/// One installed rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Matches files whose path contains this.
    pub path_contains: String,
    pub op: FileOp,
    pub fault: Fault,
    /// Fire at most this many times (None: until removed).
    pub times: Option<u64>,
}

struct Installed {
    id: u64,
    rule: Rule,
    hits: u64,
}

static ARMED: AtomicBool = AtomicBool::new(false);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static RULES: Mutex<Vec<Installed>> = Mutex::new(Vec::new());

/// Installs a rule; it stays until the guard is dropped (or `times` is spent).
pub fn inject(rule: Rule) -> FaultGuard {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let mut rules = RULES.lock().unwrap_or_else(|p| p.into_inner());
    rules.push(Installed { id, rule, hits: 0 });
    ARMED.store(true, Ordering::SeqCst);
    FaultGuard { id }
}

/// Removes its rule when dropped.
#[derive(Debug)]
#[must_use = "the rule is removed when the guard is dropped"]
pub struct FaultGuard {
    id: u64,
}

impl FaultGuard {
    /// How many operations this rule has failed or delayed so far.
    pub fn hits(&self) -> u64 {
        let rules = RULES.lock().unwrap_or_else(|p| p.into_inner());
        rules
            .iter()
            .find(|r| r.id == self.id)
            .map(|r| r.hits)
            .unwrap_or(0)
    }
}

impl Drop for FaultGuard {
    fn drop(&mut self) {
        let mut rules = RULES.lock().unwrap_or_else(|p| p.into_inner());
        rules.retain(|r| r.id != self.id);
        if rules.is_empty() {
            ARMED.store(false, Ordering::SeqCst);
        }
    }
}

/// What the caller of a write must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteAction {
    Proceed,
    /// Write a part, then fail with this errno.
    Partial(i32),
}

/// The rule that fires for (`op`, `path`), if any, counted as a hit.
fn fire(op: FileOp, path: &Path) -> Option<Fault> {
    let mut rules = RULES.lock().unwrap_or_else(|p| p.into_inner());
    let text = path.to_string_lossy();
    let r = rules.iter_mut().find(|r| {
        r.rule.op == op
            && text.contains(r.rule.path_contains.as_str())
            && r.rule.times.is_none_or(|t| r.hits < t)
    })?;
    r.hits += 1;
    Some(r.rule.fault)
}

/// Checks an operation other than a write: Err to fail it, after any delay.
pub fn check(op: FileOp, path: &Path) -> io::Result<()> {
    if !ARMED.load(Ordering::Relaxed) {
        return Ok(());
    }
    match fire(op, path) {
        None => Ok(()),
        Some(Fault::Delay(d)) => {
            std::thread::sleep(d);
            Ok(())
        }
        Some(Fault::Errno(e) | Fault::PartialWrite(e)) => Err(injected(e)),
    }
}

/// Checks a write: Err to fail it whole, `Partial` to write a part and fail.
pub(crate) fn check_write(path: &Path) -> io::Result<WriteAction> {
    if !ARMED.load(Ordering::Relaxed) {
        return Ok(WriteAction::Proceed);
    }
    match fire(FileOp::Write, path) {
        None => Ok(WriteAction::Proceed),
        Some(Fault::Delay(d)) => {
            std::thread::sleep(d);
            Ok(WriteAction::Proceed)
        }
        Some(Fault::Errno(e)) => Err(injected(e)),
        Some(Fault::PartialWrite(e)) => Ok(WriteAction::Partial(e)),
    }
}

pub(crate) fn injected(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

/// Whether an I/O error means the filesystem is out of space (or quota): the
/// write can be rolled back and retried once space is freed. Anything else
/// (EIO above all) is a failed device, after which the page cache cannot be
/// trusted.
pub fn is_out_of_space(e: &io::Error) -> bool {
    // ENOSPC 28, EDQUOT 122 on Linux; StorageFull covers both.
    e.kind() == io::ErrorKind::StorageFull || matches!(e.raw_os_error(), Some(28 | 122))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_by_path_and_op_and_expire() {
        let g = inject(Rule {
            path_contains: "/fault-unit-test/".into(),
            op: FileOp::Fsync,
            fault: Fault::Errno(EIO),
            times: Some(1),
        });
        assert!(check(FileOp::Write, Path::new("/x/fault-unit-test/a")).is_ok());
        assert!(check(FileOp::Fsync, Path::new("/x/other/a")).is_ok());
        let e = check(FileOp::Fsync, Path::new("/x/fault-unit-test/a")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(EIO));
        // Spent after one hit.
        assert!(check(FileOp::Fsync, Path::new("/x/fault-unit-test/a")).is_ok());
        assert_eq!(g.hits(), 1);
        drop(g);
        assert!(is_out_of_space(&injected(ENOSPC)));
        assert!(!is_out_of_space(&injected(EIO)));
    }
}
