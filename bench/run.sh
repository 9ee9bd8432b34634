#!/usr/bin/env bash
# `make bench`: builds the benchmark tools, runs every benchmark side by side
# on this machine, writes bench/results/ (markdown tables, TSV, a plot) and
# docs/benchmarks.md. Nothing here passes or fails on a number.
#
#   bench/run.sh [BUILD_DIR]          (default build-bench; BENCH_QUICK=1 for a ~2-minute subset)
#
# Needs root (network namespaces, BPF). Parts can be skipped with
# BENCH_SKIP="classifier control e2e nat kube". The nat part: BENCH_NAT_SIZES
# (classifier), BENCH_NAT_E2E_SIZES, BENCH_NAT_ENGINES, BENCH_NAT_NEWFLOWS
# (end to end: one DNATed flow, then a new connection per packet).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build-bench}
OUT=${BENCH_OUT:-$ROOT/bench/results}
SKIP=${BENCH_SKIP:-}
QUICK=${BENCH_QUICK:-0}
export BENCH_QUICK=$QUICK

if [ "$(id -u)" -ne 0 ]; then
  echo "bench: needs root (network namespaces, BPF, netfilter)" >&2
  exit 2
fi

cd "$ROOT"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j "$(nproc)" --target bench-tools

mkdir -p "$OUT"
# Stale results of parts not run this time would mix runs: start clean.
rm -f "$OUT"/*.md "$OUT"/*.tsv "$OUT"/*.txt "$OUT"/*.png "$OUT"/*.gp
T0=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- the machine
{
  echo "cpu	$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
  echo "cores	$(nproc)"
  echo "kernel	$(uname -r)"
  echo "memory	$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
  echo "virt	$(systemd-detect-virt 2>/dev/null || lscpu | sed -n 's/^Hypervisor vendor:[[:space:]]*//p' | head -1)"
  echo "date	$(date -u +%Y-%m-%dT%H:%MZ)"
  echo "commit	$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (+ uncommitted changes)')"
  echo "iptables	$(iptables-nft --version 2>/dev/null | head -1)"
  echo "nft	$(nft --version 2>/dev/null | head -1)"
  echo "ipset	$(ipset --version 2>/dev/null | head -1)"
  echo "quick	$QUICK"
} >"$OUT/machine.tsv"

skip() { [[ " $SKIP " == *" $1 "* ]]; }

# The measurements run SCHED_FIFO (priority 50) so other work on a shared
# machine (builds, tests) does not decide the numbers: wall-clock timings and
# the end-to-end sender would otherwise be starved. BENCH_RT=0 runs them as
# normal tasks. The kernel's RT throttling still leaves others 5% of each CPU.
RT=()
[ "${BENCH_RT:-1}" != 0 ] && RT=(chrt -f 50)
echo "priority	$([ ${#RT[@]} -gt 0 ] && echo 'SCHED_FIFO 50 (chrt -f 50)' || echo normal)" >>"$OUT/machine.tsv"

if ! skip classifier; then
  echo "bench: classifier cost (BPF_PROG_TEST_RUN) ..." >&2
  "${RT[@]}" "$BUILD/bench/nf2bpf-bench" classifier "$OUT" >/dev/null
fi
if ! skip control; then
  echo "bench: control plane ..." >&2
  "${RT[@]}" "$BUILD/bench/nf2bpf-bench" control "$OUT" >/dev/null
  "${RT[@]}" "$ROOT/bench/control.sh" "$BUILD" "$OUT"
fi
if ! skip e2e; then
  echo "bench: end to end through a veth pair ..." >&2
  "${RT[@]}" "$ROOT/bench/e2e.sh" "$BUILD" "$OUT"
fi

# e2e_flows FAMILY SIZES NEWFLOWS [ENGINES]: the end-to-end run of one family
# twice, into FAMILY-e2e.tsv (one flow) and FAMILY-e2e-new.tsv (a new
# connection per packet, NEWFLOWS of them).
e2e_flows() {
  local fam=$1 sizes=$2 newflows=$3 engines=${4:-"nf2bpf-tc iptables-nft iptables-legacy nft"} tsv nf
  for tsv in "$fam-e2e.tsv" "$fam-e2e-new.tsv"; do
    nf=""
    [ "$tsv" = "$fam-e2e-new.tsv" ] && nf=$newflows
    BENCH_E2E_FAMILIES=$fam BENCH_E2E_TSV=$tsv BENCH_E2E_NEWFLOWS=$nf BENCH_E2E_SIZES=$sizes \
      BENCH_E2E_ENGINES=$engines "${RT[@]}" "$ROOT/bench/e2e.sh" "$BUILD" "$OUT"
  done
}

if ! skip nat; then
  echo "bench: NAT (classifier, then end to end) ..." >&2
  "${RT[@]}" "$BUILD/bench/nf2bpf-bench" nat "$OUT" >/dev/null
  if [ "$QUICK" != 0 ]; then nat_sizes="0 10 10000"; else nat_sizes="0 10 1000 10000"; fi
  e2e_flows nat "${BENCH_NAT_E2E_SIZES:-$nat_sizes}" "${BENCH_NAT_NEWFLOWS:-30000}" "${BENCH_NAT_ENGINES:-}"
fi

if ! skip kube; then
  echo "bench: kube-proxy rules, one-endpoint change ..." >&2
  "${RT[@]}" "$ROOT/bench/kube.sh" "$BUILD" "$OUT"
  echo "bench: kube-proxy rules, a Service's packets/s and new connections/s ..." >&2
  if [ "$QUICK" != 0 ]; then svc_sizes="0 10 100"; else svc_sizes="0 10 100 1000"; fi
  e2e_flows svc "${BENCH_SVC_SIZES:-$svc_sizes}" "${BENCH_SVC_NEWFLOWS:-30000}" "${BENCH_SVC_ENGINES:-}"
fi

T1=$(date +%s)
echo "elapsed	$((T1 - T0)) s" >>"$OUT/machine.tsv"
echo "loadavg	$LOAD_START at start, $(cut -d' ' -f1-3 /proc/loadavg) at end" >>"$OUT/machine.tsv"
# The NAT tables carry the run they came from (report.sh names it when they
# sit next to another run's results).
skip nat || cp "$OUT/machine.tsv" "$OUT/nat-machine.tsv"

"$ROOT/bench/report.sh" "$OUT" "$ROOT/docs/benchmarks.md"
echo "bench: done in $((T1 - T0)) s; results in $OUT, summary in docs/benchmarks.md" >&2
