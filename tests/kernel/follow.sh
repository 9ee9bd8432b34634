#!/usr/bin/env bash
# Traffic that crosses no interface nf2bpf was attached to at apply time
# (issue 11): loopback traffic, judged on lo; an interface created after
# apply, which `status` warns about, `apply --cutover` refuses to leave
# uncovered, and `nf2bpf attach [--follow]` covers. Needs root; exits 77
# (skipped) otherwise.
#   follow.sh NF2BPF SOURCE_DIR
set -u
BIN=$1
. "$(dirname "$0")/lib.sh" nf2bpf-fl

udp_ok() {  # udp_ok ADDR PORT: a datagram from CLI to SRV's ADDR:PORT arrives
  ip netns exec "$SRV" python3 -c '
import socket,sys
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind((sys.argv[1],int(sys.argv[2]))); s.settimeout(1)
try: s.recv(100); sys.exit(0)
except Exception: sys.exit(1)' "$1" "$2" &
  local rx=$!
  sleep 0.3
  ip netns exec "$CLI" python3 -c '
import socket,sys
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.sendto(b"x",(sys.argv[1],int(sys.argv[2])))' "$1" "$2"
  wait $rx
}
local_tcp_ok() {  # local_tcp_ok ADDR PORT: a process in SRV connects to a listener of SRV
  ip netns exec "$SRV" python3 -c '
import socket,sys
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
l=socket.socket(fam,socket.SOCK_STREAM); l.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)
l.bind((sys.argv[1],int(sys.argv[2]))); l.listen(1)
c=socket.socket(fam,socket.SOCK_STREAM); c.settimeout(1)
try: c.connect((sys.argv[1],int(sys.argv[2]))); sys.exit(0)
except Exception: sys.exit(1)' "$1" "$2"
}
add_link() {  # add_link CLI_IF SRV_IF NET: a new veth pair, CLI .1 and SRV .2 on 10.NET.0.0/24
  ip link add "$1" netns "$CLI" type veth peer name "$2" netns "$SRV"
  ip -n "$CLI" addr add "10.$3.0.1/24" dev "$1" && ip -n "$SRV" addr add "10.$3.0.2/24" dev "$2"
  ip -n "$CLI" link set "$1" up && ip -n "$SRV" link set "$2" up
}

ip netns add "$CLI" && ip netns add "$SRV" || { echo "cannot create namespaces"; exit 2; }
for ns in "$CLI" "$SRV"; do ip -n "$ns" link set lo up; done
add_link c0 s0 78
ip -n "$SRV" -6 addr add ::1/128 dev lo 2>/dev/null

cat > "$WORK/fw.rules" <<'EOF'
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --dport 9998 -j DROP
-A INPUT -p udp -m udp --dport 9998 -j DROP
-A INPUT -i n+ -p udp -m udp --dport 9997 -j DROP
-A OUTPUT -o lo -p tcp -m tcp --dport 9996 -j DROP
COMMIT
EOF

# 1. Loopback: lo is attached; a local connection meets OUTPUT and INPUT.
local_tcp_ok 127.0.0.1 9998 && pass "without nf2bpf, a local connection to 127.0.0.1:9998 is accepted" ||
  fail "local connection without nf2bpf"
expect 0 "apply" -- in_srv "$BIN" apply "$WORK/fw.rules"
has "attached to lo, s0" "apply attaches to lo as well"
local_tcp_ok 127.0.0.1 9998 && fail "INPUT --dport 9998 DROP must stop a local connection to 127.0.0.1" ||
  pass "local connection to 127.0.0.1:9998 dropped"
local_tcp_ok 10.78.0.2 9998 && fail "INPUT --dport 9998 DROP must stop a local connection to the host's address" ||
  pass "local connection to 10.78.0.2:9998 dropped"
local_tcp_ok ::1 9998 && pass "IPv6 ::1:9998 accepted: iptables rules are IPv4 only (difftest --family 6 covers ::1)" ||
  fail "an IPv4 policy must not drop IPv6 loopback traffic"
local_tcp_ok 127.0.0.1 9996 && fail "OUTPUT -o lo --dport 9996 DROP must stop a local connection" ||
  pass "local connection to 127.0.0.1:9996 dropped by OUTPUT"
local_tcp_ok 127.0.0.1 9999 && pass "local connection to 127.0.0.1:9999 accepted (handshake over lo)" ||
  fail "a local connection no rule drops must pass"
udp_ok 10.78.0.2 9998 && fail "udp 9998 over s0 should be dropped" || pass "udp 9998 over s0 dropped"

# 2. An interface created after apply: its traffic meets no rule, and says so.
add_link n1 n0 79
udp_ok 10.79.0.2 9998 && pass "udp 9998 over n0 (not attached) passes: the hole" || fail "n0 should not be covered yet"
expect 0 "status" -- in_srv "$BIN" status
has "not attached to n0 (up)" "status warns about n0"
LAST=$(in_srv "$BIN" status --format json 2>/dev/null)
python3 -c 'import json,sys; j=json.loads(sys.argv[1]); assert j["unattached"]==["n0"], j["unattached"]' "$LAST" &&
  pass "status json: unattached [n0]" || fail "status json unattached: $LAST"

