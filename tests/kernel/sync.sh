#!/usr/bin/env bash
# `nf2bpf sync` in a throwaway pair of network namespaces: no-op runs, swaps,
# refused sources, the change guard, --dry-run, the lock, --config, the JSON
# output, and SIGKILL at random points of 30 syncs under traffic (NF2BPF_SYNC_KILLS). Every step
# is checked with traffic between the namespaces, not only with `status`.
# Needs root; exits 77 (skipped) otherwise.
#   sync.sh NF2BPF SOURCE_DIR
set -u
BIN=$1
SRC=$2
. "$(dirname "$0")/lib.sh" nf2bpf-sy
# 15 kills keep the suite's time budget; NF2BPF_SYNC_KILLS=200 for a soak.
KILLS=${NF2BPF_SYNC_KILLS:-15}
ST=$WORK/state
sync_() { in_srv "$BIN" sync --state-dir "$ST" --iface s0 "$@"; }
ping_ok() { ip netns exec "$CLI" ping -c1 -W0.4 -q 10.78.0.2 >/dev/null 2>&1; }
# One TCP connection to port $1 of the server: 0 when it connects.
tcp_ok() { ip netns exec "$CLI" timeout 0.5 bash -c "exec 3<>/dev/tcp/10.78.0.2/$1" 2>/dev/null; }
# The live generation as "GENERATION CHECKSUM" ("none" when nothing valid).
live() {
  in_srv "$BIN" status --format json 2>/dev/null | python3 -c '
import json,sys
try: j=json.load(sys.stdin)
except Exception: print("none"); sys.exit()
l=j.get("live") or {}
print("%s %s" % (j.get("generation"), l.get("checksum")) if j.get("loaded") and l.get("valid") and l.get("checksum") else "none")'
}
jget() { python3 -c 'import json,sys; j=json.load(sys.stdin)
for k in sys.argv[1].split("."): j=j[k] if isinstance(j,dict) else j[int(k)]
print(j)' "$1" <<<"$LAST"; }

ip netns add "$CLI" && ip netns add "$SRV" || { echo "cannot create namespaces"; exit 2; }
ip link add c0 netns "$CLI" type veth peer name s0 netns "$SRV"
ip -n "$CLI" addr add 10.78.0.1/24 dev c0 && ip -n "$SRV" addr add 10.78.0.2/24 dev s0
for ns in "$CLI" "$SRV"; do ip -n "$ns" link set lo up; done
ip -n "$CLI" link set c0 up && ip -n "$SRV" link set s0 up
# TCP listeners on the server (the kernel completes the handshake; nothing reads).
for port in 8001 8002; do
  in_srv python3 -c '
import socket,sys,time
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)
s.bind(("10.78.0.2",int(sys.argv[1]))); s.listen(1024)
while True:
  c,_=s.accept(); c.close()' $port &
  BG+=($!)
done
for i in $(seq 50); do in_srv ss -ltn | grep -q ':8002 ' && in_srv ss -ltn | grep -q ':8001 ' && break; sleep 0.1; done

