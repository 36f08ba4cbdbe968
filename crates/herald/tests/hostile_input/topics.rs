//! Topic names, and duplicates in one request.

use super::*;

// ---------------------------------------------------------------------------
// Topic names. Kafka allows ASCII alphanumerics, '.', '_' and '-', at most
// 249 bytes, and not "." or "..": anything else is INVALID_TOPIC_EXCEPTION,
// and nothing may reach the filesystem (no directory inside the data
// directory, nor beside it through "../").

/// CreateTopics v7 with a bad name (raw bytes) and a good one: the bad one
/// is refused, the good one created, and only the good one is on disk.
fn create_topics_refuses_name(raw: &[u8]) {
    let mut c = Case::start(&[]);
    let data = c.b.data_dir().to_path_buf();
    let before = tree(&data);
    let placeholder: String = "p".repeat(raw.len());
    let mut s = c.connect();
    let mut req = CreateTopicsRequest::default();
    req.topics = vec![
        creatable(&placeholder, 1, &[]),
        creatable("good-one", 1, &[]),
    ];
    req.timeout_ms = 5000;
    let r: CreateTopicsResponse = call_raw(
        &mut s,
        ApiKey::CreateTopics,
        7,
        &req,
        &[(&placeholder, raw)],
    );
    assert_eq!(r.topics.len(), 2);
    assert_eq!(
        r.topics[0].error_code,
        code::INVALID_TOPIC_EXCEPTION,
        "{:?}",
        r.topics[0].error_message
    );
    assert_eq!(r.topics[1].error_code, code::NONE);
    let after = tree(&data);
    let new: Vec<_> = after.iter().filter(|p| !before.contains(p)).collect();
    assert!(
        new.iter().all(|p| p.starts_with("topics/good-one")),
        "unexpected paths in the data directory: {new:?}"
    );
    assert!(
        new.iter().any(|p| p.contains("good-one")),
        "good topic on disk: {after:?}"
    );
    // Nothing beside the data directory either (the temp dir's parent).
    let escape = data.join("..").join("hostile-escape");
    assert!(!escape.exists(), "{} exists", escape.display());
    c.still_serves();
}

#[test]
fn create_topics_invalid_utf8_name() {
    create_topics_refuses_name(b"bad\xff\xfe-name");
}

#[test]
fn create_topics_name_with_slash() {
    create_topics_refuses_name(b"a/b");
}

#[test]
fn create_topics_name_climbing_out_of_the_data_dir() {
    create_topics_refuses_name(b"../hostile-escape");
}

#[test]
fn create_topics_name_dot_dot() {
    create_topics_refuses_name(b"..");
}

#[test]
fn create_topics_name_dot() {
    create_topics_refuses_name(b".");
}

#[test]
fn create_topics_name_with_control_characters() {
    create_topics_refuses_name(b"a\x00b\nc\x7f");
}

#[test]
fn create_topics_name_of_250_bytes() {
    create_topics_refuses_name(&[b'x'; 250]);
    // 249 is the longest allowed.
    let c = Case::start(&[]);
    let mut s = c.connect();
    create_topic(&mut s, &"y".repeat(249), 1, &[]);
}

/// The bad names every name case below sends at once.
const BAD_NAMES: &[&[u8]] = &[
    b"bad\xff\xfe-name",
    b"a/b",
    b"../hostile-escape",
    b"..",
    b".",
    b"a\x00b\nc\x7f",
    &[b'x'; 250],
];

