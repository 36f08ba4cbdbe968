"""Kafka transactions against a real Herald broker with real clients:
confluent-kafka (librdkafka) here, the Java client 4.3 through
java/TxnCheck.java.

What is checked is Kafka's documented behaviour (KIP-98, KIP-447):
  * a read_committed consumer sees exactly the committed records, in order per
    partition, and none of the aborted ones; read_uncommitted sees both;
  * the last stable offset (LSO) is the first offset of the oldest open
    transaction: a read_committed consumer sees nothing past it (not even
    non-transactional records written later) until the transaction ends, and
    ListOffsets(latest, read_committed) answers it; each marker takes one
    offset;
  * InitProducerId with the same transactional.id fences the older producer
    (its next produce or commit fails with a fatal fenced error) and aborts its
    open transaction;
  * a transaction left open past transaction.timeout.ms is aborted by the
    broker;
  * offsets sent in a transaction become the group's committed offsets only
    when it commits.

Run: HERALD_BIN=target/debug/herald pytest -s tests/python/test_transactions.py
"""

import os
import shutil
import subprocess
import sys
import time

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_proc import HeraldProcess  # noqa: E402
from txn_helpers import (  # noqa: E402
    BROKER_ARGS,
    TXN_MAX_TIMEOUT_MS,
    Reader,
    create_topic,
    plain_producer,
    read_all,
    stable_offsets,
    txn_producer,
    unique,
    values,
    wait_stable,
    wait_until,
    watermarks,
)

P = 3  # partitions of every topic here
FENCED = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}


@pytest.fixture(scope="module")
def broker():
    binary = os.environ.get("HERALD_BIN")
    if not binary:
        pytest.skip("set HERALD_BIN (the tests start a broker with short transaction timers)")
    proc = HeraldProcess(os.path.abspath(binary), extra_args=BROKER_ARGS).start()
    yield proc
    proc.close()


def write(producer, topic, prefix, per_partition):
    """per_partition records to each partition, keyed by partition; returns
    {partition: [value]} in the order produced."""
    out = {p: [] for p in range(P)}
    for i in range(per_partition):
        for p in range(P):
            v = f"{prefix}-p{p}-{i}"
            producer.produce(topic, key=f"k{p}", value=v, partition=p)
            out[p].append(v)
    return out


def flush(producer):
    left = producer.flush(30)
    assert left == 0, f"{left} records not delivered"


def concat(*parts):
    return {p: [v for part in parts for v in part[p]] for p in range(P)}


def err_of(excinfo):
    return excinfo.value.args[0]


# ---------------------------------------------------------- commit and abort


def test_commit_and_abort_across_partitions_with_lso(broker):
    bs = broker.bootstrap
    topic = create_topic(bs, P)
    plain = plain_producer(bs)
    n0 = write(plain, topic, "n0", 2)
    flush(plain)

    tp = txn_producer(bs, unique("tx-ca"))
    tp.init_transactions(30)
    tp.begin_transaction()
    c = write(tp, topic, "c", 4)
    flush(tp)  # the transaction's records are in the log, not yet committed
    n1 = write(plain, topic, "n1", 2)
    flush(plain)

    # Open transaction: the LSO is its first offset (2) on every partition;
    # the high watermark counts everything written.
    assert stable_offsets(bs, topic, P) == {p: (2, 8) for p in range(P)}
    rc = read_all(bs, topic, P, "read_committed")
    assert values(rc) == n0, "read_committed saw past the open transaction's first offset"
    ru = read_all(bs, topic, P, "read_uncommitted")
    assert values(ru) == concat(n0, c, n1)
    assert [o for (o, _, _) in ru[0]] == list(range(8))
    assert all(k == f"k{p}" for p in range(P) for (_, k, _) in ru[p])
    # A consumer that stays: it waits at the LSO...
    live = Reader(bs, topic, P, "read_committed")
    assert values(live.read()) == n0

    tp.commit_transaction(30)
    # ...and gets the rest once the commit markers are written.
    assert values(live.read(15)) == concat(c, n1)
    # The commit marker took offset 8.
    assert wait_stable(bs, topic, P, 15) == {p: 9 for p in range(P)}
    rc = read_all(bs, topic, P, "read_committed")
    assert values(rc) == concat(n0, c, n1)
    assert [o for (o, _, _) in rc[1]] == list(range(8))

    # A second transaction, aborted, with non-transactional writes inside.
    tp.begin_transaction()
    a = write(tp, topic, "a", 3)
    flush(tp)
    n2 = write(plain, topic, "n2", 2)
    flush(plain)
    assert stable_offsets(bs, topic, P) == {p: (9, 14) for p in range(P)}
    assert values(read_all(bs, topic, P, "read_committed")) == concat(n0, c, n1)
    tp.abort_transaction(30)
    assert wait_stable(bs, topic, P, 15) == {p: 15 for p in range(P)}
    n3 = write(plain, topic, "n3", 1)
    flush(plain)

    assert values(live.read(15)) == concat(n2, n3), "the staying read_committed consumer after the abort"
    live.close()
    rc = read_all(bs, topic, P, "read_committed")
    assert values(rc) == concat(n0, c, n1, n2, n3), "aborted records visible to read_committed, or committed ones missing"
    # Offsets: n2 follows the aborted records, n3 the abort marker (offset 14).
    assert [o for (o, _, _) in rc[2]] == [*range(8), 12, 13, 15]
    ru = read_all(bs, topic, P, "read_uncommitted")
    assert values(ru) == concat(n0, c, n1, a, n2, n3)
    assert watermarks(bs, topic, P, "read_committed") == {p: (0, 16) for p in range(P)}
    tp.flush(5)


