//! Tests of the group coordinator.

mod coordinator {
    use super::super::*;
    use std::collections::BTreeMap as Map;

    fn config(dir: &std::path::Path) -> BrokerConfig {
        BrokerConfig {
            data_dir: dir.to_path_buf(),
            offsets_compact_bytes: 4096,
            ..BrokerConfig::default()
        }
    }

    fn join_req(member_id: &str) -> JoinRequest {
        JoinRequest {
            member_id: member_id.to_string(),
            instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(10),
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"meta"))],
            require_known_member_id: false,
        }
    }

    #[tokio::test]
    async fn state_survives_compaction_and_restart() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let topics = TopicRegistry::load(dir.path(), cfg.log.clone(), 100).unwrap();
        topics.create("t", 4, Map::new()).await.unwrap();
        {
            let groups = GroupCoordinator::open(&cfg).unwrap();
            for i in 0..300i64 {
                let res = groups.commit(
                    CommitRequest {
                        group_id: "g".into(),
                        generation_or_epoch: -1,
                        member_id: String::new(),
                        instance_id: None,
                        topics: vec![(
                            "t".into(),
                            vec![CommitPartition {
                                partition: (i % 4) as i32,
                                offset: i,
                                leader_epoch: 0,
                                metadata: Some(format!("m{i}")),
                            }],
                        )],
                        version: 8,
                    },
                    &topics,
                );
                assert_eq!(res[0].1[0].1, 0);
            }
            // An unknown partition and too much metadata are refused.
            let res = groups.commit(
                CommitRequest {
                    group_id: "g".into(),
                    generation_or_epoch: -1,
                    member_id: String::new(),
                    instance_id: None,
                    topics: vec![(
                        "t".into(),
                        vec![
                            CommitPartition {
                                partition: 9,
                                offset: 1,
                                leader_epoch: 0,
                                metadata: None,
                            },
                            CommitPartition {
                                partition: 0,
                                offset: 1,
                                leader_epoch: 0,
                                metadata: Some("x".repeat(5000)),
                            },
                        ],
                    )],
                    version: 8,
                },
                &topics,
            );
            assert_eq!(res[0].1[0].1, ResponseError::UnknownTopicOrPartition.code());
            assert_eq!(res[0].1[1].1, ResponseError::OffsetMetadataTooLarge.code());
            // A classic group with one member reaches Stable.
            let Answer::Later(rx) = groups.join("c", join_req("")) else {
                panic!("join should wait");
            };
            let j = rx.await.unwrap();
            assert_eq!(j.error, 0);
            assert_eq!(j.leader, j.member_id);
            let Answer::Later(rx) = groups.sync(
                "c",
                &j.member_id,
                None,
                j.generation,
                None,
                None,
                vec![(j.member_id.clone(), Bytes::from_static(b"assignment"))],
            ) else {
                panic!("sync should answer through the channel");
            };
            assert_eq!(&rx.await.unwrap().assignment[..], b"assignment");
            assert_eq!(
                groups.heartbeat("c", &j.member_id, None, j.generation + 1),
                22
            );
            let before = lock(&groups.state).store.size_bytes();
            groups.tick(&topics);
            let after = lock(&groups.state).store.size_bytes();
            assert!(after < before / 2, "compaction: {before} -> {after}");
            groups.wait_durable().await.unwrap();
            groups.close();
        }
        let groups = GroupCoordinator::open(&cfg).unwrap();
        let (err, offs) = groups.fetch_offsets("g", None, None);
        assert_eq!(err, 0);
        let got: Vec<(i32, i64, String)> = offs[0]
            .1
            .iter()
            .map(|o| (o.partition, o.offset, o.metadata.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, 296, "m296".to_string()),
                (1, 297, "m297".to_string()),
                (2, 298, "m298".to_string()),
                (3, 299, "m299".to_string())
            ]
        );
        let d = &groups.describe(&["c".to_string()])[0];
        assert_eq!(d.state, "Stable");
        assert_eq!(d.members.len(), 1);
        assert_eq!(&d.members[0].assignment[..], b"assignment");
        let listed = groups.list(&[], &[]);
        assert_eq!(listed.len(), 2);
        // Deleting the topic drops its committed offsets.
        groups.delete_topic_offsets("t");
        assert!(groups.fetch_offsets("g", None, None).1.is_empty());
        // Deleting the non-empty group fails; the simple one goes with its offsets.
        assert_eq!(
            groups.delete_groups(&["c".into(), "g".into(), "nope".into()]),
            vec![
                ResponseError::NonEmptyGroup.code(),
                0,
                ResponseError::GroupIdNotFound.code()
            ]
        );
        assert!(groups.fetch_offsets("g", None, None).1.is_empty());
    }
}

