"""Exactly-once consume-transform-produce under SIGKILL of the processor.

An input topic holds N numbered records over 3 partitions. eos_processor.py
(confluent-kafka: a read_committed consumer in a group, a transactional
producer with a fixed transactional.id, send_offsets_to_transaction + commit
every 1..10 records) is SIGKILLed at random moments (seeded RNG, the seed is
printed; HERALD_EOS_SEED replays one) and restarted until it has consumed
everything. Then a read_committed reader of the output must see, per
partition, exactly transform(input) in input order: every input once, none
twice, none lost; the group's committed offsets are the input's end.

Defaults: 2000 records, 8 kills (about 30-60 s). HERALD_EOS_LONG=1: 20000
records and 40 kills; HERALD_EOS_RECORDS / HERALD_EOS_KILLS override.
"""

import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from eos_processor import transform  # noqa: E402
from herald_proc import HeraldProcess  # noqa: E402
from txn_helpers import (  # noqa: E402
    BROKER_ARGS,
    create_topic,
    plain_producer,
    read_all,
    unique,
    wait_stable,
)

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient  # noqa: E402

P = 3
LONG = os.environ.get("HERALD_EOS_LONG") == "1"
RECORDS = int(os.environ.get("HERALD_EOS_RECORDS", 20000 if LONG else 2000))
KILLS = int(os.environ.get("HERALD_EOS_KILLS", 40 if LONG else 8))
PROCESSOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "eos_processor.py")


@pytest.fixture(scope="module")
def broker():
    binary = os.environ.get("HERALD_BIN")
    if not binary:
        pytest.skip("set HERALD_BIN")
    proc = HeraldProcess(os.path.abspath(binary), extra_args=BROKER_ARGS).start()
    yield proc
    proc.close()


class Processor:
    """One eos_processor.py process; its stdout lines are collected."""

    def __init__(self, args):
        self.proc = subprocess.Popen(
            [sys.executable, PROCESSOR, *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.lines = []
        self.errors = []
        self.ready = threading.Event()
        threading.Thread(target=self._pump_out, daemon=True).start()
        threading.Thread(target=self._pump_err, daemon=True).start()

    def _pump_out(self):
        for line in self.proc.stdout:
            self.lines.append(line.strip())
            if line.startswith("ready"):
                self.ready.set()

    def _pump_err(self):
        for line in self.proc.stderr:
            self.errors.append(line.rstrip())

    def committed(self):
        n = 0
        for line in self.lines:
            if line.startswith("commit "):
                n = int(line.split()[1])
        return n

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)


def group_offsets(bs, group, topic):
    admin = AdminClient({"bootstrap.servers": bs})
    req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(P)])
    res = admin.list_consumer_group_offsets([req], require_stable=False)[group].result(15)
    return {tp.partition: tp.offset for tp in res.topic_partitions}


def test_consume_transform_produce_exactly_once_under_sigkill(broker):
    seed = int(os.environ.get("HERALD_EOS_SEED", random.SystemRandom().randrange(1 << 32)))
    torture(broker, seed, RECORDS, KILLS)


def test_the_torture_sees_duplicates_of_an_at_least_once_processor(broker):
    """The check is not vacuous: the same processor without transactions
    (outputs flushed, then offsets committed) repeats outputs when a kill
    falls between the two, and the torture names them."""
    seed = int(os.environ.get("HERALD_EOS_SEED", random.SystemRandom().randrange(1 << 32)))
    with pytest.raises(AssertionError, match=r"[1-9][0-9]* duplicated"):
        torture(broker, seed, 1000, 8, ["--at-least-once"])


