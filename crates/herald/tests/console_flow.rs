//! The console's event-flow graph and Overview from a real `herald serve`
//! process, with librdkafka (the rdkafka crate) producing and committing:
//! the broker sees each producer's client id and principal, so the graph has
//! producer → topic → group edges with rates, and the group's lag.

mod common;

use std::time::{Duration, Instant};

use common::http::{Session, get};
use common::{BrokerProcess, create_topic};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;

fn node<'a>(flow: &'a Value, id: &str) -> Option<&'a Value> {
    flow["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["id"].as_str() == Some(id))
}

fn edge<'a>(flow: &'a Value, from: &str, to: &str) -> Option<&'a Value> {
    flow["edges"]
        .as_array()?
        .iter()
        .find(|e| e["from"].as_str() == Some(from) && e["to"].as_str() == Some(to))
}

/// Polls `/api/flow` until `ok` holds (the sampler runs once a second).
fn wait_flow(http: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = get(http, "/api/flow");
        assert_eq!(r.status, 200, "{}", r.body);
        let flow = r.json();
        if ok(&flow) {
            return flow;
        }
        assert!(Instant::now() < deadline, "{what}: {flow:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_graph_shows_producers_topics_and_groups_with_rates_and_lag() {
    let b = BrokerProcess::start(&[]);
    let http = b.http_addr();
    create_topic(&b, "orders", 3).await;

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &b.addr)
        .set("client.id", "shop-producer")
        .create()
        .expect("producer");
    for i in 0..30 {
        let key = format!("order-{i}");
        let value = format!("{{\"eventType\":\"OrderPlaced\",\"n\":{i}}}");
        producer
            .send(
                FutureRecord::to("orders")
                    .partition(i % 3)
                    .key(&key)
                    .payload(&value),
                Duration::from_secs(10),
            )
            .await
            .expect("produce");
    }

    // 10 records on each partition; group `billing` commits 4 on every
    // partition, without members.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &b.addr)
        .set("group.id", "billing")
        .set("client.id", "billing-1")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition_offset("orders", p, Offset::Offset(4))
            .expect("tpl");
    }
    consumer.commit(&tpl, CommitMode::Sync).expect("commit");

    let producer_id = "producer:User:ANONYMOUS|shop-producer";
    let flow = wait_flow(&http, "producer, topic and group with lag", |f| {
        edge(f, producer_id, "topic:orders")
            .is_some_and(|e| e["records_per_s"].as_f64().unwrap_or(0.0) > 0.0)
            && node(f, "group:billing").is_some_and(|g| g["lag"].as_i64() == Some(30 - 12))
            && edge(f, "topic:orders", "group:billing").is_some()
    });
    let p = node(&flow, producer_id).expect("producer node");
    assert_eq!(p["kind"], "producer");
    assert_eq!(p["label"], "shop-producer");
    assert_eq!(p["client_id"], "shop-producer");
    assert_eq!(p["principal"], "User:ANONYMOUS");
    assert_eq!(node(&flow, "topic:orders").expect("topic")["kind"], "topic");
    let e = edge(&flow, producer_id, "topic:orders").expect("edge");
    assert!(e["bytes_per_s"].as_f64().unwrap_or(0.0) > 0.0, "{e}");
    assert_eq!(
        edge(&flow, "topic:orders", "group:billing").expect("edge")["lag"],
        18
    );

    // A commit that moves the group moves its edge's rate and its lag.
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition_offset("orders", p, Offset::Offset(10))
            .expect("tpl");
    }
    consumer.commit(&tpl, CommitMode::Sync).expect("commit");
    wait_flow(&http, "the group's progress", |f| {
        node(f, "group:billing").is_some_and(|g| g["lag"].as_i64() == Some(0))
            && edge(f, "topic:orders", "group:billing")
                .is_some_and(|e| e["records_per_s"].as_f64().unwrap_or(0.0) > 0.0)
    });

    // The console's own produce form is not a producer of the graph.
    let s = Session::anonymous(&http);
    let r = s.send(
        "POST",
        "/api/topics/orders/messages",
        Some(&serde_json::json!({"partition": 0, "key": "k", "value": "{}", "headers": []})),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    std::thread::sleep(Duration::from_millis(2500));
    let flow = get(&http, "/api/flow").json();
    assert!(
        !flow["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .any(|n| n["client_id"] == "herald-console"),
        "{flow:#}"
    );

    // The Overview counts the topic and shows throughput once per second.
    let o = get(&http, "/api/overview").json();
    assert_eq!(o["topics"], 1, "{o}");
    assert_eq!(o["partitions"], 3, "{o}");
    assert!(o["disk_bytes"].as_u64().unwrap_or(0) > 0, "{o}");
    let series = o["series"].as_array().expect("series");
    assert!(
        series
            .iter()
            .any(|p| p["records_in"].as_f64().unwrap_or(0.0) > 0.0),
        "{o}"
    );
}
