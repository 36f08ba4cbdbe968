"""Scenario suite for aiokafka (asyncio; codecs from lz4, cramjam, zstandard)."""

import asyncio
import time

import aiokafka
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.structs import OffsetAndMetadata

from aiokafka.helpers import create_ssl_context

from harness import (NULLS, SECURITY, TXN_NOTE, TXN_PARTITIONS, TXN_PLAN, Check, Suite, check_records,
                     check_txn_read, expect, is_authorization_error, records, security, txn_count,
                     txn_values, txn_verify_spec)

suite = Suite("aiokafka", aiokafka.__version__)
B = suite.bootstrap


def sec(limited=False):
    """aiokafka's settings for security mode (User:client, or User:limited)."""
    s = security(limited)
    if not s:
        return {}
    kw = dict(security_protocol=s["protocol"],
              ssl_context=create_ssl_context(cafile=s["ca"], certfile=s.get("cert"), keyfile=s.get("key")))
    if "username" in s:
        kw.update(sasl_mechanism=s["mechanism"], sasl_plain_username=s["username"],
                  sasl_plain_password=s["password"])
    return kw


def run_async(coro_fn):
    def run():
        return asyncio.run(coro_fn())
    return run


async def produce(topic, recs, timestamps=None, limited=False, **conf):
    p = AIOKafkaProducer(bootstrap_servers=B, client_id="compat-aiokafka", **sec(limited), **conf)
    await p.start()
    try:
        futs = []
        for i, (k, v, h) in enumerate(recs):
            futs.append(await p.send(topic, value=v, key=k, headers=list(h), partition=0,
                                     timestamp_ms=timestamps[i] if timestamps else None))
        return await asyncio.wait_for(asyncio.gather(*futs), 15)
    finally:
        await p.stop()


def consumer(*topics, **kw):
    conf = dict(bootstrap_servers=B, client_id="compat-aiokafka", group_id=None,
                enable_auto_commit=False, auto_offset_reset="earliest", **sec())
    conf.update(kw)
    return AIOKafkaConsumer(*topics, **conf)


async def getmany_n(c, n, timeout=15):
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        for recs in (await c.getmany(timeout_ms=500, max_records=n - len(got))).values():
            got.extend(recs)
    return got


async def consume_assigned(topic, n, offset=None, timeout=15):
    c = consumer()
    tp = TopicPartition(topic, 0)
    await c.start()
    try:
        c.assign([tp])
        if offset is None:
            await c.seek_to_beginning(tp)
        else:
            c.seek(tp, offset)
        got = await getmany_n(c, n, timeout)
    finally:
        await c.stop()
    expect(len(got) >= n, f"consumed {len(got)}/{n} records within {timeout}s")
    return got


def triples(msgs):
    return [(m.key, m.value, m.headers) for m in msgs]


def topic_errors(resp):
    obj = resp.to_object()
    key = "topic_errors" if "topic_errors" in obj else "topic_error_codes"
    return [(e.get("topic"), e["error_code"]) for e in obj[key] if e["error_code"]]


TOPIC_ALREADY_EXISTS, UNKNOWN_TOPIC_OR_PARTITION = 36, 3


async def admin_topics():
    a = AIOKafkaAdminClient(bootstrap_servers=B, client_id="compat-aiokafka", **sec())
    await a.start()
    t = suite.topic("admin")
    try:
        r = await a.create_topics([NewTopic(t, 3, 1, topic_configs={"retention.ms": "3600000"})])
        expect(not topic_errors(r), f"CreateTopics errors {topic_errors(r)}")
        expect(t in await a.list_topics(), f"created topic {t} missing from list_topics")
        desc = await a.describe_topics([t])
        expect(len(desc) == 1 and desc[0]["error_code"] == 0, f"describe_topics: {desc}")
        expect(len(desc[0]["partitions"]) == 3, f"describe_topics: {len(desc[0]['partitions'])} partitions, want 3")
        r = await a.create_topics([NewTopic(t, 1, 1)])
        codes = [c for _, c in topic_errors(r)]
        expect(codes == [TOPIC_ALREADY_EXISTS], f"creating an existing topic: error codes {codes}, want [36]")
        r = await a.delete_topics([t])
        expect(not topic_errors(r), f"DeleteTopics errors {topic_errors(r)}")
        r = await a.delete_topics([t + "-unknown"])
        codes = [c for _, c in topic_errors(r)]
        expect(codes == [UNKNOWN_TOPIC_OR_PARTITION], f"deleting an unknown topic: error codes {codes}, want [3]")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if t not in await a.list_topics():
                return "create 3 partitions, describe_topics, delete; errors for a duplicate create and an unknown delete"
            await asyncio.sleep(0.3)
        raise Check(f"deleted topic {t} still listed after 10s")
    finally:
        await a.close()


