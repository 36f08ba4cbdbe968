#!/usr/bin/env python3
"""Crash torture: N cycles of SIGKILL of a real `herald serve` under mixed load.

Load, running across every kill:
  * one idempotent acks=all producer writing
      - `torture-main` (12 partitions): per-partition sequence-numbered payloads;
      - `torture-compact` (cleanup.policy=compact, tiny segments): updates and
        tombstones of a few hundred keys;
      - `torture-retention` (tiny retention.bytes/retention.ms and segments);
    every acknowledgement (topic, partition, offset, payload) is recorded;
  * two consumer groups on `torture-main`, a classic one and a KIP-848 one, two
    members each, committing synchronously after every batch; every
    acknowledged commit is recorded;
  * topic creation and deletion by the Admin API at random moments.

Each cycle kills the broker with SIGKILL after a random delay (sometimes again
while it is still recovering), restarts it on the same data directory and port,
pauses the producer until everything in flight is answered, and checks:
  * every partition read from its log start: offsets contiguous, sequence
    numbers strictly increasing (order, no duplicates), every acknowledged
    record present at its acknowledged offset with its payload (for
    `torture-retention` only from the log start on: what remains must be a
    contiguous suffix, and the log start never moves back);
  * `torture-compact`: the last record of every key is its latest acknowledged
    write (a tombstone may also be gone), versions per key increase with offset,
    and nothing acknowledged that is still present differs from what was acked;
  * committed offsets are never below an acknowledged commit, nor above the
    log end;
  * acknowledged topic creations and deletions hold;
  * the broker never panics and restarts every time.

Exit status 0 and one summary line when every check held; 1 and the violations
otherwise (the data directory and broker logs are then kept).
"""

import argparse
import collections
import faulthandler
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ANSI = re.compile(r"\x1b\[[0-9;]*m")

MAIN = "torture-main"
MAIN_PARTITIONS = 12
COMPACT = "torture-compact"
COMPACT_PARTITIONS = 3
COMPACT_KEYS = 300
RETENTION = "torture-retention"
RETENTION_PARTITIONS = 2
REUSED_TOPIC_NAMES = 3
GROUPS = [("torture-classic", "classic"), ("torture-kip848", "consumer")]
MEMBERS_PER_GROUP = 2

TOPIC_CONFIGS = {
    # Small segments so that rolls (and producer snapshots) happen every cycle.
    MAIN: {"segment.bytes": "65536"},
    # Tiny segments and no lag: the cleaner rewrites segments all the time, and
    # tombstones expire during the run.
    COMPACT: {
        "cleanup.policy": "compact",
        "segment.bytes": "4096",
        "min.cleanable.dirty.ratio": "0.01",
        "min.compaction.lag.ms": "0",
        "delete.retention.ms": "3000",
    },
    # Segments are deleted by size and by time during every cycle.
    RETENTION: {
        "segment.bytes": "8192",
        "retention.bytes": "32768",
        "retention.ms": "20000",
    },
}


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def client_conf(bootstrap):
    # The clients' own logs (every disconnect at each kill) would bury the
    # torture's; failures reach the torture through results and callbacks.
    return {"bootstrap.servers": bootstrap, "log_level": 0}


class Violation(Exception):
    pass


# ---------------------------------------------------------------- the broker