def test_a_second_producer_fences_the_first(broker):
    bs = broker.bootstrap
    topic = create_topic(bs, P)
    txn_id = unique("tx-zombie")

    a = txn_producer(bs, txn_id)
    a.init_transactions(30)
    a.begin_transaction()
    za = write(a, topic, "zombie", 2)
    flush(a)

    b = txn_producer(bs, txn_id)
    b.init_transactions(30)  # bumps the epoch and aborts A's transaction
    b.begin_transaction()
    wb = write(b, topic, "winner", 2)
    flush(b)
    b.commit_transaction(30)

    # A's next produce is refused with its old epoch, and so is its commit:
    # librdkafka raises the fatal _FENCED (INVALID_PRODUCER_EPOCH on Produce,
    # PRODUCER_FENCED on EndTxn).
    # (confluent-kafka raises the fatal error from flush() when it happens
    # there, with no error_cb set.)
    a.produce(topic, value="zombie-late", partition=0)
    try:
        a.flush(15)
    except KafkaException as e:
        assert e.args[0].code() in FENCED, f"zombie's late produce failed with {e.args[0]}"
    with pytest.raises(KafkaException) as ei:
        a.commit_transaction(15)
    err = err_of(ei)
    assert err.code() in FENCED, f"zombie commit failed with {err} (expected a fenced error)"
    assert err.fatal(), f"the fenced error must be fatal: {err}"

    wait_stable(bs, topic, P, 15)
    rc = values(read_all(bs, topic, P, "read_committed"))
    assert rc == wb, "read_committed must see the winner's records only"
    # The zombie's records did reach the log (then aborted by the fencing).
    ru = values(read_all(bs, topic, P, "read_uncommitted"))
    assert all(v in ru[p] for p in range(P) for v in za[p]), ru
    assert not any("zombie-late" in v for p in range(P) for v in ru[p])


def test_open_transaction_times_out_and_is_aborted(broker):
    bs = broker.bootstrap
    topic = create_topic(bs, P)
    txn_id = unique("tx-timeout")
    plain = plain_producer(bs)

    idle = txn_producer(bs, txn_id, **{"transaction.timeout.ms": 5000})
    idle.init_transactions(30)
    t0 = time.time()  # the transaction starts after this (its first AddPartitionsToTxn)
    idle.begin_transaction()
    lost = write(idle, topic, "timedout", 3)
    flush(idle)
    after = write(plain, topic, "after", 1)
    flush(plain)
    assert stable_offsets(bs, topic, P) == {p: (0, 4) for p in range(P)}

    # The producer stays alive and idle; the broker aborts the transaction
    # (5 s timeout, checked every 0.5 s) and the LSO moves past it. (5 s, not
    # less: the check above must come before the timeout on a loaded machine.)
    hw = wait_stable(bs, topic, P, 20)
    took = time.time() - t0
    assert hw == {p: 5 for p in range(P)}, "expected one abort marker after the 4 records"
    assert took >= 4.9, f"the transaction was ended {took:.1f}s after it began, before its 5 s timeout"
    assert values(read_all(bs, topic, P, "read_committed")) == after
    ru = values(read_all(bs, topic, P, "read_uncommitted"))
    assert ru == concat(lost, after)

    # The idle producer's commit must not succeed: its transaction is gone.
    with pytest.raises(KafkaException):
        idle.commit_transaction(15)

    # A new producer with the same id works.
    fresh = txn_producer(bs, txn_id, **{"transaction.timeout.ms": 5000})
    fresh.init_transactions(30)
    fresh.begin_transaction()
    ok = write(fresh, topic, "fresh", 2)
    flush(fresh)
    fresh.commit_transaction(30)
    wait_stable(bs, topic, P, 15)
    assert values(read_all(bs, topic, P, "read_committed")) == concat(after, ok)


