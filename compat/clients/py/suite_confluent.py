"""Scenario suite for confluent-kafka (Python binding of librdkafka)."""

import time

import confluent_kafka
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from harness import (NULLS, SECURITY, TXN_NOTE, TXN_PARTITIONS, TXN_PLAN, Check, Suite, check_records,
                     check_txn_read, expect, librdkafka_security, records, txn_count, txn_values,
                     txn_verify_spec)

suite = Suite("confluent-kafka", confluent_kafka.__version__,
              f"librdkafka {confluent_kafka.libversion()[0]}")
B = suite.bootstrap
errors = []


def on_error(err):
    errors.append(str(err))


def base(limited=False, **kw):
    """Client config; in security mode with the settings of User:client (User:limited)."""
    conf = {"bootstrap.servers": B, "error_cb": on_error, "client.id": "compat-confluent"}
    conf.update(librdkafka_security(limited))
    conf.update(kw)
    return conf


def last_error():
    return f"; last client error: {errors[-1]}" if errors else ""


def produce(topic, recs, timestamps=None, **conf):
    p = Producer(base(**conf))
    reports = []

    def dr(err, msg):
        reports.append((err, msg.partition() if msg is not None else None, msg.offset() if msg is not None else None))

    for i, (k, v, h) in enumerate(recs):
        kw = {"key": k, "value": v, "headers": h, "on_delivery": dr, "partition": 0}
        if timestamps:
            kw["timestamp"] = timestamps[i]
        p.produce(topic, **kw)
    left = p.flush(15)
    expect(left == 0, f"{left} messages not delivered within 15s{last_error()}")
    bad = [r for r in reports if r[0] is not None]
    expect(not bad, f"delivery error: {bad[0][0] if bad else ''}")
    return reports


def consume_assigned(topic, n, offset=confluent_kafka.OFFSET_BEGINNING, timeout=15):
    c = Consumer(base(**{"group.id": f"unused-{suite.run_id}", "enable.auto.commit": False,
                         "enable.auto.offset.store": False}))
    c.assign([TopicPartition(topic, 0, offset)])
    got = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < n and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise Check(f"consume error: {m.error()}")
            got.append(m)
    finally:
        c.close()
    expect(len(got) >= n, f"consumed {len(got)}/{n} records within {timeout}s{last_error()}")
    return got


def triples(msgs):
    return [(m.key(), m.value(), m.headers()) for m in msgs]


def admin_topics():
    a = AdminClient(base())
    t = suite.topic("admin")
    fs = a.create_topics([NewTopic(t, num_partitions=3, replication_factor=1,
                                   config={"retention.ms": "3600000"})], operation_timeout=10)
    fs[t].result(15)
    md = a.list_topics(timeout=10)
    expect(t in md.topics, f"created topic {t} missing from Metadata")
    expect(len(md.topics[t].partitions) == 3, f"Metadata: {len(md.topics[t].partitions)} partitions, want 3")
    desc = a.describe_topics(confluent_kafka.TopicCollection([t]))[t].result(15)
    expect(len(desc.partitions) == 3, f"describe_topics: {len(desc.partitions)} partitions, want 3")
    try:
        a.create_topics([NewTopic(t, 1, 1)])[t].result(15)
        raise Check("creating an existing topic succeeded, want TOPIC_ALREADY_EXISTS")
    except confluent_kafka.KafkaException as e:
        code = e.args[0].code()
        expect(code == KafkaError.TOPIC_ALREADY_EXISTS, f"creating an existing topic: {e}, want TOPIC_ALREADY_EXISTS")
    a.delete_topics([t], operation_timeout=10)[t].result(15)
    try:
        a.delete_topics([t + "-unknown"], operation_timeout=10)[t + "-unknown"].result(15)
        raise Check("deleting an unknown topic succeeded, want UNKNOWN_TOPIC_OR_PART")
    except confluent_kafka.KafkaException as e:
        code = e.args[0].code()
        expect(code == KafkaError.UNKNOWN_TOPIC_OR_PART, f"deleting an unknown topic: {e}, want UNKNOWN_TOPIC_OR_PART")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if t not in a.list_topics(timeout=10).topics:
            return "create 3 partitions, Metadata + describe_topics, delete; errors for a duplicate create and an unknown delete"
        time.sleep(0.3)
    raise Check(f"deleted topic {t} still listed after 10s")


