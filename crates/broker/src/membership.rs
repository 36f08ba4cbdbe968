//! Which brokers are alive, and which of them "leads" a partition or
//! coordinates a group.
//!
//! A single node is alone. In cluster mode (`herald-cluster`) brokers hold
//! leases in PostgreSQL and every broker can serve every partition; the
//! "leader" named in Metadata is only a routing choice, made by a rendezvous
//! (highest random weight) hash over the live brokers. A broker joining or
//! leaving moves only its own share of partitions, so the others' block caches
//! stay warm.

use crate::listener::Endpoint;

/// A live broker as clients see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
    /// Milliseconds since the broker last renewed its lease (0 for a single node).
    pub lease_age_ms: i64,
    /// Its endpoint on each listener; `host`/`port` is the first.
    pub endpoints: Vec<Endpoint>,
}

impl BrokerInfo {
    pub fn new(node_id: i32, rack: Option<String>, endpoints: Vec<Endpoint>) -> BrokerInfo {
        let (host, port) = endpoints
            .first()
            .map(|e| (e.host.clone(), e.port))
            .unwrap_or_default();
        BrokerInfo {
            node_id,
            host,
            port,
            rack,
            lease_age_ms: 0,
            endpoints,
        }
    }

    /// Where a client connected to `listener` reaches this broker; None if
    /// the broker has no such listener (Kafka then leaves it out of Metadata).
    /// A broker that registered no listeners (older rows) has one: its host.
    pub fn endpoint(&self, listener: &str) -> Option<(&str, i32)> {
        if self.endpoints.is_empty() {
            return Some((&self.host, self.port));
        }
        self.endpoints
            .iter()
            .find(|e| e.listener == listener)
            .map(|e| (e.host.as_str(), e.port))
    }
}

pub trait Membership: Send + Sync {
    /// The live brokers, sorted by node id. Never empty: it holds this broker.
    fn live(&self) -> Vec<BrokerInfo>;
    /// The broker that answers Metadata's controller field: the lowest live id.
    fn controller(&self) -> i32 {
        self.live().first().map(|b| b.node_id).unwrap_or(-1)
    }
}

/// The embedded default: this broker only.
pub struct SingleNode(pub BrokerInfo);

impl Membership for SingleNode {
    fn live(&self) -> Vec<BrokerInfo> {
        vec![self.0.clone()]
    }
}

/// 64-bit FNV-1a, then a finalizer (splitmix64) so that nearby keys spread.
/// Stable across versions and platforms: placement must agree between brokers.
fn hash64(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The broker with the highest weight for `key` (rendezvous hashing).
pub fn rendezvous<'a>(key: &[u8], brokers: &'a [BrokerInfo]) -> Option<&'a BrokerInfo> {
    brokers
        .iter()
        .max_by_key(|b| (hash64(&[key, &b.node_id.to_be_bytes()]), b.node_id))
}

/// The zone a client asks for in its `client.id`: `herald_az=ZONE` (also
/// Inkless's `diskless_az=` and WarpStream's `ws_az=`), among `,`/`;`/space
/// separated parts.
pub fn client_zone(client_id: Option<&str>) -> Option<&str> {
    let id = client_id?;
    id.split([',', ';', ' '])
        .filter_map(|part| part.split_once('='))
        .find(|(k, _)| matches!(*k, "herald_az" | "diskless_az" | "ws_az"))
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// The brokers a client should use: those in its zone, or all if none is.
pub fn eligible(brokers: Vec<BrokerInfo>, zone: Option<&str>) -> Vec<BrokerInfo> {
    if let Some(z) = zone {
        let local: Vec<BrokerInfo> = brokers
            .iter()
            .filter(|b| b.rack.as_deref() == Some(z))
            .cloned()
            .collect();
        if !local.is_empty() {
            return local;
        }
    }
    brokers
}

/// The routing key of a partition.
pub fn partition_key(topic_id: &uuid::Uuid, partition: i32) -> Vec<u8> {
    let mut k = topic_id.as_bytes().to_vec();
    k.extend_from_slice(&partition.to_be_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brokers(ids: &[i32]) -> Vec<BrokerInfo> {
        ids.iter()
            .map(|&id| BrokerInfo {
                node_id: id,
                host: "h".into(),
                port: 1,
                rack: Some(if id % 2 == 0 { "a" } else { "b" }.into()),
                lease_age_ms: 0,
                endpoints: Vec::new(),
            })
            .collect()
    }

    #[test]
    fn a_leaving_broker_moves_only_its_own_partitions() {
        let all = brokers(&[1, 2, 3, 4]);
        let fewer = brokers(&[1, 2, 4]);
        let topic = uuid::Uuid::new_v4();
        let mut moved = 0;
        let mut owned_by_3 = 0;
        for p in 0..1000 {
            let k = partition_key(&topic, p);
            let before = rendezvous(&k, &all).unwrap().node_id;
            let after = rendezvous(&k, &fewer).unwrap().node_id;
            if before == 3 {
                owned_by_3 += 1;
            } else {
                assert_eq!(
                    before, after,
                    "partition {p} moved without its broker leaving"
                );
            }
            if before != after {
                moved += 1;
            }
        }
        assert_eq!(moved, owned_by_3);
        assert!(
            (150..350).contains(&owned_by_3),
            "share of one in four brokers: {owned_by_3}/1000"
        );
    }

    #[test]
    fn client_zone_parses_the_known_keys() {
        assert_eq!(client_zone(Some("app,herald_az=eu-1a")), Some("eu-1a"));
        assert_eq!(client_zone(Some("diskless_az=z2")), Some("z2"));
        assert_eq!(client_zone(Some("rdkafka")), None);
        assert_eq!(client_zone(None), None);
        let e = eligible(brokers(&[1, 2, 3]), Some("a"));
        assert_eq!(e.iter().map(|b| b.node_id).collect::<Vec<_>>(), vec![2]);
        assert_eq!(eligible(brokers(&[1, 3]), Some("a")).len(), 2);
    }
}
