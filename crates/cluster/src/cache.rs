//! Each broker's cache of object blocks: aligned `BLOCK_BYTES` pieces of WAL
//! objects, keyed by (object key, block index), bounded in bytes. Objects are
//! immutable, so a cached block never goes stale. Eviction is first in, first
//! out: the workload is a stream (recent objects are read most), and FIFO needs
//! no bookkeeping on a hit.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use bytes::Bytes;

/// Cache granule. Ranged GETs are rounded out to whole blocks.
pub const BLOCK_BYTES: u64 = 1024 * 1024;

pub struct BlockCache {
    bytes_max: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    blocks: HashMap<(String, u64), Bytes>,
    order: VecDeque<(String, u64)>,
    bytes: usize,
}

impl BlockCache {
    pub fn new(bytes_max: usize) -> BlockCache {
        BlockCache {
            bytes_max,
            inner: Mutex::new(Inner::default()),
        }
    }

    pub fn get(&self, key: &str, block: u64) -> Option<Bytes> {
        let inner = self.inner.lock().ok()?;
        inner.blocks.get(&(key.to_string(), block)).cloned()
    }

    pub fn insert(&self, key: &str, block: u64, data: Bytes) {
        if data.len() > self.bytes_max {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let k = (key.to_string(), block);
        if inner.blocks.contains_key(&k) {
            return;
        }
        inner.bytes += data.len();
        inner.blocks.insert(k.clone(), data);
        inner.order.push_back(k);
        while inner.bytes > self.bytes_max {
            let Some(old) = inner.order.pop_front() else {
                break;
            };
            if let Some(b) = inner.blocks.remove(&old) {
                inner.bytes -= b.len();
            }
        }
    }

    /// Caches a whole object (the writer's own fresh uploads).
    pub fn insert_object(&self, key: &str, body: &Bytes) {
        let mut start = 0u64;
        let len = body.len() as u64;
        while start < len {
            let end = (start + BLOCK_BYTES).min(len);
            self.insert(
                key,
                start / BLOCK_BYTES,
                body.slice(start as usize..end as usize),
            );
            start = end;
        }
    }

    pub fn bytes(&self) -> usize {
        self.inner.lock().map(|i| i.bytes).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_stays_within_its_bound() {
        let c = BlockCache::new(3 * 1000);
        for i in 0..10u64 {
            c.insert("o", i, Bytes::from(vec![0u8; 1000]));
        }
        assert!(c.bytes() <= 3000);
        assert!(c.get("o", 9).is_some());
        assert!(c.get("o", 0).is_none());
        let body = Bytes::from(vec![7u8; (BLOCK_BYTES as usize) + 10]);
        let big = BlockCache::new(4 * BLOCK_BYTES as usize);
        big.insert_object("x", &body);
        assert_eq!(big.get("x", 1).map(|b| b.len()), Some(10));
    }
}
