//! The console's JSON API against an in-process broker and real clients
//! (rdkafka produces and consumes; HTTP requests are written over a
//! TcpStream, as a browser would send them).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use herald_broker::config::BrokerConfig;
use herald_broker::server::{self, RunningBroker};

struct Env {
    broker: RunningBroker,
    http: SocketAddr,
    _http: herald_console::RunningHttp,
    _dir: tempfile::TempDir,
}

impl Env {
    async fn start() -> Env {
        Self::start_with(|_| {}).await
    }

    async fn start_with(configure: impl FnOnce(&mut BrokerConfig)) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let mut config = BrokerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..Default::default()
        };
        configure(&mut config);
        config.data_dir = dir.path().to_path_buf();
        let broker = server::start(config).await.unwrap();
        let http = herald_console::start(broker.broker.clone(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        Env {
            http: http.addr,
            _http: http,
            broker,
            _dir: dir,
        }
    }

    fn bootstrap(&self) -> String {
        self.broker.addr.to_string()
    }

    fn producer(&self) -> FutureProducer {
        ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .set("partitioner", "murmur2_random")
            .create()
            .unwrap()
    }

    async fn anonymous(&self) -> Http {
        let mut h = Http {
            addr: self.http,
            cookie: None,
            csrf: None,
        };
        let (status, headers, body) = h.raw("GET", "/api/session", None, &[]).await;
        assert_eq!(status, 200, "{body}");
        h.cookie = cookie_of(&headers);
        let v: Value = serde_json::from_str(&body).unwrap();
        h.csrf = v["csrf"].as_str().map(str::to_string);
        h
    }
}

fn cookie_of(headers: &[(String, String)]) -> Option<String> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .and_then(|(_, v)| v.split(';').next())
        .map(str::to_string)
}

/// A browser session: its cookie and CSRF token.
struct Http {
    addr: SocketAddr,
    cookie: Option<String>,
    csrf: Option<String>,
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = body.windows(2).position(|w| w == b"\r\n") {
        let size_line = std::str::from_utf8(&body[..nl]).unwrap_or("0");
        let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("0").trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = nl + 2;
        out.extend_from_slice(&body[start..(start + size).min(body.len())]);
        body = &body[(start + size + 2).min(body.len())..];
    }
    out
}

