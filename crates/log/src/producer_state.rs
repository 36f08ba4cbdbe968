//! Producer state for one partition: per producer id, its epoch, the last
//! five batches' sequence ranges (as Kafka keeps), so that a retried batch is
//! answered with its original offset instead of being written twice, and its
//! transaction on this partition (Kafka's `ProducerStateManager`): the first
//! offset of the transaction still open, the coordinator epoch of its last
//! marker.
//!
//! Derived state: rebuilt at open from the producer snapshot and the batch
//! headers (and markers) of the log after it.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use crate::batch::{BatchHeader, EndTxnMarker};
use crate::error::LogError;

/// Kafka keeps the metadata of this many recent batches per producer.
pub const PRODUCER_BATCHES_CACHED: usize = 5;
/// Bound on distinct producers tracked per partition; the least recently
/// written one without an open transaction is forgotten beyond it.
pub const PRODUCERS_PER_PARTITION_MAX: usize = 10_000;
/// Bound on transactions open at once on one partition: a producer with an
/// open transaction is never forgotten (the last stable offset depends on
/// it), so this bounds the table too. A batch that would open one more is
/// refused (retriable) until a marker closes one.
pub const OPEN_TXNS_PER_PARTITION_MAX: usize = 10_000;
/// The most producers a table holds: beyond `PRODUCERS_PER_PARTITION_MAX`
/// only while every one has an open transaction (none may be evicted), and
/// one more then.
pub const PRODUCERS_TRACKED_MAX: usize =
    if PRODUCERS_PER_PARTITION_MAX > OPEN_TXNS_PER_PARTITION_MAX {
        PRODUCERS_PER_PARTITION_MAX
    } else {
        OPEN_TXNS_PER_PARTITION_MAX
    } + 1;
/// A producer snapshot larger than this is not read (it is corrupt): every
/// line is under 200 bytes and there are at most the two bounds above.
pub const SNAPSHOT_BYTES_MAX: u64 = 8 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachedBatch {
    pub first_sequence: i32,
    pub last_sequence: i32,
    pub base_offset: i64,
}

#[derive(Debug, Clone)]
pub struct ProducerEntry {
    pub epoch: i16,
    pub batches: VecDeque<CachedBatch>,
    /// Log offset of this producer's last write, used to evict the oldest producer.
    pub last_offset: i64,
    /// Max timestamp of its last batch or marker, -1 if unknown.
    pub last_timestamp_ms: i64,
    /// The coordinator epoch of the last marker written for it, -1 if none.
    pub coordinator_epoch: i32,
    /// First offset of its open transaction on this partition: set by its
    /// first transactional batch after its last marker, cleared by a marker.
    pub txn_first_offset: Option<i64>,
}

impl Default for ProducerEntry {
    fn default() -> Self {
        ProducerEntry {
            epoch: 0,
            batches: VecDeque::new(),
            last_offset: 0,
            last_timestamp_ms: -1,
            coordinator_epoch: -1,
            txn_first_offset: None,
        }
    }
}

impl ProducerEntry {
    /// The last sequence written, -1 if none is cached.
    pub fn last_sequence(&self) -> i32 {
        self.batches.back().map(|b| b.last_sequence).unwrap_or(-1)
    }
}

/// What the log must do with an incoming batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceVerdict {
    Append,
    Duplicate { base_offset: i64 },
}

#[derive(Debug, Default)]
pub struct ProducerStateTable {
    producers: HashMap<i64, ProducerEntry>,
    /// Open transactions: first offset → producer id. The smallest key bounds
    /// the last stable offset; O(log n) per transaction begun or ended, nothing
    /// for other writes.
    open_txns: BTreeMap<i64, i64>,
}

fn next_sequence(seq: i32) -> i32 {
    if seq == i32::MAX { 0 } else { seq + 1 }
}

