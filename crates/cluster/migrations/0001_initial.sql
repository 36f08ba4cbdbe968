-- Herald cluster schema, version 1. Applied by herald-cluster's migrator under
-- an advisory lock (see src/db.rs); never edit an applied migration, add one.

-- One row: the cluster's identity, made by the first broker that starts.
CREATE TABLE cluster (
    id          int PRIMARY KEY CHECK (id = 1),
    cluster_id  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Membership: a broker is live while its lease has not expired. `incarnation`
-- grows at every start, so a restarted broker takes its registration over at
-- once and its previous process (if still running) can tell it was replaced.
CREATE TABLE brokers (
    node_id        int PRIMARY KEY,
    host           text NOT NULL,
    port           int NOT NULL,
    rack           text,
    incarnation    bigint NOT NULL,
    lease_expires  timestamptz NOT NULL,
    renewed_at     timestamptz NOT NULL,
    started_at     timestamptz NOT NULL
);

CREATE TABLE topics (
    topic_id    uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    partitions  int NOT NULL CHECK (partitions > 0),
    configs     jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Hot rows (every commit updates them): a low fillfactor keeps updates HOT.
CREATE TABLE partitions (
    topic_id          uuid NOT NULL REFERENCES topics ON DELETE CASCADE,
    partition         int NOT NULL,
    log_start_offset  bigint NOT NULL DEFAULT 0,
    high_watermark    bigint NOT NULL DEFAULT 0,
    byte_size         bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (topic_id, partition)
) WITH (fillfactor = 50);

-- One row per uploaded WAL object that was committed. `results` holds the
-- per-append answers of the commit, so a commit retried after an ambiguous
-- error (connection lost around COMMIT) reads them back instead of applying
-- twice: `key` is unique.
CREATE TABLE objects (
    object_id     bigserial PRIMARY KEY,
    key           text NOT NULL UNIQUE,
    size          bigint NOT NULL,
    broker_id     int NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    state         text NOT NULL DEFAULT 'live' CHECK (state IN ('live', 'deleting')),
    delete_after  timestamptz,
    results       bytea NOT NULL
) WITH (autovacuum_vacuum_scale_factor = 0.02);

-- One row per committed append (one produce payload of one partition: one or
-- more record batches, contiguous in the object). FIFO: inserted at the head,
-- deleted at the tail by retention, so vacuum runs often.
CREATE TABLE batches (
    topic_id       uuid NOT NULL,
    partition      int NOT NULL,
    base_offset    bigint NOT NULL,
    last_offset    bigint NOT NULL,
    object_id      bigint NOT NULL REFERENCES objects,
    byte_offset    bigint NOT NULL,
    byte_size      int NOT NULL,
    max_timestamp  bigint NOT NULL,
    append_time    bigint NOT NULL,
    PRIMARY KEY (topic_id, partition, base_offset)
) WITH (autovacuum_vacuum_scale_factor = 0.02);
CREATE INDEX batches_by_last_offset ON batches (topic_id, partition, last_offset)
    INCLUDE (base_offset, object_id, byte_offset, byte_size);
CREATE INDEX batches_by_object ON batches (object_id);

-- Idempotent producers: the last five batches of each producer per partition
-- (Kafka's NUM_BATCHES_TO_RETAIN), enough to answer a retry with its offset.
CREATE TABLE producer_state (
    topic_id     uuid NOT NULL,
    partition    int NOT NULL,
    producer_id  bigint NOT NULL,
    row_id       bigserial,
    epoch        smallint NOT NULL,
    base_seq     int NOT NULL,
    last_seq     int NOT NULL,
    base_offset  bigint NOT NULL,
    PRIMARY KEY (topic_id, partition, producer_id, row_id)
);

-- Producer ids are handed out in blocks, never twice.
CREATE SEQUENCE producer_ids INCREMENT BY 1000 START WITH 1000;

-- Consumer groups. A group's coordinator owns it by holding the current
-- `owner_epoch`; every write of group state or offsets checks it, so a paused
-- former owner cannot overwrite its successor.
CREATE TABLE group_owners (
    group_id     text PRIMARY KEY,
    owner        int NOT NULL,
    owner_epoch  bigint NOT NULL
);

-- The group coordinator's records (committed offsets, group metadata) as key
-- and value, last write wins: the same records as the single node's
-- `__consumer_offsets` log (broker/src/group_coordinator/offset_store.rs).
CREATE TABLE group_records (
    group_id  text NOT NULL,
    key       bytea NOT NULL,
    value     bytea NOT NULL,
    PRIMARY KEY (group_id, key)
);
