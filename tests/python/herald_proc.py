"""Starts and stops a Herald broker binary for the Python tests.

HERALD_BIN: path to the `herald` binary. HERALD_BOOTSTRAP: an already running
broker (tests that restart the broker need HERALD_BIN).
"""

import os
import re
import signal
import subprocess
import tempfile
import time

ANSI = re.compile(r"\x1b\[[0-9;]*m")

# Fast KIP-848 timers so that the tests stay short.
DEFAULT_ARGS = [
    "--group-consumer-heartbeat-interval-ms", "500",
    "--group-consumer-session-timeout-ms", "6000",
]


class HeraldProcess:
    def __init__(self, binary, data_dir=None, extra_args=None):
        self.binary = binary
        self._tmp = tempfile.TemporaryDirectory(prefix="herald-groups-")
        self.data_dir = data_dir or os.path.join(self._tmp.name, "data")
        self.extra_args = list(DEFAULT_ARGS if extra_args is None else extra_args)
        self.port = 0
        self.proc = None
        self.starts = 0
        self.log_path = None

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def start(self, timeout=20.0):
        self.starts += 1
        self.log_path = os.path.join(self._tmp.name, f"herald-{self.starts}.log")
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        env["NO_COLOR"] = "1"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [self.binary, "serve", "--data-dir", self.data_dir,
                 "--listen", f"127.0.0.1:{self.port}", *self.extra_args],
                stdout=log, stderr=log, env=env,
            )
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"herald exited with {self.proc.returncode}; see {self.log_path}")
            with open(self.log_path, "rb") as f:
                text = ANSI.sub("", f.read().decode("utf-8", "replace"))
            found = re.findall(r"listen=127\.0\.0\.1:(\d+)", text)
            if found:
                self.port = int(found[-1])
                return self
            time.sleep(0.05)
        raise RuntimeError(f"herald did not start; see {self.log_path}")

    def log_text(self):
        out = []
        for i in range(1, self.starts + 1):
            path = os.path.join(self._tmp.name, f"herald-{i}.log")
            with open(path, "rb") as f:
                out.append(ANSI.sub("", f.read().decode("utf-8", "replace")))
        return "".join(out)

    def stop(self, sig=signal.SIGTERM, timeout=20.0):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self, sig=signal.SIGTERM):
        self.stop(sig)
        return self.start()

    def close(self):
        died = self.proc is not None and self.proc.poll() is not None
        self.stop()
        keep = os.environ.get("HERALD_KEEP_LOGS")
        if died or keep:
            dest = keep or tempfile.mkdtemp(prefix="herald-groups-logs-")
            os.makedirs(dest, exist_ok=True)
            with open(os.path.join(dest, "herald.log"), "w") as f:
                f.write(self.log_text())
            print(f"herald logs kept in {dest}" + (" (the broker died)" if died else ""))
        self._tmp.cleanup()
