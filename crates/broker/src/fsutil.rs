//! Small durable-file helpers.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` so that after a crash the file holds either the old
/// or the new content: write a temp file, fsync, rename, fsync the directory.
///
/// On failure (a full disk) the temp file is removed and `path` is untouched:
/// no half-written file is left behind. Writes go through the log's fault seam
/// (`herald_log::fault`), so tests can make them fail.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use herald_log::fault::{FileOp, check};
    let tmp = path.with_extension("tmp");
    let written = (|| {
        check(FileOp::Create, &tmp)?;
        let mut f = std::fs::File::create(&tmp)?;
        check(FileOp::Write, &tmp)?;
        f.write_all(bytes)?;
        check(FileOp::Fsync, &tmp)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Fsyncs a directory, so that the entries created, renamed or removed in it
/// survive a power loss (an fsync of a file does not cover its name).
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    herald_log::fault::check(herald_log::fault::FileOp::Fsync, dir)?;
    std::fs::File::open(dir)?.sync_all()
}
