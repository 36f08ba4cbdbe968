"""Shared scaffolding of the Python-driven suites (confluent-kafka, kafka-python,
aiokafka, kcat).

A suite is a list of scenarios; each runs under a deadline and is recorded as
pass, fail (with a one-line reason) or n/a. A scenario marks the part of its
work that needs a broker feature (`with suite.needs("group-coordinator")`): a
failure there carries that tag, and the driver tells an expected failure (the
broker does not advertise the feature yet) from a real one. Results are
rewritten to $RESULT_FILE after every scenario, so a suite killed by the
driver's timeout still leaves what it finished.
"""

import contextlib
import json
import os
import signal
import sys
import time
import traceback
import uuid

# The scenarios every suite reports, in matrix order (see compat/clients/README.md).
SCENARIOS = [
    "admin_topics", "describe_configs", "produce_keys_headers",
    "compression_gzip", "compression_snappy", "compression_lz4", "compression_zstd",
    "consume_beginning", "consume_timestamp", "idempotent_produce",
    "group_commit_resume", "group_consumer_protocol", "transactions",
]
# ...and in security mode (HERALD_SECURITY set), after those.
SECURITY_SCENARIOS = ["acl_denied"]


# Security mode (`run.py --security`): HERALD_SECURITY is sasl_ssl or mtls, and the
# settings of the principal the scenarios run as, `User:client` (a super user), are in
# HERALD_SSL_CA, HERALD_SSL_CERT / HERALD_SSL_KEY (mtls), HERALD_SASL_MECHANISM /
# HERALD_SASL_USERNAME / HERALD_SASL_PASSWORD (sasl_ssl); HERALD_LIMITED_* give those of
# `User:limited` (no super user; used by `acl_denied` only).
SECURITY = os.environ.get("HERALD_SECURITY") or None


def security(limited=False):
    """The security settings of `User:client` (or `User:limited`), as a dict with
    protocol (SASL_SSL or SSL), ca, and cert/key (mtls) or mechanism/username/password
    (sasl_ssl); {} without security mode. Each suite maps them to its client's config."""
    if not SECURITY:
        return {}
    env = os.environ

    def get(name):
        return env.get(f"HERALD_LIMITED_{name}" if limited else f"HERALD_{name}")
    out = {"protocol": {"sasl_ssl": "SASL_SSL", "mtls": "SSL"}[SECURITY], "ca": env["HERALD_SSL_CA"]}
    if SECURITY == "sasl_ssl":
        out.update(mechanism=env.get("HERALD_SASL_MECHANISM", "SCRAM-SHA-512"),
                   username=get("SASL_USERNAME"), password=get("SASL_PASSWORD"))
    else:
        out.update(cert=get("SSL_CERT"), key=get("SSL_KEY"))
    return out


def librdkafka_security(limited=False):
    """security() as librdkafka properties (confluent-kafka, kcat)."""
    s = security(limited)
    if not s:
        return {}
    conf = {"security.protocol": s["protocol"].lower(), "ssl.ca.location": s["ca"]}
    if "cert" in s:
        conf.update({"ssl.certificate.location": s["cert"], "ssl.key.location": s["key"]})
    else:
        conf.update({"sasl.mechanisms": s["mechanism"], "sasl.username": s["username"],
                     "sasl.password": s["password"]})
    return conf


def is_authorization_error(e):
    """Whether an exception (or its text) is a topic authorization failure."""
    text = f"{type(e).__name__}: {e}"
    return any(w in text for w in ("TopicAuthorizationFailed", "TOPIC_AUTHORIZATION_FAILED",
                                   "Topic authorization failed", "TopicAuthorization"))


class ScenarioTimeout(Exception):
    pass


class Check(Exception):
    """A failed expectation; its message is the scenario's reason."""


def expect(cond, msg):
    if not cond:
        raise Check(msg)


class Suite:
    def __init__(self, client, version, details=""):
        self.bootstrap = os.environ["HERALD_BOOTSTRAP"]
        self.out = os.environ.get("RESULT_FILE")
        self.data = {"client": client, "version": version, "details": details,
                     "scenarios": {}}
        self._needs = None
        self._verify = None
        self.run_id = uuid.uuid4().hex[:6]

    def topic(self, scenario):
        return f"{scenario.replace('_', '-')}-{self.run_id}"

    @contextlib.contextmanager
    def needs(self, feature):
        """Tags a failure inside the block as needing `feature` of the broker."""
        try:
            yield
        except BaseException:
            self._needs = self._needs or feature
            raise

    def verify(self, **kw):
        """Asks the driver to check the stored batches of a topic (codec, producer id).

        `needs=FEATURE` tags a failed wire check as depending on a broker feature.
        """
        self._verify = kw

    def _save(self):
        if self.out:
            tmp = self.out + ".tmp"
            with open(tmp, "w") as f:
                json.dump(self.data, f, indent=1)
            os.replace(tmp, self.out)

    def na(self, name, reason):
        self.data["scenarios"][name] = {"status": "n/a", "reason": reason}
        self._save()

    def run(self, name, fn, timeout=30):
        self._needs, self._verify = None, None
        t0 = time.monotonic()

        def on_alarm(_sig, _frame):
            raise ScenarioTimeout(f"scenario timed out after {timeout}s")

        old = signal.signal(signal.SIGALRM, on_alarm)
        signal.alarm(timeout)
        res = {}
        try:
            note = fn()
            res = {"status": "pass", "reason": note or ""}
        except BaseException as e:  # noqa: BLE001 - everything is a scenario result
            if isinstance(e, KeyboardInterrupt):
                raise
            reason = str(e) if isinstance(e, Check) else f"{type(e).__name__}: {e}"
            res = {"status": "fail", "reason": reason.strip().splitlines()[0][:400] if reason.strip() else type(e).__name__}
            if self._needs:
                res["needs"] = self._needs
            traceback.print_exc(file=sys.stderr)
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)
        res["seconds"] = round(time.monotonic() - t0, 2)
        if self._verify and res["status"] == "pass":
            res["verify"] = self._verify
        self.data["scenarios"][name] = res
        print(f"[{self.data['client']}] {name}: {res['status']} {res.get('reason', '')}",
              file=sys.stderr, flush=True)
        self._save()


