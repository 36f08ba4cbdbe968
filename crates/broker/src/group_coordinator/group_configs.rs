//! Per-group dynamic configs (KIP-848 "group configs", resource type GROUP in
//! DescribeConfigs / IncrementalAlterConfigs): overrides of the broker's
//! `group.consumer.*` defaults for one consumer group.
//!
//! Kafka keeps them in the cluster metadata; Herald keeps them in one small JSON
//! file, `<data>/group-configs.json`, replaced atomically on every change
//! (changes are rare and the file is tiny, so a log would be overkill).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::fsutil::write_atomically;

use super::GroupConfig;

pub const FILE_NAME: &str = "group-configs.json";

/// `consumer.session.timeout.ms`: the session timeout of the group's KIP-848 members.
pub const CONSUMER_SESSION_TIMEOUT_MS: &str = "consumer.session.timeout.ms";
/// `consumer.heartbeat.interval.ms`: the heartbeat interval handed to its members.
pub const CONSUMER_HEARTBEAT_INTERVAL_MS: &str = "consumer.heartbeat.interval.ms";

/// Kafka's `group.consumer.{min,max}.session.timeout.ms` defaults.
const SESSION_TIMEOUT_MS_RANGE: (u64, u64) = (45_000, 60_000);
/// Kafka's `group.consumer.{min,max}.heartbeat.interval.ms` defaults.
const HEARTBEAT_INTERVAL_MS_RANGE: (u64, u64) = (5_000, 15_000);
/// Groups with overrides, at most (a bound on the file and on memory).
pub const GROUPS_WITH_CONFIGS_MAX: usize = 100_000;

/// One supported group config: name, broker synonym, documentation.
pub struct GroupConfigDef {
    pub name: &'static str,
    pub broker_synonym: &'static str,
    pub doc: &'static str,
}

pub const GROUP_CONFIGS: &[GroupConfigDef] = &[
    GroupConfigDef {
        name: CONSUMER_SESSION_TIMEOUT_MS,
        broker_synonym: "group.consumer.session.timeout.ms",
        doc: "The timeout to detect client failures when using the consumer group protocol.",
    },
    GroupConfigDef {
        name: CONSUMER_HEARTBEAT_INTERVAL_MS,
        broker_synonym: "group.consumer.heartbeat.interval.ms",
        doc: "The heartbeat interval given to the members.",
    },
];

/// The broker default of a group config.
pub fn broker_default(name: &str, cfg: &GroupConfig) -> Option<String> {
    match name {
        CONSUMER_SESSION_TIMEOUT_MS => Some(cfg.consumer_session_timeout.as_millis().to_string()),
        CONSUMER_HEARTBEAT_INTERVAL_MS => {
            Some(cfg.consumer_heartbeat_interval.as_millis().to_string())
        }
        _ => None,
    }
}

/// Checks one value. The accepted range is Kafka's default range, widened to
/// include the broker's own default (Herald's default may be set outside it).
fn validate_one(name: &str, value: &str, cfg: &GroupConfig) -> Result<u64, String> {
    let (range, default) = match name {
        CONSUMER_SESSION_TIMEOUT_MS => (SESSION_TIMEOUT_MS_RANGE, cfg.consumer_session_timeout),
        CONSUMER_HEARTBEAT_INTERVAL_MS => {
            (HEARTBEAT_INTERVAL_MS_RANGE, cfg.consumer_heartbeat_interval)
        }
        _ => return Err(format!("unknown group config '{name}'")),
    };
    let v: u64 = value
        .trim()
        .parse()
        .map_err(|_| format!("{name}={value} is not a non-negative integer"))?;
    let default_ms = default.as_millis() as u64;
    let (lo, hi) = (range.0.min(default_ms), range.1.max(default_ms));
    if !(lo..=hi).contains(&v) {
        return Err(format!("{name}={v} is outside [{lo}, {hi}]"));
    }
    Ok(v)
}

