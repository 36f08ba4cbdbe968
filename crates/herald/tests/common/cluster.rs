//! A Herald cluster for tests: `n` `herald` processes on one real PostgreSQL
//! and one real S3 server (SeaweedFS), broker `i` (from 1) in rack `zone-i`.

use std::time::Duration;

use herald_broker::membership::{BrokerInfo, rendezvous};
use herald_testkit::{Postgres, S3, free_port};
use rdkafka::ClientConfig;

use super::BrokerProcess;

pub struct Cluster {
    _pg: Postgres,
    _s3: S3,
    pub brokers: Vec<BrokerProcess>,
}

impl Cluster {
    /// `n` brokers with 6 partitions by default, flushing every `flush_ms`.
    pub fn start(n: i32, flush_ms: u64) -> Cluster {
        Self::start_with(n, flush_ms, &[])
    }

    /// As `start`, with `extra` arguments for every broker.
    pub fn start_with(n: i32, flush_ms: u64, extra: &[&str]) -> Cluster {
        let pg = Postgres::start().expect("PostgreSQL");
        let s3 = S3::start().expect("SeaweedFS");
        let mut brokers = Vec::new();
        for id in 1..=n {
            let listen = format!("127.0.0.1:{}", free_port());
            let node = id.to_string();
            let rack = format!("zone-{id}");
            let store = format!("s3://{}", s3.bucket);
            let flush = flush_ms.to_string();
            let mut args = vec![
                "--node-id",
                node.as_str(),
                "--rack",
                rack.as_str(),
                "--cluster-db",
                pg.url.as_str(),
                "--object-store",
                store.as_str(),
                "--s3-endpoint",
                s3.endpoint.as_str(),
                "--cluster-flush-ms",
                flush.as_str(),
                "--num-partitions",
                "6",
            ];
            args.extend_from_slice(extra);
            brokers.push(BrokerProcess::start_with_env(&args, &s3.env(), &listen));
        }
        Cluster {
            _pg: pg,
            _s3: s3,
            brokers,
        }
    }

    pub fn bootstrap(&self) -> String {
        self.brokers
            .iter()
            .map(|b| b.addr.clone())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn client(&self, extra: &[(&str, &str)]) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.bootstrap())
            .set("reconnect.backoff.ms", "20")
            .set("reconnect.backoff.max.ms", "500")
            .set("topic.metadata.refresh.interval.ms", "1000");
        for (k, v) in extra {
            c.set(*k, *v);
        }
        c
    }

    /// The broker (node id, from 1) that coordinates `group` when the brokers
    /// `live` hold their leases: the rendezvous hash every broker computes.
    pub fn coordinator_among(group: &str, live: &[i32]) -> i32 {
        let live: Vec<BrokerInfo> = live
            .iter()
            .map(|&id| BrokerInfo {
                node_id: id,
                host: String::new(),
                port: 0,
                rack: None,
                lease_age_ms: 0,
                endpoints: Vec::new(),
            })
            .collect();
        rendezvous(group.as_bytes(), &live)
            .expect("a live broker")
            .node_id
    }

    /// Creates a topic through any broker (librdkafka's admin client).
    pub async fn create_topic(&self, name: &str, partitions: i32) {
        use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
        let admin: AdminClient<_> = self.client(&[]).create().expect("admin");
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(20)));
        for r in admin
            .create_topics(
                &[NewTopic::new(name, partitions, TopicReplication::Fixed(-1))],
                &opts,
            )
            .await
            .expect("create_topics")
        {
            r.expect("topic created");
        }
    }
}
