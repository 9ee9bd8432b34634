#!/usr/bin/env bash
# apply / status / rollback / unload in a throwaway pair of network namespaces,
# with traffic checks after each step and the failure paths that must leave
# the live generation untouched. Needs root; exits 77 (skipped) otherwise.
#   lifecycle.sh NF2BPF SOURCE_DIR
set -u
BIN=$1
SRC=$2
. "$(dirname "$0")/lib.sh" nf2bpf-lc
ping_ok() { ip netns exec "$CLI" ping -c1 -W1 -q 10.77.0.2 >/dev/null 2>&1; }
udp_ok() {  # a UDP datagram to port $1 arrives
  ip netns exec "$SRV" python3 -c '
import socket,sys
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(("10.77.0.2",int(sys.argv[1]))); s.settimeout(1)
try: s.recv(100); sys.exit(0)
except Exception: sys.exit(1)' "$1" &
  local rx=$!
  sleep 0.2
  ip netns exec "$CLI" python3 -c '
import socket,sys
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.sendto(b"x",("10.77.0.2",int(sys.argv[1])))' "$1"
  wait $rx
}

ip netns add "$CLI" && ip netns add "$SRV" || { echo "cannot create namespaces"; exit 2; }
ip link add c0 netns "$CLI" type veth peer name s0 netns "$SRV"
ip -n "$CLI" addr add 10.77.0.1/24 dev c0 && ip -n "$SRV" addr add 10.77.0.2/24 dev s0
for ns in "$CLI" "$SRV"; do ip -n "$ns" link set lo up; done
ip -n "$CLI" link set c0 up && ip -n "$SRV" link set s0 up

cat > "$WORK/allow-ping.rules" <<'EOF'
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A INPUT -p icmp -m icmp --icmp-type echo-request -j ACCEPT
-A INPUT -p udp -m udp --dport 5001 -j ACCEPT
COMMIT
EOF
cat > "$WORK/deny-ping.rules" <<'EOF'
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A INPUT -p icmp -j DROP
-A INPUT -p udp -m udp --dport 5002 -j ACCEPT
COMMIT
EOF
cat > "$WORK/unsupported.rules" <<'EOF'
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m string --string "nf2bpf-never-sent" --algo bm --to 65535 -j DROP
COMMIT
EOF

# Nothing loaded yet.
expect 1 "status with nothing loaded" -- in_srv "$BIN" status
expect 0 "unload with nothing loaded" -- in_srv "$BIN" unload
ping_ok && pass "ping passes without nf2bpf" || fail "ping without nf2bpf"

# First apply: generation 1, ping allowed, UDP 5002 not.
expect 0 "apply allow-ping" -- in_srv "$BIN" apply "$WORK/allow-ping.rules"
expect 0 "status" -- in_srv "$BIN" status
echo "$LAST" | grep -q "^generation 1 live" && pass "status: generation 1 live" || fail "status generation 1: $LAST"
echo "$LAST" | grep -q "allow-ping.rules" && pass "status names the source" || fail "status source"
echo "$LAST" | grep -q "s0 (tc ingress, tc egress)" && pass "status: attached to s0" || fail "status attach"
ping_ok && pass "ping allowed by generation 1" || fail "ping should pass under allow-ping"
udp_ok 5001 && pass "udp 5001 allowed" || fail "udp 5001 should pass"
udp_ok 5002 && fail "udp 5002 should be dropped" || pass "udp 5002 dropped"
expect 0 "status --format json" -- in_srv "$BIN" status --format json
echo "$LAST" | python3 -c 'import json,sys; j=json.load(sys.stdin); assert j["loaded"] and j["generation"]==1 and any(c["packets"]>0 for c in j["counters"])' \
  && pass "json status: loaded, generation 1, counters moved" || fail "json status content"

