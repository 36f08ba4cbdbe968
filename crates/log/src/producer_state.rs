//! Idempotent producer state for one partition: per producer id, its epoch and
//! the last five batches' sequence ranges (as Kafka keeps), so that a retried
//! batch is answered with its original offset instead of being written twice.
//!
//! Derived state: rebuilt at open by reading the batch headers of the log.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::batch::BatchHeader;
use crate::error::LogError;

/// Kafka keeps the metadata of this many recent batches per producer.
pub const PRODUCER_BATCHES_CACHED: usize = 5;
/// Bound on distinct producers tracked per partition; the least recently
/// written one is forgotten beyond it.
pub const PRODUCERS_PER_PARTITION_MAX: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachedBatch {
    pub first_sequence: i32,
    pub last_sequence: i32,
    pub base_offset: i64,
}

#[derive(Debug, Clone, Default)]
pub struct ProducerEntry {
    pub epoch: i16,
    pub batches: VecDeque<CachedBatch>,
    /// Log offset of this producer's last write, used to evict the oldest producer.
    pub last_offset: i64,
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
}

fn next_sequence(seq: i32) -> i32 {
    if seq == i32::MAX { 0 } else { seq + 1 }
}

impl ProducerStateTable {
    /// Puts back a producer's state read from elsewhere (another engine's store).
    pub fn insert(&mut self, producer_id: i64, entry: ProducerEntry) {
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

    /// Checks epoch and sequence of a batch before it is written.
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
        if h.producer_epoch > entry.epoch {
            if h.base_sequence != 0 {
                return Err(LogError::OutOfOrderSequence {
                    expected: 0,
                    got: h.base_sequence,
                });
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
        Ok(SequenceVerdict::Append)
    }

    /// Records a batch that was written (offset assigned).
    pub fn record(&mut self, h: &BatchHeader) {
        if !h.has_producer_id() || h.base_sequence < 0 {
            return;
        }
        if !self.producers.contains_key(&h.producer_id)
            && self.producers.len() >= PRODUCERS_PER_PARTITION_MAX
            && let Some((&oldest, _)) = self.producers.iter().min_by_key(|(_, e)| e.last_offset)
        {
            self.producers.remove(&oldest);
        }
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
    }

    /// Encodes the table as of log offset `offset` (a batch boundary):
    /// line 1 `herald-producer-snapshot 1 <offset> <producers>`, then one line per
    /// producer: `<id> <epoch> <last offset> <first seq>:<last seq>:<base offset>,...`.
    pub fn encode_snapshot(&self, offset: i64) -> String {
        let mut out = format!(
            "herald-producer-snapshot 1 {offset} {}\n",
            self.producers.len()
        );
        for (id, e) in &self.producers {
            let batches: Vec<String> = e
                .batches
                .iter()
                .map(|b| format!("{}:{}:{}", b.first_sequence, b.last_sequence, b.base_offset))
                .collect();
            out.push_str(&format!(
                "{id} {} {} {}\n",
                e.epoch,
                e.last_offset,
                batches.join(",")
            ));
        }
        out
    }

    /// Decodes [`ProducerStateTable::encode_snapshot`]; None if anything is off
    /// (the caller then rebuilds from the log).
    pub fn decode_snapshot(text: &str) -> Option<(i64, ProducerStateTable)> {
        let mut lines = text.lines();
        let head: Vec<&str> = lines.next()?.split(' ').collect();
        if head.len() != 4 || head[0] != "herald-producer-snapshot" || head[1] != "1" {
            return None;
        }
        let offset: i64 = head[2].parse().ok()?;
        let count: usize = head[3].parse().ok()?;
        let mut table = ProducerStateTable::default();
        for line in lines {
            let f: Vec<&str> = line.split(' ').collect();
            if f.len() != 4 {
                return None;
            }
            let mut entry = ProducerEntry {
                epoch: f[1].parse().ok()?,
                batches: VecDeque::new(),
                last_offset: f[2].parse().ok()?,
            };
            for b in f[3].split(',').filter(|b| !b.is_empty()) {
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
            table.producers.insert(f[0].parse().ok()?, entry);
        }
        (table.producers.len() == count && count <= PRODUCERS_PER_PARTITION_MAX)
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
}
