//! Herald's security: TLS termination, SASL authentication (PLAIN and
//! SCRAM-SHA-256/512), principals taken from client certificates, and Kafka's
//! ACL model. Nothing here knows the Kafka wire format or the broker; the
//! broker's connection loop and handlers call into it.

pub mod acl;
pub mod plain;
pub mod principal;
pub mod scram;
pub mod store;
pub mod tls;

#[cfg(test)]
pub mod testcert;

/// The principal of a connection that did not authenticate (PLAINTEXT, SSL
/// without a client certificate).
pub const ANONYMOUS: &str = "User:ANONYMOUS";
