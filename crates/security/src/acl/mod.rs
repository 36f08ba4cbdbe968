//! Kafka's ACL model (KIP-290 patterns, `AclOperation`, `AclPermissionType`):
//! bindings, filters as CreateAcls/DescribeAcls/DeleteAcls carry them, and the
//! authorizer that decides (DENY over ALLOW, implied operations, super users,
//! `allow.everyone.if.no.acl.found`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

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

/// Whether `input` spells `canonical` (lower case, no separators) ignoring
/// case, `-` and `_`, so "describe-configs", "DescribeConfigs" and
/// "DESCRIBE_CONFIGS" all read as "describeconfigs". No allocation.
fn name_is(input: &str, canonical: &str) -> bool {
    let mut letters = input
        .trim()
        .bytes()
        .filter(|b| *b != b'-' && *b != b'_')
        .map(|b| b.to_ascii_lowercase());
    let mut want = canonical.bytes();
    loop {
        match (letters.next(), want.next()) {
            (None, None) => return true,
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}

// Wire codes (Kafka's `ResourceType`, `PatternType`, `AclOperation`,
// `AclPermissionType`): `code()` gives it, `from_code()` parses it, and
// `parse()` reads the CLI's names ("topic", "TransactionalId", "describe-configs",
// "IDEMPOTENT_WRITE": case-insensitive, `-`/`_` alike).
impl ResourceType {
    const ALL: [ResourceType; 6] = [
        ResourceType::Topic,
        ResourceType::Group,
        ResourceType::Cluster,
        ResourceType::TransactionalId,
        ResourceType::DelegationToken,
        ResourceType::User,
    ];

    pub fn code(self) -> i8 {
        match self {
            ResourceType::Topic => 2,
            ResourceType::Group => 3,
            ResourceType::Cluster => 4,
            ResourceType::TransactionalId => 5,
            ResourceType::DelegationToken => 6,
            ResourceType::User => 7,
        }
    }
    pub fn from_code(code: i8) -> Option<ResourceType> {
        Self::ALL.into_iter().find(|t| t.code() == code)
    }
    pub fn parse(name: &str) -> Option<ResourceType> {
        Self::ALL
            .into_iter()
            .find(|t| name_is(name, t.canonical_name()))
    }
    fn canonical_name(self) -> &'static str {
        match self {
            ResourceType::Topic => "topic",
            ResourceType::Group => "group",
            ResourceType::Cluster => "cluster",
            ResourceType::TransactionalId => "transactionalid",
            ResourceType::DelegationToken => "delegationtoken",
            ResourceType::User => "user",
        }
    }
    /// Slot in the authorizer's per-type index.
    fn slot(self) -> usize {
        match self {
            ResourceType::Topic => 0,
            ResourceType::Group => 1,
            ResourceType::Cluster => 2,
            ResourceType::TransactionalId => 3,
            ResourceType::DelegationToken => 4,
            ResourceType::User => 5,
        }
    }
}
impl PatternType {
    pub fn code(self) -> i8 {
        match self {
            PatternType::Literal => 3,
            PatternType::Prefixed => 4,
        }
    }
    pub fn from_code(code: i8) -> Option<PatternType> {
        match code {
            3 => Some(PatternType::Literal),
            4 => Some(PatternType::Prefixed),
            _ => None,
        }
    }
    pub fn parse(name: &str) -> Option<PatternType> {
        if name_is(name, "literal") {
            Some(PatternType::Literal)
        } else if name_is(name, "prefixed") {
            Some(PatternType::Prefixed)
        } else {
            None
        }
    }
}
impl Operation {
    const EVERY: [Operation; 13] = [
        Operation::All,
        Operation::Read,
        Operation::Write,
        Operation::Create,
        Operation::Delete,
        Operation::Alter,
        Operation::Describe,
        Operation::ClusterAction,
        Operation::DescribeConfigs,
        Operation::AlterConfigs,
        Operation::IdempotentWrite,
        Operation::CreateTokens,
        Operation::DescribeTokens,
    ];

    pub fn code(self) -> i8 {
        match self {
            Operation::All => 2,
            Operation::Read => 3,
            Operation::Write => 4,
            Operation::Create => 5,
            Operation::Delete => 6,
            Operation::Alter => 7,
            Operation::Describe => 8,
            Operation::ClusterAction => 9,
            Operation::DescribeConfigs => 10,
            Operation::AlterConfigs => 11,
            Operation::IdempotentWrite => 12,
            Operation::CreateTokens => 13,
            Operation::DescribeTokens => 14,
        }
    }
    pub fn from_code(code: i8) -> Option<Operation> {
        Self::EVERY.into_iter().find(|o| o.code() == code)
    }
    pub fn parse(name: &str) -> Option<Operation> {
        Self::EVERY
            .into_iter()
            .find(|o| name_is(name, o.canonical_name()))
    }
    fn canonical_name(self) -> &'static str {
        match self {
            Operation::All => "all",
            Operation::Read => "read",
            Operation::Write => "write",
            Operation::Create => "create",
            Operation::Delete => "delete",
            Operation::Alter => "alter",
            Operation::Describe => "describe",
            Operation::ClusterAction => "clusteraction",
            Operation::DescribeConfigs => "describeconfigs",
            Operation::AlterConfigs => "alterconfigs",
            Operation::IdempotentWrite => "idempotentwrite",
            Operation::CreateTokens => "createtokens",
            Operation::DescribeTokens => "describetokens",
        }
    }
    /// Whether an ALLOW of `self` grants `requested`: the same operation, ALL,
    /// or one implying it (Kafka: READ/WRITE/DELETE/ALTER imply DESCRIBE,
    /// ALTER_CONFIGS implies DESCRIBE_CONFIGS).
    fn grants(self, requested: Operation) -> bool {
        self == requested
            || self == Operation::All
            || (requested == Operation::Describe
                && matches!(
                    self,
                    Operation::Read | Operation::Write | Operation::Delete | Operation::Alter
                ))
            || (requested == Operation::DescribeConfigs && self == Operation::AlterConfigs)
    }
    /// Whether a DENY of `self` refuses `requested`: only the same operation
    /// or ALL (a DENY of READ leaves DESCRIBE alone, as in Kafka).
    fn refuses(self, requested: Operation) -> bool {
        self == requested || self == Operation::All
    }
}
impl Permission {
    pub fn code(self) -> i8 {
        match self {
            Permission::Deny => 2,
            Permission::Allow => 3,
        }
    }
    pub fn from_code(code: i8) -> Option<Permission> {
        match code {
            2 => Some(Permission::Deny),
            3 => Some(Permission::Allow),
            _ => None,
        }
    }
    pub fn parse(name: &str) -> Option<Permission> {
        if name_is(name, "allow") {
            Some(Permission::Allow)
        } else if name_is(name, "deny") {
            Some(Permission::Deny)
        } else {
            None
        }
    }
}
impl PatternFilter {
    pub fn from_code(code: i8) -> Option<PatternFilter> {
        match code {
            1 => Some(PatternFilter::Any),
            2 => Some(PatternFilter::Match),
            3 => Some(PatternFilter::Literal),
            4 => Some(PatternFilter::Prefixed),
            _ => None,
        }
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

/// The principal every ACL may name to mean "every user".
const WILDCARD_PRINCIPAL: &str = "User:*";

impl AclBinding {
    /// What CreateAcls refuses: an empty name, a cluster resource not named
    /// `kafka-cluster`, a principal not of the form `User:NAME`, an empty host,
    /// a DelegationToken/User resource (Herald has none).
    pub fn validate(&self) -> Result<(), AclError> {
        let invalid = |msg: String| Err(AclError::Invalid(msg));
        match self.resource_type {
            ResourceType::DelegationToken => {
                return invalid(
                    "Herald does not support DelegationToken ACLs: it has no delegation tokens"
                        .to_string(),
                );
            }
            ResourceType::User => {
                return invalid(
                    "Herald does not support User ACLs: they govern delegation tokens, \
                     which Herald does not have"
                        .to_string(),
                );
            }
            _ => {}
        }
        if self.resource_name.is_empty() {
            return invalid("The ACL's resource name must not be empty".to_string());
        }
        if self.resource_type == ResourceType::Cluster && self.resource_name != CLUSTER_NAME {
            return invalid(format!(
                "The only valid name for the Cluster resource is {CLUSTER_NAME}, not '{}'",
                self.resource_name
            ));
        }
        match self.principal.strip_prefix("User:") {
            Some(name) if !name.is_empty() => {}
            _ => {
                return invalid(format!(
                    "The ACL's principal must be User:NAME (User:* for everyone), not '{}'",
                    self.principal
                ));
            }
        }
        if self.host.is_empty() {
            return invalid("The ACL's host must be '*' or an IP address, not empty".to_string());
        }
        Ok(())
    }

    fn applies_to(&self, principal: &str, host: &str) -> bool {
        (self.principal == principal || self.principal == WILDCARD_PRINCIPAL)
            && (self.host == host || self.host == WILDCARD)
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
    /// permission ANY = 1); unknown codes are errors. MATCH without a name
    /// matches every binding, as in Kafka's `ResourcePatternFilter`.
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
        let resource_type =
            match resource_type {
                1 => None,
                code => Some(ResourceType::from_code(code).ok_or_else(|| {
                    AclError::Invalid(format!("Unknown ACL resource type {code}"))
                })?),
            };
        let pattern = PatternFilter::from_code(pattern)
            .ok_or_else(|| AclError::Invalid(format!("Unknown ACL pattern type {pattern}")))?;
        let operation = match operation {
            1 => None,
            code => Some(
                Operation::from_code(code)
                    .ok_or_else(|| AclError::Invalid(format!("Unknown ACL operation {code}")))?,
            ),
        };
        let permission =
            match permission {
                1 => None,
                code => Some(Permission::from_code(code).ok_or_else(|| {
                    AclError::Invalid(format!("Unknown ACL permission type {code}"))
                })?),
            };
        Ok(AclFilter {
            resource_type,
            resource_name,
            pattern,
            principal,
            host,
            operation,
            permission,
        })
    }
    /// Kafka's `AclBindingFilter.matches`: MATCH selects the LITERAL binding of
    /// that name, LITERAL `*`, and every PREFIXED binding that is a prefix of it.
    pub fn matches(&self, binding: &AclBinding) -> bool {
        if self
            .resource_type
            .is_some_and(|t| t != binding.resource_type)
        {
            return false;
        }
        let pattern_ok = match self.pattern {
            PatternFilter::Any => self
                .resource_name
                .as_deref()
                .is_none_or(|n| n == binding.resource_name),
            PatternFilter::Literal | PatternFilter::Prefixed => {
                let wanted = if self.pattern == PatternFilter::Literal {
                    PatternType::Literal
                } else {
                    PatternType::Prefixed
                };
                binding.pattern_type == wanted
                    && self
                        .resource_name
                        .as_deref()
                        .is_none_or(|n| n == binding.resource_name)
            }
            PatternFilter::Match => match self.resource_name.as_deref() {
                None => true,
                Some(name) => match binding.pattern_type {
                    PatternType::Literal => {
                        binding.resource_name == name || binding.resource_name == WILDCARD
                    }
                    PatternType::Prefixed => name.starts_with(binding.resource_name.as_str()),
                },
            },
        };
        // The entry filter compares exactly: a filter for User:alice does not
        // select User:* bindings (that is what DeleteAcls relies on).
        pattern_ok
            && self
                .principal
                .as_deref()
                .is_none_or(|p| p == binding.principal)
            && self.host.as_deref().is_none_or(|h| h == binding.host)
            && self.operation.is_none_or(|o| o == binding.operation)
            && self.permission.is_none_or(|p| p == binding.permission)
    }
}

/// The bindings of one resource type, indexed so that `authorize` finds those
/// matching a name without scanning every ACL: one hash lookup for the literal
/// name, one for LITERAL `*`, and one per distinct PREFIXED length that fits.
#[derive(Default)]
struct TypeIndex {
    /// LITERAL bindings by name (`*` included), as positions in `Snapshot::acls`.
    literal: HashMap<String, Vec<usize>>,
    /// PREFIXED bindings by prefix.
    prefixed: HashMap<String, Vec<usize>>,
    /// The distinct byte lengths of the prefixes, ascending.
    prefix_lens: Vec<usize>,
    /// Every binding of the type (for `authorize_any`).
    all: Vec<usize>,
}

impl TypeIndex {
    /// Positions of the bindings whose pattern matches `name`. A name of `*`
    /// itself may yield the LITERAL `*` bindings twice, which changes no decision.
    fn matching<'a>(&'a self, name: &'a str) -> impl Iterator<Item = usize> + 'a {
        let literal = self.literal.get(name).into_iter().flatten();
        let wildcard = self.literal.get(WILDCARD).into_iter().flatten();
        let prefixed = self
            .prefix_lens
            .iter()
            .take_while(move |&&len| len <= name.len())
            .filter(move |&&len| name.is_char_boundary(len))
            .filter_map(move |&len| self.prefixed.get(&name[..len]))
            .flatten();
        literal.chain(wildcard).chain(prefixed).copied()
    }
}

/// One installed set of ACLs with its index; swapped whole so that a reader
/// never sees an index of other ACLs than the ones it holds.
struct Snapshot {
    acls: Arc<Vec<AclBinding>>,
    types: [TypeIndex; 6],
}

impl Snapshot {
    fn new(acls: Arc<Vec<AclBinding>>) -> Snapshot {
        let mut types: [TypeIndex; 6] = Default::default();
        for (i, b) in acls.iter().enumerate() {
            let t = &mut types[b.resource_type.slot()];
            t.all.push(i);
            let by_name = match b.pattern_type {
                PatternType::Literal => &mut t.literal,
                PatternType::Prefixed => &mut t.prefixed,
            };
            by_name.entry(b.resource_name.clone()).or_default().push(i);
        }
        for t in &mut types {
            t.prefix_lens = t.prefixed.keys().map(String::len).collect();
            t.prefix_lens.sort_unstable();
            t.prefix_lens.dedup();
        }
        Snapshot { acls, types }
    }
}

/// Decides requests from the current set of ACLs.
pub struct Authorizer {
    super_users: Vec<String>,
    allow_if_no_acl: bool,
    /// The ACLs (`acls()` hands out this `Arc<Vec>`) together with their index.
    state: RwLock<Arc<Snapshot>>,
}

impl Authorizer {
    /// `super_users`: principals (`User:admin`) that skip every check.
    pub fn new(super_users: Vec<String>, allow_everyone_if_no_acl_found: bool) -> Authorizer {
        Authorizer {
            super_users,
            allow_if_no_acl: allow_everyone_if_no_acl_found,
            state: RwLock::new(Arc::new(Snapshot::new(Arc::new(Vec::new())))),
        }
    }
    /// Installs the current ACLs (after a load or a change).
    pub fn replace(&self, acls: Vec<AclBinding>) {
        // Index outside the lock; readers keep deciding on the old snapshot.
        let snapshot = Arc::new(Snapshot::new(Arc::new(acls)));
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = snapshot;
    }
    pub fn acls(&self) -> Arc<Vec<AclBinding>> {
        self.snapshot().acls.clone()
    }
    pub fn is_super_user(&self, principal: &str) -> bool {
        self.super_users.iter().any(|s| s == principal)
    }
    /// The current snapshot; the lock is held only for an `Arc` clone.
    fn snapshot(&self) -> Arc<Snapshot> {
        self.state.read().unwrap_or_else(|e| e.into_inner()).clone()
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
        if self.is_super_user(principal) {
            return true;
        }
        let snap = self.snapshot();
        let mut any_acl = false;
        let mut allowed = false;
        for i in snap.types[resource_type.slot()].matching(resource_name) {
            any_acl = true;
            let b = &snap.acls[i];
            if !b.applies_to(principal, host) {
                continue;
            }
            match b.permission {
                // A DENY decides at once; an ALLOW must wait for every DENY.
                Permission::Deny if b.operation.refuses(operation) => return false,
                Permission::Deny => {}
                Permission::Allow => allowed |= b.operation.grants(operation),
            }
        }
        allowed || (!any_acl && self.allow_if_no_acl)
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
        if self.is_super_user(principal) {
            return true;
        }
        // The cluster has one name, so "some cluster" is that one.
        if resource_type == ResourceType::Cluster {
            return self.authorize(principal, host, operation, resource_type, CLUSTER_NAME);
        }
        let snap = self.snapshot();
        let index = &snap.types[resource_type.slot()];
        let relevant = || {
            index
                .all
                .iter()
                .map(|&i| &snap.acls[i])
                .filter(|b| b.applies_to(principal, host))
        };

        let mut deny_literal: HashSet<&str> = HashSet::new();
        let mut deny_prefixed: HashSet<&str> = HashSet::new();
        for b in relevant().filter(|b| b.permission == Permission::Deny) {
            if !b.operation.refuses(operation) {
                continue;
            }
            match b.pattern_type {
                PatternType::Literal if b.resource_name == WILDCARD => return false,
                PatternType::Literal => deny_literal.insert(&b.resource_name),
                PatternType::Prefixed => deny_prefixed.insert(&b.resource_name),
            };
        }
        // Whether a DENY PREFIXED covers every name starting with `name`.
        let prefix_denied = |name: &str| {
            (1..=name.len())
                .filter(|&len| name.is_char_boundary(len))
                .any(|len| deny_prefixed.contains(&name[..len]))
        };
        let uncovered_allow = relevant()
            .filter(|b| b.permission == Permission::Allow && b.operation.grants(operation))
            .any(|b| match b.pattern_type {
                // LITERAL `*` covers names no DENY prefix reaches, and the DENY
                // of `*` itself was ruled out above.
                PatternType::Literal if b.resource_name == WILDCARD => true,
                PatternType::Literal => {
                    !deny_literal.contains(b.resource_name.as_str())
                        && !prefix_denied(&b.resource_name)
                }
                PatternType::Prefixed => !prefix_denied(&b.resource_name),
            });
        if uncovered_allow {
            return true;
        }
        // allow.everyone.if.no.acl.found: allowed when some resource of the type
        // has no ACL at all. Without a LITERAL `*` (from anyone) a name beyond
        // every literal and prefix exists; this is what Kafka's check of a
        // hard-coded name ("hardcode") approximates.
        self.allow_if_no_acl && !index.literal.contains_key(WILDCARD)
    }
}

#[cfg(test)]
mod tests;
