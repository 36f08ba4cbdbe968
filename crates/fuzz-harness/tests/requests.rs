//! Structure-aware property tests of the request path: for every API and
//! version Herald serves (the ApiVersions handler's ranges), valid requests
//! are built with kafka-protocol's types, encoded, mutated (truncated, counts
//! and lengths made negative, huge or off by one, flexible-version tagged
//! fields inflated, bytes flipped) and served through `handlers::parse` and
//! `handlers::dispatch` by one in-process broker.
//!
//! Each request must end in a well-formed response or a protocol error (the
//! connection closed), with no panic on any thread, and the bytes allocated
//! while it is served must stay below `REQUEST_ALLOC_PEAK_BYTES_MAX`.
//!
//! `HERALD_FUZZ_CASES` sets the number of random cases (default 20 000).

use herald_fuzz_harness::alloc::{self, Counting};
use herald_fuzz_harness::frames::{self, Known, served_apis};
use herald_fuzz_harness::mutate::{self, Hostile, Mutation};
use herald_fuzz_harness::request::{Harness, Outcome};
use herald_fuzz_harness::{count_panics, panics_seen};
use kafka_protocol::messages::ApiKey;
use proptest::prelude::*;

#[global_allocator]
static ALLOC: Counting = Counting;

/// The most bytes live at once while one request (under 64 KiB) is served,
/// above what was live before. The frames here are tiny: an allocation sized
/// by a count or length from the wire, instead of by the bytes present,
/// shows as hundreds of MiB or an abort.
const REQUEST_ALLOC_PEAK_BYTES_MAX: usize = 16 << 20;

/// The tests share one broker and one allocation counter: one at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn known(h: &Harness) -> Known {
    Known {
        topics: h.known_topics(),
    }
}

/// Serves `bytes` and checks the outcome; returns the outcomes.
fn serve(h: &Harness, bytes: &[u8], what: &dyn Fn() -> String) -> Vec<Outcome> {
    let panics = panics_seen();
    let baseline = alloc::reset_peak();
    let outcomes = h.run_stream(bytes);
    let peak = alloc::peak_bytes().saturating_sub(baseline);
    assert!(
        peak <= REQUEST_ALLOC_PEAK_BYTES_MAX,
        "{}: {peak} bytes allocated at once (limit {REQUEST_ALLOC_PEAK_BYTES_MAX})",
        what()
    );
    assert_eq!(panics_seen(), panics, "{}: a thread panicked", what());
    outcomes
}

#[test]
fn every_served_api_and_version_answers_valid_requests() {
    let _serial = serial();
    count_panics();
    let h = Harness::shared();
    let k = known(h);
    let apis = served_apis();
    assert!(apis.len() >= 30, "ApiVersions serves {} APIs", apis.len());
    let mut versions = 0;
    for (api, lo, hi) in apis {
        for v in lo..=hi {
            versions += 1;
            for seed in 0..8u64 {
                let frame = frames::request_frame(api, v, seed, &k)
                    .unwrap_or_else(|e| panic!("building {api:?} v{v} (seed {seed}): {e}"));
                let outcomes = serve(h, &frame.bytes, &|| {
                    format!("valid {api:?} v{v} seed {seed}")
                });
                assert_eq!(outcomes.len(), 1);
                match (&outcomes[0], api) {
                    (Outcome::Response | Outcome::Pending, _) => {}
                    // acks=0, and the SASL APIs the connection serves itself.
                    (
                        Outcome::NoResponse,
                        ApiKey::Produce | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate,
                    ) => {}
                    (other, _) => panic!("valid {api:?} v{v} (seed {seed}) got {other:?}"),
                }
            }
        }
    }
    eprintln!("{versions} API versions served, 8 valid requests each");
    assert!(versions > 150, "only {versions} versions served");
}