# 3. Cut-over refuses while n0 is left to no filter, unless it is excluded.
in_srv iptables-restore < "$WORK/fw.rules" || fail "iptables-restore"
expect 1 "apply --cutover --iface s0 with n0 up and uncovered" -- \
  in_srv "$BIN" apply --cutover --iface s0 --backup "$WORK/b.json" "$WORK/fw.rules"
has "cut-over refused: nf2bpf would not be attached to n0 (up)" "the refusal names n0"
[ -e "$WORK/b.json" ] && fail "a refused cut-over must not write a backup" || pass "nothing was cut over"
in_srv iptables -S INPUT | grep -q -- "--dport 9998" && pass "netfilter rules still there" || fail "rules removed"
expect 0 "apply --cutover --iface s0 --exclude-iface n0" -- \
  in_srv "$BIN" apply --cutover --iface s0 --exclude-iface n0 --backup "$WORK/b.json" "$WORK/fw.rules"
expect 0 "status" -- in_srv "$BIN" status
grep -q "not attached to" <<<"$LAST" && fail "an excluded interface is not warned about: $LAST" ||
  pass "status: n0 excluded, no warning"
expect 0 "restore" -- in_srv "$BIN" restore --backup "$WORK/b.json"
expect 0 "apply --iface s0 (n0 neither attached nor excluded)" -- in_srv "$BIN" apply --iface s0 "$WORK/fw.rules"
in_srv iptables -F INPUT; in_srv iptables -F OUTPUT

# 4. attach --follow covers n0 at once, then each interface as it appears.
add_link n3 n2 80
ip netns exec "$SRV" "$BIN" attach --follow >"$WORK/follow.log" 2>&1 &
BG+=($!)
for _ in $(seq 50); do grep -q "attached to n2" "$WORK/follow.log" && break; sleep 0.1; done
grep -q "attached to n0" "$WORK/follow.log" && pass "follow: attached to n0 at start" ||
  { fail "follow did not attach n0"; cat "$WORK/follow.log"; }
udp_ok 10.79.0.2 9998 && fail "udp 9998 over n0 should be dropped once covered" || pass "udp 9998 over n0 dropped"
udp_ok 10.79.0.2 9997 && fail "udp 9997 over n0 (-i n+) should be dropped" || pass "udp 9997 over n0 dropped (-i n+)"
udp_ok 10.79.0.2 9999 && pass "udp 9999 over n0 passes" || fail "udp 9999 over n0 should pass"
add_link n5 n4 81
for _ in $(seq 50); do grep -q "attached to n4" "$WORK/follow.log" && break; sleep 0.1; done
grep -q "attached to n4" "$WORK/follow.log" && pass "follow: attached to n4 when it appeared" ||
  { fail "follow did not attach n4"; cat "$WORK/follow.log"; }
udp_ok 10.81.0.2 9997 && fail "udp 9997 over n4 should be dropped" || pass "udp 9997 over n4 dropped"
udp_ok 10.81.0.2 9999 && pass "udp 9999 over n4 passes" || fail "udp 9999 over n4 should pass"
ip -n "$SRV" link del n4
sleep 0.5
kill "${BG[0]}" 2>/dev/null; wait "${BG[0]}" 2>/dev/null
BG=()
LAST=$(in_srv "$BIN" status --format json 2>/dev/null)
python3 -c 'import json,sys; j=json.loads(sys.argv[1]); n=[a["name"] for a in j["attached"]]
assert j["unattached"]==[] and "n0" in n and "n2" in n and "n4" not in n, (n, j["unattached"])' "$LAST" &&
  pass "status: everything up is attached, the deleted n4 forgotten" || fail "status after follow: $LAST"

# 5. One-shot attach, of a policy read from stdin: its source cannot be read
# again, the copy apply kept is used.
expect 0 "apply from stdin" -- sh -c "ip netns exec $SRV $BIN apply - < $WORK/fw.rules"
add_link n7 n6 82
expect 0 "attach" -- in_srv "$BIN" attach
has "attached to n6" "attach covers n6"
udp_ok 10.82.0.2 9998 && fail "udp 9998 over n6 should be dropped" || pass "udp 9998 over n6 dropped"
expect 0 "attach again" -- in_srv "$BIN" attach
has "every up interface is covered already" "nothing left to cover"

# 6. sync notes an interface created since and attaches to it.
add_link n9 n8 83
LAST=$(in_srv "$BIN" sync --state-dir "$WORK/state" --format json "$WORK/fw.rules" 2>/dev/null)
python3 -c 'import json,sys; j=json.loads(sys.argv[1]); assert j["exit"]==0 and j["unattached"]==["n8"] and "n8" in j["interfaces"], j
assert any("n8 (up): attached by this run" in n for n in j["notes"]), j["notes"]' "$LAST" &&
  pass "sync: unattached [n8], attached by the run" || fail "sync and n8: $LAST"
udp_ok 10.83.0.2 9998 && fail "udp 9998 over n8 should be dropped after sync" || pass "udp 9998 over n8 dropped"
expect 0 "unload" -- in_srv "$BIN" unload

[ "$fails" -eq 0 ] && echo "follow: all passed" || echo "follow: $fails failed"
[ "$fails" -eq 0 ]
