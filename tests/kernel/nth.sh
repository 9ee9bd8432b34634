#!/usr/bin/env bash
# -m statistic --mode nth against the kernel: one scripted sequence of UDP
# datagrams (source ports pick the rule: a plain nth rule, an inverted one,
# and a chain's rule reached by two jumps, with datagrams that reach no
# counter in between) into a namespace filtered first by iptables, then by
# nf2bpf with the same rules. Which datagrams arrive must be the same, and a
# reload (iptables-restore again / a new nf2bpf generation) restarts the
# counters in both. Then DNAT by two nth rules: each new connection must be
# translated to the same port by both. Needs root; exits 77 (skipped) otherwise.
#   nth.sh NF2BPF
set -u
BIN=$1
. "$(dirname "$0")/lib.sh" nf2bpf-nth

veth_pair 10.83.1

cat >"$WORK/rules" <<'EOF'
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:CNT - [0:0]
-A INPUT -p udp -m udp --sport 5000:5099 -m statistic --mode nth --every 3 --packet 1 -j DROP
-A INPUT -p udp -m udp --sport 5100:5199 -m statistic --mode nth ! --every 4 --packet 2 -j DROP
-A INPUT -p udp -m udp --sport 5200:5249 -j CNT
-A INPUT -p udp -m udp --sport 5250:5299 -j CNT
-A CNT -m statistic --mode nth --every 5 --packet 3 -j DROP
COMMIT
EOF

# NAT: each datagram to port 9998 is a new connection (its own source
# port); the counters pick which port it is translated to.
cat >"$WORK/nat.rules" <<'EOF'
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d 10.83.1.1/32 -p udp -m udp --dport 9998 -m statistic --mode nth --every 3 --packet 0 -j DNAT --to-destination 10.83.1.1:9997
-A PREROUTING -d 10.83.1.1/32 -p udp -m udp --dport 9998 -m statistic --mode nth --every 2 --packet 1 -j DNAT --to-destination 10.83.1.1:9996
COMMIT
EOF

# The receiver prints, for every datagram that arrived, its index and the
# port it arrived at, until the sender's end marker (from a port no rule tests).
cat >"$WORK/recv.py" <<'EOF'
import select, socket, sys
socks = []
for port in (9996, 9997, 9998, 9999):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("10.83.1.1", port)); socks.append(s)
got = {}
done = False
while not done:
    ready, _, _ = select.select(socks, [], [], 10)
    if not ready: break
    for s in ready:
        d, a = s.recvfrom(100)
        if d == b"end": done = True
        else: got[int(d)] = s.getsockname()[1]
open(sys.argv[1], "w").write(" ".join("%d:%d" % kv for kv in sorted(got.items())) + "\n")
EOF
# 90 datagrams from a fixed pseudo-random choice of source ports (filter
# pass), or to port 9998 from 90 distinct source ports (nat pass).
cat >"$WORK/send.py" <<'EOF'
import random, socket, sys, time
rng = random.Random(12)
ports = [5000, 5001, 5100, 5150, 5200, 5260, 6000]
nat = sys.argv[1] == "nat"
for i in range(90):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("10.83.1.2", 20000 + i if nat else rng.choice(ports)))
    s.sendto(str(i).encode(), ("10.83.1.1", 9998 if nat else 9999)); s.close()
    time.sleep(0.002)
time.sleep(0.2)
e = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); e.bind(("10.83.1.2", 6001))
for _ in range(3): e.sendto(b"end", ("10.83.1.1", 9999)); time.sleep(0.05)
EOF
# One pass of the sequence. filter: prints A/D per datagram; nat: the last
# digit of the port each arrived at (- when lost).
run() {
  ip netns exec "$SRV" python3 "$WORK/recv.py" "$WORK/got" &
  local r=$!
  sleep 0.3
  ip netns exec "$CLI" python3 "$WORK/send.py" "${1:-filter}"
  wait "$r"
  python3 -c '
import sys
got = dict(tuple(map(int, x.split(":"))) for x in open(sys.argv[1]).read().split())
if sys.argv[2] == "nat": print("".join(str(got[i] % 10) if i in got else "-" for i in range(90)))
else: print("".join("A" if i in got else "D" for i in range(90)))' "$WORK/got" "${1:-filter}"
}
# The address's first datagram waits for ARP; resolve it before the passes.
ip netns exec "$CLI" ping -c1 -W1 10.83.1.1 >/dev/null

ip netns exec "$SRV" iptables-restore "$WORK/rules" || { echo "iptables-restore failed"; exit 2; }
K1=$(run)
ip netns exec "$SRV" iptables-restore "$WORK/rules"
K2=$(run)
ip netns exec "$SRV" nft flush ruleset
ip netns exec "$SRV" iptables-restore "$WORK/nat.rules" || { echo "iptables-restore (nat) failed"; exit 2; }
KN=$(run nat)
ip netns exec "$SRV" nft flush ruleset
expect 0 "apply the same rules with nf2bpf" -- ip netns exec "$SRV" "$BIN" apply --iface s0 "$WORK/rules"
has "5 rules (5 exact" "every rule translates exactly"
N1=$(run)
expect 0 "apply them again (a new generation)" -- ip netns exec "$SRV" "$BIN" apply --iface s0 "$WORK/rules"
N2=$(run)
expect 0 "apply the nat rules with nf2bpf" -- ip netns exec "$SRV" "$BIN" apply --iface s0 "$WORK/nat.rules"
has "2 rules (2 exact" "the nat rules translate exactly"
NN=$(run nat)

drops=$(tr -cd D <<<"$K1" | wc -c)
echo "kernel:  $K1 ($drops dropped)"
echo "nf2bpf:  $N1"
if [ "$drops" -gt 10 ] && [ "$drops" -lt 80 ]; then pass "the kernel drops some datagrams and passes others ($drops of 90 dropped)"; else fail "the sequence does not exercise the rules ($drops of 90 dropped)"; fi
if [ "$K1" = "$N1" ]; then pass "nf2bpf passes and drops the same datagrams as the kernel"; else fail "sequences differ:"; echo "    kernel $K1"; echo "    nf2bpf $N1"; fi
if [ "$K1" = "$K2" ]; then pass "iptables-restore restarts the kernel's counters"; else fail "the kernel's second pass differs: $K2"; fi
if [ "$K2" = "$N2" ]; then pass "after a reload, nf2bpf's new generation gives the kernel's sequence again"; else fail "after a reload: kernel $K2, nf2bpf $N2"; fi

echo "kernel nat: $KN"
echo "nf2bpf nat: $NN"
n() { tr -cd "$1" <<<"$KN" | wc -c; }
if [ "$(n 6)" -gt 20 ] && [ "$(n 7)" -gt 20 ] && [ "$(n 8)" -gt 20 ]; then
  pass "the kernel spreads the connections over the three ports ($(n 7) / $(n 6) / $(n 8))"
else
  fail "the nat pass does not exercise both counters: $KN"
fi
if [ "$KN" = "$NN" ]; then pass "nf2bpf's DNAT picks the kernel's port for every connection"; else fail "nat sequences differ"; fi

echo "nth: $fails failed"
[ "$fails" -eq 0 ]