#[test]
fn metadata_auto_create_refuses_invalid_names() {
    let mut c = Case::start(&[]);
    let data = c.b.data_dir().to_path_buf();
    let before = tree(&data);
    let placeholders: Vec<String> = BAD_NAMES
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{}", (b'A' + i as u8) as char).repeat(n.len()))
        .collect();
    let mut req = MetadataRequest::default();
    let mut topics: Vec<_> = placeholders
        .iter()
        .map(|p| {
            let mut t = metadata_request::MetadataRequestTopic::default();
            t.name = Some(topic_name(p));
            t
        })
        .collect();
    let mut good = metadata_request::MetadataRequestTopic::default();
    good.name = Some(topic_name("auto-good"));
    topics.push(good);
    req.topics = Some(topics);
    req.allow_auto_topic_creation = true;
    let swaps: Vec<(&str, &[u8])> = placeholders
        .iter()
        .zip(BAD_NAMES)
        .map(|(p, n)| (p.as_str(), *n))
        .collect();
    let mut s = c.connect();
    let r: MetadataResponse = call_raw(&mut s, ApiKey::Metadata, 12, &req, &swaps);
    assert_eq!(r.topics.len(), BAD_NAMES.len() + 1);
    for t in &r.topics[..BAD_NAMES.len()] {
        assert_eq!(t.error_code, code::INVALID_TOPIC_EXCEPTION, "{:?}", t.name);
    }
    assert_eq!(
        r.topics[BAD_NAMES.len()].error_code,
        code::NONE,
        "auto-created"
    );
    let new: Vec<_> = tree(&data)
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert!(
        new.iter().all(|p| p.starts_with("topics/auto-good")),
        "{new:?}"
    );
    assert!(!data.join("..").join("hostile-escape").exists());
    c.still_serves();
}

#[test]
fn produce_to_invalid_names_creates_nothing() {
    let mut c = Case::start(&[]);
    let data = c.b.data_dir().to_path_buf();
    let before = tree(&data);
    let placeholders: Vec<String> = BAD_NAMES
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{}", (b'A' + i as u8) as char).repeat(n.len()))
        .collect();
    let records = Bytes::from(one_record(b"v"));
    let mut req = ProduceRequest::default();
    req.acks = -1;
    req.timeout_ms = 5000;
    for p in &placeholders {
        let mut pd = PartitionProduceData::default();
        pd.index = 0;
        pd.records = Some(records.clone());
        let mut td = TopicProduceData::default();
        td.name = topic_name(p);
        td.partition_data = vec![pd];
        req.topic_data.push(td);
    }
    let swaps: Vec<(&str, &[u8])> = placeholders
        .iter()
        .zip(BAD_NAMES)
        .map(|(p, n)| (p.as_str(), *n))
        .collect();
    let mut s = c.connect();
    let r: ProduceResponse = call_raw(&mut s, ApiKey::Produce, 9, &req, &swaps);
    assert_eq!(r.responses.len(), BAD_NAMES.len());
    for t in &r.responses {
        assert_eq!(
            t.partition_responses[0].error_code,
            code::UNKNOWN_TOPIC_OR_PARTITION,
            "{:?}",
            t.name
        );
    }
    assert_eq!(tree(&data), before, "produce created something");
    assert!(!data.join("..").join("hostile-escape").exists());
    c.still_serves();
}

// ---------------------------------------------------------------------------
// Duplicates in one request.

#[test]
fn create_topics_duplicate_name_is_refused_for_both() {
    let mut c = Case::start(&[]);
    let mut s = c.connect();
    let r = create_topics(
        &mut s,
        vec![creatable("twice", 1, &[]), creatable("twice", 3, &[])],
    );
    assert_eq!(r.topics.len(), 2);
    for t in &r.topics {
        assert_eq!(t.error_code, code::INVALID_REQUEST);
        assert_eq!(t.error_message.as_deref(), Some("Duplicate topic name."));
    }
    // Neither was created: a later create of the name succeeds.
    create_topic(&mut s, "twice", 1, &[]);
    c.still_serves();
}

