//! DescribeCluster (key 60): the live brokers; the lowest id is named controller.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::{Ctx, Reply, sb};
use crate::error::ProtocolError;

pub fn handle(ctx: &Ctx, req: DescribeClusterRequest) -> Result<Reply, ProtocolError> {
    let broker = &ctx.broker;
    let mut resp = DescribeClusterResponse::default();
    resp.cluster_id = sb(broker.cluster_id.clone());
    resp.controller_id = BrokerId(broker.membership.controller());
    resp.endpoint_type = req.endpoint_type;
    resp.brokers = broker
        .membership
        .live()
        .into_iter()
        .map(|info| {
            let mut b = DescribeClusterBroker::default();
            b.broker_id = BrokerId(info.node_id);
            b.host = sb(info.host);
            b.port = info.port;
            b.rack = info.rack.map(sb);
            b
        })
        .collect();
    resp.cluster_authorized_operations = if req.include_cluster_authorized_operations {
        (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12)
    } else {
        i32::MIN
    };
    ctx.reply(&resp)
}
