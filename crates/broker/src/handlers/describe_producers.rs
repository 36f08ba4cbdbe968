//! DescribeProducers (key 61): the producers with state on each requested
//! partition (`PartitionStorage::producers`), as `kafka-transactions.sh
//! describe-producers` and `find-hanging` show them.
//!
//! Kafka's order of checks, per topic: a name that is not a valid topic name
//! is INVALID_TOPIC_EXCEPTION, then READ on the topic (else
//! TOPIC_AUTHORIZATION_FAILED), then UNKNOWN_TOPIC_OR_PARTITION for a topic
//! or partition that does not exist. Every requested partition gets an entry.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};

use herald_security::acl::{Operation, ResourceType};

use super::{Ctx, Reply, s, sb};
use crate::error::{ProtocolError, log_error_code};
use crate::storage::ProducerInfo;
use crate::topic_registry::validate_topic_name;

pub fn handle(ctx: &Ctx, req: DescribeProducersRequest) -> Result<Reply, ProtocolError> {
    super::reply_later(ctx, |ctx| async move { answer(&ctx, req).await })
}

async fn answer(ctx: &Ctx, req: DescribeProducersRequest) -> DescribeProducersResponse {
    let mut resp = DescribeProducersResponse::default();
    for t in req.topics {
        let name = s(&t.name.0);
        // (code, message) for every partition of the topic, if the topic fails.
        let topic_error: Option<(i16, Option<String>)> = if let Err(e) = validate_topic_name(&name)
        {
            Some((
                ResponseError::InvalidTopicException.code(),
                Some(e.to_string()),
            ))
        } else if !ctx.authorize(Operation::Read, ResourceType::Topic, &name) {
            Some((ResponseError::TopicAuthorizationFailed.code(), None))
        } else {
            None
        };
        let topic = match topic_error {
            None => ctx.broker.topics.get_fresh(&name).await,
            Some(_) => None,
        };
        let mut tr = TopicResponse::default();
        tr.name = t.name.clone();
        for index in t.partition_indexes {
            let mut pr = PartitionResponse::default();
            pr.partition_index = index;
            match (
                &topic_error,
                topic.as_ref().and_then(|t| t.partition(index)),
            ) {
                (Some((code, message)), _) => {
                    pr.error_code = *code;
                    pr.error_message = message.clone().map(sb);
                }
                (None, None) => pr.error_code = ResponseError::UnknownTopicOrPartition.code(),
                (None, Some(p)) => match p.producers().await {
                    Ok(producers) => pr.active_producers = producers.iter().map(entry).collect(),
                    Err(e) => {
                        pr.error_code = log_error_code(&e);
                        pr.error_message = Some(sb(e.to_string()));
                    }
                },
            }
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
    }
    resp
}

fn entry(p: &ProducerInfo) -> ProducerState {
    let mut e = ProducerState::default();
    e.producer_id = ProducerId(p.producer_id);
    // The wire field is an int32 (Kafka widened it for KIP-890's epochs).
    e.producer_epoch = i32::from(p.producer_epoch);
    e.last_sequence = p.last_sequence;
    e.last_timestamp = p.last_timestamp_ms;
    e.coordinator_epoch = p.coordinator_epoch;
    e.current_txn_start_offset = p.current_txn_start_offset;
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_carries_every_field() {
        let e = entry(&ProducerInfo {
            producer_id: 4000,
            producer_epoch: 7,
            last_sequence: 41,
            last_timestamp_ms: 1_700_000_000_123,
            coordinator_epoch: -1,
            current_txn_start_offset: 12,
        });
        assert_eq!(e.producer_id.0, 4000);
        assert_eq!(e.producer_epoch, 7);
        assert_eq!(e.last_sequence, 41);
        assert_eq!(e.last_timestamp, 1_700_000_000_123);
        assert_eq!(e.coordinator_epoch, -1);
        assert_eq!(e.current_txn_start_offset, 12);
    }
}
