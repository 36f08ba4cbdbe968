"""Scenario suite for kcat (Debian's kcat, built on librdkafka 2.0).

kcat has no admin API: `admin_topics` is a metadata listing (`-L -J`) of an
auto-created topic. kcat cannot set per-message timestamps, so
`consume_timestamp` produces two batches a second apart and asks for the
offset of the second one's time with `-Q` (ListOffsets) and `-o s@ts`.
"""

import json
import os
import re
import subprocess
import time

from harness import SECURITY, Check, Suite, expect, librdkafka_security

KCAT = os.environ.get("KCAT", "kcat")


def kcat_version():
    out = subprocess.run([KCAT, "-V"], capture_output=True, text=True).stdout
    m = re.search(r"Version (\S+) .*librdkafka (\S+)", out)
    return (m.group(1), f"librdkafka {m.group(2)}") if m else ("?", "")


version, details = kcat_version()
suite = Suite("kcat", version, details)
B = suite.bootstrap


def kcat(args, stdin=None, timeout=20, limited=False):
    """Runs kcat; in security mode with -X settings of User:client (User:limited)."""
    sec = [a for k, v in librdkafka_security(limited).items() for a in ("-X", f"{k}={v}")]
    cmd = [KCAT, "-b", B, "-X", "client.id=compat-kcat"] + sec + args
    try:
        p = subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        err = (e.stderr or b"").decode(errors="replace").strip().splitlines()
        raise Check(f"kcat {' '.join(args[:3])}... timed out after {timeout}s"
                    + (f"; stderr: {err[-1]}" if err else "")) from None
    if p.returncode != 0:
        err = p.stderr.decode(errors="replace").strip().splitlines()
        # The first error is the cause ("All broker connections are down" follows a failed login).
        first = next((line for line in err if "ERROR" in line), err[-1] if err else "")
        raise Check(f"kcat {' '.join(args)} exited {p.returncode}: {first}")
    return p.stdout


def produce(topic, lines, headers=(), extra=(), limited=False):
    args = ["-P", "-t", topic, "-p", "0", "-K", ":"]
    for h in headers:
        args += ["-H", h]
    kcat(args + list(extra), stdin=("\n".join(lines) + "\n").encode(), limited=limited)


def consume(topic, n, offset="beginning", extra=(), timeout=20):
    out = kcat(["-C", "-t", topic, "-p", "0", "-o", str(offset), "-e", "-J", "-c", str(n)]
               + list(extra), timeout=timeout)
    msgs = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    return msgs


