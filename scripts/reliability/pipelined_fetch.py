#!/usr/bin/env python3
# One connection pipelines N Fetch requests (64 MiB max_bytes) and never reads the answers;
# prints the broker RSS meanwhile. --produce first writes 48 MiB to topic "big".
# usage: pipelined_fetch.py PORT BROKER_PID N [--produce]
import socket, struct, sys, time, os
from confluent_kafka import Producer
port = int(sys.argv[1]); pid = int(sys.argv[2]); n = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
def rss():
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS"): return l.split()[1] + " kB"
if "--produce" in sys.argv:
    p = Producer({"bootstrap.servers": f"127.0.0.1:{port}", "linger.ms": 20})
    v = b"x" * 1024
    for i in range(48 * 1024):
        while True:
            try: p.produce("big", v); break
            except BufferError: p.poll(0.1)
    p.flush()
print("rss before", rss())
def s(x): b = x.encode(); return struct.pack(">h", len(b)) + b
body = struct.pack(">iiiib", -1, 0, 1, 64 << 20, 0) + struct.pack(">i", 1) + s("big") + struct.pack(">i", 1) + struct.pack(">iqi", 0, 0, 64 << 20)
sock = socket.create_connection(("127.0.0.1", port))
sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
for c in range(n):
    msg = struct.pack(">hhi", 1, 4, c) + s("pipe") + body
    sock.sendall(struct.pack(">i", len(msg)) + msg)
for i in range(10):
    time.sleep(1); print("rss", rss(), flush=True)
sock.close()
time.sleep(2); print("rss after close", rss())
