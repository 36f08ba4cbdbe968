"""A few raw Kafka requests, standard library only, for the driver's own checks.

The driver uses these to see what the broker advertises (ApiVersions v0) and
what a client really put on the wire (Fetch v4: the attributes, producer id and
sequence of each stored record batch), independently of the client under test.
A client that silently falls back to uncompressed batches, or that claims
idempotence without an InitProducerId, is caught here.

Layouts follow Kafka's message specs (ApiVersionsRequest/Response v0,
MetadataRequest/Response v1, FetchRequest/Response v4) and the record batch format v2 (magic 2),
with the control records' key (version, type) that transaction markers carry.
"""

import socket
import struct

CODECS = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}

API_NAMES = {
    0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 8: "OffsetCommit",
    9: "OffsetFetch", 10: "FindCoordinator", 11: "JoinGroup", 12: "Heartbeat",
    13: "LeaveGroup", 14: "SyncGroup", 15: "DescribeGroups", 16: "ListGroups",
    17: "SaslHandshake", 18: "ApiVersions", 19: "CreateTopics", 20: "DeleteTopics",
    21: "DeleteRecords", 22: "InitProducerId", 23: "OffsetForLeaderEpoch",
    24: "AddPartitionsToTxn", 25: "AddOffsetsToTxn", 26: "EndTxn", 28: "TxnOffsetCommit",
    32: "DescribeConfigs", 33: "AlterConfigs", 35: "DescribeLogDirs", 37: "CreatePartitions",
    42: "DeleteGroups", 44: "IncrementalAlterConfigs", 47: "OffsetDelete",
    60: "DescribeCluster", 68: "ConsumerGroupHeartbeat", 69: "ConsumerGroupDescribe",
    75: "DescribeTopicPartitions",
}


