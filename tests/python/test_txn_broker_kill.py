"""Transactions across SIGKILLs of the broker.

Two transactional producers (confluent-kafka, one transactional.id each)
commit and abort transactions continuously on a 3-partition topic; every
transaction has known contents (1..8 records named <producer>-<txn>-<record>
spread over the partitions) and a known outcome as far as its client was told:
committed (commit_transaction returned), aborted (abort_transaction returned),
abandoned (the client "dies": a new instance with the same transactional.id
is initialized while the transaction is open, which must abort it), or unknown
(the producer hit a fatal error and was replaced; the replacement's
init_transactions ends the transaction one way or the other).

The broker is SIGKILLed at random moments (seeded RNG, the seed is printed;
HERALD_TXN_KILL_SEED replays one) and restarted on the same data directory and
port. After each restart the producers pause, and:
  * the LSO reaches the high watermark on every partition (no transaction is
    left open once the producers stopped and the timeouts passed);
  * a read_committed consumer sees, for every transaction, all of its records
    or none, never a part; all for every acknowledged commit (never lost),
    none for every acknowledged abort; no record twice; each producer's
    records in order in each partition;
  * the broker never panicked.
At the end the checks are shown not to be vacuous: a falsified ledger (a
commit recorded as an abort, an abort as a commit, a record more) is reported.

Defaults: 8 kills (about 30 s). HERALD_TXN_KILL_LONG=1: 30 kills;
HERALD_TXN_KILL_CYCLES overrides.
"""

import os
import random
import signal
import sys
import threading
import time

import pytest
from confluent_kafka import KafkaException

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_proc import HeraldProcess  # noqa: E402
from txn_helpers import BROKER_ARGS, create_topic, read_all, txn_producer, unique, wait_stable  # noqa: E402

P = 3
PRODUCERS = 2
LONG = os.environ.get("HERALD_TXN_KILL_LONG") == "1"
CYCLES = int(os.environ.get("HERALD_TXN_KILL_CYCLES", 30 if LONG else 8))
TXN_TIMEOUT_MS = 10000
# How long one transactional call may keep failing (the broker restarting)
# before the torture gives up on the broker.
RECOVERY_S = 90


@pytest.fixture(scope="module")
def broker():
    binary = os.environ.get("HERALD_BIN")
    if not binary:
        pytest.skip("set HERALD_BIN (the test kills and restarts the broker)")
    proc = HeraldProcess(os.path.abspath(binary), extra_args=BROKER_ARGS).start()
    yield proc
    proc.close()