def torture(broker, seed, records, kill_count, extra_args=()):
    t_start = time.time()
    print(f"\neos torture{' ' + ' '.join(extra_args) if extra_args else ''}: seed={seed} records={records} "
          f"kills={kill_count} (replay: HERALD_EOS_SEED={seed})", flush=True)
    rng = random.Random(seed)
    bs = broker.bootstrap
    src = create_topic(bs, P, "eos-in")
    dst = create_topic(bs, P, "eos-out")
    group = unique("eos-group")
    txn_id = unique("eos-txn")

    inputs = {p: [] for p in range(P)}
    plain = plain_producer(bs)
    for i in range(records):
        p = i % P
        v = f"rec-{i:06d}".encode()
        plain.produce(src, key=f"k{i}", value=v, partition=p)
        inputs[p].append(v)
        if i % 1000 == 999:
            plain.poll(0)
    assert plain.flush(60) == 0

    kills = 0
    instances = 0
    history = []
    while True:
        instances += 1
        proc = Processor([
            "--bootstrap", bs, "--input", src, "--output", dst, "--partitions", str(P),
            "--group", group, "--txn-id", txn_id, "--seed", str(rng.randrange(1 << 32)),
            "--work-ms", "1", *extra_args,
        ])
        try:
            if kills < kill_count:
                # Mostly while it processes: after it committed a random
                # number of records (so that the kills spread over the whole
                # input, whatever the processing rate), plus a random fraction
                # of a transaction's time; sometimes while it starts up
                # (init_transactions, joining the group).
                if rng.random() < 0.8:
                    assert proc.ready.wait(60), f"processor never got its assignment: {proc.errors[-20:]}"
                    target = rng.randint(0, 2 * records // kill_count)
                    deadline = time.time() + 60
                    while proc.committed() < target and proc.proc.poll() is None and time.time() < deadline:
                        time.sleep(0.002)
                    delay = rng.uniform(0.0, 0.03)
                else:
                    delay = rng.uniform(0.0, 0.8)
                if _sleep_or_exit(proc, delay):
                    history.append(("finished before its kill", proc.committed()))
                    assert proc.proc.returncode == 0, f"processor exited {proc.proc.returncode}: {proc.errors[-20:]}"
                    break
                proc.kill()
                kills += 1
                history.append(("killed", proc.committed()))
                continue
            rc = proc.proc.wait(timeout=180)
            history.append(("last", proc.committed()))
            assert rc == 0, f"the last processor exited {rc}: {proc.errors[-20:]}"
            break
        finally:
            proc.kill()
    print(f"eos torture: {instances} instances, {kills} SIGKILLs; per instance "
          f"(how it ended, records it committed): {history}", flush=True)

    # Every killed instance's open transaction was aborted (by the next
    # instance's init_transactions), the last one's committed.
    wait_stable(bs, dst, P, 30)
    out = read_all(bs, dst, P, "read_committed", timeout=60)
    for p in range(P):
        got = [v.encode() for (_, _, v) in out[p]]
        want = [transform(v) for v in inputs[p]]
        if got != want:
            seen = {}
            for v in got:
                seen[v] = seen.get(v, 0) + 1
            dups = [v for v, n in seen.items() if n > 1]
            missing = [v for v in want if v not in seen]
            raise AssertionError(
                f"seed {seed}: output partition {p}: {len(got)} records for {len(want)} inputs; "
                f"{len(dups)} duplicated (first {dups[:5]}), {len(missing)} missing (first {missing[:5]}), "
                f"first difference at index "
                f"{next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))}")
    assert group_offsets(bs, group, src) == {p: len(inputs[p]) for p in range(P)}
    uncommitted = read_all(bs, dst, P, "read_uncommitted", timeout=60)
    total_ru = sum(len(v) for v in uncommitted.values())
    print(f"eos torture: OK seed={seed}: {records} inputs, each exactly once in the read_committed output; "
          f"read_uncommitted sees {total_ru} records ({total_ru - records} from aborted transactions); "
          f"{time.time() - t_start:.1f} s", flush=True)


def _sleep_or_exit(proc, delay):
    """Sleeps delay seconds; True if the processor exited meanwhile."""
    try:
        proc.proc.wait(timeout=delay)
        return True
    except subprocess.TimeoutExpired:
        return False
