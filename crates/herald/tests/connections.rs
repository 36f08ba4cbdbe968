//! Connections as a hostile or careless client uses them: idle and
//! half-sent connections, a client that pipelines fetches and never reads
//! the answers, thousands of connections opened and closed, the listen
//! backlog, and the rate limit on WARN lines. Each runs a real broker
//! process and reads its memory from /proc.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A broker process whose log lines are kept for the test to search.
struct Broker {
    child: Child,
    addr: String,
    log: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Broker {
    fn start(args: &[&str]) -> Broker {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn herald");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = log.clone();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent && let Some(i) = line.find("listen=") {
                    let addr = line[i + 7..].split_whitespace().next().unwrap_or("");
                    let _ = tx.send(addr.to_string());
                    sent = true;
                }
                lines.lock().unwrap().push(line);
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("herald did not report its address");
        Broker {
            child,
            addr,
            log,
            _dir: dir,
        }
    }

    /// Resident memory of the broker process, in KiB.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("broker /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("VmRSS")
    }

    fn log_lines(&self, needle: &str) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .cloned()
            .collect()
    }

    fn wait_log(&self, needle: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if !self.log_lines(needle).is_empty() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn port(&self) -> u16 {
        self.addr.rsplit(':').next().unwrap().parse().unwrap()
    }

    fn assert_healthy(&mut self) {
        assert!(self.child.try_wait().unwrap().is_none(), "broker died");
        let mut s = connect(&self.addr);
        s.write_all(&api_versions(1)).unwrap();
        let (corr, _) = read_frame(&mut s).expect("ApiVersions answered");
        assert_eq!(corr, 1);
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

fn string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as i16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn framed(body: Vec<u8>) -> Vec<u8> {
    let mut out = (body.len() as i32).to_be_bytes().to_vec();
    out.extend(body);
    out
}

/// ApiVersions v0 (no body).
fn api_versions(correlation_id: i32) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&18i16.to_be_bytes());
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&correlation_id.to_be_bytes());
    string(&mut b, "conn-test");
    framed(b)
}

/// Fetch v4 of partition 0 from `offset`, waiting up to `wait_ms` for data.
fn fetch(correlation_id: i32, topic: &str, max_bytes: i32, offset: i64, wait_ms: i32) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&1i16.to_be_bytes());
    b.extend_from_slice(&4i16.to_be_bytes());
    b.extend_from_slice(&correlation_id.to_be_bytes());
    string(&mut b, "conn-test");
    b.extend_from_slice(&(-1i32).to_be_bytes()); // replica id
    b.extend_from_slice(&wait_ms.to_be_bytes());
    b.extend_from_slice(&1i32.to_be_bytes()); // min bytes
    b.extend_from_slice(&max_bytes.to_be_bytes());
    b.push(0); // isolation level
    b.extend_from_slice(&1i32.to_be_bytes());
    string(&mut b, topic);
    b.extend_from_slice(&1i32.to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // partition
    b.extend_from_slice(&offset.to_be_bytes());
    b.extend_from_slice(&max_bytes.to_be_bytes());
    framed(b)
}

/// One response: (correlation id, size in bytes); None once the broker closed.
fn read_frame(s: &mut TcpStream) -> Option<(i32, usize)> {
    let mut size = [0u8; 4];
    s.read_exact(&mut size).ok()?;
    let size = i32::from_be_bytes(size) as usize;
    let mut corr = [0u8; 4];
    s.read_exact(&mut corr).ok()?;
    std::io::copy(&mut (&mut *s).take(size as u64 - 4), &mut std::io::sink()).ok()?;
    Some((i32::from_be_bytes(corr), size))
}

