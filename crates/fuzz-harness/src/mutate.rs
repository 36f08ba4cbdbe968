//! Mutations of a valid frame that a hostile or broken client could send.
//! Positions are fractions of the frame (0..=u16::MAX), so proptest shrinks
//! them towards the start.

use crate::frames::Frame;

/// Values written over a length or count: negative, huge, off by one.
#[derive(Debug, Clone, Copy)]
pub enum Hostile {
    MinusOne,
    MinusTwo,
    Min,
    Max,
    /// The bytes left after the field, plus one.
    RemainingPlusOne,
    /// The bytes left after the field, minus one.
    RemainingMinusOne,
    /// 1 << 24.
    Large,
}

impl Hostile {
    pub const ALL: [Hostile; 7] = [
        Hostile::MinusOne,
        Hostile::MinusTwo,
        Hostile::Min,
        Hostile::Max,
        Hostile::RemainingPlusOne,
        Hostile::RemainingMinusOne,
        Hostile::Large,
    ];
    fn value(self, remaining: usize, min: i64, max: i64) -> i64 {
        match self {
            Hostile::MinusOne => -1,
            Hostile::MinusTwo => -2,
            Hostile::Min => min,
            Hostile::Max => max,
            Hostile::RemainingPlusOne => remaining as i64 + 1,
            Hostile::RemainingMinusOne => remaining as i64 - 1,
            Hostile::Large => 1 << 24,
        }
        .clamp(min, max)
    }
}

#[derive(Debug, Clone)]
pub enum Mutation {
    /// Cut the frame after this many body bytes (the size prefix follows).
    Truncate { at: u16 },
    /// Write a hostile INT32 (array count, BYTES length) at a position.
    Int32 { at: u16, value: Hostile },
    /// Write a hostile INT16 (STRING length) at a position.
    Int16 { at: u16, value: Hostile },
    /// Write a hostile unsigned varint (compact length + 1, tagged-field count
    /// or size) at a position.
    Varint { at: u16, value: Hostile },
    /// Replace the body's final tagged-field count (flexible versions) with
    /// `count` fields of tag `tag` claiming `size` bytes.
    TaggedFields {
        count: Hostile,
        tag: u32,
        size: Hostile,
    },
    /// The same at the end of the request header (before the body).
    HeaderTaggedFields {
        count: Hostile,
        tag: u32,
        size: Hostile,
    },
    /// XOR bytes at positions.
    Flip { at: Vec<(u16, u8)> },
    /// A size prefix that disagrees with the frame.
    SizePrefix { value: Hostile },
}

fn pos(at: u16, len: usize) -> usize {
    (at as usize * len) / (u16::MAX as usize + 1)
}

fn uvarint(mut v: u64, out: &mut Vec<u8>) {
    loop {
        if v < 0x80 {
            out.push(v as u8);
            return;
        }
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
}

fn write_over(bytes: &mut Vec<u8>, at: usize, value: &[u8]) {
    let end = (at + value.len()).min(bytes.len());
    bytes.splice(at..end, value.iter().copied());
}

fn tagged(count: Hostile, tag: u32, size: Hostile, remaining: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let count = count.value(remaining, 0, u32::MAX as i64) as u64;
    uvarint(count, &mut out);
    // Write at most a few fields; a huge count then runs out of bytes.
    for _ in 0..count.min(3) {
        uvarint(tag as u64, &mut out);
        uvarint(size.value(remaining, 0, u32::MAX as i64) as u64, &mut out);
        out.extend_from_slice(&[0xAB; 4]);
    }
    out
}

/// The frame with `m` applied; the size prefix is recomputed unless `m` is
/// `SizePrefix`.
pub fn apply(frame: &Frame, m: &Mutation) -> Vec<u8> {
    let mut b = frame.bytes.clone();
    let body_len = b.len() - 4;
    let mut fix_size = true;
    match m {
        Mutation::Truncate { at } => {
            b.truncate(4 + pos(*at, body_len));
        }
        Mutation::Int32 { at, value } => {
            let p = 4 + pos(*at, body_len);
            let v = value.value(b.len() - p, i32::MIN as i64, i32::MAX as i64) as i32;
            write_over(&mut b, p, &v.to_be_bytes());
        }
        Mutation::Int16 { at, value } => {
            let p = 4 + pos(*at, body_len);
            let v = value.value(b.len() - p, i16::MIN as i64, i16::MAX as i64) as i16;
            write_over(&mut b, p, &v.to_be_bytes());
        }
        Mutation::Varint { at, value } => {
            let p = 4 + pos(*at, body_len);
            let mut v = Vec::new();
            match value {
                // Not a valid varint: the continuation bit never ends.
                Hostile::Min => v.extend_from_slice(&[0xFF; 6]),
                other => uvarint(other.value(b.len() - p, 0, u32::MAX as i64) as u64, &mut v),
            }
            // Replace the varint there (or one byte) with the hostile one.
            let old_len = b[p..].iter().take_while(|x| **x & 0x80 != 0).count() + 1;
            let end = (p + old_len).min(b.len());
            b.splice(p..end, v);
        }
        Mutation::TaggedFields { count, tag, size } => {
            if frame.flexible && b.len() > frame.body_start {
                // A flexible request body ends with its top-level tagged fields
                // (usually the single byte 0).
                b.pop();
                let t = tagged(*count, *tag, *size, 0);
                b.extend(t);
            }
        }
        Mutation::HeaderTaggedFields { count, tag, size } => {
            // (Skipped when an earlier mutation cut the header short.)
            if frame.flexible && frame.body_start <= b.len() {
                let p = frame.body_start - 1;
                let remaining = b.len() - p;
                let t = tagged(*count, *tag, *size, remaining);
                b.splice(p..p + 1, t);
            }
        }
        Mutation::Flip { at } => {
            for (a, x) in at {
                let p = 4 + pos(*a, body_len);
                if p < b.len() {
                    b[p] ^= x | 1;
                }
            }
        }
        Mutation::SizePrefix { value } => {
            let v = value.value(body_len, i32::MIN as i64, i32::MAX as i64) as i32;
            b[..4].copy_from_slice(&v.to_be_bytes());
            fix_size = false;
        }
    }
    if fix_size {
        let n = (b.len() - 4) as i32;
        b[..4].copy_from_slice(&n.to_be_bytes());
    }
    b
}
