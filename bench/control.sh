#!/usr/bin/env bash
# Control plane against the kernel's own tools, wall-clock time of each
# command as a user runs it (process start included), in a scratch network
# namespace this script creates and deletes:
#
#   load: the full ruleset (1,000 / 10,000 / 100,000 rules) into an empty
#         namespace: nf2bpf apply, iptables-nft-restore,
#         iptables-legacy-restore, nft -f;
#   change: a one-rule change in a 10,000-rule ruleset: the whole file again
#         (what kube-proxy and `nf2bpf apply` do), and each tool's
#         incremental form (iptables -R, nft replace rule, nft/ipset element
#         updates) where one exists.
#
#   bench/control.sh BUILD_DIR OUT_DIR
# Environment: BENCH_QUICK=1, BENCH_REPS, BENCH_CONTROL_FAMILIES ("kube deny hostfw").
set -euo pipefail

BUILD=$(cd "${1:?build dir}" && pwd)
OUT=${2:?out dir}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
NF2BPF=$BUILD/nf2bpf
BENCH=$BUILD/bench/nf2bpf-bench
QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" != 0 ]; then
  REPS=${BENCH_REPS:-1}
  SIZES="1000 10000"
  FAMILIES=${BENCH_CONTROL_FAMILIES:-"kube"}
else
  REPS=${BENCH_REPS:-5}
  SIZES="1000 10000 100000"
  FAMILIES=${BENCH_CONTROL_FAMILIES:-"kube deny hostfw"}
fi
LOAD_TIMEOUT=${BENCH_LOAD_TIMEOUT:-300}

NS="nf2bpf-bench-$$-ctl"
WORK=$(mktemp -d /tmp/nf2bpf-bench-ctl.XXXXXX)
cleanup() {
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fresh_ns() {
  ip netns del "$NS" 2>/dev/null || true
  ip netns add "$NS"
  ip -n "$NS" link set lo up
  ip -n "$NS" link add bx1 type veth peer name bx0
  ip -n "$NS" link set bx0 up
  ip -n "$NS" link set bx1 up
}
in_ns() { ip netns exec "$NS" "$@"; }

# timed CMD...: prints ms, or "fail" / "timeout".
timed() {
  local t0 t1 rc=0
  t0=$(date +%s%N)
  timeout "$LOAD_TIMEOUT" "$@" >"$WORK/cmd.log" 2>&1 || rc=$?
  t1=$(date +%s%N)
  if [ $rc -eq 124 ]; then echo timeout; elif [ $rc -ne 0 ]; then echo fail; else
    awk -v d=$((t1 - t0)) 'BEGIN { printf "%.1f\n", d / 1e6 }'
  fi
}
median() { awk '$1 ~ /^[0-9.]+$/' | sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "NA"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

load_cmd() {  # load_cmd ENGINE DIR [changed]
  local f=iptables.rules n=nft.nft
  if [ "${3:-}" = changed ]; then f=iptables-changed.rules n=nft-changed.nft; fi
  case $1 in
    nf2bpf) echo "$NF2BPF apply --iface bx1 $2/$f" ;;
    iptables-nft) echo "iptables-nft-restore $2/$f" ;;
    iptables-legacy) echo "iptables-legacy-restore $2/$f" ;;
    nft) echo "nft -f $2/$n" ;;
  esac
}

LOAD_TSV=$OUT/control-load.tsv
CHANGE_TSV=$OUT/control-change.tsv
echo -e "family\tn\tengine\tms" >"$LOAD_TSV"
echo -e "family\tengine\thow\tms" >"$CHANGE_TSV"

