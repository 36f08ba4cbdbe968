//! The console's Kafka client: requests go through the broker's own
//! `handlers::dispatch`, in process, as the logged-in principal. So the
//! console is authorized exactly as a Kafka client with the same credentials
//! would be (ACLs, validation, limits), and works on every storage engine.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

use herald_broker::Broker;
use herald_broker::handlers::{self, Connection, Reply};

/// What the console puts in the request header's client id (the event-flow
/// page leaves it out of the graph).
pub const CONSOLE_CLIENT_ID: &str = "herald-console";

#[derive(Debug, thiserror::Error)]
pub enum KafkaCallError {
    #[error("could not encode {api:?} v{version}: {reason}")]
    Encode {
        api: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("the broker refused the request: {0}")]
    Refused(String),
    #[error("the broker closed the request without an answer")]
    NoAnswer,
    #[error("could not decode the {api:?} v{version} answer: {reason}")]
    Decode {
        api: ApiKey,
        version: i16,
        reason: String,
    },
}

/// One browser session's identity as Kafka sees it.
#[derive(Clone)]
pub struct KafkaClient {
    broker: Arc<Broker>,
    conn: Connection,
    correlation: Arc<AtomicI32>,
}

impl KafkaClient {
    /// `principal` is `User:NAME`; `peer` the browser's address (ACL hosts).
    pub fn new(broker: Arc<Broker>, principal: &str, peer: SocketAddr) -> KafkaClient {
        // Metadata answers the endpoints of the listener a request came in
        // on; the console's requests count as the first listener's.
        let listener = broker
            .endpoints
            .first()
            .map(|e| e.listener.clone())
            .unwrap_or_else(|| "PLAINTEXT".to_string());
        KafkaClient {
            conn: Connection {
                peer,
                client_ip: Arc::from(peer.ip().to_string()),
                listener: Arc::from(listener),
                principal: Arc::from(principal),
            },
            broker,
            correlation: Arc::new(AtomicI32::new(1)),
        }
    }

    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    pub fn principal(&self) -> &str {
        &self.conn.principal
    }

    /// Whether this principal may do `operation` on the resource (no log
    /// line on a denial: for filtering what a page lists).
    pub fn may(
        &self,
        operation: herald_security::acl::Operation,
        resource_type: herald_security::acl::ResourceType,
        name: &str,
    ) -> bool {
        self.broker.security.allowed_quietly(
            &self.conn.principal,
            &self.conn.client_ip,
            operation,
            resource_type,
            name,
        )
    }

    /// Sends `request` at `version` and waits for its answer.
    pub async fn call<R: Request>(
        &self,
        request: &R,
        version: i16,
    ) -> Result<R::Response, KafkaCallError> {
        let api = ApiKey::try_from(R::KEY).map_err(|_| KafkaCallError::Encode {
            api: ApiKey::ApiVersions,
            version,
            reason: format!("unknown api key {}", R::KEY),
        })?;
        let correlation_id = self.correlation.fetch_add(1, Ordering::Relaxed);
        let mut header = RequestHeader::default();
        header.request_api_key = R::KEY;
        header.request_api_version = version;
        header.correlation_id = correlation_id;
        header.client_id = Some(StrBytes::from_static_str(CONSOLE_CLIENT_ID));
        let mut buf = BytesMut::with_capacity(256);
        let encode_err = |e: anyhow::Error| KafkaCallError::Encode {
            api,
            version,
            reason: e.to_string(),
        };
        header
            .encode(&mut buf, R::header_version(version))
            .map_err(encode_err)?;
        request.encode(&mut buf, version).map_err(encode_err)?;
        let req = match handlers::parse(buf.freeze()) {
            Ok(Ok(req)) => req,
            Ok(Err(_)) => return Err(KafkaCallError::Refused(format!("{api:?} v{version}"))),
            Err(e) => return Err(KafkaCallError::Refused(e.to_string())),
        };
        let answer = match handlers::dispatch(&self.broker, req, &self.conn).await {
            Ok(Reply::Now(bytes)) => bytes,
            Ok(Reply::Later(pending)) => pending.await,
            Err(e) => return Err(KafkaCallError::Refused(e.to_string())),
        };
        let Some(mut frame) = answer.filter(|b| b.len() >= 4) else {
            return Err(KafkaCallError::NoAnswer);
        };
        decode_answer::<R::Response>(&mut frame, api, version)
    }
}

fn decode_answer<T: Decodable + HeaderVersion>(
    frame: &mut Bytes,
    api: ApiKey,
    version: i16,
) -> Result<T, KafkaCallError> {
    let decode_err = |e: anyhow::Error| KafkaCallError::Decode {
        api,
        version,
        reason: e.to_string(),
    };
    let _size = bytes::Buf::get_i32(frame);
    ResponseHeader::decode(frame, api.response_header_version(version)).map_err(decode_err)?;
    T::decode(frame, version).map_err(decode_err)
}

/// Kafka's name of an error code ("UNKNOWN_TOPIC_OR_PARTITION"), for answers.
pub fn error_name(code: i16) -> String {
    match kafka_protocol::ResponseError::try_from_code(code) {
        None => "NONE".to_string(),
        // Display gives the variant ("UnknownTopicOrPartition") or
        // "Unknown error code: N"; Kafka's names are upper snake case.
        Some(kafka_protocol::ResponseError::Unknown(code)) => format!("UNKNOWN_ERROR_{code}"),
        Some(e) => {
            let mut name = String::new();
            for (i, c) in e.to_string().chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    name.push('_');
                }
                name.push(c.to_ascii_uppercase());
            }
            name
        }
    }
}
