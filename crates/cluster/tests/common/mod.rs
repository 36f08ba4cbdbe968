//! Real PostgreSQL and SeaweedFS for cluster tests (herald-testkit), and
//! in-process cluster brokers on ephemeral ports.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use herald_broker::{BrokerConfig, RunningBroker};
use herald_cluster::objects::Store;
use herald_cluster::{ClusterConfig, db};
use herald_log::batch::BatchHeader;
use herald_testkit::{Postgres, S3};
use object_store::aws::AmazonS3Builder;

pub struct Env {
    pub pg: Postgres,
    pub s3: S3,
}

pub fn env() -> Env {
    Env {
        pg: Postgres::start().expect("start PostgreSQL"),
        s3: S3::start().expect("start SeaweedFS"),
    }
}

pub fn store(s3: &S3) -> Store {
    Arc::new(
        AmazonS3Builder::new()
            .with_bucket_name(&s3.bucket)
            .with_endpoint(&s3.endpoint)
            .with_access_key_id(&s3.access_key)
            .with_secret_access_key(&s3.secret_key)
            .with_region(&s3.region)
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .build()
            .expect("S3 client"),
    )
}

pub async fn pool(pg: &Postgres) -> deadpool_postgres::Pool {
    let pool = db::pool(db::parse_config(&pg.url).unwrap()).unwrap();
    db::migrate(&pool).await.unwrap();
    pool
}

pub fn cluster_config(env: &Env) -> ClusterConfig {
    let mut c = ClusterConfig::new(env.pg.url.clone(), format!("s3://{}", env.s3.bucket));
    c.s3_endpoint = Some(env.s3.endpoint.clone());
    c.flush_interval = Duration::from_millis(20);
    c
}

/// A cluster broker in this process, on a free port, with its own temp dir.
pub async fn broker(
    env: &Env,
    node_id: i32,
    dir: &std::path::Path,
    cluster: ClusterConfig,
    write_store: Store,
) -> RunningBroker {
    let config = BrokerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.join(format!("broker-{node_id}")),
        node_id,
        default_partitions: 1,
        retention_check_interval: Duration::from_millis(300),
        ..BrokerConfig::default()
    };
    herald_cluster::start_with_stores(config, cluster, write_store, store(&env.s3), String::new())
        .await
        .expect("start cluster broker")
}

/// A plain (non-idempotent) batch header of `records` records.
pub fn header(records: i32) -> BatchHeader {
    idempotent_header(records, -1, -1, -1)
}

pub fn idempotent_header(
    records: i32,
    producer_id: i64,
    epoch: i16,
    base_sequence: i32,
) -> BatchHeader {
    BatchHeader {
        base_offset: 0,
        batch_length: 100,
        partition_leader_epoch: 0,
        magic: 2,
        crc: 0,
        attributes: 0,
        last_offset_delta: records - 1,
        base_timestamp: 1000,
        max_timestamp: 1000,
        producer_id,
        producer_epoch: epoch,
        base_sequence,
        records_count: records,
    }
}

pub async fn create_topic(
    pool: &deadpool_postgres::Pool,
    name: &str,
    partitions: i32,
) -> uuid::Uuid {
    let id = uuid::Uuid::new_v4();
    let c = pool.get().await.unwrap();
    c.execute(
        "INSERT INTO topics (topic_id, name, partitions) VALUES ($1, $2, $3)",
        &[&id, &name, &partitions],
    )
    .await
    .unwrap();
    c.execute(
        "INSERT INTO partitions (topic_id, partition) SELECT $1, generate_series(0, $2 - 1)",
        &[&id, &partitions],
    )
    .await
    .unwrap();
    id
}
