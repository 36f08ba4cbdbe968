//! What a partition does for transactions (KIP-98), on top of the log:
//! transaction markers, read_committed reads below the last stable offset
//! with the aborted transactions they overlap, and the recovery of
//! producer state and of the aborted transaction indexes.

use std::io::IoSlice;

use super::{PRODUCER_SNAPSHOT_FILE, PartitionLog};
use crate::batch::{self, BatchHeader, EndTxnMarker};
use crate::error::Result;
use crate::producer_state::{ProducerStateTable, SNAPSHOT_BYTES_MAX};
use crate::segment::ReadPlan;
use crate::txn_index::{AbortedTxnEntry, Collected, TxnIndexView};

/// Most aborted transactions one read_committed read reports. One batch
/// overlaps at most the transactions open at its offset (at most
/// `OPEN_TXNS_PER_PARTITION_MAX`) plus its own: a read that would report more
/// is cut to its first batch (see [`AbortedTxnsPlan::collect`]).
pub const ABORTED_TXNS_PER_READ_MAX: usize =
    crate::producer_state::OPEN_TXNS_PER_PARTITION_MAX + 100;

/// An aborted transaction a read_committed read reports: the consumer drops
/// this producer's transactional batches from `first_offset` up to its abort
/// marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
}

/// A read_committed read planned under the log's lock, to run after it.
#[derive(Debug)]
pub struct CommittedRead {
    /// Whole batches below the last stable offset (None: nothing there).
    pub plan: Option<ReadPlan>,
    pub aborted: AbortedTxnsPlan,
    pub last_stable: i64,
}

/// The aborted transaction indexes a read_committed read may need: those
/// of the segment holding the fetch offset and every later one (an aborted
/// transaction overlapping the read has its marker at or after the fetch
/// offset, and its entry sits in the marker's segment).
#[derive(Debug, Default)]
pub struct AbortedTxnsPlan {
    views: Vec<TxnIndexView>,
}

impl AbortedTxnsPlan {
    /// The aborted transactions overlapping what a read returned: entries
    /// whose marker is at or after `fetch_offset` and whose first offset is
    /// below the end of `records` (Kafka's `collectAbortedTxns` with the
    /// fetch's upper bound). Returns the records to send, cut to their
    /// first batch if more than [`ABORTED_TXNS_PER_READ_MAX`] transactions
    /// overlap the whole (after which the list is truncated with a warning:
    /// a log Herald wrote never gets there).
    pub fn collect<'a>(
        &self,
        fetch_offset: i64,
        records: &'a [u8],
    ) -> Result<(&'a [u8], Vec<AbortedTxn>)> {
        if self.views.is_empty() {
            return Ok((records, Vec::new()));
        }
        let Some(end) = batch::end_of_batches(records) else {
            return Ok((records, Vec::new()));
        };
        let mut out = Vec::new();
        if self.collect_until(fetch_offset, end.next_offset, &mut out)? {
            return Ok((records, to_aborted(&out)));
        }
        let first = &records[..end.first_batch_bytes];
        let first_end = batch::BatchHeader::parse(first)?.next_offset();
        out.clear();
        if !self.collect_until(fetch_offset, first_end, &mut out)? {
            tracing::warn!(
                fetch_offset,
                limit = ABORTED_TXNS_PER_READ_MAX,
                "more aborted transactions overlap one batch than a read reports; list truncated"
            );
        }
        Ok((first, to_aborted(&out)))
    }

    /// False if the limit was reached first.
    fn collect_until(
        &self,
        fetch_offset: i64,
        upper_bound: i64,
        out: &mut Vec<AbortedTxnEntry>,
    ) -> Result<bool> {
        for v in &self.views {
            match v.collect(fetch_offset, upper_bound, out, ABORTED_TXNS_PER_READ_MAX)? {
                Collected::Complete => return Ok(true),
                Collected::Continue => {}
                Collected::Full => return Ok(false),
            }
        }
        Ok(true)
    }
}

