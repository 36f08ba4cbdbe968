//! Tests of `acl`.

use super::*;
use Operation::*;
use PatternType::{Literal, Prefixed};
use Permission::{Allow, Deny};
use ResourceType::{Cluster, Group, Topic, TransactionalId};

const HOST: &str = "10.0.0.1";

fn acl(
    rt: ResourceType,
    name: &str,
    pt: PatternType,
    principal: &str,
    host: &str,
    op: Operation,
    perm: Permission,
) -> AclBinding {
    AclBinding {
        resource_type: rt,
        resource_name: name.to_string(),
        pattern_type: pt,
        principal: principal.to_string(),
        host: host.to_string(),
        operation: op,
        permission: perm,
    }
}

/// A topic ACL for any host.
fn topic(
    name: &str,
    pt: PatternType,
    principal: &str,
    op: Operation,
    perm: Permission,
) -> AclBinding {
    acl(Topic, name, pt, principal, WILDCARD, op, perm)
}

fn authorizer(acls: Vec<AclBinding>, allow_if_no_acl: bool) -> Authorizer {
    let a = Authorizer::new(vec!["User:admin".to_string()], allow_if_no_acl);
    a.replace(acls);
    a
}

#[test]
fn codes_round_trip() {
    for t in ResourceType::ALL {
        assert_eq!(ResourceType::from_code(t.code()), Some(t));
    }
    for o in Operation::EVERY {
        assert_eq!(Operation::from_code(o.code()), Some(o));
    }
    for p in [Literal, Prefixed] {
        assert_eq!(PatternType::from_code(p.code()), Some(p));
    }
    for p in [Allow, Deny] {
        assert_eq!(Permission::from_code(p.code()), Some(p));
    }
    assert_eq!(Topic.code(), 2);
    assert_eq!(ResourceType::User.code(), 7);
    assert_eq!(IdempotentWrite.code(), 12);
    assert_eq!(DescribeTokens.code(), 14);
    assert_eq!(Allow.code(), 3);
    assert_eq!(Prefixed.code(), 4);
    // ANY, UNKNOWN and MATCH exist only in filters.
    for code in [0, 1, 8, -1] {
        assert_eq!(ResourceType::from_code(code), None);
    }
    for code in [0, 1, 15] {
        assert_eq!(Operation::from_code(code), None);
    }
    for code in [0, 1, 2, 5] {
        assert_eq!(PatternType::from_code(code), None);
    }
    for code in [0, 1, 4] {
        assert_eq!(Permission::from_code(code), None);
    }
    assert_eq!(PatternFilter::from_code(1), Some(PatternFilter::Any));
    assert_eq!(PatternFilter::from_code(2), Some(PatternFilter::Match));
    assert_eq!(PatternFilter::from_code(3), Some(PatternFilter::Literal));
    assert_eq!(PatternFilter::from_code(4), Some(PatternFilter::Prefixed));
    assert_eq!(PatternFilter::from_code(0), None);
}

#[test]
fn parses_cli_names() {
    for n in ["topic", "Topic", "TOPIC"] {
        assert_eq!(ResourceType::parse(n), Some(Topic));
    }
    for n in [
        "transactional-id",
        "TransactionalId",
        "TRANSACTIONAL_ID",
        "transactionalid",
    ] {
        assert_eq!(ResourceType::parse(n), Some(TransactionalId));
    }
    assert_eq!(
        ResourceType::parse("delegation-token"),
        Some(ResourceType::DelegationToken)
    );
    assert_eq!(ResourceType::parse("group"), Some(Group));
    assert_eq!(ResourceType::parse("cluster"), Some(Cluster));
    assert_eq!(ResourceType::parse("any"), None);
    assert_eq!(ResourceType::parse("topics"), None);
    assert_eq!(ResourceType::parse(""), None);
    for n in ["describe-configs", "DescribeConfigs", "DESCRIBE_CONFIGS"] {
        assert_eq!(Operation::parse(n), Some(DescribeConfigs));
    }
    assert_eq!(Operation::parse("idempotent_write"), Some(IdempotentWrite));
    assert_eq!(Operation::parse("ClusterAction"), Some(ClusterAction));
    assert_eq!(Operation::parse("All"), Some(All));
    assert_eq!(Operation::parse("any"), None);
    assert_eq!(Permission::parse("allow"), Some(Allow));
    assert_eq!(Permission::parse("DENY"), Some(Deny));
    assert_eq!(Permission::parse("any"), None);
    assert_eq!(PatternType::parse("prefixed"), Some(Prefixed));
    assert_eq!(PatternType::parse("LITERAL"), Some(Literal));
    assert_eq!(PatternType::parse("match"), None);
}