class TxnLoad(threading.Thread):
    """One transactional.id committing and aborting transactions until told
    to stop; pauses between transactions when asked."""

    def __init__(self, bs, topic, name, seed):
        super().__init__(daemon=True, name=name)
        self.bs, self.topic, self.name_ = bs, topic, name
        self.txn_id = unique(f"kill-{name}")
        self.rng = random.Random(seed)
        self.run_flag = threading.Event()
        self.run_flag.set()
        self.idle = threading.Event()
        self.stop = False
        # txn key -> {"records": [(partition, value)], "outcome": ...}
        self.txns = {}
        self.order = []
        self.failure = None
        self.replaced = 0
        self.producer = None

    def make_producer(self):
        return txn_producer(self.bs, self.txn_id, **{
            "transaction.timeout.ms": TXN_TIMEOUT_MS,
            "reconnect.backoff.ms": 20,
            "reconnect.backoff.max.ms": 200,
            "retry.backoff.ms": 20,
            "log_level": 0,
        })

    def new_producer(self):
        """A new instance with this transactional.id, initialized: its
        InitProducerId ends whatever transaction the previous one left."""
        deadline = time.time() + RECOVERY_S
        p = self.make_producer()
        while True:
            try:
                p.init_transactions(15)
                return p
            except KafkaException as e:
                err = e.args[0]
                if time.time() > deadline:
                    raise AssertionError(f"{self.name_}: init_transactions kept failing: {err}")
                if not err.retriable():
                    # Only a retriable failure may be retried on the same
                    # instance.
                    p = self.make_producer()
                time.sleep(0.2)

    def retry(self, what, call, txn):
        """Retries a commit or abort while it fails retriably; returns None on
        success, else the non-retriable error."""
        deadline = time.time() + RECOVERY_S
        txn["call"] = [time.time(), None]
        while True:
            try:
                call()
                txn["call"][1] = time.time()
                return None
            except KafkaException as e:
                txn["call"][1] = time.time()
                err = e.args[0]
                txn["retries"] = txn.get("retries", 0) + 1
                if not err.retriable() or err.fatal() or err.txn_requires_abort():
                    return err
                if time.time() > deadline:
                    raise AssertionError(f"{self.name_}: {what} kept failing: {err}")

    def one_transaction(self, n):
        key = f"{self.name_}-{n}"
        m = self.rng.randint(1, 8)
        records = [(self.rng.randrange(P), f"{key}-{r}") for r in range(m)]
        roll = self.rng.random()
        commit, abandon = roll < 0.65, roll >= 0.95
        txn = {"records": records, "outcome": "unknown", "intent": "commit" if commit else "abort"}
        self.txns[key] = txn
        self.order.append(key)
        p = self.producer
        try:
            p.begin_transaction()
            for part, value in records:
                p.produce(self.topic, key=key, value=value, partition=part)
            if abandon:
                # The client dies with its transaction open, its records
                # (mostly) in the log: the next instance's InitProducerId
                # must abort it.
                p.flush(5)
                txn["outcome"] = "abandoned"
                self.replaced += 1
                self.producer = self.new_producer()
                return
            if commit:
                err = self.retry("commit", lambda: p.commit_transaction(10), txn)
                if err is None:
                    txn["outcome"] = "committed"
                    return
            else:
                err = None
            if err is None or (err.txn_requires_abort() and not err.fatal()):
                err = self.retry("abort", lambda: p.abort_transaction(10), txn)
                if err is None:
                    txn["outcome"] = "aborted"
                    return
            txn["error"] = str(err)
        except KafkaException as e:
            txn["error"] = str(e.args[0])
        # Fatal, or abortable but the abort failed: a new instance with the
        # same transactional.id ends this transaction (its outcome is
        # whatever the broker decided, all or nothing).
        self.replaced += 1
        self.producer = self.new_producer()

    def run(self):
        try:
            self.producer = self.new_producer()
            n = 0
            while not self.stop:
                if not self.run_flag.is_set():
                    self.idle.set()
                    self.run_flag.wait(0.1)
                    continue
                self.idle.clear()
                self.one_transaction(n)
                n += 1
            self.idle.set()
        except BaseException as e:  # reported by the test
            self.failure = e
            self.idle.set()

    def pause(self):
        self.idle.clear()
        self.run_flag.clear()

    def resume(self):
        self.run_flag.set()


def check(bs, topic, loads, cycle, seed):
    """The checks of one cycle, on a quiet broker; returns counts."""
    wait_stable(bs, topic, P, TXN_TIMEOUT_MS / 1000 * 3)
    seen = read_all(bs, topic, P, "read_committed", timeout=60)
    problems = []
    by_txn = {}
    for p, recs in seen.items():
        last = {}
        for (_, key, value) in recs:
            by_txn.setdefault(key, []).append((p, value))
            name, n, r = value.rsplit("-", 2)
            pos = (int(n), int(r))
            if name in last and pos <= last[name]:
                problems.append(f"partition {p}: {value} after {name}-{last[name][0]}-{last[name][1]} "
                                "(out of order or duplicated)")
            last[name] = pos
    counts = {"committed": 0, "aborted": 0, "abandoned": 0, "unknown": 0, "unknown_visible": 0,
              "retried": 0}
    known = {}
    for load in loads:
        for key in load.order:
            known[key] = load.txns[key]
    for key, visible in by_txn.items():
        if key not in known:
            problems.append(f"records of a transaction never produced: {key} {visible[:3]}")
    for key, txn in known.items():
        want = sorted(txn["records"])
        got = sorted(by_txn.get(key, []))
        outcome = txn["outcome"]
        counts[outcome] += 1
        counts["retried"] += 1 if txn.get("retries") else 0
        if len(set(got)) != len(got):
            problems.append(f"{key} ({outcome}): records visible twice: {got}")
        elif got and got != want:
            problems.append(f"{key} ({outcome}): PARTIAL: {len(got)} of its {len(want)} records visible: "
                            f"{got} of {want}")
        elif outcome == "committed" and not got:
            problems.append(f"{key}: acknowledged commit LOST: none of its {len(want)} records visible")
        elif outcome == "aborted" and got:
            problems.append(f"{key}: acknowledged abort, yet its records are visible")
        elif outcome == "abandoned" and got:
            problems.append(f"{key}: its producer died with it open, the next instance's "
                            "InitProducerId should have aborted it, yet its records are visible")
        elif outcome == "unknown" and got:
            counts["unknown_visible"] += 1
    if problems:
        raise AssertionError(f"seed {seed}, after restart {cycle}: {len(problems)} violations:\n"
                             + "\n".join(problems[:30]))
    return counts


