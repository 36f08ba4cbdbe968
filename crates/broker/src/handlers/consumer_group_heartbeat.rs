//! ConsumerGroupHeartbeat (key 68, KIP-848): join, heartbeat, reconcile and
//! leave a consumer group whose assignment the broker computes.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};

use herald_security::acl::{Operation, ResourceType};

use super::{Ctx, Reply, s, sb};
use crate::error::ProtocolError;
use crate::group_coordinator::consumer::{HeartbeatRequest, HeartbeatResult};
use crate::group_coordinator::{SUBSCRIBED_TOPICS_MAX, assignor, regex_valid, valid_group_id};

fn invalid(e: ResponseError, msg: &str) -> HeartbeatResult {
    HeartbeatResult::error(e, msg)
}

/// Request checks Kafka makes before touching the group.
fn validate(version: i16, req: &ConsumerGroupHeartbeatRequest) -> Option<HeartbeatResult> {
    use ResponseError as E;
    if !valid_group_id(&req.group_id.0) {
        return Some(invalid(E::InvalidRequest, "GroupId can't be empty."));
    }
    if req.member_epoch < -2 {
        return Some(invalid(E::InvalidRequest, "MemberEpoch is invalid."));
    }
    if (version >= 1 || req.member_epoch != 0) && req.member_id.is_empty() {
        return Some(invalid(E::InvalidRequest, "MemberId can't be empty."));
    }
    if req.member_epoch == -2 && req.instance_id.is_none() {
        return Some(invalid(
            E::InvalidRequest,
            "InstanceId can't be null for a static leave.",
        ));
    }
    if req.member_epoch == 0 {
        // Kafka refuses a join without RebalanceTimeoutMs (INVALID_REQUEST),
        // which librdkafka treats as fatal. librdkafka 2.16 sends exactly that
        // when it resubscribes right after its leave was answered (a
        // non-full heartbeat at epoch 0): accept it, with the default
        // max.poll.interval.ms as the rebalance timeout (see consumer.rs).
        if req.topic_partitions.as_ref().is_some_and(|t| !t.is_empty()) {
            return Some(invalid(
                E::InvalidRequest,
                "TopicPartitions must be empty when (re-)joining.",
            ));
        }
        // Likewise a join without a subscription (Kafka: INVALID_REQUEST) is
        // taken as subscribed to nothing until the member sends one.
    }
    if req
        .subscribed_topic_names
        .as_ref()
        .is_some_and(|n| n.len() > SUBSCRIBED_TOPICS_MAX)
    {
        return Some(invalid(E::InvalidRequest, "too many subscribed topics"));
    }
    if req
        .subscribed_topic_names
        .as_ref()
        .is_some_and(|n| n.len() > SUBSCRIBED_TOPICS_MAX)
    {
        return Some(invalid(E::InvalidRequest, "too many subscribed topics"));
    }
    if let Some(r) = &req.subscribed_topic_regex
        && !r.is_empty()
        && !regex_valid(r)
    {
        return Some(invalid(
            E::InvalidRegularExpression,
            "unsupported regular expression",
        ));
    }
    if let Some(a) = &req.server_assignor
        && !assignor::ASSIGNORS.contains(&a.as_str())
    {
        return Some(invalid(E::UnsupportedAssignor, "unknown server assignor"));
    }
    None
}

pub fn handle(ctx: &Ctx, req: ConsumerGroupHeartbeatRequest) -> Result<Reply, ProtocolError> {
    let denied =
        (!ctx.authorize(Operation::Read, ResourceType::Group, &s(&req.group_id.0))).then(|| {
            invalid(
                ResponseError::GroupAuthorizationFailed,
                "Not authorized to read the group.",
            )
        });
    let result = match denied.or_else(|| validate(ctx.version, &req)) {
        Some(err) => err,
        None => {
            let hb = HeartbeatRequest {
                member_id: s(&req.member_id),
                member_epoch: req.member_epoch,
                instance_id: req.instance_id.as_ref().map(s),
                rack_id: req.rack_id.as_ref().map(s),
                rebalance_timeout_ms: req.rebalance_timeout_ms,
                subscribed_topic_names: req
                    .subscribed_topic_names
                    .as_ref()
                    .map(|ns| ns.iter().map(|n| s(&n.0)).collect()),
                subscribed_topic_regex: req.subscribed_topic_regex.as_ref().map(s),
                server_assignor: req.server_assignor.as_ref().map(s),
                owned: req.topic_partitions.as_ref().map(|tps| {
                    let mut a = assignor::Assignment::new();
                    for tp in tps {
                        a.entry(tp.topic_id)
                            .or_default()
                            .extend(tp.partitions.iter().copied());
                    }
                    a
                }),
                client_id: ctx.client_id.clone().unwrap_or_default(),
                client_host: ctx.client_host.clone(),
                version: ctx.version,
            };
            ctx.broker
                .groups
                .consumer_heartbeat(&s(&req.group_id.0), hb, &ctx.broker.topics)
        }
    };
    if result.error != 0 {
        tracing::debug!(
            group = %req.group_id.0.as_str(),
            member = %req.member_id.as_str(),
            epoch = req.member_epoch,
            error = result.error,
            message = result.message.as_deref().unwrap_or(""),
            "ConsumerGroupHeartbeat refused"
        );
    }
    let mut resp = ConsumerGroupHeartbeatResponse::default();
    resp.error_code = result.error;
    resp.error_message = result.message.map(sb);
    resp.member_id = result.member_id.map(sb);
    resp.member_epoch = result.member_epoch;
    resp.heartbeat_interval_ms = result.heartbeat_interval_ms;
    resp.assignment = result.assignment.map(|a| {
        let mut out = Assignment::default();
        out.topic_partitions = a
            .into_iter()
            .map(|(id, ps)| {
                let mut tp = TopicPartitions::default();
                tp.topic_id = id;
                tp.partitions = ps.into_iter().collect();
                tp
            })
            .collect();
        out
    });
    // Answered once the member's new epoch and assignment are durable, so a
    // crash cannot fence a member for an epoch it was given.
    Ok(super::reply_when_durable(ctx, resp))
}