#[test]
fn allow_and_deny() {
    let a = authorizer(
        vec![
            topic("orders", Literal, "User:alice", Read, Allow),
            topic("orders", Literal, "User:bob", Read, Deny),
            topic("orders", Literal, "User:bob", Write, Allow),
        ],
        false,
    );
    assert!(a.authorize("User:alice", HOST, Read, Topic, "orders"));
    assert!(!a.authorize("User:alice", HOST, Write, Topic, "orders"));
    assert!(!a.authorize("User:bob", HOST, Read, Topic, "orders"));
    assert!(a.authorize("User:bob", HOST, Write, Topic, "orders"));
    assert!(!a.authorize("User:carol", HOST, Read, Topic, "orders"));
    // Same name, other type.
    assert!(!a.authorize("User:alice", HOST, Read, Group, "orders"));
    assert!(!a.authorize("User:alice", HOST, Read, Topic, "orders2"));
}

#[test]
fn implied_operations() {
    for op in [Read, Write, Delete, Alter] {
        let a = authorizer(vec![topic("t", Literal, "User:alice", op, Allow)], false);
        assert!(
            a.authorize("User:alice", HOST, Describe, Topic, "t"),
            "{op:?}"
        );
        assert!(
            !a.authorize("User:alice", HOST, DescribeConfigs, Topic, "t"),
            "{op:?}"
        );
    }
    for op in [Create, AlterConfigs, DescribeConfigs, IdempotentWrite] {
        let a = authorizer(vec![topic("t", Literal, "User:alice", op, Allow)], false);
        assert!(
            !a.authorize("User:alice", HOST, Describe, Topic, "t"),
            "{op:?}"
        );
    }
    let a = authorizer(
        vec![topic("t", Literal, "User:alice", AlterConfigs, Allow)],
        false,
    );
    assert!(a.authorize("User:alice", HOST, DescribeConfigs, Topic, "t"));
    assert!(!a.authorize("User:alice", HOST, Alter, Topic, "t"));
    // Implication runs one way.
    let a = authorizer(
        vec![topic("t", Literal, "User:alice", Describe, Allow)],
        false,
    );
    assert!(!a.authorize("User:alice", HOST, Read, Topic, "t"));
}

#[test]
fn all_and_deny_precedence() {
    let a = authorizer(vec![topic("t", Literal, "User:alice", All, Allow)], false);
    for op in Operation::EVERY {
        assert!(a.authorize("User:alice", HOST, op, Topic, "t"), "{op:?}");
    }
    // DENY over ALLOW, even over ALLOW ALL.
    let a = authorizer(
        vec![
            topic("t", Literal, "User:alice", All, Allow),
            topic("t", Literal, "User:alice", Write, Deny),
        ],
        true,
    );
    assert!(!a.authorize("User:alice", HOST, Write, Topic, "t"));
    assert!(a.authorize("User:alice", HOST, Read, Topic, "t"));
    // A DENY of READ does not deny the DESCRIBE that READ would imply.
    let a = authorizer(
        vec![
            topic("t", Literal, "User:alice", Write, Allow),
            topic("t", Literal, "User:alice", Read, Deny),
        ],
        false,
    );
    assert!(!a.authorize("User:alice", HOST, Read, Topic, "t"));
    assert!(a.authorize("User:alice", HOST, Describe, Topic, "t"));
    // DENY ALL denies everything.
    let a = authorizer(
        vec![
            topic("t", Literal, "User:alice", All, Allow),
            topic("t", Literal, "User:alice", All, Deny),
        ],
        true,
    );
    for op in Operation::EVERY {
        assert!(!a.authorize("User:alice", HOST, op, Topic, "t"), "{op:?}");
    }
}

