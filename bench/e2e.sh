#!/usr/bin/env bash
# End-to-end packets/s through a veth pair between two network namespaces
# this script creates (and always deletes), with the same N rules loaded by
# each engine in the receiving namespace's INPUT path:
#
#   none             nothing loaded (the ceiling)
#   nf2bpf-tc        nf2bpf apply (TC ingress/egress)
#   nf2bpf-xdp       nf2bpf apply --xdp (XDP early-drop stage + TC)
#   iptables-nft     iptables-nft-restore
#   iptables-legacy  iptables-legacy-restore
#   nft              nft -f, one rule per rule
#   nft-set          nft -f, one rule over a set (families with a set form)
#   ipset            ipset restore + one iptables-nft -m set rule
#
# Sender: udpflood (AF_PACKET + PACKET_QDISC_BYPASS + sendmmsg, prebuilt
# 60-byte UDP frames) in the sending namespace. Count: UDP datagrams that
# reached the receiving namespace's UDP layer (/proc/net/snmp InDatagrams +
# InErrors + NoPorts), i.e. packets the filter let through; a udpsink drains
# the socket. Every point gets a fresh pair of namespaces.
#
# Family nat: the rules DNAT the flow to 198.18.0.2:5002 in the receiving
# namespace's PREROUTING, so the sink listens on 5002 (on 5001 when nothing
# translates: no rules loaded, N = 0) and received = InDatagrams +
# RcvbufErrors, which only a socket bound to 5002 can raise; datagrams that
# arrived untranslated (NoPorts) or with a checksum the rewrite broke
# (InCsumErrors) are counted apart and reported in the note.
#
# Family svc: kube-proxy's own rules for N UDP Services x 10 endpoints
# (scripts/kube-proxy-gen: iptables mode for nf2bpf and iptables, nftables
# mode for nft), the flow sent to the last Service's ClusterIP:53, whose
# endpoints are 10 addresses of the receiving namespace (198.18.1.1-10) on
# port 5353, where the sink listens; counted as for nat. At N = 0 the flow
# goes to 198.18.0.2:5353 directly (the ceiling).
#
#   bench/e2e.sh BUILD_DIR OUT_DIR
# Environment: BENCH_QUICK=1, BENCH_E2E_SECONDS, BENCH_E2E_REPS,
# BENCH_E2E_FAMILIES ("deny kube"), BENCH_E2E_ENGINES, BENCH_E2E_SIZES,
# BENCH_SENDERS (sender threads, default 1: pinned to CPU 0, sink on the last CPU),
# BENCH_E2E_TSV (file name in OUT_DIR, default e2e.tsv).
#
# BENCH_E2E_NEWFLOWS=COUNT: every packet opens a new connection instead (the
# sender gives each frame its own source port; one sender thread): a warm-up
# of 2,000 new flows, then COUNT new flows timed (at most
# BENCH_E2E_NEWFLOW_SECONDS, default 3 s). Every repetition gets fresh
# namespaces and a fresh load, so each flow is new to whichever tracker the
# engine uses, and a namespace never holds more than 2,000 + COUNT
# connections (COUNT <= 62,000). The family column reads FAMILY-newflows.
set -euo pipefail

BUILD=$(cd "${1:?build dir}" && pwd)
OUT=${2:?out dir}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
NF2BPF=$BUILD/nf2bpf
BENCH=$BUILD/bench/nf2bpf-bench
FLOOD=$BUILD/bench/udpflood
SINK=$BUILD/bench/udpsink
GEN=$(cd "$(dirname "$0")/.." && pwd)/scripts/kube-proxy-gen
SVC_EPS=$(seq -s, -f '198.18.1.%g' 1 10)
# Where the flood goes (a family may change it per size).
FLOOD_DST=198.18.0.2
FLOOD_PORT=5001

QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" != 0 ]; then
  SECONDS_PER=${BENCH_E2E_SECONDS:-0.5}
  REPS=${BENCH_E2E_REPS:-1}
  FAMILIES=${BENCH_E2E_FAMILIES:-deny}
  SIZES=${BENCH_E2E_SIZES:-"0 100 10000"}
