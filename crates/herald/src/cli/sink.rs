//! `herald bench sink`: a null broker. It speaks just enough Kafka (ApiVersions,
//! Metadata, InitProducerId, Produce) to accept produce requests and acknowledge
//! them without storing anything, so benchmark results can be stated as a
//! fraction of what the load generator and the machine allow.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use clap::Args;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};

/// Same cap as the broker's default.
const FRAME_BYTES_MAX: usize = 100 * 1024 * 1024;

#[derive(Args, Debug)]
pub struct SinkArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9093")]
    pub listen: SocketAddr,
    /// Partitions reported for every topic.
    #[arg(long, default_value_t = 1)]
    pub partitions: i32,
}

struct Sink {
    host: String,
    port: i32,
    partitions: i32,
    next_producer_id: AtomicI64,
    offsets: Mutex<HashMap<(String, i32), i64>>,
}

const APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 0, 11),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::InitProducerId, 0, 4),
];

pub async fn run(args: SinkArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    eprintln!("herald bench sink: null broker listening listen={addr}");
    let sink = Arc::new(Sink {
        host: addr.ip().to_string(),
        port: addr.port() as i32,
        partitions: args.partitions.max(1),
        next_producer_id: AtomicI64::new(1),
        offsets: Mutex::new(HashMap::new()),
    });
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = accepted?;
                tokio::spawn(serve(sink.clone(), stream));
            }
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

fn encode<R: Encodable + HeaderVersion>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    r: &R,
) -> anyhow::Result<Bytes> {
    let mut buf = BytesMut::with_capacity(128);
    buf.put_i32(0);
    buf.put_i32(correlation_id);
    if key.response_header_version(version) >= 1 {
        buf.put_u8(0);
    }
    r.encode(&mut buf, version)?;
    let n = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&n.to_be_bytes());
    Ok(buf.freeze())
}

async fn serve(sink: Arc<Sink>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let (rd, wr) = stream.into_split();
    let mut rd = BufReader::with_capacity(64 * 1024, rd);
    // Reader and writer run apart, as in the broker, so the sink is not
    // slower than Herald for want of pipelining.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let writer = tokio::spawn(async move {
        let mut wr = BufWriter::with_capacity(64 * 1024, wr);
        while let Some(resp) = rx.recv().await {
            if !resp.is_empty() && wr.write_all(&resp).await.is_err() {
                return;
            }
            if rx.is_empty() && wr.flush().await.is_err() {
                return;
            }
        }
    });
    while let Ok(size) = rd.read_i32().await {
        if size < 10 || size as usize > FRAME_BYTES_MAX {
            break;
        }
        // Read into uninitialised capacity, as the broker does.
        let size = size as usize;
        let mut frame = BytesMut::with_capacity(size);
        let mut limited = (&mut rd).take(size as u64);
        let mut eof = false;
        while frame.len() < size {
            match limited.read_buf(&mut frame).await {
                Ok(0) | Err(_) => {
                    eof = true;
                    break;
                }
                Ok(_) => {}
            }
        }
        if eof {
            break;
        }
        let Ok(Some(resp)) = handle(&sink, frame.freeze()) else {
            break;
        };
        if tx.send(resp).await.is_err() {
            break;
        }
    }
    drop(tx);
    let _ = writer.await;
}

/// Ok(None): close; Ok(Some(empty)): no response (acks=0).
fn handle(sink: &Sink, mut frame: Bytes) -> anyhow::Result<Option<Bytes>> {
    let key = ApiKey::try_from(i16::from_be_bytes([frame[0], frame[1]]))
        .map_err(|_| anyhow::anyhow!("unknown key"))?;
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let Some(&(_, lo, hi)) = APIS.iter().find(|a| a.0 == key) else {
        return Ok(None);
    };
    let header = RequestHeader::decode(
        &mut frame,
        key.request_header_version(version.clamp(lo, hi)),
    )?;
    let cid = header.correlation_id;
    if version < lo || version > hi {
        if key == ApiKey::ApiVersions {
            let mut r = ApiVersionsResponse::default();
            r.error_code = 35;
            r.api_keys = api_keys();
            return Ok(Some(encode(key, 0, cid, &r)?));
        }
        return Ok(None);
    }
    Ok(Some(match key {
        ApiKey::ApiVersions => {
            let mut r = ApiVersionsResponse::default();
            r.api_keys = api_keys();
            encode(key, version, cid, &r)?
        }
        ApiKey::Metadata => {
            let req = MetadataRequest::decode(&mut frame, version)?;
            let mut r = MetadataResponse::default();
            let mut b = MetadataResponseBroker::default();
            b.node_id = BrokerId(1);
            b.host = StrBytes::from_string(sink.host.clone());
            b.port = sink.port;
            r.brokers = vec![b];
            r.controller_id = BrokerId(if version >= 1 { 1 } else { -1 });
            r.topics = req
                .topics
                .unwrap_or_default()
                .into_iter()
                .filter_map(|t| t.name)
                .map(|name| {
                    let mut t = MetadataResponseTopic::default();
                    t.name = Some(name);
                    t.partitions = (0..sink.partitions)
                        .map(|i| {
                            let mut p = MetadataResponsePartition::default();
                            p.partition_index = i;
                            p.leader_id = BrokerId(1);
                            p.replica_nodes = vec![BrokerId(1)];
                            p.isr_nodes = vec![BrokerId(1)];
                            p
                        })
                        .collect();
                    t
                })
                .collect();
            encode(key, version, cid, &r)?
        }
        ApiKey::InitProducerId => {
            let mut r = InitProducerIdResponse::default();
            r.producer_id = ProducerId(sink.next_producer_id.fetch_add(1, Ordering::Relaxed));
            r.producer_epoch = 0;
            encode(key, version, cid, &r)?
        }
        ApiKey::Produce => {
            let req = ProduceRequest::decode(&mut frame, version)?;
            let mut r = ProduceResponse::default();
            let mut offsets = sink
                .offsets
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?;
            for td in req.topic_data {
                let mut tr = TopicProduceResponse::default();
                tr.name = td.name.clone();
                for pd in td.partition_data {
                    let records: i64 = pd
                        .records
                        .as_ref()
                        .and_then(|b| herald_log::batch::split(b).ok())
                        .map(|bs| bs.iter().map(|b| (&b[57..61]).get_i32() as i64).sum())
                        .unwrap_or(0);
                    let next = offsets
                        .entry((td.name.0.to_string(), pd.index))
                        .or_insert(0);
                    let mut pr = PartitionProduceResponse::default();
                    pr.index = pd.index;
                    pr.base_offset = *next;
                    *next += records;
                    tr.partition_responses.push(pr);
                }
                r.responses.push(tr);
            }
            if req.acks == 0 {
                Bytes::new()
            } else {
                encode(key, version, cid, &r)?
            }
        }
        _ => return Ok(None),
    }))
}

fn api_keys() -> Vec<ApiVersion> {
    APIS.iter()
        .map(|(k, lo, hi)| {
            let mut v = ApiVersion::default();
            v.api_key = *k as i16;
            v.min_version = *lo;
            v.max_version = *hi;
            v
        })
        .collect()
}