mod group_configs {
    use super::super::*;

    fn heartbeat(groups: &GroupCoordinator, topics: &TopicRegistry) -> consumer::HeartbeatResult {
        groups.consumer_heartbeat(
            "g",
            consumer::HeartbeatRequest {
                member_id: "m1".into(),
                member_epoch: 0,
                instance_id: None,
                rack_id: None,
                rebalance_timeout_ms: 10_000,
                subscribed_topic_names: Some(vec!["t".into()]),
                subscribed_topic_regex: None,
                server_assignor: None,
                owned: Some(Default::default()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                version: 1,
            },
            topics,
        )
    }

    #[tokio::test]
    async fn group_config_overrides_reach_members_and_survive_restart() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            ..BrokerConfig::default()
        };
        let topics = TopicRegistry::load(dir.path(), cfg.log.clone(), 100).unwrap();
        topics.create("t", 2, BTreeMap::new()).await.unwrap();
        {
            let groups = GroupCoordinator::open(&cfg).unwrap();
            let default_ms = cfg.group_consumer_heartbeat_interval.as_millis() as i32;
            assert_eq!(
                heartbeat(&groups, &topics).heartbeat_interval_ms,
                default_ms
            );
            // Out of range and unknown keys are refused, nothing stored.
            let bad = groups.alter_group_configs("g", false, |o| {
                o.insert("consumer.heartbeat.interval.ms".into(), "100".into());
                Ok(())
            });
            assert_eq!(bad.unwrap_err().0, ResponseError::InvalidConfig);
            let ok = groups.alter_group_configs("g", false, |o| {
                o.insert("consumer.heartbeat.interval.ms".into(), "7000".into());
                o.insert("consumer.session.timeout.ms".into(), "50000".into());
                Ok(())
            });
            assert!(ok.is_ok());
            let described = groups.group_configs("g");
            assert!(
                described
                    .iter()
                    .any(|(d, v, o)| d.name == "consumer.heartbeat.interval.ms"
                        && v == "7000"
                        && *o)
            );
        }
        let groups = GroupCoordinator::open(&cfg).unwrap();
        assert_eq!(heartbeat(&groups, &topics).heartbeat_interval_ms, 7000);
        // Another group keeps the broker defaults.
        assert!(
            groups
                .group_configs("other")
                .iter()
                .all(|(_, _, overridden)| !overridden)
        );
    }
}

mod groups_max {
    use super::super::*;

    #[tokio::test]
    async fn a_new_group_beyond_the_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            ..BrokerConfig::default()
        };
        let topics = TopicRegistry::load(dir.path(), cfg.log.clone(), 100).unwrap();
        topics.create("t", 1, BTreeMap::new()).await.unwrap();
        let mut groups = GroupCoordinator::open(&cfg).unwrap();
        groups.cfg.groups_max = 2;
        let commit = |g: &GroupCoordinator, id: &str| {
            g.commit(
                CommitRequest {
                    group_id: id.into(),
                    generation_or_epoch: -1,
                    member_id: String::new(),
                    instance_id: None,
                    topics: vec![(
                        "t".into(),
                        vec![CommitPartition {
                            partition: 0,
                            offset: 1,
                            leader_epoch: -1,
                            metadata: None,
                        }],
                    )],
                    version: 8,
                },
                &topics,
            )[0]
            .1[0]
                .1
        };
        assert_eq!(commit(&groups, "a"), 0);
        assert_eq!(commit(&groups, "b"), 0);
        assert_eq!(
            commit(&groups, "c"),
            ResponseError::GroupMaxSizeReached.code()
        );
        assert_eq!(commit(&groups, "a"), 0, "existing groups still commit");
    }
}

