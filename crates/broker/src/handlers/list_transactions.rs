//! ListTransactions (key 66): the transactional ids this broker coordinates,
//! filtered as Kafka filters them (`TransactionStateManager`):
//!
//! - ids in state Dead (being expired) are never listed;
//! - `state_filters` (v0+): only those states; names Kafka does not know come
//!   back in `unknown_state_filters` (and match nothing);
//! - `producer_id_filters` (v0+): only those producer ids;
//! - `duration_filter` (v1+, KIP-994): when >= 0, only transactions whose
//!   start time is more than that many ms ago (Kafka's `now - start > d`; an
//!   id without an open transaction has start time -1, so it passes too, as
//!   in Kafka);
//! - `transactional_id_pattern` (v2, KIP-1152): a regular expression that the
//!   whole id must match (RE2 syntax, Java's `matches()`); one that does not
//!   compile, is longer than 8 KiB or compiles beyond 1 MiB is
//!   INVALID_REGULAR_EXPRESSION;
//!
//! and only the ids the principal may DESCRIBE (TRANSACTIONAL_ID resource).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId,
};

use herald_security::acl::{Operation, ResourceType};

use super::{Ctx, Reply, s, sb};
use crate::error::ProtocolError;
use crate::txn_coordinator::{TxnListing, TxnState};

/// Compiled size limit of a `transactional_id_pattern`: a pattern from the
/// network may not make the broker build an arbitrarily large automaton.
const PATTERN_COMPILED_BYTES_MAX: usize = 1 << 20;
/// Longest pattern parsed at all (the parser's memory grows with it); an
/// id pattern longer than this is not a filter anyone writes.
const PATTERN_BYTES_MAX: usize = 8 * 1024;

const STATES: [TxnState; 8] = [
    TxnState::Empty,
    TxnState::Ongoing,
    TxnState::PrepareCommit,
    TxnState::PrepareAbort,
    TxnState::CompleteCommit,
    TxnState::CompleteAbort,
    TxnState::Dead,
    TxnState::PrepareEpochFence,
];

/// The request's filters, checked.
#[derive(Debug)]
struct Filters {
    /// None: every state.
    states: Option<Vec<TxnState>>,
    unknown_states: Vec<String>,
    producer_ids: Vec<i64>,
    /// < 0: no duration filter.
    duration_ms: i64,
    pattern: Option<regex::Regex>,
}

#[derive(Debug, PartialEq, Eq)]
enum FilterError {
    InvalidPattern,
}

impl Filters {
    fn parse(req: &ListTransactionsRequest) -> Result<Filters, FilterError> {
        let mut unknown_states = Vec::new();
        let states = if req.state_filters.is_empty() {
            None
        } else {
            let mut known = Vec::new();
            for name in &req.state_filters {
                match STATES.iter().find(|st| st.name() == name.as_str()) {
                    Some(st) => known.push(*st),
                    None => unknown_states.push(s(name)),
                }
            }
            // Only unknown names: nothing matches (Kafka filters by the set of
            // names given, not by the known ones).
            Some(known)
        };
        let pattern = match req.transactional_id_pattern.as_ref().map(|p| p.as_str()) {
            None | Some("") => None,
            Some(p) => Some(compile_whole_match(p)?),
        };
        Ok(Filters {
            states,
            unknown_states,
            producer_ids: req.producer_id_filters.iter().map(|p| p.0).collect(),
            duration_ms: req.duration_filter,
            pattern,
        })
    }

    fn admits(&self, t: &TxnListing, now_ms: i64) -> bool {
        if t.state == TxnState::Dead {
            return false;
        }
        if !self.producer_ids.is_empty() && !self.producer_ids.contains(&t.producer_id) {
            return false;
        }
        if let Some(states) = &self.states
            && !states.contains(&t.state)
        {
            return false;
        }
        if self.duration_ms >= 0 && now_ms.saturating_sub(t.start_time_ms) <= self.duration_ms {
            return false;
        }
        if let Some(p) = &self.pattern
            && !p.is_match(&t.transactional_id)
        {
            return false;
        }
        true
    }
}

/// `pattern` as a regex that must match a whole id. It is compiled alone
/// first, so a pattern with a stray `)` is refused rather than changing the
/// meaning of the anchors wrapped around it.
fn compile_whole_match(pattern: &str) -> Result<regex::Regex, FilterError> {
    if pattern.len() > PATTERN_BYTES_MAX {
        return Err(FilterError::InvalidPattern);
    }
    let build = |p: &str| {
        regex::RegexBuilder::new(p)
            .size_limit(PATTERN_COMPILED_BYTES_MAX)
            .dfa_size_limit(PATTERN_COMPILED_BYTES_MAX)
            .build()
    };
    build(pattern).map_err(|_| FilterError::InvalidPattern)?;
    build(&format!("^(?:{pattern})$")).map_err(|_| FilterError::InvalidPattern)
}

