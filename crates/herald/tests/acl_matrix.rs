//! Kafka's ACL semantics, outcome by outcome, with real clients (the rdkafka
//! crate and the herald CLI) against a broker process with `--authorizer acl`:
//! allow, deny over allow, implied DESCRIBE, prefixed and `*` patterns, super
//! users, Metadata hiding, a consumer needing Group READ, KIP-679 idempotent
//! producers, DescribeAcls MATCH, and DeleteAcls taking effect at once.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::secure::SecureBroker;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};

fn user_config(b: &SecureBroker, user: &str) -> ClientConfig {
    let pw = if user == "admin" {
        common::secure::ADMIN_PASSWORD.to_string()
    } else {
        format!("{user}-pw")
    };
    let mut c = b.sasl_ssl_config(user, &pw, "SCRAM-SHA-512");
    c.set("message.timeout.ms", "8000");
    c
}

async fn send(p: &FutureProducer, topic: &str) -> Result<(), Option<RDKafkaErrorCode>> {
    p.send(
        FutureRecord::<(), _>::to(topic).payload("x"),
        Duration::from_secs(10),
    )
    .await
    .map(|_| ())
    .map_err(|(e, _)| e.rdkafka_error_code())
}

async fn produce_as(
    b: &SecureBroker,
    user: &str,
    topic: &str,
    idempotent: bool,
) -> Result<(), Option<RDKafkaErrorCode>> {
    let mut c = user_config(b, user);
    c.set(
        "enable.idempotence",
        if idempotent { "true" } else { "false" },
    );
    let p: FutureProducer = c.create().expect("producer");
    let r = send(&p, topic).await;
    // An idempotent producer refused its producer id fails fatally and purges
    // its queue: the reason is the fatal error.
    match (&r, rdkafka::producer::Producer::client(&p).fatal_error()) {
        (Err(_), Some((code, _))) => Err(Some(code)),
        _ => r,
    }
}

/// The first error a group consumer of `topic` gets, or Ok(records) after a while.
fn consume_as(
    b: &SecureBroker,
    user: &str,
    topic: &str,
    group: &str,
) -> Result<usize, Option<RDKafkaErrorCode>> {
    let mut c = user_config(b, user);
    c.set("group.id", group)
        .set("auto.offset.reset", "earliest");
    let consumer: BaseConsumer = c.create().expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut n = 0;
    let deadline = Instant::now() + Duration::from_secs(8);
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(_)) => n += 1,
            Some(Err(KafkaError::MessageConsumption(code)))
            | Some(Err(KafkaError::Global(code))) => return Err(Some(code)),
            Some(Err(e)) => return Err(e.rdkafka_error_code()),
            None if n > 0 => return Ok(n),
            None => {}
        }
    }
    Ok(n)
}

fn visible_topics(b: &SecureBroker, user: &str) -> BTreeSet<String> {
    let consumer: BaseConsumer = user_config(b, user).create().expect("consumer");
    let md = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata");
    md.topics().iter().map(|t| t.name().to_string()).collect()
}

const DENIED: Result<(), Option<RDKafkaErrorCode>> =
    Err(Some(RDKafkaErrorCode::TopicAuthorizationFailed));

