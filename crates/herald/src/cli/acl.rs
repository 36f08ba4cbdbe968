//! `herald acl create|list|delete`: Kafka ACLs over CreateAcls, DescribeAcls
//! and DeleteAcls, with the names `kafka-acls.sh` users know.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use herald_security::acl::{CLUSTER_NAME, Operation, Permission, ResourceType, WILDCARD};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{
    ApiKey, CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use serde_json::json;

use super::raw::RawClient;
use super::{Common, Table, print_json};

/// The ACL API version used (v1 has pattern types; v2+ is flexible).
const ACL_API_VERSION: i16 = 2;
const ANY: i8 = 1;
const PATTERN_MATCH: i8 = 2;

#[derive(Args, Debug, Clone)]
pub struct Resource {
    #[arg(long, group = "resource")]
    pub topic: Option<String>,
    #[arg(long, group = "resource")]
    pub group: Option<String>,
    #[arg(long, group = "resource")]
    pub transactional_id: Option<String>,
    /// The cluster resource (`kafka-cluster`).
    #[arg(long, group = "resource")]
    pub cluster: bool,
    /// The name is a prefix (PREFIXED pattern) rather than a literal.
    #[arg(long)]
    pub prefixed: bool,
}

impl Resource {
    fn get(&self) -> Option<(ResourceType, String)> {
        if let Some(t) = &self.topic {
            return Some((ResourceType::Topic, t.clone()));
        }
        if let Some(g) = &self.group {
            return Some((ResourceType::Group, g.clone()));
        }
        if let Some(t) = &self.transactional_id {
            return Some((ResourceType::TransactionalId, t.clone()));
        }
        self.cluster
            .then(|| (ResourceType::Cluster, CLUSTER_NAME.to_string()))
    }
    fn pattern_code(&self) -> i8 {
        if self.prefixed { 4 } else { 3 }
    }
}

#[derive(Subcommand, Debug)]
pub enum AclCommand {
    /// Add ACLs: one per operation.
    Create {
        /// `User:NAME` (or `User:*`).
        #[arg(long)]
        principal: String,
        /// Operations, comma separated: read, write, create, delete, alter,
        /// describe, describe-configs, alter-configs, idempotent-write, cluster-action, all.
        #[arg(long, value_delimiter = ',', required = true)]
        operation: Vec<String>,
        /// Deny instead of allow.
        #[arg(long)]
        deny: bool,
        #[arg(long, default_value = WILDCARD)]
        host: String,
        #[command(flatten)]
        resource: Resource,
    },
    /// ACLs matching the filter (all without one). With a literal resource
    /// name and --match, also the prefixed and `*` ACLs that apply to it.
    List {
        #[arg(long)]
        principal: Option<String>,
        #[arg(long = "match")]
        matching: bool,
        #[command(flatten)]
        resource: Resource,
    },
    /// Delete the ACLs matching the filter (`--all` for every ACL).
    Delete {
        #[arg(long)]
        principal: Option<String>,
        #[arg(long)]
        operation: Option<String>,
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        resource: Resource,
    },
}

fn operation(name: &str) -> anyhow::Result<Operation> {
    Operation::parse(name).with_context(|| format!("unknown operation {name:?}"))
}

