//! Object storage: the S3 client (the `object_store` crate), the start-up
//! probe for atomic conditional writes, and the keys Herald writes.
//!
//! Keys: `wal/<cluster id>/<uuid v7>`: one object per broker flush, holding
//! the raw record batches of many partitions back to back. A UUIDv7 carries its
//! creation time, which the orphan reconciler reads.

use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

pub type Store = Arc<dyn ObjectStore>;

/// `--object-store s3://BUCKET[/PREFIX]` with `--s3-endpoint`; credentials and
/// region come from the standard `AWS_*` variables.
pub fn s3(url: &str, endpoint: Option<&str>) -> anyhow::Result<(Store, String)> {
    let rest = url
        .strip_prefix("s3://")
        .with_context(|| format!("--object-store '{url}' must look like s3://BUCKET"))?;
    let (bucket, prefix) = match rest.split_once('/') {
        Some((b, p)) => (b, p.trim_matches('/').to_string()),
        None => (rest, String::new()),
    };
    anyhow::ensure!(!bucket.is_empty(), "--object-store '{url}' names no bucket");
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none()
    {
        builder = builder.with_region("us-east-1");
    }
    if let Some(ep) = endpoint {
        // A custom endpoint (SeaweedFS, MinIO, Ceph): path-style addressing,
        // and plain http allowed when the endpoint says http.
        builder = builder
            .with_endpoint(ep)
            .with_virtual_hosted_style_request(false)
            .with_allow_http(ep.starts_with("http://"));
    }
    // Over TLS the payload's integrity is TLS's: skip hashing every body for
    // the signature (SigV4 UNSIGNED-PAYLOAD, as AWS SDKs do over HTTPS; +18%
    // throughput at 1 KiB records on loopback, docs/benchmarks.md). Plain
    // http keeps signed payloads unless AWS_UNSIGNED_PAYLOAD says otherwise.
    if std::env::var_os("AWS_UNSIGNED_PAYLOAD").is_none()
        && endpoint.is_none_or(|ep| ep.starts_with("https://"))
    {
        builder = builder.with_unsigned_payload(true);
    }
    let store = builder.build().context("configuring the S3 client")?;
    Ok((Arc::new(store), prefix))
}

pub fn wal_key(prefix: &str, cluster_id: &str, id: uuid::Uuid) -> Path {
    if prefix.is_empty() {
        Path::from(format!("wal/{cluster_id}/{id}"))
    } else {
        Path::from(format!("{prefix}/wal/{cluster_id}/{id}"))
    }
}

/// Writes `bytes` under `key` only if nothing is there (`If-None-Match: *`).
pub async fn put_new(store: &Store, key: &Path, bytes: Bytes) -> object_store::Result<()> {
    let opts = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    store
        .put_opts(key, PutPayload::from(bytes), opts)
        .await
        .map(|_| ())
}

/// Checks that the store refuses a second create of one key: the fence Herald's
/// write path relies on. Stores that ignore `If-None-Match` are refused.
pub async fn probe_conditional_writes(store: &Store, prefix: &str) -> anyhow::Result<()> {
    let key = if prefix.is_empty() {
        Path::from(format!("probe/{}", uuid::Uuid::now_v7()))
    } else {
        Path::from(format!("{prefix}/probe/{}", uuid::Uuid::now_v7()))
    };
    put_new(store, &key, Bytes::from_static(b"herald probe 1"))
        .await
        .with_context(|| format!("writing the probe object {key} to the object store"))?;
    let second = put_new(store, &key, Bytes::from_static(b"herald probe 2")).await;
    let _ = store.delete(&key).await;
    match second {
        Err(object_store::Error::AlreadyExists { .. })
        | Err(object_store::Error::Precondition { .. }) => Ok(()),
        Ok(()) => anyhow::bail!(
            "the object store overwrote an object written with If-None-Match: * ; \
             Herald needs atomic conditional writes (AWS S3, MinIO, SeaweedFS >= 4.17, Ceph RGW) \
             and refuses to start on this store"
        ),
        Err(e) => {
            Err(anyhow::anyhow!(e).context("probing the object store for conditional writes"))
        }
    }
}
