//! Dynamic broker configs: what `kafka-configs.sh --entity-type brokers --alter`
//! (AlterConfigs / IncrementalAlterConfigs on a BROKER resource) changes at
//! runtime. Herald is one node, so a per-broker change and a cluster default
//! (`--entity-default`, empty resource name) are the same thing.
//!
//! The `log.*` keys are the defaults of topic configs: changing one re-derives
//! every topic's settings at once (topic overrides still win). A few keys tune
//! machinery Herald does not have (thread pools, Kerberos); Kafka accepts them,
//! so Herald stores and describes them, and they change nothing.
//!
//! Stored in `<data>/broker-configs.json` (`{"key": "value"}`), replaced
//! atomically; read at start-up before topics are opened.

use std::collections::BTreeMap;
use std::path::Path;

use crate::topic_config;

pub const FILE_NAME: &str = "broker-configs.json";

/// Broker key → the topic config it is the default of.
pub const TOPIC_DEFAULTS: &[(&str, &str)] = &[
    ("compression.type", "compression.type"),
    ("log.cleaner.delete.retention.ms", "delete.retention.ms"),
    (
        "log.cleaner.min.cleanable.ratio",
        "min.cleanable.dirty.ratio",
    ),
    ("log.cleaner.min.compaction.lag.ms", "min.compaction.lag.ms"),
    ("log.cleaner.max.compaction.lag.ms", "max.compaction.lag.ms"),
    ("log.cleanup.policy", "cleanup.policy"),
    ("log.flush.interval.messages", "flush.messages"),
    ("log.flush.interval.ms", "flush.ms"),
    ("log.index.interval.bytes", "index.interval.bytes"),
    ("log.message.timestamp.type", "message.timestamp.type"),
    ("log.retention.bytes", "retention.bytes"),
    ("log.retention.ms", "retention.ms"),
    ("log.roll.ms", "segment.ms"),
    ("log.segment.bytes", "segment.bytes"),
    ("message.max.bytes", "max.message.bytes"),
];

/// Dynamic in Kafka, without an equivalent in Herald: accepted and stored,
/// no effect. (key, why it changes nothing)
pub const INERT: &[(&str, &str)] = &[
    (
        "background.threads",
        "Herald runs background work on its tokio runtime",
    ),
    (
        "log.cleaner.threads",
        "Herald's cleaner is not a thread pool",
    ),
    ("num.io.threads", "requests run on the tokio runtime"),
    (
        "num.network.threads",
        "connections run on the tokio runtime",
    ),
    (
        "num.recovery.threads.per.data.dir",
        "recovery runs at start-up only",
    ),
    ("num.replica.fetchers", "one node: no replication"),
    (
        "sasl.kerberos.min.time.before.relogin",
        "Herald has no SASL/Kerberos",
    ),
];

/// Most keys stored (a bound on the file).
pub const KEYS_MAX: usize = 256;

pub fn topic_key(broker_key: &str) -> Option<&'static str> {
    TOPIC_DEFAULTS
        .iter()
        .find(|(b, _)| *b == broker_key)
        .map(|(_, t)| *t)
}

pub fn is_dynamic(broker_key: &str) -> bool {
    topic_key(broker_key).is_some() || INERT.iter().any(|(k, _)| *k == broker_key)
}

/// Checks one key and value; the error is the message returned to the client.
pub fn validate(key: &str, value: &str) -> Result<(), String> {
    if let Some(t) = topic_key(key) {
        return topic_config::validate(t, value).map_err(|m| m.replace(t, key));
    }
    if INERT.iter().any(|(k, _)| *k == key) {
        return match value.trim().parse::<i64>() {
            Ok(v) if v >= 1 => Ok(()),
            _ => Err(format!("invalid value '{value}' for {key}")),
        };
    }
    Err(format!(
        "'{key}' cannot be changed at runtime in Herald (set it by flag, env or config file)"
    ))
}

/// The topic-config defaults the dynamic broker configs set.
pub fn topic_defaults(dynamic: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    dynamic
        .iter()
        .filter_map(|(k, v)| topic_key(k).map(|t| (t.to_string(), v.clone())))
        .collect()
}

pub fn load(data_dir: &Path) -> std::io::Result<BTreeMap<String, String>> {
    let path = data_dir.join(FILE_NAME);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(e),
    }
}

pub fn store(data_dir: &Path, configs: &BTreeMap<String, String>) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(configs).map_err(std::io::Error::other)?;
    crate::fsutil::write_atomically(&data_dir.join(FILE_NAME), &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_maps_to_topic_rules() {
        assert!(validate("log.retention.ms", "60000").is_ok());
        assert!(validate("log.retention.ms", "-1").is_ok());
        assert!(validate("log.retention.ms", "soon").is_err());
        assert!(validate("log.cleanup.policy", "delete,compact").is_ok());
        assert!(validate("log.cleanup.policy", "shred").is_err());
        assert!(validate("background.threads", "9").is_ok());
        assert!(validate("background.threads", "0").is_err());
        assert!(validate("listeners", "PLAINTEXT://:1").is_err());
        let d = BTreeMap::from([
            ("log.retention.ms".to_string(), "1".to_string()),
            ("background.threads".to_string(), "9".to_string()),
        ]);
        assert_eq!(
            topic_defaults(&d),
            BTreeMap::from([("retention.ms".to_string(), "1".to_string())])
        );
    }
}