#[test]
fn patterns_principals_hosts() {
    let a = authorizer(
        vec![
            topic("logs-", Prefixed, "User:alice", Read, Allow),
            topic("*", Literal, "User:bob", Write, Allow),
            topic("public", Literal, "User:*", Read, Allow),
            topic("secret", Literal, "User:carol", Read, Allow),
            acl(Topic, "pinned", Literal, "User:carol", HOST, Read, Allow),
            acl(Topic, "public", Literal, "User:eve", "10.9.9.9", Read, Deny),
            // A multibyte prefix must not split a name mid-character.
            topic("é", Prefixed, "User:alice", Read, Allow),
        ],
        false,
    );
    assert!(a.authorize("User:alice", HOST, Read, Topic, "logs-a"));
    assert!(a.authorize("User:alice", HOST, Read, Topic, "logs-"));
    assert!(!a.authorize("User:alice", HOST, Read, Topic, "logs"));
    assert!(!a.authorize("User:alice", HOST, Read, Topic, "xlogs-a"));
    assert!(a.authorize("User:alice", HOST, Read, Topic, "éa"));
    assert!(!a.authorize("User:alice", HOST, Read, Topic, "ü"));
    // LITERAL `*` is every topic, but only LITERAL: a PREFIXED binding
    // named "logs-" is not a wildcard.
    assert!(a.authorize("User:bob", HOST, Write, Topic, "anything"));
    assert!(!a.authorize("User:bob", HOST, Read, Topic, "anything"));
    assert!(!a.authorize("User:bob", HOST, Write, Group, "anything"));
    // User:* is every principal.
    assert!(a.authorize("User:zed", HOST, Read, Topic, "public"));
    assert!(!a.authorize("User:zed", HOST, Read, Topic, "secret"));
    // Host-specific bindings.
    assert!(a.authorize("User:carol", HOST, Read, Topic, "pinned"));
    assert!(!a.authorize("User:carol", "10.0.0.2", Read, Topic, "pinned"));
    assert!(a.authorize("User:eve", HOST, Read, Topic, "public"));
    assert!(!a.authorize("User:eve", "10.9.9.9", Read, Topic, "public"));
}

#[test]
fn prefixed_and_wildcard_deny() {
    let a = authorizer(
        vec![
            topic("*", Literal, "User:alice", All, Allow),
            topic("private-", Prefixed, "User:alice", Read, Deny),
            topic("x", Literal, "User:*", Write, Deny),
        ],
        false,
    );
    assert!(a.authorize("User:alice", HOST, Read, Topic, "t"));
    assert!(!a.authorize("User:alice", HOST, Read, Topic, "private-1"));
    assert!(a.authorize("User:alice", HOST, Write, Topic, "private-1"));
    assert!(!a.authorize("User:alice", HOST, Write, Topic, "x"));
}

#[test]
fn super_users_and_no_acl_found() {
    let acls = vec![
        topic("t", Literal, "User:alice", Read, Allow),
        topic("*", Literal, "User:alice", Write, Deny),
        acl(
            Cluster,
            CLUSTER_NAME,
            Literal,
            "User:alice",
            WILDCARD,
            All,
            Deny,
        ),
    ];
    let open = authorizer(acls.clone(), true);
    let closed = authorizer(acls, false);
    for a in [&open, &closed] {
        // Super users pass even a DENY.
        assert!(a.authorize("User:admin", HOST, Write, Topic, "t"));
        assert!(a.authorize("User:admin", HOST, ClusterAction, Cluster, CLUSTER_NAME));
        assert!(a.is_super_user("User:admin"));
        assert!(!a.is_super_user("User:alice"));
        // A resource with ACLs for someone else stays denied.
        assert!(!a.authorize("User:bob", HOST, Read, Topic, "t"));
    }
    // No ACL on the group at all.
    assert!(open.authorize("User:bob", HOST, Read, Group, "g"));
    assert!(!closed.authorize("User:bob", HOST, Read, Group, "g"));
    // The LITERAL `*` DENY puts an ACL on every topic.
    assert!(!open.authorize("User:bob", HOST, Read, Topic, "other"));
    let empty = Authorizer::new(vec![], true);
    assert!(empty.authorize("User:bob", HOST, Write, Topic, "t"));
    assert!(!Authorizer::new(vec![], false).authorize("User:bob", HOST, Write, Topic, "t"));
}

