//! The storage targets: record batches as a producer sends them, and recovery
//! from arbitrary bytes in each file Herald reads back at start-up.
//!
//! Inputs whose first byte is a mode: some bits ask the harness to make the
//! bytes pass a check a fuzzer cannot (a batch's CRC32C), so that the bytes
//! behind the check are fuzzed too.

use std::path::Path;
use std::sync::OnceLock;

use herald_log::batch::build::{Options, SimpleRecord, batch_with};
use herald_log::batch::{self, BatchHeader, OFFSET_ATTRIBUTES, OFFSET_CRC, OFFSET_LENGTH};
use herald_log::compression::{self, Codec};
use herald_log::partition_log::{CLEAN_SHUTDOWN_FILE, PRODUCER_SNAPSHOT_FILE};
use herald_log::producer_state::{PRODUCERS_TRACKED_MAX, ProducerStateTable};
use herald_log::{LogConfig, PartitionLog, records, segment};

/// Most bytes a fuzzed batch may decompress to here.
const DECOMPRESSED_BYTES_MAX: usize = 1 << 20;

fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Recomputes the CRC32C of each batch whose length field fits the bytes,
/// walking batch by batch: what a fuzzer's mutations need to get past the check.
pub fn fix_crcs(bytes: &mut [u8]) {
    let mut pos = 0usize;
    while pos + batch::BATCH_HEADER_BYTES <= bytes.len() {
        let total = be_i32(bytes, pos + OFFSET_LENGTH) as i64 + batch::LOG_OVERHEAD_BYTES as i64;
        if total < batch::BATCH_HEADER_BYTES as i64 || pos as i64 + total > bytes.len() as i64 {
            return;
        }
        let end = pos + total as usize;
        let crc = crc32c::crc32c(&bytes[pos + OFFSET_ATTRIBUTES..end]);
        bytes[pos + OFFSET_CRC..pos + OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
        pos = end;
    }
}

fn small_log_config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 64 * 1024,
        index_interval_bytes: 128,
        flush_messages: u64::MAX,
        retention_age_max: None,
        ..LogConfig::default()
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// A temporary directory, in /dev/shm where there is one: the targets write
/// and fsync small files at every input, which tmpfs makes nearly free.
pub fn tempdir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    let builder = tempfile::Builder::new().prefix("herald-fuzz-").clone();
    if shm.is_dir()
        && let Ok(dir) = builder.tempdir_in(shm)
    {
        return dir;
    }
    builder.tempdir().expect("a temporary directory")
}

/// `record_batch`: a produce payload. Mode bit 0 fixes the CRCs. Each batch
/// that validates is decompressed (bounded), its records parsed, and it is
/// recompressed with every codec: the result must validate and hold the
/// same records.
pub fn record_batch(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    if mode & 1 != 0 {
        fix_crcs(&mut bytes);
    }
    let Ok(batches) = batch::split(&bytes) else {
        return;
    };
    for b in batches {
        let Ok(header) = batch::validate_produced(b) else {
            continue;
        };
        let Ok(section) = compression::records_section(b, DECOMPRESSED_BYTES_MAX) else {
            continue;
        };
        assert!(
            section.len() <= DECOMPRESSED_BYTES_MAX,
            "decompression exceeded its bound"
        );
        let Ok(parsed) = records::parse(&section, &header) else {
            continue;
        };
        let originals: Vec<_> = parsed
            .iter()
            .map(|r| (r.key, r.value_is_null, r.bytes))
            .collect();
        for target in [
            Codec::None,
            Codec::Gzip,
            Codec::Snappy,
            Codec::Lz4,
            Codec::Zstd,
        ] {
            let Ok(Some(again)) = compression::recompress(b, target, DECOMPRESSED_BYTES_MAX) else {
                continue;
            };
            let h2 = batch::validate(&again)
                .unwrap_or_else(|e| panic!("recompressed to {target:?} does not validate: {e}"));
            assert_eq!(h2.records_count, header.records_count);
            assert_eq!(h2.base_offset, header.base_offset);
            let section2 = compression::records_section(&again, DECOMPRESSED_BYTES_MAX)
                .unwrap_or_else(|e| panic!("recompressed to {target:?} does not decompress: {e}"));
            let parsed2 = records::parse(&section2, &h2)
                .unwrap_or_else(|e| panic!("recompressed to {target:?} does not parse: {e}"));
            let again: Vec<_> = parsed2
                .iter()
                .map(|r| (r.key, r.value_is_null, r.bytes))
                .collect();
            assert_eq!(
                originals, again,
                "recompression to {target:?} changed the records"
            );
        }
    }
}