else
  SECONDS_PER=${BENCH_E2E_SECONDS:-1}
  REPS=${BENCH_E2E_REPS:-3}
  FAMILIES=${BENCH_E2E_FAMILIES:-"deny kube"}
  SIZES=${BENCH_E2E_SIZES:-"0 10 100 1000 10000 100000"}
fi
ENGINES=${BENCH_E2E_ENGINES:-"nf2bpf-tc nf2bpf-xdp iptables-nft iptables-legacy nft nft-set ipset"}
SENDERS=${BENCH_SENDERS:-1}
NEWFLOWS=${BENCH_E2E_NEWFLOWS:-}
WARMFLOWS=2000
FLOODTAIL=("$SENDERS")
if [ -n "$NEWFLOWS" ]; then
  if [ "$NEWFLOWS" -gt 62000 ]; then
    echo "e2e: BENCH_E2E_NEWFLOWS is at most 62000 (source ports)" >&2
    exit 2
  fi
  SECONDS_PER=${BENCH_E2E_NEWFLOW_SECONDS:-3}
  FLOODTAIL=(1 1 "$WARMFLOWS" "$NEWFLOWS")
fi
# Sender and sink run SCHED_FIFO so other load on the machine (builds,
# tests) does not decide the numbers; BENCH_RT=0 runs them as normal tasks.
RT=()
[ "${BENCH_RT:-1}" != 0 ] && RT=(chrt -f 50)
NCPU=$(nproc)
SINK_CPU=$((NCPU - 1))
# A load that takes longer than this is abandoned and reported as such.
LOAD_TIMEOUT=${BENCH_LOAD_TIMEOUT:-300}

PFX="nf2bpf-bench-$$"
TX="$PFX-tx"
RX="$PFX-rx"
WORK=$(mktemp -d /tmp/nf2bpf-bench.XXXXXX)
SINK_PID=""

teardown() {
  if [ -n "$SINK_PID" ]; then
    kill "$SINK_PID" 2>/dev/null || true
    wait "$SINK_PID" 2>/dev/null || true
    SINK_PID=""
  fi
  ip netns del "$TX" 2>/dev/null || true
  ip netns del "$RX" 2>/dev/null || true
}
cleanup() {
  teardown
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_ns() { date +%s%N; }

# setup SINK_PORT
setup() {
  local port=${1:-5001}
  teardown
  ip netns add "$TX"
  ip netns add "$RX"
  # The veth pair is created inside TX with its peer moved to RX: the
  # caller's namespace never sees it.
  ip -n "$TX" link add bx0 type veth peer name bx1 netns "$RX"
  for ns in "$TX" "$RX"; do
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n "$ns" link set lo up
  done
  ip -n "$TX" addr add 198.18.0.1/24 dev bx0
  ip -n "$RX" addr add 198.18.0.2/24 dev bx1
  if [ "${fam:-}" = svc ]; then
    for a in ${SVC_EPS//,/ }; do ip -n "$RX" addr add "$a/32" dev bx1; done
  fi
  ip -n "$TX" link set bx0 up
  ip -n "$RX" link set bx1 up
  RXMAC=$(ip -n "$RX" -o link show bx1 | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')
  "${RT[@]}" ip netns exec "$RX" "$SINK" "$port" "$SINK_CPU" >/dev/null &
  SINK_PID=$!
  sleep 0.1
}

# Datagrams that reached UDP in the receiving namespace: "counted stray".
# counted: InDatagrams + InErrors + NoPorts (nat: InDatagrams + RcvbufErrors,
# what reached the sink's socket on the DNAT port); stray (nat only): NoPorts +
# InCsumErrors, datagrams NAT should have sent to the sink and did not.
udp_count() {
  ip netns exec "$RX" awk -v nat="$NAT" '/^Udp:/ { if (!h) { for (i = 2; i <= NF; i++) col[$i] = i; h = 1; next }
      if (nat) print $col["InDatagrams"] + $col["RcvbufErrors"], $col["NoPorts"] + $col["InCsumErrors"]
      else print $col["InDatagrams"] + $col["InErrors"] + $col["NoPorts"], 0 }' /proc/net/snmp
}

# load ENGINE DIR: loads the ruleset; prints the time in ms; fails on error.
load() {
  local engine=$1 dir=$2 t0 t1 rc=0 log=$WORK/load.log
  t0=$(now_ns)
  case $engine in
    none) ;;
    nf2bpf-tc) timeout "$LOAD_TIMEOUT" ip netns exec "$RX" "$NF2BPF" apply --iface bx1 "$dir/iptables.rules" >"$log" 2>&1 || rc=$? ;;
    nf2bpf-xdp) timeout "$LOAD_TIMEOUT" ip netns exec "$RX" "$NF2BPF" apply --xdp --iface bx1 "$dir/iptables.rules" >"$log" 2>&1 || rc=$? ;;
    iptables-nft) timeout "$LOAD_TIMEOUT" ip netns exec "$RX" iptables-nft-restore "$dir/iptables.rules" >"$log" 2>&1 || rc=$? ;;
    iptables-legacy) timeout "$LOAD_TIMEOUT" ip netns exec "$RX" iptables-legacy-restore "$dir/iptables.rules" >"$log" 2>&1 || rc=$? ;;
    nft) timeout "$LOAD_TIMEOUT" ip netns exec "$RX" nft -f "$dir/nft.nft" >"$log" 2>&1 || rc=$? ;;
    nft-set) timeout "$LOAD_TIMEOUT" ip netns exec "$RX" nft -f "$dir/nft-set.nft" >"$log" 2>&1 || rc=$? ;;
    ipset)
      { timeout "$LOAD_TIMEOUT" ip netns exec "$RX" ipset restore -f "$dir/ipset.save" &&
        timeout "$LOAD_TIMEOUT" ip netns exec "$RX" iptables-nft-restore "$dir/iptables-set.rules"; } >"$log" 2>&1 || rc=$? ;;
  esac
  t1=$(now_ns)
  if [ $rc -ne 0 ]; then
    if [ $rc -eq 124 ]; then echo "timeout after ${LOAD_TIMEOUT}s"; else echo "failed: $(head -c 200 "$log" | tr '\n\t' '  ')"; fi
    return 1
  fi
  echo $(((t1 - t0) / 1000000))
}