#[test]
fn replace_swaps_and_acls_shares() {
    let a = Authorizer::new(vec![], false);
    assert!(a.acls().is_empty());
    let before = a.acls();
    a.replace(vec![topic("t", Literal, "User:alice", Read, Allow)]);
    assert!(before.is_empty());
    assert_eq!(a.acls().len(), 1);
    assert!(Arc::ptr_eq(&a.acls(), &a.acls()));
    assert!(a.authorize("User:alice", HOST, Read, Topic, "t"));
    a.replace(vec![]);
    assert!(!a.authorize("User:alice", HOST, Read, Topic, "t"));
}

#[test]
fn authorize_any_by_type() {
    // A prefixed ALLOW covered by a shorter DENY prefix: nothing left.
    let a = authorizer(
        vec![
            topic("app-", Prefixed, "User:alice", Write, Allow),
            topic("app", Prefixed, "User:alice", Write, Deny),
        ],
        false,
    );
    assert!(!a.authorize_any("User:alice", HOST, Write, Topic));
    // A longer DENY prefix leaves the rest of "app-" writable.
    let a = authorizer(
        vec![
            topic("app-", Prefixed, "User:alice", Write, Allow),
            topic("app-secret", Prefixed, "User:alice", Write, Deny),
        ],
        false,
    );
    assert!(a.authorize_any("User:alice", HOST, Write, Topic));
    assert!(!a.authorize_any("User:bob", HOST, Write, Topic));
    assert!(!a.authorize_any("User:alice", HOST, Read, Topic));
    assert!(!a.authorize_any("User:alice", HOST, Write, Group));
    assert!(a.authorize_any("User:admin", HOST, Write, Topic));
    // Literal ALLOWs: denied by the same name or a prefix of it.
    let a = authorizer(
        vec![
            topic("orders", Literal, "User:alice", Write, Allow),
            topic("orders", Literal, "User:alice", Write, Deny),
            topic("billing", Literal, "User:bob", Write, Allow),
            topic("bill", Prefixed, "User:*", All, Deny),
            topic("audit", Literal, "User:carol", Write, Allow),
            topic("audit", Literal, "User:carol", Read, Deny),
        ],
        false,
    );
    assert!(!a.authorize_any("User:alice", HOST, Write, Topic));
    assert!(!a.authorize_any("User:bob", HOST, Write, Topic));
    assert!(a.authorize_any("User:carol", HOST, Write, Topic));
    // Implied operations count, as in authorize.
    assert!(a.authorize_any("User:carol", HOST, Describe, Topic));
    // A DENY of LITERAL `*` wins over every ALLOW, `*` included.
    let a = authorizer(
        vec![
            topic("*", Literal, "User:alice", All, Allow),
            topic("*", Literal, "User:alice", Write, Deny),
        ],
        true,
    );
    assert!(!a.authorize_any("User:alice", HOST, Write, Topic));
    assert!(a.authorize_any("User:alice", HOST, Read, Topic));
    // An ALLOW of LITERAL `*` is not covered by DENY prefixes.
    let a = authorizer(
        vec![
            topic("*", Literal, "User:alice", Write, Allow),
            topic("a", Prefixed, "User:alice", Write, Deny),
        ],
        false,
    );
    assert!(a.authorize_any("User:alice", HOST, Write, Topic));
    // Host-specific bindings only count from that host.
    let a = authorizer(
        vec![acl(Topic, "t", Literal, "User:alice", HOST, Write, Allow)],
        false,
    );
    assert!(a.authorize_any("User:alice", HOST, Write, Topic));
    assert!(!a.authorize_any("User:alice", "10.0.0.2", Write, Topic));
}