def describe_configs():
    a = AdminClient(base())
    t = suite.topic("configs")
    a.create_topics([NewTopic(t, 1, 1, config={"retention.ms": "7200000"})])[t].result(15)
    res = a.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, t)])
    entries = list(res.values())[0].result(15)
    expect(len(entries) > 0, "DescribeConfigs returned no entries")
    for key in ("retention.ms", "cleanup.policy", "segment.bytes"):
        expect(key in entries, f"DescribeConfigs lacks {key}; got {sorted(entries)[:10]}")
    expect(entries["retention.ms"].value == "7200000",
           f"retention.ms = {entries['retention.ms'].value!r}, want '7200000' (set at creation)")
    return f"{len(entries)} entries"


def produce_keys_headers():
    t = suite.topic("produce")
    want = records(10) + NULLS
    reps = produce(t, want)
    offs = [r[2] for r in reps]
    expect(offs == list(range(12)), f"offsets {offs}, want 0..11")
    got = consume_assigned(t, 12)
    check_records(triples(got), want)
    return "10 keyed records with headers, a null key, a tombstone"


def compression(codec):
    def run():
        t = suite.topic(f"comp-{codec}")
        want = records(200, size=300)
        produce(t, want, **{"compression.type": codec, "linger.ms": 50})
        got = consume_assigned(t, 200)
        check_records(triples(got), want)
        # librdkafka enables LZ4 only when the broker advertises FindCoordinator
        # (rdkafka_feature.c: LZ4 dates from 0.8.2, mapped to GroupCoordinator v0);
        # without it, it silently sends lz4-configured batches uncompressed.
        suite.verify(topic=t, codec=codec, **({"needs": "group-coordinator"} if codec == "lz4" else {}))
    return run


def consume_beginning():
    t = suite.topic("beginning")
    want = records(25)
    produce(t, want[:10])
    produce(t, want[10:])
    got = consume_assigned(t, 25)
    check_records(triples(got), want)
    expect([m.offset() for m in got] == list(range(25)), "offsets not 0..24")


def consume_timestamp():
    t = suite.topic("timestamp")
    t0 = (int(time.time()) - 3600) * 1000
    ts = [t0 + i * 1000 for i in range(10)]
    produce(t, records(10), timestamps=ts, **{"linger.ms": 100})
    c = Consumer(base(**{"group.id": f"unused-{suite.run_id}", "enable.auto.commit": False}))
    try:
        cases = [(t0 + 5000, 5), (t0 + 4500, 5), (t0 - 10_000, 0), (t0 + 100_000, -1)]
        for q, want in cases:
            r = c.offsets_for_times([TopicPartition(t, 0, q)], timeout=10)[0]
            expect(r.error is None, f"offsets_for_times({q - t0:+d}ms) error {r.error}")
            expect(r.offset == want, f"offsets_for_times(t0{q - t0:+d}ms) = {r.offset}, want {want}")
    finally:
        c.close()
    got = consume_assigned(t, 5, offset=5)
    expect(got[0].offset() == 5 and got[0].value() == b"v5",
           f"first record at offset {got[0].offset()} value {got[0].value()!r}, want 5/v5")
    expect(got[0].timestamp()[1] == t0 + 5000, f"timestamp {got[0].timestamp()} != t0+5000")
    return "ListOffsets by time inside one batch, then fetch from that offset"


def idempotent_produce():
    t = suite.topic("idempotent")
    want = records(50)
    produce(t, want, **{"enable.idempotence": True, "linger.ms": 20})
    got = consume_assigned(t, 50)
    check_records(triples(got), want)
    suite.verify(topic=t, idempotent=True)


def group_resume(protocol):
    def run():
        t = suite.topic(f"group-{protocol}")
        want = records(10)
        produce(t, want)
        g = f"grp-{protocol}-{suite.run_id}"
        conf = {"group.id": g, "enable.auto.commit": False, "auto.offset.reset": "earliest"}
        if protocol == "consumer":
            conf["group.protocol"] = "consumer"
        else:
            conf["session.timeout.ms"] = 6000
        with suite.needs("consumer-group-heartbeat" if protocol == "consumer" else "group-coordinator"):
            first = Consumer(base(**conf))
            first.subscribe([t])
            got = []
            deadline = time.monotonic() + 15
            while len(got) < 5 and time.monotonic() < deadline:
                m = first.poll(0.5)
                if m is not None and not m.error():
                    got.append(m)
            expect(len(got) == 5, f"group consumer got {len(got)}/5 records in 15s{last_error()}")
            first.commit(offsets=[TopicPartition(t, 0, 5)], asynchronous=False)
            first.close()
            second = Consumer(base(**conf))
            second.subscribe([t])
            m = None
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                m = second.poll(0.5)
                if m is not None and not m.error():
                    break
                m = None
            expect(m is not None, f"second consumer got nothing in 15s{last_error()}")
            expect(m.offset() == 5, f"resumed at offset {m.offset()}, want 5 (committed)")
            committed = second.committed([TopicPartition(t, 0)], timeout=10)[0].offset
            expect(committed == 5, f"committed offset {committed}, want 5")
            second.close()
        return f"group.protocol={protocol}"
    return run


