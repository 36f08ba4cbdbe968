"""Helpers of the transaction tests (test_transactions.py, test_eos_torture.py,
test_txn_broker_kill.py): topics, transactional producers, and reading a topic
back exactly as a read_committed or read_uncommitted consumer sees it.
"""

import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from herald_proc import DEFAULT_ARGS

# The broker's transaction timers, short so that timed-out transactions are
# aborted within the tests (Kafka's defaults: 900000 and 10000 ms).
TXN_MAX_TIMEOUT_MS = 60000
TXN_ARGS = [
    "--transaction-max-timeout-ms", str(TXN_MAX_TIMEOUT_MS),
    "--transaction-abort-timed-out-transaction-cleanup-interval-ms", "500",
]
BROKER_ARGS = [*DEFAULT_ARGS, *TXN_ARGS]


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_topic(bootstrap, partitions, prefix="tx"):
    name = unique(prefix)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(15)
    return name


def txn_producer(bootstrap, txn_id, **extra):
    conf = {
        "bootstrap.servers": bootstrap,
        "transactional.id": txn_id,
        "linger.ms": 5,
    }
    conf.update(extra)
    return Producer(conf)


def plain_producer(bootstrap):
    return Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})


def wait_until(cond, timeout, what):
    """Polls cond() until it returns a truthy value; returns it, or fails
    naming `what` and the last value seen."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = cond()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"{what}: not reached within {timeout}s (last seen: {last!r})")


def watermarks(bootstrap, topic, partitions, isolation):
    """{partition: (low, high)} from ListOffsets with this isolation level:
    high is the high watermark for read_uncommitted and the last stable
    offset for read_committed (librdkafka sends the consumer's
    isolation.level in ListOffsets)."""
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": unique("wm"),
        "isolation.level": isolation,
        "enable.auto.commit": False,
    })
    try:
        return {
            p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
            for p in range(partitions)
        }
    finally:
        c.close()


def stable_offsets(bootstrap, topic, partitions):
    """{partition: (lso, hw)}."""
    rc = watermarks(bootstrap, topic, partitions, "read_committed")
    ru = watermarks(bootstrap, topic, partitions, "read_uncommitted")
    return {p: (rc[p][1], ru[p][1]) for p in range(partitions)}


def wait_stable(bootstrap, topic, partitions, timeout):
    """Waits until every partition's LSO equals its high watermark (no
    transaction open, every marker written); returns {partition: hw}."""
    def settled():
        so = stable_offsets(bootstrap, topic, partitions)
        if all(lso == hw for lso, hw in so.values()):
            return {p: hw for p, (_, hw) in so.items()}
        return None

    seen = {}

    def check():
        r = settled()
        if r is None:
            seen["last"] = stable_offsets(bootstrap, topic, partitions)
        return r

    try:
        return wait_until(check, timeout, f"{topic}: LSO == high watermark")
    except AssertionError as e:
        raise AssertionError(f"{e}; (lso, hw) per partition: {seen.get('last')}") from None


class Reader:
    """A consumer assigned every partition from its start. read() returns the
    records delivered until each partition signalled its end as this
    isolation level sees it (the LSO for read_committed): librdkafka signals a
    partition's EOF each time its fetch position reaches a new end that the
    Fetch reported, so successive read()s of one Reader continue where the
    last one stopped and wait for every partition's end to move."""

    def __init__(self, bootstrap, topic, partitions, isolation):
        self.topic, self.partitions, self.isolation = topic, partitions, isolation
        self.c = Consumer({
            "bootstrap.servers": bootstrap,
            "group.id": unique("rd"),
            "isolation.level": isolation,
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 100,
        })
        self.c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])

    def read(self, timeout=30):
        """{partition: [(offset, key, value)]} of the records delivered."""
        out = {p: [] for p in range(self.partitions)}
        eof = set()
        deadline = time.time() + timeout
        while len(eof) < self.partitions:
            if time.time() > deadline:
                raise AssertionError(
                    f"{self.topic} ({self.isolation}): no end of partition for "
                    f"{sorted(set(range(self.partitions)) - eof)} within {timeout}s; "
                    f"read {[len(v) for v in out.values()]} records")
            for m in self.c.consume(500, 0.2):
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        eof.add(m.partition())
                        continue
                    raise AssertionError(f"{self.topic} ({self.isolation}): consume error {m.error()}")
                eof.discard(m.partition())
                key = m.key().decode() if m.key() is not None else None
                out[m.partition()].append((m.offset(), key, m.value().decode()))
        return out

    def close(self):
        self.c.close()


def read_all(bootstrap, topic, partitions, isolation, timeout=30):
    """Every partition from its start up to the end this isolation level
    sees: {partition: [(offset, key, value)]}."""
    r = Reader(bootstrap, topic, partitions, isolation)
    try:
        return r.read(timeout)
    finally:
        r.close()


def values(read):
    """{partition: [value]} of a read_all result."""
    return {p: [v for (_, _, v) in recs] for p, recs in read.items()}
