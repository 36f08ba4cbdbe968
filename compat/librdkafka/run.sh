#!/usr/bin/env bash
# Run librdkafka's integration test suite against a Herald broker and write the
# results table into docs/compatibility.md (full mode).
#
#   compat/librdkafka/run.sh                  # full mode (~see README for duration)
#   COMPAT_QUICK=1 compat/librdkafka/run.sh   # CI selection (quick.txt, test-runner -Q)
#   COMPAT_TESTS=0001,0012 compat/librdkafka/run.sh   # a subset (doc not written)
#
# Environment (all optional):
#   HERALD_BIN          broker binary (default target/release/herald, then target/debug/herald)
#   HERALD_RUST_LOG     RUST_LOG for the broker (default info; debug for diagnosis)
#   COMPAT_QUICK=1      quick CI mode; exit 1 if a quick.txt test fails
#   COMPAT_TESTS        comma-separated test numbers/names to run (doc not written)
#   COMPAT_TIMEOUT      outer timeout per test number in seconds (default 900, quick 300)
#   COMPAT_TIMEOUT_MULTIPLIER  test.timeout.multiplier in test.conf (default 1.5)
#   COMPAT_REBALANCE_DELAY_MS  broker --group-initial-rebalance-delay-ms (default 3000 = Kafka's,
#                       0 in quick mode)
#   COMPAT_HERALD_ARGS  extra `herald serve` arguments, space-separated
#   COMPAT_PORT         fixed port for the default-scenario broker (default: ephemeral)
#   COMPAT_NUM_PARTITIONS      broker --num-partitions (default 4, like trivup's default scenario)
#   COMPAT_EXTRA_CONF   extra test.conf lines, ';'-separated (e.g. "debug=protocol")
#   COMPAT_TEST_DEBUG   TEST_DEBUG for the tests in COMPAT_TESTS (e.g. "protocol,fetch")
#   TEST_KAFKA_VERSION  broker version the suite assumes (default 4.0.0)
#   COMPAT_WRITE_DOC    0 = never write docs/compatibility.md, 1 = always
#   COMPAT_DOC          doc path (default docs/compatibility.md)
#   COMPAT_RESULTS_DIR  where logs go (default target/librdkafka-tests/results/<stamp>-<mode>)
#   COMPAT_KEEP_DATA=1  keep the broker's temp data dir
#   COMPAT_STRICT=1     exit 1 on any failure against Herald
#   COMPAT_IDEMPOTENT=1 run with test-runner -P (every producer idempotent), like
#                       librdkafka's `make idempotent_seq`; doc not written
#   TEST_CONSUMER_GROUP_PROTOCOL=consumer  run consumers with KIP-848 (librdkafka's
#                       own switch, passed through); doc not written
#   COMPAT_SECURITY=1   security mode (alias COMPAT_SASL=1): the TLS/SASL/ACL tests of
#                       security.txt against a broker with PLAINTEXT, SSL, SASL_PLAINTEXT and
#                       SASL_SSL listeners, ACLs and SCRAM users; writes its own doc section
#   COMPAT_SSL_CLIENT_AUTH  security mode: broker --ssl-client-auth (default requested)
#   COMPAT_REAUTH_MS    security mode: broker --connections-max-reauth-ms (default 10000)
#   COMPAT_PIN=0        security mode: do not run broker and tests on separate CPUs
#   COMPAT_BUILD_DIR    as for build.sh
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$HERE/build.sh"
exec python3 "$HERE/harness.py" "$@"