pub fn handle(ctx: &Ctx, req: ListTransactionsRequest) -> Result<Reply, ProtocolError> {
    let mut resp = ListTransactionsResponse::default();
    let filters = match Filters::parse(&req) {
        Ok(f) => f,
        Err(FilterError::InvalidPattern) => {
            resp.error_code = ResponseError::InvalidRegularExpression.code();
            return ctx.reply(&resp);
        }
    };
    resp.unknown_state_filters = filters.unknown_states.iter().cloned().map(sb).collect();
    let now = crate::now_ms();
    resp.transaction_states = ctx
        .broker
        .txn
        .list()
        .into_iter()
        .filter(|t| filters.admits(t, now))
        .filter(|t| {
            ctx.may(
                Operation::Describe,
                ResourceType::TransactionalId,
                &t.transactional_id,
            )
        })
        .map(|t| {
            let mut e = TransactionState::default();
            e.transactional_id = TransactionalId(sb(t.transactional_id));
            e.producer_id = ProducerId(t.producer_id);
            e.transaction_state = sb(t.state.name());
            e
        })
        .collect();
    ctx.reply(&resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(id: &str, pid: i64, state: TxnState, start: i64) -> TxnListing {
        TxnListing {
            transactional_id: id.into(),
            producer_id: pid,
            state,
            start_time_ms: start,
        }
    }

    fn all() -> Vec<TxnListing> {
        vec![
            listing("pay-0", 1, TxnState::Ongoing, 10_000),
            listing("pay-1", 2, TxnState::CompleteCommit, -1),
            listing("ship-0", 3, TxnState::Ongoing, 19_500),
            listing("gone", 4, TxnState::Dead, -1),
            listing("fresh", 5, TxnState::Empty, -1),
        ]
    }

    fn ids(req: ListTransactionsRequest, now: i64) -> Vec<String> {
        let f = Filters::parse(&req).expect("filters");
        all()
            .into_iter()
            .filter(|t| f.admits(t, now))
            .map(|t| t.transactional_id)
            .collect()
    }

    #[test]
    fn no_filter_lists_all_but_dead() {
        let got = ids(ListTransactionsRequest::default(), 20_000);
        assert_eq!(got, ["pay-0", "pay-1", "ship-0", "fresh"]);
    }

    #[test]
    fn state_filters_and_unknown_names() {
        let mut req = ListTransactionsRequest::default();
        req.state_filters = vec![sb("Ongoing"), sb("Bogus")];
        let f = Filters::parse(&req).expect("filters");
        assert_eq!(f.unknown_states, ["Bogus"]);
        assert_eq!(ids(req, 20_000), ["pay-0", "ship-0"]);
        // Only an unknown name: nothing matches.
        let mut req = ListTransactionsRequest::default();
        req.state_filters = vec![sb("ongoing")];
        assert!(ids(req, 20_000).is_empty());
        // Dead is never listed, even when asked for.
        let mut req = ListTransactionsRequest::default();
        req.state_filters = vec![sb("Dead")];
        assert!(ids(req, 20_000).is_empty());
    }

    #[test]
    fn producer_id_filter() {
        let mut req = ListTransactionsRequest::default();
        req.producer_id_filters = vec![ProducerId(3), ProducerId(99)];
        assert_eq!(ids(req, 20_000), ["ship-0"]);
    }

    #[test]
    fn duration_filter_keeps_transactions_running_longer_than_it() {
        let mut req = ListTransactionsRequest::default();
        req.duration_filter = 1_000;
        // pay-0 has run 10 s, ship-0 0.5 s; ids without an open transaction
        // (start -1) pass, as in Kafka.
        assert_eq!(ids(req, 20_000), ["pay-0", "pay-1", "fresh"]);
        let mut req = ListTransactionsRequest::default();
        req.duration_filter = 10_000;
        req.state_filters = vec![sb("Ongoing")];
        // Exactly 10 s is not longer than 10 s.
        assert!(ids(req, 20_000).is_empty());
    }

    #[test]
    fn pattern_matches_the_whole_id() {
        let with = |p: &str| {
            let mut req = ListTransactionsRequest::default();
            req.transactional_id_pattern = Some(sb(p));
            req
        };
        assert_eq!(ids(with("pay-.*"), 0), ["pay-0", "pay-1"]);
        assert!(ids(with("pay"), 0).is_empty(), "a prefix is not a match");
        assert_eq!(ids(with("pay-0|ship-0"), 0), ["pay-0", "ship-0"]);
        assert_eq!(ids(with("[a-z]+-[1-9]"), 0), ["pay-1"]);
        assert_eq!(ids(with(""), 0).len(), 4, "empty: no filter");
        for bad in ["pay-(", "a)|(b", "*"] {
            assert_eq!(
                Filters::parse(&with(bad)).err(),
                Some(FilterError::InvalidPattern),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_pattern_too_large_to_compile_is_refused_not_built() {
        let mut req = ListTransactionsRequest::default();
        req.transactional_id_pattern = Some(sb("(a{1000}){1000}"));
        assert_eq!(
            Filters::parse(&req).err(),
            Some(FilterError::InvalidPattern)
        );
        // Too long to parse: refused by its length.
        req.transactional_id_pattern = Some(sb("a".repeat(PATTERN_BYTES_MAX + 1)));
        assert_eq!(
            Filters::parse(&req).err(),
            Some(FilterError::InvalidPattern)
        );
        req.transactional_id_pattern = Some(sb("a".repeat(PATTERN_BYTES_MAX)));
        assert!(Filters::parse(&req).is_ok());
    }
}
