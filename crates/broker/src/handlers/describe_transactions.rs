//! DescribeTransactions (key 65): each transactional id's state, producer id
//! and epoch, timeout, start time and the partitions of its open transaction,
//! from the transaction coordinator (`Broker::txn`).
//!
//! As Kafka: DESCRIBE on the TRANSACTIONAL_ID resource, else
//! TRANSACTIONAL_ID_AUTHORIZATION_FAILED; an empty id is INVALID_REQUEST; an
//! id this broker does not coordinate is NOT_COORDINATOR (the client looks the
//! coordinator up again); an unknown id, or one in state Dead (being expired),
//! is TRANSACTIONAL_ID_NOT_FOUND; only the topics the principal may DESCRIBE
//! are listed among the partitions.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName,
};

use herald_security::acl::{Operation, ResourceType};

use super::{Ctx, Reply, s, sb};
use crate::error::ProtocolError;
use crate::txn_coordinator::{TxnDescription, TxnState};

pub fn handle(ctx: &Ctx, req: DescribeTransactionsRequest) -> Result<Reply, ProtocolError> {
    let mut resp = DescribeTransactionsResponse::default();
    for id in &req.transactional_ids {
        let name = s(&id.0);
        let lookup = if !ctx.authorize(Operation::Describe, ResourceType::TransactionalId, &name) {
            Lookup::Denied
        } else if name.is_empty() {
            Lookup::Invalid
        } else if !ctx.broker.coordinates(&name) {
            Lookup::NotCoordinator
        } else {
            Lookup::Found(ctx.broker.txn.describe(&name))
        };
        let mut state = describe_entry(lookup, |topic| {
            ctx.may(Operation::Describe, ResourceType::Topic, topic)
        });
        state.transactional_id = id.clone();
        resp.transaction_states.push(state);
    }
    ctx.reply(&resp)
}

/// What the checks before the coordinator found for one id.
enum Lookup {
    Denied,
    Invalid,
    NotCoordinator,
    Found(Option<TxnDescription>),
}

/// One id's entry (without its id), listing the partitions of the topics
/// `may_describe` lets through.
fn describe_entry(lookup: Lookup, may_describe: impl Fn(&str) -> bool) -> TransactionState {
    let mut e = TransactionState::default();
    let d = match lookup {
        Lookup::Denied => {
            e.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
            return e;
        }
        Lookup::Invalid => {
            e.error_code = ResponseError::InvalidRequest.code();
            return e;
        }
        Lookup::NotCoordinator => {
            e.error_code = ResponseError::NotCoordinator.code();
            return e;
        }
        Lookup::Found(None) => {
            e.error_code = ResponseError::TransactionalIdNotFound.code();
            return e;
        }
        Lookup::Found(Some(d)) if d.state == TxnState::Dead => {
            e.error_code = ResponseError::TransactionalIdNotFound.code();
            return e;
        }
        Lookup::Found(Some(d)) => d,
    };
    e.transaction_state = sb(d.state.name());
    e.transaction_timeout_ms = d.timeout_ms;
    e.transaction_start_time_ms = d.start_time_ms;
    e.producer_id = ProducerId(d.producer_id);
    e.producer_epoch = d.producer_epoch;
    e.topics = d
        .partitions
        .into_iter()
        .filter(|(topic, _)| may_describe(topic))
        .map(|(topic, partitions)| {
            let mut t = TopicData::default();
            t.topic = TopicName(sb(topic));
            t.partitions = partitions;
            t
        })
        .collect();
    e
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn ongoing() -> TxnDescription {
        TxnDescription {
            transactional_id: "payments-0".into(),
            state: TxnState::Ongoing,
            producer_id: 17,
            producer_epoch: 3,
            timeout_ms: 60_000,
            start_time_ms: 1_700_000_000_000,
            partitions: BTreeMap::from([
                ("orders".to_string(), vec![0, 2]),
                ("secret".to_string(), vec![1]),
            ]),
        }
    }

    #[test]
    fn a_described_transaction_lists_only_the_topics_the_principal_may_describe() {
        let e = describe_entry(Lookup::Found(Some(ongoing())), |t| t != "secret");
        assert_eq!(e.error_code, 0);
        assert_eq!(e.transaction_state.as_str(), "Ongoing");
        assert_eq!(e.producer_id.0, 17);
        assert_eq!(e.producer_epoch, 3);
        assert_eq!(e.transaction_timeout_ms, 60_000);
        assert_eq!(e.transaction_start_time_ms, 1_700_000_000_000);
        assert_eq!(e.topics.len(), 1);
        assert_eq!(e.topics[0].topic.0.as_str(), "orders");
        assert_eq!(e.topics[0].partitions, vec![0, 2]);
    }

    #[test]
    fn errors_as_kafka_names_them() {
        let code = |l| describe_entry(l, |_| true).error_code;
        assert_eq!(
            code(Lookup::Denied),
            ResponseError::TransactionalIdAuthorizationFailed.code()
        );
        assert_eq!(code(Lookup::Invalid), ResponseError::InvalidRequest.code());
        assert_eq!(
            code(Lookup::NotCoordinator),
            ResponseError::NotCoordinator.code()
        );
        assert_eq!(
            code(Lookup::Found(None)),
            ResponseError::TransactionalIdNotFound.code()
        );
        let mut dead = ongoing();
        dead.state = TxnState::Dead;
        assert_eq!(
            code(Lookup::Found(Some(dead))),
            ResponseError::TransactionalIdNotFound.code()
        );
    }
}
