//! Topics and their partitions, persisted under the data directory:
//!
//! ```text
//! <data>/topics/<name>/topic.json     {"name","id","partitions","configs"}
//! <data>/topics/<name>/<partition>/   one partition log (see docs/storage-format.md)
//! <data>/deleted/                     topics being removed
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use herald_log::{LogConfig, LogError};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::partition::Partition;
use crate::topic_config;

/// Kafka's limit on topic name length.
pub const TOPIC_NAME_BYTES_MAX: usize = 249;

#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("topic '{0}' already exists")]
    AlreadyExists(String),
    #[error("unknown topic '{0}'")]
    Unknown(String),
    #[error("invalid topic name: {0}")]
    InvalidName(String),
    #[error("invalid partition count: {0}")]
    InvalidPartitions(String),
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    #[error("storage error: {0}")]
    Storage(#[from] LogError),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Serialize, Deserialize)]
struct TopicMeta {
    name: String,
    id: Uuid,
    partitions: i32,
    #[serde(default)]
    configs: BTreeMap<String, String>,
}

#[derive(Debug)]
pub struct Topic {
    pub name: String,
    pub id: Uuid,
    dir: PathBuf,
    partitions: RwLock<Vec<Arc<Partition>>>,
    overrides: RwLock<BTreeMap<String, String>>,
}

impl Topic {
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions
            .read()
            .map(|p| p.clone())
            .unwrap_or_default()
    }
    pub fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        let parts = self.partitions.read().ok()?;
        usize::try_from(index)
            .ok()
            .and_then(|i| parts.get(i).cloned())
    }
    pub fn partition_count(&self) -> i32 {
        self.partitions.read().map(|p| p.len() as i32).unwrap_or(0)
    }
    pub fn overrides(&self) -> BTreeMap<String, String> {
        self.overrides.read().map(|o| o.clone()).unwrap_or_default()
    }
    /// Gives every partition's log new settings.
    fn apply_log_config(&self, config: &LogConfig) -> Result<(), LogError> {
        for p in self.partitions() {
            let c = config.clone();
            p.with_log(|l| {
                l.set_config(c);
                Ok(())
            })?;
        }
        Ok(())
    }

    pub fn is_internal(&self) -> bool {
        self.name.starts_with("__")
    }
    fn meta(&self) -> TopicMeta {
        TopicMeta {
            name: self.name.clone(),
            id: self.id,
            partitions: self.partition_count(),
            configs: self.overrides(),
        }
    }
}

pub struct TopicRegistry {
    root: PathBuf,
    data_dir: PathBuf,
    /// The broker's static log settings (flags, env, config file).
    static_log: LogConfig,
    /// Dynamic broker configs (`dynamic_config.rs`), by broker key.
    dynamic: RwLock<BTreeMap<String, String>>,
    partitions_per_topic_max: i32,
    by_name: RwLock<HashMap<String, Arc<Topic>>>,
    /// Serialises create/delete/alter so disk and memory change together.
    admin: Mutex<()>,
}

pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(TopicError::InvalidName(format!("'{name}' is not allowed")));
    }
    if name.len() > TOPIC_NAME_BYTES_MAX {
        return Err(TopicError::InvalidName(format!(
            "longer than {TOPIC_NAME_BYTES_MAX} characters"
        )));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(TopicError::InvalidName(format!(
            "'{name}' contains characters other than ASCII alphanumerics, '.', '_' and '-'"
        )));
    }
    Ok(())
}

impl TopicRegistry {
    /// Loads every topic under `<data_dir>/topics`, recovering partition logs.
    pub fn load(
        data_dir: &Path,
        base_log: LogConfig,
        partitions_per_topic_max: i32,
    ) -> Result<TopicRegistry, TopicError> {
        let root = data_dir.join("topics");
        std::fs::create_dir_all(&root)?;
        let deleted = data_dir.join("deleted");
        if deleted.exists() {
            std::fs::remove_dir_all(&deleted)?;
        }
        let dynamic = crate::dynamic_config::load(data_dir)?;
        let reg = TopicRegistry {
            root: root.clone(),
            data_dir: data_dir.to_path_buf(),
            static_log: base_log,
            dynamic: RwLock::new(dynamic),
            partitions_per_topic_max,
            by_name: RwLock::new(HashMap::new()),
            admin: Mutex::new(()),
        };
        for entry in std::fs::read_dir(&root)? {
            let dir = entry?.path();
            let meta_path = dir.join("topic.json");
            let Ok(bytes) = std::fs::read(&meta_path) else {
                tracing::warn!(dir = %dir.display(), "skipping directory without topic.json");
                continue;
            };
            let meta: TopicMeta = match serde_json::from_slice(&bytes) {
                Ok(m) => m,
                Err(e) => {
                    tracing::error!(path = %meta_path.display(), error = %e, "unreadable topic metadata; topic skipped");
                    continue;
                }
            };
            let topic = reg.open_topic(&dir, meta)?;
            reg.by_name
                .write()
                .map_err(|_| poisoned())?
                .insert(topic.name.clone(), topic);
        }
        Ok(reg)
    }