/// Validates a whole set of overrides for one group, including that the
/// heartbeat interval stays below the session timeout.
pub fn validate(overrides: &BTreeMap<String, String>, cfg: &GroupConfig) -> Result<(), String> {
    for (k, v) in overrides {
        validate_one(k, v, cfg)?;
    }
    let effective = apply(cfg, overrides);
    if effective.consumer_heartbeat_interval >= effective.consumer_session_timeout {
        return Err(format!(
            "{CONSUMER_HEARTBEAT_INTERVAL_MS} must be below {CONSUMER_SESSION_TIMEOUT_MS}"
        ));
    }
    Ok(())
}

/// The coordinator config with one group's overrides applied.
pub fn apply(cfg: &GroupConfig, overrides: &BTreeMap<String, String>) -> GroupConfig {
    let mut c = cfg.clone();
    let ms = |k: &str| overrides.get(k).and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(v) = ms(CONSUMER_SESSION_TIMEOUT_MS) {
        c.consumer_session_timeout = Duration::from_millis(v);
    }
    if let Some(v) = ms(CONSUMER_HEARTBEAT_INTERVAL_MS) {
        c.consumer_heartbeat_interval = Duration::from_millis(v);
    }
    c
}

/// Every group's overrides, as stored in `group-configs.json`.
pub struct GroupConfigStore {
    path: PathBuf,
    by_group: BTreeMap<String, BTreeMap<String, String>>,
}

impl GroupConfigStore {
    /// Loads the file; a missing file means no overrides. A damaged file is an
    /// error (start-up stops rather than silently dropping configs).
    pub fn open(data_dir: &Path) -> anyhow::Result<GroupConfigStore> {
        let path = data_dir.join(FILE_NAME);
        let by_group = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(anyhow::anyhow!("{}: {e}", path.display())),
        };
        Ok(GroupConfigStore { path, by_group })
    }

    pub fn get(&self, group: &str) -> Option<&BTreeMap<String, String>> {
        self.by_group.get(group)
    }

    /// Replaces one group's overrides (empty: removes them) and makes it durable.
    pub fn set(&mut self, group: &str, overrides: BTreeMap<String, String>) -> anyhow::Result<()> {
        if !self.by_group.contains_key(group) && self.by_group.len() >= GROUPS_WITH_CONFIGS_MAX {
            anyhow::bail!("at most {GROUPS_WITH_CONFIGS_MAX} groups may have configs");
        }
        let mut next = self.by_group.clone();
        if overrides.is_empty() {
            next.remove(group);
        } else {
            next.insert(group.to_string(), overrides);
        }
        let bytes = serde_json::to_vec_pretty(&next)?;
        write_atomically(&self.path, &bytes)?;
        self.by_group = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> GroupConfig {
        GroupConfig::from_broker(&crate::config::BrokerConfig::default())
    }

    #[test]
    fn ranges_and_interval_below_session() {
        let c = cfg();
        let one = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
        assert!(validate(&one(CONSUMER_SESSION_TIMEOUT_MS, "50000"), &c).is_ok());
        assert!(validate(&one(CONSUMER_SESSION_TIMEOUT_MS, "1000"), &c).is_err());
        assert!(validate(&one(CONSUMER_SESSION_TIMEOUT_MS, "x"), &c).is_err());
        assert!(validate(&one(CONSUMER_HEARTBEAT_INTERVAL_MS, "15000"), &c).is_ok());
        assert!(validate(&one(CONSUMER_HEARTBEAT_INTERVAL_MS, "16000"), &c).is_err());
        assert!(validate(&one("share.session.timeout.ms", "50000"), &c).is_err());
        let applied = apply(&c, &one(CONSUMER_SESSION_TIMEOUT_MS, "50000"));
        assert_eq!(applied.consumer_session_timeout, Duration::from_secs(50));
    }

    #[test]
    fn store_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = GroupConfigStore::open(dir.path()).unwrap();
        let o = BTreeMap::from([(CONSUMER_SESSION_TIMEOUT_MS.to_string(), "50000".to_string())]);
        s.set("g", o.clone()).unwrap();
        let s2 = GroupConfigStore::open(dir.path()).unwrap();
        assert_eq!(s2.get("g"), Some(&o));
        let mut s3 = s2;
        s3.set("g", BTreeMap::new()).unwrap();
        assert!(
            GroupConfigStore::open(dir.path())
                .unwrap()
                .get("g")
                .is_none()
        );
    }
}