fn to_aborted(entries: &[AbortedTxnEntry]) -> Vec<AbortedTxn> {
    entries
        .iter()
        .map(|e| AbortedTxn {
            producer_id: e.producer_id,
            first_offset: e.first_offset,
        })
        .collect()
}

impl PartitionLog {
    /// A read_committed Fetch: as [`PartitionLog::fetch_plan`], but nothing
    /// at or above the last stable offset, and the aborted transaction
    /// indexes to report the range's aborted transactions from.
    pub fn fetch_plan_committed(&self, offset: i64, max_bytes: usize) -> Result<CommittedRead> {
        let last_stable = self.last_stable_offset();
        let plan = if last_stable >= self.high_watermark() {
            self.fetch_plan(offset, max_bytes)?
        } else {
            self.check_offset(offset)?;
            if offset >= last_stable {
                None
            } else {
                let limit = self.boundary_at(last_stable)?;
                self.plan_until(offset, max_bytes, Some(limit))?
            }
        };
        let mut aborted = AbortedTxnsPlan::default();
        if plan.is_some() && self.aborted_txns_indexed {
            let from = self
                .segments
                .range(..=offset)
                .next_back()
                .map(|(&b, _)| b)
                .unwrap_or(i64::MIN);
            aborted.views = self
                .segments
                .range(from..)
                .filter_map(|(_, s)| s.txn_index().view())
                .collect();
        }
        Ok(CommittedRead {
            plan,
            aborted,
            last_stable,
        })
    }

    /// The batch boundary at `offset` (the base of a batch, or a segment's
    /// end): where a read must stop to return nothing at or after it.
    fn boundary_at(&self, offset: i64) -> Result<super::Durable> {
        let Some((_, seg)) = self.segments.range(..=offset).next_back() else {
            return Ok(super::Durable {
                offset,
                segment_base: i64::MIN,
                position: 0,
            });
        };
        // The batch holding `offset` starts at or before it: stopping at its
        // position never returns `offset`.
        let position = match seg.find_position(offset)? {
            Some((pos, _)) => pos,
            None => seg.size_bytes(),
        };
        Ok(super::Durable {
            offset,
            segment_base: seg.base_offset,
            position,
        })
    }

    /// Writes a transaction marker (a control batch, see
    /// [`batch::build::marker`]) at the log end, stamped `now_ms`: ends the
    /// producer's open transaction here (an ABORT that ends one also gets
    /// an aborted transaction index entry, written with it). A partition
    /// where the producer has no open transaction still gets the marker, as
    /// Kafka writes it. Refused: a producer epoch older than the producer's
    /// (InvalidProducerEpoch), a coordinator epoch older than its last
    /// marker's (CoordinatorFenced). Failures are those of an append.
    pub fn write_marker(
        &mut self,
        marker: &EndTxnMarker,
        now_ms: i64,
    ) -> Result<super::AppendInfo> {
        self.check_online()?;
        self.producers.check_marker(marker)?;
        let mut bytes = batch::build::marker(marker, now_ms);
        if let Err(e) = self.maybe_roll(bytes.len() as u64, 1) {
            return Err(self.fail_unless_space(e));
        }
        let offset = self.log_end_offset();
        batch::assign_offset(&mut bytes, offset, 0);
        let header = BatchHeader::parse(&bytes)?;
        debug_assert!(batch::validate(&bytes).is_ok());
        let entry = if marker.commit {
            None
        } else {
            self.aborted_entry(marker.producer_id, offset)
        };
        let interval = self.config.index_interval_bytes;
        let r = self.active_mut().append_with(
            &[IoSlice::new(&bytes)],
            &[header],
            interval,
            entry.as_ref(),
        );
        self.check_appended(r)?;
        self.aborted_txns_indexed |= entry.is_some();
        let ended = self.producers.record_marker(&header, marker);
        if let Some(first) = ended
            && self.config.fsync_on_ack()
        {
            self.completed_unstable.push_back((first, offset));
        }
        self.unflushed_messages += 1;
        Ok(super::AppendInfo {
            base_offset: offset,
            last_offset: offset,
            log_append_time_ms: -1,
            duplicate: false,
            records: 1,
        })
    }

