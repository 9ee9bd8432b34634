#!/usr/bin/env bash
# nft `numgen random mod 3 vmap { ... goto ... }` (kube-proxy nftables'
# endpoint choice) against the kernel: 150 UDP datagrams, each a new
# connection (its own source port), to one service port, DNATed by the
# chosen element to one of three ports. Random on both sides, so not packet
# for packet: every backend must get connections, none an unlikely share
# (more than 60%: below 1e-9 for a fair draw), and the kernel's own spread is
# printed beside nf2bpf's. Then round robin, `numgen inc mod 3` (a vmap) and
# `numgen inc mod 2 offset 1` (a DNAT address map), packet for packet: 12
# connections to each service port, the same backend sequence as the
# kernel's. Needs root; exits 77 (skipped) otherwise.
#   numgen.sh NF2BPF
set -u
BIN=$1
. "$(dirname "$0")/lib.sh" nf2bpf-numgen

veth_pair 10.84.1
ip -n "$SRV" addr add 10.84.1.3/24 dev s0

cat >"$WORK/rules.nft" <<'EOF'
table ip kp {
	chain svc {
		numgen random mod 3 vmap { 0 : goto ep0, 1 : goto ep1, 2 : goto ep2 }
	}
	chain ep0 {
		meta l4proto udp dnat to 10.84.1.1:9990
	}
	chain ep1 {
		meta l4proto udp dnat to 10.84.1.1:9991
	}
	chain ep2 {
		meta l4proto udp dnat to 10.84.1.1:9992
	}
	chain rr {
		numgen inc mod 3 vmap { 0 : goto ep0, 1 : goto ep1, 2 : goto ep2 }
	}
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr 10.84.1.1 udp dport 9998 jump svc
		ip daddr 10.84.1.1 udp dport 9997 jump rr
		ip daddr 10.84.1.1 udp dport 9996 dnat to numgen inc mod 2 offset 1 map { 1 : 10.84.1.1, 2 : 10.84.1.3 }
	}
}
EOF

cat >"$WORK/recv.py" <<'EOF'
import select, socket, sys
socks = []
for port in (9990, 9991, 9992, 9998, 9999):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("10.84.1.1", port)); socks.append(s)
count = {}
done = False
while not done:
    ready, _, _ = select.select(socks, [], [], 10)
    if not ready: break
    for s in ready:
        d, a = s.recvfrom(100)
        if d == b"end": done = True
        else:
            p = s.getsockname()[1]
            count[p] = count.get(p, 0) + 1
print(" ".join("%d:%d" % (p, count.get(p, 0)) for p in (9990, 9991, 9992, 9998)))
EOF
cat >"$WORK/send.py" <<'EOF'
import socket, time
for i in range(150):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("10.84.1.2", 21000 + i))
    s.sendto(str(i).encode(), ("10.84.1.1", 9998)); s.close()
    time.sleep(0.002)
time.sleep(0.2)
e = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); e.bind(("10.84.1.2", 6001))
for _ in range(3): e.sendto(b"end", ("10.84.1.1", 9999)); time.sleep(0.05)
EOF
run() {
  ip netns exec "$SRV" python3 "$WORK/recv.py" >"$WORK/got" &
  local r=$!
  sleep 0.3
  ip netns exec "$CLI" python3 "$WORK/send.py"
  wait "$r"
  cat "$WORK/got"
}
# Every backend has connections, none more than 60% (90 of 150), none lost
# or left untranslated.
fair() {
  python3 -c '
import sys
c = dict(tuple(map(int, x.split(":"))) for x in sys.argv[1].split())
ok = all(0 < c[p] <= 90 for p in (9990, 9991, 9992)) and c[9998] == 0 and sum(c.values()) == 150
sys.exit(0 if ok else 1)' "$1"
}
ip netns exec "$CLI" ping -c1 -W1 10.84.1.1 >/dev/null

ip netns exec "$SRV" nft -f "$WORK/rules.nft" || { echo "nft -f failed"; exit 2; }
K=$(run)
ip netns exec "$SRV" nft flush ruleset
expect 0 "apply the same ruleset with nf2bpf" -- ip netns exec "$SRV" "$BIN" apply --iface s0 "$WORK/rules.nft"
has "(7 exact, 1 approximate" "the numgen vmap translates, approximately (a different random source)"
N=$(run)
echo "kernel:  $K"
echo "nf2bpf:  $N"
fair "$K" && pass "the kernel spreads the connections over the three backends" || fail "the kernel's spread: $K"
fair "$N" && pass "nf2bpf spreads them over the three backends too, none lost" || fail "nf2bpf's spread: $N"

# Round robin: which backend each connection reached (0-2: the vmap's
# ports; a, b: the map's addresses).
cat >"$WORK/rr-recv.py" <<'EOF'
import select, socket
socks = []
for addr, port in [("10.84.1.1", p) for p in (9990, 9991, 9992, 9996, 9997, 9999)] + [("10.84.1.3", 9996)]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, port)); socks.append(s)
got = {}
done = False
while not done:
    ready, _, _ = select.select(socks, [], [], 10)
    if not ready: break
    for s in ready:
        d, a = s.recvfrom(100)
        if d == b"end": done = True
        else:
            addr, port = s.getsockname()
            got[int(d)] = {9990: "0", 9991: "1", 9992: "2", 9997: "?"}.get(port, "a" if addr == "10.84.1.1" else "b")
print("".join(got.get(i, "-") for i in range(24)))
EOF
cat >"$WORK/rr-send.py" <<'EOF'
import socket, time
for i in range(24):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("10.84.1.2", 22000 + i))
    s.sendto(str(i).encode(), ("10.84.1.1", 9997 if i < 12 else 9996)); s.close()
    time.sleep(0.002)
time.sleep(0.2)
e = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); e.bind(("10.84.1.2", 6002))
for _ in range(3): e.sendto(b"end", ("10.84.1.1", 9999)); time.sleep(0.05)
EOF
rr() {
  ip netns exec "$SRV" python3 "$WORK/rr-recv.py" >"$WORK/rr" &
  local r=$!
  sleep 0.3
  ip netns exec "$CLI" python3 "$WORK/rr-send.py"
  wait "$r"
  cat "$WORK/rr"
}
ip netns exec "$SRV" "$BIN" unload >/dev/null
ip netns exec "$SRV" nft -f "$WORK/rules.nft" || { echo "nft -f failed"; exit 2; }
KR=$(rr)
ip netns exec "$SRV" nft flush ruleset
expect 0 "apply it again with nf2bpf (the round robin counters start again)" -- ip netns exec "$SRV" "$BIN" apply --iface s0 "$WORK/rules.nft"
NR=$(rr)
echo "kernel round robin:  $KR"
echo "nf2bpf round robin:  $NR"
[ "$KR" = "012012012012abababababab" ] && pass "the kernel's round robin starts at the first element" || fail "unexpected kernel round robin $KR"
[ "$KR" = "$NR" ] && pass "nf2bpf's round robin is the kernel's, connection for connection" || fail "round robin: kernel $KR, nf2bpf $NR"

echo "numgen: $fails failed"
[ "$fails" -eq 0 ]