#[test]
fn create_partitions_duplicate_name_is_refused_for_both() {
    let mut c = Case::start(&[]);
    let mut s = c.connect();
    create_topic(&mut s, "grow", 1, &[]);
    let mut req = CreatePartitionsRequest::default();
    req.timeout_ms = 5000;
    for count in [3, 5] {
        let mut t = create_partitions_request::CreatePartitionsTopic::default();
        t.name = topic_name("grow");
        t.count = count;
        req.topics.push(t);
    }
    let r: CreatePartitionsResponse = call(&mut s, ApiKey::CreatePartitions, 3, &req);
    assert_eq!(r.results.len(), 2);
    for t in &r.results {
        assert_eq!(t.error_code, code::INVALID_REQUEST);
        assert_eq!(t.error_message.as_deref(), Some("Duplicate topic name."));
    }
    assert_eq!(
        partition_count(&mut s, "grow"),
        Some(1),
        "the topic did not grow"
    );
    c.still_serves();
}

#[test]
fn delete_topics_duplicate_name_is_refused_for_both() {
    let mut c = Case::start(&[]);
    let mut s = c.connect();
    create_topic(&mut s, "doomed", 1, &[]);
    let mut req = DeleteTopicsRequest::default();
    req.timeout_ms = 5000;
    req.topic_names = vec![topic_name("doomed"), topic_name("doomed")];
    let r: DeleteTopicsResponse = call(&mut s, ApiKey::DeleteTopics, 5, &req);
    assert_eq!(r.responses.len(), 2);
    for t in &r.responses {
        assert_eq!(t.error_code, code::INVALID_REQUEST);
        assert_eq!(t.error_message.as_deref(), Some("Duplicate topic name."));
    }
    assert_eq!(
        partition_count(&mut s, "doomed"),
        Some(1),
        "the topic is still there"
    );
    c.still_serves();
}

#[test]
fn produce_duplicate_topic_and_partition_appends_each_in_order() {
    let mut c = Case::start(&[]);
    let mut s = c.connect();
    create_topic(&mut s, "dup", 1, &[]);
    let a = Bytes::from(one_record(b"a"));
    let b = Bytes::from(one_record(b"b"));
    // The topic twice, each with partition 0.
    let r = produce_to(&mut s, &[("dup", 0, a.clone()), ("dup", 0, b.clone())]);
    let offsets: Vec<_> = r
        .responses
        .iter()
        .map(|t| {
            (
                t.partition_responses[0].error_code,
                t.partition_responses[0].base_offset,
            )
        })
        .collect();
    assert_eq!(offsets, vec![(0, 0), (0, 1)]);
    // Partition 0 twice within one topic entry.
    let mut pd_a = PartitionProduceData::default();
    pd_a.records = Some(a);
    let mut pd_b = PartitionProduceData::default();
    pd_b.records = Some(b);
    let mut td = TopicProduceData::default();
    td.name = topic_name("dup");
    td.partition_data = vec![pd_a, pd_b];
    let mut req = ProduceRequest::default();
    req.acks = -1;
    req.timeout_ms = 5000;
    req.topic_data = vec![td];
    let r: ProduceResponse = call(&mut s, ApiKey::Produce, 9, &req);
    let offsets: Vec<_> = r.responses[0]
        .partition_responses
        .iter()
        .map(|p| (p.error_code, p.base_offset))
        .collect();
    assert_eq!(offsets, vec![(0, 2), (0, 3)]);
    c.still_serves();
}

#[test]
fn fetch_duplicate_topic_and_partition_answers_each() {
    let mut c = Case::start(&[]);
    let mut s = c.connect();
    create_topic(&mut s, "dupf", 1, &[]);
    assert_eq!(produce_one(&mut s, "dupf", one_record(b"x")), 0);
    let mut req = fetch_req_for(&[("dupf", 0), ("dupf", 0)], 1 << 20);
    // And partition 0 twice inside the first topic entry.
    let extra = req.topics[0].partitions[0].clone();
    req.topics[0].partitions.push(extra);
    let r: FetchResponse = call(&mut s, ApiKey::Fetch, 12, &req);
    let answers: Vec<_> = r
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| {
            (
                p.error_code,
                p.high_watermark,
                p.records.as_ref().map_or(0, |b| b.len()) > 0,
            )
        })
        .collect();
    assert_eq!(answers, vec![(0, 1, true); 3]);
    c.still_serves();
}
