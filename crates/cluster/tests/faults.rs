//! Faults under load, with real PostgreSQL, real S3 and librdkafka: an object
//! store wrapper that adds latency, fails PUTs with 503s, and loses the
//! response of PUTs that succeeded; database connections killed at random
//! (some of them around a COMMIT). Acknowledged data is never lost or doubled.
//! Also: an object uploaded but never committed is removed by the reconciler.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use herald_cluster::objects::Store;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

#[derive(Debug, Default)]
struct Faults {
    puts: AtomicU64,
    failed: AtomicU64,
    lost: AtomicU64,
}

/// Every 5th PUT fails with a 503 before writing; every 7th writes and then
/// reports a failure (its response "lost"); every PUT and GET waits 5-25 ms.
#[derive(Debug)]
struct Faulty {
    inner: Store,
    faults: Arc<Faults>,
}

impl std::fmt::Display for Faulty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Faulty({})", self.inner)
    }
}

fn unavailable(what: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: "faulty",
        source: format!("503 Slow Down ({what})").into(),
    }
}

async fn latency(n: u64) {
    tokio::time::sleep(Duration::from_millis(5 + (n * 7919) % 20)).await;
}

#[async_trait]
impl ObjectStore for Faulty {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let n = self.faults.puts.fetch_add(1, Ordering::SeqCst);
        latency(n).await;
        // The start-up probe (n 0 and 1) must see the real store.
        if n > 2 && n.is_multiple_of(5) {
            self.faults.failed.fetch_add(1, Ordering::SeqCst);
            return Err(unavailable("put refused"));
        }
        let r = self.inner.put_opts(location, payload, opts).await;
        if n > 2 && n.is_multiple_of(7) && r.is_ok() {
            self.faults.lost.fetch_add(1, Ordering::SeqCst);
            return Err(unavailable("response lost after the write"));
        }
        r
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        latency(3).await;
        self.inner.get_opts(location, options).await
    }
    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[std::ops::Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        latency(5).await;
        self.inner.get_ranges(location, ranges).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_records_survive_object_store_and_database_faults() {
    let env = common::env();
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(Faults::default());
    let store: Store = Arc::new(Faulty {
        inner: common::store(&env.s3),
        faults: faults.clone(),
    });
    let broker = common::broker(&env, 1, dir.path(), common::cluster_config(&env), store).await;
    let bootstrap = broker.addr.to_string();
    let client = |extra: &[(&str, &str)]| {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &bootstrap);
        for (k, v) in extra {
            c.set(*k, *v);
        }
        c
    };
    let producer: FutureProducer = client(&[
        ("enable.idempotence", "true"),
        ("acks", "all"),
        ("linger.ms", "2"),
        ("message.timeout.ms", "120000"),
        ("retry.backoff.ms", "20"),
    ])
    .create()
    .unwrap();
    // Kill the broker's database connections now and then, under load.
    let stop = Arc::new(AtomicBool::new(false));
    let killer = {
        let (url, stop) = (env.pg.url.clone(), stop.clone());
        tokio::spawn(async move {
            let (admin, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            let mut killed = 0u64;
            while !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let rows = admin
                    .query(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                         WHERE application_name = 'herald' AND pid <> pg_backend_pid()
                         ORDER BY (state = 'idle'), random() LIMIT 2",
                        &[],
                    )
                    .await
                    .map(|r| r.len() as u64)
                    .unwrap_or(0);
                killed += rows;
            }
            killed
        })
    };
    let acked = Arc::new(Mutex::new(Vec::new()));
    let mut pending = tokio::task::JoinSet::new();
    let started = Instant::now();
    let mut i = 0u64;
    while started.elapsed() < Duration::from_secs(8) {
        let v = format!("{i:09}");
        if let Ok(f) =
            producer.send_result(FutureRecord::<(), _>::to("faulty").partition(0).payload(&v))
        {
            let acked = acked.clone();
            let n = i;
            pending.spawn(async move {
                if let Ok(Ok(_)) = f.await {
                    acked.lock().unwrap().push(n);
                }
            });
            i += 1;
        } else {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if i.is_multiple_of(100) {
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    }
    while pending.join_next().await.is_some() {}
    stop.store(true, Ordering::SeqCst);
    let killed = killer.await.unwrap();
    let acked = acked.lock().unwrap().clone();
    eprintln!(
        "sent {i}, acked {}, PUTs {} (503 {}, response lost {}), database connections killed {killed}",
        acked.len(),
        faults.puts.load(Ordering::SeqCst),
        faults.failed.load(Ordering::SeqCst),
        faults.lost.load(Ordering::SeqCst)
    );
    assert!(
        acked.len() > 200,
        "too little acknowledged: {}",
        acked.len()
    );
    assert!(faults.failed.load(Ordering::SeqCst) > 0 && faults.lost.load(Ordering::SeqCst) > 0);

    let consumer: BaseConsumer = client(&[("group.id", "verify"), ("enable.auto.commit", "false")])
        .create()
        .unwrap();
    let (_, end) = consumer
        .fetch_watermarks("faulty", 0, Duration::from_secs(20))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("faulty", 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut log = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = -1;
    while last + 1 < end {
        assert!(
            Instant::now() < deadline,
            "stuck reading at {last} of {end}"
        );
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.unwrap();
            last = m.offset();
            log.push(
                std::str::from_utf8(m.payload().unwrap())
                    .unwrap()
                    .parse::<u64>()
                    .unwrap(),
            );
        }
    }
    for w in log.windows(2) {
        assert!(
            w[0] < w[1],
            "out of order or doubled: {} then {}",
            w[0],
            w[1]
        );
    }
    let present: HashSet<u64> = log.iter().copied().collect();
    let missing: Vec<u64> = acked
        .iter()
        .copied()
        .filter(|n| !present.contains(n))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged records lost: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_uploaded_but_never_committed_are_reconciled_away() {
    let env = common::env();
    let pool = common::pool(&env.pg).await;
    let store = common::store(&env.s3);
    let cluster_id = "c1";
    // A broker crashed between PUT and COMMIT two hours ago: its object's
    // UUIDv7 carries that time. A committed object of the same age stays.
    let two_hours_ago = herald_broker::now_ms() as u64 - 2 * 3600 * 1000;
    let ts = uuid::Timestamp::from_unix(uuid::NoContext, two_hours_ago / 1000, 0);
    let orphan = herald_cluster::objects::wal_key("", cluster_id, uuid::Uuid::new_v7(ts));
    let committed = herald_cluster::objects::wal_key("", cluster_id, uuid::Uuid::new_v7(ts));
    let fresh = herald_cluster::objects::wal_key("", cluster_id, uuid::Uuid::now_v7());
    for k in [&orphan, &committed, &fresh] {
        store
            .put(k, PutPayload::from_static(b"batches"))
            .await
            .unwrap();
    }
    let c = pool.get().await.unwrap();
    c.execute(
        "INSERT INTO objects (key, size, broker_id, results) VALUES ($1, 7, 1, '')",
        &[&committed.to_string()],
    )
    .await
    .unwrap();
    let deleted = herald_cluster::maintenance::reconcile_orphans(
        &pool,
        &store,
        "",
        cluster_id,
        Duration::from_secs(3600),
    )
    .await
    .unwrap();
    assert_eq!(deleted, 1);
    assert!(store.head(&orphan).await.is_err(), "the orphan is gone");
    assert!(
        store.head(&committed).await.is_ok(),
        "a committed object stays"
    );
    assert!(
        store.head(&fresh).await.is_ok(),
        "a young object (commit maybe in flight) stays"
    );
}

/// A store that ignores `If-None-Match: *` (writes over what is there).
#[derive(Debug)]
struct Overwriting(Store);

impl std::fmt::Display for Overwriting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Overwriting({})", self.0)
    }
}

#[async_trait]
impl ObjectStore for Overwriting {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        _opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.0
            .put_opts(location, payload, PutOptions::default())
            .await
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.0.put_multipart_opts(location, opts).await
    }
    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.0.get_opts(location, options).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.0.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.0.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.0.list_with_delimiter(prefix).await
    }
    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.0.copy_opts(from, to, options).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_without_conditional_writes_is_refused_at_start() {
    let env = common::env();
    let dir = tempfile::tempdir().unwrap();
    let store: Store = Arc::new(Overwriting(common::store(&env.s3)));
    let config = herald_broker::BrokerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        ..herald_broker::BrokerConfig::default()
    };
    let started = herald_cluster::start_with_stores(
        config,
        common::cluster_config(&env),
        store.clone(),
        store,
        String::new(),
    )
    .await;
    let err = match started {
        Ok(_) => panic!("a broker started on a store that overwrites"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains("If-None-Match") && err.contains("refuses to start"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreferenced_objects_are_deleted_after_their_grace_period() {
    let env = common::env();
    let pool = common::pool(&env.pg).await;
    let store = common::store(&env.s3);
    let due = Path::from("wal/c1/due");
    let waiting = Path::from("wal/c1/waiting");
    for k in [&due, &waiting] {
        store.put(k, PutPayload::from_static(b"x")).await.unwrap();
    }
    let c = pool.get().await.unwrap();
    c.execute(
        "INSERT INTO objects (key, size, broker_id, results, state, delete_after) VALUES
           ('wal/c1/due', 1, 1, '', 'deleting', now() - interval '1 second'),
           ('wal/c1/waiting', 1, 1, '', 'deleting', now() + interval '1 hour')",
        &[],
    )
    .await
    .unwrap();
    let n = herald_cluster::maintenance::collect_garbage(&pool, &store)
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert!(store.head(&due).await.is_err());
    assert!(
        store.head(&waiting).await.is_ok(),
        "still in its grace period"
    );
    let left: Vec<String> = c
        .query("SELECT key FROM objects", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, vec!["wal/c1/waiting".to_string()]);
}
