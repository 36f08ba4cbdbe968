//! The topic catalog: every topic and its partitions, in memory, for both
//! storage engines. Changes go to the engine first (`storage::Engine`), then to
//! memory; in cluster mode `reconcile` applies changes other brokers made.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use herald_log::{LogConfig, LogError};
use uuid::Uuid;

use kafka_protocol::ResponseError;

use crate::internal_topics::{self, InternalView};
use crate::storage::{Engine, PartitionStorage, TopicMeta};
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
    /// The engine does not support this (yet): Kafka's INVALID_CONFIG or
    /// UNSUPPORTED_VERSION, with the reason.
    #[error("{0}")]
    Unsupported(String),
    #[error("storage error: {0}")]
    Storage(#[from] LogError),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug)]
pub struct Topic {
    pub name: String,
    pub id: Uuid,
    partitions: RwLock<Vec<Arc<dyn PartitionStorage>>>,
    overrides: RwLock<BTreeMap<String, String>>,
    /// One of Kafka's internal topics, a view of a coordinator's log
    /// (`internal_topics.rs`): read-only, never stored as a user topic.
    internal: bool,
}

impl Topic {
    pub fn partitions(&self) -> Vec<Arc<dyn PartitionStorage>> {
        self.partitions
            .read()
            .map(|p| p.clone())
            .unwrap_or_default()
    }
    pub fn partition(&self, index: i32) -> Option<Arc<dyn PartitionStorage>> {
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
    /// Gives every partition new settings.
    fn apply_log_config(&self, config: &LogConfig) -> Result<(), LogError> {
        for p in self.partitions() {
            p.set_config(config.clone())?;
        }
        Ok(())
    }

    /// Kafka's internal topics only (`__consumer_offsets`,
    /// `__transaction_state`); other names starting with "__" are user topics.
    pub fn is_internal(&self) -> bool {
        self.internal
    }
    pub fn meta(&self) -> TopicMeta {
        TopicMeta {
            name: self.name.clone(),
            id: self.id,
            partitions: self.partition_count(),
            configs: self.overrides(),
        }
    }
    fn close(&self) {
        for p in self.partitions() {
            if let Err(e) = p.close() {
                tracing::warn!(topic = %self.name, partition = p.index(), error = %e, "closing partition");
            }
        }
    }
}

pub struct TopicRegistry {
    engine: Arc<dyn Engine>,
    data_dir: PathBuf,
    /// The broker's static log settings (flags, env, config file).
    static_log: LogConfig,
    /// Dynamic broker configs (`dynamic_config.rs`), by broker key.
    dynamic: RwLock<BTreeMap<String, String>>,
    partitions_per_topic_max: i32,
    by_name: RwLock<HashMap<String, Arc<Topic>>>,
    /// Serialises create/delete/alter so storage and memory change together.
    admin: tokio::sync::Mutex<()>,
    /// When the last reload from the engine began (under `admin`): it saw
    /// every change committed before then.
    refreshed_at: std::sync::Mutex<Option<std::time::Instant>>,
}

/// Least time between two catalog reloads caused by lookups of unknown topics.
const MISS_REFRESH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(20);

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
    /// The local engine's catalog: loads every topic under `<data_dir>/topics`,
    /// recovering partition logs.
    pub fn load(
        data_dir: &Path,
        base_log: LogConfig,
        partitions_per_topic_max: i32,
    ) -> Result<TopicRegistry, TopicError> {
        let engine = Arc::new(crate::storage::local::LocalEngine::open(data_dir)?);
        let metas = engine.stored_topics()?;
        let reg = Self::empty(engine, data_dir, base_log, partitions_per_topic_max)?;
        reg.reconcile(metas);
        Ok(reg)
    }

    /// A catalog over any engine, holding no topics yet (see `reconcile`).
    pub fn empty(
        engine: Arc<dyn Engine>,
        data_dir: &Path,
        base_log: LogConfig,
        partitions_per_topic_max: i32,
    ) -> Result<TopicRegistry, TopicError> {
        let dynamic = crate::dynamic_config::load(data_dir)?;
        Ok(TopicRegistry {
            engine,
            data_dir: data_dir.to_path_buf(),
            static_log: base_log,
            dynamic: RwLock::new(dynamic),
            partitions_per_topic_max,
            by_name: RwLock::new(HashMap::new()),
            admin: tokio::sync::Mutex::new(()),
            refreshed_at: std::sync::Mutex::new(None),
        })
    }

    pub fn engine(&self) -> &Arc<dyn Engine> {
        &self.engine
    }

    fn open_partitions(
        &self,
        meta: &TopicMeta,
        from: i32,
    ) -> Result<Vec<Arc<dyn PartitionStorage>>, TopicError> {
        let config = self.topic_log_config(&meta.configs);
        let mut parts = Vec::with_capacity((meta.partitions - from).max(0) as usize);
        for i in from..meta.partitions {
            match self.engine.open_partition(meta, i, config.clone()) {
                Ok(p) => parts.push(p),
                Err(e) => {
                    // A full or failing disk: release what was opened (their
                    // flushers stop) before answering with the error.
                    for p in &parts {
                        let _ = p.close();
                    }
                    return Err(e);
                }
            }
        }
        Ok(parts)
    }

    /// Makes memory match the stored topics: opens new topics and partitions,
    /// applies changed configs, closes topics that are gone. A topic that
    /// cannot be opened is logged and skipped.
    pub fn reconcile(&self, stored: Vec<TopicMeta>) {
        let mut seen = std::collections::HashSet::new();
        for meta in stored {
            // Stored metadata is read back from disk or a database: a name or
            // partition count that CreateTopics would refuse is not trusted
            // (a count of 2^31 would be allocated and opened as directories).
            if let Err(e) = self.check_stored(&meta) {
                tracing::error!(topic = %meta.name, error = %e, "invalid stored topic metadata; topic skipped");
                continue;
            }
            if internal_topics::is_internal_name(&meta.name) {
                // An older Herald auto-created an ordinary topic of this
                // name on a Metadata request. Kafka's internal topic takes the
                // name now; the old topic's files stay where they are.
                tracing::warn!(
                    topic = %meta.name,
                    "a user topic with the name of Kafka's internal topic is stored (an older Herald auto-created it); it is hidden, its files are left in place (remove <data>/topics/{} to drop them)",
                    meta.name
                );
                continue;
            }
            seen.insert(meta.name.clone());
            let current = self.get(&meta.name);
            match current {
                Some(t) if t.id == meta.id => {
                    let have = t.partition_count();
                    if meta.partitions > have {
                        match self.open_partitions(&meta, have) {
                            Ok(new) => {
                                if let Ok(mut p) = t.partitions.write() {
                                    p.extend(new);
                                }
                            }
                            Err(e) => {
                                tracing::error!(topic = %meta.name, error = %e, "opening new partitions")
                            }
                        }
                    }
                    if t.overrides() != meta.configs {
                        let config = self.topic_log_config(&meta.configs);
                        if let Ok(mut o) = t.overrides.write() {
                            *o = meta.configs.clone();
                        }
                        if let Err(e) = t.apply_log_config(&config) {
                            tracing::error!(topic = %meta.name, error = %e, "applying topic configs");
                        }
                    }
                }
                other => {
                    if let Some(old) = other {
                        old.close();
                    }
                    match self.open_partitions(&meta, 0) {
                        Ok(parts) => {
                            let topic = Arc::new(Topic {
                                name: meta.name.clone(),
                                id: meta.id,
                                partitions: RwLock::new(parts),
                                overrides: RwLock::new(meta.configs),
                                internal: false,
                            });
                            if let Ok(mut m) = self.by_name.write() {
                                m.insert(meta.name, topic);
                            }
                        }
                        Err(e) => {
                            tracing::error!(topic = %meta.name, error = %e, "cannot open topic; skipped")
                        }
                    }
                }
            }
        }
        let gone: Vec<Arc<Topic>> = match self.by_name.write() {
            Ok(mut m) => {
                let names: Vec<String> = m
                    .iter()
                    .filter(|(n, t)| !t.internal && !seen.contains(*n))
                    .map(|(n, _)| n.clone())
                    .collect();
                names.iter().filter_map(|n| m.remove(n)).collect()
            }
            Err(_) => Vec::new(),
        };
        for t in gone {
            t.close();
            tracing::info!(topic = %t.name, "topic removed by another broker");
        }
    }

    /// Whether stored metadata is what `create` could have written.
    fn check_stored(&self, meta: &TopicMeta) -> Result<(), TopicError> {
        validate_topic_name(&meta.name)?;
        if meta.partitions < 1 || meta.partitions > self.partitions_per_topic_max {
            return Err(TopicError::InvalidPartitions(format!(
                "{} partitions stored, outside 1..={}",
                meta.partitions, self.partitions_per_topic_max
            )));
        }
        Ok(())
    }

    /// Reloads the stored topics and reconciles (cluster mode: after a change
    /// notification from another broker).
    pub async fn refresh(&self) -> Result<(), TopicError> {
        let _admin = self.admin.lock().await;
        self.reload_locked().await
    }

    /// Reloads under the `admin` lock, noting when the reload began.
    async fn reload_locked(&self) -> Result<(), TopicError> {
        let began = std::time::Instant::now();
        let stored = self.engine.load_topics().await?;
        self.reconcile(stored);
        if let Ok(mut t) = self.refreshed_at.lock() {
            *t = Some(began);
        }
        Ok(())
    }

    fn reload_began(&self) -> Option<std::time::Instant> {
        self.refreshed_at.lock().ok().and_then(|t| *t)
    }

    /// Reloads the catalog unless the engine is the local one (no other
    /// broker changes it). The answer comes from a reload that began after
    /// the miss, so a topic created elsewhere just before is found; misses
    /// reload at most once per `MISS_REFRESH_INTERVAL` (a miss waits out the
    /// rest of it) and concurrent misses share one reload.
    async fn refresh_if_stale(&self, why: &'static str) {
        if self.engine.kind() == "local" {
            return;
        }
        let missed = std::time::Instant::now();
        if let Some(last) = self.reload_began() {
            let next = last + MISS_REFRESH_INTERVAL;
            if next > missed {
                tokio::time::sleep(next - missed).await;
            }
        }
        let _admin = self.admin.lock().await;
        // A reload that began after the miss has completed (it held the lock).
        if self.reload_began().is_some_and(|t| t >= missed) {
            return;
        }
        if let Err(e) = self.reload_locked().await {
            tracing::warn!(error = %e, why, "reloading topics failed");
        }
    }

    /// `list`, after a reload if the catalog may be stale: a client that lists
    /// topics right after creating one through another broker sees it.
    pub async fn list_fresh(&self) -> Vec<Arc<Topic>> {
        self.refresh_if_stale("listing").await;
        self.list()
    }

    /// `get`, but a topic another broker created an instant ago (its change
    /// notification not applied yet) is loaded first: a client that creates a
    /// topic on one broker and asks another at once finds it.
    pub async fn get_fresh(&self, name: &str) -> Option<Arc<Topic>> {
        if let Some(t) = self.get(name) {
            return Some(t);
        }
        self.refresh_if_stale("unknown topic").await;
        self.get(name)
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
    pub async fn set_dynamic_broker_configs(
        &self,
        configs: BTreeMap<String, String>,
    ) -> Result<(), TopicError> {
        if configs.len() > crate::dynamic_config::KEYS_MAX {
            return Err(TopicError::InvalidConfig(format!(
                "at most {} dynamic broker configs",
                crate::dynamic_config::KEYS_MAX
            )));
        }
        let _admin = self.admin.lock().await;
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
        topic_config::validate_all(configs).map_err(TopicError::InvalidConfig)?;
        // Kafka: the internal topics exist, so TOPIC_ALREADY_EXISTS. Where
        // they are not served (cluster mode) the names stay reserved.
        if internal_topics::is_internal_name(name) && self.get(name).is_none() {
            tracing::info!(
                topic = name,
                "refused to create a topic with the name of Kafka's internal topic"
            );
            return Err(coded(
                ResponseError::InvalidTopicException,
                format!("{name} is the name of an internal topic, not served by this engine"),
            ));
        }
        if self.get(name).is_some() {
            return Err(TopicError::AlreadyExists(name.to_string()));
        }
        Ok(())
    }

    pub async fn create(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, TopicError> {
        let _admin = self.admin.lock().await;
        self.validate_create(name, partitions, &configs)?;
        let meta = TopicMeta {
            name: name.to_string(),
            id: Uuid::new_v4(),
            partitions,
            configs,
        };
        self.engine.create_topic(meta.clone()).await?;
        let parts = match self.open_partitions(&meta, 0) {
            Ok(parts) => parts,
            Err(e) => {
                // Stored but not openable (disk full): remove it again, so it
                // does not appear half-made after a restart.
                tracing::warn!(topic = name, error = %e, "topic not created: its partitions could not be opened");
                if let Err(undo) = self.engine.delete_topic(meta).await {
                    tracing::error!(topic = name, error = %undo, "could not remove the topic again");
                }
                return Err(e);
            }
        };
        let topic = Arc::new(Topic {
            name: meta.name.clone(),
            id: meta.id,
            partitions: RwLock::new(parts),
            overrides: RwLock::new(meta.configs),
            internal: false,
        });
        self.by_name
            .write()
            .map_err(|_| poisoned())?
            .insert(name.to_string(), topic.clone());
        tracing::info!(topic = name, partitions, id = %topic.id, "created topic");
        Ok(topic)
    }

    pub async fn delete(&self, name: &str) -> Result<Arc<Topic>, TopicError> {
        let _admin = self.admin.lock().await;
        if self.get(name).is_some_and(|t| t.internal) {
            tracing::info!(topic = name, "refused to delete an internal topic");
            return Err(coded(
                ResponseError::TopicDeletionDisabled,
                format!("{name} is an internal topic and cannot be deleted"),
            ));
        }
        let topic = self
            .by_name
            .write()
            .map_err(|_| poisoned())?
            .remove(name)
            .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
        topic.close();
        self.engine.delete_topic(topic.meta()).await?;
        tracing::info!(topic = name, "deleted topic");
        Ok(topic)
    }

    pub async fn add_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let _admin = self.admin.lock().await;
        let topic = self
            .get(name)
            .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
        let current = topic.partition_count();
        if topic.internal {
            return Err(TopicError::InvalidPartitions(format!(
                "{name} is an internal topic with a fixed partition count ({current})"
            )));
        }
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
        let mut meta = topic.meta();
        meta.partitions = count;
        self.engine.update_topic(meta.clone()).await?;
        let new = self.open_partitions(&meta, current)?;
        topic
            .partitions
            .write()
            .map_err(|_| poisoned())?
            .extend(new);
        tracing::info!(topic = name, from = current, to = count, "added partitions");
        Ok(())
    }

    /// Replaces the topic's overrides (already validated) and applies them to its partitions.
    pub async fn set_overrides(
        &self,
        name: &str,
        overrides: BTreeMap<String, String>,
    ) -> Result<(), TopicError> {
        let _admin = self.admin.lock().await;
        let topic = self
            .get(name)
            .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
        if topic.internal {
            return Err(TopicError::InvalidConfig(format!(
                "{name} is an internal topic: its coordinator owns its settings"
            )));
        }
        let mut meta = topic.meta();
        meta.configs = overrides.clone();
        self.engine.update_topic(meta).await?;
        let config = self.topic_log_config(&overrides);
        *topic.overrides.write().map_err(|_| poisoned())? = overrides;
        topic.apply_log_config(&config)?;
        Ok(())
    }

    /// Serves a coordinator's log as Kafka's internal topic of that name
    /// (single-node engine). A user topic of the name loaded from the data
    /// directory was already skipped (see `reconcile`).
    pub fn register_internal(&self, view: Arc<InternalView>) {
        let name = view.name();
        let id = match name {
            // Fixed ids: the topics are the same across restarts.
            internal_topics::CONSUMER_OFFSETS => {
                Uuid::from_u128(0x6865_7261_6c64_0000_0000_0000_0000_0001)
            }
            _ => Uuid::from_u128(0x6865_7261_6c64_0000_0000_0000_0000_0002),
        };
        let topic = Arc::new(Topic {
            name: name.to_string(),
            id,
            partitions: RwLock::new(vec![view as Arc<dyn PartitionStorage>]),
            overrides: RwLock::new(BTreeMap::new()),
            internal: true,
        });
        if let Ok(mut m) = self.by_name.write()
            && let Some(old) = m.insert(name.to_string(), topic)
            && !old.internal
        {
            old.close();
        }
    }

    /// Closes every partition cleanly (shutdown).
    pub fn close_all(&self) {
        for t in self.list() {
            t.close();
        }
    }
}

/// An error with its own Kafka code.
fn coded(code: ResponseError, message: String) -> TopicError {
    TopicError::Storage(LogError::Coded {
        code: code.code(),
        message,
    })
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
        p.as_local()
            .unwrap()
            .with_log(|l| Ok(l.config().clone()))
            .unwrap()
    }

    /// Found by the `topic_metadata` fuzz target
    /// (fuzz/artifacts/topic_metadata/crash-7ad4bc5c...): a stored
    /// partition count of ~1.8e9 was preallocated and opened as directories.
    #[tokio::test]
    async fn stored_metadata_that_create_would_refuse_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, json: serde_json::Value| {
            let d = dir.path().join("topics").join(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("topic.json"), json.to_string()).unwrap();
        };
        let id = Uuid::from_u128(7);
        write(
            "huge",
            serde_json::json!({"name": "huge", "id": id, "partitions": 1_853_189_166}),
        );
        write(
            "none",
            serde_json::json!({"name": "none", "id": id, "partitions": 0}),
        );
        write(
            "dots",
            serde_json::json!({"name": "..", "id": id, "partitions": 1}),
        );
        write(
            "other",
            serde_json::json!({"name": "ok", "id": id, "partitions": 1}),
        );
        write(
            "ok",
            serde_json::json!({"name": "ok", "id": id, "partitions": 2}),
        );
        let reg = TopicRegistry::load(dir.path(), LogConfig::default(), 10).unwrap();
        let names: Vec<String> = reg.list().iter().map(|t| t.name.clone()).collect();
        assert_eq!(names, vec!["ok".to_string()]);
        assert_eq!(reg.get("ok").unwrap().partition_count(), 2);
        reg.close_all();
    }

    #[tokio::test]
    async fn dynamic_defaults_reach_topics_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let base = LogConfig::default();
        {
            let reg = TopicRegistry::load(dir.path(), base.clone(), 10).unwrap();
            reg.create("plain", 1, BTreeMap::new()).await.unwrap();
            let pinned = BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]);
            reg.create("pinned", 1, pinned).await.unwrap();
            reg.set_dynamic_broker_configs(BTreeMap::from([
                ("log.retention.ms".to_string(), "60000".to_string()),
                (
                    "log.cleanup.policy".to_string(),
                    "delete,compact".to_string(),
                ),
            ]))
            .await
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
        reg.set_dynamic_broker_configs(BTreeMap::new())
            .await
            .unwrap();
        let plain = topic_config(&reg, "plain");
        assert_eq!(
            plain.retention_age_max,
            LogConfig::default().retention_age_max
        );
        assert!(!plain.compact);
    }
}
