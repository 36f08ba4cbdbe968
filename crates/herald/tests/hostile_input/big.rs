//! Big requests: 10 000 partitions, 10 MiB of group metadata, 1 000 pipelined.

use super::*;

// ---------------------------------------------------------------------------
// Big requests: bounded memory, a sane answer.

#[test]
fn fetch_for_ten_thousand_partitions() {
    let mut c = Case::start(&[]);
    let mut s = c.connect();
    create_topic(&mut s, "wide", 100, &[]);
    for p in 0..100 {
        let r = produce_to(
            &mut s,
            &[("wide", p, Bytes::from(one_record(&[b'x'; 100])))],
        );
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    }
    let rss_before = c.b.rss_kib();
    // Partitions 0..10 000 of one topic: 100 exist, 9 900 do not.
    let mut req = fetch_req_for(&[("wide", 0)], 64 << 20);
    req.topics[0].partitions = (0..10_000)
        .map(|p| {
            let mut fp = FetchPartition::default();
            fp.partition = p;
            fp.partition_max_bytes = 1 << 20;
            fp.log_start_offset = -1;
            fp
        })
        .collect();
    let r: FetchResponse = call(&mut s, ApiKey::Fetch, 12, &req);
    let parts = &r.responses[0].partitions;
    assert_eq!(parts.len(), 10_000);
    let with_data = parts
        .iter()
        .filter(|p| p.error_code == 0 && p.records.as_ref().is_some_and(|b| !b.is_empty()))
        .count();
    let unknown = parts
        .iter()
        .filter(|p| p.error_code == code::UNKNOWN_TOPIC_OR_PARTITION)
        .count();
    assert_eq!((with_data, unknown), (100, 9_900));
    std::thread::sleep(Duration::from_millis(300));
    let rss_after = c.b.rss_kib();
    eprintln!(
        "Fetch of 10 000 partitions: RSS {rss_before} -> {rss_after} KiB, peak {} KiB",
        c.b.rss_peak_kib()
    );
    assert!(c.b.rss_peak_kib() < rss_before + 64 * 1024);
    assert!(rss_after < rss_before + 32 * 1024);
    c.still_serves();
}

#[test]
fn join_group_with_ten_megabytes_of_metadata_is_invalid_request() {
    let mut c = Case::start(&[]);
    let mut s = c.connect();
    let rss_before = c.b.rss_kib();
    let mut p = join_group_request::JoinGroupRequestProtocol::default();
    p.name = sb("range");
    p.metadata = Bytes::from(vec![0x42u8; 10 << 20]);
    let mut req = JoinGroupRequest::default();
    req.group_id = GroupId(sb("fat-group"));
    req.session_timeout_ms = 10_000;
    req.rebalance_timeout_ms = 10_000;
    req.protocol_type = sb("consumer");
    req.protocols = vec![p];
    let r: JoinGroupResponse = call(&mut s, ApiKey::JoinGroup, 9, &req);
    assert_eq!(r.error_code, code::INVALID_REQUEST);
    assert!(
        c.b.wait_log(&["JoinGroup rejected: member metadata too large"])
            .is_some()
    );
    std::thread::sleep(Duration::from_millis(300));
    let rss_after = c.b.rss_kib();
    eprintln!(
        "JoinGroup with 10 MiB of metadata: RSS {rss_before} -> {rss_after} KiB, peak {} KiB",
        c.b.rss_peak_kib()
    );
    assert!(
        c.b.rss_peak_kib() < rss_before + 48 * 1024,
        "peak: the frame, about once"
    );
    assert!(
        rss_after < rss_before + 24 * 1024,
        "{rss_before} -> {rss_after} KiB"
    );
    // The group was not created, and a normal join still works.
    let mut p = join_group_request::JoinGroupRequestProtocol::default();
    p.name = sb("range");
    p.metadata = Bytes::from_static(b"small");
    req.protocols = vec![p];
    let r: JoinGroupResponse = call(&mut s, ApiKey::JoinGroup, 9, &req);
    // v4+: a first join without a member id is asked to rejoin with one.
    assert_eq!(r.error_code, 79, "MEMBER_ID_REQUIRED");
    c.still_serves();
}

#[test]
fn thousand_pipelined_requests_are_all_answered_in_order() {
    let mut c = Case::start(&[]);
    let mut s = c.connect();
    create_topic(&mut s, "pipe", 1, &[]);
    let rss_before = c.b.rss_kib();
    // 1 000 requests of three kinds, written before reading anything.
    let mut all = Vec::new();
    for i in 0..1000 {
        let f = match i % 3 {
            0 => frame(ApiKey::ApiVersions, 3, i, &ApiVersionsRequest::default()),
            1 => {
                let mut md = MetadataRequest::default();
                let mut t = metadata_request::MetadataRequestTopic::default();
                t.name = Some(topic_name("pipe"));
                md.topics = Some(vec![t]);
                frame(ApiKey::Metadata, 12, i, &md)
            }
            _ => {
                let mut pd = PartitionProduceData::default();
                pd.records = Some(Bytes::from(one_record(format!("{i}").as_bytes())));
                let mut td = TopicProduceData::default();
                td.name = topic_name("pipe");
                td.partition_data = vec![pd];
                let mut req = ProduceRequest::default();
                req.acks = -1;
                req.timeout_ms = 5000;
                req.topic_data = vec![td];
                frame(ApiKey::Produce, 9, i, &req)
            }
        };
        all.extend_from_slice(&f);
    }
    // Written from another thread: the broker stops reading while its
    // in-flight allowance is full, and this thread reads meanwhile.
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || w.write_all(&all).unwrap());
    std::thread::sleep(Duration::from_secs(1));
    let rss_full = c.b.rss_kib();
    let mut produced = 0;
    for i in 0..1000 {
        let f = read_frame(&mut s).unwrap_or_else(|| panic!("closed after {i} answers"));
        let corr = i32::from_be_bytes([f[0], f[1], f[2], f[3]]);
        assert_eq!(corr, i, "answers out of order");
        if i % 3 == 2 {
            let (_, r): (i32, ProduceResponse) = decode_frame(f, ApiKey::Produce, 9);
            let p = &r.responses[0].partition_responses[0];
            assert_eq!((p.error_code, p.base_offset), (0, produced));
            produced += 1;
        }
    }
    writer.join().unwrap();
    eprintln!(
        "1 000 pipelined: RSS {rss_before} -> {rss_full} KiB unread, peak {} KiB",
        c.b.rss_peak_kib()
    );
    assert!(rss_full < rss_before + 32 * 1024);
    c.still_serves();
}