def read_txn_topic(topic, isolation, timeout=15):
    """{partition: [values]} of every partition of the transactions topic, read from the
    beginning up to its end (partition EOF: the last stable offset under read_committed)."""
    c = Consumer(base(**{"group.id": f"unused-{suite.run_id}", "enable.auto.commit": False,
                         "enable.auto.offset.store": False, "enable.partition.eof": True,
                         "isolation.level": isolation}))
    c.assign([TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING) for p in range(TXN_PARTITIONS)])
    got, eof = {}, set()
    deadline = time.monotonic() + timeout
    try:
        while len(eof) < TXN_PARTITIONS and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
                    continue
                raise Check(f"{isolation} consumer error: {m.error()}")
            got.setdefault(m.partition(), []).append(m.value())
    finally:
        c.close()
    expect(len(eof) == TXN_PARTITIONS, f"{isolation} consumer reached the end of {sorted(eof)} of "
           f"{TXN_PARTITIONS} partitions within {timeout}s ({sum(map(len, got.values()))} records){last_error()}")
    return got


def transactions():
    t = suite.topic("txn")
    a = AdminClient(base())  # kept alive until the result is in
    a.create_topics([NewTopic(t, TXN_PARTITIONS, 1)])[t].result(15)
    with suite.needs("transactions"):
        p = Producer(base(**{"transactional.id": f"compat-confluent-{suite.run_id}"}))
        reports = []
        for n, (outcome, _) in enumerate(TXN_PLAN):
            if n == 0:
                p.init_transactions(15)
            p.begin_transaction()
            for part in range(TXN_PARTITIONS):
                for v in txn_values(n, part):
                    p.produce(t, value=v, partition=part, on_delivery=lambda err, msg: reports.append(err))
            if outcome == "abort":
                # Written to the log before the abort, so the broker has something to hide.
                left = p.flush(15)
                expect(left == 0, f"{left} messages of the aborted transaction not delivered within 15s")
                p.abort_transaction(15)
            else:
                p.commit_transaction(15)
        bad = [e for e in reports if e is not None]
        expect(not bad, f"delivery error: {bad[0] if bad else ''}")
        expect(len(reports) == txn_count(False), f"{len(reports)} delivery reports, want {txn_count(False)}")
        check_txn_read(read_txn_topic(t, "read_committed"), committed_only=True)
        check_txn_read(read_txn_topic(t, "read_uncommitted"), committed_only=False)
    suite.verify(**txn_verify_spec(t))
    return TXN_NOTE


def acl_denied():
    ok, no = suite.topic("acl_ok"), suite.topic("acl_no")
    reps = produce(ok, records(3), limited=True)
    expect([r[2] for r in reps] == [0, 1, 2], f"allowed produce as User:limited: offsets {[r[2] for r in reps]}")
    p = Producer(base(limited=True, **{"message.timeout.ms": 10000}))
    reports = []
    p.produce(no, value=b"denied", partition=0, on_delivery=lambda err, msg: reports.append(err))
    p.flush(15)
    expect(reports, f"no delivery report for the produce to {no} within 15s{last_error()}")
    err = reports[0]
    expect(err is not None, f"produce to {no} as User:limited succeeded, want TOPIC_AUTHORIZATION_FAILED")
    expect(err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED,
           f"produce to {no}: {err}, want TOPIC_AUTHORIZATION_FAILED")
    return f"as User:limited: produce to acl-ok-* allowed; elsewhere the delivery report says {err.str()!r}"


suite.run("admin_topics", admin_topics)
suite.run("describe_configs", describe_configs)
suite.run("produce_keys_headers", produce_keys_headers)
for codec in ("gzip", "snappy", "lz4", "zstd"):
    suite.run(f"compression_{codec}", compression(codec))
suite.run("consume_beginning", consume_beginning)
suite.run("consume_timestamp", consume_timestamp)
suite.run("idempotent_produce", idempotent_produce)
suite.run("group_commit_resume", group_resume("classic"), timeout=40)
suite.run("group_consumer_protocol", group_resume("consumer"), timeout=40)
suite.run("transactions", transactions, timeout=60)
if SECURITY:
    suite.run("acl_denied", acl_denied)