/// Reads the whole log from its start, checking every batch it serves.
fn read_all(log: &PartitionLog, check_crc: bool) -> Vec<BatchHeader> {
    let mut headers = Vec::new();
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    let mut reads = 0;
    while offset < end && reads < 10_000 {
        reads += 1;
        let Ok(chunk) = log.read(offset, 64 * 1024) else {
            break;
        };
        if chunk.is_empty() {
            break;
        }
        let batches = batch::split(&chunk).expect("a read returns whole batches");
        let mut next = offset;
        for b in batches {
            let h = if check_crc {
                batch::validate(b)
                    .unwrap_or_else(|e| panic!("recovered log serves a bad batch: {e}"))
            } else {
                match BatchHeader::parse(b) {
                    Ok(h) => h,
                    Err(_) => return headers,
                }
            };
            next = next.max(h.next_offset());
            headers.push(h);
        }
        if next <= offset {
            break;
        }
        offset = next;
    }
    headers
}

fn one_batch(base_sequence: i32) -> Vec<u8> {
    let recs = [SimpleRecord {
        key: Some(b"k"),
        value: Some(b"after recovery"),
        timestamp_ms: 1_800_000_000_000,
    }];
    batch_with(
        &recs,
        Options {
            producer_id: 7,
            producer_epoch: 0,
            base_sequence,
            compression: 0,
        },
    )
}

/// Appends one batch, closes, reopens: the batch must be there.
fn append_survives(dir: &Path, mut log: PartitionLog) {
    let end = log.log_end_offset();
    let appended = match log.append(&one_batch(-1), 1_800_000_000_000) {
        Ok(info) => info,
        // A typed refusal (the recovered state says no) is an answer too.
        Err(_) => return,
    };
    assert_eq!(appended.base_offset, end, "an append lands at the log end");
    if log.close().is_err() {
        return;
    }
    let (log, _) = PartitionLog::open(dir, small_log_config()).expect("a closed log reopens");
    assert_eq!(
        log.log_end_offset(),
        end + 1,
        "the appended batch survives a reopen"
    );
    let chunk = log
        .read(end, 1 << 16)
        .expect("the appended batch reads back");
    let b = batch::split(&chunk).expect("whole batches");
    let h = batch::validate(b[0]).expect("the appended batch validates");
    assert!(h.base_offset <= end && end <= h.last_offset());
}

/// `segment`: the bytes of a segment file, then the log is opened (recovered).
/// Mode bit 0 fixes CRCs; bit 1 leaves a clean-shutdown marker (the indexes
/// and tail are then trusted, not rescanned); bits 2-3 pick the segment's base
/// offset. A recovered log serves only valid batches, and a batch appended
/// after recovery survives a reopen.
pub fn segment(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    if mode & 1 != 0 {
        fix_crcs(&mut bytes);
    }
    let clean = mode & 2 != 0;
    let base = [0i64, 5, 1 << 40, i64::MAX - 2][(mode as usize >> 2) & 3];
    let dir = tempdir();
    let path = dir.path().join("p");
    std::fs::create_dir_all(&path).expect("mkdir");
    std::fs::write(path.join(segment::log_file_name(base)), &bytes).expect("write segment");
    if clean {
        std::fs::write(path.join(CLEAN_SHUTDOWN_FILE), b"clean\n").expect("write marker");
    }
    let Ok((log, _)) = PartitionLog::open(&path, small_log_config()) else {
        return;
    };
    assert!(log.log_start_offset() <= log.log_end_offset());
    read_all(&log, !clean);
    append_survives(&path, log);
}

/// Copies a log directory (a cleanly closed reference log, made once).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        // Not fs::copy: its copy_file_range returns EINTR to the caller when
        // libFuzzer's timer signal lands (seen in the long run).
        let bytes = std::fs::read(entry.path()).expect("read");
        std::fs::write(to.join(entry.file_name()), bytes).expect("write");
    }
}

/// Writes a log of `n` single-record batches with distinct, increasing
/// timestamps, closes it, and returns each batch's (offset, timestamp).
fn write_reference_log(dir: &Path, n: usize) -> Vec<(i64, i64)> {
    let (mut log, _) = PartitionLog::open(dir, small_log_config()).expect("open");
    let mut truth = Vec::new();
    for i in 0..n {
        let ts = 1_700_000_000_000 + 10 * i as i64;
        let value = vec![b'v'; 100 + i];
        let recs = [SimpleRecord {
            key: None,
            value: Some(&value),
            timestamp_ms: ts,
        }];
        let b = batch_with(&recs, Options::default());
        let info = log.append(&b, ts).expect("append");
        truth.push((info.base_offset, ts));
    }
    log.close().expect("close");
    truth
}

