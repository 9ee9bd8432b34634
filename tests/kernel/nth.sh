#!/usr/bin/env bash
# -m statistic --mode nth against the kernel: one scripted sequence of UDP
# datagrams (source ports pick the rule: a plain nth rule, an inverted one,
# and a chain's rule reached by two jumps, with datagrams that reach no
# counter in between) into a namespace filtered first by iptables, then by
# nf2bpf with the same rules. Which datagrams arrive must be the same, and a
# reload (iptables-restore again / a new nf2bpf generation) restarts the
# counters in both. Needs root; exits 77 (skipped) otherwise.
#   nth.sh NF2BPF
set -u
BIN=$1
. "$(dirname "$0")/lib.sh" nf2bpf-nth

ip netns add "$CLI" && ip netns add "$SRV" || { echo "cannot create namespaces"; exit 2; }
ip link add c0 netns "$CLI" type veth peer name s0 netns "$SRV"
for ns in "$CLI" "$SRV"; do ip -n "$ns" link set lo up; done
ip -n "$CLI" addr add 10.83.1.2/24 dev c0 && ip -n "$CLI" link set c0 up
ip -n "$SRV" addr add 10.83.1.1/24 dev s0 && ip -n "$SRV" link set s0 up

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

# The receiver prints the index of every datagram that arrived, until the
# sender's end marker (from a port no rule tests).
cat >"$WORK/recv.py" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.83.1.1", 9999)); s.settimeout(10)
got = []
while True:
    d, a = s.recvfrom(100)
    if d == b"end": break
    got.append(int(d))
open(sys.argv[1], "w").write(" ".join(map(str, got)) + "\n")
EOF
# 90 datagrams from a fixed pseudo-random choice of source ports.
cat >"$WORK/send.py" <<'EOF'
import random, socket, time
rng = random.Random(12)
ports = [5000, 5001, 5100, 5150, 5200, 5260, 6000]
for i in range(90):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("10.83.1.2", rng.choice(ports)))
    s.sendto(str(i).encode(), ("10.83.1.1", 9999)); s.close()
    time.sleep(0.002)
time.sleep(0.2)
e = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); e.bind(("10.83.1.2", 6001))
for _ in range(3): e.sendto(b"end", ("10.83.1.1", 9999)); time.sleep(0.05)
EOF
# One pass of the sequence; prints A/D per datagram.
run() {
  ip netns exec "$SRV" python3 "$WORK/recv.py" "$WORK/got" &
  local r=$!
  sleep 0.3
  ip netns exec "$CLI" python3 "$WORK/send.py"
  wait "$r"
  python3 -c 'import sys; got = set(map(int, open(sys.argv[1]).read().split())); print("".join("A" if i in got else "D" for i in range(90)))' "$WORK/got"
}
# The address's first datagram waits for ARP; resolve it before the passes.
ip netns exec "$CLI" ping -c1 -W1 10.83.1.1 >/dev/null

ip netns exec "$SRV" iptables-restore "$WORK/rules" || { echo "iptables-restore failed"; exit 2; }
K1=$(run)
ip netns exec "$SRV" iptables-restore "$WORK/rules"
K2=$(run)
ip netns exec "$SRV" nft flush ruleset
expect 0 "apply the same rules with nf2bpf" -- ip netns exec "$SRV" "$BIN" apply --iface s0 "$WORK/rules"
has "5 rules (5 exact" "every rule translates exactly"
N1=$(run)
expect 0 "apply them again (a new generation)" -- ip netns exec "$SRV" "$BIN" apply --iface s0 "$WORK/rules"
N2=$(run)

drops=$(tr -cd D <<<"$K1" | wc -c)
echo "kernel:  $K1 ($drops dropped)"
echo "nf2bpf:  $N1"
if [ "$drops" -gt 10 ] && [ "$drops" -lt 80 ]; then pass "the kernel drops some datagrams and passes others ($drops of 90 dropped)"; else fail "the sequence does not exercise the rules ($drops of 90 dropped)"; fi
if [ "$K1" = "$N1" ]; then pass "nf2bpf passes and drops the same datagrams as the kernel"; else fail "sequences differ:"; echo "    kernel $K1"; echo "    nf2bpf $N1"; fi
if [ "$K1" = "$K2" ]; then pass "iptables-restore restarts the kernel's counters"; else fail "the kernel's second pass differs: $K2"; fi
if [ "$K2" = "$N2" ]; then pass "after a reload, nf2bpf's new generation gives the kernel's sequence again"; else fail "after a reload: kernel $K2, nf2bpf $N2"; fi

echo "nth: $fails failed"
[ "$fails" -eq 0 ]
