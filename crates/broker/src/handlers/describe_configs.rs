//! DescribeConfigs (key 32): every topic config with its effective value and
//! source (topic override or broker default), and the broker's settings.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

use herald_security::acl::{Operation, ResourceType};

use super::{Ctx, Reply, s, sb};
use crate::broker::Broker;
use crate::dynamic_config;
use crate::error::ProtocolError;
use crate::group_coordinator::group_configs;
use crate::topic_config::{
    self, ConfigType, SOURCE_DEFAULT, SOURCE_DYNAMIC_DEFAULT_BROKER, SOURCE_DYNAMIC_TOPIC,
    SOURCE_GROUP, SOURCE_STATIC_BROKER,
};

pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;
/// KIP-848 group configs.
pub const RESOURCE_GROUP: i8 = 32;

/// What membership says of a broker: `broker.rack`, and in cluster mode
/// `herald.lease.age.ms` (time since its lease was last renewed, as this
/// broker last read it) and `herald.storage.engine`.
fn membership_configs(
    b: &Broker,
    info: &crate::membership::BrokerInfo,
) -> Vec<(&'static str, String, ConfigType)> {
    let mut v = vec![(
        "broker.rack",
        info.rack.clone().unwrap_or_default(),
        ConfigType::String,
    )];
    let engine = b.topics.engine().kind();
    if engine != "local" {
        v.push((
            "herald.lease.age.ms",
            info.lease_age_ms.to_string(),
            ConfigType::Long,
        ));
        v.push((
            "herald.storage.engine",
            engine.to_string(),
            ConfigType::String,
        ));
    }
    v
}

/// The broker's settings as Kafka names them: (name, value, type).
pub fn broker_configs(b: &Broker) -> Vec<(&'static str, String, ConfigType)> {
    let c = &b.config;
    let l = &b.topics.base_log_config();
    let ms = |d: Option<std::time::Duration>| {
        d.map(|d| d.as_millis().to_string())
            .unwrap_or_else(|| "-1".into())
    };
    vec![
        (
            "advertised.listeners",
            b.endpoints
                .iter()
                .map(|e| format!("{}://{}:{}", e.listener, e.host, e.port))
                .collect::<Vec<_>>()
                .join(","),
            ConfigType::String,
        ),
        (
            "auto.create.topics.enable",
            c.auto_create_topics.to_string(),
            ConfigType::Boolean,
        ),
        (
            "listeners",
            c.effective_listeners()
                .iter()
                .map(|l| format!("{}://{}", l.name, l.bind))
                .collect::<Vec<_>>()
                .join(","),
            ConfigType::String,
        ),
        (
            "connections.max.reauth.ms",
            c.security.reauth_max.as_millis().to_string(),
            ConfigType::Long,
        ),
        (
            "sasl.enabled.mechanisms",
            c.security.sasl_mechanisms.join(","),
            ConfigType::List,
        ),
        (
            "authorizer.class.name",
            if c.security.authorizer {
                "org.apache.kafka.metadata.authorizer.StandardAuthorizer".to_string()
            } else {
                String::new()
            },
            ConfigType::String,
        ),
        (
            "allow.everyone.if.no.acl.found",
            c.security.allow_everyone_if_no_acl_found.to_string(),
            ConfigType::Boolean,
        ),
        (
            "ssl.client.auth",
            match c.security.tls.as_ref().map(|t| t.client_auth) {
                Some(herald_security::tls::ClientAuth::Required) => "required",
                Some(herald_security::tls::ClientAuth::Requested) => "requested",
                _ => "none",
            }
            .to_string(),
            ConfigType::String,
        ),
        (
            "ssl.principal.mapping.rules",
            c.security.principal_mapping_rules.clone(),
            ConfigType::String,
        ),
        ("broker.id", c.node_id.to_string(), ConfigType::Int),
        (
            "compression.type",
            topic_config::broker_default("compression.type", l),
            ConfigType::String,
        ),
        ("default.replication.factor", "1".into(), ConfigType::Int),
        (
            "listeners",
            format!("PLAINTEXT://{}", c.listen),
            ConfigType::String,
        ),
        (
            "log.cleanup.policy",
            topic_config::broker_default("cleanup.policy", l),
            ConfigType::List,
        ),
        (
            "log.dirs",
            c.data_dir.display().to_string(),
            ConfigType::String,
        ),
        (
            "log.flush.interval.messages",
            l.flush_messages.to_string(),
            ConfigType::Long,
        ),
        (
            "log.flush.interval.ms",
            l.flush_interval
                .map(|d| d.as_millis().to_string())
                .unwrap_or_else(|| i64::MAX.to_string()),
            ConfigType::Long,
        ),
        (
            "log.index.interval.bytes",
            l.index_interval_bytes.to_string(),
            ConfigType::Int,
        ),
        (
            "log.message.timestamp.type",
            if l.log_append_time {
                "LogAppendTime"
            } else {
                "CreateTime"
            }
            .into(),
            ConfigType::String,
        ),
        (
            "log.retention.bytes",
            l.retention_bytes_max
                .map(|v| v.to_string())
                .unwrap_or_else(|| "-1".into()),
            ConfigType::Long,
        ),
        (
            "log.retention.check.interval.ms",
            c.retention_check_interval.as_millis().to_string(),
            ConfigType::Long,
        ),
        (
            "log.retention.ms",
            ms(l.retention_age_max),
            ConfigType::Long,
        ),
        (
            "log.roll.ms",
            l.segment_age_max.as_millis().to_string(),
            ConfigType::Long,
        ),
        (
            "log.segment.bytes",
            l.segment_bytes_max.to_string(),
            ConfigType::Int,
        ),
        (
            "message.max.bytes",
            l.message_bytes_max.to_string(),
            ConfigType::Int,
        ),
        ("min.insync.replicas", "1".into(), ConfigType::Int),
        ("node.id", c.node_id.to_string(), ConfigType::Int),
        (
            "num.partitions",
            c.default_partitions.to_string(),
            ConfigType::Int,
        ),
        (
            "offsets.topic.replication.factor",
            "1".into(),
            ConfigType::Short,
        ),
        (
            "socket.request.max.bytes",
            c.frame_bytes_max.to_string(),
            ConfigType::Int,
        ),
    ]
}