def kv_lines(n, start=0, size=0):
    out = []
    for i in range(start, start + n):
        v = f"v{i}"
        if size:
            v = (v + "-" + "herald-compat " * (size // 14 + 1))[:size]
        out.append(f"k{i}:{v}")
    return out


def check_kv(msgs, lines, headers=None):
    expect(len(msgs) == len(lines), f"consumed {len(msgs)} records, want {len(lines)}")
    for i, (m, line) in enumerate(zip(msgs, lines)):
        k, v = line.split(":", 1)
        expect(m.get("key") == k and m.get("payload") == v,
               f"record {i}: {m.get('key')!r}:{str(m.get('payload'))[:30]!r} != {k!r}:{v[:30]!r}")
        if headers is not None:
            h = m.get("headers") or []
            pairs = [f"{h[j]}={h[j + 1]}" for j in range(0, len(h), 2)]
            expect(pairs == list(headers), f"record {i}: headers {pairs} != {list(headers)}")


def metadata_listing():
    t = suite.topic("meta")
    produce(t, kv_lines(1))  # auto-creates the topic
    md = json.loads(kcat(["-L", "-J"]))
    brokers = [f"{b['name']}" for b in md.get("brokers", [])]
    # HERALD_BOOTSTRAP may list several brokers (a cluster): each must be listed.
    for addr in B.split(","):
        port = addr.rsplit(":", 1)[1]
        expect(any(b.endswith(":" + port) for b in brokers), f"brokers {brokers} lack {addr}")
    topics = {x["topic"]: x for x in md.get("topics", [])}
    expect(t in topics, f"topic {t} not listed in -L")
    parts = topics[t]["partitions"]
    ids = {b["id"] for b in md["brokers"]}
    expect(len(parts) == 1 and parts[0]["leader"] in ids, f"partitions {parts}, brokers {sorted(ids)}")
    return "kcat has no admin API: -L metadata listing of an auto-created topic"


def produce_keys_headers():
    t = suite.topic("produce")
    produce(t, kv_lines(5), headers=["h-kind=compat", "h-part=a"])
    produce(t, kv_lines(5, 5), headers=["h-kind=compat", "h-part=b"])
    # -Z sends an empty key or value as NULL: a record without key, a tombstone.
    produce(t, [":v-no-key", "k-tombstone:"], extra=["-Z"])
    msgs = consume(t, 12)
    expect(len(msgs) == 12, f"consumed {len(msgs)} records, want 12")
    check_kv(msgs[:5], kv_lines(5), ["h-kind=compat", "h-part=a"])
    check_kv(msgs[5:10], kv_lines(5, 5), ["h-kind=compat", "h-part=b"])
    expect(msgs[10].get("key") is None and msgs[10].get("payload") == "v-no-key",
           f"record 10: key {msgs[10].get('key')!r} payload {msgs[10].get('payload')!r}, want null key")
    expect(msgs[11].get("key") == "k-tombstone" and msgs[11].get("payload") is None,
           f"record 11: key {msgs[11].get('key')!r} payload {msgs[11].get('payload')!r}, want a tombstone")
    expect([m["offset"] for m in msgs] == list(range(12)), "offsets not 0..11")
    return "keys, -H headers, a null key and a tombstone (-Z)"


def compression(codec):
    def run():
        t = suite.topic(f"comp-{codec}")
        lines = kv_lines(200, size=300)
        produce(t, lines, extra=["-z", codec, "-X", "linger.ms=50"])
        check_kv(consume(t, 200), lines)
        # librdkafka enables LZ4 only when the broker advertises FindCoordinator
        # (rdkafka_feature.c: LZ4 dates from 0.8.2, mapped to GroupCoordinator v0);
        # without it, it silently sends lz4-configured batches uncompressed.
        suite.verify(topic=t, codec=codec, **({"needs": "group-coordinator"} if codec == "lz4" else {}))
    return run


def consume_beginning():
    t = suite.topic("beginning")
    produce(t, kv_lines(10))
    produce(t, kv_lines(15, 10))
    msgs = consume(t, 25)
    check_kv(msgs, kv_lines(25))
    expect([m["offset"] for m in msgs] == list(range(25)), "offsets not 0..24")


def consume_timestamp():
    t = suite.topic("timestamp")
    produce(t, kv_lines(5))
    time.sleep(1.2)
    tmid = int(time.time() * 1000)
    time.sleep(0.3)
    produce(t, kv_lines(5, 5))
    out = kcat(["-Q", "-t", f"{t}:0:{tmid}"]).decode()
    m = re.search(r"offset (-?\d+)", out)
    expect(m and int(m.group(1)) == 5, f"-Q {t}:0:<t_mid> answered {out.strip()!r}, want offset 5")
    msgs = consume(t, 5, offset=f"s@{tmid}")
    expect(msgs and msgs[0]["offset"] == 5, f"-o s@t_mid started at {msgs[0]['offset'] if msgs else None}, want 5")
    check_kv(msgs, kv_lines(5, 5))
    expect(all(x["ts"] >= tmid for x in msgs), "timestamps before t_mid")
    return "two batches 1.5 s apart; -Q (ListOffsets) and -o s@ts"


def idempotent_produce():
    t = suite.topic("idempotent")
    lines = kv_lines(50)
    produce(t, lines, extra=["-X", "enable.idempotence=true", "-X", "linger.ms=20"])
    check_kv(consume(t, 50), lines)
    suite.verify(topic=t, idempotent=True)


def group_commit_resume():
    t = suite.topic("group")
    produce(t, kv_lines(10))
    g = f"grp-{suite.run_id}"
    common = ["-G", g, "-X", "auto.offset.reset=earliest", "-X", "session.timeout.ms=6000", "-J"]
    with suite.needs("group-coordinator"):
        out = kcat(common + ["-c", "5", t], timeout=18)
        first = [json.loads(x) for x in out.decode().splitlines() if x.strip()]
        expect(len(first) == 5, f"first group consumer got {len(first)}/5")
        out = kcat(common + ["-c", "1", t], timeout=18)
        second = [json.loads(x) for x in out.decode().splitlines() if x.strip()]
        expect(second and second[0]["offset"] == 5,
               f"second consumer resumed at {second[0]['offset'] if second else None}, want 5 (committed on close)")
    return "-G balanced consumer; offsets committed on close"


def acl_denied():
    ok, no = suite.topic("acl_ok"), suite.topic("acl_no")
    produce(ok, kv_lines(3), limited=True)
    try:
        produce(no, kv_lines(1), extra=["-X", "message.timeout.ms=10000"], limited=True)
    except Check as e:
        expect("authorization" in str(e).lower(), f"produce to {no} as User:limited: {e}, want an authorization error")
        why = re.split(r"exited -?\d+: ", str(e), maxsplit=1)[-1][:120]
        return f"as User:limited: -P to acl-ok-* allowed; elsewhere {why}"
    raise Check(f"kcat -P to {no} as User:limited succeeded, want TOPIC_AUTHORIZATION_FAILED")


suite.run("admin_topics", metadata_listing)
suite.na("describe_configs", "kcat has no admin API")
suite.run("produce_keys_headers", produce_keys_headers)
for codec in ("gzip", "snappy", "lz4", "zstd"):
    suite.run(f"compression_{codec}", compression(codec))
suite.run("consume_beginning", consume_beginning)
suite.run("consume_timestamp", consume_timestamp)
suite.run("idempotent_produce", idempotent_produce)
suite.run("group_commit_resume", group_commit_resume, timeout=45)
suite.na("group_consumer_protocol", "librdkafka 2.0 (kcat) predates KIP-848")
suite.na("transactions", "kcat has no transactional producer")
if SECURITY:
    suite.run("acl_denied", acl_denied)