class Broker:
    def __init__(self, binary, data_dir, log_dir, extra_args):
        self.binary = binary
        self.data_dir = data_dir
        self.log_dir = log_dir
        self.extra_args = extra_args
        self.port = free_port()
        self.proc = None
        self.starts = 0
        self.kills = 0

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def log_path(self, n):
        return os.path.join(self.log_dir, f"herald-{n}.log")

    def spawn(self):
        self.starts += 1
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        env["NO_COLOR"] = "1"
        with open(self.log_path(self.starts), "wb") as out:
            self.proc = subprocess.Popen(
                [
                    self.binary, "serve",
                    "--data-dir", self.data_dir,
                    "--listen", f"127.0.0.1:{self.port}",
                    # acks=all is answered after the fsync (the default, said
                    # explicitly because the torture depends on it).
                    "--flush-messages", "1",
                    "--auto-create-topics", "false",
                    # The cleaner and retention run often enough to act, and
                    # be killed, within every cycle.
                    "--log-cleaner-backoff-ms", "100",
                    "--retention-check-interval-ms", "200",
                    # The group state log is rewritten as a snapshot every
                    # few seconds of commits, so kills land in that too.
                    "--offsets-compact-bytes", "32768",
                    "--group-consumer-heartbeat-interval-ms", "500",
                    "--group-consumer-session-timeout-ms", "10000",
                    *self.extra_args,
                ],
                stdout=out, stderr=subprocess.STDOUT, env=env,
                start_new_session=True, preexec_fn=die_with_parent,
            )

    def wait_listening(self, timeout=120.0):
        deadline = time.time() + timeout
        pattern = f"listen=127.0.0.1:{self.port}"
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise Violation(
                    f"herald exited with status {self.proc.returncode} while starting; "
                    f"log: {self.log_path(self.starts)}\n{self.tail()}")
            if pattern in self.text(self.starts):
                return
            time.sleep(0.02)
        raise Violation(f"herald did not listen within {timeout}s; log: {self.log_path(self.starts)}")

    def start(self):
        self.spawn()
        self.wait_listening()

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.kills += 1
        if self.proc is not None:
            self.proc.wait()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def text(self, n):
        try:
            with open(self.log_path(n), "rb") as f:
                return ANSI.sub("", f.read().decode("utf-8", "replace"))
        except FileNotFoundError:
            return ""

    def tail(self, lines=30):
        return "\n".join(self.text(self.starts).splitlines()[-lines:])

    def panics(self):
        found = []
        for n in range(1, self.starts + 1):
            for line in self.text(n).splitlines():
                if "panicked" in line:
                    found.append(f"{self.log_path(n)}: {line.strip()}")
        return found


def die_with_parent():
    # The broker must not outlive a torture that is killed itself.
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ the state


class State:
    """Everything the clients were told, shared by the load threads."""

    def __init__(self):
        self.lock = threading.RLock()
        # topic -> partition -> {offset: payload bytes}
        self.acked = {t: {} for t in (MAIN, RETENTION)}
        # next sequence number per (topic, partition)
        self.next_seq = {}
        # compacted topic: key -> (offset, value or None) of the latest ack,
        # and the list of all acked (offset, key, value)
        self.compact_latest = {}
        self.compact_acked = {}
        self.compact_failed = set()  # (key, value) whose delivery failed
        self.failed = 0
        self.fatal_errors = []
        self.fatal_total = 0
        # (group, partition) -> highest acknowledged committed offset
        self.commits = {}
        self.commits_acked = 0
        self.consumed = 0
        self.consumed_mismatch = []
        # Short-lived topics, created and deleted under reused names:
        # name -> ("live", incarnation) | "absent" | "unknown" (an operation
        # went unanswered), and the acknowledged records of each incarnation.
        self.topics = {}
        self.topic_records = {}
        self.topic_ops_acked = 0

    def acked_count(self):
        with self.lock:
            return (sum(len(d) for t in self.acked.values() for d in t.values())
                    + len(self.compact_acked))


def parse_seq(payload):
    # b"<partition>:<seq>:<padding>"
    p, s, _ = payload.split(b":", 2)
    return int(p), int(s)


