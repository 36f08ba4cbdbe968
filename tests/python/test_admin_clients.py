"""Admin and produce/consume through kafka-python and confluent-kafka."""
import time
import uuid

import pytest


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# --- confluent-kafka (librdkafka bundled in the wheel) ---------------------

def test_confluent_admin_create_describe_alter_delete(bootstrap):
    from confluent_kafka.admin import AdminClient, NewTopic, ConfigResource, ConfigEntry, AlterConfigOpType
    from confluent_kafka import KafkaException

    admin = AdminClient({"bootstrap.servers": bootstrap})
    name = unique("ck-admin")
    fs = admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=1, config={"retention.ms": "120000"})])
    fs[name].result(10)

    md = admin.list_topics(timeout=10)
    assert name in md.topics
    assert len(md.topics[name].partitions) == 3

    res = ConfigResource(ConfigResource.Type.TOPIC, name)
    configs = admin.describe_configs([res])[res].result(10)
    assert configs["retention.ms"].value == "120000"
    assert not configs["retention.ms"].is_default
    assert configs["segment.bytes"].is_default
    assert "cleanup.policy" in configs and "max.message.bytes" in configs

    inc = ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=[
        ConfigEntry("retention.ms", "240000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("segment.ms", "600000", incremental_operation=AlterConfigOpType.SET),
    ])
    admin.incremental_alter_configs([inc])[inc].result(10)
    configs = admin.describe_configs([res])[res].result(10)
    assert configs["retention.ms"].value == "240000"
    assert configs["segment.ms"].value == "600000"

    bad = ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=[
        ConfigEntry("no.such.config", "1", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException):
        admin.incremental_alter_configs([bad])[bad].result(10)

    admin.delete_topics([name])[name].result(10)
    deadline = time.time() + 10
    while name in admin.list_topics(timeout=10).topics and time.time() < deadline:
        time.sleep(0.1)
    assert name not in admin.list_topics(timeout=10).topics


def test_confluent_group_configs(bootstrap):
    """KIP-848 group configs: describe defaults, override, describe, delete the override."""
    from confluent_kafka.admin import AdminClient, ConfigResource, ConfigEntry, AlterConfigOpType
    from confluent_kafka import KafkaException

    admin = AdminClient({"bootstrap.servers": bootstrap})
    group = unique("ck-group-configs")
    res = ConfigResource(ConfigResource.Type.GROUP, group)
    configs = admin.describe_configs([res])[res].result(10)
    assert configs["consumer.session.timeout.ms"].is_default
    assert configs["consumer.heartbeat.interval.ms"].is_default

    def alter(*entries):
        r = ConfigResource(ConfigResource.Type.GROUP, group, incremental_configs=list(entries))
        return admin.incremental_alter_configs([r])[r].result(10)

    alter(ConfigEntry("consumer.session.timeout.ms", "50000",
                      incremental_operation=AlterConfigOpType.SET))
    configs = admin.describe_configs([res])[res].result(10)
    assert configs["consumer.session.timeout.ms"].value == "50000"
    assert not configs["consumer.session.timeout.ms"].is_default

    with pytest.raises(KafkaException):  # below Kafka's minimum session timeout
        alter(ConfigEntry("consumer.session.timeout.ms", "10",
                          incremental_operation=AlterConfigOpType.SET))
    with pytest.raises(KafkaException):  # not a group config
        alter(ConfigEntry("retention.ms", "10", incremental_operation=AlterConfigOpType.SET))

    alter(ConfigEntry("consumer.session.timeout.ms", None,
                      incremental_operation=AlterConfigOpType.DELETE))
    configs = admin.describe_configs([res])[res].result(10)
    assert configs["consumer.session.timeout.ms"].is_default


def test_confluent_dynamic_broker_configs(bootstrap):
    """kafka-configs --entity-type brokers: a runtime log default reaches topics
    without overrides, a topic override still wins, DELETE restores the default."""
    from confluent_kafka.admin import AdminClient, NewTopic, ConfigResource, ConfigEntry, AlterConfigOpType
    from confluent_kafka import KafkaException

    admin = AdminClient({"bootstrap.servers": bootstrap})
    plain, pinned = unique("dyn-plain"), unique("dyn-pinned")
    fs = admin.create_topics([NewTopic(plain, 1, 1),
                              NewTopic(pinned, 1, 1, config={"retention.ms": "3600000"})])
    for f in fs.values():
        f.result(10)
    broker_id = str(next(iter(admin.list_topics(timeout=10).brokers)))
    broker = ConfigResource(ConfigResource.Type.BROKER, broker_id)

    def alter(*entries):
        r = ConfigResource(ConfigResource.Type.BROKER, broker_id, incremental_configs=list(entries))
        return admin.incremental_alter_configs([r])[r].result(10)

    def topic_configs(name):
        r = ConfigResource(ConfigResource.Type.TOPIC, name)
        return admin.describe_configs([r])[r].result(10)

    alter(ConfigEntry("log.retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET),
          ConfigEntry("log.cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND),
          ConfigEntry("background.threads", "9", incremental_operation=AlterConfigOpType.SET))
    b = admin.describe_configs([broker])[broker].result(10)
    assert b["log.retention.ms"].value == "7200000"
    assert b["log.cleanup.policy"].value == "delete,compact"
    assert b["background.threads"].value == "9"
    assert topic_configs(plain)["retention.ms"].value == "7200000"
    assert topic_configs(plain)["cleanup.policy"].value == "delete,compact"
    assert topic_configs(pinned)["retention.ms"].value == "3600000"

    with pytest.raises(KafkaException):  # static: needs a restart in Kafka too
        alter(ConfigEntry("listeners", "PLAINTEXT://:1", incremental_operation=AlterConfigOpType.SET))
    with pytest.raises(KafkaException):
        alter(ConfigEntry("log.retention.ms", "soon", incremental_operation=AlterConfigOpType.SET))

    alter(ConfigEntry("log.retention.ms", None, incremental_operation=AlterConfigOpType.DELETE),
          ConfigEntry("log.cleanup.policy", "compact", incremental_operation=AlterConfigOpType.SUBTRACT),
          ConfigEntry("background.threads", None, incremental_operation=AlterConfigOpType.DELETE))
    assert topic_configs(plain)["retention.ms"].value == "604800000"
    assert topic_configs(plain)["cleanup.policy"].value == "delete"


def test_confluent_idempotent_produce_and_consume_with_headers(bootstrap):
    from confluent_kafka import Producer, Consumer, TopicPartition

    topic = unique("ck-data")
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "compression.type": "zstd", "linger.ms": 5})
    errors = []
    for i in range(1000):
        p.produce(topic, key=f"k{i % 10}", value=f"v{i}", headers=[("h", f"{i}".encode())],
                  on_delivery=lambda err, msg: err and errors.append(err))
        p.poll(0)
    assert p.flush(30) == 0
    assert not errors

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("unused"), "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    got = []
    deadline = time.time() + 30
    while len(got) < 1000 and time.time() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        got.append((m.offset(), m.key().decode(), m.value().decode(), dict(m.headers())["h"].decode()))
    c.close()
    assert [g[0] for g in got] == list(range(1000))
    assert all(v == f"v{o}" and h == f"{o}" and k == f"k{o % 10}" for o, k, v, h in got)


# --- kafka-python (pure Python) ---------------------------------------------

def test_kafka_python_admin_create_describe_delete(bootstrap):
    from kafka.admin import KafkaAdminClient, NewTopic, ConfigResource, ConfigResourceType, NewPartitions
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    name = unique("kp-admin")
    admin.create_topics([NewTopic(name, num_partitions=2, replication_factor=1, topic_configs={"cleanup.policy": "delete", "retention.bytes": "1048576"})])
    assert name in admin.list_topics()
    with pytest.raises(TopicAlreadyExistsError):
        admin.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)])

    described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
    entries = described["topic"][name]
    assert entries["retention.bytes"]["value"] == "1048576"
    assert entries["retention.bytes"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
    assert entries["cleanup.policy"]["value"] == "delete"

    admin.create_partitions({name: NewPartitions(total_count=4)})
    topics = admin.describe_topics([name])
    assert len(topics[0]["partitions"]) == 4

    admin.delete_topics([name])
    deadline = time.time() + 10
    while name in admin.list_topics() and time.time() < deadline:
        time.sleep(0.1)
    assert name not in admin.list_topics()
    admin.close()


def test_kafka_python_produce_consume_from_beginning_and_timestamp(bootstrap):
    from kafka import KafkaProducer, KafkaConsumer, TopicPartition

    topic = unique("kp-data")
    producer = KafkaProducer(bootstrap_servers=bootstrap, compression_type="gzip", acks="all", linger_ms=5)
    base = 1_700_000_000_000
    for i in range(100):
        producer.send(topic, key=f"k{i}".encode(), value=f"v{i}".encode(), headers=[("n", str(i).encode())], timestamp_ms=base + i * 1000)
    producer.flush(30)
    producer.close()

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=5000)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    got = [(m.offset, m.key, m.value, m.headers[0][1], m.timestamp) for m in consumer]
    assert len(got) == 100
    assert all(o == i and k == f"k{i}".encode() and v == f"v{i}".encode() and h == str(i).encode() and ts == base + i * 1000
               for i, (o, k, v, h, ts) in enumerate(got))

    found = consumer.offsets_for_times({tp: base + 42_500})
    assert found[tp].offset == 43
    assert found[tp].timestamp == base + 43_000
    consumer.seek(tp, found[tp].offset)
    first = next(iter(consumer))
    assert first.value == b"v43"
    assert consumer.beginning_offsets([tp])[tp] == 0
    assert consumer.end_offsets([tp])[tp] == 100
    consumer.close()