#[allow(clippy::too_many_arguments)]
fn entry(
    version: i16,
    name: &str,
    value: String,
    source: i8,
    config_type: ConfigType,
    read_only: bool,
    synonyms: Vec<DescribeConfigsSynonym>,
    doc: Option<&str>,
) -> DescribeConfigsResourceResult {
    let mut e = DescribeConfigsResourceResult::default();
    e.name = sb(name);
    e.value = Some(sb(value));
    e.read_only = read_only;
    e.config_source = source;
    e.synonyms = synonyms;
    if version >= 3 {
        e.config_type = config_type as i8;
        e.documentation = doc.map(sb);
    }
    e
}

fn synonym(name: &str, value: String, source: i8) -> DescribeConfigsSynonym {
    let mut s = DescribeConfigsSynonym::default();
    s.name = sb(name);
    s.value = Some(sb(value));
    s.source = source;
    s
}

/// A config that is either overridden (`override_source` is Some) or falls back
/// to a default: `default` is (the default's name, its value, its source).
/// Synonyms, when asked for, list the override first, then the default.
fn overridable(
    req: &DescribeConfigsRequest,
    version: i16,
    (key, value): (&str, String),
    override_source: Option<i8>,
    (default_name, default_value, default_source): (&str, String, i8),
    config_type: ConfigType,
    doc: &str,
) -> DescribeConfigsResourceResult {
    let mut synonyms = Vec::new();
    if req.include_synonyms {
        if let Some(source) = override_source {
            synonyms.push(synonym(key, value.clone(), source));
        }
        synonyms.push(synonym(default_name, default_value, default_source));
    }
    entry(
        version,
        key,
        value,
        override_source.unwrap_or(default_source),
        config_type,
        false,
        synonyms,
        req.include_documentation.then_some(doc),
    )
}

pub fn handle(ctx: &Ctx, req: DescribeConfigsRequest) -> Result<Reply, ProtocolError> {
    super::reply_later(ctx, |ctx| async move { answer(&ctx, req).await })
}