# One measurement: prints "rx_pps sent_pps stray_datagrams".
measure_once() {
  local c0 c1 s0 s1 out sent el
  read -r c0 s0 < <(udp_count)
  out=$("${RT[@]}" ip netns exec "$TX" "$FLOOD" bx0 "$RXMAC" 198.18.0.1 "$FLOOD_DST" "$FLOOD_PORT" "$SECONDS_PER" "${FLOODTAIL[@]}")
  sleep 0.05
  read -r c1 s1 < <(udp_count)
  sent=$(sed -n 's/.*sent=\([0-9]*\).*/\1/p' <<<"$out")
  el=$(sed -n 's/.*elapsed_ns=\([0-9]*\).*/\1/p' <<<"$out")
  awk -v d=$((c1 - c0)) -v s="$sent" -v e="$el" -v x=$((s1 - s0)) 'BEGIN { printf "%.0f %.0f %d\n", d / (e / 1e9), s / (e / 1e9), x }'
}

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "NA"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

has_form() {  # has_form ENGINE DIR: the family has this engine's ruleset form
  case $1 in
    nft-set) [ -f "$2/nft-set.nft" ] ;;
    ipset) [ -f "$2/ipset.save" ] && [ -f "$2/iptables-set.rules" ] ;;
    *) true ;;
  esac
}

TSV=$OUT/${BENCH_E2E_TSV:-e2e.tsv}
echo -e "family\tengine\tn\tload_ms\trx_pps\tsent_pps\tnote" >"$TSV"
xdp_note=""

# unload_nf2bpf ENGINE: nf2bpf's pins live in the host's bpffs; remove them.
unload_nf2bpf() {
  if [ "$1" = nf2bpf-tc ] || [ "$1" = nf2bpf-xdp ]; then
    ip netns exec "$RX" "$NF2BPF" unload >/dev/null 2>&1 || true
  fi
}

