//! Security in cluster mode: users and ACLs live in the cluster database, so
//! a user created through one broker authenticates on another, an ACL made
//! on one broker is enforced by all, and each client is given the brokers'
//! endpoints of the listener it came in on.

mod common;

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::BrokerProcess;
use herald_testkit::{Postgres, S3, free_ports};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{FutureProducer, FutureRecord};

fn sasl(addr: &str, user: &str, pw: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", addr)
        .set("security.protocol", "sasl_plaintext")
        .set("sasl.mechanisms", "SCRAM-SHA-256")
        .set("sasl.username", user)
        .set("sasl.password", pw)
        .set("message.timeout.ms", "8000");
    c
}

async fn send(c: &ClientConfig, topic: &str) -> Result<(), Option<RDKafkaErrorCode>> {
    let p: FutureProducer = c.create().unwrap();
    p.send(
        FutureRecord::<(), _>::to(topic).payload("x"),
        Duration::from_secs(10),
    )
    .await
    .map(|_| ())
    .map_err(|(e, _)| e.rdkafka_error_code())
}

#[tokio::test(flavor = "multi_thread")]
async fn users_and_acls_are_shared_by_the_cluster() {
    let pg = Postgres::start().expect("PostgreSQL");
    let s3 = S3::start().expect("SeaweedFS");
    // The first user, offline, into the cluster database.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args([
            "user",
            "create",
            "admin",
            "--mechanism",
            "SCRAM-SHA-256",
            "--password-stdin",
            "--cluster-db",
            &pg.url,
        ])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"admin-pw\n")
        .unwrap();
    assert!(child.wait().unwrap().success());

    let store = format!("s3://{}", s3.bucket);
    let mut sasl_addrs = Vec::new();
    let mut brokers = Vec::new();
    for id in 1..=2 {
        let ports = free_ports(2);
        let listeners = format!(
            "PLAINTEXT://127.0.0.1:{},SASL_PLAINTEXT://127.0.0.1:{}",
            ports[0], ports[1]
        );
        let node = id.to_string();
        let args = [
            "--node-id",
            &node,
            "--cluster-db",
            &pg.url,
            "--object-store",
            &store,
            "--s3-endpoint",
            &s3.endpoint,
            "--cluster-flush-ms",
            "20",
            "--listeners",
            &listeners,
            "--authorizer",
            "acl",
            "--super-users",
            "User:admin",
        ];
        brokers.push(BrokerProcess::start_with_env(&args, &s3.env(), ""));
        sasl_addrs.push(format!("127.0.0.1:{}", ports[1]));
    }
    let cli = |addr: &str, args: &[&str]| {
        let pw = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(pw.path(), "admin-pw").unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
            .args([
                "-b",
                addr,
                "--security-protocol",
                "SASL_PLAINTEXT",
                "--sasl-mechanism",
                "SCRAM-SHA-256",
            ])
            .args(["--sasl-username", "admin", "--sasl-password-file"])
            .arg(pw.path())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Through broker 1: a user and an ACL.
    let alice_pw = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(alice_pw.path(), "alice-pw").unwrap();
    let f = alice_pw.path().display().to_string();
    cli(
        &sasl_addrs[0],
        &[
            "user",
            "create",
            "alice",
            "--mechanism",
            "SCRAM-SHA-256",
            "--password-file",
            &f,
        ],
    );
    cli(
        &sasl_addrs[0],
        &[
            "acl",
            "create",
            "--principal",
            "User:alice",
            "--operation",
            "write,create",
            "--topic",
            "orders.",
            "--prefixed",
        ],
    );
    // Alice, bootstrapping from broker 2 only, is known there and allowed.
    let alice2 = sasl(&sasl_addrs[1], "alice", "alice-pw");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match send(&alice2, "orders.eu").await {
            Ok(()) => break,
            Err(e) if Instant::now() < deadline => {
                eprintln!("retrying: {e:?}");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => panic!("alice on broker 2: {e:?}"),
        }
    }
    assert_eq!(
        send(&alice2, "payments").await,
        Err(Some(RDKafkaErrorCode::TopicAuthorizationFailed))
    );
    // Metadata on the SASL listener names the brokers' SASL endpoints.
    // (Leases are renewed every second: wait until both brokers are live.)
    let consumer: BaseConsumer = alice2.create().unwrap();
    let mut want = sasl_addrs.clone();
    want.sort();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let md = consumer
            .fetch_metadata(None, Duration::from_secs(10))
            .unwrap();
        let mut ports: Vec<String> = md
            .brokers()
            .iter()
            .map(|b| format!("{}:{}", b.host(), b.port()))
            .collect();
        ports.sort();
        if ports == want {
            break;
        }
        assert!(Instant::now() < deadline, "{ports:?} != {want:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Anonymous on PLAINTEXT: nothing visible, nothing writable.
    let mut anon = ClientConfig::new();
    anon.set("bootstrap.servers", &brokers[0].addr)
        .set("message.timeout.ms", "8000");
    let c: BaseConsumer = anon.create().unwrap();
    let md = c.fetch_metadata(None, Duration::from_secs(10)).unwrap();
    assert!(md.topics().is_empty(), "anonymous saw topics");
    assert_eq!(
        send(&anon, "orders.eu").await,
        Err(Some(RDKafkaErrorCode::TopicAuthorizationFailed))
    );
    // An ACL deleted through broker 2 stops alice on broker 1.
    cli(
        &sasl_addrs[1],
        &[
            "acl",
            "delete",
            "--principal",
            "User:alice",
            "--operation",
            "write",
            "--topic",
            "orders.",
            "--prefixed",
        ],
    );
    let alice1 = sasl(&sasl_addrs[0], "alice", "alice-pw");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = send(&alice1, "orders.eu").await;
        if r == Err(Some(RDKafkaErrorCode::TopicAuthorizationFailed)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "broker 1 still allows after the ACL was deleted on broker 2: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // An unknown user gets the same fake salt from every broker (the secret
    // is the cluster's), so brokers cannot be compared to find real users.
    let salt = |addr: &str| {
        let first = common::kafka_wire::scram_server_first(addr, "SCRAM-SHA-256", "ghost");
        first
            .split(',')
            .find(|a| a.starts_with("s="))
            .unwrap()
            .to_string()
    };
    assert_eq!(salt(&sasl_addrs[0]), salt(&sasl_addrs[1]));
    let users = cli(&sasl_addrs[1], &["user", "list", "--format", "json"]);
    assert!(
        users.contains("alice") && users.contains("admin"),
        "{users}"
    );
}
