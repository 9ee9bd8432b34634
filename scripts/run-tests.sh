#!/usr/bin/env bash
# Runs the whole suite with ctest. Kernel tests need root; when they cannot
# run they report SKIPPED, and with CI=true (or NF2BPF_REQUIRE_KERNEL=1) a
# skipped kernel test fails the run, so CI can never pass without them.
set -euo pipefail
BUILD=${1:-build}
cd "$(dirname "$0")/.."

out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
# The fuzz test's sanitizer build (scripts/fuzz.sh, its own tree) is a build:
# done here on every core before the tests start, so the test only fuzzes.
if ctest --test-dir "$BUILD" -N -R '^fuzz$' | grep -q "Total Tests: 1"; then
  FUZZ_BUILD_ONLY=1 ./scripts/fuzz.sh
fi
ctest --test-dir "$BUILD" --output-on-failure -j "$(nproc)" 2>&1 | tee "$out" || status=$?

if grep -qE "\*\*\*Skipped|Not Run" "$out"; then
  echo
  echo "Skipped tests:"
  grep -E "\*\*\*Skipped|Not Run" "$out" || true
  if [ "${CI:-}" = "true" ] || [ "${NF2BPF_REQUIRE_KERNEL:-0}" = "1" ]; then
    echo "run-tests: tests were skipped; CI requires every test (run as root)" >&2
    exit 1
  fi
fi
exit $status
