//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka serves them
//! (KIP-84): no channel binding, credentials stored as salt, iterations,
//! StoredKey and ServerKey, never the password.

use std::num::NonZeroU32;

use aws_lc_rs::{constant_time, digest, hmac, pbkdf2};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

/// Kafka's bounds on SCRAM iterations (`ScramMechanism.java`).
pub const ITERATIONS_MIN: u32 = 4096;
pub const ITERATIONS_MAX: u32 = 16384;

/// Longest client-first or client-final message accepted: real ones are a
/// few hundred bytes, and the bound keeps parsing and hashing cheap.
pub const MESSAGE_MAX_BYTES: usize = 4096;

/// Length of the salt `generate` draws and of an unknown user's fake salt
/// (the same, so the two cannot be told apart by length).
const SALT_BYTES: usize = 32;

/// Random bytes appended (base64) to the client's nonce.
const SERVER_NONCE_BYTES: usize = 24;

/// Iterations announced for an unknown user: Kafka's default and minimum,
/// so the most common value for real users.
const FAKE_ITERATIONS: u32 = ITERATIONS_MIN;

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
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }
    pub fn from_name(name: &str) -> Option<ScramMechanism> {
        match name {
            "SCRAM-SHA-256" => Some(ScramMechanism::Sha256),
            "SCRAM-SHA-512" => Some(ScramMechanism::Sha512),
            _ => None,
        }
    }
    /// KIP-554's mechanism type: 1 = SHA-256, 2 = SHA-512.
    pub fn kafka_type(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }
    pub fn from_kafka_type(t: i8) -> Option<ScramMechanism> {
        match t {
            1 => Some(ScramMechanism::Sha256),
            2 => Some(ScramMechanism::Sha512),
            _ => None,
        }
    }
    /// Digest (and so key and salted-password) length in bytes: 32 or 64.
    pub fn digest_bytes(self) -> usize {
        match self {
            ScramMechanism::Sha256 => 32,
            ScramMechanism::Sha512 => 64,
        }
    }

    fn hmac_algorithm(self) -> hmac::Algorithm {
        match self {
            ScramMechanism::Sha256 => hmac::HMAC_SHA256,
            ScramMechanism::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn digest_algorithm(self) -> &'static digest::Algorithm {
        match self {
            ScramMechanism::Sha256 => &digest::SHA256,
            ScramMechanism::Sha512 => &digest::SHA512,
        }
    }

    fn pbkdf2_algorithm(self) -> pbkdf2::Algorithm {
        match self {
            ScramMechanism::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            ScramMechanism::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    /// HMAC(key, data).
    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        let key = hmac::Key::new(self.hmac_algorithm(), key);
        hmac::sign(&key, data).as_ref().to_vec()
    }

    /// H(data).
    fn h(self, data: &[u8]) -> Vec<u8> {
        digest::digest(self.digest_algorithm(), data)
            .as_ref()
            .to_vec()
    }

    /// Hi(password, salt, i) = PBKDF2-HMAC with a digest-length output.
    fn hi(self, password: &[u8], salt: &[u8], iterations: NonZeroU32) -> Vec<u8> {
        let mut salted_password = vec![0u8; self.digest_bytes()];
        pbkdf2::derive(
            self.pbkdf2_algorithm(),
            iterations,
            salt,
            password,
            &mut salted_password,
        );
        salted_password
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
        // Hi is undefined for 0 iterations; callers check the Kafka bounds,
        // and clamping (and storing the clamped count) keeps this total.
        let iterations = NonZeroU32::new(iterations).unwrap_or(NonZeroU32::MIN);
        let salted_password = mechanism.hi(password, salt, iterations);
        ScramCredential::from_salted_password(
            mechanism,
            &salted_password,
            salt.to_vec(),
            iterations.get(),
        )
    }
    /// From a salted password (AlterUserScramCredentials carries this, so the
    /// password never reaches the broker).
    pub fn from_salted_password(
        mechanism: ScramMechanism,
        salted_password: &[u8],
        salt: Vec<u8>,
        iterations: u32,
    ) -> ScramCredential {
        let client_key = mechanism.hmac(salted_password, b"Client Key");
        ScramCredential {
            mechanism,
            stored_key: mechanism.h(&client_key),
            server_key: mechanism.hmac(salted_password, b"Server Key"),
            salt,
            iterations,
        }
    }
    /// With a fresh random salt.
    pub fn generate(
        mechanism: ScramMechanism,
        password: &[u8],
        iterations: u32,
    ) -> ScramCredential {
        let salt: [u8; SALT_BYTES] = crate::random_bytes();
        ScramCredential::from_password(mechanism, password, &salt, iterations)
    }
    /// Whether `password` is this credential's (SASL/PLAIN verifies against
    /// the SCRAM credentials); constant time in the key comparison.
    pub fn verify_password(&self, password: &[u8]) -> bool {
        let Some(iterations) = NonZeroU32::new(self.iterations) else {
            return false;
        };
        let salted_password = self.mechanism.hi(password, &self.salt, iterations);
        let client_key = self.mechanism.hmac(&salted_password, b"Client Key");
        let stored_key = self.mechanism.h(&client_key);
        constant_time::verify_slices_are_equal(&stored_key, &self.stored_key).is_ok()
    }

    /// Whether the keys have the mechanism's length (a store edited by hand
    /// could hold anything); a credential that fails this is never used.
    fn is_well_formed(&self) -> bool {
        let d = self.mechanism.digest_bytes();
        self.stored_key.len() == d && self.server_key.len() == d
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScramError {
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    #[error("invalid credentials")]
    BadProof,
    /// Client side: the server answered `e=...` (RFC 5802 server-error).
    #[error("the server refused the authentication: {0}")]
    ServerError(String),
    /// Client side: server-final's `v=` is not the one the credentials give,
    /// so the server does not hold them (or the exchange was tampered with).
    #[error("the server's signature does not match (it does not know the credentials)")]
    BadServerSignature,
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
    /// As sent (`n,,`, `y,,` or `n,a=user,`): client-final's `c=` must
    /// carry exactly these bytes.
    gs2_header: String,
}

pub fn parse_client_first(msg: &[u8]) -> Result<ClientFirst, ScramError> {
    if msg.len() > MESSAGE_MAX_BYTES {
        return Err(ScramError::Malformed("message too long"));
    }
    let msg = std::str::from_utf8(msg).map_err(|_| ScramError::Malformed("not UTF-8"))?;

    // gs2-header = gs2-cbind-flag "," [authzid] ","
    let (flag, rest) = msg
        .split_once(',')
        .ok_or(ScramError::Malformed("no gs2 header"))?;
    match flag {
        // "y": the client could bind but thinks we cannot, which is true
        // (no -PLUS mechanism is offered), so it is no downgrade.
        "n" | "y" => {}
        f if f.starts_with("p=") => {
            return Err(ScramError::Malformed("channel binding is not supported"));
        }
        _ => return Err(ScramError::Malformed("bad gs2 channel-binding flag")),
    }
    let (authzid_attr, bare) = rest
        .split_once(',')
        .ok_or(ScramError::Malformed("no gs2 header"))?;
    let authzid = if authzid_attr.is_empty() {
        None
    } else {
        Some(
            authzid_attr
                .strip_prefix("a=")
                .ok_or(ScramError::Malformed("bad gs2 authzid"))?,
        )
    };
    let gs2_header = &msg[..msg.len() - bare.len()];

    // client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
    let mut attrs = bare.split(',');
    let user_attr = attrs.next().unwrap_or_default();
    if user_attr.starts_with("m=") {
        return Err(ScramError::Malformed(
            "mandatory extension is not supported",
        ));
    }
    let username = user_attr
        .strip_prefix("n=")
        .ok_or(ScramError::Malformed("no username"))?;
    let username = unescape_saslname(username)?;
    if username.is_empty() {
        return Err(ScramError::Malformed("empty username"));
    }
    let nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or(ScramError::Malformed("no nonce"))?;
    if !is_printable(nonce) {
        return Err(ScramError::Malformed("bad nonce"));
    }
    let mut token_auth = false;
    for attr in attrs {
        let (key, value) = parse_extension(attr)?;
        match key {
            "m" => {
                return Err(ScramError::Malformed(
                    "mandatory extension is not supported",
                ));
            }
            // Kafka reads it with Boolean.parseBoolean, which ignores case.
            "tokenauth" => token_auth = value.eq_ignore_ascii_case("true"),
            _ => {}
        }
    }
    if let Some(authzid) = authzid {
        // Kafka's ScramSaslServer refuses to act for another user.
        if unescape_saslname(authzid)? != username {
            return Err(ScramError::Malformed("authzid differs from the username"));
        }
    }
    Ok(ClientFirst {
        username,
        token_auth,
        bare: bare.to_string(),
        nonce: nonce.to_string(),
        gs2_header: gs2_header.to_string(),
    })
}

/// RFC 5802 saslname: `=2C` and `=3D` are the only escapes; NUL is refused.
/// (`,` cannot occur: the caller split on it.)
fn unescape_saslname(escaped: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(escaped.len());
    let mut rest = escaped;
    while let Some(at) = rest.find(['=', '\0']) {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("=2C") {
            out.push(',');
            rest = after;
        } else if let Some(after) = tail.strip_prefix("=3D") {
            out.push('=');
            rest = after;
        } else {
            return Err(ScramError::Malformed("bad escape in username"));
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// RFC 5802 `printable`: non-empty, %x21-7E except ','.
fn is_printable(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// `attr=value`, attr letters only and value non-empty (RFC 5802 attr-val).
fn parse_extension(attr: &str) -> Result<(&str, &str), ScramError> {
    let (key, value) = attr
        .split_once('=')
        .ok_or(ScramError::Malformed("bad extension"))?;
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphabetic()) || value.is_empty() {
        return Err(ScramError::Malformed("bad extension"));
    }
    Ok((key, value))
}

/// An unknown user's salt: stable across attempts (a fresh random one per
/// attempt would give the user away), different per user and per mechanism
/// (a real user's two credentials have independent salts), and not
/// predictable without `secret`.
fn fake_salt(mechanism: ScramMechanism, username: &str, secret: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(64 + username.len());
    data.extend_from_slice(b"herald-fake-salt");
    data.extend_from_slice(mechanism.name().as_bytes());
    data.push(0);
    data.extend_from_slice(username.as_bytes());
    let mut salt = ScramMechanism::Sha256.hmac(secret, &data);
    salt.truncate(SALT_BYTES);
    salt
}

/// The server side of one exchange, between server-first and server-final.
pub struct ScramServer {
    mechanism: ScramMechanism,
    username: String,
    credential: Option<ScramCredential>,
    client_first_bare: String,
    server_first: String,
    nonce: String,
    gs2_header: String,
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
        let random: [u8; SERVER_NONCE_BYTES] = crate::random_bytes();
        // Standard base64 is printable and has no ','.
        let suffix = B64.encode(random);
        ScramServer::start_with_nonce_suffix(mechanism, first, credential, secret, &suffix)
    }

    /// `start` with a given server nonce suffix (tests use RFC 7677's).
    fn start_with_nonce_suffix(
        mechanism: ScramMechanism,
        first: ClientFirst,
        credential: Option<ScramCredential>,
        secret: &[u8],
        nonce_suffix: &str,
    ) -> (ScramServer, Vec<u8>) {
        // A credential of another mechanism or with bad key lengths cannot
        // verify anything: answer as for an unknown user.
        let credential = credential.filter(|c| c.mechanism == mechanism && c.is_well_formed());
        let (salt, iterations) = match &credential {
            Some(c) => (c.salt.clone(), c.iterations),
            None => (
                fake_salt(mechanism, &first.username, secret),
                FAKE_ITERATIONS,
            ),
        };
        let nonce = format!("{}{}", first.nonce, nonce_suffix);
        let server_first = format!("r={},s={},i={}", nonce, B64.encode(&salt), iterations);
        let reply = server_first.clone().into_bytes();
        let server = ScramServer {
            mechanism,
            username: first.username,
            credential,
            client_first_bare: first.bare,
            server_first,
            nonce,
            gs2_header: first.gs2_header,
        };
        (server, reply)
    }

    /// Checks client-final's proof; Ok carries server-final (`v=...`).
    pub fn finish(self, client_final: &[u8]) -> Result<Vec<u8>, ScramError> {
        if client_final.len() > MESSAGE_MAX_BYTES {
            return Err(ScramError::Malformed("message too long"));
        }
        let client_final =
            std::str::from_utf8(client_final).map_err(|_| ScramError::Malformed("not UTF-8"))?;

        // client-final-message = channel-binding "," nonce ["," extensions] "," proof
        // Base64 has no ',', so the proof is what follows the last one.
        let (without_proof, proof_attr) = client_final
            .rsplit_once(',')
            .ok_or(ScramError::Malformed("no proof"))?;
        let proof_b64 = proof_attr
            .strip_prefix("p=")
            .ok_or(ScramError::Malformed("proof must be last"))?;
        let mut attrs = without_proof.split(',');
        let channel_binding = attrs
            .next()
            .and_then(|a| a.strip_prefix("c="))
            .ok_or(ScramError::Malformed("no channel binding"))?;
        let nonce = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or(ScramError::Malformed("no nonce"))?;
        for attr in attrs {
            parse_extension(attr)?;
        }
        let channel_binding = B64
            .decode(channel_binding)
            .map_err(|_| ScramError::Malformed("channel binding is not base64"))?;
        if channel_binding != self.gs2_header.as_bytes() {
            return Err(ScramError::Malformed(
                "channel binding differs from the gs2 header",
            ));
        }
        // librdkafka before 2.6.1 (librdkafka#4895; Debian 12's kcat links
        // 2.0.2) sends the client nonce twice: `r=<client><client><server>`.
        // Kafka 3.8.1 to 3.9 accept a nonce that ends with the server's, and
        // so does Herald: the proof is computed over this very message, so it
        // is still bound to the server's nonce.
        if nonce != self.nonce && !nonce.ends_with(self.nonce.as_str()) {
            return Err(ScramError::Malformed("nonce differs from the server's"));
        }
        let proof = B64
            .decode(proof_b64)
            .map_err(|_| ScramError::Malformed("proof is not base64"))?;
        let digest_bytes = self.mechanism.digest_bytes();
        if proof.len() != digest_bytes {
            return Err(ScramError::Malformed("proof has the wrong length"));
        }

        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, without_proof
        );
        // An unknown user is checked against a zero key (no preimage of H is
        // zero), so both paths hash the same amount before failing.
        let zero_key = vec![0u8; digest_bytes];
        let (stored_key, server_key) = match &self.credential {
            Some(c) => (&c.stored_key[..], &c.server_key[..]),
            None => (&zero_key[..], &zero_key[..]),
        };
        let client_signature = self.mechanism.hmac(stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        let matches =
            constant_time::verify_slices_are_equal(&self.mechanism.h(&client_key), stored_key)
                .is_ok();
        if !matches || self.credential.is_none() {
            return Err(ScramError::BadProof);
        }
        let server_signature = self.mechanism.hmac(server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)).into_bytes())
    }
    pub fn username(&self) -> &str {
        &self.username
    }
    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }
}

/// SaltedPassword = Hi(password, salt, i), what AlterUserScramCredentials
/// carries (so the password itself never reaches the broker). Zero
/// iterations is treated as one, as in `ScramCredential::from_password`.
pub fn salted_password(
    mechanism: ScramMechanism,
    password: &[u8],
    salt: &[u8],
    iterations: u32,
) -> Vec<u8> {
    let iterations = NonZeroU32::new(iterations).unwrap_or(NonZeroU32::MIN);
    mechanism.hi(password, salt, iterations)
}

/// Random bytes (base64) of the client's nonce.
const CLIENT_NONCE_BYTES: usize = 24;

/// Most iterations a client computes: more than any real server asks for
/// (Kafka's maximum is 16384), small enough that a hostile server cannot make
/// the client spin for long. The lower bound is Kafka's `ITERATIONS_MIN`, as
/// in Kafka's own client: a server asking for fewer would make a captured
/// proof cheap to brute-force.
pub const CLIENT_ITERATIONS_MAX: u32 = 1_000_000;

/// RFC 5802 saslname: `=` → `=3D`, `,` → `=2C`.
fn escape_saslname(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '=' => out.push_str("=3D"),
            ',' => out.push_str("=2C"),
            c => out.push(c),
        }
    }
    out
}

