#!/usr/bin/env python3
"""Seeds the `request` fuzz corpus with real clients' requests.

Starts a Herald broker (`herald serve`, temporary data dir, ephemeral port), a
capture proxy in front of it that saves every request frame a client sends
(size prefix included, as the `request` target reads it), and runs real
clients through the proxy: kcat, confluent-kafka (librdkafka), kafka-python and
the `herald` CLI (rdkafka crate). Frames are deduplicated by content and
written to fuzz/corpus/request/client-<api>-v<version>-<sha1 prefix>.

The broker advertises the proxy's address, so clients reconnect through it
after their first Metadata response.

    scripts/fuzz/capture_requests.py --herald target/debug/herald [--out fuzz/corpus/request]
"""

import argparse
import hashlib
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

API_NAMES = {
    0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 8: "OffsetCommit", 9: "OffsetFetch",
    10: "FindCoordinator", 11: "JoinGroup", 12: "Heartbeat", 13: "LeaveGroup", 14: "SyncGroup",
    15: "DescribeGroups", 16: "ListGroups", 17: "SaslHandshake", 18: "ApiVersions", 19: "CreateTopics",
    20: "DeleteTopics", 21: "DeleteRecords", 22: "InitProducerId", 23: "OffsetForLeaderEpoch",
    32: "DescribeConfigs", 33: "AlterConfigs", 35: "DescribeLogDirs", 36: "SaslAuthenticate",
    37: "CreatePartitions", 42: "DeleteGroups", 44: "IncrementalAlterConfigs", 47: "OffsetDelete",
    60: "DescribeCluster", 68: "ConsumerGroupHeartbeat", 69: "ConsumerGroupDescribe",
}

# Frames larger than this are not kept (the corpus stays small).
FRAME_BYTES_KEEP_MAX = 64 * 1024


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Capture:
    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.seen = set()
        self.lock = threading.Lock()
        self.kept = 0
        self.frames = 0

    def save(self, frame):
        with self.lock:
            self.frames += 1
            if len(frame) > FRAME_BYTES_KEEP_MAX:
                return
            digest = hashlib.sha1(frame).hexdigest()
            if digest in self.seen:
                return
            self.seen.add(digest)
            key, version = struct.unpack(">hh", frame[4:8])
            name = API_NAMES.get(key, f"key{key}")
            path = os.path.join(self.out_dir, f"client-{name}-v{version}-{digest[:12]}")
            with open(path, "wb") as f:
                f.write(frame)
            self.kept += 1