/// `index`: a valid, cleanly closed log whose offset and time indexes are
/// then overwritten (mode bit 0: the offset index, bit 1: the time index,
/// bit 2: XOR the fuzz bytes onto the real index instead of replacing it).
/// Indexes are hints: every lookup must still find the right batch.
pub fn index(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    static REFERENCE: OnceLock<(tempfile::TempDir, Vec<(i64, i64)>)> = OnceLock::new();
    let (reference, truth) = REFERENCE.get_or_init(|| {
        let dir = tempdir();
        let truth = write_reference_log(&dir.path().join("p"), 24);
        (dir, truth)
    });
    let dir = tempdir();
    let path = dir.path().join("p");
    copy_dir(&reference.path().join("p"), &path);
    let split = rest.len() / 2;
    let (a, b) = rest.split_at(split);
    let targets = [
        (mode & 1 != 0, segment::index_file_name(0), a),
        (mode & 2 != 0, segment::time_index_file_name(0), b),
    ];
    for (on, name, bytes) in targets {
        if !on {
            continue;
        }
        let file = path.join(name);
        let new = if mode & 4 != 0 {
            let mut real = std::fs::read(&file).unwrap_or_default();
            for (i, x) in bytes.iter().enumerate() {
                match real.get_mut(i) {
                    Some(r) => *r ^= x,
                    None => real.push(*x),
                }
            }
            real
        } else {
            bytes.to_vec()
        };
        std::fs::write(&file, new).expect("write index");
    }
    let (log, _) = PartitionLog::open(&path, small_log_config()).expect("the log reopens");
    assert_eq!(
        log.log_end_offset(),
        truth.len() as i64,
        "corrupt indexes lost records"
    );
    for &(offset, ts) in truth {
        let chunk = log.read(offset, 1).expect("read");
        let b = batch::split(&chunk).expect("whole batches");
        let h = batch::validate(b.first().expect("a batch")).expect("valid");
        assert!(
            h.base_offset <= offset && offset <= h.last_offset(),
            "read({offset}) returned batch {}..={}",
            h.base_offset,
            h.last_offset()
        );
        let hit = log
            .find_timestamp(ts)
            .expect("find_timestamp")
            .expect("a batch at or after the timestamp");
        assert_eq!(hit.header.base_offset, offset, "find_timestamp({ts})");
    }
}

/// `producer_snapshot`: a log of idempotent batches whose producer snapshot
/// is then replaced (mode bit 0: XOR onto the real snapshot instead). The
/// snapshot decodes or is rejected, the log opens, holds at most
/// `PRODUCERS_TRACKED_MAX` producers, and the producer's next batch is
/// answered (accepted or refused with a typed error).
pub fn producer_snapshot(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if let Ok(text) = std::str::from_utf8(rest) {
        let _ = ProducerStateTable::decode_snapshot(text);
    }
    static REFERENCE: OnceLock<tempfile::TempDir> = OnceLock::new();
    let reference = REFERENCE.get_or_init(|| {
        let dir = tempdir();
        let p = dir.path().join("p");
        let (mut log, _) = PartitionLog::open(&p, small_log_config()).expect("open");
        for seq in 0..3 {
            log.append(&one_batch(seq), 1_800_000_000_000)
                .expect("append");
        }
        log.close().expect("close");
        dir
    });
    let dir = tempdir();
    let path = dir.path().join("p");
    copy_dir(&reference.path().join("p"), &path);
    let file = path.join(PRODUCER_SNAPSHOT_FILE);
    let new = if mode & 1 != 0 {
        let mut real = std::fs::read(&file).unwrap_or_default();
        for (i, x) in rest.iter().enumerate() {
            match real.get_mut(i) {
                Some(r) => *r ^= x,
                None => real.push(*x),
            }
        }
        real
    } else {
        rest.to_vec()
    };
    std::fs::write(&file, new).expect("write snapshot");
    if mode & 2 != 0 {
        // Not clean: the snapshot is read, then the tail after it replayed.
        let _ = std::fs::remove_file(path.join(CLEAN_SHUTDOWN_FILE));
    }
    let Ok((mut log, _)) = PartitionLog::open(&path, small_log_config()) else {
        return;
    };
    assert!(log.producers().len() <= PRODUCERS_TRACKED_MAX);
    let _ = log.append(&one_batch(3), 1_800_000_000_000);
    let _ = log.append(&one_batch(0), 1_800_000_000_000);
}