/// Whether the broker closed `s` within `within` (reads EOF or a reset).
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut b = [0u8; 64];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn idle_and_half_sent_connections_are_closed_after_connections_max_idle_ms() {
    let mut b = Broker::start(&["--connections-max-idle-ms", "600"]);
    let started = Instant::now();
    let mut silent = connect(&b.addr);
    // A slowloris: half a frame header, then nothing.
    let mut half = connect(&b.addr);
    half.write_all(&[0, 0]).unwrap();
    // Half a request body.
    let mut partial = connect(&b.addr);
    partial.write_all(&api_versions(7)[..9]).unwrap();
    // A client that keeps talking stays connected.
    let mut busy = connect(&b.addr);
    for i in 0..10 {
        busy.write_all(&api_versions(i)).unwrap();
        assert_eq!(read_frame(&mut busy).map(|r| r.0), Some(i));
        std::thread::sleep(Duration::from_millis(150));
    }
    assert!(closed_within(&mut silent, Duration::from_secs(5)));
    assert!(closed_within(&mut half, Duration::from_secs(5)));
    assert!(closed_within(&mut partial, Duration::from_secs(5)));
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "closed before the idle time"
    );
    // The busy one talked for 1.5 s, longer than the idle time, and is open.
    busy.write_all(&api_versions(99)).unwrap();
    assert_eq!(read_frame(&mut busy).map(|r| r.0), Some(99));
    b.assert_healthy();
}

#[test]
fn a_long_poll_is_not_idle() {
    let b = Broker::start(&["--connections-max-idle-ms", "300"]);
    produce_bytes(&b, "poll", 1, 1);
    let mut s = connect(&b.addr);
    // Fetch from the end with a 1.5 s wait: no data comes, the answer is empty.
    s.write_all(&fetch(5, "poll", 1024, 1, 1500)).unwrap();
    let t = Instant::now();
    assert_eq!(read_frame(&mut s).map(|r| r.0), Some(5));
    assert!(
        t.elapsed() >= Duration::from_millis(1000),
        "the poll waited"
    );
}

/// Produces `count` records of `record_bytes` to partition 0 of `topic`.
fn produce_bytes(b: &Broker, topic: &str, count: usize, record_bytes: usize) {
    use rdkafka::ClientConfig;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &b.addr)
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .create()
        .expect("producer");
    let value = vec![b'x'; record_bytes];
    for _ in 0..count {
        loop {
            match p.send(
                BaseRecord::<(), [u8]>::to(topic)
                    .partition(0)
                    .payload(&value),
            ) {
                Ok(()) => break,
                Err((_, _)) => {
                    p.poll(Duration::from_millis(10));
                }
            }
        }
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(60)).expect("flush");
}

#[test]
fn a_client_that_never_reads_its_fetches_is_paused_not_buffered() {
    // 8 MiB in one partition; 2 000 pipelined fetches of up to 16 MiB each
    // would be 16 GiB of answers if the broker buffered them.
    let mut b = Broker::start(&["--connection-queued-response-bytes-max", "4194304"]);
    produce_bytes(&b, "big", 8 * 1024, 1024);
    let before = b.rss_kib();
    let mut s = connect(&b.addr);
    s.set_nonblocking(true).unwrap();
    let requests: Vec<u8> = (0..2000)
        .flat_map(|c| fetch(c, "big", 16 << 20, 0, 0))
        .collect();
    // Write what the broker takes; it stops reading once answers pile up.
    let mut written = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while written < requests.len() && Instant::now() < deadline {
        match s.write(&requests[written..]) {
            Ok(n) => written += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("write: {e}"),
        }
    }
    assert!(
        b.wait_log(
            "client is not reading its responses",
            Duration::from_secs(10)
        ),
        "the broker says why it stopped reading"
    );
    std::thread::sleep(Duration::from_secs(1));
    let peak = b.rss_kib();
    eprintln!("RSS before {before} KiB, while paused {peak} KiB");
    assert!(
        peak < before + 256 * 1024,
        "memory grew from {before} to {peak} KiB"
    );
    // Others are served meanwhile.
    b.assert_healthy();
    // Once the client reads, every answer it sent for comes, in order.
    s.set_nonblocking(false).unwrap();
    let whole_requests = requests_sent(&requests, written);
    let mut expected = 0;
    // Read a few hundred answers (8 MiB each), then stop: the order is what matters.
    while expected < whole_requests.min(200) {
        let (corr, size) = read_frame(&mut s).expect("answer");
        assert_eq!(corr, expected, "answers come in request order");
        assert!(size > 8 * 1024 * 1024, "each fetch answer carries the data");
        expected += 1;
    }
    drop(s);
    b.assert_healthy();
}