for fam in $FAMILIES; do
  label=$fam
  [ -n "$NEWFLOWS" ] && label=$fam-newflows
  NAT=""
  [ "$fam" = nat ] || [ "$fam" = svc ] && NAT=1
  for n in $SIZES; do
    dir=$WORK/$fam-$n
    if [ "$fam" = svc ]; then
      mkdir -p "$dir"
      FLOOD_DST=198.18.0.2 FLOOD_PORT=5353
      printf '*nat\nCOMMIT\n' >"$dir/iptables.rules"
      printf 'flush ruleset\n' >"$dir/nft.nft"
      if [ "$n" != 0 ]; then
        "$GEN" --kind udp --services "$n" --endpoints 10 --endpoint-ips "$SVC_EPS" -o "$dir/iptables.rules"
        "$GEN" --mode nftables --kind udp --services "$n" --endpoints 10 --endpoint-ips "$SVC_EPS" -o "$dir/nft.nft"
        FLOOD_DST=$(sed -n "s/.*-d \([0-9.]*\)\/32 -p udp -m comment --comment \"ns[0-9]*\/svc-$((n - 1)):p cluster IP\" -m udp --dport 53 -j KUBE-SVC.*/\1/p" "$dir/iptables.rules")
        FLOOD_PORT=53
      fi
    else
      FLOOD_DST=198.18.0.2 FLOOD_PORT=5001
      "$BENCH" gen "$fam" "$n" e2e "$dir"
    fi
    engines=$ENGINES
    [ "$n" = 0 ] && engines="none $ENGINES"
    for eng in $engines; do
      if ! has_form "$eng" "$dir"; then
        echo -e "$label\t$eng\t$n\tNA\tNA\tNA\tno set form for this family" >>"$TSV"
        continue
      fi
      echo "e2e: $fam $eng N=$n" >&2
      port=5001
      [ -n "$NAT" ] && [ "$n" != 0 ] && [ "$eng" != none ] && port=5002
      [ "$fam" = svc ] && port=5353
      setup "$port"
      if ! ms=$(load "$eng" "$dir"); then
        echo "e2e:   load $ms" >&2
        echo -e "$label\t$eng\t$n\tNA\tNA\tNA\tload $ms" >>"$TSV"
        teardown
        continue
      fi
      note=""
      if [ "$eng" = nf2bpf-xdp ]; then
        # What does the XDP stage do for this policy? The programs' run
        # counts (kernel.bpf_stats_enabled) are not needed: the generation's
        # settings say whether an early-drop stage exists.
        if ip netns exec "$RX" ip -d link show bx1 | grep -q 'prog/xdp'; then
          note="xdp attached"
        else
          note="xdp NOT attached"
        fi
      fi
      : >"$WORK/runs"
      if [ -n "$NEWFLOWS" ]; then
        # Fresh namespaces and load per repetition: every flow new to the tracker.
        for r in $(seq "$REPS"); do
          if [ "$r" -gt 1 ]; then
            setup "$port"
            load "$eng" "$dir" >/dev/null || break
          fi
          "${RT[@]}" ip netns exec "$TX" "$FLOOD" bx0 "$RXMAC" 198.18.0.1 "$FLOOD_DST" "$FLOOD_PORT" 0.3 1 1 0 "$WARMFLOWS" >/dev/null
          measure_once >>"$WORK/runs"
          if [ "$r" -lt "$REPS" ]; then
            unload_nf2bpf "$eng"
            teardown
          fi
        done
      else
        # Warm-up (ARP-free: frames carry the receiver's MAC), then the runs.
        "${RT[@]}" ip netns exec "$TX" "$FLOOD" bx0 "$RXMAC" 198.18.0.1 "$FLOOD_DST" "$FLOOD_PORT" 0.3 "$SENDERS" >/dev/null
        for _ in $(seq "$REPS"); do measure_once >>"$WORK/runs"; done
      fi
      rx=$(awk '{print $1}' "$WORK/runs" | median)
      tx=$(awk '{print $2}' "$WORK/runs" | median)
      if [ -n "$NAT" ]; then
        stray=$(awk '{ s += $3 } END { print s + 0 }' "$WORK/runs")
        note="${note:+$note; }sink on :$port, $stray datagrams not delivered there"
      fi
      echo "e2e:   load ${ms} ms, rx ${rx} pps, sent ${tx} pps" >&2
      echo -e "$label\t$eng\t$n\t$ms\t$rx\t$tx\t$note" >>"$TSV"
      unload_nf2bpf "$eng"
      teardown
    done
  done
done
echo "e2e: results in $TSV" >&2