async fn answer(ctx: &Ctx, mut req: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let broker = &ctx.broker;
    let mut resp = DescribeConfigsResponse::default();
    for res in std::mem::take(&mut req.resources) {
        let mut r = DescribeConfigsResult::default();
        r.resource_type = res.resource_type;
        r.resource_name = res.resource_name.clone();
        let keys: Option<Vec<String>> = res
            .configuration_keys
            .as_ref()
            .map(|k| k.iter().map(s).collect());
        let wanted = |name: &str| keys.as_ref().is_none_or(|k| k.iter().any(|x| x == name));
        let name = s(&res.resource_name);
        if let Err((code, message)) =
            config_access(ctx, res.resource_type, &name, Operation::DescribeConfigs)
        {
            r.error_code = code;
            r.error_message = Some(sb(message));
            resp.results.push(r);
            continue;
        }
        match res.resource_type {
            RESOURCE_TOPIC => match broker.topics.get_fresh(&name).await {
                None => {
                    r.error_code = ResponseError::UnknownTopicOrPartition.code();
                    r.error_message = Some(sb(format!("unknown topic '{name}'")));
                }
                Some(topic) => {
                    let base = &broker.topics.base_log_config();
                    let dynamic = broker.topics.dynamic_broker_configs();
                    let overrides = topic.overrides();
                    for (key, (value, is_override)) in topic_config::effective(&overrides, base) {
                        if !wanted(key) {
                            continue;
                        }
                        let Some(def) = topic_config::lookup(key) else {
                            continue;
                        };
                        // A default set at runtime (kafka-configs --entity-type brokers).
                        let default_source = if dynamic.contains_key(def.broker_synonym) {
                            SOURCE_DYNAMIC_DEFAULT_BROKER
                        } else {
                            SOURCE_DEFAULT
                        };
                        let default = topic_config::broker_default(key, base);
                        r.configs.push(overridable(
                            &req,
                            ctx.version,
                            (key, value),
                            is_override.then_some(SOURCE_DYNAMIC_TOPIC),
                            (def.broker_synonym, default, default_source),
                            def.config_type,
                            def.doc,
                        ));
                    }
                }
            },
            RESOURCE_BROKER => {
                let other = (!name.is_empty() && name != broker.node_id().to_string())
                    .then(|| {
                        broker
                            .membership
                            .live()
                            .into_iter()
                            .find(|b| b.node_id.to_string() == name)
                    })
                    .flatten();
                if let Some(info) = other {
                    // Another live broker of the cluster: what this broker
                    // knows of it (its rack and lease), read-only.
                    for (key, value, t) in membership_configs(broker, &info) {
                        if wanted(key) {
                            r.configs.push(entry(
                                ctx.version,
                                key,
                                value,
                                SOURCE_STATIC_BROKER,
                                t,
                                true,
                                Vec::new(),
                                None,
                            ));
                        }
                    }
                } else if !name.is_empty() && name != broker.node_id().to_string() {
                    r.error_code = ResponseError::InvalidRequest.code();
                    r.error_message = Some(sb(format!(
                        "this is broker {}, not '{name}'",
                        broker.node_id()
                    )));
                } else {
                    let dynamic = broker.topics.dynamic_broker_configs();
                    // Accepted runtime settings with no Herald equivalent are
                    // listed after the broker's own, once set.
                    let inert = dynamic_config::INERT.iter().filter_map(|(key, _)| {
                        dynamic
                            .get(*key)
                            .map(|v| (*key, v.clone(), ConfigType::Int))
                    });
                    let me = broker
                        .membership
                        .live()
                        .into_iter()
                        .find(|b| b.node_id == broker.node_id());
                    let mine = me
                        .map(|info| membership_configs(broker, &info))
                        .unwrap_or_default();
                    for (key, value, t) in
                        broker_configs(broker).into_iter().chain(inert).chain(mine)
                    {
                        if !wanted(key) {
                            continue;
                        }
                        let source = if dynamic.contains_key(key) {
                            SOURCE_DYNAMIC_DEFAULT_BROKER
                        } else {
                            SOURCE_STATIC_BROKER
                        };
                        let synonyms = if req.include_synonyms {
                            vec![synonym(key, value.clone(), source)]
                        } else {
                            Vec::new()
                        };
                        r.configs.push(entry(
                            ctx.version,
                            key,
                            value,
                            source,
                            t,
                            !dynamic_config::is_dynamic(key),
                            synonyms,
                            None,
                        ));
                    }
                }
            }
            RESOURCE_GROUP if !crate::group_coordinator::valid_group_id(&name) => {
                r.error_code = ResponseError::InvalidGroupId.code();
                r.error_message = Some(sb(format!("invalid group id '{name}'")));
            }
            RESOURCE_GROUP => {
                let groups = &broker.groups;
                for (def, value, is_override) in groups.group_configs(&name) {
                    if !wanted(def.name) {
                        continue;
                    }
                    let default =
                        group_configs::broker_default(def.name, &groups.cfg).unwrap_or_default();
                    r.configs.push(overridable(
                        &req,
                        ctx.version,
                        (def.name, value),
                        is_override.then_some(SOURCE_GROUP),
                        (def.broker_synonym, default, SOURCE_DEFAULT),
                        ConfigType::Int,
                        def.doc,
                    ));
                }
            }
            other => {
                r.error_code = ResponseError::InvalidRequest.code();
                r.error_message = Some(sb(format!("resource type {other} is not supported")));
            }
        }
        resp.results.push(r);
    }
    resp
}

/// Whether the principal may describe or alter the configs of a resource:
/// a topic's, a group's, or the brokers' (the cluster resource).
pub fn config_access(
    ctx: &Ctx,
    resource_type: i8,
    name: &str,
    operation: Operation,
) -> Result<(), (i16, String)> {
    let (resource, acl_name, code) = match resource_type {
        RESOURCE_TOPIC => (
            ResourceType::Topic,
            name,
            ResponseError::TopicAuthorizationFailed,
        ),
        RESOURCE_GROUP => (
            ResourceType::Group,
            name,
            ResponseError::GroupAuthorizationFailed,
        ),
        RESOURCE_BROKER => (
            ResourceType::Cluster,
            herald_security::acl::CLUSTER_NAME,
            ResponseError::ClusterAuthorizationFailed,
        ),
        _ => return Ok(()),
    };
    if ctx.authorize(operation, resource, acl_name) {
        Ok(())
    } else {
        Err((code.code(), "Authorization failed.".into()))
    }
}