/// Herald's group log records from the fuzzer: (key, value) pairs cut from
/// `data` by one-byte lengths, framed as valid batches.
fn group_log_batches(data: &[u8], codec: i16) -> Vec<u8> {
    let mut pairs: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
    let mut rest = data;
    while rest.len() >= 2 && pairs.len() < 64 {
        let kl = rest[0] as usize;
        let vl = rest[1] as usize;
        rest = &rest[2..];
        let k = rest[..kl.min(rest.len())].to_vec();
        rest = &rest[kl.min(rest.len())..];
        let v = if vl == 255 {
            None
        } else {
            let v = rest[..vl.min(rest.len())].to_vec();
            rest = &rest[vl.min(rest.len())..];
            Some(v)
        };
        pairs.push((k, v));
    }
    let mut out = Vec::new();
    let mut offset = 0i64;
    for chunk in pairs.chunks(4) {
        let recs: Vec<SimpleRecord<'_>> = chunk
            .iter()
            .map(|(k, v)| SimpleRecord {
                key: Some(k),
                value: v.as_deref(),
                timestamp_ms: 1_700_000_000_000,
            })
            .collect();
        let mut b = batch_with(
            &recs,
            Options {
                compression: codec,
                ..Options::default()
            },
        );
        batch::assign_offset(&mut b, offset, 0);
        offset += recs.len() as i64;
        out.extend(b);
    }
    out
}

/// `group_log`: the group coordinator's state log (`__consumer_offsets`) from
/// arbitrary bytes (mode bit 0 clear) or from fuzzed records in valid batches
/// (bit 0 set; bits 1-3 pick the codec), then the coordinator is opened,
/// which replays it.
pub fn group_log(data: &[u8]) {
    use herald_broker::group_coordinator::GroupCoordinator;
    use herald_broker::group_coordinator::offset_store::{OFFSETS_DIR, Record};
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (k, v) = rest.split_at(rest.len() / 2);
    let _ = Record::decode(k, Some(v));
    let _ = Record::decode(rest, None);
    let bytes = if mode & 1 != 0 {
        group_log_batches(rest, ((mode >> 1) % 5) as i16)
    } else {
        rest.to_vec()
    };
    let dir = tempdir();
    let log_dir = dir.path().join(OFFSETS_DIR);
    std::fs::create_dir_all(&log_dir).expect("mkdir");
    std::fs::write(log_dir.join(segment::log_file_name(0)), &bytes).expect("write log");
    let config = herald_broker::BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        ..herald_broker::BrokerConfig::default()
    };
    let _guard = runtime().enter();
    if let Ok(groups) = GroupCoordinator::open(&config) {
        let _ = groups.loaded_groups();
        groups.close();
    }
}

/// `topic_metadata`: a stored topic's `topic.json` from arbitrary bytes (mode
/// bit 0 clear) or as JSON built from fuzzed fields (bit 0 set), then the
/// topic registry loads the data directory. Every topic it then holds has a
/// valid name and a partition count within the limit.
pub fn topic_metadata(data: &[u8]) {
    use herald_broker::topic_registry::{TopicRegistry, validate_topic_name};
    const PARTITIONS_MAX: i32 = 16;
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let json = if mode & 1 != 0 && rest.len() >= 4 {
        let partitions = be_i32(rest, 0);
        let text = String::from_utf8_lossy(&rest[4..]);
        let mut parts = text.splitn(3, '\u{0}');
        let name = parts.next().unwrap_or("");
        let key = parts.next().unwrap_or("retention.ms");
        let value = parts.next().unwrap_or("1");
        serde_json::json!({
            "name": name,
            "id": uuid::Uuid::from_u128(0x1234),
            "partitions": partitions,
            "configs": { key: value },
        })
        .to_string()
        .into_bytes()
    } else {
        rest.to_vec()
    };
    let dir = tempdir();
    let topic_dir = dir.path().join("topics").join("t");
    std::fs::create_dir_all(&topic_dir).expect("mkdir");
    std::fs::write(topic_dir.join("topic.json"), &json).expect("write topic.json");
    let _guard = runtime().enter();
    let Ok(registry) = TopicRegistry::load(dir.path(), small_log_config(), PARTITIONS_MAX) else {
        return;
    };
    for t in registry.list() {
        assert!(
            validate_topic_name(&t.name).is_ok(),
            "loaded a topic with an invalid name {:?}",
            t.name
        );
        let n = t.partition_count();
        assert!(
            (1..=PARTITIONS_MAX).contains(&n),
            "loaded a topic with {n} partitions"
        );
    }
    registry.close_all();
}
