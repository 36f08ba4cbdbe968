//! The topic configs Herald understands: names, types, defaults taken from the
//! broker config, validation, and how they map onto the storage engine's
//! [`LogConfig`]. DescribeConfigs, CreateTopics and (Incremental)AlterConfigs
//! all go through this table.

use std::collections::BTreeMap;
use std::time::Duration;

use herald_log::LogConfig;
use herald_log::compression::Codec;

/// DescribeConfigs `config_type` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Short = 3,
    Int = 4,
    Long = 5,
    Double = 6,
    List = 7,
}

/// DescribeConfigs `config_source` values.
pub const SOURCE_DYNAMIC_TOPIC: i8 = 1;
pub const SOURCE_STATIC_BROKER: i8 = 4;
/// `DYNAMIC_DEFAULT_BROKER_CONFIG`: set at runtime for the cluster (Herald: the node).
pub const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;
pub const SOURCE_DEFAULT: i8 = 5;
/// `GROUP_CONFIG`: a group config override (KIP-848).
pub const SOURCE_GROUP: i8 = 8;

pub struct TopicConfigDef {
    pub name: &'static str,
    pub config_type: ConfigType,
    pub doc: &'static str,
    /// The broker-level synonym (`log.retention.ms` for `retention.ms`).
    pub broker_synonym: &'static str,
}

const fn def(
    name: &'static str,
    config_type: ConfigType,
    broker_synonym: &'static str,
    doc: &'static str,
) -> TopicConfigDef {
    TopicConfigDef {
        name,
        config_type,
        doc,
        broker_synonym,
    }
}

pub const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    def(
        "cleanup.policy",
        ConfigType::List,
        "log.cleanup.policy",
        "delete (retention by age and size), compact (keep the last record of every key), or both.",
    ),
    def(
        "compression.type",
        ConfigType::String,
        "compression.type",
        "producer (batches stored as the producer compressed them) or uncompressed, gzip, snappy, lz4, zstd (batches recompressed to it on append).",
    ),
    def(
        "delete.retention.ms",
        ConfigType::Long,
        "log.cleaner.delete.retention.ms",
        "How long delete tombstones are kept for compacted topics.",
    ),
    def(
        "file.delete.delay.ms",
        ConfigType::Long,
        "log.segment.delete.delay.ms",
        "Delay before a deleted segment file is removed.",
    ),
    def(
        "flush.messages",
        ConfigType::Long,
        "log.flush.interval.messages",
        "fsync after this many messages; 1 (Herald's default) answers acks=all only after fsync.",
    ),
    def(
        "flush.ms",
        ConfigType::Long,
        "log.flush.interval.ms",
        "fsync unflushed data at least this often.",
    ),
    def(
        "index.interval.bytes",
        ConfigType::Int,
        "log.index.interval.bytes",
        "Bytes of log between two sparse index entries.",
    ),
    def(
        "max.compaction.lag.ms",
        ConfigType::Long,
        "log.cleaner.max.compaction.lag.ms",
        "Longest time a record stays uncompacted: a dirty segment older than this is cleaned below the dirty ratio, and the active segment rolls by then.",
    ),
    def(
        "max.message.bytes",
        ConfigType::Int,
        "message.max.bytes",
        "Largest record batch accepted.",
    ),
    def(
        "message.timestamp.type",
        ConfigType::String,
        "log.message.timestamp.type",
        "CreateTime or LogAppendTime.",
    ),
    def(
        "min.cleanable.dirty.ratio",
        ConfigType::Double,
        "log.cleaner.min.cleanable.ratio",
        "Compact once dirty bytes are at least this fraction of the cleanable log.",
    ),
    def(
        "min.compaction.lag.ms",
        ConfigType::Long,
        "log.cleaner.min.compaction.lag.ms",
        "A record younger than this is not compacted.",
    ),
    def(
        "min.insync.replicas",
        ConfigType::Int,
        "min.insync.replicas",
        "Single node: always 1 in-sync replica.",
    ),
    def(
        "preallocate",
        ConfigType::Boolean,
        "log.preallocate",
        "Not used: segments grow as written.",
    ),
    def(
        "retention.bytes",
        ConfigType::Long,
        "log.retention.bytes",
        "Delete oldest segments while the partition is larger; -1 unbounded.",
    ),
    def(
        "retention.ms",
        ConfigType::Long,
        "log.retention.ms",
        "Delete segments whose newest record is older; -1 forever.",
    ),
    def(
        "segment.bytes",
        ConfigType::Int,
        "log.segment.bytes",
        "Roll the active segment at this size.",
    ),
    def(
        "segment.index.bytes",
        ConfigType::Int,
        "log.index.size.max.bytes",
        "Accepted for compatibility; Herald's indexes grow as needed.",
    ),
    def(
        "segment.jitter.ms",
        ConfigType::Long,
        "log.roll.jitter.ms",
        "Accepted for compatibility.",
    ),
    def(
        "segment.ms",
        ConfigType::Long,
        "log.roll.ms",
        "Roll the active segment once it is this old.",
    ),
    def(
        "unclean.leader.election.enable",
        ConfigType::Boolean,
        "unclean.leader.election.enable",
        "Single node: no effect.",
    ),
];

