//! DescribeCluster (key 60): this node, which is also the controller.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::{Ctx, Reply, sb};
use crate::error::ProtocolError;

pub fn handle(ctx: &Ctx, req: DescribeClusterRequest) -> Result<Reply, ProtocolError> {
    let broker = &ctx.broker;
    let mut resp = DescribeClusterResponse::default();
    resp.cluster_id = sb(broker.cluster_id.clone());
    resp.controller_id = BrokerId(broker.node_id());
    resp.endpoint_type = req.endpoint_type;
    let mut b = DescribeClusterBroker::default();
    b.broker_id = BrokerId(broker.node_id());
    b.host = sb(broker.advertised_host.clone());
    b.port = broker.advertised_port;
    resp.brokers = vec![b];
    resp.cluster_authorized_operations = if req.include_cluster_authorized_operations {
        (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12)
    } else {
        i32::MIN
    };
    ctx.reply(&resp)
}
