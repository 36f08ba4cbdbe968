"""Kafka's internal topic __consumer_offsets read by kafka-python: listed as
internal, its records decode with Kafka's schemas (OffsetCommitKey v1 /
OffsetCommitValue v3, GroupMetadataKey v2 / GroupMetadataValue v3), the way
lag tools decode them."""
import struct
import time
import uuid


class Rd:
    def __init__(self, b):
        self.b, self.p = b, 0

    def take(self, n):
        v = self.b[self.p:self.p + n]
        assert len(v) == n, "truncated"
        self.p += n
        return v

    def i16(self):
        return struct.unpack(">h", self.take(2))[0]

    def i32(self):
        return struct.unpack(">i", self.take(4))[0]

    def i64(self):
        return struct.unpack(">q", self.take(8))[0]

    def str(self):
        n = self.i16()
        return None if n < 0 else self.take(n).decode()

    def bytes(self):
        n = self.i32()
        return None if n < 0 else self.take(n)

    def done(self):
        return self.p == len(self.b)


def decode(key, value):
    k = Rd(key)
    version = k.i16()
    if version in (0, 1):
        group, topic, partition = k.str(), k.str(), k.i32()
        assert k.done()
        if value is None:
            return ("offset", group, topic, partition, None)
        v = Rd(value)
        assert v.i16() == 3
        offset, _epoch, _meta, ts = v.i64(), v.i32(), v.str(), v.i64()
        assert v.done()
        return ("offset", group, topic, partition, (offset, ts))
    if version == 2:
        group = k.str()
        assert k.done()
        if value is None:
            return ("group", group, None)
        v = Rd(value)
        assert v.i16() == 3
        protocol_type, generation, protocol, leader, _ts = v.str(), v.i32(), v.str(), v.str(), v.i64()
        members = []
        for _ in range(v.i32()):
            member_id, _inst, client_id, _host = v.str(), v.str(), v.str(), v.str()
            _rebalance, _session = v.i32(), v.i32()
            _sub, _assign = v.bytes(), v.bytes()
            members.append((member_id, client_id))
        assert v.done()
        return ("group", group, (protocol_type, generation, protocol, leader, members))
    return ("other", version)


def test_kafka_python_reads_consumer_offsets(bootstrap):
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    topic = f"py-orders-{uuid.uuid4().hex[:8]}"
    group = f"py-billing-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for i in range(5):
        producer.send(topic, f"v{i}".encode(), partition=0).get(10)
    producer.close()

    # A classic group that joins (group metadata) and commits 4 (an offset).
    member = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                           enable_auto_commit=False, auto_offset_reset="earliest")
    deadline = time.time() + 30
    while not member.assignment() and time.time() < deadline:
        member.poll(timeout_ms=200)
    member.commit({TopicPartition(topic, 0): OffsetAndMetadata(4, "", -1)})

    internal = [t.get("topic", t.get("name")) for t in admin.describe_topics() if t["is_internal"]]
    assert "__consumer_offsets" in internal, internal

    reader = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                           group_id=None, consumer_timeout_ms=3000)
    tp = TopicPartition("__consumer_offsets", 0)
    reader.assign([tp])
    reader.seek_to_beginning(tp)
    seen_offset, seen_group = None, None
    deadline = time.time() + 30
    while (seen_offset is None or seen_group is None) and time.time() < deadline:
        for m in reader.poll(timeout_ms=500).get(tp, []):
            d = decode(m.key, m.value)
            if d[0] == "offset" and d[1] == group and d[4] is not None:
                seen_offset = d
            if d[0] == "group" and d[1] == group and d[2] is not None:
                seen_group = d
    member.close()
    reader.close()
    admin.close()
    assert seen_offset is not None and seen_offset[2:4] == (topic, 0) and seen_offset[4][0] == 4, seen_offset
    assert seen_group is not None and seen_group[2][0] == "consumer", seen_group