def _str(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


class Conn:
    def __init__(self, host, port, timeout=5.0, ssl_context=None):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        if ssl_context is not None:
            self.sock = ssl_context.wrap_socket(self.sock, server_hostname=host)
        self.corr = 0

    def close(self):
        self.sock.close()

    def _recv_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            buf += chunk
        return bytes(buf)

    def request(self, api_key, version, body, client_id="herald-compat-driver"):
        self.corr += 1
        header = struct.pack(">hhi", api_key, version, self.corr) + _str(client_id)
        frame = header + body
        self.sock.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", self._recv_exact(4))[0]
        resp = self._recv_exact(size)
        corr = struct.unpack(">i", resp[:4])[0]
        if corr != self.corr:
            raise ValueError(f"correlation id {corr} != {self.corr}")
        return resp[4:]


def api_versions(bootstrap, ssl_context=None):
    """{api_key: (min, max)} advertised by the broker (ApiVersions v0)."""
    host, port = bootstrap.rsplit(":", 1)
    c = Conn(host, int(port), ssl_context=ssl_context)
    try:
        r = c.request(18, 0, b"")
    finally:
        c.close()
    err, n = struct.unpack(">hi", r[:6])
    if err:
        raise ValueError(f"ApiVersions error {err}")
    out, pos = {}, 6
    for _ in range(n):
        k, lo, hi = struct.unpack(">hhh", r[pos:pos + 6])
        out[k] = (lo, hi)
        pos += 6
    return out


def metadata_brokers(bootstrap, ssl_context=None, api_versions_first=False):
    """[(node_id, host, port)] that a broker lists in Metadata v1 (asking for no topics);
    `api_versions_first`: after an ApiVersions v0 on the same connection."""
    host, port = bootstrap.rsplit(":", 1)
    c = Conn(host, int(port), ssl_context=ssl_context)
    try:
        if api_versions_first:
            c.request(18, 0, b"")
        r = c.request(3, 1, struct.pack(">i", 0))
    finally:
        c.close()
    n = struct.unpack(">i", r[:4])[0]
    out, pos = [], 4
    for _ in range(n):
        node_id, hl = struct.unpack(">ih", r[pos:pos + 6])
        pos += 6
        h = r[pos:pos + hl].decode()
        pos += hl
        p, rl = struct.unpack(">ih", r[pos:pos + 6])
        pos += 6 + max(rl, 0)
        out.append((node_id, h, p))
    return out


def _varint(buf, pos):
    """A zigzag varint (record fields) at `pos`: (value, next position)."""
    shift, raw = 0, 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        raw |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return (raw >> 1) ^ -(raw & 1), pos


CONTROL_TYPES = {0: "abort", 1: "commit"}


def _control_type(batch):
    """The marker type of a control batch: the key of its first (only) record is
    version int16, type int16 (0 abort, 1 commit)."""
    pos = 61
    _len, pos = _varint(batch, pos)
    pos += 1  # record attributes
    _ts, pos = _varint(batch, pos)
    _off, pos = _varint(batch, pos)
    klen, pos = _varint(batch, pos)
    if klen < 4 or pos + 4 > len(batch):
        return "?"
    _version, typ = struct.unpack(">hh", batch[pos:pos + 4])
    return CONTROL_TYPES.get(typ, f"?{typ}")


def parse_batches(records):
    """Yields dicts describing each record batch (magic 2) in a records blob."""
    pos = 0
    while pos + 61 <= len(records):
        base_offset, length = struct.unpack(">qi", records[pos:pos + 12])
        if pos + 12 + length > len(records):
            break  # a partial batch at the end of a fetch
        magic = records[pos + 16]
        attrs = struct.unpack(">h", records[pos + 21:pos + 23])[0]
        last_delta = struct.unpack(">i", records[pos + 23:pos + 27])[0]
        base_ts, max_ts, pid, epoch, base_seq, count = struct.unpack(
            ">qqqhii", records[pos + 27:pos + 61])
        b = {
            "base_offset": base_offset, "last_offset": base_offset + last_delta,
            "magic": magic, "codec": CODECS.get(attrs & 7, f"?{attrs & 7}"),
            "timestamp_type": "log_append" if attrs & 8 else "create",
            "transactional": bool(attrs & 16), "control": bool(attrs & 32),
            "producer_id": pid, "producer_epoch": epoch, "base_sequence": base_seq,
            "count": count, "base_timestamp": base_ts, "max_timestamp": max_ts,
        }
        if b["control"]:
            b["control_type"] = _control_type(records[pos:pos + 12 + length])
        yield b
        pos += 12 + length


def _fetch_v4(c, topic, partition, offset, isolation=0):
    """One Fetch v4 of one partition: (high watermark, last stable offset,
    [(producer id, first offset)] of aborted transactions, records blob)."""
    body = struct.pack(">iiiib", -1, 0, 1, 8 << 20, isolation)
    body += struct.pack(">i", 1) + _str(topic)
    body += struct.pack(">i", 1) + struct.pack(">iqi", partition, offset, 8 << 20)
    r = c.request(1, 4, body)
    pos = 4  # throttle
    ntopics = struct.unpack(">i", r[pos:pos + 4])[0]
    pos += 4
    out = None
    for _ in range(ntopics):
        tl = struct.unpack(">h", r[pos:pos + 2])[0]
        pos += 2 + tl
        nparts = struct.unpack(">i", r[pos:pos + 4])[0]
        pos += 4
        for _ in range(nparts):
            _p, err, hw, lso = struct.unpack(">ihqq", r[pos:pos + 22])
            pos += 22
            naborted = struct.unpack(">i", r[pos:pos + 4])[0]
            pos += 4
            aborted = []
            for _ in range(max(naborted, 0)):
                aborted.append(struct.unpack(">qq", r[pos:pos + 16]))
                pos += 16
            rl = struct.unpack(">i", r[pos:pos + 4])[0]
            pos += 4
            recs = r[pos:pos + max(rl, 0)]
            pos += max(rl, 0)
            if err:
                raise ValueError(f"Fetch v4 error code {err} for {topic}-{partition}")
            out = (hw, lso, aborted, recs)
    if out is None:
        raise ValueError(f"Fetch v4 answered no partition for {topic}-{partition}")
    return out


def fetch_batches(bootstrap, topic, partition=0, max_batches=10000):
    """Every batch of one partition (control batches too), read with Fetch v4
    (read_uncommitted) from offset 0."""
    host, port = bootstrap.rsplit(":", 1)
    c = Conn(host, int(port))
    batches, offset = [], 0
    try:
        for _ in range(1000):
            hw, _lso, _aborted, recs = _fetch_v4(c, topic, partition, offset)
            got = [b for b in parse_batches(recs) if b["last_offset"] >= offset]
            if not got:
                return batches
            batches.extend(got)
            offset = got[-1]["last_offset"] + 1
            if len(batches) >= max_batches or offset >= hw:
                return batches
    finally:
        c.close()
    return batches


def fetch_committed_view(bootstrap, topic, partition=0):
    """A read_committed Fetch v4 of one partition from offset 0: {"hw", "lso",
    "aborted": [(producer id, first offset)]} (the aborted transactions the broker
    reports for the range it returns; the whole partition when it is small)."""
    host, port = bootstrap.rsplit(":", 1)
    c = Conn(host, int(port))
    try:
        hw, lso, aborted, _recs = _fetch_v4(c, topic, partition, 0, isolation=1)
    finally:
        c.close()
    return {"hw": hw, "lso": lso, "aborted": aborted}
