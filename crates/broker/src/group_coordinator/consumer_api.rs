//! KIP-848 consumer groups' requests: ConsumerGroupHeartbeat and
//! ConsumerGroupDescribe (the state machine itself is `consumer.rs`).

use super::*;

/// A KIP-848 member as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone, Default)]
pub struct DescribedConsumerMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    /// (topic id, topic name, partitions)
    pub assignment: Vec<(uuid::Uuid, String, Vec<i32>)>,
    pub target_assignment: Vec<(uuid::Uuid, String, Vec<i32>)>,
}

#[derive(Debug, Clone, Default)]
pub struct DescribedConsumerGroup {
    pub error: i16,
    pub error_message: Option<String>,
    pub group_id: String,
    pub state: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub members: Vec<DescribedConsumerMember>,
}

impl GroupCoordinator {
    pub fn consumer_heartbeat(
        &self,
        group_id: &str,
        req: consumer::HeartbeatRequest,
        topics: &TopicRegistry,
    ) -> consumer::HeartbeatResult {
        use ResponseError as E;
        if let Err(e) = self.check_group(group_id) {
            return consumer::HeartbeatResult::error(
                e,
                "this broker does not coordinate the group now",
            );
        }
        let now = Instant::now();
        let mut guard = lock(&self.state);
        let st = &mut *guard;
        let mut records = Vec::new();
        // This group's configs (KIP-848 group configs) over the broker's defaults.
        let cfg = match st.configs.get(group_id) {
            Some(o) => std::borrow::Cow::Owned(group_configs::apply(&self.cfg, o)),
            None => std::borrow::Cow::Borrowed(&self.cfg),
        };
        let at_capacity = st.groups.len() >= self.cfg.groups_max;
        let result = {
            let group = match st.groups.get_mut(group_id) {
                Some(g) => g,
                None if req.member_epoch == 0 && at_capacity => {
                    tracing::warn!(
                        group = group_id,
                        max = self.cfg.groups_max,
                        "new group refused: too many groups"
                    );
                    return consumer::HeartbeatResult::error(
                        E::GroupMaxSizeReached,
                        format!(
                            "the coordinator holds {} groups, its limit",
                            self.cfg.groups_max
                        ),
                    );
                }
                None if req.member_epoch == 0 => {
                    st.groups.entry(group_id.to_string()).or_insert(Group {
                        kind: Kind::Consumer(ConsumerGroup::new(group_id)),
                        offsets: BTreeMap::new(),
                    })
                }
                None => {
                    return consumer::HeartbeatResult::error(
                        E::UnknownMemberId,
                        format!("group {group_id} has no member {}", req.member_id),
                    );
                }
            };
            if let Kind::Classic(c) = &group.kind {
                if !c.is_empty() {
                    return consumer::HeartbeatResult::error(
                        E::GroupIdNotFound,
                        format!("group {group_id} is not a consumer group"),
                    );
                }
                tracing::info!(
                    group = group_id,
                    "empty classic group converted to a consumer group"
                );
                group.kind = Kind::Consumer(ConsumerGroup::new(group_id));
            }
            let Kind::Consumer(g) = &mut group.kind else {
                return consumer::HeartbeatResult::error(E::UnknownServerError, "unreachable");
            };
            g.heartbeat(req, topics, &cfg, now, &mut records)
        };
        st.persist(&records);
        result
    }

    pub fn consumer_describe(
        &self,
        ids: &[String],
        topics: &TopicRegistry,
    ) -> Vec<DescribedConsumerGroup> {
        let st = lock(&self.state);
        let names: HashMap<uuid::Uuid, String> = topics
            .list()
            .iter()
            .map(|t| (t.id, t.name.clone()))
            .collect();
        let render = |a: &assignor::Assignment| -> Vec<(uuid::Uuid, String, Vec<i32>)> {
            a.iter()
                .map(|(t, ps)| {
                    (
                        *t,
                        names.get(t).cloned().unwrap_or_default(),
                        ps.iter().copied().collect(),
                    )
                })
                .collect()
        };
        ids.iter()
            .map(|id| match st.groups.get(id).map(|g| &g.kind) {
                Some(Kind::Consumer(g)) => DescribedConsumerGroup {
                    error: 0,
                    error_message: None,
                    group_id: id.clone(),
                    state: g.state_name().to_string(),
                    group_epoch: g.group_epoch,
                    assignment_epoch: g.assignment_epoch,
                    assignor: g.assignor.clone(),
                    members: g
                        .members
                        .values()
                        .map(|m| DescribedConsumerMember {
                            member_id: m.member_id.clone(),
                            instance_id: m.instance_id.clone(),
                            rack_id: m.rack_id.clone(),
                            member_epoch: m.epoch,
                            client_id: m.client_id.clone(),
                            client_host: m.client_host.clone(),
                            subscribed_topic_names: m.subscribed_names.clone(),
                            subscribed_topic_regex: m.regex.clone(),
                            assignment: render(&m.assigned),
                            target_assignment: render(
                                &g.target.get(&m.member_id).cloned().unwrap_or_default(),
                            ),
                        })
                        .collect(),
                },
                Some(Kind::Classic(_)) => DescribedConsumerGroup {
                    error: ResponseError::GroupIdNotFound.code(),
                    error_message: Some(format!("group {id} is not a consumer group")),
                    group_id: id.clone(),
                    ..Default::default()
                },
                None => DescribedConsumerGroup {
                    error: ResponseError::GroupIdNotFound.code(),
                    error_message: Some(format!("group {id} not found")),
                    group_id: id.clone(),
                    ..Default::default()
                },
            })
            .collect()
    }
}
