//! kcat (Debian's, librdkafka 2.0) against a real Herald process.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::BrokerProcess;

fn kcat(addr: &str, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new("kcat")
        .arg("-b")
        .arg(addr)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kcat is installed (apt-get install kcat)");
    {
        let mut input = child.stdin.take().expect("stdin");
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).expect("write stdin");
        }
    }
    let out = child.wait_with_output().expect("kcat output");
    assert!(
        out.status.success(),
        "kcat {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

#[test]
fn kcat_lists_produces_and_consumes_from_beginning_and_timestamp() {
    let b = BrokerProcess::start(&["--num-partitions", "1"]);
    kcat(&b.addr, &["-P", "-t", "kc", "-K:"], Some("a:1\nb:2\nc:3\n"));
    let listing = kcat(&b.addr, &["-L", "-J"], None);
    assert!(listing.contains("\"topic\":\"kc\""), "{listing}");
    assert!(listing.contains("\"brokers\":[{\"id\":0"), "{listing}");

    let all = kcat(
        &b.addr,
        &[
            "-C",
            "-t",
            "kc",
            "-o",
            "beginning",
            "-e",
            "-f",
            "%k=%s@%o\n",
        ],
        None,
    );
    assert_eq!(all, "a=1@0\nb=2@1\nc=3@2\n");

    std::thread::sleep(Duration::from_millis(1100));
    let cut = herald_broker::now_ms();
    std::thread::sleep(Duration::from_millis(50));
    kcat(
        &b.addr,
        &["-P", "-t", "kc", "-K:", "-z", "snappy"],
        Some("d:4\ne:5\n"),
    );
    let since = kcat(
        &b.addr,
        &[
            "-C",
            "-t",
            "kc",
            "-o",
            &format!("s@{cut}"),
            "-e",
            "-f",
            "%k=%s@%o\n",
        ],
        None,
    );
    assert_eq!(since, "d=4@3\ne=5@4\n");

    let tail = kcat(
        &b.addr,
        &["-C", "-t", "kc", "-o", "-2", "-e", "-f", "%s\n"],
        None,
    );
    assert_eq!(tail, "4\n5\n");
}
