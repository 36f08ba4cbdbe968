//! A minimal blocking Kafka client over one TCP connection, for the few calls
//! librdkafka's API does not expose (ApiVersions ranges, DescribeLogDirs,
//! IncrementalAlterConfigs, the controller id).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// Largest response this client reads.
const RESPONSE_BYTES_MAX: usize = 64 * 1024 * 1024;

pub struct RawClient {
    stream: TcpStream,
    correlation_id: i32,
}

impl RawClient {
    /// Connects to the first reachable bootstrap broker.
    pub fn connect(brokers: &str) -> anyhow::Result<RawClient> {
        let mut last = None;
        for b in brokers.split(',').map(str::trim).filter(|b| !b.is_empty()) {
            let addrs: Vec<_> = match std::net::ToSocketAddrs::to_socket_addrs(b) {
                Ok(a) => a.collect(),
                Err(e) => {
                    last = Some(anyhow::anyhow!("{b}: {e}"));
                    continue;
                }
            };
            for a in addrs {
                match TcpStream::connect_timeout(&a, Duration::from_secs(5)) {
                    Ok(stream) => {
                        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
                        return Ok(RawClient {
                            stream,
                            correlation_id: 0,
                        });
                    }
                    Err(e) => last = Some(anyhow::anyhow!("{b}: {e}")),
                }
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no brokers given")))
            .with_context(|| format!("cannot reach the cluster at {brokers}"))
    }

    pub fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        request: &Req,
    ) -> anyhow::Result<Resp> {
        self.correlation_id += 1;
        let mut header = RequestHeader::default();
        header.request_api_key = key as i16;
        header.request_api_version = version;
        header.correlation_id = self.correlation_id;
        header.client_id = Some(StrBytes::from_static_str("herald-cli"));
        let mut body = BytesMut::new();
        header.encode(&mut body, key.request_header_version(version))?;
        request.encode(&mut body, version)?;
        let mut frame = Vec::with_capacity(body.len() + 4);
        frame.extend_from_slice(&(body.len() as i32).to_be_bytes());
        frame.extend_from_slice(&body);
        self.stream.write_all(&frame)?;
        let mut size = [0u8; 4];
        self.stream
            .read_exact(&mut size)
            .context("the broker closed the connection")?;
        let size = i32::from_be_bytes(size);
        if size < 4 || size as usize > RESPONSE_BYTES_MAX {
            bail!("bad response size {size}");
        }
        let mut buf = vec![0u8; size as usize];
        self.stream.read_exact(&mut buf)?;
        let mut buf = Bytes::from(buf);
        let correlation = buf.get_i32();
        if correlation != self.correlation_id {
            bail!(
                "response correlation id {correlation}, expected {}",
                self.correlation_id
            );
        }
        if key.response_header_version(version) >= 1 {
            // Tagged fields of the response header (we send none, expect none).
            let n = buf.get_u8();
            if n != 0 {
                bail!("unexpected tagged fields in response header");
            }
        }
        Resp::decode(&mut buf, version)
    }
}