def test_transaction_timeout_above_the_broker_maximum_is_refused(broker):
    p = txn_producer(broker.bootstrap, unique("tx-max"),
                     **{"transaction.timeout.ms": TXN_MAX_TIMEOUT_MS + 1000})
    with pytest.raises(KafkaException) as ei:
        p.init_transactions(30)
    assert err_of(ei).code() == KafkaError.INVALID_TRANSACTION_TIMEOUT, err_of(ei)


# ---------------------------------------------------- offsets in transactions


def group_offsets(bs, group, topic):
    """The group's committed offsets {partition: offset} (require_stable=false:
    what is committed, pending transactional offsets excluded; -1001 when
    none)."""
    admin = AdminClient({"bootstrap.servers": bs})
    req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(P)])
    res = admin.list_consumer_group_offsets([req], require_stable=False)[group].result(15)
    return {tp.partition: tp.offset for tp in res.topic_partitions}


def test_send_offsets_to_transaction(broker):
    bs = broker.bootstrap
    src = create_topic(bs, P, "in")
    dst = create_topic(bs, P, "out")
    group = unique("g-eos")
    plain = plain_producer(bs)
    first = write(plain, src, "in", 4)
    flush(plain)

    consumer = Consumer({
        "bootstrap.servers": bs,
        "group.id": group,
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
    })
    tp = txn_producer(bs, unique("tx-offsets"))
    tp.init_transactions(30)
    got = {p: [] for p in range(P)}

    def consume_until(n_per_partition):
        deadline = time.time() + 30
        while any(len(got[p]) < n_per_partition for p in range(P)):
            assert time.time() < deadline, f"consumed {got}"
            m = consumer.poll(0.2)
            if m is None or m.error():
                continue
            got[m.partition()].append(m.value().decode())
        assert all(len(got[p]) == n_per_partition for p in range(P)), got

    def transform(p, upto):
        for v in got[p][upto[0]:upto[1]]:
            tp.produce(dst, value=f"T({v})", partition=p)

    try:
        consumer.subscribe([src])
        # Transaction 1: the 4 records of each partition, committed with the
        # consumer's positions (4).
        consume_until(4)
        tp.begin_transaction()
        for p in range(P):
            transform(p, (0, 4))
        positions = consumer.position(consumer.assignment())
        assert sorted((t.partition, t.offset) for t in positions) == [(p, 4) for p in range(P)]
        tp.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 30)
        flush(tp)
        assert all(o < 0 for o in group_offsets(bs, group, src).values()), \
            "transactional offsets visible before the commit"
        tp.commit_transaction(30)
        wait_until(lambda: group_offsets(bs, group, src) == {p: 4 for p in range(P)}, 15,
                   "group offsets after commit")
        wait_stable(bs, dst, P, 15)
        out = values(read_all(bs, dst, P, "read_committed"))
        assert out == {p: [f"T({v})" for v in first[p]] for p in range(P)}

        # Transaction 2: 3 more records per partition, offsets 7, aborted: the
        # group's offsets stay at 4.
        second = write(plain, src, "in2", 3)
        flush(plain)
        consume_until(7)
        tp.begin_transaction()
        for p in range(P):
            transform(p, (4, 7))
        positions = consumer.position(consumer.assignment())
        assert sorted((t.partition, t.offset) for t in positions) == [(p, 7) for p in range(P)]
        tp.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 30)
        flush(tp)
        tp.abort_transaction(30)
        wait_stable(bs, dst, P, 15)
        assert group_offsets(bs, group, src) == {p: 4 for p in range(P)}, \
            "an aborted transaction moved the group's offsets"
        assert values(read_all(bs, dst, P, "read_committed")) == out
    finally:
        consumer.close()

    # A new member of the group starts at the committed offsets (4): it reads
    # the second batch again.
    c2 = Consumer({
        "bootstrap.servers": bs, "group.id": group, "isolation.level": "read_committed",
        "enable.auto.commit": False, "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
    })
    try:
        c2.subscribe([src])
        seen = {p: [] for p in range(P)}
        eof = set()
        deadline = time.time() + 30
        while len(eof) < P:
            assert time.time() < deadline, f"the group's next member read {seen}"
            m = c2.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
                continue
            seen[m.partition()].append(m.value().decode())
        assert seen == second
    finally:
        c2.close()