async def describe_configs():
    a = AIOKafkaAdminClient(bootstrap_servers=B, client_id="compat-aiokafka", **sec())
    await a.start()
    t = suite.topic("configs")
    try:
        r = await a.create_topics([NewTopic(t, 1, 1, topic_configs={"retention.ms": "7200000"})])
        expect(not topic_errors(r), f"CreateTopics errors {topic_errors(r)}")
        resps = await a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t)])
        res = resps[0].to_object()["resources"][0]
        expect(res["error_code"] == 0, f"DescribeConfigs error {res['error_code']} {res.get('error_message')}")
        entries = {e["config_names"]: e["config_value"] for e in res["config_entries"]}
        expect(len(entries) > 0, "DescribeConfigs returned no entries")
        for key in ("retention.ms", "cleanup.policy", "segment.bytes"):
            expect(key in entries, f"DescribeConfigs lacks {key}; got {sorted(entries)[:10]}")
        expect(entries["retention.ms"] == "7200000",
               f"retention.ms = {entries['retention.ms']!r}, want '7200000' (set at creation)")
        return f"{len(entries)} entries (DescribeConfigs v{resps[0].API_VERSION})"
    finally:
        await a.close()


async def produce_keys_headers():
    t = suite.topic("produce")
    want = records(10) + NULLS
    md = await produce(t, want)
    offs = [m.offset for m in md]
    expect(offs == list(range(12)), f"offsets {offs}, want 0..11")
    check_records(triples(await consume_assigned(t, 12)), want)
    return "10 keyed records with headers, a null key, a tombstone"


def compression(codec):
    async def run():
        t = suite.topic(f"comp-{codec}")
        want = records(200, size=300)
        await produce(t, want, compression_type=codec, linger_ms=50)
        check_records(triples(await consume_assigned(t, 200)), want)
        suite.verify(topic=t, codec=codec)
    return run


async def consume_beginning():
    t = suite.topic("beginning")
    want = records(25)
    await produce(t, want[:10])
    await produce(t, want[10:])
    got = await consume_assigned(t, 25)
    check_records(triples(got), want)
    expect([m.offset for m in got] == list(range(25)), "offsets not 0..24")


async def consume_timestamp():
    t = suite.topic("timestamp")
    t0 = (int(time.time()) - 3600) * 1000
    await produce(t, records(10), timestamps=[t0 + i * 1000 for i in range(10)], linger_ms=100)
    c = consumer()
    await c.start()
    tp = TopicPartition(t, 0)
    try:
        for q, want in [(t0 + 5000, 5), (t0 + 4500, 5), (t0 - 10_000, 0), (t0 + 100_000, None)]:
            r = (await c.offsets_for_times({tp: q}))[tp]
            got = r.offset if r is not None else None
            expect(got == want, f"offsets_for_times(t0{q - t0:+d}ms) = {r}, want offset {want}")
    finally:
        await c.stop()
    got = await consume_assigned(t, 5, offset=5)
    expect(got[0].offset == 5 and got[0].value == b"v5",
           f"first record at offset {got[0].offset} value {got[0].value!r}, want 5/v5")
    expect(got[0].timestamp == t0 + 5000, f"timestamp {got[0].timestamp} != t0+5000")
    return "ListOffsets by time inside one batch, then fetch from that offset"


async def idempotent_produce():
    t = suite.topic("idempotent")
    want = records(50)
    await produce(t, want, enable_idempotence=True, linger_ms=20)
    check_records(triples(await consume_assigned(t, 50)), want)
    suite.verify(topic=t, idempotent=True)


async def group_commit_resume():
    t = suite.topic("group")
    await produce(t, records(10))
    g = f"grp-{suite.run_id}"
    tp = TopicPartition(t, 0)
    with suite.needs("group-coordinator"):
        first = consumer(t, group_id=g, session_timeout_ms=6000, heartbeat_interval_ms=1000)
        await asyncio.wait_for(first.start(), 15)
        try:
            got = await getmany_n(first, 5, 15)
            expect(len(got) == 5, f"group consumer got {len(got)}/5 records in 15s")
            await first.commit({tp: OffsetAndMetadata(5, "")})
        finally:
            await first.stop()
        second = consumer(t, group_id=g, session_timeout_ms=6000, heartbeat_interval_ms=1000)
        await asyncio.wait_for(second.start(), 15)
        try:
            got = await getmany_n(second, 1, 15)
            expect(got, "second consumer got nothing in 15s")
            expect(got[0].offset == 5, f"resumed at offset {got[0].offset}, want 5 (committed)")
            committed = await second.committed(tp)
            expect(committed == 5, f"committed offset {committed}, want 5")
        finally:
            await second.stop()