    /// The index entry for an ABORT of `producer_id` at `marker_offset`, if
    /// it ends an open transaction. Its last stable offset is Kafka's
    /// `ProducerStateManager.lastStableOffset(completedTxn)`: the first offset
    /// of the oldest other open transaction, else the marker's offset + 1.
    fn aborted_entry(&self, producer_id: i64, marker_offset: i64) -> Option<AbortedTxnEntry> {
        aborted_entry(&self.producers, producer_id, marker_offset)
    }

    /// Restores producer state: the snapshot (if valid and not past the log
    /// end) plus the batches and markers written after it; else every batch
    /// header in the log. The aborted transaction index of each segment
    /// replayed is rebuilt from the same point (entries for markers before it
    /// stay; those at or after it are written again by the replay), so that it
    /// holds exactly one entry per ABORT that ended an open transaction.
    pub(super) fn rebuild_producer_state(&mut self) -> Result<()> {
        self.producers.clear();
        self.completed_unstable.clear();
        let end = self.log_end_offset();
        let snapshot = read_snapshot(&self.dir.join(PRODUCER_SNAPSHOT_FILE))
            .and_then(|t| ProducerStateTable::decode_snapshot(&t))
            .filter(|(offset, _)| *offset <= end);
        let from = match snapshot {
            Some((offset, table)) => {
                self.producers = table;
                offset
            }
            None => i64::MIN,
        };
        for seg in self.segments.values_mut() {
            if seg.next_offset() <= from {
                continue;
            }
            let mut rewritten = seg.txn_index_mut().truncate_from_offset(from)?;
            let mut pos = 0;
            while pos < seg.size_bytes() {
                let Some(h) = seg.header_at(pos)? else { break };
                if h.base_offset >= from {
                    if !h.is_control() {
                        self.producers.record(&h);
                    } else if let Some(m) = read_marker(seg, pos, &h)? {
                        let entry = (!m.commit)
                            .then(|| aborted_entry(&self.producers, m.producer_id, h.base_offset))
                            .flatten();
                        self.producers.record_marker(&h, &m);
                        if let Some(e) = entry {
                            seg.txn_index_mut().append(&e)?;
                            rewritten = true;
                        }
                    }
                }
                pos += h.total_bytes() as u64;
            }
            if rewritten {
                // Closed segments' indexes are trusted at the next open: what
                // recovery wrote must be as durable as what a roll syncs.
                seg.txn_index().sync()?;
            }
        }
        Ok(())
    }
}

fn aborted_entry(
    producers: &ProducerStateTable,
    producer_id: i64,
    marker_offset: i64,
) -> Option<AbortedTxnEntry> {
    let first_offset = producers.open_txn_of(producer_id)?;
    let last_stable_offset = producers
        .first_open_txn_offset_except(producer_id)
        .unwrap_or(marker_offset + 1);
    Some(AbortedTxnEntry {
        producer_id,
        first_offset,
        last_offset: marker_offset,
        last_stable_offset,
    })
}

/// The marker of the control batch at `pos`, if it is one Herald reads
/// (bounded: a control batch larger than any marker is not read whole).
fn read_marker(
    seg: &crate::segment::Segment,
    pos: u64,
    h: &BatchHeader,
) -> Result<Option<EndTxnMarker>> {
    if !h.has_producer_id() || h.total_bytes() > batch::MARKER_BATCH_BYTES_MAX {
        return Ok(None);
    }
    let bytes = seg.read_batch(pos, h)?;
    if batch::validate(&bytes).is_err() {
        return Ok(None);
    }
    Ok(batch::parse_marker(&bytes, h))
}

/// The snapshot's text, None if missing, unreadable or larger than any
/// snapshot Herald writes.
fn read_snapshot(path: &std::path::Path) -> Option<String> {
    let len = std::fs::metadata(path).ok()?.len();
    if len > SNAPSHOT_BYTES_MAX {
        tracing::warn!(path = %path.display(), bytes = len, "producer snapshot too large; rebuilding from the log");
        return None;
    }
    std::fs::read_to_string(path).ok()
}