def test_kafka_python_transactions_admin(bootstrap):
    """kafka-python's list_transactions (every filter), describe_transactions
    and describe_producers against a confluent-kafka transactional producer:
    ongoing, then aborted."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    from kafka import KafkaAdminClient, TopicPartition
    from kafka.errors import TransactionalIdNotFoundError

    topic = unique("kp-txn")
    tid = unique("kp-tid")
    creator = AdminClient({"bootstrap.servers": bootstrap})
    creator.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(10)
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": tid})
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(3):
        p.produce(topic, f"v{i}".encode(), partition=1)
    p.flush(30)

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        def ids(**filters):
            return sorted(l.transactional_id for ls in admin.list_transactions(**filters).values() for l in ls)

        assert tid in ids()
        listing = [l for ls in admin.list_transactions().values() for l in ls if l.transactional_id == tid][0]
        assert listing.state.value == "Ongoing"
        assert tid in ids(state_filters=["Ongoing"])
        assert tid not in ids(state_filters=["CompleteCommit"])
        assert tid in ids(producer_id_filters=[listing.producer_id])
        assert tid not in ids(producer_id_filters=[listing.producer_id + 1000])
        assert tid not in ids(duration_filter_ms=3_600_000, state_filters=["Ongoing"])
        assert ids(transactional_id_pattern=tid.replace("-", "[-]")) == [tid]
        assert ids(transactional_id_pattern="kp") == []

        d = admin.describe_transactions([tid])[tid]
        assert d.state.value == "Ongoing"
        assert d.producer_id == listing.producer_id
        assert d.transaction_start_time_ms > 0
        assert d.topic_partitions == {TopicPartition(topic, 1)}
        with pytest.raises(TransactionalIdNotFoundError):
            admin.describe_transactions(["no-such-" + tid])

        tp = TopicPartition(topic, 1)
        producers = admin.describe_producers([tp])[tp].active_producers
        mine = [s for s in producers if s.producer_id == listing.producer_id]
        assert len(mine) == 1, producers
        assert mine[0].last_sequence == 2
        assert mine[0].current_transaction_start_offset == 0

        p.abort_transaction(30)
        d = admin.describe_transactions([tid])[tid]
        assert d.state.value == "CompleteAbort"
        assert d.topic_partitions == set()
        after = [s for s in admin.describe_producers([tp])[tp].active_producers if s.producer_id == listing.producer_id]
        assert after[0].current_transaction_start_offset in (None, -1), after
    finally:
        admin.close()


def test_kafka_python_success_answers_null_error_messages(bootstrap):
    """Kafka answers a successful CreateTopics, CreatePartitions and DeleteTopics
    with a null error_message, not "" (kafka-python hands the raw value back)."""
    from kafka.admin import KafkaAdminClient, NewPartitions

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    name = unique("kp-null")

    def results(resp, key):
        return resp[key] if isinstance(resp, dict) else getattr(resp, key)

    def field(item, key):
        return item[key] if isinstance(item, dict) else getattr(item, key)

    created = admin.create_topics({name: {"num_partitions": 1, "replication_factor": 1}})
    topics = results(created, "topics")
    assert [field(t, "name") for t in topics] == [name]
    assert field(topics[0], "error_code") == 0
    assert field(topics[0], "error_message") is None, topics[0]

    grown = admin.create_partitions({name: NewPartitions(total_count=2)})
    parts = results(grown, "results")
    assert field(parts[0], "error_code") == 0
    assert field(parts[0], "error_message") is None, parts[0]

    deleted = admin.delete_topics([name])
    responses = results(deleted, "topics")
    assert field(responses[0], "error_code") == 0
    assert field(responses[0], "error_message") is None, responses[0]
    admin.close()