    fn open_topic(&self, dir: &Path, meta: TopicMeta) -> Result<Arc<Topic>, TopicError> {
        let config = self.topic_log_config(&meta.configs);
        let mut parts = Vec::with_capacity(meta.partitions.max(0) as usize);
        for i in 0..meta.partitions {
            parts.push(Partition::open(
                &dir.join(i.to_string()),
                &meta.name,
                i,
                config.clone(),
            )?);
        }
        Ok(Arc::new(Topic {
            name: meta.name,
            id: meta.id,
            dir: dir.to_path_buf(),
            partitions: RwLock::new(parts),
            overrides: RwLock::new(meta.configs),
        }))
    }

    /// What a topic without overrides gets (static settings plus dynamic defaults).
    pub fn base_log_config(&self) -> LogConfig {
        self.topic_log_config(&BTreeMap::new())
    }

    /// A topic's settings: its overrides over the dynamic defaults over the
    /// static settings (merged first, so e.g. a topic's `cleanup.policy=delete`
    /// under a `compact` default gets the static retention back).
    pub fn topic_log_config(&self, overrides: &BTreeMap<String, String>) -> LogConfig {
        let mut merged = crate::dynamic_config::topic_defaults(&self.dynamic_broker_configs());
        merged.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
        topic_config::log_config(&merged, &self.static_log)
    }

    /// The dynamic broker configs in force, by broker key.
    pub fn dynamic_broker_configs(&self) -> BTreeMap<String, String> {
        self.dynamic.read().map(|d| d.clone()).unwrap_or_default()
    }

    /// Replaces the dynamic broker configs (already validated), stores them and
    /// re-derives every topic's settings from the new defaults.
    pub fn set_dynamic_broker_configs(
        &self,
        configs: BTreeMap<String, String>,
    ) -> Result<(), TopicError> {
        if configs.len() > crate::dynamic_config::KEYS_MAX {
            return Err(TopicError::InvalidConfig(format!(
                "at most {} dynamic broker configs",
                crate::dynamic_config::KEYS_MAX
            )));
        }
        let _admin = self.admin.lock().map_err(|_| poisoned())?;
        crate::dynamic_config::store(&self.data_dir, &configs)?;
        *self.dynamic.write().map_err(|_| poisoned())? = configs;
        for topic in self.list() {
            topic.apply_log_config(&self.topic_log_config(&topic.overrides()))?;
        }
        tracing::info!("dynamic broker configs changed");
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.by_name.read().ok()?.get(name).cloned()
    }