pub fn lookup(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

fn ms(d: Duration) -> String {
    d.as_millis().to_string()
}

/// The value a topic gets when it has no override: the broker's default.
pub fn broker_default(name: &str, base: &LogConfig) -> String {
    match name {
        "cleanup.policy" => match (base.compact, base.retention_age_max.is_some()) {
            (false, _) => "delete",
            (true, false) => "compact",
            (true, true) => "delete,compact",
        }
        .into(),
        "compression.type" => match base.compression {
            None => "producer",
            Some(Codec::None) => "uncompressed",
            Some(Codec::Gzip) => "gzip",
            Some(Codec::Snappy) => "snappy",
            Some(Codec::Lz4) => "lz4",
            Some(Codec::Zstd) => "zstd",
        }
        .into(),
        "delete.retention.ms" => ms(base.delete_retention),
        "file.delete.delay.ms" => "60000".into(),
        "flush.messages" => base.flush_messages.to_string(),
        "flush.ms" => base
            .flush_interval
            .map(ms)
            .unwrap_or_else(|| i64::MAX.to_string()),
        "index.interval.bytes" => base.index_interval_bytes.to_string(),
        "max.compaction.lag.ms" => base
            .max_compaction_lag
            .map(ms)
            .unwrap_or_else(|| i64::MAX.to_string()),
        "max.message.bytes" => base.message_bytes_max.to_string(),
        "message.timestamp.type" => if base.log_append_time {
            "LogAppendTime"
        } else {
            "CreateTime"
        }
        .into(),
        "min.cleanable.dirty.ratio" => base.min_cleanable_dirty_ratio.to_string(),
        "min.compaction.lag.ms" => ms(base.min_compaction_lag),
        "min.insync.replicas" => "1".into(),
        "preallocate" => "false".into(),
        "retention.bytes" => base
            .retention_bytes_max
            .map(|b| b.to_string())
            .unwrap_or_else(|| "-1".into()),
        "retention.ms" => base
            .retention_age_max
            .map(ms)
            .unwrap_or_else(|| "-1".into()),
        "segment.bytes" => base.segment_bytes_max.to_string(),
        "segment.index.bytes" => "10485760".into(),
        "segment.jitter.ms" => "0".into(),
        "segment.ms" => ms(base.segment_age_max),
        "unclean.leader.election.enable" => "false".into(),
        _ => String::new(),
    }
}

/// Checks one value; the error is the message returned to the client.
pub fn validate(name: &str, value: &str) -> Result<(), String> {
    let Some(d) = lookup(name) else {
        return Err(format!("unknown topic config '{name}'"));
    };
    let bad = || format!("invalid value '{value}' for {name}");
    match d.config_type {
        ConfigType::Long => {
            let v: i64 = value.parse().map_err(|_| bad())?;
            let min = if matches!(name, "retention.bytes" | "retention.ms") {
                -1
            } else {
                0
            };
            // Kafka: flush.messages and max.compaction.lag.ms are at least 1.
            if v < min || (matches!(name, "flush.messages" | "max.compaction.lag.ms") && v < 1) {
                return Err(bad());
            }
        }
        ConfigType::Int | ConfigType::Short => {
            let v: i32 = value.parse().map_err(|_| bad())?;
            let min = match name {
                "segment.bytes" => 14,
                "max.message.bytes" | "min.insync.replicas" => 1,
                _ => 0,
            };
            if v < min {
                return Err(bad());
            }
        }
        ConfigType::Double => {
            let v: f64 = value.parse().map_err(|_| bad())?;
            if !(0.0..=1.0).contains(&v) {
                return Err(bad());
            }
        }
        ConfigType::Boolean => {
            if value != "true" && value != "false" {
                return Err(bad());
            }
        }
        ConfigType::String | ConfigType::List => match name {
            "cleanup.policy" => {
                for p in value.split(',') {
                    if !matches!(p.trim(), "delete" | "compact") {
                        return Err(bad());
                    }
                }
            }
            "compression.type"
                if !matches!(
                    value,
                    "producer" | "uncompressed" | "gzip" | "snappy" | "lz4" | "zstd"
                ) =>
            {
                return Err(bad());
            }
            "message.timestamp.type" if value != "CreateTime" && value != "LogAppendTime" => {
                return Err(bad());
            }
            _ => {}
        },
    }
    Ok(())
}

/// Checks a topic's whole set of overrides: each value, then the pairs that
/// must agree (Kafka's `LogConfig.validateValues`).
pub fn validate_all(overrides: &BTreeMap<String, String>) -> Result<(), String> {
    for (k, v) in overrides {
        validate(k, v)?;
    }
    let get = |k: &str| overrides.get(k).and_then(|v| v.parse::<i64>().ok());
    if let (Some(min), Some(max)) = (get("min.compaction.lag.ms"), get("max.compaction.lag.ms"))
        && min > max
    {
        return Err(format!(
            "conflict topic config setting min.compaction.lag.ms ({min}) > max.compaction.lag.ms ({max})"
        ));
    }
    Ok(())
}

/// The effective value of every topic config: override or broker default.
pub fn effective(
    overrides: &BTreeMap<String, String>,
    base: &LogConfig,
) -> BTreeMap<&'static str, (String, bool)> {
    TOPIC_CONFIGS
        .iter()
        .map(|d| match overrides.get(d.name) {
            Some(v) => (d.name, (v.clone(), true)),
            None => (d.name, (broker_default(d.name, base), false)),
        })
        .collect()
}