# A: ping and TCP 8001 allowed. B: ping dropped, TCP 8002 allowed. Each has
# 60 filler rules so a swap takes long enough to be killed in the middle.
gen_rules() {  # gen_rules NAME ICMP_TARGET PORT
  python3 - "$WORK/$1.rules" "$2" "$3" <<'EOF'
import sys
path, icmp, port = sys.argv[1], sys.argv[2], sys.argv[3]
with open(path, "w") as f:
    f.write("*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n")
    f.write("-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n")
    f.write("-A INPUT -p icmp -m icmp --icmp-type echo-request -j %s\n" % icmp)
    f.write("-A INPUT -p tcp -m tcp --dport %s -j ACCEPT\n" % port)
    for i in range(60):
        f.write("-A INPUT -s 10.%d.%d.0/24 -p tcp -m tcp --dport %d -j ACCEPT\n" % (100 + i // 250, i % 250, 20000 + i))
    f.write("COMMIT\n")
EOF
}
gen_rules A ACCEPT 8001
gen_rules B DROP 8002
# A with different spacing and a trailing comment: the same compiled policy.
# (Not a comment above the rules: the policy records each rule's line for
# its counters, so shifted lines are a changed policy, swapped harmlessly.)
{ sed 's/ -j ACCEPT/  -j  ACCEPT/' "$WORK/A.rules"; echo "# the same rules, reformatted"; } > "$WORK/A2.rules"
# Truncated in the middle of a line, no COMMIT; garbage bytes; missing.
head -c 3000 "$WORK/B.rules" > "$WORK/truncated.rules"
head -c 2000 /dev/urandom | tr '\0' 'x' > "$WORK/garbage.rules"
# A much smaller ruleset: accepts everything but ping (the change guard's case:
# "a truncated source that still parses").
printf '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -p icmp -j DROP\nCOMMIT\n' > "$WORK/open.rules"

# Which of the three probes pass: "ping 8001" for A, "8002" for B.
probes() {
  local r=""
  ping_ok && r+="ping "
  tcp_ok 8001 && r+="8001 "
  tcp_ok 8002 && r+="8002 "
  PROBES="${r% }"
}
policy_A() { probes; [ "$PROBES" = "ping 8001" ]; }
policy_B() { probes; [ "$PROBES" = "8002" ]; }

# ---- first sync, then no-ops -------------------------------------------------------
ping_ok && pass "ping passes without nf2bpf" || fail "ping without nf2bpf"
expect 0 "first sync of A" -- sync_ "$WORK/A.rules"
has "swapped: generation 1" "first sync swaps in generation 1"
has "nothing is live yet" "first sync says why"
policy_A && pass "traffic follows A" || fail "traffic does not follow A after the first sync"
read -r GEN_A SUM_A <<<"$(live)"
[ "$GEN_A" = 1 ] && pass "status: generation 1 live" || fail "status after first sync: $GEN_A $SUM_A"
mtime=$(stat -c %Y.%N "$ST/state.json" 2>/dev/null)

t0=$(date +%s%N)
expect 0 "sync of unchanged A" -- sync_ "$WORK/A.rules"
t1=$(date +%s%N)
has "in sync: generation 1" "unchanged source: in sync"
echo "  (no-op sync: $(( (t1 - t0) / 1000000 )) ms)"
expect 0 "sync of A reformatted" -- sync_ "$WORK/A2.rules"
has "in sync: generation 1" "comment and whitespace change nothing"
[ "$(live)" = "$GEN_A $SUM_A" ] && pass "generation unchanged by no-op syncs" || fail "no-op sync changed the generation: $(live)"
[ "$(stat -c %Y.%N "$ST/state.json")" = "$mtime" ] && pass "no-op syncs write nothing" || fail "no-op sync rewrote state.json"
expect 0 "sync --self-test of unchanged A" -- sync_ --self-test "$WORK/A.rules"
has "self-test passed on" "self-test verifies the live policy"

# ---- a changed source swaps ------------------------------------------------------
t0=$(date +%s%N)
expect 0 "sync of B" -- sync_ "$WORK/B.rules"
t1=$(date +%s%N)
echo "  (swap sync: $(( (t1 - t0) / 1000000 )) ms)"
has "swapped: generation 2" "B swapped in as generation 2"
has "the policy changed" "says the policy changed"
policy_B && pass "traffic follows B" || fail "traffic does not follow B"
read -r GEN_B SUM_B <<<"$(live)"
[ "$GEN_B" = 2 ] && [ "$SUM_B" != "$SUM_A" ] && pass "status: generation 2, a new checksum" || fail "status after swap: $GEN_B $SUM_B"
expect 0 "status" -- in_srv "$BIN" status
has "generation 2 live; generation 1 kept for rollback" "previous generation kept for rollback"
python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); assert s["live"]["checksum"]==sys.argv[2] and s["previous"]["checksum"]==sys.argv[3] and "pending" not in s' \
  "$ST/state.json" "$SUM_B" "$SUM_A" && pass "state.json: live B, previous A" || fail "state.json after swap: $(cat "$ST/state.json")"

# ---- refused sources: the live generation keeps deciding ---------------------------
expect 1 "sync of a truncated file" -- sync_ "$WORK/truncated.rules"
has "the live generation is untouched" "truncated: says the live generation is untouched"
has "truncated.rules:" "truncated: the error is located"
expect 1 "sync of garbage" -- sync_ "$WORK/garbage.rules"
expect 2 "sync of a missing file" -- sync_ "$WORK/missing.rules"
has "missing.rules" "missing file named"
[ "$(live)" = "$GEN_B $SUM_B" ] && pass "refused syncs leave generation 2 live" || fail "refused sync changed the generation: $(live)"
policy_B && pass "B still decides packets after refused syncs" || fail "traffic changed after refused syncs"

# ---- the change guard -------------------------------------------------------------
expect 1 "sync of a much smaller ruleset with --max-change 10" -- sync_ --max-change 10 "$WORK/open.rules"
has "more than --max-change 10.0%" "change guard names the limit"
has "--force" "change guard hints at --force"
[ "$(live)" = "$GEN_B $SUM_B" ] && policy_B && pass "change guard: B still live and deciding" || fail "change guard let the change through"
expect 0 "sync --dry-run --force of it" -- sync_ --dry-run --force --max-change 10 "$WORK/open.rules"
has "dry run:" "dry run says what it would do"
[ "$(live)" = "$GEN_B $SUM_B" ] && policy_B && pass "--dry-run changes nothing" || fail "--dry-run changed the live policy"
expect 0 "sync --force --max-change 10" -- sync_ --force --max-change 10 "$WORK/open.rules"
has "swapped: generation 3" "--force swaps"
has "--force:" "--force is noted"
! ping_ok && tcp_ok 8001 && tcp_ok 8002 && pass "traffic follows the open ruleset" || fail "traffic after the forced swap"
expect 0 "sync B back (a generous guard)" -- sync_ --max-change 100 "$WORK/B.rules"
policy_B && pass "B again" || fail "traffic after syncing B back"
expect 0 "sync A with --max-change 100" -- sync_ --max-change 100 "$WORK/A.rules"
policy_A && pass "A within a generous guard" || fail "traffic after a guarded small change"

# ---- a rollback outside sync, then sync reconciles ---------------------------------
expect 0 "rollback" -- in_srv "$BIN" rollback
policy_B && pass "rollback brings B back" || fail "rollback"
expect 0 "sync A after the rollback" -- sync_ "$WORK/A.rules"
has "changed outside sync" "sync notes the rollback"
has "swapped:" "sync makes A live again"
policy_A && pass "A decides again" || fail "traffic after reconciling"

# ---- a source truncated to ':INPUT DROP': the default guard refuses it, whatever --max-change says
printf '*filter\n:INPUT DROP [0:0]\nCOMMIT\n' > "$WORK/cutoff.rules"
LIVE_A=$(live)
expect 1 "sync of a source truncated to :INPUT DROP (default guard)" -- sync_ "$WORK/cutoff.rules"
has "drops every witness packet the live policy accepts at INPUT" "the cut-off is named"
has "--force" "the cut-off refusal hints at --force"
expect 1 "the same with --max-change 100" -- sync_ --max-change 100 "$WORK/cutoff.rules"
[ "$(live)" = "$LIVE_A" ] && policy_A && pass "A still live and deciding after the refused cut-off" ||
  fail "the truncated source went live"

# ---- --format json ------------------------------------------------------------------
expect 0 "sync --format json (in sync)" -- sync_ --format json "$WORK/A.rules"
python3 -c '
import json,sys
j=json.loads(sys.argv[1][sys.argv[1].index("\n{")+1:] if not sys.argv[1].startswith("{") else sys.argv[1])
for k in ("result","exit","message","notes","timings_ms","state_dir","source","format","checksum","rules","interfaces","live_before","generation","dry_run"):
    assert k in j, k
assert j["result"]=="in-sync" and j["exit"]==0 and j["interfaces"]==["lo","s0"] and j["checksum"]==j["live_before"]["checksum"]
assert isinstance(j["notes"], list) and j["timings_ms"]["total"] > 0' "$LAST" && pass "json (in sync): shape" || { fail "json (in sync) shape"; echo "$LAST" | sed 's/^/    /'; }
expect 0 "sync --format json (swap)" -- sync_ --format json --max-change 100 "$WORK/B.rules"
python3 -c '
import json,sys
j=json.loads(sys.argv[1][sys.argv[1].index("\n{")+1:] if not sys.argv[1].startswith("{") else sys.argv[1])
assert j["result"]=="swapped" and j["exit"]==0 and j["reason"]=="the policy changed"
assert j["witness_packets"] > 0 and j["verification"]["differed"]==0 and j["verification"]["packets"] > 0
assert "percent_changed" in j["change"] and j["change"]["max_change"]==100
assert j["live_before"]["checksum"] != j["checksum"] and j["generation"] > 0
for t in ("translate_compile","verify","install_attach","total"): assert t in j["timings_ms"], t' "$LAST" && pass "json (swap): shape" || { fail "json (swap) shape"; echo "$LAST" | sed 's/^/    /'; }
expect 1 "sync --format json (refused)" -- sync_ --format json "$WORK/truncated.rules"
python3 -c '
import json,sys
j=json.loads(sys.argv[1][sys.argv[1].index("\n{")+1:] if not sys.argv[1].startswith("{") else sys.argv[1])
assert j["result"]=="refused" and j["exit"]==1 and j["errors"] and "hint" in j' "$LAST" && pass "json (refused): shape" || { fail "json (refused) shape"; echo "$LAST" | sed 's/^/    /'; }
policy_B && pass "B live after the JSON runs" || fail "traffic after the JSON runs"

# ---- --config ---------------------------------------------------------------------
mkdir -p "$WORK/etc"
cp "$WORK/A.rules" "$WORK/etc/rules.v4"
cat > "$WORK/etc/sync.yaml" <<EOF
# test configuration
source: rules.v4
interfaces: [s0]
max_change: 100
state_dir: $ST
lock_timeout: 5
EOF
expect 0 "sync --config" -- in_srv "$BIN" sync --config "$WORK/etc/sync.yaml"
has "$WORK/etc/rules.v4" "config: source relative to the config file"
policy_A && pass "config: A live" || fail "traffic after sync --config"
expect 0 "sync --config, SOURCE on the command line wins" -- in_srv "$BIN" sync --config "$WORK/etc/sync.yaml" "$WORK/B.rules"
policy_B && pass "command line beats the config" || fail "SOURCE given on the command line was ignored"
printf 'source: rules.v4\ninterfaces: [s0]\nmax_chnge: 5\n' > "$WORK/etc/bad.yaml"
expect 1 "sync with an unknown setting" -- in_srv "$BIN" sync --config "$WORK/etc/bad.yaml"
has "bad.yaml:3:1: error: unknown setting 'max_chnge'" "config error is located"
printf 'source: rules.v4\nmax_change: lots\n' > "$WORK/etc/bad2.yaml"
expect 1 "sync with a wrong type" -- in_srv "$BIN" sync --config "$WORK/etc/bad2.yaml"
has "bad2.yaml:2:13:" "wrong type is located"
printf 'source: [unclosed\n' > "$WORK/etc/bad3.yaml"
expect 1 "sync with broken YAML" -- in_srv "$BIN" sync --config "$WORK/etc/bad3.yaml"
has "bad3.yaml:" "broken YAML is located"
expect 2 "sync without a source (usage error)" -- in_srv "$BIN" sync --state-dir "$ST"
has "sync needs a SOURCE" "missing SOURCE is explained"
policy_B && pass "bad configurations change nothing" || fail "traffic after bad configurations"

# ---- the lock -----------------------------------------------------------------------
flock "$ST/lock" sleep 3 &
holder=$!
sleep 0.2
t0=$(date +%s%N)
expect 1 "sync while another holds the lock (--lock-timeout 1)" -- sync_ --lock-timeout 1 "$WORK/A.rules"
t1=$(date +%s%N)
has "another nf2bpf sync" "lock: clear message"
has "after 1 s" "lock: says how long it waited"
ms=$(( (t1 - t0) / 1000000 ))
[ "$ms" -ge 900 ] && [ "$ms" -lt 2500 ] && pass "lock: waited about 1 s ($ms ms)" || fail "lock: waited $ms ms"
policy_B && pass "lock: nothing changed" || fail "traffic after a lock timeout"
expect 0 "sync waits for the lock when allowed to" -- sync_ --lock-timeout 10 "$WORK/A.rules"
wait $holder
policy_A && pass "the waiting sync swapped after the holder left" || fail "traffic after waiting for the lock"
# Two real syncs at once: both succeed, one after the other; the result is whole.
sync_ "$WORK/B.rules" >"$WORK/c1.out" 2>&1 & p1=$!
sync_ "$WORK/B.rules" >"$WORK/c2.out" 2>&1 & p2=$!
wait $p1; r1=$?
wait $p2; r2=$?
[ $r1 -eq 0 ] && [ $r2 -eq 0 ] && pass "two concurrent syncs both exit 0" || fail "concurrent syncs: exit $r1, $r2"
n_swapped=$(cat "$WORK/c1.out" "$WORK/c2.out" | grep -c "swapped:")
n_insync=$(cat "$WORK/c1.out" "$WORK/c2.out" | grep -c "in sync:")
[ "$n_swapped" = 1 ] && [ "$n_insync" = 1 ] && pass "one swapped, the other found it in sync" || { fail "concurrent syncs: $n_swapped swapped, $n_insync in sync"; cat "$WORK/c1.out" "$WORK/c2.out"; }
policy_B && pass "B after the concurrent syncs" || fail "traffic after concurrent syncs"

# ---- SIGKILL at random points of $KILLS syncs under traffic ----------------------------
read -r _ SUM_B <<<"$(live)"
expect 0 "sync A (to learn its checksum)" -- sync_ "$WORK/A.rules"
read -r _ SUM_A <<<"$(live)"
# Background traffic: a ping every 10 ms and TCP connections, all the time.
ip netns exec "$CLI" ping -i 0.01 -q 10.78.0.2 >/dev/null 2>&1 &
BG+=($!)
ip netns exec "$CLI" bash -c 'while :; do timeout 0.3 bash -c "exec 3<>/dev/tcp/10.78.0.2/8001" 2>/dev/null; timeout 0.3 bash -c "exec 3<>/dev/tcp/10.78.0.2/8002" 2>/dev/null; done' &
BG+=($!)
# How long a swap takes here, to spread the kill points over it.
t0=$(date +%s%N); sync_ "$WORK/B.rules" >/dev/null 2>&1; t1=$(date +%s%N)
swap_ms=$(( (t1 - t0) / 1000000 ))
consistent=0 traffic_ok=0 reconciled=0 killed_old=0 killed_new=0
for i in $(seq 1 "$KILLS"); do
  cur=$(live | cut -d' ' -f2)
  if [ "$cur" = "$SUM_A" ]; then next=B; want_new=$SUM_B; else next=A; want_new=$SUM_A; fi
  # Most of a sync is translating and verifying; the swap is near its end.
  delay=$(python3 -c "import random; print('%.3f' % (random.uniform($swap_ms * 0.6, $swap_ms * 1.4) / 1000))")
  # Not through a shell function: $! must be nf2bpf itself (ip netns exec
  # execs it), or the kill hits a wrapper and the sync runs on.
  ip netns exec "$SRV" "$BIN" sync --state-dir "$ST" --iface s0 "$WORK/$next.rules" >/dev/null 2>&1 &
  pid=$!
  sleep "$delay"
  kill -9 $pid 2>/dev/null
  wait $pid 2>/dev/null
  [ -e /proc/$pid ] && fail "kill $i: the sync (pid $pid) is still running"
  now=$(live | cut -d' ' -f2)
  if [ "$now" = "$cur" ]; then
    consistent=$((consistent + 1)); killed_old=$((killed_old + 1))
  elif [ "$now" = "$want_new" ]; then
    consistent=$((consistent + 1)); killed_new=$((killed_new + 1))
  else
    fail "kill $i (after ${delay}s): live generation is '$now', neither A nor B"
    continue
  fi
  if [ "$now" = "$SUM_A" ]; then policy_A; else policy_B; fi && traffic_ok=$((traffic_ok + 1)) ||
    { fail "kill $i (after ${delay}s): live is $([ "$now" = "$SUM_A" ] && echo A || echo B) but the probes that pass are '$PROBES'"; in_srv "$BIN" status | sed 's/^/    /'; }
  # Every fifth time, the next sync of the same source reconciles at once.
  if [ $((i % 5)) -eq 0 ]; then
    out=$(sync_ "$WORK/$next.rules" 2>&1); rc=$?
    st=$(python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(s.get("live",{}).get("checksum",""), "pending" in s)' "$ST/state.json" 2>/dev/null)
    if [ $rc -eq 0 ] && [ "$(live | cut -d' ' -f2)" = "$want_new" ] && [ "$st" = "$want_new False" ]; then
      reconciled=$((reconciled + 1))
    else
      fail "kill $i: the next sync did not reconcile (exit $rc, state '$st'): $out"
    fi
  fi
done
for p in "${BG[@]:2}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
BG=("${BG[@]:0:2}")
echo "  ($KILLS SIGKILLs, swap ~${swap_ms} ms: $consistent consistent ($killed_old old, $killed_new new), $traffic_ok traffic checks passed, $reconciled/$((KILLS / 5)) reconciled by the next sync)"
[ "$consistent" -eq "$KILLS" ] && pass "$KILLS SIGKILLs: a whole generation live every time" || fail "SIGKILL: only $consistent of $KILLS consistent"
[ "$traffic_ok" -eq "$consistent" ] && pass "SIGKILL: traffic followed the live policy every time" || fail "SIGKILL: traffic checks $traffic_ok of $consistent"
[ "$killed_old" -gt 0 ] && [ "$killed_new" -gt 0 ] && pass "SIGKILL: kills landed both before and after swaps" || echo "  note: kills landed only on one side of the swap"
expect 0 "sync after the kill storm" -- sync_ "$WORK/A.rules"
policy_A && pass "A after the kill storm" || fail "traffic after the kill storm"
ls "$ST/generations" | grep -q '\.tmp\.' && fail "temporary files left in the generation store" || pass "no temporary files left"
[ "$(ls "$ST/generations" | wc -l)" -le 4 ] && pass "generation store pruned" || fail "generation store: $(ls "$ST/generations")"

# ---- unload, then sync starts over ------------------------------------------------------
expect 0 "unload" -- in_srv "$BIN" unload
expect 0 "sync after unload" -- sync_ "$WORK/B.rules"
has "no generation is live any more" "sync notes the unload"
policy_B && pass "B after unload + sync" || fail "traffic after unload + sync"
expect 0 "unload" -- in_srv "$BIN" unload

echo "sync: $fails failures"
[ "$fails" -eq 0 ]
