#!/usr/bin/env python3
"""A consume-transform-produce processor with exactly-once semantics, the
victim of test_eos_torture.py (which SIGKILLs it at random moments).

It reads the input topic with a read_committed consumer in a group (static
membership, so that a restarted instance takes its place at once), produces
transform(record) to the same partition of the output topic, and every few
records commits a transaction holding those outputs and the consumer's offsets
(send_offsets_to_transaction). It exits 0 once it has committed everything up
to the input's end. Progress lines on stdout: "ready" (assigned), "commit N"
(records committed so far by this instance), "done".
"""

import argparse
import random
import sys
import time
import zlib

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition


def transform(value: bytes) -> bytes:
    return b"T(" + value + b")#" + str(zlib.crc32(value)).encode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--partitions", type=int, required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--txn-id", required=True)
    ap.add_argument("--commit-every-max", type=int, default=10)
    ap.add_argument("--seed", type=int, required=True)
    # Simulated work per record, so that a transaction spends about as long
    # producing as committing and a kill at a random moment often finds
    # records in the log of a transaction that is not yet committed.
    ap.add_argument("--work-ms", type=float, default=0.0)
    # The broken processor of the torture's self-test: no transactions, the
    # outputs flushed and then the offsets committed (at-least-once: a kill
    # between the two repeats outputs).
    ap.add_argument("--at-least-once", action="store_true")
    args = ap.parse_args()
    rng = random.Random(args.seed)

    eos = not args.at_least_once
    pconf = {"bootstrap.servers": args.bootstrap, "linger.ms": 2, "acks": "all"}
    if eos:
        pconf.update({"transactional.id": args.txn_id, "transaction.timeout.ms": 10000})
    producer = Producer(pconf)
    if eos:
        # Before the consumer reads its committed offsets: this fences the
        # killed instance and aborts its open transaction (offsets included).
        producer.init_transactions(60)

    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "group.instance.id": "eos-processor",
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 10000,
        "heartbeat.interval.ms": 500,
        # Also the rebalance timeout: bounds a join that waits for a killed
        # instance.
        "max.poll.interval.ms": 20000,
    })
    assigned = []

    def on_assign(c, parts):
        assigned[:] = [tp.partition for tp in parts]
        print("ready", flush=True)

    consumer.subscribe([args.input], on_assign=on_assign)

    in_txn = False
    pending = 0
    batch = rng.randint(1, args.commit_every_max)
    committed = 0
    # next offset to commit per partition: one past the last record
    # processed (consumer.position() would count records delivered by
    # consume() but not yet processed).
    next_offset = {}

    def commit():
        nonlocal in_txn, pending, committed, batch
        offsets = [TopicPartition(args.input, p, o) for p, o in sorted(next_offset.items())]
        if eos:
            producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), 30)
            producer.commit_transaction(30)
        else:
            if producer.flush(30):
                raise KafkaException("outputs not delivered")
            consumer.commit(offsets=offsets, asynchronous=False)
        committed += pending
        in_txn, pending = False, 0
        batch = rng.randint(1, args.commit_every_max)
        print(f"commit {committed}", flush=True)

    def finished():
        if len(assigned) != args.partitions or in_txn:
            return False
        for p in range(args.partitions):
            _, hw = consumer.get_watermark_offsets(TopicPartition(args.input, p), timeout=10, cached=False)
            pos = next_offset.get(p)
            if pos is None:
                got = consumer.committed([TopicPartition(args.input, p)], timeout=10)[0].offset
                pos = got if got >= 0 else 0
            if pos < hw:
                return False
        return True

    while True:
        msgs = consumer.consume(50, 0.2)
        for m in msgs:
            if m.error():
                print(f"consume error: {m.error()}", file=sys.stderr, flush=True)
                continue
            if not in_txn:
                if eos:
                    producer.begin_transaction()
                in_txn = True
            if args.work_ms:
                time.sleep(args.work_ms / 1000)
            producer.produce(args.output, key=m.key(), value=transform(m.value()), partition=m.partition())
            next_offset[m.partition()] = m.offset() + 1
            pending += 1
            if pending >= batch:
                commit()
        if not msgs:
            if in_txn:
                commit()
            elif finished():
                break
    consumer.close()
    print("done", flush=True)


if __name__ == "__main__":
    try:
        main()
    except KafkaException as e:
        print(f"processor failed: {e}", file=sys.stderr, flush=True)
        sys.exit(2)
