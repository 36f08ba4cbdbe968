//! Before SASL authentication.

use super::*;

// ---------------------------------------------------------------------------
// Before SASL authentication (a SASL_PLAINTEXT listener). More in
// security_hostile.rs: a 100 MiB SaslAuthenticate frame and a 100 MiB v0
// token, Produce before authentication, half-open TLS handshakes.

use crate::common::secure::SecureBroker;

fn sasl_still_serves(b: &SecureBroker) {
    assert_eq!(
        crate::common::kafka_wire::plain_login(
            &b.sasl_plaintext,
            "admin",
            crate::common::secure::ADMIN_PASSWORD
        ),
        Some(0),
        "an authenticated client is still served"
    );
}

#[test]
fn metadata_before_sasl_authentication_is_closed() {
    let b = SecureBroker::start(&[]);
    let mut s = connect(&b.sasl_plaintext);
    // ApiVersions is allowed first (clients ask before the handshake)...
    assert_serves(&mut s, 1);
    // ...anything else is not.
    s.write_all(&frame(ApiKey::Metadata, 12, 2, &MetadataRequest::default()))
        .unwrap();
    assert!(closed(&mut s), "Metadata before authentication was served");
    assert!(b.wait_log("request before SASL authentication", 1));
    sasl_still_serves(&b);
}

#[test]
fn api_versions_flood_before_sasl_authentication_is_closed() {
    // Four ApiVersions before authenticating are answered; the fifth closes.
    let b = SecureBroker::start(&[]);
    let mut s = connect(&b.sasl_plaintext);
    for i in 0..4 {
        assert_serves(&mut s, i);
    }
    s.write_all(&frame(
        ApiKey::ApiVersions,
        3,
        5,
        &ApiVersionsRequest::default(),
    ))
    .unwrap();
    assert!(closed(&mut s));
    assert!(b.wait_log("request before SASL authentication", 1));
    sasl_still_serves(&b);
}

#[test]
fn oversize_frame_before_sasl_authentication_is_closed() {
    // Before authentication frames are capped at 512 KiB (Kafka's
    // sasl.server.max.receive.size), not socket.request.max.bytes.
    let b = SecureBroker::start(&[]);
    let mut s = connect(&b.sasl_plaintext);
    let _ = s.write_all(&(1024 * 1024i32).to_be_bytes());
    assert!(closed(&mut s));
    assert!(b.wait_log("frame size 1048576 outside [10, 524288]", 1));
    sasl_still_serves(&b);
}