/// KIP-848 member state survives a restart (replay), a compaction (snapshot)
/// and is dropped when members leave (tombstones).
mod kip848_persistence {
    use super::super::*;
    use assignor::Assignment;

    fn config(dir: &std::path::Path) -> BrokerConfig {
        BrokerConfig {
            data_dir: dir.to_path_buf(),
            offsets_compact_bytes: 4096,
            ..BrokerConfig::default()
        }
    }

    struct M {
        id: String,
        epoch: i32,
        owned: Assignment,
    }

    fn hb(
        groups: &GroupCoordinator,
        topics: &TopicRegistry,
        m: &mut M,
        full: bool,
    ) -> consumer::HeartbeatResult {
        let r = groups.consumer_heartbeat(
            "g",
            consumer::HeartbeatRequest {
                member_id: m.id.clone(),
                member_epoch: m.epoch,
                instance_id: None,
                rack_id: None,
                rebalance_timeout_ms: if full { 10_000 } else { -1 },
                subscribed_topic_names: full.then(|| vec!["t".into()]),
                subscribed_topic_regex: None,
                server_assignor: None,
                owned: full.then(|| m.owned.clone()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                version: 1,
            },
            topics,
        );
        if r.error == 0 {
            m.epoch = r.member_epoch;
            if let Some(a) = &r.assignment {
                m.owned = a.clone();
            }
        }
        r
    }

    /// Heartbeats (full, with what each owns) until every member is stable.
    fn settle(groups: &GroupCoordinator, topics: &TopicRegistry, ms: &mut [M]) {
        for _ in 0..20 {
            for m in ms.iter_mut() {
                assert_eq!(hb(groups, topics, m, true).error, 0);
            }
        }
        let d = &groups.consumer_describe(&["g".into()], topics)[0];
        assert_eq!(d.state, "Stable");
    }

    fn leave(groups: &GroupCoordinator, topics: &TopicRegistry, m: &M) {
        let r = groups.consumer_heartbeat(
            "g",
            consumer::HeartbeatRequest {
                member_id: m.id.clone(),
                member_epoch: -1,
                instance_id: None,
                rack_id: None,
                rebalance_timeout_ms: -1,
                subscribed_topic_names: None,
                subscribed_topic_regex: None,
                server_assignor: None,
                owned: None,
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                version: 1,
            },
            topics,
        );
        assert_eq!(r.error, 0);
    }

    /// (group epoch, assignment epoch, member id -> (epoch, assignment, target))
    type View = (
        i32,
        i32,
        Vec<(String, i32, Vec<(uuid::Uuid, String, Vec<i32>)>)>,
    );

    fn view(groups: &GroupCoordinator, topics: &TopicRegistry) -> View {
        let d = &groups.consumer_describe(&["g".into()], topics)[0];
        assert_eq!(d.error, 0);
        (
            d.group_epoch,
            d.assignment_epoch,
            d.members
                .iter()
                .map(|m| {
                    assert_eq!(m.assignment, m.target_assignment);
                    (m.member_id.clone(), m.member_epoch, m.assignment.clone())
                })
                .collect(),
        )
    }

    #[tokio::test]
    async fn members_and_assignments_survive_restart_compaction_and_leave() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let topics = TopicRegistry::load(dir.path(), cfg.log.clone(), 100).unwrap();
        topics.create("t", 6, BTreeMap::new()).await.unwrap();
        let mut ms: Vec<M> = (1..=3)
            .map(|i| M {
                id: format!("m{i}"),
                epoch: 0,
                owned: Assignment::new(),
            })
            .collect();
        let before = {
            let groups = GroupCoordinator::open(&cfg).unwrap();
            settle(&groups, &topics, &mut ms);
            let v = view(&groups, &topics);
            assert_eq!(v.2.len(), 3);
            assert!(
                v.2.iter()
                    .all(|(_, _, a)| a.iter().map(|t| t.2.len()).sum::<usize>() == 2)
            );
            groups.wait_durable().await.unwrap();
            groups.close();
            v
        };
        // Restart: the members go on with their ids and epochs (a light
        // heartbeat, as a client sends between rebalances) and keep all.
        {
            let groups = GroupCoordinator::open(&cfg).unwrap();
            assert_eq!(view(&groups, &topics), before);
            for m in ms.iter_mut() {
                let owned = m.owned.clone();
                let r = hb(&groups, &topics, m, false);
                assert_eq!(r.error, 0, "{:?}", r.message);
                assert_eq!(m.owned, owned);
                // And a full one (what librdkafka sends after reconnecting).
                let r = hb(&groups, &topics, m, true);
                assert_eq!(r.error, 0, "{:?}", r.message);
                assert_eq!(m.owned, owned);
            }
            assert_eq!(view(&groups, &topics), before);
            // Fill the log with offset commits until it compacts (a snapshot
            // of every group's records, then the old segments go).
            for i in 0..400i64 {
                groups.commit(
                    CommitRequest {
                        group_id: "other".into(),
                        generation_or_epoch: -1,
                        member_id: String::new(),
                        instance_id: None,
                        topics: vec![(
                            "t".into(),
                            vec![CommitPartition {
                                partition: 0,
                                offset: i,
                                leader_epoch: 0,
                                metadata: None,
                            }],
                        )],
                        version: 8,
                    },
                    &topics,
                );
            }
            let big = lock(&groups.state).store.size_bytes();
            groups.tick(&topics);
            assert!(
                lock(&groups.state).store.size_bytes() < big,
                "not compacted"
            );
            groups.wait_durable().await.unwrap();
            groups.close();
        }
        // After the compaction: the same state; then one member leaves.
        let after_leave = {
            let groups = GroupCoordinator::open(&cfg).unwrap();
            assert_eq!(view(&groups, &topics), before);
            leave(&groups, &topics, &ms[2]);
            ms.truncate(2);
            settle(&groups, &topics, &mut ms);
            let v = view(&groups, &topics);
            assert_eq!(v.2.len(), 2);
            assert!(v.0 > before.0);
            groups.wait_durable().await.unwrap();
            groups.close();
            v
        };
        let groups = GroupCoordinator::open(&cfg).unwrap();
        assert_eq!(view(&groups, &topics), after_leave);
        // A member that left is unknown after the restart.
        let mut gone = M {
            id: "m3".into(),
            epoch: before.2[2].1,
            owned: Assignment::new(),
        };
        assert_eq!(
            hb(&groups, &topics, &mut gone, false).error,
            ResponseError::UnknownMemberId.code()
        );
    }

