//! TLS, SASL and ACLs against a real broker process and real clients (the
//! rdkafka crate, kcat, the herald CLI, kafka-python, confluent-kafka).

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::secure::SecureBroker;
use herald_testkit::pki::DnType;
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};

const ALICE_PW: &str = "alice-pw";

async fn produce(c: &ClientConfig, topic: &str, n: usize) -> Result<(), KafkaError> {
    let mut c = c.clone();
    c.set("message.timeout.ms", "10000");
    let p: FutureProducer = c.create().expect("producer");
    for i in 0..n {
        let v = format!("v{i}");
        p.send(
            FutureRecord::<(), _>::to(topic).payload(&v),
            Duration::from_secs(15),
        )
        .await
        .map_err(|(e, _)| e)?;
    }
    Ok(())
}

fn error_code(e: &KafkaError) -> Option<RDKafkaErrorCode> {
    e.rdkafka_error_code()
}

/// Consumes from the beginning in `group` until `n` records or an error.
fn consume(
    c: &ClientConfig,
    topic: &str,
    group: &str,
    n: usize,
) -> Result<Vec<String>, KafkaError> {
    let mut c = c.clone();
    c.set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false");
    let consumer: BaseConsumer = c.create().expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < n && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                got.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into())
            }
            Some(Err(e)) => return Err(e),
            None => {}
        }
    }
    Ok(got)
}

fn kcat(args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new("kcat")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kcat is installed (.ci/run installs it)");
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("kcat")
}

fn setup_alice(b: &SecureBroker) {
    b.create_user("alice", ALICE_PW, "SCRAM-SHA-512");
    b.create_user("alice", ALICE_PW, "SCRAM-SHA-256");
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
    b.admin_cli(&[
        "acl",
        "create",
        "--principal",
        "User:alice",
        "--operation",
        "read",
        "--group",
        "billing",
    ]);
}

