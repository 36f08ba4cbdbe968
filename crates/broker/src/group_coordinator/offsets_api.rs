//! Committed offsets: OffsetCommit, OffsetFetch, OffsetDelete, and the
//! offsets of deleted topics.

use super::*;

/// One partition of an OffsetCommit.
pub struct CommitPartition {
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

pub struct CommitRequest {
    pub group_id: String,
    pub generation_or_epoch: i32,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub topics: Vec<(String, Vec<CommitPartition>)>,
    pub version: i16,
}

#[derive(Debug, Clone)]
pub struct FetchedOffset {
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub error: i16,
}

impl GroupCoordinator {
    /// OffsetCommit: per topic, per partition error codes. The caller waits
    /// for durability (`wait_durable`) before answering.
    pub fn commit(
        &self,
        req: CommitRequest,
        topics: &TopicRegistry,
    ) -> Vec<(String, Vec<(i32, i16)>)> {
        use ResponseError as E;
        let all = |code: i16| -> PartitionErrors {
            req.topics
                .iter()
                .map(|(t, ps)| (t.clone(), ps.iter().map(|p| (p.partition, code)).collect()))
                .collect()
        };
        if let Err(e) = self.check_group(&req.group_id) {
            return all(e.code());
        }
        let mut st = lock(&self.state);
        let group_error = match st.groups.get(&req.group_id) {
            None => {
                if st.groups.len() >= self.cfg.groups_max {
                    tracing::warn!(group = %req.group_id, max = self.cfg.groups_max, "new group refused: too many groups");
                    Some(E::GroupMaxSizeReached)
                } else if req.generation_or_epoch < 0 {
                    None
                } else {
                    Some(E::IllegalGeneration)
                }
            }
            Some(g) => match &g.kind {
                Kind::Classic(c) => c.validate_commit(
                    &req.member_id,
                    req.instance_id.as_deref(),
                    req.generation_or_epoch,
                ),
                Kind::Consumer(c) => {
                    if req.generation_or_epoch < 0 && c.members.is_empty() {
                        None
                    } else if !c.members.contains_key(&req.member_id) {
                        Some(E::UnknownMemberId)
                    } else if req.version < 9 {
                        // KIP-848 members commit with OffsetCommit v9+.
                        Some(E::UnsupportedVersion)
                    } else {
                        c.validate_member(&req.member_id, req.generation_or_epoch)
                    }
                }
            },
        };
        if let Some(e) = group_error {
            return all(e.code());
        }
        let now_ms = crate::now_ms();
        let mut records = Vec::new();
        let mut results = Vec::with_capacity(req.topics.len());
        let mut accepted: Vec<(String, i32, OffsetValue)> = Vec::new();
        for (topic, parts) in &req.topics {
            let count = topics.get(topic).map(|t| t.partition_count());
            let mut pr = Vec::with_capacity(parts.len());
            for p in parts {
                let metadata = p.metadata.clone().unwrap_or_default();
                let code = if count.is_none_or(|c| p.partition < 0 || p.partition >= c) {
                    E::UnknownTopicOrPartition.code()
                } else if metadata.len() > self.cfg.offset_metadata_bytes_max {
                    E::OffsetMetadataTooLarge.code()
                } else {
                    let v = OffsetValue {
                        offset: p.offset,
                        leader_epoch: p.leader_epoch,
                        commit_timestamp_ms: now_ms,
                        metadata,
                    };
                    records.push(Record::Offset {
                        group: req.group_id.clone(),
                        topic: topic.clone(),
                        partition: p.partition,
                        value: Some(v.clone()),
                    });
                    accepted.push((topic.clone(), p.partition, v));
                    0
                };
                pr.push((p.partition, code));
            }
            results.push((topic.clone(), pr));
        }
        if records.is_empty() {
            return results;
        }
        if let Err(e) = st.store.append(&records) {
            tracing::error!(error = %e, "offset commit not persisted");
            // As Kafka: a storage failure of the offsets log is NOT_COORDINATOR
            // (retriable), other refusals keep their own code.
            let code = match e {
                LogError::Io(_) | LogError::StorageUnavailable => E::NotCoordinator.code(),
                other => crate::error::log_error_code(&other),
            };
            for (_, pr) in results.iter_mut() {
                for (_, c) in pr.iter_mut() {
                    if *c == 0 {
                        *c = code;
                    }
                }
            }
            return results;
        }
        let group = st
            .groups
            .entry(req.group_id.clone())
            .or_insert_with(|| Group {
                kind: Kind::Classic(ClassicGroup::new(&req.group_id)),
                offsets: BTreeMap::new(),
            });
        for (t, p, v) in accepted {
            group.offsets.entry(t).or_default().insert(p, v);
        }
        results
    }

