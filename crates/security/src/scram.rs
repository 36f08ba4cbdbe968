//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka serves them
//! (KIP-84): no channel binding, credentials stored as salt, iterations,
//! StoredKey and ServerKey, never the password.

use serde::{Deserialize, Serialize};

/// Kafka's bounds on SCRAM iterations (`ScramMechanism.java`).
pub const ITERATIONS_MIN: u32 = 4096;
pub const ITERATIONS_MAX: u32 = 16384;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ScramMechanism {
    #[serde(rename = "SCRAM-SHA-256")]
    Sha256,
    #[serde(rename = "SCRAM-SHA-512")]
    Sha512,
}

impl ScramMechanism {
    /// "SCRAM-SHA-256" / "SCRAM-SHA-512".
    pub fn name(self) -> &'static str {
        todo!()
    }
    pub fn from_name(name: &str) -> Option<ScramMechanism> {
        todo!()
    }
    /// KIP-554's mechanism type: 1 = SHA-256, 2 = SHA-512.
    pub fn kafka_type(self) -> i8 {
        todo!()
    }
    pub fn from_kafka_type(t: i8) -> Option<ScramMechanism> {
        todo!()
    }
    /// Digest (and so key and salted-password) length in bytes: 32 or 64.
    pub fn digest_bytes(self) -> usize {
        todo!()
    }
}

/// What the broker stores for one user and mechanism.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    pub mechanism: ScramMechanism,
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl ScramCredential {
    /// From a password (the CLI's offline `herald user create`).
    pub fn from_password(
        mechanism: ScramMechanism,
        password: &[u8],
        salt: &[u8],
        iterations: u32,
    ) -> ScramCredential {
        todo!()
    }
    /// From a salted password (AlterUserScramCredentials carries this, so the
    /// password never reaches the broker).
    pub fn from_salted_password(
        mechanism: ScramMechanism,
        salted_password: &[u8],
        salt: Vec<u8>,
        iterations: u32,
    ) -> ScramCredential {
        todo!()
    }
    /// With a fresh random salt.
    pub fn generate(mechanism: ScramMechanism, password: &[u8], iterations: u32) -> ScramCredential {
        todo!()
    }
    /// Whether `password` is this credential's (SASL/PLAIN verifies against
    /// the SCRAM credentials); constant time in the key comparison.
    pub fn verify_password(&self, password: &[u8]) -> bool {
        todo!()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScramError {
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    #[error("invalid credentials")]
    BadProof,
}

/// A parsed client-first message.
#[derive(Clone, Debug)]
pub struct ClientFirst {
    /// Unescaped (`=3D` → `=`, `=2C` → `,`).
    pub username: String,
    /// `tokenauth=true` extension (delegation tokens, which Herald refuses).
    pub token_auth: bool,
    bare: String,
    nonce: String,
}

pub fn parse_client_first(msg: &[u8]) -> Result<ClientFirst, ScramError> {
    todo!()
}

/// The server side of one exchange, between server-first and server-final.
pub struct ScramServer {
    mechanism: ScramMechanism,
    username: String,
    credential: Option<ScramCredential>,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

impl ScramServer {
    /// Answers client-first. `credential` None (unknown user): the answer
    /// carries a salt derived from `secret` and the username, so an unknown
    /// user looks like a known one, and `finish` always fails.
    pub fn start(
        mechanism: ScramMechanism,
        first: ClientFirst,
        credential: Option<ScramCredential>,
        secret: &[u8],
    ) -> (ScramServer, Vec<u8>) {
        todo!()
    }
    /// Checks client-final's proof; Ok carries server-final (`v=...`).
    pub fn finish(self, client_final: &[u8]) -> Result<Vec<u8>, ScramError> {
        todo!()
    }
    pub fn username(&self) -> &str {
        &self.username
    }
}