class Load:
    def __init__(self, broker, state, rate, rng):
        self.broker = broker
        self.state = state
        self.rate = rate
        self.rng = rng
        self.stop = threading.Event()
        self.pause = threading.Event()
        self.paused = threading.Event()
        self.admin_paused = threading.Event()
        self.errors = []
        self.threads = []
        self.compact_version = {}
        self.deliveries = collections.deque()
        self.client_errors = collections.deque()

    # ---- producer

    def new_producer(self):
        def on_error(err):
            self.client_errors.append(err)  # one call: see on_delivery

        return Producer({
            **client_conf(self.broker.bootstrap),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": 600000,
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 500,
            "retry.backoff.ms": 50,
            "error_cb": on_error,
        })

    def on_delivery(self, err, msg):
        # Only one call here: when a fatal error is pending, confluent-kafka
        # runs callbacks with a Python exception already set, and any call
        # after the first fails (a lock taken here would stay taken).
        self.deliveries.append((err, msg))

    def record_deliveries(self):
        while self.deliveries:
            self.record_delivery(*self.deliveries.popleft())
        while self.client_errors:
            err = self.client_errors.popleft()
            if err.fatal():
                with self.state.lock:
                    self.state.fatal_errors.append(str(err))
                    self.state.fatal_total += 1

    def record_delivery(self, err, msg):
        st = self.state
        topic = msg.topic()
        with st.lock:
            if err is not None:
                st.failed += 1
                if topic == COMPACT:
                    st.compact_failed.add((msg.key(), msg.value()))
                return
            p, off = msg.partition(), msg.offset()
            if topic == COMPACT:
                key, value = msg.key(), msg.value()
                st.compact_acked[(p, off)] = (key, value)
                prev = st.compact_latest.get(key)
                if prev is None or prev[0] < off:
                    st.compact_latest[key] = (off, value)
            else:
                st.acked[topic].setdefault(p, {})[off] = msg.value()

    def seq_payload(self, topic, p):
        key = (topic, p)
        seq = self.state.next_seq.get(key, 0)
        self.state.next_seq[key] = seq + 1
        pad = b"x" * self.rng.randrange(0, 200)
        return b"%d:%d:" % (p, seq) + pad

    def produce_one(self, producer, topic, **kw):
        while not self.stop.is_set():
            try:
                producer.produce(topic, on_delivery=self.on_delivery, **kw)
                return
            except BufferError:
                producer.poll(0.05)

    def producer_loop(self):
        producer = self.new_producer()
        self.owed = 0.0
        fatal_seen = 0
        while not self.stop.is_set():
            try:
                self.producer_step(producer)
            except (KafkaException, SystemError) as e:
                # confluent-kafka raises fatal errors from poll and flush (as a
                # SystemError from a callback, the KafkaException its cause).
                cause = e.__cause__ or e.__context__ or e
                with self.state.lock:
                    self.state.fatal_errors.append(repr(cause))
                    self.state.fatal_total += 1
            self.record_deliveries()
            with self.state.lock:
                fatal = self.state.fatal_total
            if fatal > fatal_seen:
                # A fatal idempotence error: recorded as a violation by the
                # checks; a new producer keeps the load going (what the old
                # one still held counts as not acknowledged).
                fatal_seen = fatal
                for step in (producer.purge, lambda: producer.flush(5)):
                    try:
                        step()
                    except (KafkaException, SystemError):
                        pass
                self.deliveries.clear()
                producer = self.new_producer()
        try:
            producer.flush(10)
        except (KafkaException, SystemError):
            pass

    def producer_step(self, producer):
        tick = 0.01
        if self.pause.is_set():
            # Everything in flight is answered before the checks read.
            if producer.flush(1.0) > 0:
                return
            self.record_deliveries()
            self.paused.set()
            while self.pause.is_set() and not self.stop.is_set():
                time.sleep(0.01)
            self.paused.clear()
            return
        self.owed += self.rate * tick
        owed = self.owed
        while owed >= 1.0:
            owed -= 1.0
            p = self.rng.randrange(MAIN_PARTITIONS)
            self.produce_one(producer, MAIN, partition=p, value=self.seq_payload(MAIN, p))
            r = self.rng.random()
            if r < 0.3:
                p = self.rng.randrange(RETENTION_PARTITIONS)
                self.produce_one(producer, RETENTION, partition=p,
                                 value=self.seq_payload(RETENTION, p))
            elif r < 0.7:
                k = self.rng.randrange(COMPACT_KEYS)
                key = b"key-%04d" % k
                v = self.compact_version.get(k, 0) + 1
                self.compact_version[k] = v
                # One write in twenty deletes the key.
                value = None if self.rng.random() < 0.05 else (
                    b"%s:%d:" % (key, v) + b"y" * self.rng.randrange(0, 120))
                self.produce_one(producer, COMPACT, key=key, value=value,
                                 partition=zlib.crc32(key) % COMPACT_PARTITIONS)
        self.owed = owed
        producer.poll(0)
        time.sleep(tick)

    # ---- consumers

    def consumer_loop(self, group, protocol):
        conf = {
            **client_conf(self.broker.bootstrap),
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 500,
        }
        if protocol == "consumer":
            conf["group.protocol"] = "consumer"
        else:
            conf.update({"session.timeout.ms": 10000, "heartbeat.interval.ms": 500,
                         "partition.assignment.strategy": "range"})
        c = Consumer(conf)
        c.subscribe([MAIN])
        st = self.state
        try:
            while not self.stop.is_set():
                try:
                    msgs = c.consume(num_messages=500, timeout=0.3)
                except KafkaException:
                    continue
                last = {}
                for m in msgs:
                    if m.error() is not None:
                        continue
                    p, off = m.partition(), m.offset()
                    with st.lock:
                        st.consumed += 1
                        want = st.acked[MAIN].get(p, {}).get(off)
                        if want is not None and want != m.value():
                            st.consumed_mismatch.append(
                                f"{group} read {MAIN}[{p}]@{off} = {m.value()[:40]!r}, "
                                f"acked {want[:40]!r}")
                    last[p] = off + 1
                if not last:
                    continue
                tps = [TopicPartition(MAIN, p, o) for p, o in last.items()]
                try:
                    result = c.commit(offsets=tps, asynchronous=False)
                except KafkaException:
                    continue
                with st.lock:
                    for tp in result or []:
                        if tp.error is None and tp.offset >= 0:
                            k = (group, tp.partition)
                            st.commits[k] = max(st.commits.get(k, -1), tp.offset)
                            st.commits_acked += 1
        finally:
            try:
                c.close()
            except KafkaException:
                pass

    # ---- topic creation and deletion

    def admin_loop(self):
        """Creates and deletes topics under a few reused names, writing a few
        records to each incarnation: a recreated topic must never show the
        records of the one deleted before it."""
        conf = client_conf(self.broker.bootstrap)
        admin = AdminClient(conf)
        producer = Producer({**conf, "enable.idempotence": True, "acks": "all",
                             "linger.ms": 5, "message.timeout.ms": 600000})
        st = self.state
        incarnation = 0

        deliveries = collections.deque()

        def on_delivery(err, msg):
            deliveries.append((err, msg))  # one call: see Load.on_delivery

        def record():
            while deliveries:
                err, msg = deliveries.popleft()
                if err is None:
                    inc = int(msg.value().split(b":", 1)[0])
                    with st.lock:
                        st.topic_records.setdefault((msg.topic(), inc), {})[
                            (msg.partition(), msg.offset())] = msg.value()

        def flush():
            # Every record sent to this incarnation is answered first, so
            # that no retry can land in the next one.
            try:
                while producer.flush(1.0) > 0 and not self.stop.is_set():
                    pass
            except (KafkaException, SystemError) as e:
                with st.lock:
                    st.fatal_errors.append(f"admin producer: {e!r}")
            record()

        while not self.stop.is_set():
            if self.pause.is_set():
                flush()
                self.admin_paused.set()
                while self.pause.is_set() and not self.stop.is_set():
                    time.sleep(0.01)
                self.admin_paused.clear()
                continue
            time.sleep(self.rng.uniform(0.1, 0.8))
            name = f"torture-t{self.rng.randrange(REUSED_TOPIC_NAMES)}"
            with st.lock:
                status = st.topics.get(name, "absent")
                st.topics[name] = "unknown"
            if status != "absent":
                flush()
                try:
                    admin.delete_topics([name], operation_timeout=10)[name].result(15)
                    status = "absent"
                except KafkaException as e:
                    if e.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART and status == "unknown":
                        status = "absent"
                    else:
                        status = "unknown"
            else:
                incarnation += 1
                try:
                    admin.create_topics([NewTopic(name, 2, 1)], operation_timeout=10)[name].result(15)
                    status = ("live", incarnation)
                except KafkaException:
                    status = "unknown"
            with st.lock:
                st.topics[name] = status
                if status != "unknown":
                    st.topic_ops_acked += 1
            if isinstance(status, tuple):
                for i in range(20):
                    value = b"%d:%d" % (incarnation, i)
                    give_up = time.time() + 10
                    while not self.stop.is_set() and time.time() < give_up:
                        try:
                            producer.produce(name, value=value, partition=i % 2,
                                             on_delivery=on_delivery)
                            break
                        except BufferError:
                            producer.poll(0.05)
                        except KafkaException:
                            # The producer's metadata may still say the name is
                            # gone (the previous incarnation's deletion); what is
                            # not sent is not expected.
                            producer.poll(0.1)
            try:
                producer.poll(0)
            except (KafkaException, SystemError) as e:
                with st.lock:
                    st.fatal_errors.append(f"admin producer: {e!r}")
            record()
        flush()

    def start(self):
        targets = [self.producer_loop, self.admin_loop]
        for group, protocol in GROUPS:
            for _ in range(MEMBERS_PER_GROUP):
                targets.append(lambda g=group, p=protocol: self.consumer_loop(g, p))
        for t in targets:
            th = threading.Thread(target=self.guard(t), daemon=True)
            th.start()
            self.threads.append(th)

    def guard(self, fn):
        def run():
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - reported as a failure
                import traceback
                traceback.print_exc()
                self.errors.append(f"{fn.__name__}: {e!r}")
        return run

    def pause_producer(self, timeout):
        self.pause.set()
        deadline = time.time() + timeout
        while not (self.paused.is_set() and self.admin_paused.is_set()):
            if self.errors:
                raise Violation(f"load thread died: {self.errors}")
            if time.time() > deadline:
                raise Violation(f"in-flight produce requests were not answered within "
                                f"{timeout}s after the restart")
            time.sleep(0.05)

    def resume_producer(self):
        self.pause.clear()

    def shutdown(self):
        self.stop.set()
        self.pause.clear()
        for th in self.threads:
            th.join(30)


