//! Kafka's ACL model (KIP-290 patterns, `AclOperation`, `AclPermissionType`):
//! bindings, filters as CreateAcls/DescribeAcls/DeleteAcls carry them, and the
//! authorizer that decides (DENY over ALLOW, implied operations, super users,
//! `allow.everyone.if.no.acl.found`).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The cluster resource's only name.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// LITERAL `*` matches every name; a host of `*` matches every host.
pub const WILDCARD: &str = "*";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ResourceType {
    Topic,
    Group,
    Cluster,
    TransactionalId,
    DelegationToken,
    User,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PatternType {
    Literal,
    Prefixed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Operation {
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
    CreateTokens,
    DescribeTokens,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Permission {
    Deny,
    Allow,
}

/// A pattern filter (DescribeAcls/DeleteAcls): ANY 1, MATCH 2, LITERAL 3, PREFIXED 4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatternFilter {
    Any,
    Match,
    Literal,
    Prefixed,
}

// Wire codes (Kafka's `ResourceType`, `PatternType`, `AclOperation`,
// `AclPermissionType`): `code()` gives it, `from_code()` parses it, and
// `parse()` reads the CLI's names ("topic", "TransactionalId", "describe-configs",
// "IDEMPOTENT_WRITE": case-insensitive, `-`/`_` alike).
impl ResourceType {
    pub fn code(self) -> i8 {
        todo!()
    }
    pub fn from_code(code: i8) -> Option<ResourceType> {
        todo!()
    }
    pub fn parse(name: &str) -> Option<ResourceType> {
        todo!()
    }
}
impl PatternType {
    pub fn code(self) -> i8 {
        todo!()
    }
    pub fn from_code(code: i8) -> Option<PatternType> {
        todo!()
    }
    pub fn parse(name: &str) -> Option<PatternType> {
        todo!()
    }
}
impl Operation {
    pub fn code(self) -> i8 {
        todo!()
    }
    pub fn from_code(code: i8) -> Option<Operation> {
        todo!()
    }
    pub fn parse(name: &str) -> Option<Operation> {
        todo!()
    }
}
impl Permission {
    pub fn code(self) -> i8 {
        todo!()
    }
    pub fn from_code(code: i8) -> Option<Permission> {
        todo!()
    }
    pub fn parse(name: &str) -> Option<Permission> {
        todo!()
    }
}
impl PatternFilter {
    pub fn from_code(code: i8) -> Option<PatternFilter> {
        todo!()
    }
}

/// One ACL, as Kafka's `AclBinding`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    /// `User:alice` (type `User` only).
    pub principal: String,
    /// `*` or an IP address.
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AclError {
    /// Kafka answers INVALID_REQUEST (42) for these.
    #[error("{0}")]
    Invalid(String),
}

impl AclBinding {
    /// What CreateAcls refuses: an empty name, a cluster resource not named
    /// `kafka-cluster`, a principal not of the form `User:NAME`, an empty host,
    /// a DelegationToken/User resource (Herald has none).
    pub fn validate(&self) -> Result<(), AclError> {
        todo!()
    }
}

/// A filter as DescribeAcls and DeleteAcls carry it; None means ANY.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: Option<ResourceType>,
    pub resource_name: Option<String>,
    pub pattern: PatternFilter,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<Operation>,
    pub permission: Option<Permission>,
}

impl AclFilter {
    /// From the wire codes (resource type ANY = 1, operation ANY = 1,
    /// permission ANY = 1); unknown codes and MATCH without a name are errors.
    #[allow(clippy::too_many_arguments)]
    pub fn from_wire(
        resource_type: i8,
        resource_name: Option<String>,
        pattern: i8,
        principal: Option<String>,
        host: Option<String>,
        operation: i8,
        permission: i8,
    ) -> Result<AclFilter, AclError> {
        todo!()
    }
    /// Kafka's `AclBindingFilter.matches`: MATCH selects the LITERAL binding of
    /// that name, LITERAL `*`, and every PREFIXED binding that is a prefix of it.
    pub fn matches(&self, binding: &AclBinding) -> bool {
        todo!()
    }
}

/// Decides requests from the current set of ACLs.
pub struct Authorizer {
    super_users: Vec<String>,
    allow_if_no_acl: bool,
    acls: std::sync::RwLock<Arc<Vec<AclBinding>>>,
}

impl Authorizer {
    /// `super_users`: principals (`User:admin`) that skip every check.
    pub fn new(super_users: Vec<String>, allow_everyone_if_no_acl_found: bool) -> Authorizer {
        todo!()
    }
    /// Installs the current ACLs (after a load or a change).
    pub fn replace(&self, acls: Vec<AclBinding>) {
        todo!()
    }
    pub fn acls(&self) -> Arc<Vec<AclBinding>> {
        todo!()
    }
    pub fn is_super_user(&self, principal: &str) -> bool {
        todo!()
    }
    /// Kafka's `AclAuthorizer.authorize`: super user → allowed; any matching
    /// DENY (operation or ALL) → denied; a matching ALLOW of the operation, of
    /// ALL, or of an operation implying it (READ/WRITE/DELETE/ALTER imply
    /// DESCRIBE, ALTER_CONFIGS implies DESCRIBE_CONFIGS) → allowed; no ACL at all
    /// on the resource and `allow.everyone.if.no.acl.found` → allowed; else denied.
    pub fn authorize(
        &self,
        principal: &str,
        host: &str,
        operation: Operation,
        resource_type: ResourceType,
        resource_name: &str,
    ) -> bool {
        todo!()
    }
    /// Kafka's `authorizeByResourceType` (KIP-679: an idempotent producer may
    /// write if it may WRITE some topic): whether some ALLOW binding of the
    /// principal for the operation on a resource of this type is not covered
    /// by a DENY (LITERAL `*`, the same literal name, or a prefix of it).
    pub fn authorize_any(
        &self,
        principal: &str,
        host: &str,
        operation: Operation,
        resource_type: ResourceType,
    ) -> bool {
        todo!()
    }
}
