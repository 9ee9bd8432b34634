#!/usr/bin/env bash
# `make bench`, kube part (issue 13): how long a one-endpoint change takes to
# be live, at N Services x 10 endpoints (scripts/kube-proxy-gen, ClusterIP).
# The change is what kube-proxy writes when a Service loses an endpoint
# (`kube-proxy-gen --delta remove-endpoint`):
#   iptables-nft, iptables-legacy   iptables-restore --noflush of the partial
#                                   payload (the Service's chain written again,
#                                   the endpoint's chain deleted)
#   nft                             kube-proxy nftables mode's transaction
#   nf2bpf sync --watch             from just before the write to the watch's
#                                   line saying the change is live, with
#                                   kube-proxy's iptables-mode rules and its
#                                   nftables-mode rules (either way the change
#                                   read from the chains it rewrites and
#                                   applied in place to the service maps:
#                                   "updated", "read": "chains")
# Each in a fresh network namespace; the rules load untimed first. Median of
# BENCH_KUBE_REPS (default 3; 1 from 1,000 services up). BENCH_KUBE_SIZES
# (default "10 100 1000").
#   bench/kube.sh BUILD_DIR OUT_DIR
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:?build dir}
OUT=${2:?results dir}
BIN=$BUILD/nf2bpf
GEN=$ROOT/scripts/kube-proxy-gen
# (10,000 services is not in the default: its first sync verifies 320,000
# rules on 700,000 witness packets, about 5 minutes; BENCH_KUBE_SIZES="10000".)
if [ "${BENCH_QUICK:-0}" != 0 ]; then SIZES=${BENCH_KUBE_SIZES:-"10 100"}; else SIZES=${BENCH_KUBE_SIZES:-"10 100 1000"}; fi
W=$(mktemp -d /tmp/nf2bpf-bench-kube.XXXXXX)
NS=nf2bpf-bk-$$
cleanup() {
  for p in $(ip netns pids "$NS" 2>/dev/null); do kill "$p" 2>/dev/null; done
  ip netns del "$NS" 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT INT TERM

now_ms() { echo $(($(date +%s%N) / 1000000)); }
fresh() {
  for p in $(ip netns pids "$NS" 2>/dev/null); do kill "$p" 2>/dev/null; done
  ip netns del "$NS" 2>/dev/null || true
  ip netns add "$NS"
  ip -n "$NS" link set lo up
}
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "NA" }'; }
in_ns() { ip netns exec "$NS" "$@"; }

printf 'services\tengine\tms\tnote\n' >"$OUT/kube-change.tsv"
row() { printf '%s\t%s\t%s\t%s\n' "$@" >>"$OUT/kube-change.tsv"; }

for n in $SIZES; do
  reps=${BENCH_KUBE_REPS:-3}
  [ "$n" -ge 1000 ] && reps=1
  echo "bench: kube change at $n services ..." >&2
  "$GEN" --services "$n" --endpoints 10 --kind clusterip -o "$W/full.rules"
  "$GEN" --services "$n" --endpoints 10 --kind clusterip --delta remove-endpoint -o "$W/delta.rules"
  "$GEN" --mode nftables --services "$n" --endpoints 10 --kind clusterip -o "$W/full.nft"
  "$GEN" --mode nftables --services "$n" --endpoints 10 --kind clusterip --delta remove-endpoint -o "$W/delta.nft"

  for engine in iptables-nft iptables-legacy nft; do
    : >"$W/t"
    for _ in $(seq "$reps"); do
      fresh
      case $engine in
        iptables-nft) in_ns iptables-nft-restore <"$W/full.rules" ;;
        iptables-legacy) in_ns iptables-legacy-restore <"$W/full.rules" ;;
        nft) in_ns nft -f "$W/full.nft" ;;
      esac
      t0=$(now_ms)
      case $engine in
        iptables-nft) in_ns iptables-nft-restore --noflush <"$W/delta.rules" ;;
        iptables-legacy) in_ns iptables-legacy-restore --noflush <"$W/delta.rules" ;;
        nft) in_ns nft -f "$W/delta.nft" ;;
      esac
      echo $(($(now_ms) - t0)) >>"$W/t"
    done
    row "$n" "$engine" "$(median <"$W/t")" "partial restore / transaction, wall clock"
  done

  # nf2bpf sync --watch, end to end: kube-proxy's iptables mode, then its
  # nftables mode (each change read from the chains it rewrites).
  # (nftables mode above 1,000 Services is left out by default: nft -f of
  # its 10,000-Service table takes 3 minutes of kernel time, and the first
  # sync verifies for minutes; BENCH_KUBE_NFT_MAX.)
  for mode in iptables nftables; do
    if [ "$mode" = nftables ] && [ "$n" -gt "${BENCH_KUBE_NFT_MAX:-1000}" ]; then
      row "$n" "nf2bpf sync --watch (nftables mode)" "NA" "not run: the first sync verifies for minutes at this size"
      continue
    fi
    if [ "$mode" = iptables ]; then full=$W/full.rules delta=$W/delta.rules; else full=$W/full.nft delta=$W/delta.nft; fi
    for f in e2e after since install tc verify first read; do : >"$W/$f"; done
    for _ in $(seq "$reps"); do
      fresh
      if [ "$mode" = iptables ]; then in_ns iptables-nft-restore <"$full"; else in_ns nft -f "$full"; fi
      : >"$W/watch.out"
      ip netns exec "$NS" "$BIN" sync --watch --from kernel --format json --state-dir "$W/state" --max-change 100 \
        >"$W/watch.out" 2>"$W/watch.err" &
      pid=$!
      for _ in $(seq 12000); do grep -q '^{' "$W/watch.out" && break; sleep 0.05; done
      if ! grep -q '^{' "$W/watch.out"; then
        echo "bench: no first sync after 10 minutes ($mode, $n services)" >&2
        kill -TERM "$pid"
        wait "$pid" || true
        continue
      fi
      python3 -c 'import json,sys; j=json.loads(open(sys.argv[1]).readline()); print(round(j["timings_ms"]["total"]))