def test_transactions_all_or_nothing_across_broker_sigkill(broker):
    t_start = time.time()
    seed = int(os.environ.get("HERALD_TXN_KILL_SEED", random.SystemRandom().randrange(1 << 32)))
    print(f"\ntxn broker kill: seed={seed} cycles={CYCLES} (replay: HERALD_TXN_KILL_SEED={seed})", flush=True)
    rng = random.Random(seed)
    bs = broker.bootstrap
    topic = create_topic(bs, P, "txkill")
    loads = [TxnLoad(bs, topic, f"tp{i}", rng.randrange(1 << 32)) for i in range(PRODUCERS)]
    for load in loads:
        load.start()
    counts = {}
    kill_times = []
    try:
        for cycle in range(1, CYCLES + 1):
            time.sleep(rng.uniform(0.3, 2.5))
            before = sum(len(l.order) for l in loads)
            kill_times.append(time.time())
            broker.stop(sig=signal.SIGKILL)
            time.sleep(rng.uniform(0.05, 0.5))
            t_restart = time.time()
            broker.start()
            for load in loads:
                load.pause()
            for load in loads:
                assert load.idle.wait(RECOVERY_S * 2), f"{load.name_} did not finish its transaction"
                if load.failure:
                    raise load.failure
            counts = check(bs, topic, loads, cycle, seed)
            print(f"txn broker kill: cycle {cycle}: killed after {before} transactions; consistent "
                  f"{time.time() - t_restart:.1f} s after the restart; {counts}", flush=True)
            for load in loads:
                load.resume()
    finally:
        for load in loads:
            load.stop = True
            load.resume()
        for load in loads:
            load.join(RECOVERY_S)
    for load in loads:
        if load.failure:
            raise load.failure
    counts = check(bs, topic, loads, "final", seed)
    panics = [line for line in broker.log_text().splitlines() if "panicked" in line]
    assert not panics, panics[:5]
    assert counts["committed"] > 0 and counts["aborted"] > 0, counts
    self_test(bs, topic, loads, seed)
    # How many commit_transaction/abort_transaction calls the kills fell into
    # (librdkafka retried them across the restart).
    spanning = sum(
        1 for load in loads for txn in load.txns.values()
        if txn.get("call") and txn["call"][1] is not None
        and any(txn["call"][0] <= k <= txn["call"][1] for k in kill_times))
    print(f"txn broker kill: OK seed={seed}: {CYCLES} SIGKILLs ({spanning} fell inside a commit or abort "
          f"call), transactions {counts}, producers replaced {sum(l.replaced for l in loads)} times, "
          f"{time.time() - t_start:.1f} s", flush=True)


class Ledger:
    """A copy of one load's record of transactions, to falsify."""

    def __init__(self, load):
        self.order = list(load.order)
        self.txns = {k: dict(v, records=list(v["records"])) for k, v in load.txns.items()}


def self_test(bs, topic, loads, seed):
    """The checks are not vacuous: against the same log, a ledger that
    claims a committed transaction was aborted, an aborted one committed, or
    a committed one with one record more than the log holds, is reported."""
    def first(outcome):
        return next(k for k in loads[0].order if loads[0].txns[k]["outcome"] == outcome)

    cases = []
    for what, falsify, expect in [
        ("a commit told as an abort", lambda t: t.update(outcome="aborted"), "acknowledged abort, yet"),
        ("an abort told as a commit", lambda t: t.update(outcome="committed"), "acknowledged commit LOST"),
        ("a record more", lambda t: t["records"].append((0, "never-written")), "PARTIAL"),
    ]:
        ledger = Ledger(loads[0])
        key = first("aborted" if expect.endswith("LOST") else "committed")
        falsify(ledger.txns[key])
        with pytest.raises(AssertionError, match=expect):
            check(bs, topic, [ledger, *loads[1:]], f"self-test: {what}", seed)
        cases.append(what)
    print(f"txn broker kill: self-test: {', '.join(cases)}: each reported", flush=True)
