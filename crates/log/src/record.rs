//! Records inside a batch's (decompressed) records section, read without
//! copying: only what key checks and compaction need. Every varint and length
//! is checked against the bytes present before it is used.
//!
//! Record layout (magic v2): length varint, attributes i8, timestamp delta
//! varlong, offset delta varint, key length varint (-1 = null), key, value
//! length varint (-1 = null), value, header count varint, headers.

use crate::error::LogError;

const CORRUPT: LogError = LogError::InvalidRecord("malformed record");

/// One record, borrowed from the records section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    pub offset_delta: i32,
    pub timestamp_delta: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    /// The whole record, length prefix included (to copy it verbatim).
    pub bytes: &'a [u8],
}

/// Reads a zig-zag varint of at most `max_bytes` bytes at `*pos`.
fn varint(b: &[u8], pos: &mut usize, max_bytes: usize) -> Result<i64, LogError> {
    let mut z: u64 = 0;
    for i in 0..max_bytes {
        let byte = *b.get(*pos).ok_or(CORRUPT)?;
        *pos += 1;
        z |= ((byte & 0x7f) as u64) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(((z >> 1) as i64) ^ -((z & 1) as i64));
        }
    }
    Err(CORRUPT)
}

fn bytes_field<'a>(b: &'a [u8], pos: &mut usize) -> Result<Option<&'a [u8]>, LogError> {
    let len = varint(b, pos, 5)?;
    if len < 0 {
        return Ok(None);
    }
    let end = pos.checked_add(len as usize).ok_or(CORRUPT)?;
    let v = b.get(*pos..end).ok_or(CORRUPT)?;
    *pos = end;
    Ok(Some(v))
}

/// Iterates the records of a records section; stops at the first malformed one
/// with an error.
pub struct Records<'a> {
    rest: &'a [u8],
    failed: bool,
}

pub fn records(section: &[u8]) -> Records<'_> {
    Records {
        rest: section,
        failed: false,
    }
}

impl<'a> Records<'a> {
    fn parse_one(&mut self) -> Result<RecordView<'a>, LogError> {
        let mut pos = 0;
        let len = varint(self.rest, &mut pos, 5)?;
        if len < 0 {
            return Err(CORRUPT);
        }
        let end = pos.checked_add(len as usize).ok_or(CORRUPT)?;
        let whole = self.rest.get(..end).ok_or(CORRUPT)?;
        let body = &whole[pos..];
        let mut p = 1; // attributes (unused in v2)
        if body.is_empty() {
            return Err(CORRUPT);
        }
        let timestamp_delta = varint(body, &mut p, 10)?;
        let offset_delta = varint(body, &mut p, 5)?;
        let offset_delta = i32::try_from(offset_delta).map_err(|_| CORRUPT)?;
        let key = bytes_field(body, &mut p)?;
        let value = bytes_field(body, &mut p)?;
        // Headers are not needed; the record length bounds them.
        self.rest = &self.rest[end..];
        Ok(RecordView {
            offset_delta,
            timestamp_delta,
            key,
            value,
            bytes: whole,
        })
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<RecordView<'a>, LogError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() || self.failed {
            return None;
        }
        let r = self.parse_one();
        self.failed = r.is_err();
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{self, build};

    #[test]
    fn reads_what_the_builder_wrote_and_rejects_truncation() {
        let recs = [
            build::SimpleRecord {
                key: Some(b"a"),
                value: Some(b"1"),
                timestamp_ms: 10,
            },
            build::SimpleRecord {
                key: None,
                value: None,
                timestamp_ms: 12,
            },
        ];
        let b = build::batch(&recs, -1, -1, -1);
        let section = &b[batch::BATCH_HEADER_BYTES..];
        let got: Vec<_> = records(section).collect::<Result<_, _>>().unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].key, got[0].value),
            (Some(&b"a"[..]), Some(&b"1"[..]))
        );
        assert_eq!(
            (got[1].key, got[1].value, got[1].offset_delta),
            (None, None, 1)
        );
        assert_eq!(got[1].timestamp_delta, 2);
        assert_eq!(got[0].bytes.len() + got[1].bytes.len(), section.len());
        for cut in 1..section.len() {
            if cut == got[0].bytes.len() {
                continue; // a whole first record: valid on its own
            }
            assert!(
                records(&section[..cut]).any(|r| r.is_err()),
                "a cut at {cut} must be an error"
            );
        }
    }
}