for fam in $FAMILIES; do
  for n in $SIZES; do
    dir=$WORK/$fam-$n
    "$BENCH" gen "$fam" "$n" e2e "$dir"
    for eng in nf2bpf iptables-nft iptables-legacy nft; do
      reps=$REPS
      [ "$n" -ge 100000 ] && reps=$(( REPS < 3 ? REPS : 3 ))
      echo "control: load $fam N=$n $eng" >&2
      : >"$WORK/t"
      for _ in $(seq "$reps"); do
        fresh_ns
        # shellcheck disable=SC2046
        r=$(timed ip netns exec "$NS" $(load_cmd "$eng" "$dir"))
        echo "$r" >>"$WORK/t"
        [ "$r" = timeout ] && break
        [ "$r" = fail ] && { echo "control:   failed: $(head -c 300 "$WORK/cmd.log")" >&2; break; }
      done
      m=$(median <"$WORK/t")
      grep -q timeout "$WORK/t" && m="timeout>${LOAD_TIMEOUT}s"
      grep -q fail "$WORK/t" && m="failed"
      echo -e "$fam\t$n\t$eng\t$m" >>"$LOAD_TSV"
    done
  done

  # One-rule change at 10,000 rules.
  n=10000
  dir=$WORK/$fam-$n
  [ -f "$dir/iptables-changed.rules" ] || continue
  pos=$(cat "$dir/changed-pos")
  rule=$(cat "$dir/changed-rule")
  orig_rule=$(grep '^-A INPUT' "$dir/iptables.rules" | sed -n "${pos}p" | sed 's/^-A INPUT //')
  for eng in nf2bpf iptables-nft iptables-legacy nft; do
    echo "control: one-rule change $fam N=$n $eng" >&2
    fresh_ns
    # shellcheck disable=SC2046
    in_ns $(load_cmd "$eng" "$dir") >/dev/null 2>&1 || { echo -e "$fam\t$eng\tfull reload\tfailed" >>"$CHANGE_TSV"; continue; }
    : >"$WORK/full"
    : >"$WORK/incr"
    for i in $(seq "$REPS"); do
      which=changed
      [ $((i % 2)) = 0 ] && which=orig
      # shellcheck disable=SC2046
      if [ $which = changed ]; then
        timed ip netns exec "$NS" $(load_cmd "$eng" "$dir" changed) >>"$WORK/full"
      else
        timed ip netns exec "$NS" $(load_cmd "$eng" "$dir") >>"$WORK/full"
      fi
    done
    echo -e "$fam\t$eng\tfull reload\t$(median <"$WORK/full")" >>"$CHANGE_TSV"
    case $eng in
      iptables-nft | iptables-legacy)
        for i in $(seq "$REPS"); do
          r=$rule
          [ $((i % 2)) = 0 ] && r=$orig_rule
          # shellcheck disable=SC2086
          eval "timed ip netns exec \"\$NS\" ${eng} -R INPUT $pos $r" >>"$WORK/incr"
        done
        echo -e "$fam\t$eng\tiptables -R (one rule)\t$(median <"$WORK/incr")" >>"$CHANGE_TSV"
        ;;
      nft)
        # Replace the rule at the same position by its handle.
        new=$(grep -v '^ *\(type\|set\|elements\|flags\|chain\|table\|flush\|}\)' "$dir/nft-changed.nft" | sed -n "${pos}p" | sed 's/^ *//')
        old=$(grep -v '^ *\(type\|set\|elements\|flags\|chain\|table\|flush\|}\)' "$dir/nft.nft" | sed -n "${pos}p" | sed 's/^ *//')
        for i in $(seq "$REPS"); do
          r=$new
          [ $((i % 2)) = 0 ] && r=$old
          h=$(in_ns nft -a list chain ip bench input | grep 'handle' | grep -v '^\s*chain\|type filter' | sed -n "${pos}p" | sed 's/.*# handle \([0-9]*\).*/\1/')
          if [ -z "$h" ]; then echo fail >>"$WORK/incr"; continue; fi
          echo "replace rule ip bench input handle $h $r" >"$WORK/replace.nft"
          timed ip netns exec "$NS" nft -f "$WORK/replace.nft" >>"$WORK/incr"
        done
        echo -e "$fam\tnft\tnft replace rule (one rule)\t$(median <"$WORK/incr")" >>"$CHANGE_TSV"
        ;;
    esac
  done
  # Set forms: one element out, one in.
  if [ "$fam" = kube ] && [ -f "$dir/nft-set.nft" ]; then
    fresh_ns
    in_ns nft -f "$dir/nft-set.nft"
    : >"$WORK/incr"
    for i in $(seq "$REPS"); do
      echo "delete element ip bench svc { 10.96.3.1 . tcp . 80 }; add element ip bench svc { 10.96.3.1 . tcp . 8443 }" >"$WORK/e.nft"
      [ $((i % 2)) = 0 ] && echo "delete element ip bench svc { 10.96.3.1 . tcp . 8443 }; add element ip bench svc { 10.96.3.1 . tcp . 80 }" >"$WORK/e.nft"
      timed ip netns exec "$NS" nft -f "$WORK/e.nft" >>"$WORK/incr"
    done
    echo -e "$fam\tnft-set\tnft delete+add element (one service)\t$(median <"$WORK/incr")" >>"$CHANGE_TSV"
    fresh_ns
    in_ns ipset restore -f "$dir/ipset.save"
    in_ns iptables-nft-restore "$dir/iptables-set.rules"
    : >"$WORK/incr"
    for i in $(seq "$REPS"); do
      a=80 b=8443
      [ $((i % 2)) = 0 ] && a=8443 b=80
      printf 'del svc 10.96.3.1,tcp:%s\nadd svc 10.96.3.1,tcp:%s\n' $a $b >"$WORK/e.ipset"
      timed ip netns exec "$NS" ipset restore -f "$WORK/e.ipset" >>"$WORK/incr"
    done
    echo -e "$fam\tipset\tipset del+add (one service)\t$(median <"$WORK/incr")" >>"$CHANGE_TSV"
  fi
done
echo "control: results in $LOAD_TSV, $CHANGE_TSV" >&2
