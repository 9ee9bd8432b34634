#!/usr/bin/env bash
# ipset matches against the kernel: hash:ip,port sets whose elements name an
# ICMP type (as `ipset save` writes them: icmp:echo-request, icmp:8/0) and a
# negated match on a two-dimensional set, with pings and UDP datagrams from
# three client addresses, first through iptables with the sets loaded by
# ipset, then through nf2bpf with the same files. The same packets must
# arrive. Needs root; exits 77 otherwise.
#   ipset.sh NF2BPF
set -u
BIN=$1
. "$(dirname "$0")/lib.sh" nf2bpf-ipset

veth_pair 10.87.1
for a in 10.87.1.3 10.87.1.5; do ip -n "$CLI" addr add "$a/24" dev c0; done

cat >"$WORK/sets" <<'EOF'
create pp hash:ip,port family inet hashsize 1024 maxelem 65536
add pp 10.87.1.2,icmp:echo-request
add pp 10.87.1.3,icmp:8/0
add pp 10.87.1.3,udp:9001
create pp2 hash:ip,port family inet hashsize 1024 maxelem 65536
add pp2 10.87.1.2,udp:9002
add pp2 10.87.1.5,udp:9002
EOF
cat >"$WORK/rules" <<'EOF'
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m set --match-set pp src,dst -j DROP
-A INPUT -p udp -m set ! --match-set pp2 src,dst -j DROP
COMMIT
EOF
cat >"$WORK/send.py" <<'EOF'
import socket, time
script = [("10.87.1.3", 9001), ("10.87.1.2", 9002), ("10.87.1.5", 9002), ("10.87.1.3", 9002), ("10.87.1.2", 9003)]
for i, (src, port) in enumerate(script):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((src, 0))
    s.sendto(str(i).encode(), ("10.87.1.1", port)); s.close()
time.sleep(0.2)
e = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); e.bind(("10.87.1.2", 0))  # in pp2: passes
for _ in range(3): e.sendto(b"end", ("10.87.1.1", 9002)); time.sleep(0.05)
EOF
run() {  # pings from .2, .3, .5 (A/D), then the datagrams
  local out=""
  for src in 10.87.1.2 10.87.1.3 10.87.1.5; do
    if ip netns exec "$CLI" ping -c1 -W0.5 -I "$src" 10.87.1.1 >/dev/null 2>&1; then out+=A; else out+=D; fi
  done
  udp_recv "$SRV" "$WORK/got" 9001 9002 9003
  ip netns exec "$CLI" python3 "$WORK/send.py"
  wait "$RECV"
  echo "$out $(arrivals "$WORK/got" 5)"
}
# Resolve the client addresses first (the first ping of each may be lost to ARP otherwise).
for src in 10.87.1.2 10.87.1.3 10.87.1.5; do ip netns exec "$CLI" ping -c1 -W1 -I "$src" 10.87.1.1 >/dev/null; done

in_srv ipset restore <"$WORK/sets" || { echo "ipset restore failed"; exit 2; }
in_srv iptables-restore <"$WORK/rules" || { echo "iptables-restore failed"; exit 2; }
K=$(run)
in_srv nft flush ruleset
expect 0 "apply the same rules and sets with nf2bpf" -- in_srv "$BIN" apply --iface s0 --ipsets "$WORK/sets" "$WORK/rules"
N=$(run)
echo "kernel: $K"
echo "nf2bpf: $N"
# Pings: .2 (icmp:echo-request) and .3 (icmp:8/0) are in pp; datagrams: .3:9001 in pp;
# .2 and .5 to 9002 in pp2; .3 to 9002 and .2 to 9003 not.
if [ "$K" = "DDA DAADD" ]; then pass "the kernel's outcome is the one the sets predict"; else fail "unexpected kernel outcome $K"; fi
if [ "$K" = "$N" ]; then pass "nf2bpf passes and drops the same packets as the kernel"; else fail "outcomes differ"; fi

echo "ipset: $fails failed"
[ "$fails" -eq 0 ]
