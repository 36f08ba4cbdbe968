//! Starts the real servers and checks them with their usual clients (psql,
//! curl), independently of the crate's own readiness checks. Nothing is
//! skipped: missing binaries fail the test with the crate's message.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use herald_testkit::{Postgres, S3, postgres_available, s3_available};

fn psql(pg: &Postgres, sql: &str) -> String {
    let out = Command::new("psql")
        .arg(&pg.url)
        .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("running psql (Debian's postgresql-client)");
    assert!(
        out.status.success(),
        "psql -c {sql:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn postgres_answers_and_survives_restart() {
    let started = Instant::now();
    let mut pg = Postgres::start().unwrap_or_else(|e| panic!("{e:#}"));
    eprintln!("Postgres::start took {:?}", started.elapsed());
    assert!(postgres_available());
    assert_eq!(
        pg.url,
        format!("postgres://herald@127.0.0.1:{}/herald", pg.port)
    );
    assert_eq!(psql(&pg, "select 1"), "1");
    psql(&pg, "create table t (v int); insert into t values (42)");

    let port = pg.port;
    let restarted = Instant::now();
    pg.restart().unwrap_or_else(|e| panic!("{e:#}"));
    eprintln!("Postgres::restart took {:?}", restarted.elapsed());
    assert_eq!(pg.port, port);
    assert_eq!(psql(&pg, "select 1"), "1");
    // An immediate stop is a crash: the committed row comes back by recovery.
    assert_eq!(psql(&pg, "select v from t"), "42");

    pg.stop();
    let down = Command::new("psql")
        .arg(&pg.url)
        .args(["-X", "-c", "select 1"])
        .output()
        .unwrap();
    assert!(!down.status.success(), "psql still connects after stop");
}

/// A SigV4-signed curl request; returns (HTTP status, body).
fn curl(s3: &S3, method: &str, key: &str, headers: &[&str], body: Option<&str>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-o", "-", "-w", "\n%{http_code}", "-X", method])
        .arg("--aws-sigv4")
        .arg(format!("aws:amz:{}:s3", s3.region))
        .arg("--user")
        .arg(format!("{}:{}", s3.access_key, s3.secret_key));
    for header in headers {
        cmd.args(["-H", header]);
    }
    if body.is_some() {
        // curl 7.88 does not send x-amz-content-sha256 itself; without it
        // SeaweedFS rejects the signature of a request with a body.
        cmd.args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
            .args(["--data-binary", "@-"]);
    }
    let mut child = cmd
        .arg(format!("{}/{}/{}", s3.endpoint, s3.bucket, key))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("running curl");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(body.unwrap_or("").as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let out = String::from_utf8(out.stdout).unwrap();
    let (body, status) = out.rsplit_once('\n').unwrap();
    (status.parse().unwrap(), body.to_string())
}

#[test]
fn s3_conditional_put_and_restart() {
    let started = Instant::now();
    let mut s3 = S3::start().unwrap_or_else(|e| panic!("{e:#}"));
    eprintln!("S3::start took {:?}", started.elapsed());
    assert!(s3_available());
    assert_eq!(s3.bucket, "herald");
    assert_eq!(s3.region, "us-east-1");
    let env = s3.env();
    for name in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"] {
        assert!(env.iter().any(|(k, _)| k == name), "env() lacks {name}");
    }

    let (status, body) = curl(&s3, "PUT", "dir/object", &[], Some("first"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        curl(&s3, "GET", "dir/object", &[], None),
        (200, "first".into())
    );

    // The property Herald's commits rely on: create-only PUT loses to an
    // existing object, and the object is left alone.
    let (status, body) = curl(
        &s3,
        "PUT",
        "dir/object",
        &["If-None-Match: *"],
        Some("second"),
    );
    assert_eq!(status, 412, "{body}");
    assert_eq!(
        curl(&s3, "GET", "dir/object", &[], None),
        (200, "first".into())
    );
    let (status, body) = curl(&s3, "PUT", "dir/new", &["If-None-Match: *"], Some("x"));
    assert_eq!(status, 200, "{body}");

    // Anonymous requests are refused.
    let anonymous = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("{}/{}/dir/object", s3.endpoint, s3.bucket))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&anonymous.stdout), "403");

    s3.kill();
    let down = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(&s3.endpoint)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&down.stdout),
        "000",
        "S3 still answers after kill"
    );

    let restarted = Instant::now();
    s3.restart().unwrap_or_else(|e| panic!("{e:#}"));
    eprintln!("S3::restart took {:?}", restarted.elapsed());
    assert_eq!(
        curl(&s3, "GET", "dir/object", &[], None),
        (200, "first".into())
    );
    let (status, _) = curl(&s3, "PUT", "dir/object", &["If-None-Match: *"], Some("3"));
    assert_eq!(status, 412);
}
