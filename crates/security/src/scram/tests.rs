//! Tests of `scram`.

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
    let credential = ScramCredential::from_password(ScramMechanism::Sha256, b"pencil", &salt, 4096);
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
        let (server, server_first) = ScramServer::start(m, first, Some(credential.clone()), SECRET);
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
    let (result, expected) = exchange(ScramMechanism::Sha256, "a=3Db=2Cc", Some(credential), b"pw");
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
