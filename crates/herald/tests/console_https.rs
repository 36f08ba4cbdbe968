//! The console over HTTPS (`--http-tls`) on a broker with SASL listeners:
//! the broker's certificate serves it, the login's cookie is `Secure`, and
//! plain HTTP on that port gets no answer. Driven with curl (a real client).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::secure::{ADMIN_PASSWORD, SecureBroker};

fn https_addr(b: &SecureBroker) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = b.log.lock().unwrap().iter().find_map(|l| {
            let at = l.find("http listening on https://")?;
            let rest = &l[at + "http listening on https://".len()..];
            Some(rest.split_whitespace().next().unwrap_or("").to_string())
        });
        if let Some(a) = found {
            return a;
        }
        assert!(Instant::now() < deadline, "no HTTPS start-up line");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// curl with the test CA: (status line and headers, body).
fn curl(b: &SecureBroker, args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sS", "-i", "--max-time", "20", "--cacert"])
        .arg(&b.pki.ca)
        .args(args)
        .output()
        .expect("curl is installed");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_string(), body.to_string())
}

#[test]
fn the_console_serves_https_with_the_brokers_certificate() {
    let b = SecureBroker::start(&["--http-listen", "127.0.0.1:0", "--http-tls", "true"]);
    let addr = https_addr(&b);
    let port = addr.rsplit(':').next().expect("port");
    // The test certificate names localhost.
    let base = format!("https://localhost:{port}");

    let (head, body) = curl(&b, &[&format!("{base}/healthz")]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, "ok\n");

    // SASL listeners: a login is required, and its cookie is Secure.
    let (_, body) = curl(&b, &[&format!("{base}/api/session")]);
    let session: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(session["auth_required"], true, "{session}");
    let (head, _) = curl(&b, &[&format!("{base}/api/topics")]);
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    let login = serde_json::json!({"username": "admin", "password": ADMIN_PASSWORD}).to_string();
    let (head, body) = curl(
        &b,
        &[
            "-H",
            "Content-Type: application/json",
            "--data",
            &login,
            &format!("{base}/api/login"),
        ],
    );
    assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{body}");
    let cookie = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .expect("a session cookie");
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    let session_cookie = cookie["set-cookie:".len()..]
        .trim()
        .split(';')
        .next()
        .expect("cookie")
        .to_string();
    let (head, body) = curl(
        &b,
        &[
            "-H",
            &format!("Cookie: {session_cookie}"),
            &format!("{base}/api/topics"),
        ],
    );
    assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{body}");

    // Plain HTTP on the HTTPS port: no HTTP answer, and the server goes on.
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", &format!("http://{addr}/healthz")])
        .output()
        .expect("curl");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("ok"),
        "plain HTTP was answered"
    );
    let (head, _) = curl(&b, &[&format!("{base}/healthz")]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}
