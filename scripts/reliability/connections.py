#!/usr/bin/env python3
# Opens N connections (each sends ApiVersions), holds them, closes them, for R rounds;
# prints the broker RSS (from /proc/PID/status) at each step.
# usage: connections.py PORT BROKER_PID N ROUNDS
import socket, struct, sys, time
port = int(sys.argv[1]); pid = int(sys.argv[2]); n = int(sys.argv[3]); rounds = int(sys.argv[4])
def rss():
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS"): return int(l.split()[1])
def apiversions(c):
    cid = b"conn"
    msg = struct.pack(">hhih", 18, 3, c, len(cid)) + cid + b"\x00" + b"\x05herc\x041.0\x00"
    return struct.pack(">i", len(msg)) + msg
base = rss(); print("rss idle kB", base)
for r in range(rounds):
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port)); s.sendall(apiversions(i)); socks.append(s)
    for s in socks:
        s.recv(65536)
    time.sleep(1)
    held = rss(); print(f"round {r}: {n} open, rss kB {held}, per conn B {(held-base)*1024//n}", flush=True)
    for s in socks: s.close()
    time.sleep(4); print(f"round {r}: closed, rss kB {rss()}", flush=True)
