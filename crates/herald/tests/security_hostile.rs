//! Hostile and unauthenticated clients against SASL and TLS listeners: each
//! is refused with bounded memory while authenticated clients keep being
//! served. Also KIP-368 re-authentication on a live producer.

mod common;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::kafka_wire::{closed, connect, frame, plain_login, read_response};
use common::secure::SecureBroker;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ProduceRequest, SaslHandshakeRequest, SaslHandshakeResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::producer::{FutureProducer, FutureRecord};

/// A producer that keeps sending as alice until stopped; counts acks and failures.
fn background_producer(
    b: &SecureBroker,
    stop: Arc<AtomicBool>,
) -> (
    std::thread::JoinHandle<()>,
    Arc<AtomicUsize>,
    Arc<AtomicUsize>,
) {
    let mut c = b.sasl_ssl_config("alice", "alice-pw", "SCRAM-SHA-512");
    c.set("message.timeout.ms", "10000");
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let (o, f) = (ok.clone(), failed.clone());
    let t = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let p: FutureProducer = c.create().unwrap();
            while !stop.load(Ordering::Relaxed) {
                match p
                    .send(
                        FutureRecord::<(), _>::to("orders.bg").payload("x"),
                        Duration::from_secs(10),
                    )
                    .await
                {
                    Ok(_) => o.fetch_add(1, Ordering::Relaxed),
                    Err(_) => f.fetch_add(1, Ordering::Relaxed),
                };
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
    });
    (t, ok, failed)
}

fn setup(b: &SecureBroker) {
    b.create_user("alice", "alice-pw", "SCRAM-SHA-512");
    b.admin_cli(&[
        "acl",
        "create",
        "--principal",
        "User:alice",
        "--operation",
        "read,write,create",
        "--topic",
        "orders.",
        "--prefixed",
    ]);
}

