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

/// Random bytes from the operating system's generator (nonces, salts, secrets).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // The OS generator failing is not recoverable for a security component;
    // aws-lc aborts internally in that case, so this error path is theoretical.
    if aws_lc_rs::rand::fill(&mut out).is_err() {
        panic!("the operating system's random generator failed");
    }
    out
}
