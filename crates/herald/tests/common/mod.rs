//! Test harness: runs the real `herald` binary on an ephemeral port with a
//! temporary data directory, and builds rdkafka clients against it.
#![allow(dead_code)]

pub mod cluster;
pub mod http;
pub mod java;
pub mod kafka_wire;
pub mod secure;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::BaseConsumer;
use rdkafka::producer::FutureProducer;

pub struct BrokerProcess {
    child: Option<Child>,
    pub addr: String,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    extra_args: Vec<String>,
    env: Vec<(String, String)>,
    /// Every line the broker wrote to stderr, across restarts.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl BrokerProcess {
    /// Starts a broker with a fresh data directory.
    pub fn start(extra_args: &[&str]) -> BrokerProcess {
        Self::start_with_env(extra_args, &[], "127.0.0.1:0")
    }

    /// Starts a broker with extra environment variables on `listen`.
    pub fn start_with_env(
        extra_args: &[&str],
        env: &[(String, String)],
        listen: &str,
    ) -> BrokerProcess {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let mut b = BrokerProcess {
            child: None,
            addr: String::new(),
            data_dir: dir,
            _tmp: Some(tmp),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            env: env.to_vec(),
            log: Default::default(),
        };
        b.spawn(listen);
        b
    }

    fn spawn(&mut self, listen: &str) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
        cmd.arg("serve");
        // With --listeners the test names every listener itself; `addr` is then the first.
        if !self.extra_args.iter().any(|a| a == "--listeners") {
            cmd.arg("--listen").arg(listen);
        }
        // The HTTP server on a free port (the default 9644 is one per machine).
        if !self.extra_args.iter().any(|a| a == "--http-listen") {
            cmd.arg("--http-listen").arg("127.0.0.1:0");
        }
        let mut child = cmd
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.extra_args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env(
                "RUST_LOG",
                std::env::var("HERALD_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn herald");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = self.log.clone();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var("HERALD_TEST_ECHO").is_ok() {
                    eprintln!("[herald] {line}");
                }
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(line.clone());
                if !sent && let Some(i) = line.find("listen=") {
                    let addr: String = line[i + 7..]
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_string();
                    let _ = tx.send(addr);
                    sent = true;
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("herald did not report its address");
        self.addr = addr;
        self.child = Some(child);
    }

    /// The HTTP server's `host:port` (console, /metrics, /api), as the broker
    /// printed it at its latest start.
    pub fn http_addr(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let found = self
                .log
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .rev()
                .find_map(|l| {
                    let at = l.find("http listening on http://")?;
                    let rest = &l[at + "http listening on http://".len()..];
                    Some(rest.split_whitespace().next().unwrap_or("").to_string())
                });
            if let Some(addr) = found {
                return addr;
            }
            assert!(
                Instant::now() < deadline,
                "herald did not report its HTTP address"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process with SIGKILL (no clean shutdown).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops with SIGTERM and waits for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe_sigterm(c.id());
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
            panic!("herald did not stop within 20 s of SIGTERM");
        }
    }

    /// Starts again on the same address and data directory.
    pub fn restart(&mut self) {
        let addr = self.addr.clone();
        // The port may linger briefly after a kill; retry the bind.
        for _ in 0..50 {
            let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.spawn(&addr)))
                .is_ok();
            if ok {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("could not restart herald on {addr}");
    }

    /// How many of the broker's log lines so far contain every one of `needles`.
    pub fn log_count(&self, needles: &[&str]) -> usize {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .count()
    }

    /// Waits (up to 10 s) for a log line containing every one of `needles`;
    /// returns it.
    pub fn wait_log(&self, needles: &[&str]) -> Option<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(l) = self
                .log
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .find(|l| needles.iter().all(|n| l.contains(n)))
            {
                return Some(l.clone());
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The broker's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The broker's resident set size in KiB (VmRSS from /proc).
    pub fn rss_kib(&self) -> u64 {
        self.proc_status_kib("VmRSS:")
    }

    /// The broker's peak resident set size so far in KiB (VmHWM).
    pub fn rss_peak_kib(&self) -> u64 {
        self.proc_status_kib("VmHWM:")
    }

    fn proc_status_kib(&self, field: &str) -> u64 {
        let pid = self.pid().expect("broker running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.addr);
        c
    }

    pub fn producer(&self, extra: &[(&str, &str)]) -> FutureProducer {
        let mut c = self.client_config();
        for (k, v) in extra {
            c.set(*k, *v);
        }
        c.create().expect("producer")
    }

    pub fn consumer(&self, extra: &[(&str, &str)]) -> BaseConsumer {
        let mut c = self.client_config();
        c.set("group.id", "herald-test-unused")
            .set("enable.auto.commit", "false");
        for (k, v) in extra {
            c.set(*k, *v);
        }
        c.create().expect("consumer")
    }

    pub fn admin(&self) -> AdminClient<DefaultClientContext> {
        self.client_config().create().expect("admin")
    }

    /// Produces `n` records (`v0`, `v1`, ...) to partition 0 of `topic`, each
    /// acknowledged before the next.
    pub async fn produce_to_partition_0(&self, topic: &str, n: usize) {
        use rdkafka::producer::FutureRecord;
        let p = self.producer(&[]);
        for i in 0..n {
            let v = format!("v{i}");
            p.send(
                FutureRecord::<str, str>::to(topic).partition(0).payload(&v),
                Duration::from_secs(10),
            )
            .await
            .expect("delivered");
        }
    }

    /// Commits `offset` for partition 0 of `topic` as `group` (a synchronous
    /// OffsetCommit from a consumer that never joins).
    pub fn commit_partition_0(&self, group: &str, topic: &str, offset: i64) {
        use rdkafka::TopicPartitionList;
        use rdkafka::consumer::{CommitMode, Consumer};
        let c = self.consumer(&[("group.id", group)]);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, rdkafka::Offset::Offset(offset))
            .expect("partition list");
        c.commit(&tpl, CommitMode::Sync).expect("commit");
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn unsafe_sigterm(pid: u32) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
}

/// Creates a topic through the admin API and waits for it.
pub async fn create_topic(b: &BrokerProcess, name: &str, partitions: i32) {
    use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
    let admin = b.admin();
    let res = admin
        .create_topics(
            &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .expect("create_topics");
    for r in res {
        r.expect("topic created");
    }
}
