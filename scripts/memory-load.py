#!/usr/bin/env python3
"""Broker RSS idle and under many producers and consumers.

Starts `herald serve` on a temporary data directory, creates a 12-partition
topic, samples the broker's RSS idle, then opens --producers producer
connections and --consumers consumer connections from this one process
(asyncio, the Kafka wire protocol written by hand so that a client costs a
socket rather than a librdkafka instance with its threads):

  * a producer sends a Produce v3 (acks=1) of a 10-record batch every second,
    to partition (its index mod 12), and reads every answer;
  * a consumer long-polls Fetch v4 (max_wait 500 ms, 64 KiB per partition) at
    the end of its partition, like a caught-up consumer.

RSS (VmRSS of the broker, from /proc) is sampled every second during
--seconds of load; then every connection closes and RSS is sampled again.
Prints one line per phase and a summary line.
"""

import argparse
import asyncio
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

from confluent_kafka.admin import AdminClient, NewTopic

TOPIC = "mem-load"
PARTITIONS = 12


def crc32c_table():
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


TABLE = crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def varint(n):
    n = (n << 1) ^ (n >> 63)  # zigzag
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def record_batch(count, value):
    now = int(time.time() * 1000)
    records = b""
    for i in range(count):
        body = (b"\x00" + varint(0) + varint(i) + varint(-1)
                + varint(len(value)) + value + varint(0))
        records += varint(len(body)) + body
    after_crc = (struct.pack(">hiqqqhii", 0, count - 1, now, now, -1, -1, -1, count)
                 + records)
    crc = crc32c(after_crc)
    body = struct.pack(">ibI", -1, 2, crc) + after_crc
    return struct.pack(">qi", 0, len(body)) + body