# Second apply: generation 2, ping dropped, 5002 allowed; generation 1 kept.
expect 0 "apply deny-ping" -- in_srv "$BIN" apply "$WORK/deny-ping.rules"
ping_ok && fail "ping should be dropped under deny-ping" || pass "ping dropped by generation 2"
udp_ok 5002 && pass "udp 5002 allowed" || fail "udp 5002 should pass"
expect 0 "status" -- in_srv "$BIN" status
echo "$LAST" | grep -q "generation 2 live; generation 1 kept for rollback" && pass "previous generation kept" || fail "status after second apply: $LAST"

# Failure paths leave generation 2 live.
expect 1 "apply on a missing interface" -- in_srv "$BIN" apply --iface nosuch0 "$WORK/allow-ping.rules"
echo "$LAST" | grep -q "interface 'nosuch0' does not exist" && pass "names the missing interface" || fail "missing interface message: $LAST"
expect 1 "apply an unsupported ruleset" -- in_srv "$BIN" apply "$WORK/unsupported.rules"
echo "$LAST" | grep -q "unsupported -m string" && pass "report names the unsupported match" || fail "unsupported message: $LAST"
expect 2 "apply an unreadable file" -- in_srv "$BIN" apply "$WORK/missing.rules"
expect 0 "apply --dry-run" -- in_srv "$BIN" apply --dry-run "$WORK/allow-ping.rules"
ping_ok && fail "failed applies must not change the policy" || pass "ping still dropped: generation 2 still live"
expect 0 "status" -- in_srv "$BIN" status
echo "$LAST" | grep -q "^generation 2 live" && pass "still generation 2" || fail "generation after failures: $LAST"

# Rollback flips back to the allow-ping policy, and again.
# Generation numbers name installs: a rollback makes the kept one live again
# under its own number, and status names them the way rollback did.
expect 0 "rollback" -- in_srv "$BIN" rollback
has "rolled back: generation 1 is live" "rollback names the generation it made live (1)"
ping_ok && pass "ping allowed again after rollback" || fail "rollback did not restore allow-ping"
expect 0 "status after rollback" -- in_srv "$BIN" status
has "generation 1 live; generation 2 kept for rollback" "status after rollback: 1 live, 2 kept"
expect 0 "rollback again" -- in_srv "$BIN" rollback
has "rolled back: generation 2 is live" "second rollback makes generation 2 live again"
ping_ok && fail "second rollback should restore deny-ping" || pass "second rollback restores deny-ping"
expect 0 "status after two rollbacks" -- in_srv "$BIN" status
has "generation 2 live; generation 1 kept for rollback" "status after two rollbacks: 2 live, 1 kept"
expect 0 "apply after the rollbacks" -- in_srv "$BIN" apply "$WORK/deny-ping.rules"
has "generation 3 live" "the next apply is generation 3 (numbers never repeat)"
expect 0 "status after the apply" -- in_srv "$BIN" status
has "generation 3 live; generation 2 kept for rollback" "status: 3 live, 2 kept"