#[test]
fn authorize_any_no_acl_found() {
    assert!(Authorizer::new(vec![], true).authorize_any("User:x", HOST, Write, Topic));
    assert!(!Authorizer::new(vec![], false).authorize_any("User:x", HOST, Write, Topic));
    // ACLs on one topic leave the others open under allow.everyone.
    let acls = vec![topic("secret", Literal, "User:bob", Write, Allow)];
    assert!(authorizer(acls.clone(), true).authorize_any("User:alice", HOST, Write, Topic));
    assert!(!authorizer(acls, false).authorize_any("User:alice", HOST, Write, Topic));
    // A LITERAL `*` ACL (anyone's) leaves no topic without ACLs.
    let acls = vec![topic("*", Literal, "User:bob", Write, Allow)];
    assert!(!authorizer(acls, true).authorize_any("User:alice", HOST, Write, Topic));
    // The cluster has one name: same answer as authorize.
    let acls = vec![acl(
        Cluster,
        CLUSTER_NAME,
        Literal,
        "User:bob",
        WILDCARD,
        IdempotentWrite,
        Allow,
    )];
    let a = authorizer(acls, true);
    assert!(a.authorize_any("User:bob", HOST, IdempotentWrite, Cluster));
    assert!(!a.authorize_any("User:alice", HOST, IdempotentWrite, Cluster));
    assert!(a.authorize_any("User:alice", HOST, IdempotentWrite, Group));
}

fn sample() -> Vec<AclBinding> {
    vec![
        topic("orders", Literal, "User:alice", Read, Allow),
        topic("*", Literal, "User:alice", Describe, Allow),
        topic("ord", Prefixed, "User:bob", Write, Deny),
        topic("orders", Prefixed, "User:*", Read, Allow),
        topic("other", Literal, "User:alice", Read, Allow),
        acl(Group, "orders", Literal, "User:alice", HOST, Read, Allow),
    ]
}

fn selected(filter: &AclFilter) -> Vec<usize> {
    sample()
        .iter()
        .enumerate()
        .filter(|(_, b)| filter.matches(b))
        .map(|(i, _)| i)
        .collect()
}

fn filter(rt: i8, name: Option<&str>, pattern: i8) -> AclFilter {
    AclFilter::from_wire(rt, name.map(str::to_string), pattern, None, None, 1, 1).unwrap()
}

