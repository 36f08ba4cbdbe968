//! Writes generated seed inputs for every fuzz target under a corpus
//! directory (default `fuzz/corpus`): one valid request per served API
//! version, and real files of each kind Herald stores, written by Herald.
//! Real clients' requests come from `scripts/fuzz/capture_requests.py`.
//!
//! `cargo run -p herald-fuzz-harness --example write_seeds [-- DIR]`

use std::path::{Path, PathBuf};

use herald_fuzz_harness::frames::{self, Known, served_apis};
use herald_log::batch::build::{Options, SimpleRecord, batch_with};
use herald_log::partition_log::PRODUCER_SNAPSHOT_FILE;
use herald_log::{LogConfig, PartitionLog, segment};

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let d = dir.join(target);
    std::fs::create_dir_all(&d).expect("mkdir");
    std::fs::write(d.join(name), bytes).expect("write seed");
}

fn with_mode(mode: u8, bytes: &[u8]) -> Vec<u8> {
    let mut v = vec![mode];
    v.extend_from_slice(bytes);
    v
}

fn main() {
    let out: PathBuf = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("fuzz/corpus"));
    let known = Known {
        topics: vec![
            ("fuzz-a".into(), uuid::Uuid::nil(), 3),
            ("fuzz-b".into(), uuid::Uuid::nil(), 1),
        ],
    };
    let mut n = 0;
    for (api, lo, hi) in served_apis() {
        for v in lo..=hi {
            let f = frames::request_frame(api, v, 7, &known).expect("a frame");
            write(&out, "request", &format!("gen-{api:?}-v{v}"), &f.bytes);
            n += 1;
        }
    }

    // A log of mixed batches: plain, compressed with each codec, idempotent.
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("p");
    let config = LogConfig {
        index_interval_bytes: 64,
        ..LogConfig::default()
    };
    let (mut log, _) = PartitionLog::open(&dir, config.clone()).expect("open");
    let mut batches = Vec::new();
    for codec in 0..5i16 {
        let recs = [
            SimpleRecord {
                key: Some(b"key-1"),
                value: Some(b"value one"),
                timestamp_ms: 1_700_000_000_000,
            },
            SimpleRecord {
                key: None,
                value: Some(b"value two, a bit longer"),
                timestamp_ms: 1_700_000_000_005,
            },
            SimpleRecord {
                key: Some(b"key-1"),
                value: None,
                timestamp_ms: 1_700_000_000_009,
            },
        ];
        let b = batch_with(
            &recs,
            Options {
                producer_id: 3,
                producer_epoch: 0,
                base_sequence: codec as i32 * 3,
                compression: codec,
            },
        );
        write(
            &out,
            "record_batch",
            &format!("gen-codec{codec}"),
            &with_mode(0, &b),
        );
        log.append(&b, 1_700_000_000_010).expect("append");
        batches.extend_from_slice(&b);
    }
    write(
        &out,
        "record_batch",
        "gen-all-codecs",
        &with_mode(0, &batches),
    );
    log.close().expect("close");
    let seg = std::fs::read(dir.join(segment::log_file_name(0))).expect("segment");
    write(&out, "segment", "gen-recover", &with_mode(0, &seg));
    write(&out, "segment", "gen-clean", &with_mode(2, &seg));
    let idx = std::fs::read(dir.join(segment::index_file_name(0))).expect("index");
    let tidx = std::fs::read(dir.join(segment::time_index_file_name(0))).expect("time index");
    let mut both = idx.clone();
    both.extend_from_slice(&tidx);
    write(&out, "index", "gen-replace-both", &with_mode(3, &both));
    write(&out, "index", "gen-xor-zero", &with_mode(7, &[0u8; 32]));
    let snap = std::fs::read(dir.join(PRODUCER_SNAPSHOT_FILE)).expect("snapshot");
    write(
        &out,
        "producer_snapshot",
        "gen-snapshot",
        &with_mode(0, &snap),
    );
    write(
        &out,
        "producer_snapshot",
        "gen-snapshot-unclean",
        &with_mode(2, &snap),
    );

    // The group log and topic metadata a broker writes: from a broker that
    // served the generated requests.
    let h = herald_fuzz_harness::request::Harness::shared();
    for (api, lo, hi) in served_apis() {
        for v in lo..=hi {
            let f = frames::request_frame(
                api,
                v,
                7,
                &Known {
                    topics: h.known_topics(),
                },
            )
            .expect("frame");
            h.run_stream(&f.bytes);
        }
    }
    let data = h.data_dir();
    let glog = std::fs::read(
        data.join("__consumer_offsets")
            .join(segment::log_file_name(0)),
    )
    .unwrap_or_default();
    write(
        &out,
        "group_log",
        "gen-broker-group-log",
        &with_mode(0, &glog),
    );
    for t in ["fuzz-a", "fuzz-b"] {
        let meta =
            std::fs::read(data.join("topics").join(t).join("topic.json")).expect("topic.json");
        write(
            &out,
            "topic_metadata",
            &format!("gen-{t}"),
            &with_mode(0, &meta),
        );
    }
    let mut structured = vec![1u8];
    structured.extend_from_slice(&3i32.to_be_bytes());
    structured.extend_from_slice(b"orders\0cleanup.policy\0compact");
    write(&out, "topic_metadata", "gen-structured", &structured);
    println!(
        "wrote {n} request seeds and the storage seeds under {}",
        out.display()
    );
}