#[test]
fn ten_thousand_failed_logins_are_refused_while_clients_are_served() {
    let b = SecureBroker::start(&[]);
    setup(&b);
    let stop = Arc::new(AtomicBool::new(false));
    let (producer, ok, failed) = background_producer(&b, stop.clone());
    std::thread::sleep(Duration::from_secs(2));
    let rss_before = b.rss_kib();
    let refused = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..100)
        .map(|t| {
            let addr = b.sasl_plaintext.clone();
            let refused = refused.clone();
            std::thread::spawn(move || {
                for i in 0..100 {
                    // Half of them an unknown user, half a known one.
                    let user = if (t + i) % 2 == 0 { "alice" } else { "mallory" };
                    if plain_login(&addr, user, "guess") == Some(58) {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let rss_after = b.rss_kib();
    stop.store(true, Ordering::Relaxed);
    producer.join().unwrap();
    assert_eq!(
        refused.load(Ordering::Relaxed),
        10_000,
        "every failed login gets SASL_AUTHENTICATION_FAILED (58)"
    );
    assert!(
        ok.load(Ordering::Relaxed) > 10,
        "the authenticated producer stalled"
    );
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    assert!(
        rss_after < rss_before + 64 * 1024,
        "memory grew from {rss_before} to {rss_after} KiB"
    );
    // Logged, but rate-limited: far fewer lines than failures.
    let lines = b.log_count("authentication failed");
    assert!(
        (1..1000).contains(&lines),
        "{lines} log lines for 10000 failures"
    );
    // And the right password still works on the same listener, with
    // SaslAuthenticate and with v0's bare tokens alike.
    assert_eq!(plain_login(&b.sasl_plaintext, "alice", "alice-pw"), Some(0));
    assert!(common::kafka_wire::plain_login_v0(
        &b.sasl_plaintext,
        "alice",
        "alice-pw"
    ));
    assert!(!common::kafka_wire::plain_login_v0(
        &b.sasl_plaintext,
        "alice",
        "guess"
    ));
}

#[test]
fn half_open_tls_handshakes_time_out_and_do_not_block_others() {
    let b = SecureBroker::start(&["--authentication-timeout-ms", "2000"]);
    setup(&b);
    let rss_before = b.rss_kib();
    // 300 connections that start a TLS handshake and never finish it.
    let mut half_open: Vec<_> = (0..300)
        .map(|_| {
            let mut s = connect(&b.sasl_ssl);
            // The first bytes of a TLS record header: a ClientHello that never comes.
            let _ = s.write_all(&[0x16, 0x03, 0x01]);
            s
        })
        .collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = b.sasl_ssl_config("alice", "alice-pw", "SCRAM-SHA-512");
    rt.block_on(async {
        let p: FutureProducer = c.create().unwrap();
        p.send(
            FutureRecord::<(), _>::to("orders.ho").payload("x"),
            Duration::from_secs(10),
        )
        .await
        .expect("served while 300 handshakes hang");
    });
    // A SASL connection that never authenticates is closed too.
    let mut idle = connect(&b.sasl_plaintext);
    assert!(
        closed(&mut idle),
        "an unauthenticated SASL connection stayed open"
    );
    let started = Instant::now();
    for s in &mut half_open {
        assert!(closed(s), "a half-open handshake was not closed");
    }
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(b.rss_kib() < rss_before + 64 * 1024);
    assert!(b.wait_log("TLS handshake failed", 1));
}

#[test]
fn a_huge_sasl_token_and_requests_before_authentication_are_refused() {
    let b = SecureBroker::start(&[]);
    setup(&b);
    let rss_before = b.rss_kib();
    // Handshake v1, then a SaslAuthenticate frame announcing 100 MiB.
    for _ in 0..20 {
        let mut s = connect(&b.sasl_plaintext);
        let mut hs = SaslHandshakeRequest::default();
        hs.mechanism = StrBytes::from_static_str("SCRAM-SHA-512");
        s.write_all(&frame(ApiKey::SaslHandshake, 1, 1, &hs))
            .unwrap();
        let r: SaslHandshakeResponse = read_response(&mut s, ApiKey::SaslHandshake, 1).unwrap();
        assert_eq!(r.error_code, 0);
        let _ = s.write_all(&(100 * 1024 * 1024i32).to_be_bytes());
        let _ = s.write_all(&[0u8; 64 * 1024]);
        assert!(closed(&mut s), "a 100 MiB SASL token was not refused");
    }
    // Handshake v0 (raw tokens), then a 100 MiB raw token.
    let mut s = connect(&b.sasl_plaintext);
    let mut hs = SaslHandshakeRequest::default();
    hs.mechanism = StrBytes::from_static_str("PLAIN");
    s.write_all(&frame(ApiKey::SaslHandshake, 0, 1, &hs))
        .unwrap();
    let _: SaslHandshakeResponse = read_response(&mut s, ApiKey::SaslHandshake, 0).unwrap();
    let _ = s.write_all(&(100 * 1024 * 1024i32).to_be_bytes());
    assert!(closed(&mut s));
    assert!(
        b.rss_kib() < rss_before + 32 * 1024,
        "frames were allocated"
    );

    // Produce before authenticating: the connection is closed, nothing is written.
    let mut s = connect(&b.sasl_plaintext);
    let mut pd = PartitionProduceData::default();
    pd.index = 0;
    pd.records = Some(bytes::Bytes::from_static(&[0u8; 70]));
    let mut td = TopicProduceData::default();
    td.name = TopicName(StrBytes::from_static_str("orders.preauth"));
    td.partition_data = vec![pd];
    let mut req = ProduceRequest::default();
    req.acks = -1;
    req.timeout_ms = 1000;
    req.topic_data = vec![td];
    s.write_all(&frame(ApiKey::Produce, 9, 7, &req)).unwrap();
    assert!(closed(&mut s), "Produce before authentication was served");
    let topics = b.admin_cli(&["topic", "list"]);
    assert!(!topics.contains("orders.preauth"), "{topics}");
    // The same on a SASL_SSL listener's plaintext-speaking client is a TLS
    // failure (kcat test); and an authenticated client is unaffected.
    assert_eq!(plain_login(&b.sasl_plaintext, "alice", "alice-pw"), Some(0));
}

#[test]
fn reauthentication_keeps_a_producer_going_and_ends_when_the_user_goes() {
    let b = SecureBroker::start(&["--connections-max-reauth-ms", "2000"]);
    setup(&b);
    let stop = Arc::new(AtomicBool::new(false));
    let (producer, ok, failed) = background_producer(&b, stop.clone());
    std::thread::sleep(Duration::from_secs(10));
    let acked = ok.load(Ordering::Relaxed);
    assert!(acked > 100, "only {acked} acknowledged in 10 s");
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "messages lost across re-authentication"
    );
    let auths = b.log_count(" authenticated ");
    assert!(
        auths >= 5,
        "expected the first login and >= 4 re-authentications, saw {auths}"
    );
    // Deleting the user ends the session at its next re-authentication.
    b.admin_cli(&["user", "delete", "alice"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while failed.load(Ordering::Relaxed) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    producer.join().unwrap();
    assert!(
        failed.load(Ordering::Relaxed) > 0,
        "a deleted user kept producing"
    );
}

#[test]
fn connections_per_ip_are_bounded() {
    let b = SecureBroker::start(&["--max-connections-per-ip", "5"]);
    // Five idle connections hold this address's allowance...
    let held: Vec<_> = (0..5).map(|_| connect(&b.sasl_plaintext)).collect();
    std::thread::sleep(Duration::from_millis(300));
    // ...so a sixth is closed at once (any listener: the bound is per address).
    let mut sixth = connect(&b.plaintext);
    assert!(closed(&mut sixth), "a sixth connection was kept");
    assert!(b.wait_log("too many from this address", 1));
    // Closing one gives its slot back.
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        plain_login(&b.sasl_plaintext, "admin", common::secure::ADMIN_PASSWORD),
        Some(0)
    );
}
