//! SASL/PLAIN (RFC 4616): `authzid NUL authcid NUL passwd`.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlainError {
    #[error("malformed PLAIN token: {0}")]
    Malformed(&'static str),
    #[error("authorization id differs from the user name")]
    AuthzidMismatch,
}

#[derive(Debug)]
pub struct PlainToken {
    pub username: String,
    pub password: Vec<u8>,
}

/// Parses a PLAIN token; an authzid must be empty or the username (as Kafka's
/// PlainSaslServer requires).
pub fn parse(token: &[u8]) -> Result<PlainToken, PlainError> {
    todo!()
}