def string(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def request(api_key, version, corr, body):
    header = struct.pack(">hhi", api_key, version, corr) + string("memload")
    msg = header + body
    return struct.pack(">i", len(msg)) + msg


def produce_request(corr, partition, batch):
    body = (struct.pack(">hhi", -1, 1, 30000)  # null transactional id, acks=1, timeout
            + struct.pack(">i", 1) + string(TOPIC)
            + struct.pack(">i", 1) + struct.pack(">i", partition)
            + struct.pack(">i", len(batch)) + batch)
    return request(0, 3, corr, body)


def fetch_request(corr, partition, offset):
    body = (struct.pack(">iiiib", -1, 500, 1, 1 << 20, 0)
            + struct.pack(">i", 1) + string(TOPIC)
            + struct.pack(">i", 1) + struct.pack(">iqi", partition, offset, 64 << 10))
    return request(1, 4, corr, body)


async def read_frame(reader):
    (n,) = struct.unpack(">i", await reader.readexactly(4))
    return await reader.readexactly(n)


class Stats:
    def __init__(self):
        self.produced = 0
        self.fetches = 0
        self.fetched_bytes = 0
        self.errors = 0
        self.connected = 0


async def producer(port, i, stop, stats, batch):
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        stats.errors += 1
        return
    stats.connected += 1
    corr = 0
    try:
        while not stop.is_set():
            corr += 1
            writer.write(produce_request(corr, i % PARTITIONS, batch))
            await writer.drain()
            resp = await read_frame(reader)
            # correlation id, topics count, name, partitions count, index, error code
            off = 4 + 4
            (nlen,) = struct.unpack_from(">h", resp, off)
            off += 2 + nlen + 4 + 4
            (err,) = struct.unpack_from(">h", resp, off)
            if err != 0:
                stats.errors += 1
            else:
                stats.produced += 10
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except asyncio.TimeoutError:
                pass
    except (OSError, asyncio.IncompleteReadError, struct.error):
        stats.errors += 1
    finally:
        writer.close()


async def consumer(port, i, stop, stats):
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        stats.errors += 1
        return
    stats.connected += 1
    corr = 0
    offset = 0
    try:
        while not stop.is_set():
            corr += 1
            writer.write(fetch_request(corr, i % PARTITIONS, offset))
            await writer.drain()
            resp = await read_frame(reader)
            stats.fetches += 1
            stats.fetched_bytes += len(resp)
            # correlation id, throttle, topics count, name, partitions count,
            # index, error code, high watermark: the next fetch waits at the end.
            off = 4 + 4 + 4
            (nlen,) = struct.unpack_from(">h", resp, off)
            off += 2 + nlen + 4 + 4
            err, hwm = struct.unpack_from(">hq", resp, off)
            if err != 0:
                stats.errors += 1
                await asyncio.sleep(0.5)
            else:
                offset = hwm
    except (OSError, asyncio.IncompleteReadError, struct.error):
        stats.errors += 1
    finally:
        writer.close()


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def connections(pid):
    return sum(1 for _ in os.listdir(f"/proc/{pid}/fd"))


async def load(args, pid, port):
    stop = asyncio.Event()
    stats = Stats()
    batch = record_batch(10, b"v" * 100)
    tasks = []
    # Open the connections a few at a time, as a fleet of clients would.
    for i in range(max(args.producers, args.consumers)):
        if i < args.producers:
            tasks.append(asyncio.create_task(producer(port, i, stop, stats, batch)))
        if i < args.consumers:
            tasks.append(asyncio.create_task(consumer(port, i, stop, stats)))
        if i % 50 == 49:
            await asyncio.sleep(0.05)
    await asyncio.sleep(3)
    samples = []
    for _ in range(args.seconds):
        await asyncio.sleep(1)
        samples.append(rss_kib(pid))
    fds = connections(pid)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return stats, samples, fds


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--herald", required=True)
    ap.add_argument("--producers", type=int, default=1000)
    ap.add_argument("--consumers", type=int, default=1000)
    ap.add_argument("--seconds", type=int, default=30, help="seconds of load sampled")
    args = ap.parse_args()

    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.producers + args.consumers + 256
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, soft)), hard))

    work = tempfile.mkdtemp(prefix="herald-memload-")
    log_path = os.path.join(work, "herald.log")
    env = dict(os.environ, NO_COLOR="1", RUST_LOG=os.environ.get("RUST_LOG", "warn,herald_broker::server=info"))
    with open(log_path, "wb") as out:
        proc = subprocess.Popen([args.herald, "serve", "--data-dir", os.path.join(work, "data"),
                                 "--listen", "127.0.0.1:0"], stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        port = None
        deadline = time.time() + 30
        while port is None and time.time() < deadline:
            text = re.sub(r"\x1b\[[0-9;]*m", "", open(log_path, errors="replace").read())
            m = re.search(r"listen=127\.0\.0\.1:(\d+)", text)
            port = int(m.group(1)) if m else None
            time.sleep(0.05)
        if port is None:
            print("herald did not start", file=sys.stderr)
            return 1
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}", "log_level": 0})
        admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(30)
        del admin
        time.sleep(5)
        idle = rss_kib(proc.pid)
        print(f"idle: rss={idle / 1024:.1f} MiB", flush=True)
        t0 = time.time()
        stats, samples, fds = asyncio.run(load(args, proc.pid, port))
        steady = sorted(samples)[len(samples) // 2]
        print(f"load: producers={args.producers} consumers={args.consumers} broker_fds={fds} "
              f"connected={stats.connected} rss_median={steady / 1024:.1f} MiB "
              f"rss_peak={max(samples) / 1024:.1f} MiB records_produced={stats.produced} "
              f"fetches={stats.fetches} errors={stats.errors} ({time.time() - t0:.0f} s)", flush=True)
        time.sleep(5)
        after = rss_kib(proc.pid)
        print(f"after close: rss={after / 1024:.1f} MiB", flush=True)
        per_conn = (steady - idle) / max(1, stats.connected)
        print(f"memory-load: idle={idle / 1024:.1f}MiB loaded={steady / 1024:.1f}MiB "
              f"peak={max(samples) / 1024:.1f}MiB after={after / 1024:.1f}MiB "
              f"per_connection={per_conn:.0f}KiB connections={stats.connected} errors={stats.errors}",
              flush=True)
        return 0
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