/// Every prefix of a request, and a hostile INT16, INT32 and varint at every
/// offset, for one request of each served API and version.
#[test]
fn truncation_and_hostile_lengths_at_every_offset() {
    let _serial = serial();
    count_panics();
    let h = Harness::shared();
    let k = known(h);
    let mut served = 0usize;
    let mut closed = 0usize;
    let mut answered = 0usize;
    for (api, lo, hi) in served_apis() {
        for v in lo..=hi {
            let frame = frames::request_frame(api, v, 1000 + v as u64, &k).expect("a frame");
            let body_len = frame.bytes.len() - 4;
            let mut mutations = Vec::new();
            for i in 0..body_len {
                let at = ((i * (u16::MAX as usize + 1)) / body_len) as u16;
                let hostile = Hostile::ALL[i % Hostile::ALL.len()];
                mutations.push(Mutation::Truncate { at });
                mutations.push(Mutation::Int16 { at, value: hostile });
                mutations.push(Mutation::Int32 { at, value: hostile });
                mutations.push(Mutation::Varint { at, value: hostile });
            }
            for m in &mutations {
                let bytes = mutate::apply(&frame, m);
                let outcomes = serve(h, &bytes, &|| format!("{api:?} v{v} {m:?}"));
                served += 1;
                closed += outcomes
                    .iter()
                    .filter(|o| matches!(o, Outcome::Closed(_)))
                    .count();
                answered += outcomes
                    .iter()
                    .filter(|o| matches!(o, Outcome::Response))
                    .count();
            }
        }
    }
    eprintln!(
        "{served} mutated requests: {answered} answered, {closed} refused (connection closed)"
    );
    // The mutations must reach the decoders, not only the frame check.
    assert!(
        closed > served / 10,
        "{closed} of {served} mutated requests were refused"
    );
}

fn hostile() -> impl Strategy<Value = Hostile> {
    (0..Hostile::ALL.len()).prop_map(|i| Hostile::ALL[i])
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<u16>().prop_map(|at| Mutation::Truncate { at }),
        (any::<u16>(), hostile()).prop_map(|(at, value)| Mutation::Int32 { at, value }),
        (any::<u16>(), hostile()).prop_map(|(at, value)| Mutation::Int16 { at, value }),
        (any::<u16>(), hostile()).prop_map(|(at, value)| Mutation::Varint { at, value }),
        (hostile(), 0u32..300, hostile()).prop_map(|(count, tag, size)| Mutation::TaggedFields {
            count,
            tag,
            size
        }),
        (hostile(), 0u32..300, hostile())
            .prop_map(|(count, tag, size)| Mutation::HeaderTaggedFields { count, tag, size }),
        prop::collection::vec((any::<u16>(), any::<u8>()), 1..8)
            .prop_map(|at| Mutation::Flip { at }),
        hostile().prop_map(|value| Mutation::SizePrefix { value }),
    ]
}

/// Counts outcomes of the random cases; prints the tally every 1 000 cases
/// (seen with `--nocapture`), so a run shows how deep the cases reach.
fn tally(outcomes: &[Outcome]) {
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    static CASES: AtomicUsize = AtomicUsize::new(0);
    static COUNTS: [AtomicUsize; 5] = [const { AtomicUsize::new(0) }; 5];
    for o in outcomes {
        let i = match o {
            Outcome::Response => 0,
            Outcome::NoResponse => 1,
            Outcome::Pending => 2,
            Outcome::Closed(_) => 3,
            Outcome::FrameRejected(_) => 4,
        };
        COUNTS[i].fetch_add(1, Relaxed);
    }
    let n = CASES.fetch_add(1, Relaxed) + 1;
    if n.is_multiple_of(1000) {
        let c: Vec<usize> = COUNTS.iter().map(|c| c.load(Relaxed)).collect();
        eprintln!(
            "{n} cases: {} answered, {} no answer, {} pending, {} refused, {} frames rejected",
            c[0], c[1], c[2], c[3], c[4]
        );
    }
}

fn cases() -> u32 {
    std::env::var("HERALD_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Random requests of any served API and version with one to three
    /// mutations, sometimes two frames pipelined.
    #[test]
    fn mutated_requests_are_answered_or_refused(
        api_pick in any::<u16>(),
        version_pick in any::<u16>(),
        seed in any::<u64>(),
        ms in prop::collection::vec(mutation(), 1..4),
        pipelined in any::<bool>(),
    ) {
        let _serial = serial();
        count_panics();
        let h = Harness::shared();
        let apis = served_apis();
        let (api, lo, hi) = apis[api_pick as usize % apis.len()];
        let v = lo + (version_pick % (hi - lo + 1) as u16) as i16;
        let frame = frames::request_frame(api, v, seed, &known(h)).expect("a frame");
        let mut bytes = frame.bytes.clone();
        for m in &ms {
            let f = frames::Frame { bytes, body_start: frame.body_start, flexible: frame.flexible };
            bytes = mutate::apply(&f, m);
        }
        if pipelined {
            let second = frames::request_frame(api, v, seed ^ 1, &known(h)).expect("a frame");
            bytes.extend_from_slice(&second.bytes);
        }
        let outcomes = serve(h, &bytes, &|| format!("{api:?} v{v} seed {seed} {ms:?}"));
        tally(&outcomes);
    }
}