#[tokio::test(flavor = "multi_thread")]
async fn sasl_ssl_scram_and_plain_produce_and_consume_with_rdkafka() {
    let b = SecureBroker::start(&[]);
    setup_alice(&b);
    for mech in ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] {
        let topic = format!("orders.{}", mech.to_lowercase());
        let c = b.sasl_ssl_config("alice", ALICE_PW, mech);
        produce(&c, &topic, 100)
            .await
            .unwrap_or_else(|e| panic!("{mech}: {e}"));
        let got = consume(&c, &topic, "billing", 100).expect("consume");
        assert_eq!(got.len(), 100, "{mech}");
        assert_eq!(got[0], "v0");
        assert_eq!(got[99], "v99");
    }
    // Users are listed without secrets.
    let listed = b.admin_cli(&["user", "list", "--format", "json"]);
    assert!(
        listed.contains("alice") && listed.contains("SCRAM-SHA-256"),
        "{listed}"
    );
    assert!(!listed.contains("stored_key"), "{listed}");
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_password_and_unknown_user_fail_alike() {
    let b = SecureBroker::start(&[]);
    setup_alice(&b);
    let wrong = b.data.path().join("wrong");
    std::fs::write(&wrong, "not-the-password").unwrap();
    let mut messages = Vec::new();
    for user in ["alice", "nobody"] {
        let out = b
            .cli_as(user, &wrong)
            .args(["cluster", "info"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{user} got in with a wrong password");
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(err.contains("authentication failed"), "{err}");
        messages.push(err.replace(user, "USER"));
    }
    assert_eq!(
        messages[0], messages[1],
        "an unknown user must look like a wrong password"
    );
    // librdkafka fails too (it reports the broker's refusal as a transport
    // failure of that broker), and the broker logged the failed login.
    let before = b.log_count("authentication failed");
    let c = b.sasl_ssl_config("alice", "nope", "SCRAM-SHA-512");
    let consumer: BaseConsumer = c.create().unwrap();
    assert!(
        consumer
            .fetch_metadata(None, Duration::from_secs(5))
            .is_err()
    );
    assert!(b.wait_log("authentication failed", before + 1));
    // An unsupported mechanism: UNSUPPORTED_SASL_MECHANISM with the list.
    let admin_pw = b.data.path().join("admin.pw");
    std::fs::write(&admin_pw, "admin-secret").unwrap();
    let out = common::secure::herald()
        .args([
            "-b",
            &b.sasl_ssl,
            "--security-protocol",
            "SASL_SSL",
            "--sasl-mechanism",
            "GSSAPI",
        ])
        .args(["--sasl-username", "admin", "--sasl-password-file"])
        .arg(&admin_pw)
        .arg("--ssl-ca")
        .arg(&b.pki.ca)
        .args(["cluster", "info"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("SCRAM-SHA-512"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kcat_over_sasl_ssl_and_a_plaintext_client_on_the_tls_port() {
    let b = SecureBroker::start(&[]);
    setup_alice(&b);
    let ca = b.pki.ca.display().to_string();
    let base = |pw: &str| -> Vec<String> {
        [
            "-b",
            &b.sasl_ssl,
            "-X",
            "security.protocol=SASL_SSL",
            "-X",
            "sasl.mechanisms=SCRAM-SHA-512",
            "-X",
            "sasl.username=alice",
            "-X",
            &format!("sasl.password={pw}"),
            "-X",
            &format!("ssl.ca.location={ca}"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let lines: String = (0..100).map(|i| format!("line-{i}\n")).collect();
    let mut args = base(ALICE_PW);
    args.extend(["-P", "-t", "orders.kcat"].map(String::from));
    let refs: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let out = kcat(&refs, Some(&lines));
    assert!(
        out.status.success(),
        "kcat produce: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut args = base(ALICE_PW);
    args.extend(["-C", "-t", "orders.kcat", "-o", "beginning", "-e", "-q"].map(String::from));
    let refs: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let out = kcat(&refs, None);
    let got = String::from_utf8_lossy(&out.stdout);
    assert_eq!(got.lines().count(), 100, "{got}");
    // A wrong password: kcat fails instead of producing.
    let mut args = base("wrong");
    args.extend(["-L", "-m", "5"].map(String::from));
    let refs: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let out = kcat(&refs, None);
    assert!(
        !out.status.success(),
        "kcat listed metadata with a wrong password"
    );

    // A plaintext client on the TLS port is closed, and the broker goes on.
    use std::io::Write;
    let mut s = common::kafka_wire::connect(&b.sasl_ssl);
    let req = kafka_protocol::messages::ApiVersionsRequest::default();
    s.write_all(&common::kafka_wire::frame(
        kafka_protocol::messages::ApiKey::ApiVersions,
        0,
        1,
        &req,
    ))
    .unwrap();
    assert!(
        common::kafka_wire::closed(&mut s),
        "plaintext on TLS was not closed"
    );
    assert!(b.wait_log("TLS handshake failed", 1));
    produce(
        &b.sasl_ssl_config("alice", ALICE_PW, "SCRAM-SHA-512"),
        "orders.after",
        1,
    )
    .await
    .expect("served after the bad client");
}

const RULES: &str = "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,RULE:^O=Acme,CN=(.*)$/$1/L,DEFAULT";

#[tokio::test(flavor = "multi_thread")]
async fn mtls_principals_come_from_mapping_rules() {
    let b = SecureBroker::start(&["--ssl-principal-mapping-rules", RULES]);
    let svc_a = b
        .pki
        .client_cert(
            "svc-a",
            &[
                (DnType::OrganizationName, "Acme"),
                (DnType::OrganizationalUnitName, "ServiceUsers"),
                (DnType::CommonName, "svc-a"),
            ],
        )
        .unwrap();
    let svc_b = b
        .pki
        .client_cert(
            "svc-b",
            &[
                (DnType::CommonName, "SVC-B"),
                (DnType::OrganizationName, "Acme"),
            ],
        )
        .unwrap();
    b.admin_cli(&[
        "acl",
        "create",
        "--principal",
        "User:svc-a",
        "--operation",
        "write,create",
        "--topic",
        "svc-a.",
        "--prefixed",
    ]);
    b.admin_cli(&[
        "acl",
        "create",
        "--principal",
        "User:svc-b",
        "--operation",
        "write,create",
        "--topic",
        "svc-b.",
        "--prefixed",
    ]);
    produce(&b.mtls_config(&svc_a), "svc-a.events", 10)
        .await
        .expect("svc-a writes its topic");
    produce(&b.mtls_config(&svc_b), "svc-b.events", 10)
        .await
        .expect("svc-b (lower-cased by /L) writes its topic");
    let e = produce(&b.mtls_config(&svc_b), "svc-a.events", 1)
        .await
        .unwrap_err();
    assert_eq!(
        error_code(&e),
        Some(RDKafkaErrorCode::TopicAuthorizationFailed),
        "{e}"
    );
    // Without a certificate (requested, not required): User:ANONYMOUS, no ACLs.
    let mut anon = ClientConfig::new();
    anon.set("bootstrap.servers", &b.ssl)
        .set("security.protocol", "ssl")
        .set("ssl.ca.location", b.pki.ca.display().to_string());
    let e = produce(&anon, "svc-a.events", 1).await.unwrap_err();
    assert_eq!(
        error_code(&e),
        Some(RDKafkaErrorCode::TopicAuthorizationFailed),
        "{e}"
    );
    // Untrusted and expired certificates are refused at the handshake.
    let rogue = b.pki.rogue_client_cert("rogue", "svc-a").unwrap();
    let expired = b.pki.expired_client_cert("expired", "svc-a").unwrap();
    for cert in [&rogue, &expired] {
        let before = b.log_count("TLS handshake failed");
        let consumer: BaseConsumer = b.mtls_config(cert).create().unwrap();
        assert!(
            consumer
                .fetch_metadata(None, Duration::from_secs(5))
                .is_err()
        );
        assert!(b.wait_log("TLS handshake failed", before + 1));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn required_client_auth_refuses_a_client_without_a_certificate() {
    let b = SecureBroker::start_with("required", &["--ssl-principal-mapping-rules", RULES]);
    let mut anon = ClientConfig::new();
    anon.set("bootstrap.servers", &b.ssl)
        .set("security.protocol", "ssl")
        .set("ssl.ca.location", b.pki.ca.display().to_string());
    let consumer: BaseConsumer = anon.create().unwrap();
    assert!(
        consumer
            .fetch_metadata(None, Duration::from_secs(5))
            .is_err()
    );
    let svc_a = b
        .pki
        .client_cert(
            "svc-a",
            &[
                (DnType::OrganizationName, "Acme"),
                (DnType::OrganizationalUnitName, "ServiceUsers"),
                (DnType::CommonName, "svc-a"),
            ],
        )
        .unwrap();
    let consumer: BaseConsumer = b.mtls_config(&svc_a).create().unwrap();
    consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("a good certificate gets in");
}

#[tokio::test(flavor = "multi_thread")]
async fn python_clients_over_sasl_ssl() {
    let b = SecureBroker::start(&[]);
    setup_alice(&b);
    let script = r#"
import sys, json
addr, ca, pw = sys.argv[1], sys.argv[2], sys.argv[3]
from kafka import KafkaProducer, KafkaConsumer
from kafka.admin import KafkaAdminClient, NewTopic
common = dict(bootstrap_servers=addr, security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
              sasl_plain_username="alice", sasl_plain_password=pw, ssl_cafile=ca)
admin = KafkaAdminClient(**common)
admin.create_topics([NewTopic("orders.kp", 2, 1)])
p = KafkaProducer(**common)
for i in range(50):
    p.send("orders.kp", b"kp-%d" % i)
p.flush()
c = KafkaConsumer("orders.kp", group_id="billing", auto_offset_reset="earliest", consumer_timeout_ms=10000, **common)
n = sum(1 for _ in c)
c.commit()
c.close()
import confluent_kafka as ck
conf = {"bootstrap.servers": addr, "security.protocol": "SASL_SSL", "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": "alice", "sasl.password": pw, "ssl.ca.location": ca}
pr = ck.Producer(conf)
for i in range(50):
    pr.produce("orders.ck", b"ck-%d" % i)
assert pr.flush(15) == 0
co = ck.Consumer(dict(conf, **{"group.id": "billing", "auto.offset.reset": "earliest"}))
co.subscribe(["orders.ck"])
m = 0
import time
end = time.time() + 20
while m < 50 and time.time() < end:
    msg = co.poll(0.5)
    if msg is not None and msg.error() is None:
        m += 1
co.close()
bad = ck.Producer(dict(conf, **{"sasl.password": "wrong"}))
md_err = None
try:
    bad.list_topics(timeout=5)
except Exception as e:
    md_err = str(e)
print(json.dumps({"kafka_python": n, "confluent_kafka": m, "bad": md_err}))
"#;
    let out = Command::new("python3")
        .args([
            "-c",
            script,
            &b.sasl_ssl,
            &b.pki.ca.display().to_string(),
            ALICE_PW,
        ])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(out.stdout.trim_ascii()).expect("json");
    assert_eq!(v["kafka_python"], 50, "{v}");
    assert_eq!(v["confluent_kafka"], 50, "{v}");
    assert!(!v["bad"].is_null(), "a wrong password listed topics: {v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn certificates_are_reloaded_without_a_restart_or_dropped_connections() {
    let b = SecureBroker::start(&["--ssl-reload-interval-ms", "200"]);
    setup_alice(&b);
    let mut c = b.sasl_ssl_config("alice", ALICE_PW, "SCRAM-SHA-512");
    c.set("message.timeout.ms", "10000");
    let p: FutureProducer = c.create().unwrap();
    p.send(
        FutureRecord::<(), _>::to("orders.reload").payload("before"),
        Duration::from_secs(10),
    )
    .await
    .expect("before the rotation");
    let served_cn = || {
        let out = Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &b.sasl_ssl,
                "-servername",
                "localhost",
                "-CAfile",
            ])
            .arg(&b.pki.ca)
            .stdin(Stdio::null())
            .output()
            .expect("openssl");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert!(served_cn().contains("CN=localhost") || served_cn().contains("CN = localhost"));
    // Rotate: a new certificate (CN rotated) written over the served files.
    let rotated = b.pki.server_cert("rotated", "rotated").unwrap();
    std::fs::copy(&rotated.key, &b.pki.server.key).unwrap();
    std::fs::copy(&rotated.cert, &b.pki.server.cert).unwrap();
    assert!(b.wait_log("TLS certificate, key or CA reloaded", 1));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !served_cn().contains("rotated") {
        assert!(
            Instant::now() < deadline,
            "the new certificate is not served"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The connection opened before the rotation goes on, unbroken.
    p.send(
        FutureRecord::<(), _>::to("orders.reload").payload("after"),
        Duration::from_secs(10),
    )
    .await
    .expect("after the rotation, on the same connection");
    // A garbage certificate is refused and the rotated one keeps serving.
    std::fs::write(&b.pki.server.cert, "not a certificate").unwrap();
    assert!(b.wait_log("TLS files changed but cannot be loaded", 1));
    assert!(served_cn().contains("rotated"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_events_sdk_publishes_and_subscribes_over_sasl_ssl() {
    use herald_events::{ClientSecurity, Context, Event, Publisher, Subscriber};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
    struct OrderPlaced {
        order_id: String,
    }
    impl Event for OrderPlaced {
        const EVENT_TYPE: &'static str = "OrderPlaced";
        const TOPIC: &'static str = "orders.placed";
        fn key(&self) -> String {
            self.order_id.clone()
        }
    }
    let b = SecureBroker::start(&[]);
    setup_alice(&b);
    b.admin_cli(&[
        "acl",
        "create",
        "--principal",
        "User:alice",
        "--operation",
        "read",
        "--group",
        "billing",
        "--prefixed",
    ]);
    let security = ClientSecurity::scram_sha512_over_tls("alice", ALICE_PW, b.pki.ca.clone());
    let props = security.properties();
    let refs: Vec<(&str, &str)> = props
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let publisher = Publisher::with_config(&b.sasl_ssl, "test/security", &refs).unwrap();
    let handled = Arc::new(AtomicU64::new(0));
    let seen = handled.clone();
    let sub = Subscriber::builder(&b.sasl_ssl, "billing")
        .security(&security)
        .on::<OrderPlaced, _, _>(move |_ctx: Context<OrderPlaced>| {
            let seen = seen.clone();
            async move {
                seen.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .build()
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let s = sub.clone();
    let running = tokio::spawn(async move {
        s.run(async {
            let _ = stopped.await;
        })
        .await
    });
    for i in 0..5 {
        publisher
            .publish(&OrderPlaced {
                order_id: format!("o-{i}"),
            })
            .await
            .expect("publish over SASL_SSL");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while handled.load(Ordering::SeqCst) < 5 {
        assert!(
            Instant::now() < deadline,
            "handled {}",
            handled.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(());
    running.await.unwrap().unwrap();
}