    /// OffsetFetch for one group: group-level error, then per topic offsets.
    /// `topics` None: every committed offset of the group.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
        member: Option<(String, i32)>,
    ) -> (i16, Vec<(String, Vec<FetchedOffset>)>) {
        if let Err(e) = self.check_group(group_id)
            && e != ResponseError::InvalidGroupId
        {
            return (e.code(), Vec::new());
        }
        let st = lock(&self.state);
        let group = st.groups.get(group_id);
        if let Some((member_id, epoch)) = &member
            && let Some(Kind::Consumer(c)) = group.map(|g| &g.kind)
            && let Some(e) = c.validate_member(member_id, *epoch)
        {
            return (e.code(), Vec::new());
        }
        let missing = |p: i32| FetchedOffset {
            partition: p,
            offset: -1,
            leader_epoch: -1,
            metadata: String::new(),
            error: 0,
        };
        let lookup = |t: &str, p: i32| -> FetchedOffset {
            match group.and_then(|g| g.offsets.get(t)).and_then(|m| m.get(&p)) {
                Some(v) => FetchedOffset {
                    partition: p,
                    offset: v.offset,
                    leader_epoch: v.leader_epoch,
                    metadata: v.metadata.clone(),
                    error: 0,
                },
                None => missing(p),
            }
        };
        let out = match topics {
            Some(ts) => ts
                .into_iter()
                .map(|(t, ps)| {
                    let offs = ps.iter().map(|p| lookup(&t, *p)).collect();
                    (t, offs)
                })
                .collect(),
            None => group
                .map(|g| {
                    g.offsets
                        .iter()
                        .map(|(t, ps)| (t.clone(), ps.keys().map(|p| lookup(t, *p)).collect()))
                        .collect()
                })
                .unwrap_or_default(),
        };
        (0, out)
    }

    /// OffsetDelete: group-level error, or per-partition errors.
    pub fn delete_offsets(
        &self,
        group_id: &str,
        topics: &[(String, Vec<i32>)],
    ) -> Result<PartitionErrors, i16> {
        use ResponseError as E;
        if let Err(e) = self.check_group(group_id) {
            return Err(e.code());
        }
        let mut st = lock(&self.state);
        let Some(group) = st.groups.get_mut(group_id) else {
            return Err(E::GroupIdNotFound.code());
        };
        let subscribed: Option<std::collections::HashSet<String>> = match &group.kind {
            Kind::Classic(c) => {
                if c.is_empty() {
                    None
                } else if c.protocol_type.as_deref() == Some("consumer") {
                    c.subscribed_topics()
                } else {
                    return Err(E::NonEmptyGroup.code());
                }
            }
            Kind::Consumer(c) => {
                if c.members.is_empty() {
                    None
                } else {
                    Some(c.subscribed_topic_names().into_iter().collect())
                }
            }
        };
        let mut records = Vec::new();
        let mut out = Vec::new();
        for (t, ps) in topics {
            let busy = subscribed.as_ref().is_some_and(|s| s.contains(t));
            let mut pr = Vec::new();
            for p in ps {
                if busy {
                    pr.push((*p, E::GroupSubscribedToTopic.code()));
                    continue;
                }
                if let Some(m) = group.offsets.get_mut(t)
                    && m.remove(p).is_some()
                {
                    records.push(Record::Offset {
                        group: group_id.to_string(),
                        topic: t.clone(),
                        partition: *p,
                        value: None,
                    });
                }
                pr.push((*p, 0));
            }
            if group.offsets.get(t).is_some_and(|m| m.is_empty()) {
                group.offsets.remove(t);
            }
            out.push((t.clone(), pr));
        }
        st.persist(&records);
        Ok(out)
    }

    /// Drops every group's committed offsets of a deleted topic.
    pub fn delete_topic_offsets(&self, topic: &str) {
        let mut st = lock(&self.state);
        let mut records = Vec::new();
        for (id, g) in st.groups.iter_mut() {
            if let Some(parts) = g.offsets.remove(topic) {
                for p in parts.keys() {
                    records.push(Record::Offset {
                        group: id.clone(),
                        topic: topic.to_string(),
                        partition: *p,
                        value: None,
                    });
                }
            }
        }
        if !records.is_empty() {
            tracing::info!(
                topic,
                offsets = records.len(),
                "deleted committed offsets of a deleted topic"
            );
        }
        st.persist(&records);
    }
}

impl GroupCoordinator {
    /// TxnOffsetCommit's group check (KIP-447): a commit that names a member
    /// and generation must come from a current member; one without them
    /// (generation -1, an old client) is accepted as Kafka accepts it.
    pub fn validate_txn_commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation_or_epoch: i32,
    ) -> Result<(), ResponseError> {
        self.check_group(group_id)?;
        if generation_or_epoch < 0 && member_id.is_empty() {
            return Ok(());
        }
        let st = lock(&self.state);
        let Some(g) = st.groups.get(group_id) else {
            return Err(ResponseError::IllegalGeneration);
        };
        let e = match &g.kind {
            Kind::Classic(c) => c.validate_commit(member_id, instance_id, generation_or_epoch),
            Kind::Consumer(c) => c.validate_member(member_id, generation_or_epoch),
        };
        match e {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The offsets of a committed transaction become the group's committed
    /// offsets (the transaction coordinator decided; no member check now).
    /// The caller waits for durability (`wait_durable`).
    pub fn commit_transactional(
        &self,
        group_id: &str,
        offsets: Vec<(String, i32, OffsetValue)>,
    ) -> Result<(), LogError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let records: Vec<Record> = offsets
            .iter()
            .map(|(t, p, v)| Record::Offset {
                group: group_id.to_string(),
                topic: t.clone(),
                partition: *p,
                value: Some(v.clone()),
            })
            .collect();
        let mut st = lock(&self.state);
        st.store.append(&records)?;
        let group = st
            .groups
            .entry(group_id.to_string())
            .or_insert_with(|| Group {
                kind: Kind::Classic(ClassicGroup::new(group_id)),
                offsets: BTreeMap::new(),
            });
        for (t, p, v) in offsets {
            group.offsets.entry(t).or_default().insert(p, v);
        }
        Ok(())
    }
}
