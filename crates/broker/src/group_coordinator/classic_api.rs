//! The classic group protocol's requests: JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup (the state machine itself is `group.rs`).

use super::*;

impl GroupCoordinator {
    pub fn join(&self, group_id: &str, req: JoinRequest) -> Answer<JoinResult> {
        use ResponseError as E;
        let member_id = req.member_id.clone();
        if let Err(e) = self.check_group(group_id) {
            return Answer::Now(JoinResult::error(&member_id, e));
        }
        if req.session_timeout < self.cfg.session_timeout_min
            || req.session_timeout > self.cfg.session_timeout_max
        {
            return Answer::Now(JoinResult::error(&member_id, E::InvalidSessionTimeout));
        }
        if req.protocol_type.is_empty() || req.protocols.is_empty() {
            return Answer::Now(JoinResult::error(&member_id, E::InconsistentGroupProtocol));
        }
        let meta_bytes: usize = req.protocols.iter().map(|(n, m)| n.len() + m.len()).sum();
        if meta_bytes > self.cfg.member_metadata_bytes_max
            || req.protocols.len() > PROTOCOLS_PER_MEMBER_MAX
        {
            tracing::info!(
                group = group_id,
                bytes = meta_bytes,
                "JoinGroup rejected: member metadata too large"
            );
            return Answer::Now(JoinResult::error(&member_id, E::InvalidRequest));
        }
        let now = Instant::now();
        let mut st = lock(&self.state);
        let mut records = Vec::new();
        let answer = {
            let group = match st.groups.get_mut(group_id) {
                Some(g) => g,
                None => {
                    if !member_id.is_empty() {
                        return Answer::Now(JoinResult::error(&member_id, E::UnknownMemberId));
                    }
                    if st.groups.len() >= self.cfg.groups_max {
                        tracing::warn!(
                            group = group_id,
                            max = self.cfg.groups_max,
                            "new group refused: too many groups"
                        );
                        return Answer::Now(JoinResult::error(&member_id, E::GroupMaxSizeReached));
                    }
                    st.groups.entry(group_id.to_string()).or_insert(Group {
                        kind: Kind::Classic(ClassicGroup::new(group_id)),
                        offsets: BTreeMap::new(),
                    })
                }
            };
            if let Kind::Consumer(c) = &group.kind {
                if !c.members.is_empty() {
                    return Answer::Now(JoinResult::error(
                        &member_id,
                        E::InconsistentGroupProtocol,
                    ));
                }
                tracing::info!(
                    group = group_id,
                    "empty consumer group converted to a classic group"
                );
                // Its KIP-848 records go (members and targets went as they left).
                records.push(Record::ConsumerTargetMeta {
                    group: group_id.to_string(),
                    value: None,
                });
                group.kind = Kind::Classic(ClassicGroup::new(group_id));
            }
            let Kind::Classic(g) = &mut group.kind else {
                return Answer::Now(JoinResult::error(&member_id, E::UnknownServerError));
            };
            g.join(req, &self.cfg, now, &mut records)
        };
        st.persist(&records);
        answer
    }

    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
    ) -> Answer<SyncResult> {
        if let Err(e) = self.check_group(group_id) {
            return Answer::Now(SyncResult::error(e));
        }
        let now = Instant::now();
        let mut st = lock(&self.state);
        let mut records = Vec::new();
        let answer = match st.groups.get_mut(group_id).map(|g| &mut g.kind) {
            Some(Kind::Classic(g)) => g.sync(
                member_id,
                instance_id,
                generation,
                protocol_type,
                protocol_name,
                assignments,
                &self.cfg,
                now,
                &mut records,
            ),
            _ => Answer::Now(SyncResult::error(ResponseError::UnknownMemberId)),
        };
        st.persist(&records);
        answer
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> i16 {
        if let Err(e) = self.check_group(group_id) {
            return e.code();
        }
        let mut st = lock(&self.state);
        match st.groups.get_mut(group_id).map(|g| &mut g.kind) {
            Some(Kind::Classic(g)) => {
                g.heartbeat(member_id, instance_id, generation, Instant::now())
            }
            _ => ResponseError::UnknownMemberId.code(),
        }
    }

    /// LeaveGroup: per-member error codes, or a group-level error.
    pub fn leave(
        &self,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<i16>, i16> {
        if let Err(e) = self.check_group(group_id) {
            return Err(e.code());
        }
        let now = Instant::now();
        let mut st = lock(&self.state);
        let mut records = Vec::new();
        let result = match st.groups.get_mut(group_id).map(|g| &mut g.kind) {
            Some(Kind::Classic(g)) => Ok(members
                .iter()
                .map(|(m, i)| g.leave(m, i.as_deref(), now, &self.cfg, &mut records))
                .collect()),
            _ => Err(ResponseError::UnknownMemberId.code()),
        };
        st.persist(&records);
        result
    }
}