# ------------------------------------------------------------------ the checks


class Checker:
    def __init__(self, broker, state):
        self.broker = broker
        self.state = state
        self.checks = 0
        self.log_start = {}  # retention partition -> last seen log start
        self.last_committed = {}
        self.retention_deleted = 0
        self.compaction_removed = 0

    def ok(self, n=1):
        self.checks += n

    def read_all(self, topic, partitions):
        """Every record of every partition, from its log start to its end."""
        c = Consumer({
            **client_conf(self.broker.bootstrap),
            "group.id": "torture-verifier",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "fetch.max.bytes": 8 * 1024 * 1024,
        })
        try:
            marks = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
                     for p in range(partitions)}
            records = {p: [] for p in range(partitions)}
            pending = {p for p, (lo, hi) in marks.items() if hi > lo}
            if pending:
                c.assign([TopicPartition(topic, p, marks[p][0]) for p in pending])
            deadline = time.time() + 300
            while pending:
                if time.time() > deadline:
                    raise Violation(f"{topic}: could not read partitions {sorted(pending)} "
                                    f"to their end in 300 s")
                for m in c.consume(num_messages=10000, timeout=1.0):
                    err = m.error()
                    p = m.partition()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            if m.offset() >= marks[p][1]:
                                pending.discard(p)
                            continue
                        raise Violation(f"{topic}[{p}]: fetch error {err}")
                    records[p].append((m.offset(), m.key(), m.value()))
                    if m.offset() + 1 >= marks[p][1]:
                        pending.discard(p)
            return marks, records
        finally:
            c.close()

    def check_sequenced(self, topic, partitions, violations, retention):
        marks, records = self.read_all(topic, partitions)
        with self.state.lock:
            acked = {p: dict(d) for p, d in self.state.acked[topic].items()}
        for p in range(partitions):
            lo, hi = marks[p]
            recs = records[p]
            where = f"{topic}[{p}]"
            if not retention and lo != 0:
                violations.append(f"{where}: log start {lo}, expected 0 (no retention)")
            if retention:
                prev = self.log_start.get(p, 0)
                if lo < prev:
                    violations.append(f"{where}: log start went back from {prev} to {lo}")
                self.log_start[p] = lo
                self.ok()
            # Contiguous offsets from the log start: nothing in the middle gone.
            expect = lo
            last_seq = -1
            seen = set()
            for off, _key, value in recs:
                if off != expect:
                    violations.append(f"{where}: offset {off} follows {expect - 1} (gap or disorder)")
                    expect = off
                expect += 1
                try:
                    pp, seq = parse_seq(value)
                except (ValueError, AttributeError):
                    violations.append(f"{where}@{off}: unparseable payload {value[:40]!r}")
                    continue
                if pp != p:
                    violations.append(f"{where}@{off}: payload of partition {pp}")
                if seq in seen:
                    violations.append(f"{where}@{off}: sequence {seq} duplicated")
                elif seq <= last_seq:
                    violations.append(f"{where}@{off}: sequence {seq} after {last_seq} (order)")
                seen.add(seq)
                last_seq = max(last_seq, seq)
            if recs and recs[-1][0] + 1 != hi:
                violations.append(f"{where}: read to {recs[-1][0]}, high watermark {hi}")
            self.ok(3)
            # Every acknowledged record is at its offset with its payload.
            present = {off: value for off, _k, value in recs}
            lost = 0
            for off, payload in sorted(acked.get(p, {}).items()):
                if retention and off < lo:
                    continue  # deleted by retention: allowed
                got = present.get(off)
                if got is None:
                    lost += 1
                    if lost <= 5:
                        violations.append(f"{where}: acknowledged record at offset {off} "
                                          f"({payload[:30]!r}) is missing (log {lo}..{hi})")
                elif got != payload:
                    violations.append(f"{where}@{off}: holds {got[:30]!r}, acknowledged {payload[:30]!r}")
            if lost > 5:
                violations.append(f"{where}: {lost} acknowledged records missing in all")
            self.ok(len(acked.get(p, {})))
        if retention:
            self.retention_deleted = sum(self.log_start.values())
        return sum(len(r) for r in records.values())

    def check_compacted(self, violations):
        marks, records = self.read_all(COMPACT, COMPACT_PARTITIONS)
        with self.state.lock:
            latest = dict(self.state.compact_latest)
            acked = dict(self.state.compact_acked)
            failed = set(self.state.compact_failed)
        last = {}
        total = 0
        for p in range(COMPACT_PARTITIONS):
            prev_off = -1
            version_of = {}
            for off, key, value in records[p]:
                total += 1
                where = f"{COMPACT}[{p}]@{off}"
                if off <= prev_off:
                    violations.append(f"{where}: offset after {prev_off} (order)")
                prev_off = off
                if key is None:
                    violations.append(f"{where}: record without a key")
                    continue
                if zlib.crc32(key) % COMPACT_PARTITIONS != p:
                    violations.append(f"{where}: key {key!r} in the wrong partition")
                want = acked.get((p, off))
                if want is not None and want != (key, value):
                    violations.append(f"{where}: holds {key!r}={value!r:.40}, acknowledged "
                                      f"{want[0]!r}={want[1]!r:.40}")
                if value is not None:
                    try:
                        vkey, v, _ = value.split(b":", 2)
                        v = int(v)
                    except ValueError:
                        violations.append(f"{where}: unparseable value {value[:40]!r}")
                        continue
                    if vkey != key:
                        violations.append(f"{where}: value of {vkey!r} under key {key!r}")
                    if v <= version_of.get(key, 0):
                        violations.append(f"{where}: version {v} of {key!r} after "
                                          f"{version_of[key]} (order or duplicate)")
                    version_of[key] = v
                last[key] = (off, value)
        self.ok(total)
        for key, (off, value) in latest.items():
            seen = last.get(key)
            if seen is None:
                if value is not None:
                    violations.append(f"{COMPACT}: key {key!r} is gone; its latest acknowledged "
                                      f"value is at offset {off}")
                self.ok()
                continue
            if seen == (off, value):
                self.ok()
                continue
            if seen[0] > off and (key, seen[1]) in failed:
                # A write whose acknowledgement was lost landed after all.
                self.ok()
                continue
            violations.append(f"{COMPACT}: last record of {key!r} is offset {seen[0]} "
                              f"({seen[1]!r:.40}); latest acknowledged is offset {off} ({value!r:.40})")
        self.compaction_removed = max(self.compaction_removed, len(acked) - total)
        return total

    def check_commits(self, violations):
        with self.state.lock:
            acked = dict(self.state.commits)
        c = Consumer({**client_conf(self.broker.bootstrap), "group.id": "torture-verifier",
                      "enable.auto.commit": False})
        try:
            ends = {p: c.get_watermark_offsets(TopicPartition(MAIN, p), timeout=30)[1]
                    for p in range(MAIN_PARTITIONS)}
        finally:
            c.close()
        for group, _protocol in GROUPS:
            c = Consumer({**client_conf(self.broker.bootstrap), "group.id": group,
                          "enable.auto.commit": False})
            try:
                got = c.committed([TopicPartition(MAIN, p) for p in range(MAIN_PARTITIONS)],
                                  timeout=30)
            finally:
                c.close()
            for tp in got:
                k = (group, tp.partition)
                now = tp.offset if tp.offset >= 0 else -1
                if now < acked.get(k, -1):
                    violations.append(f"{group} {MAIN}[{tp.partition}]: committed offset {now} is "
                                      f"below the acknowledged commit {acked[k]}")
                if now < self.last_committed.get(k, -1):
                    violations.append(f"{group} {MAIN}[{tp.partition}]: committed offset went back "
                                      f"from {self.last_committed[k]} to {now} across a restart")
                if now > ends[tp.partition]:
                    violations.append(f"{group} {MAIN}[{tp.partition}]: committed offset {now} is "
                                      f"past the log end {ends[tp.partition]}")
                self.last_committed[k] = max(now, self.last_committed.get(k, -1))
                self.ok(3)

    def check_topics(self, violations):
        with self.state.lock:
            topics = dict(self.state.topics)
            records = {k: dict(v) for k, v in self.state.topic_records.items()}
        admin = AdminClient(client_conf(self.broker.bootstrap))
        md = admin.list_topics(timeout=30)
        for name, status in sorted(topics.items()):
            t = md.topics.get(name)
            exists = t is not None and t.error is None
            if status == "absent":
                if exists:
                    violations.append(f"topic {name}: its deletion was acknowledged, it is back")
                self.ok()
            elif isinstance(status, tuple):
                inc = status[1]
                if not exists:
                    violations.append(f"topic {name}: its creation was acknowledged, it is missing")
                    continue
                if len(t.partitions) != 2:
                    violations.append(f"topic {name}: {len(t.partitions)} partitions, created with 2")
                    continue
                _marks, got = self.read_all(name, 2)
                present = {}
                for p, recs in got.items():
                    for off, _k, value in recs:
                        present[(p, off)] = value
                        if not value.startswith(b"%d:" % inc):
                            violations.append(f"topic {name}[{p}]@{off}: {value!r} belongs to an "
                                              f"earlier incarnation (this one is {inc})")
                for (p, off), value in records.get((name, inc), {}).items():
                    if present.get((p, off)) != value:
                        violations.append(f"topic {name}[{p}]@{off}: acknowledged {value!r}, "
                                          f"holds {present.get((p, off))!r}")
                self.ok(2)

    def run(self, load):
        violations = []
        with self.state.lock:
            violations += self.state.consumed_mismatch
            violations += [f"idempotent producer fatal error: {e}" for e in self.state.fatal_errors]
            self.state.consumed_mismatch.clear()
            self.state.fatal_errors.clear()
        violations += [f"load thread died: {e}" for e in load.errors]
        violations += [f"broker panic: {p}" for p in self.broker.panics()]
        self.check_sequenced(MAIN, MAIN_PARTITIONS, violations, retention=False)
        self.check_sequenced(RETENTION, RETENTION_PARTITIONS, violations, retention=True)
        self.check_compacted(violations)
        self.check_commits(violations)
        self.check_topics(violations)
        return violations