fn sb(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

pub fn run(common: &Common, cmd: AclCommand) -> anyhow::Result<()> {
    let mut raw = RawClient::connect(common)?;
    match cmd {
        AclCommand::Create {
            principal,
            operation: ops,
            deny,
            host,
            resource,
        } => {
            let (rt, name) = resource
                .get()
                .context("name a resource: --topic, --group, --transactional-id or --cluster")?;
            let mut req = CreateAclsRequest::default();
            for op in &ops {
                let op = operation(op)?;
                let mut c = AclCreation::default();
                c.resource_type = rt.code();
                c.resource_name = sb(name.clone());
                c.resource_pattern_type = resource.pattern_code();
                c.principal = sb(principal.clone());
                c.host = sb(host.clone());
                c.operation = op.code();
                c.permission_type = if deny {
                    Permission::Deny
                } else {
                    Permission::Allow
                }
                .code();
                req.creations.push(c);
            }
            let resp: CreateAclsResponse = raw.call(ApiKey::CreateAcls, ACL_API_VERSION, &req)?;
            for (r, op) in resp.results.iter().zip(&ops) {
                if r.error_code != 0 {
                    bail!(
                        "{op}: {} (error {})",
                        r.error_message.as_ref().map(|m| m.as_str()).unwrap_or(""),
                        r.error_code
                    );
                }
            }
            if common.json() {
                print_json(&json!({"created": ops.len()}));
            } else {
                println!("created {} ACL(s)", ops.len());
            }
        }
        AclCommand::List {
            principal,
            matching,
            resource,
        } => {
            let mut req = DescribeAclsRequest::default();
            let (rt, name) = resource
                .get()
                .map(|(t, n)| (t.code(), Some(n)))
                .unwrap_or((ANY, None));
            req.resource_type_filter = rt;
            req.resource_name_filter = name.map(sb);
            req.pattern_type_filter = if matching {
                PATTERN_MATCH
            } else if resource.get().is_some() {
                resource.pattern_code()
            } else {
                ANY
            };
            req.principal_filter = principal.map(sb);
            // kafka-protocol's defaults of these nullable fields are "", which
            // would match nothing: null means any.
            req.host_filter = None;
            req.operation = ANY;
            req.permission_type = ANY;
            let resp: DescribeAclsResponse =
                raw.call(ApiKey::DescribeAcls, ACL_API_VERSION, &req)?;
            if resp.error_code != 0 {
                bail!(
                    "{} (error {})",
                    resp.error_message
                        .as_ref()
                        .map(|m| m.as_str())
                        .unwrap_or(""),
                    resp.error_code
                );
            }
            let mut rows = Vec::new();
            for r in &resp.resources {
                for a in &r.acls {
                    rows.push(json!({
                        "resource_type": ResourceType::from_code(r.resource_type).map(|t| format!("{t:?}")),
                        "resource_name": r.resource_name.as_str(),
                        "pattern_type": if r.pattern_type == 4 { "PREFIXED" } else { "LITERAL" },
                        "principal": a.principal.as_str(),
                        "host": a.host.as_str(),
                        "operation": Operation::from_code(a.operation).map(|o| format!("{o:?}")),
                        "permission": Permission::from_code(a.permission_type).map(|p| format!("{p:?}")),
                    }));
                }
            }
            if common.json() {
                print_json(&json!(rows));
            } else {
                let mut t = Table::new(&[
                    "PRINCIPAL",
                    "PERMISSION",
                    "OPERATION",
                    "RESOURCE",
                    "NAME",
                    "PATTERN",
                    "HOST",
                ]);
                for r in &rows {
                    let f = |k: &str| r[k].as_str().unwrap_or("").to_string();
                    t.row(vec![
                        f("principal"),
                        f("permission"),
                        f("operation"),
                        f("resource_type"),
                        f("resource_name"),
                        f("pattern_type"),
                        f("host"),
                    ]);
                }
                print!("{}", t.render());
            }
        }
        AclCommand::Delete {
            principal,
            operation: op,
            all,
            resource,
        } => {
            if !all && principal.is_none() && resource.get().is_none() && op.is_none() {
                bail!("give a filter (--principal, a resource, --operation) or --all");
            }
            let mut f = DeleteAclsFilter::default();
            let (rt, name) = resource
                .get()
                .map(|(t, n)| (t.code(), Some(n)))
                .unwrap_or((ANY, None));
            f.resource_type_filter = rt;
            f.resource_name_filter = name.map(sb);
            f.pattern_type_filter = if resource.get().is_some() {
                resource.pattern_code()
            } else {
                ANY
            };
            f.principal_filter = principal.map(sb);
            f.host_filter = None;
            f.operation = match &op {
                Some(o) => operation(o)?.code(),
                None => ANY,
            };
            f.permission_type = ANY;
            let mut req = DeleteAclsRequest::default();
            req.filters = vec![f];
            let resp: DeleteAclsResponse = raw.call(ApiKey::DeleteAcls, ACL_API_VERSION, &req)?;
            let mut n = 0;
            for r in &resp.filter_results {
                if r.error_code != 0 {
                    bail!(
                        "{} (error {})",
                        r.error_message.as_ref().map(|m| m.as_str()).unwrap_or(""),
                        r.error_code
                    );
                }
                n += r.matching_acls.len();
            }
            if common.json() {
                print_json(&json!({"deleted": n}));
            } else {
                println!("deleted {n} ACL(s)");
            }
        }
    }
    Ok(())
}
