"""Shared fixtures: a real Herald broker process per test module.

HERALD_BIN names the herald binary (the Rust test runner sets it). Each module
gets its own broker on an ephemeral port with a temporary data directory.
"""
import os
import re
import subprocess
import tempfile
import threading
import time

import pytest


class Broker:
    def __init__(self, extra_args=()):
        self.bin = os.environ["HERALD_BIN"]
        self.tmp = tempfile.TemporaryDirectory(prefix="herald-py-")
        self.extra_args = list(extra_args)
        self.proc = None
        self.addr = None
        self.start("127.0.0.1:0")

    def start(self, listen):
        self.proc = subprocess.Popen(
            [self.bin, "serve", "--listen", listen, "--data-dir", self.tmp.name, *self.extra_args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "RUST_LOG": os.environ.get("HERALD_TEST_LOG", "info")},
        )
        found = threading.Event()

        def pump():
            for line in self.proc.stderr:
                if os.environ.get("HERALD_TEST_ECHO"):
                    print("[herald]", line.rstrip())
                m = re.search(r"listen=(\S+)", line)
                if m and not found.is_set():
                    self.addr = m.group(1)
                    found.set()

        threading.Thread(target=pump, daemon=True).start()
        if not found.wait(30):
            raise RuntimeError("herald did not report its address")

    def restart(self, kill=False):
        addr = self.addr
        self.stop(kill=kill)
        for _ in range(50):
            try:
                self.start(addr)
                return
            except RuntimeError:
                time.sleep(0.1)
        raise RuntimeError("could not restart herald")

    def stop(self, kill=False):
        if self.proc and self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            self.proc.wait(timeout=30)

    def close(self):
        self.stop(kill=True)
        self.tmp.cleanup()


@pytest.fixture(scope="module")
def broker():
    b = Broker()
    yield b
    b.close()


@pytest.fixture(scope="module")
def bootstrap(broker):
    return broker.addr