def pipe_requests(src, dst, capture):
    """Client -> broker: cut the stream into frames, save each, forward it."""
    buf = b""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
            buf += data
            while len(buf) >= 4:
                (size,) = struct.unpack(">i", buf[:4])
                if size < 0 or len(buf) < 4 + size:
                    break
                capture.save(buf[: 4 + size])
                buf = buf[4 + size:]
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def pipe_responses(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass


def proxy(listen_port, broker_port, capture, stop):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", listen_port))
    srv.listen(64)
    srv.settimeout(0.2)
    while not stop.is_set():
        try:
            client, _ = srv.accept()
        except socket.timeout:
            continue
        upstream = socket.create_connection(("127.0.0.1", broker_port))
        threading.Thread(target=pipe_requests, args=(client, upstream, capture), daemon=True).start()
        threading.Thread(target=pipe_responses, args=(upstream, client), daemon=True).start()
    srv.close()


def run(cmd, **kw):
    shown = " ".join(cmd) if isinstance(cmd, list) else cmd
    print("+", shown.strip().splitlines()[0][:120], flush=True)
    try:
        subprocess.run(cmd, timeout=60, check=False, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, **kw)
    except subprocess.TimeoutExpired:
        print("  (timed out)", flush=True)


def clients(bootstrap, herald):
    env = dict(os.environ)
    # herald CLI (rdkafka crate, and its own raw protocol client)
    h = [herald]
    b = ["-b", bootstrap]
    run(h + ["topic", "create"] + b + ["cap-herald", "--partitions", "3"])
    run(h + ["topic", "list"] + b)
    run(h + ["topic", "describe"] + b + ["cap-herald"])
    run(h + ["topic", "alter-config"] + b + ["cap-herald", "--set", "retention.ms=86400000"])
    run(h + ["topic", "add-partitions"] + b + ["cap-herald", "4"])
    run(h + ["produce"] + b + ["-k", "k1", "-v", "hello", "cap-herald"])
    run(h + ["produce"] + b + ["cap-herald"], input=b"a\nb\nc\n")
    run(h + ["consume"] + b + ["--from-beginning", "-n", "3", "-g", "cap-g1", "cap-herald"])
    run(h + ["group", "list"] + b)
    run(h + ["group", "describe"] + b + ["cap-g1"])
    run(h + ["info"] + b)
    # kcat (librdkafka): metadata, produce with each codec, consume, group consume
    if shutil.which("kcat"):
        run(["kcat", "-b", bootstrap, "-L"])
        for codec in ["none", "gzip", "snappy", "lz4", "zstd"]:
            run(["kcat", "-b", bootstrap, "-P", "-t", "cap-kcat", "-z", codec, "-K", ":"],
                input=b"k1:v1\nk2:v2\n:novalue\n")
        run(["kcat", "-b", bootstrap, "-C", "-t", "cap-kcat", "-o", "beginning", "-e"])
        run(["kcat", "-b", bootstrap, "-G", "cap-kcat-g", "cap-kcat", "-e", "-o", "beginning"])
        run(["kcat", "-b", bootstrap, "-Q", "-t", "cap-kcat:0:-1"])
    py = sys.executable
    confluent = f"""
from confluent_kafka import Producer, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, NewPartitions, ConfigResource
b = {bootstrap!r}
a = AdminClient({{"bootstrap.servers": b}})
for f in a.create_topics([NewTopic("cap-ck", 2, 1, config={{"cleanup.policy": "compact"}})]).values():
    try: f.result()
    except Exception: pass
try: a.describe_configs([ConfigResource("topic", "cap-ck")])
except Exception: pass
p = Producer({{"bootstrap.servers": b, "enable.idempotence": True, "compression.type": "zstd"}})
for i in range(20): p.produce("cap-ck", key=str(i % 3), value=b"x" * i, headers=[("h", b"v")])
p.flush(10)
c = Consumer({{"bootstrap.servers": b, "group.id": "cap-ck-g", "auto.offset.reset": "earliest"}})
c.subscribe(["cap-ck"])
n = 0
t = __import__("time").time() + 10
while n < 20 and __import__("time").time() < t:
    m = c.poll(0.5)
    if m is not None and not m.error(): n += 1
c.commit(asynchronous=False)
c.get_watermark_offsets(TopicPartition("cap-ck", 0), 5)
c.offsets_for_times([TopicPartition("cap-ck", 0, 0)], 5)
c.close()
try:
    c2 = Consumer({{"bootstrap.servers": b, "group.id": "cap-ck-848", "group.protocol": "consumer",
                    "auto.offset.reset": "earliest"}})
    c2.subscribe(["cap-ck"]); c2.poll(3); c2.close()
except Exception: pass
try: a.list_consumer_groups().result()
except Exception: pass
try: a.describe_consumer_groups(["cap-ck-g"])["cap-ck-g"].result()
except Exception: pass
try: a.delete_records([TopicPartition("cap-ck", 0, 1)])
except Exception: pass
try: a.create_partitions([NewPartitions("cap-ck", 3)])
except Exception: pass
for f in a.delete_topics(["cap-ck"]).values():
    try: f.result()
    except Exception: pass
"""
    run([py, "-c", confluent], env=env)
    kafka_python = f"""
from kafka import KafkaProducer, KafkaConsumer, KafkaAdminClient
from kafka.admin import NewTopic
b = {bootstrap!r}
a = KafkaAdminClient(bootstrap_servers=b)
try: a.create_topics([NewTopic("cap-kp", 1, 1)])
except Exception: pass
p = KafkaProducer(bootstrap_servers=b, compression_type="gzip")
for i in range(10): p.send("cap-kp", key=b"k", value=b"v%d" % i)
p.flush()
c = KafkaConsumer("cap-kp", bootstrap_servers=b, group_id="cap-kp-g", auto_offset_reset="earliest",
                  consumer_timeout_ms=3000)
for _ in c: pass
c.commit(); c.close()
for call in (lambda: a.list_groups() if hasattr(a, "list_groups") else a.list_consumer_groups(),
             lambda: a.describe_consumer_groups(["cap-kp-g"]),
             lambda: a.list_consumer_group_offsets("cap-kp-g"),
             lambda: a.describe_configs([__import__("kafka.admin", fromlist=["ConfigResource"]).ConfigResource("TOPIC", "cap-kp")]),
             lambda: a.delete_topics(["cap-kp"])):
    try: call()
    except Exception: pass
"""
    run([py, "-c", kafka_python], env=env)


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap = argparse.ArgumentParser()
    ap.add_argument("--herald", required=True, help="path to the herald binary")
    ap.add_argument("--out", default=os.path.join(root, "fuzz", "corpus", "request"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    capture = Capture(args.out)
    broker_port, proxy_port = free_port(), free_port()
    data = tempfile.mkdtemp(prefix="herald-capture-")
    broker = subprocess.Popen(
        [args.herald, "serve", "--data-dir", data, "--listen", f"127.0.0.1:{broker_port}",
         "--advertised", f"127.0.0.1:{proxy_port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stop = threading.Event()
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", broker_port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        threading.Thread(target=proxy, args=(proxy_port, broker_port, capture, stop), daemon=True).start()
        clients(f"127.0.0.1:{proxy_port}", args.herald)
    finally:
        stop.set()
        broker.terminate()
        broker.wait(10)
        shutil.rmtree(data, ignore_errors=True)
    print(f"{capture.frames} request frames seen, {capture.kept} new distinct frames kept in {args.out}")


if __name__ == "__main__":
    main()
