#!/usr/bin/env bash
# NAT end to end with real sockets: a client, a router running nf2bpf with
# DNAT (a port forward) and MASQUERADE, and a server. TCP through both
# translations, a connection that keeps its translation across a policy swap,
# `nf2bpf conntrack` (text and JSON) listing what was translated, and the
# router's own connections through nat OUTPUT (DNAT routed out of another
# device and masqueraded there, also to its own address; REDIRECT to a local
# port), and MASQUERADE out of a device without an address. Needs
# root; exits 77 (skipped) otherwise.
#   nat.sh NF2BPF
set -u
BIN=$1
. "$(dirname "$0")/lib.sh" nf2bpf-nat
RTR=$TAG-rtr
HOST=$TAG-host
trap 'cleanup; ip netns del "$RTR" 2>/dev/null; ip netns del "$HOST" 2>/dev/null' EXIT INT TERM

ip netns add "$CLI" && ip netns add "$SRV" && ip netns add "$RTR" || { echo "cannot create namespaces"; exit 2; }
ip link add c0 netns "$CLI" type veth peer name r0 netns "$RTR"
ip link add r1 netns "$RTR" type veth peer name s0 netns "$SRV"
for ns in "$CLI" "$SRV" "$RTR"; do ip -n "$ns" link set lo up; done
ip -n "$CLI" addr add 10.81.1.2/24 dev c0 && ip -n "$CLI" link set c0 up
ip -n "$CLI" route add default via 10.81.1.1
ip -n "$RTR" addr add 10.81.1.1/24 dev r0 && ip -n "$RTR" addr add 10.81.2.1/24 dev r1
ip -n "$RTR" link set r0 up && ip -n "$RTR" link set r1 up
ip netns exec "$RTR" sysctl -qw net.ipv4.ip_forward=1
# A service range the router's first route sends out of r0, via the client
# as its gateway (TC egress sees a packet after its next hop's neighbour
# resolution: see docs/nat-design.md).
ip -n "$RTR" route add 10.96.0.0/12 via 10.81.1.2 dev r0
# The server has no route back to the client's network: only MASQUERADE gets its answers home.
ip -n "$SRV" addr add 10.81.2.2/24 dev s0 && ip -n "$SRV" link set s0 up

rules() {  # $1: the filter table's extra rule
  cat <<EOF
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d 10.81.1.1/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.81.2.2:8080
-A OUTPUT -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.81.2.2:8080
-A OUTPUT -d 10.96.0.11/32 -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 9090
-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -p tcp -m tcp --dport 8081 -j DNAT --to-destination 10.81.2.2:8080
-A POSTROUTING -o r1 -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
$1
COMMIT
EOF
}
rules "-A FORWARD -p udp -j DROP" >"$WORK/a.rules"
rules "-A FORWARD -p udp --dport 9 -j DROP" >"$WORK/b.rules"

# A server that reports the peer it sees, then echoes lines until EOF.
cat >"$WORK/srv.py" <<'EOF'
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.81.2.2", 8080)); s.listen(4); s.settimeout(20)
for _ in range(4):
    c, a = s.accept()
    f = c.makefile("rw")
    f.write("peer %s\n" % a[0]); f.flush()
    for line in f:
        f.write(line); f.flush()
    c.close()
EOF
ip netns exec "$SRV" python3 "$WORK/srv.py" &
BG+=($!)
sleep 0.3

expect 1 "conntrack before any apply says nothing is loaded" -- ip netns exec "$RTR" "$BIN" conntrack
expect 0 "apply DNAT + MASQUERADE on the router" -- ip netns exec "$RTR" "$BIN" apply --iface r0 --iface r1 "$WORK/a.rules"
has "6 rules (6 exact" "the nat rules translate exactly"

# One connection to the router's port 80: the server sees the router's
# address (MASQUERADE), the client talks to 10.81.1.1:80 (DNAT, reversed).
expect 0 "TCP through DNAT and MASQUERADE" -- ip netns exec "$CLI" python3 -c '
import socket
s = socket.create_connection(("10.81.1.1", 80), timeout=3)
f = s.makefile("rw")
print(f.readline().strip())
f.write("hello\n"); f.flush(); print(f.readline().strip())'
has "peer 10.81.2.1" "the server sees the masqueraded source"
has "hello" "the answer comes back through the reverse translation"

# A connection open across a policy swap keeps its translation.
mkfifo "$WORK/in"
ip netns exec "$CLI" python3 -c '
import socket, sys
s = socket.create_connection(("10.81.1.1", 80), timeout=5)
f = s.makefile("rw")
print(f.readline().strip(), flush=True)
for line in open(sys.argv[1]):
    f.write(line); f.flush(); print(f.readline().strip(), flush=True)' "$WORK/in" >"$WORK/out" &
BG+=($!)
exec 3>"$WORK/in"
echo before >&3
sleep 0.5
expect 0 "conntrack lists the translated connection" -- ip netns exec "$RTR" "$BIN" conntrack
has "src=10.81.1.2 dst=10.81.1.1" "the original tuple is the client's"
has "src=10.81.2.2 dst=10.81.2.1 sport=8080" "the reply tuple is the server's answer to the router"
has "[SNAT] [DNAT]" "both translations are shown"
expect 0 "conntrack --format json" -- ip netns exec "$RTR" "$BIN" conntrack --format json
if python3 -c 'import json,sys; d=json.load(sys.stdin); c=[x for x in d["connections"] if x["dnat"]]; assert c and c[0]["reply"]["src"]=="10.81.2.2" and c[0]["snat"]' <<<"$LAST"; then
  pass "the JSON document lists it with both translations"