async def read_txn_topic(topic, isolation, timeout=15):
    """{partition: [values]} of the transactions topic, from the beginning until the
    expected number of records (read_committed: the committed ones) has arrived."""
    c = consumer(isolation_level=isolation)
    tps = [TopicPartition(topic, p) for p in range(TXN_PARTITIONS)]
    await c.start()
    try:
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        got = {}
        for m in await getmany_n(c, txn_count(isolation == "read_committed"), timeout):
            got.setdefault(m.partition, []).append(m.value)
    finally:
        await c.stop()
    return got


async def transactions():
    t = suite.topic("txn")
    a = AIOKafkaAdminClient(bootstrap_servers=B, client_id="compat-aiokafka", **sec())
    await a.start()
    try:
        r = await a.create_topics([NewTopic(t, TXN_PARTITIONS, 1)])
        expect(not topic_errors(r), f"CreateTopics errors {topic_errors(r)}")
    finally:
        await a.close()
    with suite.needs("transactions"):
        p = AIOKafkaProducer(bootstrap_servers=B, client_id="compat-aiokafka",
                             transactional_id=f"compat-aiokafka-{suite.run_id}", **sec())
        await asyncio.wait_for(p.start(), 15)  # InitProducerId with the transactional id
        try:
            futs = []
            for n, (outcome, _) in enumerate(TXN_PLAN):
                await asyncio.wait_for(p.begin_transaction(), 15)  # waits for the producer id
                for part in range(TXN_PARTITIONS):
                    futs += [await p.send(t, value=v, partition=part) for v in txn_values(n, part)]
                if outcome == "abort":
                    # Written to the log before the abort, so the broker has something to hide.
                    await asyncio.wait_for(asyncio.gather(*futs), 15)
                    await asyncio.wait_for(p.abort_transaction(), 15)
                else:
                    await asyncio.wait_for(p.commit_transaction(), 15)
            mds = await asyncio.wait_for(asyncio.gather(*futs), 15)
            expect(len(mds) == txn_count(False), f"{len(mds)} acknowledged records, want {txn_count(False)}")
        finally:
            await p.stop()
        check_txn_read(await read_txn_topic(t, "read_committed"), committed_only=True)
        check_txn_read(await read_txn_topic(t, "read_uncommitted"), committed_only=False)
    suite.verify(**txn_verify_spec(t))
    return TXN_NOTE


async def acl_denied():
    ok, no = suite.topic("acl_ok"), suite.topic("acl_no")
    md = await produce(ok, records(3), limited=True)
    expect([m.offset for m in md] == [0, 1, 2], f"allowed produce as User:limited: offsets {[m.offset for m in md]}")
    try:
        await produce(no, records(1), limited=True, request_timeout_ms=10000)
    except Exception as e:  # noqa: BLE001
        expect(is_authorization_error(e), f"produce to {no} as User:limited: {type(e).__name__}: {e}, "
               "want TopicAuthorizationFailedError")
        return f"as User:limited: produce to acl-ok-* allowed; elsewhere {type(e).__name__}"
    raise Check(f"produce to {no} as User:limited succeeded, want TopicAuthorizationFailedError")


suite.run("admin_topics", run_async(admin_topics))
suite.run("describe_configs", run_async(describe_configs))
suite.run("produce_keys_headers", run_async(produce_keys_headers))
for codec in ("gzip", "snappy", "lz4", "zstd"):
    suite.run(f"compression_{codec}", run_async(compression(codec)))
suite.run("consume_beginning", run_async(consume_beginning))
suite.run("consume_timestamp", run_async(consume_timestamp))
suite.run("idempotent_produce", run_async(idempotent_produce))
suite.run("group_commit_resume", run_async(group_commit_resume), timeout=40)
suite.na("group_consumer_protocol", "aiokafka has no KIP-848 consumer")
suite.run("transactions", run_async(transactions), timeout=60)
if SECURITY:
    suite.run("acl_denied", run_async(acl_denied))
