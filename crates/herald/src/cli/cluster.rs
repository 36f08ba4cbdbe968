//! `herald cluster info`: brokers, controller, cluster id, API versions.

use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse,
};
use serde_json::json;

use super::raw::RawClient;
use super::{Common, Table, print_json};

pub fn info(common: &Common) -> anyhow::Result<()> {
    let mut raw = RawClient::connect(&common.brokers)?;
    let versions: ApiVersionsResponse =
        raw.call(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default())?;
    let mut md_req = MetadataRequest::default();
    md_req.topics = Some(Vec::new());
    let md: MetadataResponse = raw.call(ApiKey::Metadata, 2, &md_req)?;
    let apis: Vec<(String, i16, i16, i16)> = versions
        .api_keys
        .iter()
        .map(|k| {
            let name = ApiKey::try_from(k.api_key)
                .map(|a| format!("{a:?}"))
                .unwrap_or_else(|_| format!("Unknown({})", k.api_key));
            (name, k.api_key, k.min_version, k.max_version)
        })
        .collect();
    let cluster_id = md
        .cluster_id
        .as_ref()
        .map(|c| c.to_string())
        .unwrap_or_default();
    if common.json() {
        print_json(&json!({
            "cluster_id": cluster_id,
            "controller_id": md.controller_id.0,
            "brokers": md.brokers.iter().map(|b| json!({"id": b.node_id.0, "host": b.host.as_str(), "port": b.port})).collect::<Vec<_>>(),
            "apis": apis.iter().map(|(n, k, lo, hi)| json!({"name": n, "key": k, "min_version": lo, "max_version": hi})).collect::<Vec<_>>(),
        }));
        return Ok(());
    }
    println!("CLUSTER     {cluster_id}");
    println!("CONTROLLER  {}\n", md.controller_id.0);
    let mut b = Table::new(&["BROKER", "HOST", "PORT"]);
    for br in &md.brokers {
        b.row(vec![
            br.node_id.0.to_string(),
            br.host.to_string(),
            br.port.to_string(),
        ]);
    }
    b.print();
    println!();
    let mut t = Table::new(&["API", "KEY", "MIN", "MAX"]);
    for (n, k, lo, hi) in apis {
        t.row(vec![n, k.to_string(), lo.to_string(), hi.to_string()]);
    }
    t.print();
    Ok(())
}