if j["result"] != "swapped": sys.stderr.write("bench: the first sync was %s: %s\n" % (j["result"], j["message"]))' \
        "$W/watch.out" >>"$W/first"
      t0=$(now_ms)
      if [ "$mode" = iptables ]; then in_ns iptables-nft-restore --noflush <"$delta"; else in_ns nft -f "$delta"; fi
      t1=$(now_ms)
      while [ "$(grep -c '^{' "$W/watch.out")" -lt 2 ]; do sleep 0.002; done
      echo $(($(now_ms) - t0)) >>"$W/e2e"
      echo $(($(now_ms) - t1)) >>"$W/after"
      python3 - "$W" <<'PY'
import json, sys
w = sys.argv[1]
j = json.loads(open(w + "/watch.out").readlines()[1])
t = j["timings_ms"]
for name, v in (("since", j["watch"]["since_change_ms"]), ("install", t.get("update", t.get("install_attach", 0))),
                ("tc", t.get("translate_compile", 0)), ("verify", t.get("verify", 0) + t.get("witness", 0)
                                                          + t.get("change_guard", 0)), ("read", t.get("read", 0))):
    open("%s/%s" % (w, name), "a").write("%d\n" % round(v))
if j["result"] != "updated" or j["watch"]["read"] != "chains":
    sys.stderr.write("bench: the watch's run was %s (read %s%s): %s\n" % (j["result"], j["watch"]["read"],
                     ", " + j["watch"].get("full_read_reason", "") if j["watch"]["read"] != "chains" else "", j["message"]))
PY
      kill -TERM "$pid"
      wait "$pid" || true
      in_ns "$BIN" unload >/dev/null 2>&1 || true
      rm -rf "$W/state"
    done
    if [ "$mode" = iptables ]; then
      row "$n" "nf2bpf sync --watch (iptables mode)" "$(median <"$W/e2e")" "iptables-nft-restore to the change live, wall clock"
      row "$n" "  of which: after the write returned" "$(median <"$W/after")" "iptables-nft-restore's exit to the change live"
      row "$n" "  of which: notification to live" "$(median <"$W/since")" "the watch's since_change_ms (20 ms of it debounce)"
      row "$n" "  of which: reading the changed chains" "$(median <"$W/read")" "over netlink, the chains the notifications name"
    else
      row "$n" "nf2bpf sync --watch (nftables mode)" "$(median <"$W/e2e")" "nft -f to the change live, wall clock"
      row "$n" "  of which: after the write returned (nft)" "$(median <"$W/after")" "nft -f's exit to the change live"
      row "$n" "  of which: notification to live (nft)" "$(median <"$W/since")" "the watch's since_change_ms (20 ms of it debounce)"
      row "$n" "  of which: reading the changed chains (nft)" "$(median <"$W/read")" "over netlink, as nft list chain prints them"
    fi
    row "$n" "  of which: dataplane update$([ "$mode" = nftables ] && echo " (nft)")" "$(median <"$W/install")" "the Service's backends in place (fill a slot, flip)"
    if [ "$mode" = iptables ]; then
      row "$n" "nf2bpf first sync" "$(median <"$W/first")" "the whole policy, nothing live before"
    else
      row "$n" "nf2bpf first sync (nftables mode)" "$(median <"$W/first")" "the whole policy, nothing live before"
    fi
  done
done

# The table.
awk -F'\t' '
  NR > 1 { if (!($2 in seen)) { seen[$2] = 1; order[++ne] = $2 } if (!($1 in seenn)) { seenn[$1] = 1; sizes[++nn] = $1 }
           ms[$2, $1] = $3 }
  END {
    printf "## One-endpoint change (kube-proxy rules)\n\nMilliseconds from the write to the change being live, N Services x 10 endpoints (median).\n\n| |"
    for (i = 1; i <= nn; i++) printf " N=%s |", sizes[i]; printf "\n|---|"
    for (i = 1; i <= nn; i++) printf "---:|"; printf "\n"
    for (e = 1; e <= ne; e++) { printf "| %s |", order[e]; for (i = 1; i <= nn; i++) printf " %s |", ms[order[e], sizes[i]]; printf "\n" }
  }' "$OUT/kube-change.tsv" >"$OUT/kube-change.md"
printf '\nMeasured %s, commit %s, %s cores.\n' "$(date -u +%Y-%m-%dT%H:%MZ)" \
  "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" "$(nproc)" >>"$OUT/kube-change.md"
cat "$OUT/kube-change.md" >&2
