//! Group administration: DescribeGroups, ListGroups, DeleteGroups, and
//! group configs (KIP-848 group-level settings).

use super::*;

#[derive(Debug, Clone, Default)]
pub struct DescribedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone, Default)]
pub struct DescribedGroup {
    pub error: i16,
    pub group_id: String,
    pub state: String,
    pub protocol_type: String,
    pub protocol_data: String,
    pub members: Vec<DescribedMember>,
    /// Why a group shows as Dead: unknown or not a classic group. DescribeGroups
    /// v6+ (KIP-1043) answers GROUP_ID_NOT_FOUND with it, older versions Dead.
    pub not_found: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ListedGroup {
    pub group_id: String,
    pub protocol_type: String,
    pub state: String,
    pub group_type: String,
}

impl GroupCoordinator {
    pub fn delete_groups(&self, ids: &[String]) -> Vec<i16> {
        use ResponseError as E;
        let mut st = lock(&self.state);
        let mut records = Vec::new();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let code = match st.groups.get(id) {
                _ if self.check_group(id).is_err() => {
                    self.check_group(id).err().map(|e| e.code()).unwrap_or(0)
                }
                None => E::GroupIdNotFound.code(),
                Some(g) if g.has_members() => E::NonEmptyGroup.code(),
                Some(g) => {
                    for r in g.offset_records(id) {
                        if let Record::Offset {
                            group,
                            topic,
                            partition,
                            ..
                        } = r
                        {
                            records.push(Record::Offset {
                                group,
                                topic,
                                partition,
                                value: None,
                            });
                        }
                    }
                    records.push(Record::Group {
                        group: id.clone(),
                        value: None,
                    });
                    st.groups.remove(id);
                    tracing::info!(group = %id, "deleted group");
                    0
                }
            };
            out.push(code);
        }
        st.persist(&records);
        out
    }

    pub fn describe(&self, ids: &[String]) -> Vec<DescribedGroup> {
        let st = lock(&self.state);
        ids.iter()
            .map(|id| {
                let dead = DescribedGroup {
                    group_id: id.clone(),
                    state: "Dead".to_string(),
                    ..Default::default()
                };
                if let Err(e) = self.check_group(id)
                    && e != ResponseError::InvalidGroupId
                {
                    return DescribedGroup {
                        error: e.code(),
                        ..dead
                    };
                }
                match st.groups.get(id).map(|g| &g.kind) {
                    Some(Kind::Classic(g)) => {
                        let stable = g.state == ClassicState::Stable;
                        let protocol = g.protocol_name.clone().unwrap_or_default();
                        DescribedGroup {
                            error: 0,
                            group_id: id.clone(),
                            state: g.state.name().to_string(),
                            protocol_type: g.protocol_type.clone().unwrap_or_default(),
                            protocol_data: if stable {
                                protocol.clone()
                            } else {
                                String::new()
                            },
                            not_found: None,
                            members: g
                                .members
                                .values()
                                .map(|m| DescribedMember {
                                    member_id: m.member_id.clone(),
                                    instance_id: m.instance_id.clone(),
                                    client_id: m.client_id.clone(),
                                    client_host: m.client_host.clone(),
                                    metadata: if stable {
                                        m.protocols
                                            .iter()
                                            .find(|(n, _)| *n == protocol)
                                            .map(|(_, b)| b.clone())
                                            .unwrap_or_default()
                                    } else {
                                        Bytes::new()
                                    },
                                    assignment: if stable {
                                        m.assignment.clone()
                                    } else {
                                        Bytes::new()
                                    },
                                })
                                .collect(),
                        }
                    }
                    // Not a classic group: DescribeGroups (v0-5) shows it as Dead.
                    Some(_) => DescribedGroup {
                        not_found: Some(format!("Group {id} is not a classic group.")),
                        ..dead
                    },
                    None => DescribedGroup {
                        not_found: Some(format!("Group {id} not found.")),
                        ..dead
                    },
                }
            })
            .collect()
    }

    pub fn list(&self, states: &[String], types: &[String]) -> Vec<ListedGroup> {
        let st = lock(&self.state);
        let mut out: Vec<ListedGroup> = st
            .groups
            .iter()
            .filter(|(_, g)| {
                states.is_empty()
                    || states
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(g.state_name()))
            })
            .filter(|(_, g)| {
                types.is_empty() || types.iter().any(|t| t.eq_ignore_ascii_case(g.type_name()))
            })
            .map(|(id, g)| ListedGroup {
                group_id: id.clone(),
                protocol_type: g.protocol_type(),
                state: g.state_name().to_string(),
                group_type: g.type_name().to_string(),
            })
            .collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// One group's configs: (definition, effective value, overridden?). Any
    /// valid group id has them, existing or not (as in Kafka).
    pub fn group_configs(
        &self,
        group_id: &str,
    ) -> Vec<(&'static group_configs::GroupConfigDef, String, bool)> {
        let st = lock(&self.state);
        let overrides = st.configs.get(group_id);
        group_configs::GROUP_CONFIGS
            .iter()
            .map(|d| match overrides.and_then(|o| o.get(d.name)) {
                Some(v) => (d, v.clone(), true),
                None => (
                    d,
                    group_configs::broker_default(d.name, &self.cfg).unwrap_or_default(),
                    false,
                ),
            })
            .collect()
    }

    /// Changes one group's overrides with `edit` (validated as a whole; nothing
    /// is stored with `validate_only`). Takes effect at the members' next heartbeat.
    pub fn alter_group_configs(
        &self,
        group_id: &str,
        validate_only: bool,
        edit: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), String>,
    ) -> Result<(), (ResponseError, String)> {
        if !valid_group_id(group_id) {
            return Err((
                ResponseError::InvalidGroupId,
                format!("invalid group id '{group_id}'"),
            ));
        }
        let mut st = lock(&self.state);
        let mut overrides = st.configs.get(group_id).cloned().unwrap_or_default();
        edit(&mut overrides).map_err(|m| (ResponseError::InvalidConfig, m))?;
        group_configs::validate(&overrides, &self.cfg)
            .map_err(|m| (ResponseError::InvalidConfig, m))?;
        if validate_only {
            return Ok(());
        }
        st.configs.set(group_id, overrides).map_err(|e| {
            tracing::error!(group = group_id, error = %e, "storing group configs failed");
            (ResponseError::KafkaStorageError, e.to_string())
        })
    }
}