#[tokio::test(flavor = "multi_thread")]
async fn acl_matrix() {
    let b = SecureBroker::start(&[]);
    for u in ["alice", "bob", "carol"] {
        b.create_user(u, &format!("{u}-pw"), "SCRAM-SHA-512");
    }
    for t in ["orders.eu", "orders.secret", "payments", "public"] {
        b.admin_cli(&["topic", "create", t, "--partitions", "2"]);
    }
    let acl = |args: &[&str]| {
        let mut v = vec!["acl", "create"];
        v.extend_from_slice(args);
        b.admin_cli(&v);
    };
    acl(&[
        "--principal",
        "User:alice",
        "--operation",
        "read,write",
        "--topic",
        "orders.",
        "--prefixed",
    ]);
    acl(&[
        "--principal",
        "User:alice",
        "--operation",
        "read",
        "--group",
        "billing",
    ]);
    acl(&[
        "--principal",
        "User:alice",
        "--operation",
        "read",
        "--topic",
        "orders.secret",
        "--deny",
    ]);
    acl(&[
        "--principal",
        "User:carol",
        "--operation",
        "all",
        "--topic",
        "payments",
    ]);
    acl(&[
        "--principal",
        "User:carol",
        "--operation",
        "describe",
        "--group",
        "carol-g",
    ]);
    acl(&[
        "--principal",
        "User:*",
        "--operation",
        "read",
        "--topic",
        "public",
    ]);

    // Super user: everything.
    assert_eq!(produce_as(&b, "admin", "payments", false).await, Ok(()));
    assert_eq!(produce_as(&b, "admin", "orders.secret", true).await, Ok(()));
    assert_eq!(produce_as(&b, "admin", "public", false).await, Ok(()));
    // Prefixed allow; no ACL → denied.
    assert_eq!(produce_as(&b, "alice", "orders.eu", false).await, Ok(()));
    assert_eq!(produce_as(&b, "alice", "payments", false).await, DENIED);
    assert_eq!(produce_as(&b, "bob", "orders.eu", false).await, DENIED);
    // ALL on a literal topic.
    assert_eq!(produce_as(&b, "carol", "payments", false).await, Ok(()));
    assert_eq!(produce_as(&b, "carol", "payments.x", false).await, DENIED);
    // KIP-679: an idempotent producer needs WRITE on some topic (or IDEMPOTENT_WRITE).
    assert_eq!(produce_as(&b, "alice", "orders.eu", true).await, Ok(()));
    let bob_idem = produce_as(&b, "bob", "public", true).await;
    assert!(
        matches!(
            bob_idem,
            Err(Some(RDKafkaErrorCode::ClusterAuthorizationFailed))
                | Err(Some(RDKafkaErrorCode::TopicAuthorizationFailed))
        ),
        "{bob_idem:?}"
    );

    // Reads: allow through prefix + group; DENY beats the prefixed ALLOW;
    // a consumer needs READ on its group.
    assert_eq!(
        consume_as(&b, "alice", "orders.eu", "billing").map(|n| n > 0),
        Ok(true)
    );
    assert_eq!(
        consume_as(&b, "alice", "orders.secret", "billing"),
        Err(Some(RDKafkaErrorCode::TopicAuthorizationFailed))
    );
    assert_eq!(
        consume_as(&b, "alice", "orders.eu", "other-group"),
        Err(Some(RDKafkaErrorCode::GroupAuthorizationFailed))
    );
    assert_eq!(
        consume_as(&b, "carol", "payments", "carol-g"),
        Err(Some(RDKafkaErrorCode::GroupAuthorizationFailed))
    );
    assert_eq!(
        consume_as(&b, "bob", "public", "bob-g"),
        Err(Some(RDKafkaErrorCode::GroupAuthorizationFailed))
    );

    // Metadata hides what a principal may not describe; READ/WRITE imply DESCRIBE
    // (so orders.secret stays visible: its DENY is of READ only).
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        visible_topics(&b, "alice"),
        set(&["orders.eu", "orders.secret", "public"])
    );
    assert_eq!(visible_topics(&b, "bob"), set(&["public"]));
    assert_eq!(visible_topics(&b, "carol"), set(&["payments", "public"]));
    assert!(visible_topics(&b, "admin").is_superset(&set(&[
        "orders.eu",
        "orders.secret",
        "payments",
        "public"
    ])));

    // Auto-creation without CREATE: TOPIC_AUTHORIZATION_FAILED (as Kafka),
    // not "unknown topic", so a producer fails fast.
    // (A producer's Metadata asks for auto-creation; a consumer's does not.)
    let producer: FutureProducer = user_config(&b, "alice").create().unwrap();
    let md = rdkafka::producer::Producer::client(&producer)
        .fetch_metadata(Some("orders.new"), Duration::from_secs(10))
        .expect("metadata");
    assert_eq!(
        md.topics()[0].error().map(RDKafkaErrorCode::from),
        Some(RDKafkaErrorCode::TopicAuthorizationFailed)
    );

    // DescribeAcls needs DESCRIBE on the cluster.
    let pw = b.data.path().join("alice-cli.pw");
    std::fs::write(&pw, "alice-pw").unwrap();
    let out = b
        .cli_as("alice", &pw)
        .args(["acl", "list"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "alice listed ACLs");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("error 31"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // MATCH on orders.eu: the prefixed ALLOWs apply, the literal orders.secret DENY does not.
    let listed = b.admin_cli(&[
        "acl",
        "list",
        "--topic",
        "orders.eu",
        "--match",
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{listed}");
    assert!(
        rows.iter()
            .all(|r| r["resource_name"] == "orders." && r["pattern_type"] == "PREFIXED"),
        "{listed}"
    );

    // DeleteAcls takes effect without reconnecting: the same producer is
    // refused, then allowed again once the ACL is back.
    let p: FutureProducer = user_config(&b, "alice").create().unwrap();
    assert_eq!(send(&p, "orders.eu").await, Ok(()));
    b.admin_cli(&[
        "acl",
        "delete",
        "--principal",
        "User:alice",
        "--operation",
        "write",
        "--topic",
        "orders.",
        "--prefixed",
    ]);
    assert_eq!(send(&p, "orders.eu").await, DENIED);
    acl(&[
        "--principal",
        "User:alice",
        "--operation",
        "write",
        "--topic",
        "orders.",
        "--prefixed",
    ]);
    // librdkafka remembers the refusal until its next metadata refresh, which
    // an error triggers; the same producer gets through again, unreconnected.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = send(&p, "orders.eu").await;
        if r == Ok(()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still refused after the ACL came back: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(b.wait_log("authorization denied", 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn acls_are_durable_and_allow_everyone_opens_resources_without_acls() {
    let mut b = SecureBroker::start(&["--allow-everyone-if-no-acl-found", "true"]);
    b.create_user("bob", "bob-pw", "SCRAM-SHA-512");
    b.admin_cli(&["topic", "create", "open", "--partitions", "1"]);
    b.admin_cli(&["topic", "create", "guarded", "--partitions", "1"]);
    b.admin_cli(&[
        "acl",
        "create",
        "--principal",
        "User:carol",
        "--operation",
        "write",
        "--topic",
        "guarded",
    ]);
    // No ACL on "open": everyone; "guarded" has ACLs (for carol): bob is denied.
    assert_eq!(produce_as(&b, "bob", "open", false).await, Ok(()));
    assert_eq!(produce_as(&b, "bob", "guarded", false).await, DENIED);
    // Durable: the ACLs and users are in the data directory after a clean stop
    // (the same file the broker loads at start, as the offline admin shows).
    b.stop();
    let stored = std::fs::read_to_string(b.data.path().join("security.json")).unwrap();
    assert!(
        stored.contains("guarded") && stored.contains("User:carol") && stored.contains("\"bob\""),
        "{stored}"
    );
    assert!(!stored.contains("bob-pw"), "a password was stored");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(b.data.path().join("security.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o077,
        0,
        "security.json is readable by others: {mode:o}"
    );
}