else
  fail "the JSON document does not list the translated connection"
fi
expect 0 "status counts the connections" -- ip netns exec "$RTR" "$BIN" status
has "conntrack: 2 connections" "status counts connections, not their alias entries"
expect 0 "apply a new generation while the connection is open" -- ip netns exec "$RTR" "$BIN" apply --iface r0 --iface r1 "$WORK/b.rules"
echo after >&3
sleep 0.5
exec 3>&-
wait "${BG[-1]}"
if grep -qx after "$WORK/out" && grep -qx before "$WORK/out"; then
  pass "the open connection keeps its translation after the swap"
else
  fail "the open connection broke across the swap:"
  sed 's/^/    /' "$WORK/out"
fi

# The router's own connection to a service address: nat OUTPUT's DNAT
# sends it out of r1 instead of r0, where POSTROUTING masquerades it (the
# server has no route to the address the first route chose, 10.81.1.1).
expect 0 "a local connection through nat OUTPUT DNAT, routed again" -- ip netns exec "$RTR" python3 -c '
import socket
s = socket.create_connection(("10.96.0.10", 80), timeout=3)
f = s.makefile("rw")
print(f.readline().strip())
f.write("local\n"); f.flush(); print(f.readline().strip())
print("peername", s.getpeername()[0])'
has "peer 10.81.2.1" "the server sees the address of the device the new route leaves by"
has "local" "the answer comes back to the local socket"
has "peername 10.96.0.10" "the local socket still sees the address it connected to"
# The router's own connection to its own address, DNATed to the server
# (Docker's published port reached from the host): the answers get the
# router's address back as their source (handed to lo, not dropped as
# martians).
expect 0 "a local connection to this host's own address through nat OUTPUT DNAT" -- ip netns exec "$RTR" python3 -c '
import socket
s = socket.create_connection(("10.81.1.1", 8081), timeout=3)
f = s.makefile("rw")
print(f.readline().strip())
f.write("to myself\n"); f.flush(); print(f.readline().strip())
print("peername %s:%d" % s.getpeername())'
has "peer 10.81.2.1" "the server sees the masqueraded address"
has "to myself" "the answers reach the local socket"
has "peername 10.81.1.1:8081" "the local socket still sees its own address and port"
# REDIRECT at OUTPUT: to this host over lo.
ip netns exec "$RTR" python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 9090)); s.listen(1); s.settimeout(10)
c, a = s.accept(); c.sendall(("redirected, port %d\n" % c.getsockname()[1]).encode()); c.close()' &
BG+=($!)
sleep 0.3
expect 0 "a local connection through nat OUTPUT REDIRECT" -- ip netns exec "$RTR" python3 -c '
import socket
s = socket.create_connection(("10.96.0.11", 80), timeout=3)
print(s.makefile().readline().strip())'
has "redirected, port 9090" "the connection reaches the local port REDIRECT names"

# MASQUERADE out of a device without an address on a host that does not
# forward (bpf_fib_lookup answers nothing there): the kernel's
# inet_select_addr takes another device's address. The host's own datagram
# leaves by o0 (no address) to the server, which prints its source.
ip netns add "$HOST"
ip -n "$HOST" link set lo up
ip -n "$HOST" link add d0 type veth peer name d0p
ip -n "$HOST" addr add 10.82.1.1/24 dev d0 && ip -n "$HOST" link set d0 up
ip link add o0 netns "$HOST" type veth peer name m0 netns "$SRV"
ip -n "$HOST" link set o0 up
ip -n "$SRV" addr add 10.82.2.2/24 dev m0 && ip -n "$SRV" link set m0 up
ip -n "$HOST" route add 10.82.2.0/24 dev o0
cat >"$WORK/masq.rules" <<'EOF'
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o o0 -j MASQUERADE
COMMIT
EOF
masq_source() {
  ip netns exec "$SRV" python3 -c '
import socket
r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); r.bind(("10.82.2.2", 5000)); r.settimeout(3)
try: print(r.recvfrom(10)[1][0])
except OSError: print("nothing")' &
  local r=$!
  sleep 0.3
  ip netns exec "$HOST" python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("10.82.1.1", 0)); s.sendto(b"x", ("10.82.2.2", 5000))'
  wait "$r"
}
ip netns exec "$HOST" iptables-restore "$WORK/masq.rules"
KM=$(masq_source)
ip netns exec "$HOST" iptables -t nat -F
expect 0 "apply MASQUERADE on a host that does not forward" -- ip netns exec "$HOST" "$BIN" apply --iface d0 --iface o0 "$WORK/masq.rules"
NM=$(masq_source)
[ "$KM" = 10.82.1.1 ] && pass "the kernel masquerades to d0's address" || fail "kernel masquerade source: $KM"
[ "$NM" = "$KM" ] && pass "nf2bpf masquerades to the same address" || fail "masquerade source: kernel $KM, nf2bpf $NM"

echo "nat: $fails failed"
[ "$fails" -eq 0 ]
