//! A throwaway PostgreSQL server: `initdb` in a temp dir, `pg_ctl start` on a
//! free loopback port, database `herald` owned by role `herald` (trust auth).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use tempfile::TempDir;

use crate::{
    Reaper, START_TIMEOUT, find_in_path, free_port, is_executable, is_root, log_tail, run, sh_quote,
};

/// The tools `start` runs, all from the server's bin dir.
const TOOLS: [&str; 4] = ["initdb", "pg_ctl", "pg_isready", "createdb"];

const MISSING: &str = "PostgreSQL server binaries (initdb, pg_ctl, pg_isready, createdb) not found \
     in $HERALD_PG_BIN, /usr/lib/postgresql/<version>/bin or PATH: install Debian's postgresql \
     package (.ci/run does)";

/// Whether the PostgreSQL server binaries were found (see [`Postgres::start`]).
pub fn postgres_available() -> bool {
    find_bin_dir().is_some()
}

/// The server's bin dir: `$HERALD_PG_BIN` if set, else Debian's
/// `/usr/lib/postgresql/<highest version>/bin` (Debian keeps `initdb` and
/// `pg_ctl` off PATH), else wherever PATH has `initdb`.
fn find_bin_dir() -> Option<PathBuf> {
    let complete = |dir: &Path| TOOLS.iter().all(|tool| is_executable(&dir.join(tool)));
    if let Some(dir) = std::env::var_os("HERALD_PG_BIN") {
        // Set explicitly: no fallback, so a wrong value is noticed.
        let dir = PathBuf::from(dir);
        return complete(&dir).then_some(dir);
    }
    let debian = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            // Versions are "15", "16", or "9.6" for old ones: compare as numbers.
            let name = entry.file_name().to_string_lossy().into_owned();
            let version: Vec<u32> = name
                .split('.')
                .map(|p| p.parse().ok())
                .collect::<Option<_>>()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| complete(bin))
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, bin)| bin);
    debian.or_else(|| {
        let dir = find_in_path("initdb")?.parent()?.to_path_buf();
        complete(&dir).then_some(dir)
    })
}

/// A PostgreSQL server for one test, stopped and deleted on drop.
///
/// Connect with [`url`](Self::url): role `herald`, database `herald`, no
/// password (trust auth on loopback).
pub struct Postgres {
    /// `postgres://herald@127.0.0.1:PORT/herald`.
    pub url: String,
    /// The TCP port on 127.0.0.1.
    pub port: u16,
    bin: PathBuf,
    /// PostgreSQL refuses to run as root, so as root every server-side tool
    /// runs as the `postgres` user.
    as_postgres: bool,
    /// Whether a server may be running: `pg_ctl start` was called and no
    /// `pg_ctl stop` since.
    running: bool,
    _reaper: Reaper,
    /// Holds `data/` (the cluster), `postgres.log` and the Unix socket.
    dir: TempDir,
}

impl Postgres {
    /// Creates a cluster in a new temp dir and starts it on a free port;
    /// returns once it accepts connections and database `herald` exists.
    ///
    /// Takes under a second. Fails if the binaries are missing (see
    /// [`postgres_available`]) or the server does not come up in 60 s; the
    /// error then ends with the tail of the server log.
    pub fn start() -> Result<Postgres> {
        let bin = find_bin_dir().ok_or_else(|| anyhow!(MISSING))?;
        let as_postgres = is_root();
        // Under /tmp (world-traversable), not $TMPDIR, which could sit below a
        // directory the postgres user cannot enter (/root).
        let dir = tempfile::Builder::new()
            .prefix("herald-pg-")
            .tempdir_in("/tmp")
            .context("creating the PostgreSQL temp dir")?;
        // tempfile makes it 0700; the postgres user must get in.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))?;
        if as_postgres {
            run(
                Command::new("chown").arg("postgres:").arg(dir.path()),
                "chown to the postgres user (does the postgres user exist?)",
            )?;
        }
        let reaper = Reaper::spawn(&format!(
            "{} -D {} -m immediate stop; rm -rf {}",
            pg_ctl_for_sh(&bin, as_postgres),
            sh_quote(&dir.path().join("data").to_string_lossy()),
            sh_quote(&dir.path().to_string_lossy()),
        ))?;
        let mut pg = Postgres {
            url: String::new(),
            port: 0,
            bin,
            as_postgres,
            running: false,
            _reaper: reaper,
            dir,
        };

        run(
            pg.tool("initdb")
                .arg("-D")
                .arg(pg.data_dir())
                .args(["-A", "trust", "-U", "herald", "--no-sync", "-E", "UTF8"])
                // C locale: initdb otherwise takes it from the environment,
                // which may name a locale the machine does not have.
                .arg("--locale=C"),
            "initdb",
        )?;

        // A free port can be taken before the server binds it (tests start
        // servers in parallel): retry with another one.
        let mut attempts = 0;
        loop {
            attempts += 1;
            pg.set_port(free_port());
            let log_len = fs::metadata(pg.log_path()).map(|m| m.len()).unwrap_or(0);
            match pg.launch() {
                Ok(()) => break,
                Err(_) if attempts < 3 && pg.log_since(log_len).contains("already in use") => {
                    pg.stop();
                }
                Err(e) => return Err(e),
            }
        }

        run(
            pg.tool("createdb")
                .args(["-h", "127.0.0.1", "-p", &pg.port.to_string()])
                .args(["-U", "herald", "herald"]),
            "createdb herald",
        )?;
        Ok(pg)
    }

