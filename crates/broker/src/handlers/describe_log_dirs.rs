//! DescribeLogDirs (key 35): the one data directory and each partition's size.

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};

use herald_security::acl::Operation;

use super::{Ctx, Reply, s, sb};
use crate::error::ProtocolError;

pub fn handle(ctx: &Ctx, req: DescribeLogDirsRequest) -> Result<Reply, ProtocolError> {
    let topics = &ctx.broker.topics;
    if !ctx.authorize_cluster(Operation::Describe) {
        let mut resp = DescribeLogDirsResponse::default();
        if ctx.version >= 3 {
            resp.error_code = kafka_protocol::ResponseError::ClusterAuthorizationFailed.code();
        }
        return ctx.reply(&resp);
    }
    // (topic, requested partitions or all)
    let wanted: Vec<(
        std::sync::Arc<crate::topic_registry::Topic>,
        Option<Vec<i32>>,
    )> = match req.topics {
        None => topics.list().into_iter().map(|t| (t, None)).collect(),
        Some(list) => list
            .into_iter()
            .filter_map(|t| {
                topics
                    .get(&s(&t.topic.0))
                    .map(|topic| (topic, Some(t.partitions)))
            })
            .collect(),
    };
    let mut dir = DescribeLogDirsResult::default();
    dir.log_dir = sb(ctx.broker.config.data_dir.display().to_string());
    for (topic, parts) in wanted {
        let mut t = DescribeLogDirsTopic::default();
        t.name = TopicName(sb(topic.name.clone()));
        for p in topic.partitions() {
            if parts
                .as_ref()
                .is_some_and(|want| !want.contains(&p.index()))
            {
                continue;
            }
            let size = p.size_bytes();
            let mut e = DescribeLogDirsPartition::default();
            e.partition_index = p.index();
            e.partition_size = size as i64;
            t.partitions.push(e);
        }
        dir.topics.push(t);
    }
    let mut resp = DescribeLogDirsResponse::default();
    resp.results = vec![dir];
    ctx.reply(&resp)
}