# Killed in the middle of an apply: the live generation stays complete.
python3 - "$WORK/big.rules" <<'EOF'
import sys
with open(sys.argv[1], "w") as f:
    f.write("*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n")
    f.write("-A INPUT -p icmp -m icmp --icmp-type echo-request -j ACCEPT\n")
    for i in range(60000):
        f.write("-A INPUT -s 10.%d.%d.0/24 -p tcp -m tcp --dport %d -j ACCEPT\n" % (100 + i // 250 % 100, i % 250, 1000 + i % 5000))
    f.write("COMMIT\n")
EOF
before=$(in_srv "$BIN" status --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["live"]["checksum"])')
for delay in 0.05 0.15 0.3 0.6; do
  # Not through in_srv: backgrounding a function forks a subshell, and
  # killing it would leave nf2bpf running. `ip netns exec` execs nf2bpf in
  # its own process, so $! is nf2bpf itself.
  ip netns exec "$SRV" "$BIN" apply "$WORK/big.rules" >/dev/null 2>&1 &
  pid=$!
  sleep $delay
  kill -9 $pid 2>/dev/null
  wait $pid 2>/dev/null
  now=$(in_srv "$BIN" status --format json | python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["live"].get("checksum",""))')
  if [ -n "$now" ]; then pass "killed after ${delay}s: a complete generation is live"; else fail "killed after ${delay}s: no valid live generation"; fi
  if [ "$now" = "$before" ]; then ping_ok && fail "old generation live but ping passes" || pass "old generation still decides (ping dropped)";
  else ping_ok && pass "new generation decides (ping allowed)" || fail "new generation live but ping dropped"; fi
  expect 0 "apply deny-ping again" -- in_srv "$BIN" apply "$WORK/deny-ping.rules"
  before=$(in_srv "$BIN" status --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["live"]["checksum"])')
done

# A fresh namespace through `ip netns exec` in a new mount namespace finds it.
expect 0 "status from a new invocation" -- in_srv "$BIN" status

# Unload removes exactly what nf2bpf created.
expect 0 "unload" -- in_srv "$BIN" unload
in_srv tc filter show dev s0 ingress | grep -q nf2bpf && fail "nf2bpf filter left on s0" || pass "no nf2bpf filter left"
in_srv tc qdisc show dev s0 | grep -q clsact && fail "clsact qdisc left on s0" || pass "clsact qdisc nf2bpf created is gone"
ping_ok && pass "ping passes after unload" || fail "ping after unload"
expect 1 "status after unload" -- in_srv "$BIN" status

# A clsact qdisc someone else created survives unload.
in_srv tc qdisc add dev s0 clsact
expect 0 "apply next to a foreign clsact" -- in_srv "$BIN" apply "$WORK/allow-ping.rules"
expect 0 "status: no foreign filter, no warning" -- in_srv "$BIN" status
grep -q "warning" <<<"$LAST" && fail "status warned without a foreign filter" || pass "no warning without a foreign filter"
# Someone else's filter ahead of nf2bpf's on the same hook: status and unload say so.
# (matchall when the kernel has it; a classic BPF filter otherwise: cls_bpf is always there)
in_srv tc filter add dev s0 ingress pref 1 matchall action pass 2>/dev/null && KIND=matchall ||
  { in_srv tc filter add dev s0 ingress pref 1 bpf bytecode '1,6 0 0 4294967295,' && KIND=bpf; }
expect 0 "status with a foreign filter first" -- in_srv "$BIN" status
has "warning: s0 ingress: $KIND (pref 1) runs before nf2bpf's filter (pref 703)" "status warns about the filter before nf2bpf's"
grep -q "s0 egress" <<<"$LAST" && fail "status warned about egress, where nothing runs first" || pass "egress: no warning"
in_srv "$BIN" status --format json | python3 -c 'import json,sys; w=json.load(sys.stdin)["warnings"]; assert len(w)==1 and "(pref 1)" in w[0]' &&
  pass "status --format json lists the warning" || fail "status json warnings"
expect 0 "unload" -- in_srv "$BIN" unload
has "warning: s0 ingress: $KIND (pref 1) runs before nf2bpf's filter" "unload warns about the filter before nf2bpf's"
in_srv tc filter show dev s0 ingress | grep -q "pref 1 $KIND" && pass "the foreign filter is left alone" || fail "unload removed a foreign filter"
in_srv tc qdisc show dev s0 | grep -q clsact && pass "foreign clsact qdisc kept" || fail "unload removed a qdisc it did not create"

# Programs another build of the same ABI attached (here: the namespace
# state names other programs) are replaced by the next apply, in place;
# programs of this build are not loaded again.
in_srv tc filter del dev s0 ingress pref 1  # the foreign filter above would decide for nf2bpf
prog_id() { in_srv bpftool -j net show dev s0 | python3 -c 'import json,sys; print([f for x in json.load(sys.stdin) for f in x.get("tc", []) if f.get("name", "").startswith("nf2bpf_ingress")][0]["id"])'; }
map_id() {  # map_id NAME: the map of that name the attached program uses
  for m in $(bpftool -j prog show id "$(prog_id)" | python3 -c 'import json,sys; print(" ".join(map(str, json.load(sys.stdin)["map_ids"])))'); do
    bpftool -j map show id "$m" | grep -q "\"name\":\"$1\"" && echo "$m"
  done
}
expect 0 "apply allow-ping" -- in_srv "$BIN" apply "$WORK/allow-ping.rules"
P1=$(prog_id)
expect 0 "apply allow-ping again" -- in_srv "$BIN" apply "$WORK/allow-ping.rules"
[ "$(prog_id)" = "$P1" ] && pass "this build's programs stay attached" || fail "programs loaded again without need"
STATE=$(map_id nf_state)
bpftool -j map lookup id "$STATE" key 2 0 0 0 | python3 -c '
import json,sys
v=bytes(int(b,16) for b in json.load(sys.stdin)["value"])
st=json.loads(v[:v.index(0)])
st["programs"]="another build"
b=json.dumps(st).encode(); b+=bytes(len(v)-len(b))
print(" ".join(str(x) for x in b))' >"$WORK/state"
bpftool map update id "$STATE" key 2 0 0 0 value $(cat "$WORK/state")
expect 0 "apply over another build's programs" -- in_srv "$BIN" -v apply "$WORK/deny-ping.rules"
has "replacing the BPF programs another nf2bpf build loaded" "apply says it replaces them"
[ "$(prog_id)" != "$P1" ] && pass "new programs attached" || fail "the other build's programs are still attached"
ping_ok && fail "ping should be dropped under deny-ping" || pass "the new programs enforce the policy"
expect 0 "rollback" -- in_srv "$BIN" rollback
ping_ok && pass "rollback to allow-ping works with the new programs" || fail "ping after rollback"

# A dataplane another nf2bpf version loaded (here: its live generation
# written for another ABI) is left alone: apply and status refuse (a system
# state this version cannot work with: exit 2) and say what to do; unload
# takes it out. (Faked here with this version's programs, which pass
# everything while the live generation is not in their ABI; another
# version's programs would go on filtering.)
expect 0 "apply deny-ping (before a version change)" -- in_srv "$BIN" apply "$WORK/deny-ping.rules"
# (The control map through the program attached to s0: each `ip netns exec`
# has its own bpffs mount, so the pins are not reachable from here.)
PROG=$(in_srv bpftool -j net show dev s0 | python3 -c 'import json,sys; print([f for x in json.load(sys.stdin) for f in x.get("tc", []) if f.get("name", "").startswith("nf2bpf_ingress")][0]["id"])')
CTRL=""
for m in $(bpftool -j prog show id "$PROG" | python3 -c 'import json,sys; print(" ".join(map(str, json.load(sys.stdin)["map_ids"])))'); do
  bpftool -j map show id "$m" | grep -q '"name":"nf_control"' && CTRL=$m
done
VAL=$(bpftool -j map lookup id "$CTRL" key 0 0 0 0 | python3 -c '
import json,sys
v=[int(b,16) for b in json.load(sys.stdin)["value"]]
v[4:8]=[1,0,0,0]  # abi 1
print(" ".join(str(b) for b in v))')
bpftool map update id "$CTRL" key 0 0 0 0 value $VAL
expect 2 "apply over another version's dataplane" -- in_srv "$BIN" apply "$WORK/allow-ping.rules"
has "loaded by another version of nf2bpf (its live generation is in the format of ABI 1" "apply names the other version"
has "nf2bpf unload" "apply says what to do"
expect 2 "status of another version's dataplane" -- in_srv "$BIN" status
has "another version of nf2bpf" "status names the other version"
expect 0 "unload another version's dataplane" -- in_srv "$BIN" unload
has "unloaded the dataplane another nf2bpf version loaded" "unload says whose dataplane it took out"
in_srv tc filter show dev s0 ingress | grep -q nf2bpf && fail "its filter is still attached" || pass "its filters are gone"
ping_ok && pass "ping passes once it is unloaded" || fail "ping after unloading another version's dataplane"
expect 0 "apply after the version change" -- in_srv "$BIN" apply "$WORK/deny-ping.rules"
ping_ok && fail "ping passes under this version's deny-ping" || pass "this version's policy decides (ping dropped)"
expect 0 "unload" -- in_srv "$BIN" unload

echo "lifecycle: $fails failures"
[ "$fails" -eq 0 ]
