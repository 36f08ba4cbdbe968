"""Scenario suite for kafka-python (pure Python; codecs from lz4, python-snappy/cramjam, zstandard)."""

import time

import kafka
import kafka.errors as Errors
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from kafka.structs import OffsetAndMetadata

from harness import (NULLS, SECURITY, TXN_NOTE, TXN_PARTITIONS, TXN_PLAN, Check, Suite, check_records,
                     check_txn_read, expect, is_authorization_error, records, security, txn_count,
                     txn_values, txn_verify_spec)

suite = Suite("kafka-python", kafka.__version__)
B = suite.bootstrap


def sec(limited=False):
    """kafka-python's settings for security mode (User:client, or User:limited)."""
    s = security(limited)
    if not s:
        return {}
    kw = dict(security_protocol=s["protocol"], ssl_cafile=s["ca"])
    if "cert" in s:
        kw.update(ssl_certfile=s["cert"], ssl_keyfile=s["key"])
    else:
        kw.update(sasl_mechanism=s["mechanism"], sasl_plain_username=s["username"],
                  sasl_plain_password=s["password"])
    return kw


def produce(topic, recs, timestamps=None, limited=False, **conf):
    p = KafkaProducer(bootstrap_servers=B, client_id="compat-kafka-python", **sec(limited), **conf)
    try:
        futs = []
        for i, (k, v, h) in enumerate(recs):
            futs.append(p.send(topic, value=v, key=k, headers=list(h), partition=0,
                               timestamp_ms=timestamps[i] if timestamps else None))
        p.flush(timeout=15)
        return [f.get(timeout=15) for f in futs]
    finally:
        p.close(timeout=5)


def consumer(**kw):
    conf = dict(bootstrap_servers=B, client_id="compat-kafka-python", group_id=None,
                enable_auto_commit=False, auto_offset_reset="earliest", **sec())
    conf.update(kw)
    return KafkaConsumer(**conf)


def poll_n(c, n, timeout=15):
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        for recs in c.poll(timeout_ms=500, max_records=n - len(got)).values():
            got.extend(recs)
    return got


def consume_assigned(topic, n, offset=None, timeout=15):
    c = consumer()
    tp = TopicPartition(topic, 0)
    try:
        c.assign([tp])
        if offset is None:
            c.seek_to_beginning(tp)
        else:
            c.seek(tp, offset)
        got = poll_n(c, n, timeout)
    finally:
        c.close()
    expect(len(got) >= n, f"consumed {len(got)}/{n} records within {timeout}s")
    return got


def triples(msgs):
    return [(m.key, m.value, m.headers) for m in msgs]


def admin():
    return KafkaAdminClient(bootstrap_servers=B, client_id="compat-kafka-python", **sec())


def admin_topics():
    a = admin()
    t = suite.topic("admin")
    try:
        a.create_topics([NewTopic(t, 3, 1, topic_configs={"retention.ms": "3600000"})])
        expect(t in a.list_topics(), f"created topic {t} missing from list_topics")
        desc = a.describe_topics([t])
        expect(len(desc) == 1 and desc[0]["error_code"] == 0, f"describe_topics: {desc}")
        expect(len(desc[0]["partitions"]) == 3, f"describe_topics: {len(desc[0]['partitions'])} partitions, want 3")
        try:
            a.create_topics([NewTopic(t, 1, 1)])
            raise Check("creating an existing topic succeeded, want TopicAlreadyExistsError")
        except Errors.TopicAlreadyExistsError:
            pass
        a.delete_topics([t])
        try:
            a.delete_topics([t + "-unknown"])
            raise Check("deleting an unknown topic succeeded, want UnknownTopicOrPartitionError")
        except Errors.UnknownTopicOrPartitionError:
            pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if t not in a.list_topics():
                return "create 3 partitions, describe_topics, delete; errors for a duplicate create and an unknown delete"
            time.sleep(0.3)
        raise Check(f"deleted topic {t} still listed after 10s")
    finally:
        a.close()


def describe_configs():
    a = admin()
    t = suite.topic("configs")
    try:
        a.create_topics([NewTopic(t, 1, 1, topic_configs={"retention.ms": "7200000"})])
        res = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t)], config_filter="all")
        entries = res["topic"][t]
        expect(len(entries) > 0, "DescribeConfigs returned no entries")
        for key in ("retention.ms", "cleanup.policy", "segment.bytes"):
            expect(key in entries, f"DescribeConfigs lacks {key}; got {sorted(entries)[:10]}")
        v = entries["retention.ms"]["value"]
        expect(v == "7200000", f"retention.ms = {v!r}, want '7200000' (set at creation)")
        return f"{len(entries)} entries"
    finally:
        a.close()


def produce_keys_headers():
    t = suite.topic("produce")
    want = records(10) + NULLS
    md = produce(t, want)
    offs = [m.offset for m in md]
    expect(offs == list(range(12)), f"offsets {offs}, want 0..11")
    check_records(triples(consume_assigned(t, 12)), want)
    return "10 keyed records with headers, a null key, a tombstone"


def compression(codec):
    def run():
        t = suite.topic(f"comp-{codec}")
        want = records(200, size=300)
        produce(t, want, compression_type=codec, linger_ms=50)
        check_records(triples(consume_assigned(t, 200)), want)
        suite.verify(topic=t, codec=codec)
    return run


def consume_beginning():
    t = suite.topic("beginning")
    want = records(25)
    produce(t, want[:10])
    produce(t, want[10:])
    got = consume_assigned(t, 25)
    check_records(triples(got), want)
    expect([m.offset for m in got] == list(range(25)), "offsets not 0..24")


