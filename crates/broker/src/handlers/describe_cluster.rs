//! DescribeCluster (key 60): the live brokers; the lowest id is named controller.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use herald_security::acl::ResourceType;

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
        .filter_map(|info| {
            let (host, port) = info.endpoint(&ctx.listener)?;
            let mut b = DescribeClusterBroker::default();
            b.broker_id = BrokerId(info.node_id);
            b.host = sb(host);
            b.port = port;
            b.rack = info.rack.clone().map(sb);
            Some(b)
        })
        .collect();
    resp.cluster_authorized_operations = if req.include_cluster_authorized_operations {
        super::authorized_operations(
            ctx,
            ResourceType::Cluster,
            herald_security::acl::CLUSTER_NAME,
            super::CLUSTER_OPERATIONS,
        )
    } else {
        i32::MIN
    };
    ctx.reply(&resp)
}
