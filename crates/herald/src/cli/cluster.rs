//! `herald cluster info`: brokers (id, address, rack, and in cluster mode the
//! age of each broker's lease), controller, cluster id, API versions.

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, DescribeConfigsRequest,
    DescribeConfigsResponse, MetadataRequest, MetadataResponse,
};
use kafka_protocol::protocol::StrBytes;
use serde_json::json;

use super::raw::RawClient;
use super::{Common, Table, print_json};

pub fn info(common: &Common) -> anyhow::Result<()> {
    let mut raw = RawClient::connect(common)?;
    let versions: ApiVersionsResponse =
        raw.call(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default())?;
    let mut md_req = MetadataRequest::default();
    md_req.topics = Some(Vec::new());
    let md: MetadataResponse = raw.call(ApiKey::Metadata, 2, &md_req)?;
    // Lease ages: the answering broker's view of every broker (cluster mode
    // reports `herald.lease.age.ms` for each live broker; a single node none).
    let mut dc = DescribeConfigsRequest::default();
    dc.resources = md
        .brokers
        .iter()
        .map(|b| {
            let mut r = DescribeConfigsResource::default();
            r.resource_type = 4;
            r.resource_name = StrBytes::from_string(b.node_id.0.to_string());
            r.configuration_keys = Some(vec![
                StrBytes::from_static_str("herald.lease.age.ms"),
                StrBytes::from_static_str("herald.storage.engine"),
            ]);
            r
        })
        .collect();
    let described: Option<DescribeConfigsResponse> = raw.call(ApiKey::DescribeConfigs, 1, &dc).ok();
    let lease_of = |id: i32| -> Option<i64> {
        let d = described.as_ref()?;
        let r = d
            .results
            .iter()
            .find(|r| r.error_code == 0 && r.resource_name.as_str() == id.to_string())?;
        r.configs
            .iter()
            .find(|c| c.name.as_str() == "herald.lease.age.ms")
            .and_then(|c| c.value.as_ref()?.as_str().parse().ok())
    };
    let engine = described
        .as_ref()
        .and_then(|d| {
            d.results
                .iter()
                .flat_map(|r| r.configs.iter())
                .find(|c| c.name.as_str() == "herald.storage.engine")
        })
        .and_then(|c| c.value.as_ref().map(|v| v.to_string()))
        .unwrap_or_else(|| "local".to_string());
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
            "storage_engine": engine,
            "brokers": md.brokers.iter().map(|b| json!({
                "id": b.node_id.0,
                "host": b.host.as_str(),
                "port": b.port,
                "rack": b.rack.as_ref().map(|r| r.as_str()),
                "lease_age_ms": lease_of(b.node_id.0),
            })).collect::<Vec<_>>(),
            "apis": apis.iter().map(|(n, k, lo, hi)| json!({"name": n, "key": k, "min_version": lo, "max_version": hi})).collect::<Vec<_>>(),
        }));
        return Ok(());
    }
    println!("CLUSTER     {cluster_id}");
    println!("CONTROLLER  {}", md.controller_id.0);
    println!("STORAGE     {engine}\n");
    let mut b = Table::new(&["BROKER", "HOST", "PORT", "RACK", "LEASE AGE"]);
    for br in &md.brokers {
        b.row(vec![
            br.node_id.0.to_string(),
            br.host.to_string(),
            br.port.to_string(),
            br.rack
                .as_ref()
                .map(|r| r.to_string())
                .unwrap_or_else(|| "-".into()),
            lease_of(br.node_id.0)
                .map(|ms| format!("{ms} ms"))
                .unwrap_or_else(|| "-".into()),
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
