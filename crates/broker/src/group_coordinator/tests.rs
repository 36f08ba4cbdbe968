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