impl ProducerStateTable {
    /// Puts back a producer's state read from elsewhere (another engine's store).
    pub fn insert(&mut self, producer_id: i64, entry: ProducerEntry) {
        if let Some(old) = self
            .producers
            .get(&producer_id)
            .and_then(|e| e.txn_first_offset)
        {
            self.open_txns.remove(&old);
        }
        if let Some(first) = entry.txn_first_offset {
            self.open_txns.insert(first, producer_id);
        }
        self.producers.insert(producer_id, entry);
    }
    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }
    pub fn len(&self) -> usize {
        self.producers.len()
    }
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
    /// Every producer and its state, in no order.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &ProducerEntry)> {
        self.producers.iter().map(|(&id, e)| (id, e))
    }
    /// The first offset of the oldest open transaction.
    pub fn first_open_txn_offset(&self) -> Option<i64> {
        self.open_txns.keys().next().copied()
    }
    /// The first offset of the oldest open transaction of another producer.
    pub fn first_open_txn_offset_except(&self, producer_id: i64) -> Option<i64> {
        self.open_txns
            .iter()
            .find(|&(_, &p)| p != producer_id)
            .map(|(&first, _)| first)
    }
    pub fn open_txn_count(&self) -> usize {
        self.open_txns.len()
    }
    /// First offset of the producer's open transaction.
    pub fn open_txn_of(&self, producer_id: i64) -> Option<i64> {
        self.producers
            .get(&producer_id)
            .and_then(|e| e.txn_first_offset)
    }

    /// Checks epoch, sequence and transaction state of a batch before it is written.
    pub fn check(&self, h: &BatchHeader) -> Result<SequenceVerdict, LogError> {
        if !h.has_producer_id() || h.base_sequence < 0 {
            return Ok(SequenceVerdict::Append);
        }
        let Some(entry) = self.producers.get(&h.producer_id) else {
            // Unknown producer (new, or its state expired with retention): accept.
            return Ok(SequenceVerdict::Append);
        };
        if h.producer_epoch < entry.epoch {
            return Err(LogError::InvalidProducerEpoch {
                got: h.producer_epoch,
                current: entry.epoch,
            });
        }
        // Kafka: a producer whose transaction is open here writes only
        // transactional batches until a marker ends it.
        let txn_state_ok = h.is_transactional() || entry.txn_first_offset.is_none();
        if h.producer_epoch > entry.epoch {
            if h.base_sequence != 0 {
                return Err(LogError::OutOfOrderSequence {
                    expected: 0,
                    got: h.base_sequence,
                });
            }
            if !txn_state_ok {
                return Err(LogError::InvalidTxnState(
                    "non-transactional batch from a producer whose transaction is open",
                ));
            }
            return Ok(SequenceVerdict::Append);
        }
        let last_seq = h.last_sequence();
        if let Some(b) = entry
            .batches
            .iter()
            .find(|b| b.first_sequence == h.base_sequence && b.last_sequence == last_seq)
        {
            return Ok(SequenceVerdict::Duplicate {
                base_offset: b.base_offset,
            });
        }
        if let Some(last) = entry.batches.back() {
            let expected = next_sequence(last.last_sequence);
            if h.base_sequence != expected {
                return Err(LogError::OutOfOrderSequence {
                    expected,
                    got: h.base_sequence,
                });
            }
        }
        if !txn_state_ok {
            return Err(LogError::InvalidTxnState(
                "non-transactional batch from a producer whose transaction is open",
            ));
        }
        Ok(SequenceVerdict::Append)
    }

    /// Makes room for a new producer: beyond the bound, the one written
    /// longest ago without an open transaction is forgotten (O(producers),
    /// only when a new producer arrives at a full table).
    fn evict_for(&mut self, producer_id: i64) {
        if self.producers.contains_key(&producer_id)
            || self.producers.len() < PRODUCERS_PER_PARTITION_MAX
        {
            return;
        }
        if let Some((&oldest, _)) = self
            .producers
            .iter()
            .filter(|(_, e)| e.txn_first_offset.is_none())
            .min_by_key(|(_, e)| e.last_offset)
        {
            self.producers.remove(&oldest);
        }
    }

    /// Records a data batch that was written (offset assigned).
    pub fn record(&mut self, h: &BatchHeader) {
        if !h.has_producer_id() || h.base_sequence < 0 {
            return;
        }
        self.evict_for(h.producer_id);
        let entry = self.producers.entry(h.producer_id).or_default();
        if h.producer_epoch != entry.epoch {
            entry.epoch = h.producer_epoch;
            entry.batches.clear();
        }
        entry.batches.push_back(CachedBatch {
            first_sequence: h.base_sequence,
            last_sequence: h.last_sequence(),
            base_offset: h.base_offset,
        });
        while entry.batches.len() > PRODUCER_BATCHES_CACHED {
            entry.batches.pop_front();
        }
        entry.last_offset = h.last_offset();
        entry.last_timestamp_ms = h.max_timestamp;
        if h.is_transactional() && entry.txn_first_offset.is_none() {
            entry.txn_first_offset = Some(h.base_offset);
            self.open_txns.insert(h.base_offset, h.producer_id);
        }
    }

    /// Checks a transaction marker before it is written (Kafka's
    /// `ProducerAppendInfo.appendEndTxnMarker`): its producer epoch may not be
    /// older than the producer's, nor its coordinator epoch older than the
    /// last marker's.
    pub fn check_marker(&self, marker: &EndTxnMarker) -> Result<(), LogError> {
        let Some(entry) = self.producers.get(&marker.producer_id) else {
            return Ok(());
        };
        if marker.producer_epoch < entry.epoch {
            return Err(LogError::InvalidProducerEpoch {
                got: marker.producer_epoch,
                current: entry.epoch,
            });
        }
        if marker.coordinator_epoch < entry.coordinator_epoch {
            return Err(LogError::CoordinatorFenced {
                got: marker.coordinator_epoch,
                current: entry.coordinator_epoch,
            });
        }
        Ok(())
    }

    /// Records a marker written at `h` (its control batch): ends the
    /// producer's open transaction, whose first offset is returned. A marker
    /// of the producer's epoch leaves its cached batches alone; one of a
    /// higher epoch (the coordinator fencing the producer) takes that epoch
    /// and drops them, as Kafka's `ProducerStateEntry.update` does, so that the
    /// re-initialised producer may start again at sequence 0.
    pub fn record_marker(&mut self, h: &BatchHeader, marker: &EndTxnMarker) -> Option<i64> {
        self.evict_for(marker.producer_id);
        let known = self.producers.contains_key(&marker.producer_id);
        let entry = self.producers.entry(marker.producer_id).or_default();
        if !known || marker.producer_epoch != entry.epoch {
            entry.epoch = marker.producer_epoch;
            entry.batches.clear();
        }
        let ended = entry.txn_first_offset.take();
        if let Some(first) = ended {
            self.open_txns.remove(&first);
        }
        entry.coordinator_epoch = marker.coordinator_epoch;
        entry.last_offset = h.last_offset();
        entry.last_timestamp_ms = h.max_timestamp;
        ended
    }

    /// Encodes the table as of log offset `offset` (a batch boundary):
    /// line 1 `herald-producer-snapshot 2 <offset> <producers>`, then one line per
    /// producer: `<id> <epoch> <last offset> <batches> <txn first offset>
    /// <coordinator epoch> <last timestamp>`, where `<batches>` is
    /// `<first seq>:<last seq>:<base offset>,...` (`-` if none) and the
    /// transaction's first offset is -1 when none is open.
    pub fn encode_snapshot(&self, offset: i64) -> String {
        let mut out = format!(
            "herald-producer-snapshot 2 {offset} {}\n",
            self.producers.len()
        );
        for (id, e) in &self.producers {
            let batches: Vec<String> = e
                .batches
                .iter()
                .map(|b| format!("{}:{}:{}", b.first_sequence, b.last_sequence, b.base_offset))
                .collect();
            let batches = if batches.is_empty() {
                "-".to_string()
            } else {
                batches.join(",")
            };
            out.push_str(&format!(
                "{id} {} {} {batches} {} {} {}\n",
                e.epoch,
                e.last_offset,
                e.txn_first_offset.unwrap_or(-1),
                e.coordinator_epoch,
                e.last_timestamp_ms,
            ));
        }
        out
    }

    /// Decodes [`ProducerStateTable::encode_snapshot`] (version 2, or version 1:
    /// `<id> <epoch> <last offset> <batches>`, without transactions); None if
    /// anything is off (the caller then rebuilds from the log).
    pub fn decode_snapshot(text: &str) -> Option<(i64, ProducerStateTable)> {
        let mut lines = text.lines();
        let head: Vec<&str> = lines.next()?.split(' ').collect();
        if head.len() != 4 || head[0] != "herald-producer-snapshot" {
            return None;
        }
        let version: u8 = match head[1] {
            "1" => 1,
            "2" => 2,
            _ => return None,
        };
        let offset: i64 = head[2].parse().ok()?;
        let count: usize = head[3].parse().ok()?;
        if count > PRODUCERS_TRACKED_MAX {
            return None;
        }
        let mut table = ProducerStateTable::default();
        for line in lines {
            let f: Vec<&str> = line.split(' ').collect();
            if f.len() != if version == 1 { 4 } else { 7 } {
                return None;
            }
            let mut entry = ProducerEntry {
                epoch: f[1].parse().ok()?,
                last_offset: f[2].parse().ok()?,
                ..ProducerEntry::default()
            };
            for b in f[3].split(',').filter(|b| !b.is_empty() && *b != "-") {
                let mut parts = b.split(':');
                entry.batches.push_back(CachedBatch {
                    first_sequence: parts.next()?.parse().ok()?,
                    last_sequence: parts.next()?.parse().ok()?,
                    base_offset: parts.next()?.parse().ok()?,
                });
                if entry.batches.len() > PRODUCER_BATCHES_CACHED {
                    return None;
                }
            }
            if version == 2 {
                let first: i64 = f[4].parse().ok()?;
                if first < -1 {
                    return None;
                }
                entry.txn_first_offset = (first >= 0).then_some(first);
                entry.coordinator_epoch = f[5].parse().ok()?;
                entry.last_timestamp_ms = f[6].parse().ok()?;
            }
            let id: i64 = f[0].parse().ok()?;
            if let Some(first) = entry.txn_first_offset
                && table.open_txns.insert(first, id).is_some()
            {
                return None; // two transactions cannot start at one offset
            }
            if table.producers.insert(id, entry).is_some() || table.producers.len() > count {
                return None;
            }
        }
        (table.producers.len() == count && table.open_txns.len() <= OPEN_TXNS_PER_PARTITION_MAX)
            .then_some((offset, table))
    }

    /// Base offset of each producer's last batch. Compaction keeps these
    /// batches (empty if all their records go), as Kafka does, so that a
    /// rebuild from batch headers alone still finds each producer's epoch and
    /// last sequence.
    pub fn last_batch_base_offsets(&self) -> HashSet<i64> {
        self.producers
            .values()
            .filter_map(|e| e.batches.back().map(|b| b.base_offset))
            .collect()
    }

    /// Forgets every producer (before a rebuild from the log).
    pub fn clear(&mut self) {
        self.producers.clear();
        self.open_txns.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{self, build};

    fn header(pid: i64, epoch: i16, seq: i32, n: usize, base: i64) -> BatchHeader {
        let recs: Vec<_> = (0..n)
            .map(|_| build::SimpleRecord {
                key: None,
                value: Some(b"v"),
                timestamp_ms: 0,
            })
            .collect();
        let mut b = build::batch(&recs, pid, epoch, seq);
        batch::assign_offset(&mut b, base, 0);
        BatchHeader::parse(&b).unwrap()
    }

    #[test]
    fn duplicates_of_the_last_five_batches_are_recognised() {
        let mut t = ProducerStateTable::default();
        for i in 0..6 {
            let h = header(7, 0, i * 2, 2, 100 + i as i64 * 2);
            assert_eq!(t.check(&h).unwrap(), SequenceVerdict::Append);
            t.record(&h);
        }
        // Batch 1 (seq 2..3) is among the last five, batch 0 is not.
        assert_eq!(
            t.check(&header(7, 0, 2, 2, 0)).unwrap(),
            SequenceVerdict::Duplicate { base_offset: 102 }
        );
        assert!(matches!(
            t.check(&header(7, 0, 0, 2, 0)),
            Err(LogError::OutOfOrderSequence { .. })
        ));
        assert!(matches!(
            t.check(&header(7, 0, 14, 1, 0)),
            Err(LogError::OutOfOrderSequence { .. })
        ));
        assert_eq!(
            t.check(&header(7, 0, 12, 1, 0)).unwrap(),
            SequenceVerdict::Append
        );
        // A newer epoch must restart at 0; an older epoch is fenced.
        assert!(t.check(&header(7, 1, 5, 1, 0)).is_err());
        assert_eq!(
            t.check(&header(7, 1, 0, 1, 0)).unwrap(),
            SequenceVerdict::Append
        );
        t.record(&header(7, 1, 0, 1, 200));
        assert!(matches!(
            t.check(&header(7, 0, 12, 1, 0)),
            Err(LogError::InvalidProducerEpoch { .. })
        ));
    }

    fn txn_header(pid: i64, epoch: i16, seq: i32, base: i64) -> BatchHeader {
        let mut h = header(pid, epoch, seq, 1, base);
        h.attributes |= batch::ATTRIBUTE_TRANSACTIONAL;
        h
    }

    fn marker_at(pid: i64, epoch: i16, commit: bool, offset: i64) -> (BatchHeader, EndTxnMarker) {
        let m = EndTxnMarker {
            producer_id: pid,
            producer_epoch: epoch,
            commit,
            coordinator_epoch: 0,
        };
        let mut b = build::marker(&m, 0);
        batch::assign_offset(&mut b, offset, 0);
        (BatchHeader::parse(&b).unwrap(), m)
    }

    #[test]
    fn a_producer_with_an_open_transaction_is_never_evicted() {
        let mut t = ProducerStateTable::default();
        // Producer 1 writes first (the oldest) and opens a transaction.
        t.record(&txn_header(1, 0, 0, 0));
        let n = PRODUCERS_PER_PARTITION_MAX as i64;
        for pid in 2..=n + 5 {
            t.record(&header(pid, 0, 0, 1, pid));
        }
        assert_eq!(t.len(), PRODUCERS_PER_PARTITION_MAX);
        assert_eq!(t.open_txn_of(1), Some(0), "kept although the oldest");
        for pid in 2..=6 {
            assert!(
                t.get(pid).is_none(),
                "{pid}: the oldest without a transaction went"
            );
        }
        assert_eq!(t.first_open_txn_offset(), Some(0));
        // Ended (its marker is older than every other write), it may go.
        let (h, m) = marker_at(1, 0, true, 1);
        assert_eq!(t.record_marker(&h, &m), Some(0));
        assert_eq!(t.first_open_txn_offset(), None);
        t.record(&header(n + 10, 0, 0, 1, n + 10));
        assert!(t.get(1).is_none());
        assert_eq!(t.len(), PRODUCERS_PER_PARTITION_MAX);

        // Every producer in a transaction: a new one is still tracked, one
        // beyond the bound, and replaces only others without one.
        let mut t = ProducerStateTable::default();
        for pid in 0..OPEN_TXNS_PER_PARTITION_MAX as i64 {
            t.record(&txn_header(pid, 0, 0, pid));
        }
        t.record(&header(-5 + i64::MAX, 0, 0, 1, n * 2));
        t.record(&header(-6 + i64::MAX, 0, 0, 1, n * 2 + 1));
        assert_eq!(t.len(), PRODUCERS_TRACKED_MAX);
        assert_eq!(t.open_txn_count(), OPEN_TXNS_PER_PARTITION_MAX);
        assert!(t.get(-6 + i64::MAX).is_some());
    }

    #[test]
    fn open_transactions_order_the_lso_and_survive_the_snapshot() {
        let mut t = ProducerStateTable::default();
        t.record(&txn_header(1, 0, 0, 10));
        t.record(&txn_header(2, 0, 0, 11));
        t.record(&txn_header(1, 0, 1, 12));
        assert_eq!(t.first_open_txn_offset(), Some(10));
        assert_eq!(t.first_open_txn_offset_except(1), Some(11));
        let (h, m) = marker_at(1, 0, false, 13);
        assert_eq!(t.record_marker(&h, &m), Some(10));
        assert_eq!(t.first_open_txn_offset(), Some(11));
        let text = t.encode_snapshot(14);
        let (offset, back) = ProducerStateTable::decode_snapshot(&text).unwrap();
        assert_eq!(offset, 14);
        assert_eq!(back.first_open_txn_offset(), Some(11));
        assert_eq!(back.open_txn_of(1), None);
        let p1 = back.get(1).unwrap();
        assert_eq!(
            (p1.coordinator_epoch, p1.last_sequence(), p1.last_offset),
            (0, 1, 13)
        );
        // Two transactions at one offset, or a count that lies: refused.
        let dup = "herald-producer-snapshot 2 20 2\n1 0 10 0:0:10 10 -1 5\n2 0 11 0:0:11 10 -1 5\n";
        assert!(ProducerStateTable::decode_snapshot(dup).is_none());
        let lies = "herald-producer-snapshot 2 20 3\n1 0 10 - -1 -1 5\n";
        assert!(ProducerStateTable::decode_snapshot(lies).is_none());
        let v1 = "herald-producer-snapshot 1 20 1\n1 0 10 0:0:10\n";
        let (_, t1) = ProducerStateTable::decode_snapshot(v1).unwrap();
        assert_eq!(t1.get(1).unwrap().txn_first_offset, None);
        assert!(ProducerStateTable::decode_snapshot("herald-producer-snapshot 3 20 0\n").is_none());
    }
}