/// The client side of one exchange (no channel binding, no authzid), as a
/// Kafka client runs it inside SaslAuthenticate:
/// `client_first` → server-first → `client_final` → server-final →
/// `verify_server_final`.
pub struct ScramClient {
    mechanism: ScramMechanism,
    password: Option<Vec<u8>>,
    nonce: String,
    client_first_bare: String,
    /// ServerSignature, known once client-final is computed.
    server_signature: Option<Vec<u8>>,
}

impl ScramClient {
    pub fn new(mechanism: ScramMechanism, username: &str, password: &[u8]) -> ScramClient {
        let random: [u8; CLIENT_NONCE_BYTES] = crate::random_bytes();
        // Standard base64 is printable and has no ','.
        ScramClient::with_nonce(mechanism, username, password, B64.encode(random))
    }

    fn with_nonce(
        mechanism: ScramMechanism,
        username: &str,
        password: &[u8],
        nonce: String,
    ) -> ScramClient {
        let client_first_bare = format!("n={},r={}", escape_saslname(username), nonce);
        ScramClient {
            mechanism,
            password: Some(password.to_vec()),
            nonce,
            client_first_bare,
            server_signature: None,
        }
    }

    /// `n,,n=<user>,r=<nonce>`.
    pub fn client_first(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    /// Answers server-first with client-final (`c=biws,r=...,p=...`). The
    /// password is dropped here: a client runs one exchange.
    pub fn client_final(&mut self, server_first: &[u8]) -> Result<Vec<u8>, ScramError> {
        if server_first.len() > MESSAGE_MAX_BYTES {
            return Err(ScramError::Malformed("message too long"));
        }
        let server_first =
            std::str::from_utf8(server_first).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        if let Some(e) = server_first.strip_prefix("e=") {
            return Err(ScramError::ServerError(e.to_string()));
        }
        // server-first-message = [reserved-mext ","] nonce "," salt ","
        //                        iteration-count ["," extensions]
        let mut attrs = server_first.split(',');
        let nonce_attr = attrs.next().unwrap_or_default();
        if nonce_attr.starts_with("m=") {
            return Err(ScramError::Malformed(
                "mandatory extension is not supported",
            ));
        }
        let nonce = nonce_attr
            .strip_prefix("r=")
            .ok_or(ScramError::Malformed("no nonce"))?;
        // The server appends its part to ours.
        if !nonce.starts_with(&self.nonce)
            || nonce.len() <= self.nonce.len()
            || !is_printable(nonce)
        {
            return Err(ScramError::Malformed("nonce does not extend the client's"));
        }
        let salt = attrs
            .next()
            .and_then(|a| a.strip_prefix("s="))
            .ok_or(ScramError::Malformed("no salt"))?;
        let salt = B64
            .decode(salt)
            .map_err(|_| ScramError::Malformed("salt is not base64"))?;
        if salt.is_empty() {
            return Err(ScramError::Malformed("empty salt"));
        }
        let iterations: u32 = attrs
            .next()
            .and_then(|a| a.strip_prefix("i="))
            .ok_or(ScramError::Malformed("no iteration count"))?
            .parse()
            .map_err(|_| ScramError::Malformed("bad iteration count"))?;
        if !(ITERATIONS_MIN..=CLIENT_ITERATIONS_MAX).contains(&iterations) {
            return Err(ScramError::Malformed("iteration count out of bounds"));
        }
        for attr in attrs {
            parse_extension(attr)?;
        }
        let password = self
            .password
            .take()
            .ok_or(ScramError::Malformed("client-final already computed"))?;
        let iterations = NonZeroU32::new(iterations).unwrap_or(NonZeroU32::MIN);
        let salted_password = self.mechanism.hi(&password, &salt, iterations);
        let client_key = self.mechanism.hmac(&salted_password, b"Client Key");
        let stored_key = self.mechanism.h(&client_key);
        // c= is base64("n,,"): no channel binding, no authzid.
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, server_first, without_proof
        );
        let client_signature = self.mechanism.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = self.mechanism.hmac(&salted_password, b"Server Key");
        self.server_signature = Some(self.mechanism.hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Checks server-final (`v=...`): Ok only if the server proved it holds
    /// the credentials. `e=...` is the server's refusal.
    pub fn verify_server_final(&self, server_final: &[u8]) -> Result<(), ScramError> {
        if server_final.len() > MESSAGE_MAX_BYTES {
            return Err(ScramError::Malformed("message too long"));
        }
        let server_final =
            std::str::from_utf8(server_final).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        // server-final-message = (server-error / verifier) ["," extensions]
        let mut attrs = server_final.split(',');
        let first = attrs.next().unwrap_or_default();
        if let Some(e) = first.strip_prefix("e=") {
            return Err(ScramError::ServerError(e.to_string()));
        }
        let verifier = first
            .strip_prefix("v=")
            .ok_or(ScramError::Malformed("no verifier"))?;
        for attr in attrs {
            parse_extension(attr)?;
        }
        let expected = self
            .server_signature
            .as_ref()
            .ok_or(ScramError::Malformed("server-final before client-final"))?;
        let signature = B64
            .decode(verifier)
            .map_err(|_| ScramError::Malformed("verifier is not base64"))?;
        constant_time::verify_slices_are_equal(&signature, expected)
            .map_err(|_| ScramError::BadServerSignature)
    }
}

#[cfg(test)]
mod tests;