#[test]
fn filter_patterns() {
    // ANY: every pattern type, exact name.
    assert_eq!(selected(&filter(1, None, 1)), vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(selected(&filter(1, Some("orders"), 1)), vec![0, 3, 5]);
    assert_eq!(selected(&filter(2, Some("orders"), 1)), vec![0, 3]);
    // LITERAL / PREFIXED: that pattern type.
    assert_eq!(selected(&filter(2, None, 3)), vec![0, 1, 4]);
    assert_eq!(selected(&filter(2, Some("orders"), 3)), vec![0]);
    assert_eq!(selected(&filter(2, Some("*"), 3)), vec![1]);
    assert_eq!(selected(&filter(2, None, 4)), vec![2, 3]);
    assert_eq!(selected(&filter(2, Some("ord"), 4)), vec![2]);
    // MATCH: what applies to the resource "orders".
    assert_eq!(selected(&filter(2, Some("orders"), 2)), vec![0, 1, 2, 3]);
    assert_eq!(selected(&filter(2, Some("ordersx"), 2)), vec![1, 2, 3]);
    assert_eq!(selected(&filter(1, Some("orders"), 2)), vec![0, 1, 2, 3, 5]);
    // MATCH without a name matches all, as in Kafka.
    assert_eq!(selected(&filter(1, None, 2)), vec![0, 1, 2, 3, 4, 5]);
}

#[test]
fn filter_entries() {
    let f = |principal: Option<&str>, host: Option<&str>, op: i8, perm: i8| {
        AclFilter::from_wire(
            1,
            None,
            1,
            principal.map(str::to_string),
            host.map(str::to_string),
            op,
            perm,
        )
        .unwrap()
    };
    // Principals and hosts compare exactly: User:alice does not select User:*.
    assert_eq!(
        selected(&f(Some("User:alice"), None, 1, 1)),
        vec![0, 1, 4, 5]
    );
    assert_eq!(selected(&f(Some("User:*"), None, 1, 1)), vec![3]);
    assert_eq!(selected(&f(None, Some(HOST), 1, 1)), vec![5]);
    assert_eq!(selected(&f(None, Some("*"), 1, 1)), vec![0, 1, 2, 3, 4]);
    assert_eq!(selected(&f(None, None, Read.code(), 1)), vec![0, 3, 4, 5]);
    assert_eq!(selected(&f(None, None, 1, Deny.code())), vec![2]);
    assert_eq!(
        selected(&f(Some("User:alice"), None, Read.code(), Allow.code())),
        vec![0, 4, 5]
    );
}

#[test]
fn filter_from_wire_errors() {
    let wire = |rt: i8, pattern: i8, op: i8, perm: i8| {
        AclFilter::from_wire(rt, None, pattern, None, None, op, perm)
    };
    assert!(wire(1, 1, 1, 1).is_ok());
    let f = wire(2, 4, 3, 3).unwrap();
    assert_eq!(f.resource_type, Some(Topic));
    assert_eq!(f.pattern, PatternFilter::Prefixed);
    assert_eq!(f.operation, Some(Read));
    assert_eq!(f.permission, Some(Allow));
    for bad in [
        wire(0, 1, 1, 1),
        wire(9, 1, 1, 1),
        wire(1, 0, 1, 1),
        wire(1, 5, 1, 1),
    ] {
        assert!(matches!(bad, Err(AclError::Invalid(_))));
    }
    for bad in [
        wire(1, 1, 0, 1),
        wire(1, 1, 15, 1),
        wire(1, 1, 1, 0),
        wire(1, 1, 1, 4),
    ] {
        assert!(matches!(bad, Err(AclError::Invalid(_))));
    }
}

#[test]
fn validate_errors() {
    let good = topic("t", Literal, "User:alice", Read, Allow);
    assert_eq!(good.validate(), Ok(()));
    assert_eq!(
        topic("*", Literal, "User:*", Read, Allow).validate(),
        Ok(())
    );
    assert_eq!(
        topic("*", Prefixed, "User:alice", Read, Allow).validate(),
        Ok(())
    );
    let cluster = acl(
        Cluster,
        CLUSTER_NAME,
        Literal,
        "User:a",
        HOST,
        ClusterAction,
        Allow,
    );
    assert_eq!(cluster.validate(), Ok(()));

    let message = |b: AclBinding| match b.validate() {
        Err(AclError::Invalid(m)) => m,
        Ok(()) => panic!("{b:?} validated"),
    };
    assert!(message(topic("", Literal, "User:alice", Read, Allow)).contains("name"));
    let mut b = cluster.clone();
    b.resource_name = "other".to_string();
    assert!(message(b).contains(CLUSTER_NAME));
    for principal in ["alice", "User:", "Group:x", "user:alice", ""] {
        assert!(message(topic("t", Literal, principal, Read, Allow)).contains("principal"));
    }
    let mut b = good.clone();
    b.host = String::new();
    assert!(message(b).contains("host"));
    let mut b = good.clone();
    b.resource_type = ResourceType::DelegationToken;
    assert!(message(b).contains("does not support DelegationToken"));
    let mut b = good;
    b.resource_type = ResourceType::User;
    assert!(message(b).contains("does not support User"));
}