# Test data shared by the suites.

def records(n, prefix="v", size=0):
    """(key, value, headers) triples; values padded to `size` bytes when asked."""
    out = []
    for i in range(n):
        v = f"{prefix}{i}"
        if size:
            v = (v + "-" + "herald-compat " * (size // 14 + 1))[:size]
        out.append((f"k{i}".encode(), v.encode(), [("h-index", str(i).encode()), ("h-kind", b"compat")]))
    return out


def headers_as_list(h):
    """Normalizes a client's header representation to [(str, bytes)]."""
    if not h:
        return []
    out = []
    for k, v in h:
        out.append((k.decode() if isinstance(k, bytes) else k, bytes(v) if v is not None else None))
    return out


def _short(b):
    return b if b is None else b[:40]


def check_records(got, want, what="records"):
    """got: list of (key, value, headers); compares with `records()` output in order."""
    expect(len(got) == len(want), f"{what}: got {len(got)} records, want {len(want)}")
    for i, (g, w) in enumerate(zip(got, want)):
        gk, gv, gh = g
        wk, wv, wh = w
        expect(gk == wk, f"{what}[{i}]: key {gk!r} != {wk!r}")
        expect(gv == wv, f"{what}[{i}]: value {_short(gv)!r} != {_short(wv)!r}")
        if wh is not None:
            expect(headers_as_list(gh) == headers_as_list(wh),
                   f"{what}[{i}]: headers {headers_as_list(gh)!r} != {headers_as_list(wh)!r}")


# A record without a key and a tombstone (null value), after records(10).
NULLS = [(None, b"v-no-key", []), (b"k-tombstone", None, [])]


# The `transactions` scenario: one transactional producer on a topic of
# TXN_PARTITIONS partitions runs the transactions of TXN_PLAN in turn, each
# across every partition; the aborted one's records are flushed to the log
# before the abort, so the broker has something to hide. A read_committed
# consumer must see exactly the committed records, in order; a read_uncommitted
# one all of them (the aborted ones were written, not lost). The driver then
# checks the control batches on the wire (one marker per transaction and
# partition) and the aborted-transaction index of a read_committed Fetch.
TXN_PARTITIONS = 2
TXN_PLAN = [("commit", 4), ("abort", 3), ("commit", 2)]


def txn_values(txn, partition):
    outcome, n = TXN_PLAN[txn]
    return [f"t{txn}-{outcome}-p{partition}-{i}".encode() for i in range(n)]


def txn_expected(committed_only):
    """{partition: [values in offset order]} a consumer must read."""
    return {p: [v for t, (outcome, _) in enumerate(TXN_PLAN) if outcome == "commit" or not committed_only
                for v in txn_values(t, p)]
            for p in range(TXN_PARTITIONS)}


def txn_count(committed_only):
    return sum(len(v) for v in txn_expected(committed_only).values())


def check_txn_read(got, committed_only):
    """got: {partition: [values in the order read]}."""
    what = "read_committed" if committed_only else "read_uncommitted"
    want = txn_expected(committed_only)
    for p in range(TXN_PARTITIONS):
        g = [bytes(v) if v is not None else None for v in got.get(p, [])]
        expect(g == want[p], f"{what} consumer, partition {p}: got {[_short(v) for v in g]}, "
               f"want {[v.decode() for v in want[p]]}")
    extra = sorted(set(got) - set(range(TXN_PARTITIONS)))
    expect(not extra, f"{what} consumer read partitions {extra}")


def txn_verify_spec(topic):
    """What the driver checks on the wire after a passing `transactions`."""
    return {"topic": topic, "transactions": {"partitions": TXN_PARTITIONS,
                                             "markers": [o for o, _ in TXN_PLAN],
                                             "records": [n for _, n in TXN_PLAN]}}


TXN_NOTE = (f"{len(TXN_PLAN)} transactions across {TXN_PARTITIONS} partitions "
            f"({', '.join(f'{o} {n}' for o, n in TXN_PLAN)} records per partition, the aborted ones flushed "
            "before the abort); read_committed reads exactly the committed ones, read_uncommitted all")
