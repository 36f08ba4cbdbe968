//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka serves them
//! (KIP-84): no channel binding, credentials stored as salt, iterations,
//! StoredKey and ServerKey, never the password.

use std::num::NonZeroU32;

use aws_lc_rs::{constant_time, digest, hmac, pbkdf2, rand};
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
        let mut salt = [0u8; SALT_BYTES];
        fill_random(&mut salt);
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

fn fill_random(dest: &mut [u8]) {
    // AWS-LC's RAND_bytes aborts the process rather than report failure, so
    // this error is unreachable in practice; there is no safe fallback.
    rand::fill(dest).expect("system random generator failed");
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
        let mut random = [0u8; SERVER_NONCE_BYTES];
        fill_random(&mut random);
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
        let mut random = [0u8; CLIENT_NONCE_BYTES];
        fill_random(&mut random);
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
mod tests {
    use super::*;

    const SECRET: &[u8] = b"test fake-salt secret";

    /// A SCRAM client, written from RFC 5802 independently of `ScramServer`
    /// (it shares only the primitives, which the RFC 7677 vector pins):
    /// returns client-final and the server-final it expects.
    fn client_final(
        mechanism: ScramMechanism,
        password: &[u8],
        gs2_header: &str,
        client_first_bare: &str,
        server_first: &[u8],
    ) -> (String, String) {
        let server_first = std::str::from_utf8(server_first).unwrap();
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for attr in server_first.split(',') {
            let (k, v) = attr.split_once('=').unwrap();
            match k {
                "r" => nonce = Some(v.to_string()),
                "s" => salt = Some(B64.decode(v).unwrap()),
                "i" => iterations = Some(v.parse::<u32>().unwrap()),
                _ => panic!("unexpected server-first attribute {k}"),
            }
        }
        let salted_password = mechanism.hi(
            password,
            &salt.unwrap(),
            NonZeroU32::new(iterations.unwrap()).unwrap(),
        );
        let client_key = mechanism.hmac(&salted_password, b"Client Key");
        let stored_key = mechanism.h(&client_key);
        let without_proof = format!("c={},r={}", B64.encode(gs2_header), nonce.unwrap());
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let signature = mechanism.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = mechanism.hmac(&salted_password, b"Server Key");
        let server_signature = mechanism.hmac(&server_key, auth_message.as_bytes());
        (
            format!("{without_proof},p={}", B64.encode(proof)),
            format!("v={}", B64.encode(server_signature)),
        )
    }

    /// One exchange through the server with a client nonce "clientnonce";
    /// returns the server's result.
    fn exchange(
        mechanism: ScramMechanism,
        username_escaped: &str,
        credential: Option<ScramCredential>,
        password: &[u8],
    ) -> (Result<Vec<u8>, ScramError>, String) {
        let bare = format!("n={username_escaped},r=clientnonce");
        let first = parse_client_first(format!("n,,{bare}").as_bytes()).unwrap();
        let (server, server_first) = ScramServer::start(mechanism, first, credential, SECRET);
        let (final_msg, expected) = client_final(mechanism, password, "n,,", &bare, &server_first);
        (server.finish(final_msg.as_bytes()), expected)
    }

    #[test]
    fn mechanism_names_and_types() {
        for m in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
            assert_eq!(ScramMechanism::from_name(m.name()), Some(m));
            assert_eq!(ScramMechanism::from_kafka_type(m.kafka_type()), Some(m));
        }
        assert_eq!(ScramMechanism::Sha256.name(), "SCRAM-SHA-256");
        assert_eq!(ScramMechanism::Sha512.kafka_type(), 2);
        assert_eq!(ScramMechanism::Sha256.digest_bytes(), 32);
        assert_eq!(ScramMechanism::Sha512.digest_bytes(), 64);
        assert_eq!(ScramMechanism::from_name("scram-sha-256"), None);
        assert_eq!(ScramMechanism::from_kafka_type(0), None);
        assert_eq!(ScramMechanism::from_kafka_type(3), None);
        // The serde names are the mechanism names.
        assert_eq!(
            serde_json::to_string(&ScramMechanism::Sha512).unwrap(),
            "\"SCRAM-SHA-512\""
        );
    }

    #[test]
    fn rfc7677_sha256_vector() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let credential =
            ScramCredential::from_password(ScramMechanism::Sha256, b"pencil", &salt, 4096);
        let first = parse_client_first(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO").unwrap();
        assert_eq!(first.username, "user");
        assert!(!first.token_auth);
        let (server, server_first) = ScramServer::start_with_nonce_suffix(
            ScramMechanism::Sha256,
            first,
            Some(credential),
            SECRET,
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        );
        assert_eq!(
            server_first,
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        assert_eq!(server.username(), "user");
        let client_final_msg = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                                p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        // The test client computes the RFC's proof and server signature too.
        let (computed_final, expected_final) = client_final(
            ScramMechanism::Sha256,
            b"pencil",
            "n,,",
            "n=user,r=rOprNGfwEbeRWgbNEkqO",
            &server_first,
        );
        assert_eq!(computed_final, client_final_msg);
        assert_eq!(
            expected_final,
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        assert_eq!(
            server.finish(client_final_msg.as_bytes()).unwrap(),
            b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    /// librdkafka < 2.6.1 repeats the client nonce in client-final
    /// (librdkafka#4895): accepted, as Kafka 3.8.1-3.9 do, with a valid proof
    /// over that message; a wrong password is still refused.
    #[test]
    fn doubled_client_nonce_of_old_librdkafka_is_accepted() {
        for (password, ok) in [(&b"hunter2"[..], true), (&b"wrong"[..], false)] {
            let m = ScramMechanism::Sha512;
            let credential = ScramCredential::generate(m, b"hunter2", 4096);
            let first = parse_client_first(b"n,,n=u,r=CLIENTNONCE").unwrap();
            let (server, server_first) =
                ScramServer::start(m, first, Some(credential.clone()), SECRET);
            let server_first = String::from_utf8(server_first).unwrap();
            let full = server_first
                .split(',')
                .find_map(|a| a.strip_prefix("r="))
                .unwrap()
                .to_string();
            let doubled = format!("CLIENTNONCE{full}");
            let salted = m.hi(password, &credential.salt, NonZeroU32::new(4096).unwrap());
            let client_key = m.hmac(&salted, b"Client Key");
            let stored_key = m.h(&client_key);
            let without_proof = format!("c=biws,r={doubled}");
            let auth = format!("n=u,r=CLIENTNONCE,{server_first},{without_proof}");
            let sig = m.hmac(&stored_key, auth.as_bytes());
            let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
            let msg = format!("{without_proof},p={}", B64.encode(proof));
            assert_eq!(server.finish(msg.as_bytes()).is_ok(), ok);
        }
    }

    #[test]
    fn sha512_round_trip() {
        let credential = ScramCredential::generate(ScramMechanism::Sha512, b"hunter2", 4096);
        assert_eq!(credential.salt.len(), 32);
        assert_eq!(credential.stored_key.len(), 64);
        assert_eq!(credential.server_key.len(), 64);
        let (result, expected) = exchange(
            ScramMechanism::Sha512,
            "alice",
            Some(credential),
            b"hunter2",
        );
        assert_eq!(String::from_utf8(result.unwrap()).unwrap(), expected);
    }

    #[test]
    fn server_nonce_extends_client_nonce() {
        let credential = ScramCredential::generate(ScramMechanism::Sha256, b"pw", 4096);
        let first = parse_client_first(b"n,,n=alice,r=abc").unwrap();
        let (_, a) = ScramServer::start(
            ScramMechanism::Sha256,
            first.clone(),
            Some(credential.clone()),
            SECRET,
        );
        let (_, b) = ScramServer::start(ScramMechanism::Sha256, first, Some(credential), SECRET);
        let nonce = |m: &[u8]| {
            let s = std::str::from_utf8(m).unwrap();
            s.split(',')
                .next()
                .unwrap()
                .strip_prefix("r=")
                .unwrap()
                .to_string()
        };
        let (na, nb) = (nonce(&a), nonce(&b));
        assert!(na.starts_with("abc") && nb.starts_with("abc"));
        assert!(na.len() >= 3 + 32, "{na}");
        assert!(is_printable(&na));
        assert_ne!(na, nb);
    }

    #[test]
    fn wrong_password_is_bad_proof() {
        for m in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
            let credential = ScramCredential::generate(m, b"right", 4096);
            let (result, _) = exchange(m, "alice", Some(credential), b"wrong");
            assert_eq!(result.unwrap_err(), ScramError::BadProof);
        }
    }

    #[test]
    fn credential_of_other_mechanism_is_not_used() {
        let credential = ScramCredential::generate(ScramMechanism::Sha256, b"pw", 4096);
        let (result, _) = exchange(ScramMechanism::Sha512, "alice", Some(credential), b"pw");
        assert_eq!(result.unwrap_err(), ScramError::BadProof);
    }

    #[test]
    fn unknown_user_gets_stable_fake_salt_and_bad_proof() {
        let answer = |user: &str, mechanism: ScramMechanism, secret: &[u8]| {
            let first = parse_client_first(format!("n,,n={user},r=fixed").as_bytes()).unwrap();
            let (_, server_first) = ScramServer::start(mechanism, first, None, secret);
            // Drop the nonce, which is fresh on every attempt.
            let s = String::from_utf8(server_first).unwrap();
            s.split_once(',').unwrap().1.to_string()
        };
        let sha256 = ScramMechanism::Sha256;
        let a1 = answer("ghost", sha256, SECRET);
        assert_eq!(a1, answer("ghost", sha256, SECRET));
        assert_ne!(a1, answer("ghost2", sha256, SECRET));
        assert_ne!(a1, answer("ghost", ScramMechanism::Sha512, SECRET));
        assert_ne!(a1, answer("ghost", sha256, b"another secret"));
        // Shaped like a generated credential's answer: 32-byte salt, 4096.
        let (salt, iterations) = a1.split_once(',').unwrap();
        assert_eq!(
            B64.decode(salt.strip_prefix("s=").unwrap()).unwrap().len(),
            32
        );
        assert_eq!(iterations, "i=4096");

        // A client that derives its proof from the fake salt still fails.
        for m in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
            let (result, _) = exchange(m, "ghost", None, b"anything");
            assert_eq!(result.unwrap_err(), ScramError::BadProof);
        }
    }

    #[test]
    fn username_escaping() {
        let first = parse_client_first(b"n,,n=a=3Db=2Cc=3D,r=nonce").unwrap();
        assert_eq!(first.username, "a=b,c=");
        assert_eq!(first.bare, "n=a=3Db=2Cc=3D,r=nonce");
        let first = parse_client_first("n,,n=j\u{f6}rg,r=nonce".as_bytes()).unwrap();
        assert_eq!(first.username, "j\u{f6}rg");
        for bad in [
            "n,,n=a=41,r=nonce",
            "n,,n=a=,r=nonce",
            "n,,n=a=3,r=nonce",
            "n,,n=a=2c,r=nonce",
            "n,,n=a=3d,r=nonce",
            "n,,n==,r=nonce",
            "n,,n=a\0b,r=nonce",
        ] {
            assert!(
                matches!(
                    parse_client_first(bad.as_bytes()),
                    Err(ScramError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
        // An escaped name authenticates (the AuthMessage uses it escaped).
        let credential = ScramCredential::generate(ScramMechanism::Sha256, b"pw", 4096);
        let (result, expected) =
            exchange(ScramMechanism::Sha256, "a=3Db=2Cc", Some(credential), b"pw");
        assert_eq!(String::from_utf8(result.unwrap()).unwrap(), expected);
    }

    #[test]
    fn gs2_header_and_authzid() {
        let first = parse_client_first(b"y,,n=alice,r=nonce").unwrap();
        assert_eq!(first.gs2_header, "y,,");
        let first = parse_client_first(b"n,a=a=3Db,n=a=3Db,r=nonce").unwrap();
        assert_eq!(first.username, "a=b");
        assert_eq!(first.gs2_header, "n,a=a=3Db,");
        assert_eq!(first.bare, "n=a=3Db,r=nonce");
        for bad in [
            "p=tls-unique,,n=alice,r=nonce",
            "n,a=bob,n=alice,r=nonce",
            "n,a=,n=alice,r=nonce",
            "n,b=alice,n=alice,r=nonce",
            "x,,n=alice,r=nonce",
            ",,n=alice,r=nonce",
            "n,n=alice,r=nonce",
        ] {
            assert!(
                matches!(
                    parse_client_first(bad.as_bytes()),
                    Err(ScramError::Malformed(_))
                ),
                "{bad:?}"
            );
        }

        // c= must echo the gs2 header actually sent, including the authzid.
        let credential = ScramCredential::generate(ScramMechanism::Sha256, b"pw", 4096);
        let bare = "n=alice,r=nonce";
        for (sent, echoed, ok) in [
            ("n,a=alice,", "n,a=alice,", true),
            ("y,,", "y,,", true),
            ("y,,", "n,,", false),
            ("n,a=alice,", "n,,", false),
        ] {
            let first = parse_client_first(format!("{sent}{bare}").as_bytes()).unwrap();
            let (server, server_first) = ScramServer::start(
                ScramMechanism::Sha256,
                first,
                Some(credential.clone()),
                SECRET,
            );
            let (msg, _) = client_final(ScramMechanism::Sha256, b"pw", echoed, bare, &server_first);
            let result = server.finish(msg.as_bytes());
            if ok {
                assert!(result.is_ok(), "{sent:?} {echoed:?}");
            } else {
                assert!(
                    matches!(result, Err(ScramError::Malformed(_))),
                    "{sent:?} {echoed:?}"
                );
            }
        }
    }

    #[test]
    fn client_first_extensions() {
        let first = parse_client_first(b"n,,n=alice,r=nonce,tokenauth=true").unwrap();
        assert!(first.token_auth);
        let first = parse_client_first(b"n,,n=alice,r=nonce,tokenauth=TRUE,other=x").unwrap();
        assert!(first.token_auth);
        let first = parse_client_first(b"n,,n=alice,r=nonce,tokenauth=false").unwrap();
        assert!(!first.token_auth);
        for bad in [
            "n,,m=x,n=alice,r=nonce",
            "n,,n=alice,r=nonce,m=x",
            "n,,n=alice,r=nonce,tokenauth=",
            "n,,n=alice,r=nonce,tokenauth",
            "n,,n=alice,r=nonce,=x",
            "n,,n=alice,r=nonce,to-ken=x",
            "n,,n=alice,r=nonce,",
        ] {
            assert!(
                matches!(
                    parse_client_first(bad.as_bytes()),
                    Err(ScramError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn client_first_rejections() {
        for bad in [
            &b""[..],
            b"n,,",
            b"n,,n=,r=nonce",
            b"n,,n=alice,r=",
            b"n,,n=alice",
            b"n,,r=nonce,n=alice",
            b"n,,n=alice,x=nonce",
            b"n,,n=alice,r=non ce",
            b"n,,n=alice,r=non\x7fce",
            b"n,,n=al\xffice,r=nonce",
            b"n,,n=alice,r=n\xc3\xb6nce",
        ] {
            assert!(
                matches!(parse_client_first(bad), Err(ScramError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // The 4 KiB bound.
        let mut msg = b"n,,n=alice,r=".to_vec();
        msg.resize(MESSAGE_MAX_BYTES, b'x');
        assert!(parse_client_first(&msg).is_ok());
        msg.push(b'x');
        assert_eq!(
            parse_client_first(&msg).unwrap_err(),
            ScramError::Malformed("message too long")
        );
    }

    /// A server that has answered "n,,n=alice,r=nonce", and a client-final
    /// that it accepts.
    fn started() -> (ScramCredential, String) {
        let credential = ScramCredential::generate(ScramMechanism::Sha256, b"pw", 4096);
        let first = parse_client_first(b"n,,n=alice,r=nonce").unwrap();
        let (_, server_first) = ScramServer::start_with_nonce_suffix(
            ScramMechanism::Sha256,
            first,
            Some(credential.clone()),
            SECRET,
            "SERVER",
        );
        let (msg, _) = client_final(
            ScramMechanism::Sha256,
            b"pw",
            "n,,",
            "n=alice,r=nonce",
            &server_first,
        );
        (credential, msg)
    }

    fn finish_with(credential: &ScramCredential, msg: &[u8]) -> Result<Vec<u8>, ScramError> {
        let first = parse_client_first(b"n,,n=alice,r=nonce").unwrap();
        let (server, _) = ScramServer::start_with_nonce_suffix(
            ScramMechanism::Sha256,
            first,
            Some(credential.clone()),
            SECRET,
            "SERVER",
        );
        server.finish(msg)
    }

    #[test]
    fn client_final_rejections() {
        let (credential, good) = started();
        assert!(finish_with(&credential, good.as_bytes()).is_ok());
        let (without_proof, proof) = good.rsplit_once(',').unwrap();
        let nonce_attr = "r=nonceSERVER";
        let malformed = [
            // Proof not last.
            format!("c=biws,{proof},{nonce_attr}"),
            // No channel binding, wrong one, not base64.
            format!("{nonce_attr},{proof}"),
            format!("c=eSws,{nonce_attr},{proof}"),
            format!("c=bi!s,{nonce_attr},{proof}"),
            // The client's nonce alone, another nonce, none.
            format!("c=biws,r=nonce,{proof}"),
            format!("c=biws,r=nonceSERVEX,{proof}"),
            format!("c=biws,{proof}"),
            // Proof short, long, not base64, empty.
            format!("{without_proof},p={}", B64.encode([0u8; 31])),
            format!("{without_proof},p={}", B64.encode([0u8; 33])),
            format!("{without_proof},p=dHzb!apW"),
            format!("{without_proof},p="),
            // A bad extension.
            format!("c=biws,{nonce_attr},x,{proof}"),
            String::new(),
        ];
        for msg in &malformed {
            assert!(
                matches!(
                    finish_with(&credential, msg.as_bytes()),
                    Err(ScramError::Malformed(_))
                ),
                "{msg:?}"
            );
        }
        // A well-formed extension is allowed (and covered by the proof, so
        // adding one to a valid message breaks it).
        let msg = format!("c=biws,{nonce_attr},ext=1,{proof}");
        assert_eq!(
            finish_with(&credential, msg.as_bytes()).unwrap_err(),
            ScramError::BadProof
        );
        // A flipped proof bit.
        let mut bytes = B64.decode(proof.strip_prefix("p=").unwrap()).unwrap();
        bytes[0] ^= 1;
        let msg = format!("{without_proof},p={}", B64.encode(bytes));
        assert_eq!(
            finish_with(&credential, msg.as_bytes()).unwrap_err(),
            ScramError::BadProof
        );
        // Over 4 KiB.
        let msg = format!(
            "c=biws,{nonce_attr},x={},{proof}",
            "y".repeat(MESSAGE_MAX_BYTES)
        );
        assert_eq!(
            finish_with(&credential, msg.as_bytes()).unwrap_err(),
            ScramError::Malformed("message too long")
        );
        assert!(matches!(
            finish_with(&credential, b"c=biws,r=nonceSERVER,p=\xff"),
            Err(ScramError::Malformed(_))
        ));
    }

    #[test]
    fn every_prefix_fails() {
        let (credential, good) = started();
        for end in 0..good.len() {
            assert!(
                finish_with(&credential, &good.as_bytes()[..end]).is_err(),
                "{:?}",
                &good[..end]
            );
        }
        // Client-first: every prefix up to "r=" is refused; longer ones are
        // valid messages with a shorter nonce.
        let first = b"n,a=alice,n=alice,r=nonce,tokenauth=true";
        let nonce_at = first.windows(2).position(|w| w == b"r=").unwrap() + 2;
        for end in 0..=nonce_at {
            assert!(parse_client_first(&first[..end]).is_err(), "{end}");
        }
        for end in nonce_at + 1..first.len() {
            let _ = parse_client_first(&first[..end]);
        }
    }

    /// xorshift64: deterministic, so a failure reproduces.
    fn pseudo_random(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn random_and_mutated_input_never_panics() {
        let (credential, good) = started();
        let alphabet = b"nrcpmay=,2CD3\x00\xff\xc3abcdef";
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            let len = (pseudo_random(&mut state) % 80) as usize;
            let mut msg: Vec<u8> = (0..len)
                .map(|_| {
                    let r = pseudo_random(&mut state);
                    // Half from a SCRAM-ish alphabet, half any byte.
                    if r & 1 == 0 {
                        alphabet[(r >> 8) as usize % alphabet.len()]
                    } else {
                        (r >> 8) as u8
                    }
                })
                .collect();
            let _ = parse_client_first(&msg);
            assert!(finish_with(&credential, &msg).is_err());
            let _ = crate::plain::parse(&msg);
            // One byte of a valid message changed.
            msg = good.clone().into_bytes();
            let at = pseudo_random(&mut state) as usize % msg.len();
            msg[at] = pseudo_random(&mut state) as u8;
            let _ = finish_with(&credential, &msg);
            let mut first = b"n,,n=a=3Db,r=nonce,tokenauth=true".to_vec();
            let at = pseudo_random(&mut state) as usize % first.len();
            first[at] = pseudo_random(&mut state) as u8;
            if let Ok(first) = parse_client_first(&first) {
                let (server, _) = ScramServer::start(ScramMechanism::Sha512, first, None, SECRET);
                assert!(server.finish(good.as_bytes()).is_err());
            }
        }
    }

    #[test]
    fn verify_password() {
        for m in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
            let credential = ScramCredential::generate(m, b"correct horse", 4096);
            assert!(credential.verify_password(b"correct horse"));
            assert!(!credential.verify_password(b"correct horsf"));
            assert!(!credential.verify_password(b""));
            let mut corrupt = credential.clone();
            corrupt.stored_key.pop();
            assert!(!corrupt.verify_password(b"correct horse"));
            let mut zero = credential;
            zero.iterations = 0;
            assert!(!zero.verify_password(b"correct horse"));
        }
        // Two generated credentials of one password differ (fresh salts).
        let a = ScramCredential::generate(ScramMechanism::Sha256, b"pw", 4096);
        let b = ScramCredential::generate(ScramMechanism::Sha256, b"pw", 4096);
        assert_ne!(a.salt, b.salt);
        assert_ne!(a.stored_key, b.stored_key);
    }

    #[test]
    fn from_salted_password_matches_from_password() {
        let salt = b"0123456789abcdef";
        let m = ScramMechanism::Sha512;
        let salted = m.hi(b"pw", salt, NonZeroU32::new(4096).unwrap());
        assert_eq!(
            ScramCredential::from_salted_password(m, &salted, salt.to_vec(), 4096),
            ScramCredential::from_password(m, b"pw", salt, 4096)
        );
        // Zero iterations is clamped to one, and stored as one.
        let c = ScramCredential::from_password(m, b"pw", salt, 0);
        assert_eq!(c.iterations, 1);
        assert!(c.verify_password(b"pw"));
    }

    /// client-first → server → client-final → server → server-final through
    /// `ScramClient` and `ScramServer`; returns the server's result and the
    /// client's verdict on it.
    fn client_exchange(
        mechanism: ScramMechanism,
        username: &str,
        credential: Option<ScramCredential>,
        password: &[u8],
    ) -> (Result<Vec<u8>, ScramError>, ScramClient) {
        let mut client = ScramClient::new(mechanism, username, password);
        let first = parse_client_first(&client.client_first()).unwrap();
        assert_eq!(first.username, username);
        let (server, server_first) = ScramServer::start(mechanism, first, credential, SECRET);
        let client_final = client.client_final(&server_first).unwrap();
        (server.finish(&client_final), client)
    }

    #[test]
    fn scram_client_round_trip() {
        for m in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
            for user in ["alice", "a=b,c", "j\u{f6}rg"] {
                let credential = ScramCredential::generate(m, b"s3cret", 4096);
                let (result, client) = client_exchange(m, user, Some(credential), b"s3cret");
                let server_final = result.unwrap();
                client.verify_server_final(&server_final).unwrap();
            }
        }
    }

    #[test]
    fn scram_client_first_shape() {
        let client = ScramClient::new(ScramMechanism::Sha256, "a=b,c", b"pw");
        let first = String::from_utf8(client.client_first()).unwrap();
        let nonce = first.strip_prefix("n,,n=a=3Db=2Cc,r=").unwrap();
        assert!(nonce.len() >= 32, "{nonce}");
        assert!(is_printable(nonce));
        let other = ScramClient::new(ScramMechanism::Sha256, "a=b,c", b"pw");
        assert_ne!(client.client_first(), other.client_first());
    }

    #[test]
    fn scram_client_rfc7677_vector() {
        let mut client = ScramClient::with_nonce(
            ScramMechanism::Sha256,
            "user",
            b"pencil",
            "rOprNGfwEbeRWgbNEkqO".into(),
        );
        assert_eq!(client.client_first(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let final_msg = client
            .client_final(
                b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            )
            .unwrap();
        assert_eq!(
            final_msg,
            &b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
               p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="[..]
        );
        client
            .verify_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
    }

    #[test]
    fn scram_client_wrong_password_fails() {
        for m in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
            let credential = ScramCredential::generate(m, b"right", 4096);
            let (result, _) = client_exchange(m, "alice", Some(credential), b"wrong");
            assert_eq!(result.unwrap_err(), ScramError::BadProof);
            let (result, _) = client_exchange(m, "ghost", None, b"anything");
            assert_eq!(result.unwrap_err(), ScramError::BadProof);
        }
    }

    #[test]
    fn scram_client_refuses_bad_server_final() {
        for m in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
            let credential = ScramCredential::generate(m, b"pw", 4096);
            let (result, client) = client_exchange(m, "alice", Some(credential), b"pw");
            let good = String::from_utf8(result.unwrap()).unwrap();
            // One flipped bit of the signature.
            let mut sig = B64.decode(good.strip_prefix("v=").unwrap()).unwrap();
            sig[0] ^= 1;
            let tampered = format!("v={}", B64.encode(&sig));
            assert_eq!(
                client.verify_server_final(tampered.as_bytes()),
                Err(ScramError::BadServerSignature)
            );
            // Truncated, empty, another key's signature.
            sig[0] ^= 1;
            sig.pop();
            let short = format!("v={}", B64.encode(&sig));
            assert_eq!(
                client.verify_server_final(short.as_bytes()),
                Err(ScramError::BadServerSignature)
            );
            assert_eq!(
                client.verify_server_final(b"v="),
                Err(ScramError::BadServerSignature)
            );
            let other = ScramCredential::generate(m, b"pw", 4096);
            let (result, _) = client_exchange(m, "alice", Some(other), b"pw");
            assert_eq!(
                client.verify_server_final(&result.unwrap()),
                Err(ScramError::BadServerSignature)
            );
            // e= is the server's refusal; garbage is malformed.
            assert_eq!(
                client.verify_server_final(b"e=invalid-proof"),
                Err(ScramError::ServerError("invalid-proof".into()))
            );
            for bad in [&b""[..], b"x=1", b"v=!!!", b"\xff", b"v"] {
                assert!(
                    matches!(
                        client.verify_server_final(bad),
                        Err(ScramError::Malformed(_))
                    ),
                    "{bad:?}"
                );
            }
            // The good one still verifies, with an extension too.
            client.verify_server_final(good.as_bytes()).unwrap();
            client
                .verify_server_final(format!("{good},ext=1").as_bytes())
                .unwrap();
        }
        // Before client-final there is nothing to verify against.
        let client = ScramClient::new(ScramMechanism::Sha256, "alice", b"pw");
        assert!(matches!(
            client.verify_server_final(b"v=AAAA"),
            Err(ScramError::Malformed(_))
        ));
    }

    #[test]
    fn scram_client_refuses_bad_server_first() {
        let new = || ScramClient::with_nonce(ScramMechanism::Sha256, "alice", b"pw", "abc".into());
        let salt = B64.encode([7u8; 16]);
        for bad in [
            String::new(),
            format!("r=xyzSERVER,s={salt},i=4096"),
            format!("r=abc,s={salt},i=4096"),
            format!("r=ab,s={salt},i=4096"),
            format!("r=abc SERVER,s={salt},i=4096"),
            format!("m=x,r=abcSERVER,s={salt},i=4096"),
            format!("s={salt},r=abcSERVER,i=4096"),
            "r=abcSERVER,s=,i=4096".to_string(),
            "r=abcSERVER,s=!!,i=4096".to_string(),
            format!("r=abcSERVER,s={salt}"),
            format!("r=abcSERVER,s={salt},i="),
            format!("r=abcSERVER,s={salt},i=-1"),
            format!("r=abcSERVER,s={salt},i=0"),
            format!("r=abcSERVER,s={salt},i=1"),
            format!("r=abcSERVER,s={salt},i=4095"),
            format!("r=abcSERVER,s={salt},i=1000001"),
            format!("r=abcSERVER,s={salt},i=99999999999"),
            format!("r=abcSERVER,s={salt},i=4096,bad"),
            format!(
                "r=abcSERVER,s={salt},i=4096,x={}",
                "y".repeat(MESSAGE_MAX_BYTES)
            ),
        ] {
            assert!(
                matches!(
                    new().client_final(bad.as_bytes()),
                    Err(ScramError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
        assert_eq!(
            new().client_final(b"e=unknown-user"),
            Err(ScramError::ServerError("unknown-user".into()))
        );
        // Bounds and extensions that are fine; one exchange per client.
        for good in [
            format!("r=abcSERVER,s={salt},i=4096"),
            format!("r=abcSERVER,s={salt},i=16384,ext=1"),
        ] {
            let mut client = new();
            assert!(client.client_final(good.as_bytes()).is_ok(), "{good:?}");
            assert!(matches!(
                client.client_final(good.as_bytes()),
                Err(ScramError::Malformed(_))
            ));
        }
    }

    #[test]
    fn salted_password_matches_credential() {
        for m in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
            let salt = b"0123456789abcdef";
            let salted = salted_password(m, b"pw", salt, 4096);
            assert_eq!(salted.len(), m.digest_bytes());
            assert_eq!(
                ScramCredential::from_salted_password(m, &salted, salt.to_vec(), 4096),
                ScramCredential::from_password(m, b"pw", salt, 4096)
            );
        }
        let m = ScramMechanism::Sha256;
        assert_eq!(
            salted_password(m, b"pw", b"salt", 0),
            salted_password(m, b"pw", b"salt", 1)
        );
    }
}