    /// Stops the server at once (`pg_ctl stop -m immediate`: no checkpoint,
    /// like a crash; committed transactions survive and are recovered on the
    /// next start). Does nothing if it is not running.
    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        self.running = false;
        // Best effort: the server may already be gone.
        let _ = self
            .tool("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }

    /// Stops the server, then starts it again on the same data dir and port:
    /// for tests that take the database away under load. Returns once it
    /// accepts connections again.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.launch()
    }

    /// `pg_ctl start`, then waits until `pg_isready` says the server accepts
    /// connections (`pg_ctl -w` already waits; this also checks TCP).
    fn launch(&mut self) -> Result<()> {
        let options = format!(
            // fsync=off only because this is a throwaway test database: it
            // makes commits much faster, and a test never survives a power loss.
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        self.running = true;
        run(
            self.tool("pg_ctl")
                .arg("-D")
                .arg(self.data_dir())
                .arg("-l")
                .arg(self.log_path())
                .args(["-w", "-t", &START_TIMEOUT.as_secs().to_string()])
                .args(["-o", &options, "start"]),
            "pg_ctl start",
        )
        .map_err(|e| self.with_log(e))?;

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let ready = self
                .tool("pg_isready")
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .args(["-U", "herald", "-d", "postgres"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.with_log(anyhow!(
                    "PostgreSQL on port {} not ready after {:?}",
                    self.port,
                    START_TIMEOUT
                )));
            }
            sleep(Duration::from_millis(100));
        }
    }

    fn set_port(&mut self, port: u16) {
        self.port = port;
        self.url = format!("postgres://herald@127.0.0.1:{port}/herald");
    }

    /// A server tool. As root it runs through `runuser` as the postgres user;
    /// the working dir is the temp dir, because the postgres user may not be
    /// allowed into ours.
    fn tool(&self, name: &str) -> Command {
        let path = self.bin.join(name);
        let mut cmd = if self.as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(path);
            cmd
        } else {
            Command::new(path)
        };
        cmd.current_dir(self.dir.path());
        cmd
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// What the server logged after the log had `len` bytes.
    fn log_since(&self, len: u64) -> String {
        let bytes = fs::read(self.log_path()).unwrap_or_default();
        let start = (len as usize).min(bytes.len());
        String::from_utf8_lossy(&bytes[start..]).into_owned()
    }

    fn with_log(&self, e: anyhow::Error) -> anyhow::Error {
        anyhow!(
            "{e:#}\n--- tail of {} ---\n{}",
            self.log_path().display(),
            log_tail(&self.log_path(), 30)
        )
    }
}

/// `pg_ctl` as a shell command, for the reaper.
fn pg_ctl_for_sh(bin: &Path, as_postgres: bool) -> String {
    let pg_ctl = sh_quote(&bin.join("pg_ctl").to_string_lossy());
    if as_postgres {
        format!("runuser -u postgres -- {pg_ctl}")
    } else {
        pg_ctl
    }
}

impl Drop for Postgres {
    /// Stops the server (`-m immediate`); the temp dir is removed after.
    fn drop(&mut self) {
        self.stop();
    }
}