def consume_timestamp():
    t = suite.topic("timestamp")
    t0 = (int(time.time()) - 3600) * 1000
    produce(t, records(10), timestamps=[t0 + i * 1000 for i in range(10)], linger_ms=100)
    c = consumer()
    tp = TopicPartition(t, 0)
    try:
        for q, want in [(t0 + 5000, 5), (t0 + 4500, 5), (t0 - 10_000, 0), (t0 + 100_000, None)]:
            r = c.offsets_for_times({tp: q})[tp]
            got = r.offset if r is not None else None
            expect(got == want, f"offsets_for_times(t0{q - t0:+d}ms) = {r}, want offset {want}")
    finally:
        c.close()
    got = consume_assigned(t, 5, offset=5)
    expect(got[0].offset == 5 and got[0].value == b"v5",
           f"first record at offset {got[0].offset} value {got[0].value!r}, want 5/v5")
    expect(got[0].timestamp == t0 + 5000, f"timestamp {got[0].timestamp} != t0+5000")
    return "ListOffsets by time inside one batch, then fetch from that offset"


def idempotent_produce():
    t = suite.topic("idempotent")
    want = records(50)
    produce(t, want, enable_idempotence=True, linger_ms=20)
    check_records(triples(consume_assigned(t, 50)), want)
    suite.verify(topic=t, idempotent=True)


def group_commit_resume():
    t = suite.topic("group")
    produce(t, records(10))
    g = f"grp-{suite.run_id}"
    tp = TopicPartition(t, 0)
    with suite.needs("group-coordinator"):
        first = consumer(group_id=g, session_timeout_ms=6000, heartbeat_interval_ms=1000)
        first.subscribe([t])
        got = poll_n(first, 5, 15)
        expect(len(got) == 5, f"group consumer got {len(got)}/5 records in 15s")
        first.commit({tp: OffsetAndMetadata(5, "", -1)})
        first.close()
        second = consumer(group_id=g, session_timeout_ms=6000, heartbeat_interval_ms=1000)
        second.subscribe([t])
        got = poll_n(second, 1, 15)
        expect(got, "second consumer got nothing in 15s")
        expect(got[0].offset == 5, f"resumed at offset {got[0].offset}, want 5 (committed)")
        committed = second.committed(tp)
        expect(committed == 5, f"committed offset {committed}, want 5")
        second.close()


def read_txn_topic(topic, isolation, timeout=15):
    """{partition: [values]} of the transactions topic, from the beginning until the
    expected number of records (read_committed: the committed ones) has arrived."""
    c = consumer(isolation_level=isolation)
    tps = [TopicPartition(topic, p) for p in range(TXN_PARTITIONS)]
    try:
        c.assign(tps)
        c.seek_to_beginning(*tps)
        n = txn_count(isolation == "read_committed")
        got = {}
        for m in poll_n(c, n, timeout):
            got.setdefault(m.partition, []).append(m.value)
    finally:
        c.close()
    return got


def transactions():
    t = suite.topic("txn")
    a = admin()
    try:
        a.create_topics([NewTopic(t, TXN_PARTITIONS, 1)])
    finally:
        a.close()
    with suite.needs("transactions"):
        p = KafkaProducer(bootstrap_servers=B, client_id="compat-kafka-python",
                          transactional_id=f"compat-kafka-python-{suite.run_id}", **sec())
        try:
            p.init_transactions()
            futs = []
            for n, (outcome, _) in enumerate(TXN_PLAN):
                p.begin_transaction()
                for part in range(TXN_PARTITIONS):
                    futs += [p.send(t, value=v, partition=part) for v in txn_values(n, part)]
                if outcome == "abort":
                    # Written to the log before the abort, so the broker has something to hide.
                    p.flush(timeout=15)
                    p.abort_transaction()
                else:
                    p.commit_transaction()
            offsets = [f.get(timeout=15).offset for f in futs]
            expect(len(offsets) == txn_count(False), f"{len(offsets)} acknowledged records, want {txn_count(False)}")
        finally:
            p.close(timeout=5)
        check_txn_read(read_txn_topic(t, "read_committed"), committed_only=True)
        check_txn_read(read_txn_topic(t, "read_uncommitted"), committed_only=False)
    suite.verify(**txn_verify_spec(t))
    return TXN_NOTE


def acl_denied():
    ok, no = suite.topic("acl_ok"), suite.topic("acl_no")
    md = produce(ok, records(3), limited=True)
    expect([m.offset for m in md] == [0, 1, 2], f"allowed produce as User:limited: offsets {[m.offset for m in md]}")
    try:
        produce(no, records(1), limited=True, max_block_ms=10000)
    except Exception as e:  # noqa: BLE001
        expect(is_authorization_error(e), f"produce to {no} as User:limited: {type(e).__name__}: {e}, "
               "want TopicAuthorizationFailedError")
        return f"as User:limited: produce to acl-ok-* allowed; elsewhere {type(e).__name__}"
    raise Check(f"produce to {no} as User:limited succeeded, want TopicAuthorizationFailedError")


suite.run("admin_topics", admin_topics)
suite.run("describe_configs", describe_configs)
suite.run("produce_keys_headers", produce_keys_headers)
for codec in ("gzip", "snappy", "lz4", "zstd"):
    suite.run(f"compression_{codec}", compression(codec))
suite.run("consume_beginning", consume_beginning)
suite.run("consume_timestamp", consume_timestamp)
suite.run("idempotent_produce", idempotent_produce)
suite.run("group_commit_resume", group_commit_resume, timeout=40)
suite.na("group_consumer_protocol", "kafka-python has no KIP-848 consumer")
suite.run("transactions", transactions, timeout=60)
if SECURITY:
    suite.run("acl_denied", acl_denied)