# ------------------------------------------------------------------------ main


def cut_newest_segment(partition_dir):
    logs = sorted(f for f in os.listdir(partition_dir) if f.endswith(".log"))
    for name in reversed(logs):
        path = os.path.join(partition_dir, name)
        size = os.path.getsize(path)
        if size > 0:
            os.truncate(path, size // 2)
            log(f"self-test: cut {path} from {size} to {size // 2} bytes")
            return
    log(f"self-test: nothing to cut in {partition_dir}")


def create_topics(bootstrap):
    admin = AdminClient(client_conf(bootstrap))
    topics = [
        NewTopic(MAIN, MAIN_PARTITIONS, 1, config=TOPIC_CONFIGS[MAIN]),
        NewTopic(COMPACT, COMPACT_PARTITIONS, 1, config=TOPIC_CONFIGS[COMPACT]),
        NewTopic(RETENTION, RETENTION_PARTITIONS, 1, config=TOPIC_CONFIGS[RETENTION]),
    ]
    for name, f in admin.create_topics(topics, operation_timeout=30).items():
        f.result(30)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cycles", type=int, required=True, help="kill -9 cycles")
    ap.add_argument("--herald", required=True, help="path of the herald binary")
    ap.add_argument("--data-dir", help="broker data directory (default: a new temporary one)")
    ap.add_argument("--rate", type=float, default=600.0,
                    help="records per second to torture-main (the other topics get 0.3x, 0.4x)")
    ap.add_argument("--max-delay", type=float, default=3.0,
                    help="longest run of load before a kill, in seconds")
    ap.add_argument("--seed", type=int, help="random seed (printed; default: from the clock)")
    ap.add_argument("--keep", action="store_true", help="keep the data directory and logs")
    ap.add_argument("--inject-loss", action="store_true",
                    help="self-test of the checks: after the first kill, cut the newest segment of "
                         "torture-main[0] in half as a broken disk would; the run must then fail")
    ap.add_argument("broker_args", nargs="*", help="extra `herald serve` arguments (after --)")
    args = ap.parse_args()
    # kill -USR1 <pid> prints every thread's stack (a stuck run can be diagnosed).
    faulthandler.register(signal.SIGUSR1, all_threads=True)

    seed = args.seed if args.seed is not None else int(time.time() * 1000) % 1_000_000
    rng = random.Random(seed)
    work = tempfile.mkdtemp(prefix="herald-torture-")
    data_dir = args.data_dir or os.path.join(work, "data")
    os.makedirs(data_dir, exist_ok=True)
    if os.listdir(data_dir):
        # The checks compare the log with what this run was told: it must start empty.
        print(f"crash-torture: {data_dir} is not empty", file=sys.stderr)
        return 2
    log(f"crash torture: {args.cycles} cycles, seed {seed}, data {data_dir}, logs {work}")

    broker = Broker(os.path.abspath(args.herald), data_dir, work, args.broker_args)
    state = State()
    load = Load(broker, state, args.rate, random.Random(rng.random()))
    checker = Checker(broker, state)
    started = time.time()
    violations = []
    cycle = 0
    try:
        broker.start()
        create_topics(broker.bootstrap)
        load.start()
        for cycle in range(1, args.cycles + 1):
            delay = rng.uniform(0.05, args.max_delay)
            time.sleep(delay)
            while args.inject_loss and cycle == 1 and len(state.acked[MAIN].get(0, {})) < 10:
                time.sleep(0.1)  # something acknowledged to lose
            before = state.acked_count()
            how = "killed"
            if rng.random() < 0.15:
                # A graceful shutdown (SIGTERM) cut short by SIGKILL at a random
                # point: flushing, writing the clean-shutdown markers, or done.
                grace = rng.uniform(0.0, 2.0)
                how = f"SIGTERM then killed {grace:.2f}s later"
                broker.proc.send_signal(signal.SIGTERM)
                time.sleep(grace)
            broker.kill9()
            if args.inject_loss and cycle == 1:
                cut_newest_segment(os.path.join(data_dir, "topics", MAIN, "0"))
            time.sleep(rng.uniform(0.0, 0.3))
            broker.spawn()
            again = rng.random() < 0.15
            if again:
                # A second kill while the broker recovers (or just listens).
                time.sleep(rng.uniform(0.0, 0.3))
                broker.kill9()
                broker.spawn()
            broker.wait_listening()
            load.pause_producer(timeout=180)
            violations = checker.run(load)
            after = state.acked_count()
            log(f"cycle {cycle}/{args.cycles}: {how} after {delay:.2f}s"
                f"{' and again in recovery' if again else ''} with {before} acked; "
                f"{after} acked now, {len(violations)} violations")
            if violations:
                break
            load.resume_producer()
    except Violation as e:
        violations.append(str(e))
    finally:
        load.shutdown()
        broker.stop()
    violations += [f"broker panic: {p}" for p in broker.panics() if f"broker panic: {p}" not in violations]

    duration = time.time() - started
    with state.lock:
        main_acked = sum(len(d) for d in state.acked[MAIN].values())
        ret_acked = sum(len(d) for d in state.acked[RETENTION].values())
        comp_acked = len(state.compact_acked)
        commits = state.commits_acked
        consumed = state.consumed
        failed = state.failed
        topics = state.topic_ops_acked
    if violations:
        # The self-test's failure is expected: nothing to keep.
        kept = not (args.inject_loss and not args.keep and args.data_dir is None)
        where = f"data kept in {data_dir}, broker logs in {work}" if kept else "data removed"
        print(f"crash-torture: FAILED in cycle {cycle} (seed {seed}); {where}", flush=True)
        if not kept:
            shutil.rmtree(work, ignore_errors=True)
        for v in violations[:50]:
            print(f"  VIOLATION: {v}", flush=True)
        if len(violations) > 50:
            print(f"  ... {len(violations) - 50} more", flush=True)
        return 1
    print(f"crash-torture: OK cycles={cycle} kills={broker.kills} "
          f"records_acked={main_acked + ret_acked + comp_acked} "
          f"(main={main_acked} compacted={comp_acked} retention={ret_acked}) "
          f"delivery_failures={failed} commits_acked={commits} records_consumed={consumed} "
          f"topic_ops_acked={topics} retention_deleted={checker.retention_deleted} "
          f"compaction_removed={checker.compaction_removed} checks_passed={checker.checks} "
          f"violations=0 duration={duration:.0f}s seed={seed}", flush=True)
    if checker.retention_deleted == 0 or checker.compaction_removed == 0:
        print("crash-torture: warning: retention or compaction never removed anything "
              "(run more cycles for them to matter)", flush=True)
    if not args.keep and args.data_dir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    # Not sys.exit: the clients' destructors may wait for a dead broker.
    os._exit(code)
