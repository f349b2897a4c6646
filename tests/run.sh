#!/usr/bin/env bash
# The whole test suite: `cargo test --workspace` (arguments passed on), then the tests that could not
# run on this machine. `cargo test` hides what a passing test printed, so a test whose tool is missing
# (mosquitto, PostgreSQL, Chromium, openssl, libfaketime) or that may not mount a tmpfs would read
# "ok"; each of them adds a line to a list (plantmeter_tests::skip), printed here with its count.
# Under CI (CI=true) such a test fails instead: .ci/run installs every tool. Exit status: cargo's.
set -uo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
case $target in /*) ;; *) target=$PWD/$target ;; esac
export PLANTMETER_SKIPPED="$target/skipped-tests.txt"
mkdir -p "$(dirname "$PLANTMETER_SKIPPED")"
rm -f "$PLANTMETER_SKIPPED"
cargo test --workspace --no-fail-fast "$@"
status=$?
if [ -s "$PLANTMETER_SKIPPED" ]; then
  n=$(sort -u "$PLANTMETER_SKIPPED" | wc -l)
  echo "== $n tests (or parts of tests) did NOT run on this machine; README.md, 'Set-up', lists what they need:"
  sort -u "$PLANTMETER_SKIPPED" | sed 's/^/   skipped: /'
else
  echo "== no test skipped: every tool the suite needs was found"
fi
exit $status