/// Applies validated overrides onto the broker's log defaults.
pub fn log_config(overrides: &BTreeMap<String, String>, base: &LogConfig) -> LogConfig {
    let mut c = base.clone();
    let get_i64 = |k: &str| overrides.get(k).and_then(|v| v.parse::<i64>().ok());
    if let Some(v) = get_i64("segment.bytes") {
        c.segment_bytes_max = v.max(1) as u64;
    }
    if let Some(v) = get_i64("segment.ms") {
        c.segment_age_max = Duration::from_millis(v.max(0) as u64);
    }
    if let Some(v) = get_i64("retention.ms") {
        c.retention_age_max = (v >= 0).then(|| Duration::from_millis(v as u64));
    }
    if let Some(v) = get_i64("retention.bytes") {
        c.retention_bytes_max = (v >= 0).then_some(v as u64);
    }
    if let Some(v) = get_i64("index.interval.bytes") {
        c.index_interval_bytes = v.max(0) as u64;
    }
    if let Some(v) = get_i64("max.message.bytes") {
        c.message_bytes_max = v.max(1) as usize;
    }
    if let Some(v) = get_i64("flush.messages") {
        c.flush_messages = v.max(1) as u64;
    }
    if let Some(v) = get_i64("flush.ms") {
        c.flush_interval = (v < i64::MAX).then(|| Duration::from_millis(v.max(0) as u64));
    }
    if let Some(v) = overrides.get("message.timestamp.type") {
        c.log_append_time = v == "LogAppendTime";
    }
    if let Some(v) = overrides.get("compression.type") {
        c.compression = herald_log::compression::Codec::from_topic_config(v);
    }
    if let Some(p) = overrides.get("cleanup.policy") {
        c.compact = p.split(',').any(|x| x.trim() == "compact");
    }
    if let Some(v) = get_i64("delete.retention.ms") {
        c.delete_retention = Duration::from_millis(v.max(0) as u64);
    }
    if let Some(v) = get_i64("min.compaction.lag.ms") {
        c.min_compaction_lag = Duration::from_millis(v.max(0) as u64);
    }
    if let Some(v) = get_i64("max.compaction.lag.ms") {
        c.max_compaction_lag = (v < i64::MAX).then(|| Duration::from_millis(v.max(1) as u64));
    }
    if let Some(v) = overrides
        .get("min.cleanable.dirty.ratio")
        .and_then(|v| v.parse::<f64>().ok())
    {
        c.min_cleanable_dirty_ratio = v.clamp(0.0, 1.0);
    }
    // Kafka: retention by age or size applies only with the `delete` policy; a
    // `compact`-only topic keeps the last record of every key forever.
    if overrides
        .get("cleanup.policy")
        .is_some_and(|p| !p.contains("delete"))
    {
        c.retention_age_max = None;
        c.retention_bytes_max = None;
    }
    c
}