/// How many whole requests the first `written` bytes of `stream` hold.
fn requests_sent(stream: &[u8], written: usize) -> i32 {
    let mut at = 0;
    let mut n = 0;
    while at + 4 <= written {
        let size = i32::from_be_bytes(stream[at..at + 4].try_into().unwrap()) as usize;
        if at + 4 + size > written {
            break;
        }
        at += 4 + size;
        n += 1;
    }
    n
}

/// Opens `n` connections, each asking ApiVersions, and keeps them.
fn open_many(addr: &str, n: usize) -> Vec<TcpStream> {
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = connect(addr);
        s.write_all(&api_versions(i as i32)).unwrap();
        conns.push(s);
    }
    for s in &mut conns {
        read_frame(s).expect("answered");
    }
    conns
}

#[test]
fn memory_comes_back_after_thousands_of_connections_close() {
    let b = Broker::start(&[]);
    let idle = b.rss_kib();
    let mut peaks = Vec::new();
    let mut after = Vec::new();
    for _ in 0..3 {
        let conns = open_many(&b.addr, 2500);
        std::thread::sleep(Duration::from_millis(300));
        peaks.push(b.rss_kib());
        drop(conns);
        // The broker trims its allocator a second after a burst of closes.
        let deadline = Instant::now() + Duration::from_secs(10);
        let back = idle + (peaks[peaks.len() - 1] - idle) / 2;
        while b.rss_kib() > back && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        after.push(b.rss_kib());
        // Trims are at most every 5 s: let the next round get one too.
        std::thread::sleep(Duration::from_secs(4));
    }
    eprintln!("RSS idle {idle} KiB; with 2500 connections {peaks:?}; after closing {after:?}");
    let per_connection = (peaks[0].saturating_sub(idle)) * 1024 / 2500;
    eprintln!("about {per_connection} bytes per open connection");
    assert!(
        per_connection < 48 * 1024,
        "{per_connection} bytes per idle connection"
    );
    for (peak, after) in peaks.iter().zip(&after) {
        assert!(
            *after <= idle + (peak - idle) / 2,
            "memory did not come back: idle {idle} KiB, peak {peak}, after closing {after}"
        );
    }
    // Rounds of the same load do not pile up memory.
    assert!(
        peaks[2] < peaks[0] + 16 * 1024,
        "peak grew over rounds: {peaks:?}"
    );
}

#[test]
fn the_listen_backlog_is_a_setting() {
    let b = Broker::start(&["--socket-listen-backlog-size", "37"]);
    let out = Command::new("ss")
        .args(["-ltnH", &format!("sport = :{}", b.port())])
        .output();
    let Ok(out) = out else {
        eprintln!("skipped: `ss` (iproute2) is not installed");
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    // LISTEN  0  37  127.0.0.1:PORT  0.0.0.0:*   (Send-Q is the backlog)
    let send_q: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    assert_eq!(send_q, vec!["37"], "ss said: {text}");
}

#[test]
fn warnings_for_bad_frames_are_rate_limited() {
    let mut b = Broker::start(&[]);
    for _ in 0..300 {
        let mut s = connect(&b.addr);
        s.write_all(&(-5i32).to_be_bytes()).unwrap();
        assert!(closed_within(&mut s, Duration::from_secs(5)));
    }
    b.assert_healthy();
    let lines = b.log_lines("closing connection: bad frame");
    assert!(!lines.is_empty(), "the first bad frames are logged");
    assert!(
        lines.len() <= 20,
        "{} WARN lines for 300 bad frames",
        lines.len()
    );
    // After the window the next line says how many were skipped.
    std::thread::sleep(Duration::from_secs(10));
    let mut s = connect(&b.addr);
    s.write_all(&(-5i32).to_be_bytes()).unwrap();
    assert!(closed_within(&mut s, Duration::from_secs(5)));
    assert!(b.wait_log("suppressed=280", Duration::from_secs(5)));
}