# ------------------------------------------------------------ the Java client


def java_check(broker, tmp_path, scenario, timeout=180):
    cp = os.environ.get("KAFKA_CLIENTS_CLASSPATH")
    if not cp or shutil.which("javac") is None:
        pytest.skip("set KAFKA_CLIENTS_CLASSPATH (and have a JDK) to run the Java client checks")
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "java", "TxnCheck.java")
    subprocess.run(["javac", "-d", str(tmp_path), "-cp", cp, src], check=True, timeout=120)
    r = subprocess.run(
        ["java", "-cp", f"{cp}:{tmp_path}", "TxnCheck", broker.bootstrap, scenario],
        capture_output=True, text=True, timeout=timeout,
    )
    out = r.stdout
    assert r.returncode == 0, f"TxnCheck {scenario} exited {r.returncode}\n{out}\n{r.stderr[-4000:]}"
    facts = {}
    for line in out.splitlines():
        if line.startswith("FACT "):
            k, _, v = line[5:].partition("=")
            facts[k] = v
    return facts, out


def test_java_commit_abort_read_committed(broker, tmp_path):
    facts, out = java_check(broker, tmp_path, "commit-abort")
    for p in range(P):
        committed = [f"c-p{p}-{i}" for i in range(4)]
        aborted = [f"a-p{p}-{i}" for i in range(3)]
        plain = [f"n-p{p}-{i}" for i in range(2)]
        assert facts[f"read_committed.p{p}"] == ",".join(committed + plain), out
        assert facts[f"read_uncommitted.p{p}"] == ",".join(committed + aborted + plain), out
        # endOffsets: read_committed (the LSO) equals the high watermark once
        # both transactions ended: 4 + marker + 3 + marker + 2.
        assert facts[f"end.read_committed.p{p}"] == "11", out
        assert facts[f"end.read_uncommitted.p{p}"] == "11", out
        # While the aborted transaction was open, the LSO was its first offset.
        assert facts[f"open.end.read_committed.p{p}"] == "5", out
        assert facts[f"open.end.read_uncommitted.p{p}"] == "8", out


def test_java_zombie_is_fenced(broker, tmp_path):
    facts, out = java_check(broker, tmp_path, "zombie")
    assert facts["zombie.commit"] == "ProducerFencedException", out
    assert facts["winner.commit"] == "ok", out
    for p in range(P):
        assert facts[f"read_committed.p{p}"] == ",".join(f"winner-p{p}-{i}" for i in range(2)), out
        # The zombie's flushed records reached the log and were aborted.
        ru = facts[f"read_uncommitted.p{p}"].split(",")
        assert all(f"zombie-p{p}-{i}" in ru for i in range(2)), out


def test_java_send_offsets_to_transaction(broker, tmp_path):
    facts, out = java_check(broker, tmp_path, "offsets")
    # Committed in transaction 1: offset 4 per partition, not visible before
    # the commit; transaction 2 (offsets 7) aborted.
    assert facts["offsets.before_commit"] == "none", out
    assert facts["offsets.after_commit"] == "0:4,1:4,2:4", out
    assert facts["offsets.after_abort"] == "0:4,1:4,2:4", out
    for p in range(P):
        assert facts[f"output.read_committed.p{p}"] == ",".join(f"T(in-p{p}-{i})" for i in range(4)), out
