//! The classic consumer protocol's member assignment, as the broker stores it
//! unread in SyncGroup and as admin tools (the CLI, the console) show it.

use bytes::Buf;
use kafka_protocol::messages::ConsumerProtocolAssignment;
use kafka_protocol::protocol::Decodable;

/// (topic, partition) pairs of a classic consumer member's assignment
/// (a version, then Kafka's ConsumerProtocolAssignment); nothing if the bytes
/// are not one (another protocol type, or a client's own format). The vendored
/// decoder bounds its allocations by the bytes present.
pub fn assigned_partitions(bytes: &[u8]) -> Vec<(String, i32)> {
    let mut buf = bytes::Bytes::copy_from_slice(bytes);
    if buf.len() < 2 {
        return Vec::new();
    }
    let version = buf.get_i16();
    match ConsumerProtocolAssignment::decode(&mut buf, version.clamp(0, 3)) {
        Ok(a) => a
            .assigned_partitions
            .into_iter()
            .flat_map(|t| {
                let name = t.topic.0.to_string();
                t.partitions.into_iter().map(move |p| (name.clone(), p))
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    #[test]
    fn decodes_an_assignment_and_ignores_garbage() {
        let mut a = ConsumerProtocolAssignment::default();
        let mut tp = TopicPartition::default();
        tp.topic = TopicName(StrBytes::from_static_str("orders"));
        tp.partitions = vec![0, 2];
        a.assigned_partitions = vec![tp];
        let mut buf = bytes::BytesMut::new();
        buf.put_i16(1);
        a.encode(&mut buf, 1).expect("encode");
        assert_eq!(
            assigned_partitions(&buf),
            vec![("orders".to_string(), 0), ("orders".to_string(), 2)]
        );
        assert!(assigned_partitions(&[]).is_empty());
        assert!(assigned_partitions(&[0, 1, 0x7f, 0xff, 0xff, 0xff]).is_empty());
    }
}