impl Http {
    async fn request_head(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        extra: &[(&str, &str)],
    ) -> TcpStream {
        let mut s = TcpStream::connect(self.addr).await.unwrap();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        if let Some(c) = &self.cookie {
            req.push_str(&format!("Cookie: {c}\r\n"));
        }
        let mut has_csrf = false;
        for (k, v) in extra {
            has_csrf |= k.eq_ignore_ascii_case("x-herald-csrf");
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if !has_csrf
            && method != "GET"
            && let Some(t) = &self.csrf
        {
            req.push_str(&format!("X-Herald-CSRF: {t}\r\n"));
        }
        let body = body.unwrap_or("");
        if !body.is_empty() {
            req.push_str("Content-Type: application/json\r\n");
        }
        req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        s.write_all(req.as_bytes()).await.unwrap();
        s
    }

    async fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        extra: &[(&str, &str)],
    ) -> (u16, Vec<(String, String)>, String) {
        let mut s = self.request_head(method, path, body, extra).await;
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut buf))
            .await
            .expect("HTTP answer in time")
            .unwrap();
        let split = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&buf[..split]).to_string();
        let mut lines = head.lines();
        let status: u16 = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let chunked = headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
        let raw_body = &buf[split + 4..];
        let body = if chunked {
            dechunk(raw_body)
        } else {
            raw_body.to_vec()
        };
        (status, headers, String::from_utf8_lossy(&body).to_string())
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let b = body.map(|b| b.to_string());
        let (status, _, text) = self.raw(method, path, b.as_deref(), &[]).await;
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, v)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, None).await
    }

    async fn ok(&self, path: &str) -> Value {
        let (s, v) = self.get(path).await;
        assert_eq!(s, 200, "{path}: {v}");
        v
    }

    async fn login(addr: SocketAddr, user: &str, password: &str) -> Http {
        let h = Http {
            addr,
            cookie: None,
            csrf: None,
        };
        let body = json!({"username": user, "password": password}).to_string();
        let (status, headers, text) = h.raw("POST", "/api/login", Some(&body), &[]).await;
        assert_eq!(status, 200, "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        Http {
            addr,
            cookie: cookie_of(&headers),
            csrf: v["csrf"].as_str().map(str::to_string),
        }
    }
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn create_topic(h: &Http, name: &str, partitions: i32) {
    let (s, v) = h
        .call(
            "POST",
            "/api/topics",
            Some(json!({"name": name, "partitions": partitions})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
}

async fn send(p: &FutureProducer, topic: &str, partition: i32, key: &str, value: &str, ts: i64) {
    p.send(
        FutureRecord::to(topic)
            .partition(partition)
            .key(key)
            .payload(value)
            .timestamp(ts),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
}

fn keys(page: &Value) -> Vec<String> {
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["key"].as_str().unwrap().to_string())
        .collect()
}

fn order_keys(range: std::ops::Range<i64>) -> Vec<String> {
    range.map(|i| format!("order-{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn topics_create_list_describe_alter_delete_and_csrf() {
    let env = Env::start().await;
    let h = env.anonymous().await;
    let (s, v) = h
        .call(
            "POST",
            "/api/topics",
            Some(
                json!({"name": "orders", "partitions": 3, "configs": {"retention.ms": "3600000"}}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["name"], "orders");
    assert!(v["id"].as_str().unwrap().len() >= 32);
    // A real client sees it.
    let bootstrap = env.bootstrap();
    let parts = tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .create()
            .unwrap();
        let md = c
            .fetch_metadata(Some("orders"), Duration::from_secs(10))
            .unwrap();
        md.topics()[0].partitions().len()
    })
    .await
    .unwrap();
    assert_eq!(parts, 3);
    let (s, v) = h
        .call(
            "POST",
            "/api/topics",
            Some(json!({"name": "orders", "partitions": 1})),
        )
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (409, Some("TOPIC_ALREADY_EXISTS"))
    );
    let (s, v) = h
        .call(
            "POST",
            "/api/topics",
            Some(json!({"name": "bad name!", "partitions": 1})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    // A malformed body is a JSON error too.
    for body in ["{not json", r#"{"partitions": 1}"#, r#"{"name": 5}"#] {
        let (s, _, text) = h.raw("POST", "/api/topics", Some(body), &[]).await;
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert_eq!(
            (s, v["error"].as_str()),
            (400, Some("BAD_REQUEST")),
            "{body}: {text}"
        );
    }

    let p = env.producer();
    for i in 0..4 {
        send(
            &p,
            "orders",
            i % 3,
            &format!("k{i}"),
            "v",
            1_700_000_000_000 + i as i64,
        )
        .await;
    }
    let list = h.ok("/api/topics").await;
    let row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "orders")
        .unwrap();
    assert_eq!(row["partitions"], 3);
    assert_eq!(row["records"], 4);
    assert_eq!(row["dead_letter"], false);
    assert!(row["size_bytes"].as_i64().unwrap() > 0);

    let d = h.ok("/api/topics/orders").await;
    let hws: Vec<i64> = d["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["high_watermark"].as_i64().unwrap())
        .collect();
    assert_eq!(hws, vec![2, 1, 1]);
    let config = |d: &Value, name: &str| {
        d["configs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
    };
    let r = config(&d, "retention.ms").unwrap();
    assert_eq!(r["value"], "3600000");
    assert_eq!(r["source"], "DYNAMIC_TOPIC_CONFIG");

    let (s, v) = h
        .call(
            "PATCH",
            "/api/topics/orders/configs",
            Some(json!({"set": {"cleanup.policy": "compact"}, "delete": ["retention.ms"]})),
        )
        .await;
    assert_eq!(s, 204, "{v}");
    let d = h.ok("/api/topics/orders").await;
    assert_eq!(config(&d, "cleanup.policy").unwrap()["value"], "compact");
    assert_ne!(
        config(&d, "retention.ms").unwrap()["source"],
        "DYNAMIC_TOPIC_CONFIG"
    );
    let (s, v) = h
        .call(
            "PATCH",
            "/api/topics/orders/configs",
            Some(json!({"set": {"no.such.config": "1"}})),
        )
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (400, Some("INVALID_CONFIG")),
        "{v}"
    );

    // CSRF: a mutating call without the token, with a wrong one, or from
    // another origin is refused.
    let (s, _, body) = h
        .raw(
            "DELETE",
            "/api/topics/orders",
            None,
            &[("X-Herald-CSRF", "wrong")],
        )
        .await;
    assert_eq!(s, 403, "{body}");
    assert!(body.contains("CSRF"));
    let bare = Http {
        addr: env.http,
        cookie: h.cookie.clone(),
        csrf: None,
    };
    let (s, _, body) = bare
        .raw(
            "POST",
            "/api/topics",
            Some(r#"{"name":"x","partitions":1}"#),
            &[],
        )
        .await;
    assert_eq!(s, 403, "{body}");
    let csrf = h.csrf.clone().unwrap();
    let (s, _, _) = bare
        .raw(
            "DELETE",
            "/api/topics/orders",
            None,
            &[("X-Herald-CSRF", &csrf), ("Origin", "http://evil.example")],
        )
        .await;
    assert_eq!(s, 403);
    assert_eq!(h.ok("/api/topics/orders").await["name"], "orders");

    let (s, v) = h.call("DELETE", "/api/topics/orders", None).await;
    assert_eq!(s, 204, "{v}");
    let (s, v) = h.get("/api/topics/orders").await;
    assert_eq!(s, 404, "{v}");
    let list = h.ok("/api/topics").await;
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|t| t["name"] != "orders")
    );
}

/// 30 records over 3 partitions: record i is in partition i % 3 with
/// timestamp BASE + i, key `order-i`, value `{"n": i, "total": 10 i}`.
const BASE_TS: i64 = 1_700_000_000_000;

async fn thirty_orders(env: &Env, h: &Http) {
    create_topic(h, "orders", 3).await;
    let p = env.producer();
    for i in 0..30i64 {
        let value = json!({"n": i, "total": i * 10, "eventType": if i % 2 == 0 { "OrderPlaced" } else { "OrderPaid" }});
        send(
            &p,
            "orders",
            (i % 3) as i32,
            &format!("order-{i}"),
            &value.to_string(),
            BASE_TS + i,
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn browse_seeks_pages_both_ways_and_filters() {
    let env = Env::start().await;
    let h = env.anonymous().await;
    thirty_orders(&env, &h).await;
    let m = "/api/topics/orders/messages";

    // Oldest, forward, three pages and the end.
    let p1 = h.ok(&format!("{m}?limit=10")).await;
    assert_eq!(keys(&p1), order_keys(0..10));
    assert!(p1["prev_cursor"].is_null());
    assert_eq!(p1["budget_exhausted"], false);
    let first = &p1["messages"][0];
    assert_eq!(first["partition"], 0);
    assert_eq!(first["offset"], 0);
    assert_eq!(first["timestamp"], BASE_TS);
    assert_eq!(first["event_type"], "OrderPlaced");
    assert_eq!(
        serde_json::from_str::<Value>(first["value"].as_str().unwrap()).unwrap()["n"],
        0
    );
    assert!(first["value_b64"].is_string());
    let c = p1["next_cursor"].as_str().unwrap();
    let p2 = h.ok(&format!("{m}?limit=10&cursor={c}")).await;
    assert_eq!(keys(&p2), order_keys(10..20));
    let c = p2["next_cursor"].as_str().unwrap();
    let p3 = h.ok(&format!("{m}?limit=10&cursor={c}")).await;
    assert_eq!(keys(&p3), order_keys(20..30));
    assert!(p3["next_cursor"].is_null(), "{}", p3["next_cursor"]);
    // And back.
    let c = p3["prev_cursor"].as_str().unwrap();
    let back = h.ok(&format!("{m}?limit=10&cursor={c}")).await;
    assert_eq!(keys(&back), order_keys(10..20));
    let c = back["prev_cursor"].as_str().unwrap();
    let back = h.ok(&format!("{m}?limit=10&cursor={c}")).await;
    assert_eq!(keys(&back), order_keys(0..10));
    assert!(back["prev_cursor"].is_null());
    let c = back["next_cursor"].as_str().unwrap();
    assert_eq!(
        keys(&h.ok(&format!("{m}?limit=10&cursor={c}")).await),
        order_keys(10..20)
    );

    // Newest, then older pages.
    let n1 = h.ok(&format!("{m}?seek=newest&limit=10")).await;
    assert_eq!(keys(&n1), order_keys(20..30));
    assert!(n1["next_cursor"].is_null());
    let c = n1["prev_cursor"].as_str().unwrap();
    let n2 = h.ok(&format!("{m}?limit=10&cursor={c}")).await;
    assert_eq!(keys(&n2), order_keys(10..20));
    let c = n2["next_cursor"].as_str().unwrap();
    assert_eq!(
        keys(&h.ok(&format!("{m}?limit=10&cursor={c}")).await),
        order_keys(20..30)
    );
    let n7 = h.ok(&format!("{m}?seek=newest&limit=7")).await;
    assert_eq!(keys(&n7), order_keys(23..30));

    // By offset: each partition from offset 5, so records 15..29.
    let o = h.ok(&format!("{m}?seek=offset&offset=5&limit=100")).await;
    assert_eq!(keys(&o), order_keys(15..30));
    let o = h
        .ok(&format!(
            "{m}?seek=offset&offset=5&limit=100&direction=backward"
        ))
        .await;
    assert_eq!(keys(&o), order_keys(0..15));
    // By timestamp: the first offset at or after it in each partition.
    let t = h
        .ok(&format!(
            "{m}?seek=timestamp&timestamp={}&limit=100",
            BASE_TS + 10
        ))
        .await;
    assert_eq!(keys(&t), order_keys(10..30));
    let t = h
        .ok(&format!(
            "{m}?seek=timestamp&timestamp={}&limit=100",
            BASE_TS + 1000
        ))
        .await;
    assert!(keys(&t).is_empty());

    // Chosen partitions.
    let one = h.ok(&format!("{m}?partitions=1&limit=100")).await;
    let got = keys(&one);
    assert_eq!(got.len(), 10);
    assert_eq!(
        got,
        (0..10)
            .map(|o| format!("order-{}", 3 * o + 1))
            .collect::<Vec<_>>()
    );
    let (s, _) = h.get(&format!("{m}?partitions=7")).await;
    assert_eq!(s, 404);

    // Filters.
    let f = h
        .ok(&format!(
            "{m}?limit=100&filter={}",
            enc(r#"key == "order-7""#)
        ))
        .await;
    assert_eq!(keys(&f), vec!["order-7"]);
    assert_eq!(f["scanned"], 30);
    let f = h
        .ok(&format!(
            "{m}?limit=100&filter={}",
            enc("value.total > 100")
        ))
        .await;
    assert_eq!(keys(&f), order_keys(11..30));
    let f = h
        .ok(&format!(
            "{m}?limit=100&filter={}",
            enc(r#"eventType == "OrderPaid" && value.n < 10"#)
        ))
        .await;
    assert_eq!(
        keys(&f),
        vec!["order-1", "order-3", "order-5", "order-7", "order-9"]
    );
    // Filtered paging: 19 matches, pages of 5.
    let mut all = Vec::new();
    let mut url = format!("{m}?limit=5&filter={}", enc("value.total > 100"));
    loop {
        let page = h.ok(&url).await;
        all.extend(keys(&page));
        match page["next_cursor"].as_str() {
            Some(c) => url = format!("{m}?limit=5&filter={}&cursor={c}", enc("value.total > 100")),
            None => break,
        }
    }
    assert_eq!(all, order_keys(11..30));
    let (s, v) = h.get(&format!("{m}?filter={}", enc("value.total >"))).await;
    assert_eq!(s, 400);
    assert_eq!(v["error"], "FILTER");
    assert!(v["message"].as_str().unwrap().contains("column 14"), "{v}");
    let (s, _) = h.get(&format!("{m}?cursor=garbage!")).await;
    assert_eq!(s, 400);
    // Hostile or wrong parameters: 400, never a long scan.
    let long = format!("key == \"{}\"", "a".repeat(2000));
    let (s, v) = h.get(&format!("{m}?filter={}", enc(&long))).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("FILTER")), "{v}");
    let deep = format!("{}key == 1{}", "(".repeat(100), ")".repeat(100));
    let (s, v) = h.get(&format!("{m}?filter={}", enc(&deep))).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("FILTER")), "{v}");
    for bad in [
        "partitions=abc",
        "seek=sideways",
        "seek=offset",
        "seek=timestamp",
        "seek=timestamp&timestamp=-5",
        "direction=up",
        "limit=-1",
    ] {
        let (s, v) = h.get(&format!("{m}?{bad}")).await;
        assert_eq!(s, 400, "{bad}: {v}");
        assert_eq!(v["error"], "BAD_REQUEST", "{bad}: {v}");
    }
    // A limit past 500 is cut to 500; an offset below the log start starts there.
    let big = h.ok(&format!("{m}?limit=100000")).await;
    assert_eq!(keys(&big), order_keys(0..30));
    let neg = h.ok(&format!("{m}?seek=offset&offset=-5&limit=3")).await;
    assert_eq!(keys(&neg), order_keys(0..3));
    let (s, _) = h.get("/api/topics/nope/messages").await;
    assert_eq!(s, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tail_sends_every_record_of_a_burst() {
    let env = Env::start().await;
    let h = env.anonymous().await;
    thirty_orders(&env, &h).await;
    let mut s = h
        .request_head("GET", "/api/topics/orders/tail", None, &[])
        .await;
    // Wait for the answer's head: the tail has chosen its start offsets.
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 200"));
    let p = env.producer();
    for i in 0..5 {
        send(
            &p,
            "orders",
            i % 3,
            &format!("burst-{i}"),
            "{}",
            BASE_TS + 100 + i as i64,
        )
        .await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let count = |b: &[u8]| String::from_utf8_lossy(b).matches("event: record").count();
    while count(&seen) < 5 && Instant::now() < deadline {
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await {
            assert!(n > 0, "tail closed");
            seen.extend_from_slice(&buf[..n]);
        }
    }
    let text = String::from_utf8_lossy(&seen).to_string();
    assert_eq!(count(&seen), 5, "{text}");
    for i in 0..5 {
        assert!(text.contains(&format!("\"key\":\"burst-{i}\"")), "{text}");
    }
    // None of the 30 older records.
    assert!(!text.contains("order-"));
    drop(s);

    // A filtered tail gets only matches.
    let mut s = h
        .request_head(
            "GET",
            &format!(
                "/api/topics/orders/tail?filter={}",
                enc(r#"key endsWith "-x""#)
            ),
            None,
            &[],
        )
        .await;
    let mut seen = Vec::new();
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0);
        seen.extend_from_slice(&buf[..n]);
    }
    send(&p, "orders", 0, "skip-me", "{}", BASE_TS).await;
    send(&p, "orders", 1, "take-x", "{}", BASE_TS).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while count(&seen) < 1 && Instant::now() < deadline {
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await {
            seen.extend_from_slice(&buf[..n]);
        }
    }
    let text = String::from_utf8_lossy(&seen).to_string();
    assert!(text.contains("take-x"), "{text}");
    assert!(!text.contains("skip-me"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn produce_form_partitions_as_kafka_and_reads_back() {
    let env = Env::start().await;
    let h = env.anonymous().await;
    create_topic(&h, "orders", 5).await;
    let (s, v) = h
        .call(
            "POST",
            "/api/topics/orders/messages",
            Some(json!({"key": "order-42", "value": "{\"total\": 5}", "headers": [{"key": "eventType", "value": "OrderPlaced"}, {"key": "empty", "value": null}]})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let partition = v["partition"].as_i64().unwrap();
    let offset = v["offset"].as_i64().unwrap();
    assert_eq!(offset, 0);
    // librdkafka's murmur2 partitioner (Java's default) picks the same partition.
    let p = env.producer();
    let delivered = p
        .send(
            FutureRecord::to("orders").key("order-42").payload("x"),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(partition, delivered.partition as i64);
    let page = h
        .ok(&format!(
            "/api/topics/orders/messages?partitions={partition}&seek=offset&offset=0&limit=1"
        ))
        .await;
    let msg = &page["messages"][0];
    assert_eq!(msg["key"], "order-42");
    assert_eq!(msg["value"], "{\"total\": 5}");
    assert_eq!(msg["event_type"], "OrderPlaced");
    assert_eq!(msg["headers"][0]["key"], "eventType");
    assert_eq!(msg["headers"][0]["value"], "OrderPlaced");
    assert_eq!(msg["headers"][1]["key"], "empty");
    assert!(msg["headers"][1]["value"].is_null());
    // Read back by a real consumer too.
    let bootstrap = env.bootstrap();
    let (key, value) = tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", "readback")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("orders", partition as i32, Offset::Offset(0))
            .unwrap();
        c.assign(&tpl).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            assert!(Instant::now() < deadline);
            if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
                let h = m.headers().unwrap();
                assert_eq!(h.get(0).key, "eventType");
                return (
                    String::from_utf8(m.key().unwrap().to_vec()).unwrap(),
                    String::from_utf8(m.payload().unwrap().to_vec()).unwrap(),
                );
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(
        (key.as_str(), value.as_str()),
        ("order-42", "{\"total\": 5}")
    );
    // Without a key, given a partition.
    let (s, v) = h
        .call(
            "POST",
            "/api/topics/orders/messages",
            Some(json!({"partition": 3, "key": null, "value": "x"})),
        )
        .await;
    assert_eq!((s, v["partition"].as_i64()), (201, Some(3)));
    let (s, _) = h
        .call(
            "POST",
            "/api/topics/orders/messages",
            Some(json!({"partition": 9, "value": "x"})),
        )
        .await;
    assert_eq!(s, 404);
    // Round robin without a key touches several partitions.
    let mut parts = std::collections::BTreeSet::new();
    for _ in 0..5 {
        let (s, v) = h
            .call(
                "POST",
                "/api/topics/orders/messages",
                Some(json!({"value": "rr"})),
            )
            .await;
        assert_eq!(s, 201);
        parts.insert(v["partition"].as_i64().unwrap());
    }
    assert_eq!(parts.len(), 5);
}

fn commit(bootstrap: &str, group: &str, topic: &str, offsets: &[(i32, i64)]) {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for (p, o) in offsets {
        tpl.add_partition_offset(topic, *p, Offset::Offset(*o))
            .unwrap();
    }
    c.commit(&tpl, CommitMode::Sync).unwrap();
}

fn committed_rows(g: &Value) -> Vec<(i64, i64, i64, i64)> {
    g["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["partition"].as_i64().unwrap(),
                o["committed"].as_i64().unwrap(),
                o["high_watermark"].as_i64().unwrap(),
                o["lag"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn groups_lag_dry_run_and_real_reset_and_non_empty_refusal() {
    let env = Env::start().await;
    let h = env.anonymous().await;
    thirty_orders(&env, &h).await;
    let bootstrap = env.bootstrap();
    let b = bootstrap.clone();
    tokio::task::spawn_blocking(move || commit(&b, "billing", "orders", &[(0, 3), (1, 7)]))
        .await
        .unwrap();
    let g = h.ok("/api/groups/billing").await;
    assert_eq!(committed_rows(&g), vec![(0, 3, 10, 7), (1, 7, 10, 3)]);
    assert_eq!(g["lag"], 10);
    assert!(g["members"].as_array().unwrap().is_empty());
    let list = h.ok("/api/groups").await;
    let row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group_id"] == "billing")
        .unwrap()
        .clone();
    assert_eq!(row["lag"], 10);
    assert_eq!(row["topics"], json!(["orders"]));
    assert_eq!(row["members"], 0);

    // The dry run shows the plan and changes nothing.
    let (s, v) = h
        .call(
            "POST",
            "/api/groups/billing/reset",
            Some(json!({"topic": "orders", "to": "earliest", "dry_run": true})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["dry_run"], true);
    let plan: Vec<(i64, Value, i64, i64)> = v["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["partition"].as_i64().unwrap(),
                o["current"].clone(),
                o["new"].as_i64().unwrap(),
                o["lag_after"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        plan,
        vec![
            (0, json!(3), 0, 10),
            (1, json!(7), 0, 10),
            (2, Value::Null, 0, 10)
        ]
    );
    assert_eq!(
        committed_rows(&h.ok("/api/groups/billing").await),
        vec![(0, 3, 10, 7), (1, 7, 10, 3)]
    );
    // By timestamp: record i is at BASE + i, so BASE + 12 is offset 4 in
    // every partition (records 12, 13, 14).
    let (s, v) = h
        .call(
            "POST",
            "/api/groups/billing/reset",
            Some(json!({"topic": "orders", "to": "timestamp", "timestamp": BASE_TS + 12, "dry_run": true})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let news: Vec<i64> = v["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["new"].as_i64().unwrap())
        .collect();
    assert_eq!(news, vec![4, 4, 4]);
    // By offset, clamped to [log start, high watermark].
    let (_, v) = h
        .call(
            "POST",
            "/api/groups/billing/reset",
            Some(json!({"to": "offset", "offset": 99})),
        )
        .await;
    assert_eq!(
        v["dry_run"], true,
        "a reset is a preview unless dry_run is false"
    );
    let news: Vec<i64> = v["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["new"].as_i64().unwrap())
        .collect();
    assert_eq!(news, vec![10, 10]);

    // The real one moves the group.
    let (s, v) = h
        .call(
            "POST",
            "/api/groups/billing/reset",
            Some(json!({"topic": "orders", "to": "earliest", "dry_run": false})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["dry_run"], false);
    let g = h.ok("/api/groups/billing").await;
    assert_eq!(
        committed_rows(&g),
        vec![(0, 0, 10, 10), (1, 0, 10, 10), (2, 0, 10, 10)]
    );
    assert_eq!(g["lag"], 30);
    let (s, v) = h
        .call(
            "POST",
            "/api/groups/billing/reset",
            Some(json!({"to": "latest", "dry_run": false})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(h.ok("/api/groups/billing").await["lag"], 0);
    // The same committed offsets through a real client.
    let b = bootstrap.clone();
    let seen = tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &b)
            .set("group.id", "billing")
            .create()
            .unwrap();
        let mut q = TopicPartitionList::new();
        for p in 0..3 {
            q.add_partition("orders", p);
        }
        let got = c.committed_offsets(q, Duration::from_secs(10)).unwrap();
        (0..3)
            .map(|p| got.find_partition("orders", p).unwrap().offset())
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    assert_eq!(seen, vec![Offset::Offset(10); 3]);

    // A group with a live member: 409, and nothing moves.
    let b = bootstrap.clone();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let member = std::thread::spawn(move || {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &b)
            .set("group.id", "live")
            .set("client.id", "live-consumer")
            .set("auto.offset.reset", "earliest")
            .create()
            .unwrap();
        c.subscribe(&["orders"]).unwrap();
        let mut ready = false;
        while stop_rx.try_recv().is_err() {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(100))
                && !ready
            {
                c.commit_message(&m, CommitMode::Sync).unwrap();
                ready_tx.send(()).unwrap();
                ready = true;
            }
        }
    });
    tokio::task::spawn_blocking(move || ready_rx.recv_timeout(Duration::from_secs(30)).unwrap())
        .await
        .unwrap();
    let g = h.ok("/api/groups/live").await;
    assert_eq!(g["state"], "Stable");
    let members = g["members"].as_array().unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0]["client_id"], "live-consumer");
    assert_eq!(members[0]["assignment"][0]["topic"], "orders");
    assert_eq!(members[0]["assignment"][0]["partitions"], json!([0, 1, 2]));
    let before = committed_rows(&g);
    let (s, v) = h
        .call(
            "POST",
            "/api/groups/live/reset",
            Some(json!({"topic": "orders", "to": "latest", "dry_run": false})),
        )
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (409, Some("NON_EMPTY_GROUP")),
        "{v}"
    );
    assert_eq!(committed_rows(&h.ok("/api/groups/live").await), before);
    let (s, _) = h.call("DELETE", "/api/groups/live", None).await;
    assert_eq!(s, 409);
    stop_tx.send(()).unwrap();
    member.join().unwrap();

    let (s, v) = h.call("DELETE", "/api/groups/billing", None).await;
    assert_eq!(s, 204, "{v}");
    let (s, _) = h.get("/api/groups/billing").await;
    assert_eq!(s, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dead_letters_list_and_replay() {
    let env = Env::start().await;
    let h = env.anonymous().await;
    create_topic(&h, "payments", 2).await;
    create_topic(&h, "payments.dlq", 1).await;
    let p = env.producer();
    for i in 0..3 {
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "herald.original.topic",
                value: Some("payments"),
            })
            .insert(Header {
                key: "herald.error",
                value: Some("card declined"),
            })
            .insert(Header {
                key: "herald.attempts",
                value: Some("3"),
            })
            .insert(Header {
                key: "trace",
                value: Some("t-1"),
            });
        p.send(
            FutureRecord::to("payments.dlq")
                .key(&format!("pay-{i}"))
                .payload(&format!("{{\"n\":{i}}}"))
                .headers(headers),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    }
    let list = h.ok("/api/dead-letters").await;
    assert_eq!(
        list,
        json!([{"topic": "payments.dlq", "source_topic": "payments", "records": 3, "replayed": 0}])
    );
    let topics = h.ok("/api/topics").await;
    assert!(
        topics
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "payments.dlq" && t["dead_letter"] == true)
    );
    // The DLQ page shows the SDK's headers.
    let page = h.ok("/api/topics/payments.dlq/messages").await;
    assert_eq!(page["messages"][0]["headers"][1]["key"], "herald.error");
    assert_eq!(page["messages"][0]["headers"][1]["value"], "card declined");

    let (s, v) = h
        .call("POST", "/api/dead-letters/payments.dlq/replay", None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["replayed"], 3);
    let back = h.ok("/api/topics/payments/messages?limit=100").await;
    let mut got: Vec<String> = back["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let hs = m["headers"].as_array().unwrap();
            assert_eq!(hs.len(), 1, "routing headers stripped: {m}");
            assert_eq!(hs[0]["key"], "trace");
            m["key"].as_str().unwrap().to_string()
        })
        .collect();
    got.sort();
    assert_eq!(got, vec!["pay-0", "pay-1", "pay-2"]);
    let list = h.ok("/api/dead-letters").await;
    assert_eq!(list[0]["replayed"], 3);
    // Progress is the SDK's group: a second replay moves nothing.
    let (_, v) = h
        .call("POST", "/api/dead-letters/payments.dlq/replay", None)
        .await;
    assert_eq!(v["replayed"], 0);
    let g = h
        .ok(&format!(
            "/api/groups/{}",
            enc("herald-dlq-replay.payments")
        ))
        .await;
    assert_eq!(committed_rows(&g), vec![(0, 3, 3, 0)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_sasl_and_acls_a_user_sees_only_what_it_may_describe() {
    use herald_security::acl::{AclBinding, Operation, PatternType, Permission, ResourceType};
    use herald_security::scram::{ScramCredential, ScramMechanism};
    use herald_security::store::Change;
    let env = Env::start_with(|c| {
        c.listeners = vec![herald_broker::listener::ListenerConfig {
            name: "SASL_PLAINTEXT".into(),
            protocol: herald_broker::listener::SecurityProtocol::SaslPlaintext,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            advertised: None,
        }];
        c.security.authorizer = true;
        c.security.super_users = vec!["User:admin".into()];
    })
    .await;
    let broker: Arc<herald_broker::Broker> = env.broker.broker.clone();
    let cred = |pw: &str| {
        ScramCredential::from_password(
            ScramMechanism::Sha512,
            pw.as_bytes(),
            b"salt-salt-salt",
            4096,
        )
    };
    let allow = |resource_type, name: &str, operation| AclBinding {
        resource_type,
        resource_name: name.into(),
        pattern_type: PatternType::Literal,
        principal: "User:alice".into(),
        host: "*".into(),
        operation,
        permission: Permission::Allow,
    };
    broker
        .security
        .apply(vec![
            Change::UpsertCredential {
                user: "admin".into(),
                credential: cred("admin-pw"),
            },
            Change::UpsertCredential {
                user: "alice".into(),
                credential: cred("alice-pw"),
            },
            Change::CreateAcls(vec![
                allow(ResourceType::Topic, "visible", Operation::Describe),
                allow(ResourceType::Topic, "visible", Operation::Read),
            ]),
        ])
        .await
        .unwrap();
    // No session: 401.
    let nobody = Http {
        addr: env.http,
        cookie: None,
        csrf: None,
    };
    let (s, _) = nobody.get("/api/topics").await;
    assert_eq!(s, 401);
    let (s, _, _) = nobody
        .raw(
            "POST",
            "/api/login",
            Some(r#"{"username":"alice","password":"wrong"}"#),
            &[],
        )
        .await;
    assert_eq!(s, 401);

    let admin = Http::login(env.http, "admin", "admin-pw").await;
    create_topic(&admin, "visible", 1).await;
    create_topic(&admin, "secret", 1).await;
    for t in ["visible", "secret"] {
        let (s, v) = admin
            .call(
                "POST",
                &format!("/api/topics/{t}/messages"),
                Some(json!({"key": "k", "value": "v"})),
            )
            .await;
        assert_eq!(s, 201, "{v}");
    }
    let alice = Http::login(env.http, "alice", "alice-pw").await;
    let names: Vec<String> = alice
        .ok("/api/topics")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, vec!["visible"]);
    let page = alice.ok("/api/topics/visible/messages").await;
    assert_eq!(keys(&page), vec!["k"]);
    for path in [
        "/api/topics/secret",
        "/api/topics/secret/messages",
        "/api/topics/secret/tail",
    ] {
        let (s, v) = alice.get(path).await;
        assert_eq!(s, 403, "{path}: {v}");
        assert_eq!(v["error"], "TOPIC_AUTHORIZATION_FAILED");
    }
    // Alice may read but not write or delete.
    let (s, v) = alice
        .call(
            "POST",
            "/api/topics/visible/messages",
            Some(json!({"value": "x"})),
        )
        .await;
    assert_eq!(s, 403, "{v}");
    let (s, _) = alice.call("DELETE", "/api/topics/visible", None).await;
    assert_eq!(s, 403);
    let (s, _) = alice
        .call(
            "POST",
            "/api/topics",
            Some(json!({"name": "mine", "partitions": 1})),
        )
        .await;
    assert_eq!(s, 403);
    assert!(
        alice
            .ok("/api/dead-letters")
            .await
            .as_array()
            .unwrap()
            .is_empty()
    );
    // The admin sees both (and Kafka's internal topics, flagged).
    let all = admin.ok("/api/topics").await;
    let user: Vec<_> = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["internal"] == false)
        .collect();
    assert_eq!(user.len(), 2, "{all}");
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "__consumer_offsets" && t["internal"] == true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn browse_decodes_every_compression_and_seeks_inside_a_batch() {
    let env = Env::start().await;
    let h = env.anonymous().await;
    create_topic(&h, "packed", 1).await;
    let mut n = 0i64;
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        let p: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", env.bootstrap())
            .set("compression.codec", codec)
            .set("linger.ms", "100")
            .create()
            .unwrap();
        // Records sent together make one compressed batch.
        let sends: Vec<_> = (0..50)
            .map(|_| {
                let key = format!("order-{n}");
                let value = format!("{{\"codec\":\"{codec}\",\"n\":{n}}}");
                n += 1;
                let p = p.clone();
                async move {
                    p.send(
                        FutureRecord::to("packed")
                            .partition(0)
                            .key(&key)
                            .payload(&value)
                            .timestamp(BASE_TS + n),
                        Duration::from_secs(10),
                    )
                    .await
                    .unwrap()
                }
            })
            .collect();
        futures_util::future::join_all(sends).await;
    }
    let m = "/api/topics/packed/messages";
    let all = h.ok(&format!("{m}?limit=500")).await;
    assert_eq!(keys(&all), order_keys(0..200));
    let zstd = &all["messages"][170];
    assert!(zstd["value"].as_str().unwrap().contains("zstd"), "{zstd}");
    // Into the middle of a compressed batch, both ways.
    let o = h.ok(&format!("{m}?seek=offset&offset=7&limit=4")).await;
    assert_eq!(keys(&o), order_keys(7..11));
    let c = o["prev_cursor"].as_str().unwrap();
    assert_eq!(
        keys(&h.ok(&format!("{m}?limit=4&cursor={c}")).await),
        order_keys(3..7)
    );
    let newest = h.ok(&format!("{m}?seek=newest&limit=3")).await;
    assert_eq!(keys(&newest), order_keys(197..200));
    let c = newest["prev_cursor"].as_str().unwrap();
    assert_eq!(
        keys(&h.ok(&format!("{m}?limit=6&cursor={c}")).await),
        order_keys(191..197)
    );
    // Backward through everything in pages of 7: the reads start inside
    // compressed batches, and no record comes twice or goes missing.
    let mut seen: Vec<String> = keys(&newest);
    let mut cursor = newest["prev_cursor"].as_str().map(str::to_string);
    while let Some(c) = cursor {
        let page = h.ok(&format!("{m}?limit=7&cursor={c}")).await;
        let mut k = keys(&page);
        k.extend(seen);
        seen = k;
        cursor = page["prev_cursor"].as_str().map(str::to_string);
    }
    assert_eq!(seen, order_keys(0..200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_scan_stops_at_its_budget_and_its_cursor_continues() {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let env = Env::start().await;
    let h = env.anonymous().await;
    create_topic(&h, "many", 1).await;
    let bootstrap = env.bootstrap();
    const COUNT: usize = 100_050;
    tokio::task::spawn_blocking(move || {
        let p: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("linger.ms", "20")
            .set("batch.num.messages", "10000")
            .set("queue.buffering.max.messages", "200000")
            .create()
            .unwrap();
        for i in 0..COUNT {
            let v = i.to_string();
            p.send(BaseRecord::<(), str>::to("many").partition(0).payload(&v))
                .unwrap();
            if i % 10_000 == 0 {
                p.poll(Duration::ZERO);
            }
        }
        p.flush(Duration::from_secs(60)).unwrap();
    })
    .await
    .unwrap();
    let filter = enc(r#"key == "absent""#);
    let m = "/api/topics/many/messages";
    let first = h.ok(&format!("{m}?limit=10&filter={filter}")).await;
    assert_eq!(first["budget_exhausted"], true, "{}", first["scanned"]);
    assert!(first["messages"].as_array().unwrap().is_empty());
    let scanned = first["scanned"].as_u64().unwrap() as usize;
    // The record bound, or the 5 s bound on a slow machine.
    assert!(scanned > 0 && scanned <= 100_000, "{scanned}");
    let mut total = scanned;
    let mut cursor = first["next_cursor"].as_str().unwrap().to_string();
    loop {
        let page = h
            .ok(&format!("{m}?limit=10&filter={filter}&cursor={cursor}"))
            .await;
        total += page["scanned"].as_u64().unwrap() as usize;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => {
                assert_eq!(page["budget_exhausted"], false);
                break;
            }
        }
    }
    // Every record passed over exactly once across the pages.
    assert_eq!(total, COUNT);
}

/// Opens a tail and returns the stream once the answer's head arrived, with the status.
async fn open_tail(h: &Http, topic: &str) -> (u16, TcpStream) {
    let mut s = h
        .request_head("GET", &format!("/api/topics/{topic}/tail"), None, &[])
        .await;
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        seen.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&seen).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tails_are_bounded_and_end_when_the_browser_goes_away() {
    let env = Env::start().await;
    let h = env.anonymous().await;
    create_topic(&h, "orders", 1).await;
    let mut open = Vec::new();
    for _ in 0..herald_console::api::messages::TAILS_MAX {
        let (status, s) = open_tail(&h, "orders").await;
        assert_eq!(status, 200);
        open.push(s);
    }
    let (status, _) = open_tail(&h, "orders").await;
    assert_eq!(status, 429);
    // Closing the connections drops the streams, their Fetches and permits.
    drop(open);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, s) = open_tail(&h, "orders").await;
        if status == 200 {
            drop(s);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "tails still held after their browsers left"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kip_848_group_is_described_and_protected_from_resets() {
    let env = Env::start().await;
    let h = env.anonymous().await;
    thirty_orders(&env, &h).await;
    let b = env.bootstrap();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let member = std::thread::spawn(move || {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &b)
            .set("group.id", "new-protocol")
            .set("group.protocol", "consumer")
            .set("client.id", "kip848-consumer")
            .set("auto.offset.reset", "earliest")
            .create()
            .unwrap();
        c.subscribe(&["orders"]).unwrap();
        let mut ready = false;
        while stop_rx.try_recv().is_err() {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(100))
                && !ready
            {
                c.commit_message(&m, CommitMode::Sync).unwrap();
                ready_tx.send(()).unwrap();
                ready = true;
            }
        }
    });
    tokio::task::spawn_blocking(move || ready_rx.recv_timeout(Duration::from_secs(30)).unwrap())
        .await
        .unwrap();
    let g = h.ok("/api/groups/new-protocol").await;
    assert_eq!(g["type"], "consumer", "{g}");
    let members = g["members"].as_array().unwrap();
    assert_eq!(members.len(), 1, "{g}");
    assert_eq!(members[0]["client_id"], "kip848-consumer");
    assert_eq!(members[0]["assignment"][0]["topic"], "orders");
    assert!(!g["offsets"].as_array().unwrap().is_empty());
    let list = h.ok("/api/groups").await;
    let row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group_id"] == "new-protocol")
        .unwrap()
        .clone();
    assert_eq!(
        (row["type"].as_str(), row["members"].as_i64()),
        (Some("consumer"), Some(1))
    );
    let (s, v) = h
        .call(
            "POST",
            "/api/groups/new-protocol/reset",
            Some(json!({"topic": "orders", "to": "earliest", "dry_run": false})),
        )
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (409, Some("NON_EMPTY_GROUP")),
        "{v}"
    );
    stop_tx.send(()).unwrap();
    member.join().unwrap();
}

/// 70 partitions of 1 000 records of 1 KB (70 MB: more than a scan's
/// 64 MiB if every partition fetched 1 MiB for its head), produced in
/// batches of `batch_bytes`.
async fn wide_topic(env: &Env, h: &Http, topic: &'static str, batch_bytes: &'static str) {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    create_topic(h, topic, 70).await;
    let bootstrap = env.bootstrap();
    tokio::task::spawn_blocking(move || {
        let p: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("linger.ms", "20")
            .set("batch.size", batch_bytes)
            .set("queue.buffering.max.messages", "200000")
            .set("queue.buffering.max.kbytes", "1048576")
            .create()
            .unwrap();
        let value = "x".repeat(1000);
        for part in 0..70 {
            for _ in 0..1000 {
                p.send(
                    BaseRecord::<(), str>::to(topic)
                        .partition(part)
                        .payload(&value),
                )
                .unwrap();
            }
            p.poll(Duration::ZERO);
        }
        p.flush(Duration::from_secs(60)).unwrap();
    })
    .await
    .unwrap();
}

fn positions(page: &Value) -> Vec<(i64, i64)> {
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["partition"].as_i64().unwrap(),
                m["offset"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_full_partitions_do_not_spend_the_byte_budget_on_one_page() {
    let env = Env::start().await;
    let h = env.anonymous().await;
    // Java's default batch size: the partitions share 16 MiB of fetches.
    wide_topic(&env, &h, "wide", "16384").await;
    for seek in ["oldest", "newest"] {
        let page = h
            .ok(&format!("/api/topics/wide/messages?seek={seek}&limit=50"))
            .await;
        assert_eq!(
            page["budget_exhausted"], false,
            "{seek}: scanned {}",
            page["scanned"]
        );
        assert_eq!(page["messages"].as_array().unwrap().len(), 50, "{seek}");
    }
    // librdkafka's default, 1 MB batches: the heads alone pass the budget;
    // the page still shows what was fetched, and the next one goes on.
    wide_topic(&env, &h, "wide-batches", "1000000").await;
    let m = "/api/topics/wide-batches/messages";
    let p1 = h.ok(&format!("{m}?limit=50")).await;
    let first = positions(&p1);
    assert_eq!(first.len(), 50, "scanned {}", p1["scanned"]);
    let c = p1["next_cursor"].as_str().unwrap();
    let p2 = h.ok(&format!("{m}?limit=50&cursor={c}")).await;
    let second = positions(&p2);
    assert_eq!(second.len(), 50);
    assert!(second.iter().all(|p| !first.contains(p)), "no record twice");
}