    /// A member mid-revocation keeps its pending revocation across a restart.
    #[tokio::test]
    async fn a_pending_revocation_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let topics = TopicRegistry::load(dir.path(), cfg.log.clone(), 100).unwrap();
        topics.create("t", 4, BTreeMap::new()).await.unwrap();
        let mut a = M {
            id: "a".into(),
            epoch: 0,
            owned: Assignment::new(),
        };
        let mut b = M {
            id: "b".into(),
            epoch: 0,
            owned: Assignment::new(),
        };
        {
            let groups = GroupCoordinator::open(&cfg).unwrap();
            settle(&groups, &topics, std::slice::from_mut(&mut a));
            assert_eq!(a.owned.values().map(|p| p.len()).sum::<usize>(), 4);
            // b joins: a must give up two partitions and has not yet.
            assert_eq!(hb(&groups, &topics, &mut b, true).error, 0);
            let held = a.owned.clone();
            assert_eq!(hb(&groups, &topics, &mut a, true).error, 0);
            assert_eq!(a.owned.values().map(|p| p.len()).sum::<usize>(), 2);
            a.owned = held;
            groups.wait_durable().await.unwrap();
            groups.close();
        }
        let groups = GroupCoordinator::open(&cfg).unwrap();
        let d = &groups.consumer_describe(&["g".into()], &topics)[0];
        assert_eq!(d.state, "Reconciling");
        // b still gets nothing a holds; once a reports the revocation, all settle.
        assert_eq!(hb(&groups, &topics, &mut b, true).error, 0);
        assert!(b.owned.values().all(|p| p.is_empty()));
        let mut both = [a, b];
        settle(&groups, &topics, &mut both);
        for m in &both {
            assert_eq!(m.owned.values().map(|p| p.len()).sum::<usize>(), 2);
        }
    }
}