    pub fn get_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.by_name
            .read()
            .ok()?
            .values()
            .find(|t| t.id == id)
            .cloned()
    }

    /// All topics, sorted by name.
    pub fn list(&self) -> Vec<Arc<Topic>> {
        let mut v: Vec<_> = self
            .by_name
            .read()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    pub fn validate_create(
        &self,
        name: &str,
        partitions: i32,
        configs: &BTreeMap<String, String>,
    ) -> Result<(), TopicError> {
        validate_topic_name(name)?;
        if partitions < 1 || partitions > self.partitions_per_topic_max {
            return Err(TopicError::InvalidPartitions(format!(
                "{partitions} is not in 1..={}",
                self.partitions_per_topic_max
            )));
        }
        for (k, v) in configs {
            topic_config::validate(k, v).map_err(TopicError::InvalidConfig)?;
        }
        if self.get(name).is_some() {
            return Err(TopicError::AlreadyExists(name.to_string()));
        }
        Ok(())
    }

    pub fn create(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, TopicError> {
        let _admin = self.admin.lock().map_err(|_| poisoned())?;
        self.validate_create(name, partitions, &configs)?;
        let dir = self.root.join(name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        let meta = TopicMeta {
            name: name.to_string(),
            id: Uuid::new_v4(),
            partitions,
            configs,
        };
        let topic = self.open_topic(&dir, meta)?;
        self.persist(&topic)?;
        self.by_name
            .write()
            .map_err(|_| poisoned())?
            .insert(name.to_string(), topic.clone());
        tracing::info!(topic = name, partitions, id = %topic.id, "created topic");
        Ok(topic)
    }

    fn persist(&self, topic: &Topic) -> Result<(), TopicError> {
        let bytes = serde_json::to_vec_pretty(&topic.meta()).map_err(std::io::Error::other)?;
        crate::fsutil::write_atomically(&topic.dir.join("topic.json"), &bytes)?;
        Ok(())
    }

    pub fn delete(&self, name: &str) -> Result<Arc<Topic>, TopicError> {
        let _admin = self.admin.lock().map_err(|_| poisoned())?;
        let topic = self
            .by_name
            .write()
            .map_err(|_| poisoned())?
            .remove(name)
            .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
        for p in topic.partitions() {
            if let Err(e) = p.close() {
                tracing::warn!(topic = name, partition = p.index, error = %e, "closing deleted partition");
            }
        }
        // Rename first (atomic), then remove: a crash in between leaves only `deleted/`.
        let trash = self.root.parent().unwrap_or(&self.root).join("deleted");
        std::fs::create_dir_all(&trash)?;
        let target = trash.join(format!("{}-{}", name, topic.id));
        std::fs::rename(&topic.dir, &target)?;
        std::fs::remove_dir_all(&target)?;
        tracing::info!(topic = name, "deleted topic");
        Ok(topic)
    }

    pub fn add_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let _admin = self.admin.lock().map_err(|_| poisoned())?;
        let topic = self
            .get(name)
            .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
        let current = topic.partition_count();
        if count <= current {
            return Err(TopicError::InvalidPartitions(format!(
                "topic has {current} partitions; the new count {count} must be larger"
            )));
        }
        if count > self.partitions_per_topic_max {
            return Err(TopicError::InvalidPartitions(format!(
                "{count} is above the limit of {}",
                self.partitions_per_topic_max
            )));
        }
        if validate_only {
            return Ok(());
        }
        let config = self.topic_log_config(&topic.overrides());
        let mut new = Vec::new();
        for i in current..count {
            new.push(Partition::open(
                &topic.dir.join(i.to_string()),
                name,
                i,
                config.clone(),
            )?);
        }
        topic
            .partitions
            .write()
            .map_err(|_| poisoned())?
            .extend(new);
        self.persist(&topic)?;
        tracing::info!(topic = name, from = current, to = count, "added partitions");
        Ok(())
    }

    /// Replaces the topic's overrides (already validated) and applies them to its logs.
    pub fn set_overrides(
        &self,
        name: &str,
        overrides: BTreeMap<String, String>,
    ) -> Result<(), TopicError> {
        let _admin = self.admin.lock().map_err(|_| poisoned())?;
        let topic = self
            .get(name)
            .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
        let config = self.topic_log_config(&overrides);
        *topic.overrides.write().map_err(|_| poisoned())? = overrides;
        topic.apply_log_config(&config)?;
        self.persist(&topic)?;
        Ok(())
    }

    /// Closes every partition cleanly (shutdown).
    pub fn close_all(&self) {
        for t in self.list() {
            for p in t.partitions() {
                if let Err(e) = p.close() {
                    tracing::error!(topic = %t.name, partition = p.index, error = %e, "closing partition");
                }
            }
        }
    }
}

fn poisoned() -> TopicError {
    TopicError::Io(std::io::Error::other("topic registry lock poisoned"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn topic_config(reg: &TopicRegistry, name: &str) -> LogConfig {
        let p = reg.get(name).unwrap().partition(0).unwrap();
        p.with_log(|l| Ok(l.config().clone())).unwrap()
    }

    #[tokio::test]
    async fn dynamic_defaults_reach_topics_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let base = LogConfig::default();
        {
            let reg = TopicRegistry::load(dir.path(), base.clone(), 10).unwrap();
            reg.create("plain", 1, BTreeMap::new()).unwrap();
            let pinned = BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]);
            reg.create("pinned", 1, pinned).unwrap();
            reg.set_dynamic_broker_configs(BTreeMap::from([
                ("log.retention.ms".to_string(), "60000".to_string()),
                (
                    "log.cleanup.policy".to_string(),
                    "delete,compact".to_string(),
                ),
            ]))
            .unwrap();
            let plain = topic_config(&reg, "plain");
            assert_eq!(plain.retention_age_max, Some(Duration::from_secs(60)));
            assert!(plain.compact);
            let pinned = topic_config(&reg, "pinned");
            assert_eq!(pinned.retention_age_max, Some(Duration::from_secs(1)));
            reg.close_all();
        }
        let reg = TopicRegistry::load(dir.path(), base, 10).unwrap();
        assert_eq!(
            topic_config(&reg, "plain").retention_age_max,
            Some(Duration::from_secs(60)),
            "the dynamic default is read back at start-up"
        );
        assert!(reg.base_log_config().compact);
        reg.set_dynamic_broker_configs(BTreeMap::new()).unwrap();
        let plain = topic_config(&reg, "plain");
        assert_eq!(
            plain.retention_age_max,
            LogConfig::default().retention_age_max
        );
        assert!(!plain.compact);
    }
}
