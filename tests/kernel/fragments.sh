#!/usr/bin/env bash
# Fragmented datagrams against the kernel: UDP datagrams of 3,000 bytes,
# which the client's stack sends as three fragments over a 1,500-byte MTU,
# into a namespace whose rules track connections (so the kernel reassembles
# before its rules and NAT see a datagram), first under iptables, then under
# nf2bpf with the same rules. Which datagrams the server's sockets receive
# must be the same. The later fragments carry no ports: nf2bpf gives them
# the first fragment's outcome, and the addresses its DNAT gave it.
#   9001  accepted            9002  dropped (the policy)   9999  the sender's end
#   9003  DNAT to 10.88.1.5 (a second address of the server) port 9001
# And IPv6 (fd88::/64, the fragment header's identification).
# Needs root; exits 77 otherwise.
#   fragments.sh NF2BPF
set -u
BIN=$1
. "$(dirname "$0")/lib.sh" nf2bpf-frag

veth_pair 10.88.1
ip -n "$SRV" addr add 10.88.1.5/24 dev s0
ip -n "$CLI" addr add fd88::2/64 dev c0 nodad
ip -n "$SRV" addr add fd88::1/64 dev s0 nodad
cat >"$WORK/rules" <<'RULES'
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d 10.88.1.1/32 -p udp -m udp --dport 9003 -j DNAT --to-destination 10.88.1.5:9001
COMMIT
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p icmp -j ACCEPT
-A INPUT -p udp -m udp --dport 9001 -j ACCEPT
-A INPUT -p udp -m udp --dport 9999 -j ACCEPT
COMMIT
RULES
cat >"$WORK/rules6" <<'RULES'
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p ipv6-icmp -j ACCEPT
-A INPUT -p udp -m udp --dport 9001 -j ACCEPT
-A INPUT -p udp -m udp --dport 9999 -j ACCEPT
COMMIT
RULES

# (datagram size, port, IPv6): small ones arrive whole, big ones in fragments.
cat >"$WORK/send.py" <<'PY'
import socket, sys, time
six = sys.argv[1] == "6"
dst = "fd88::1" if six else "10.88.1.1"
script = [(100, 9001), (3000, 9001), (3000, 9002), (100, 9002), (3000, 9003), (3000, 9001)]
s = socket.socket(socket.AF_INET6 if six else socket.AF_INET, socket.SOCK_DGRAM)
if not six:  # fragment locally rather than refuse: no DF
    s.setsockopt(socket.IPPROTO_IP, 10, 0)  # IP_MTU_DISCOVER = IP_PMTUDISC_DONT
else:
    s.setsockopt(socket.IPPROTO_IPV6, 23, 0)  # IPV6_MTU_DISCOVER = IPV6_PMTUDISC_DONT
n = 0
for size, port in script:
    msg = (str(n) + " ").encode()
    s.sendto(msg + b"x" * (size - len(msg)), (dst, port)); n += 1
    time.sleep(0.05)
time.sleep(0.2)
for _ in range(3): s.sendto(b"end", (dst, 9999)); time.sleep(0.05)
print(n)
PY
fam=4
run() {  # the A/D string of one pass
  udp_recv "$SRV" "$WORK/got" 9001 9002 9999
  local n
  n=$(ip netns exec "$CLI" python3 "$WORK/send.py" "$fam")
  wait "$RECV"
  arrivals "$WORK/got" "$n"
}
ip netns exec "$CLI" ping -c1 -W1 10.88.1.1 >/dev/null

kernel_then_nf2bpf "$WORK/rules"
want=AADDAA
if [ "$K" = "$want" ]; then pass "IPv4: the kernel reassembles, then judges each datagram once"; else fail "IPv4: the kernel's sequence is not $want"; fi
if [ "$K" = "$N" ]; then pass "IPv4: nf2bpf passes and drops the same datagrams as the kernel"; else fail "IPv4: the sequences differ"; fi
in_srv "$BIN" unload >/dev/null 2>&1

fam=6
export UDP_RECV_IPV6=1
kernel6_then_nf2bpf() {
  in_srv ip6tables-restore "$WORK/rules6" || { echo "ip6tables-restore failed"; exit 2; }
  K=$(run)
  in_srv ip6tables-restore <<<$'*filter\nCOMMIT'
  expect 0 "apply the same rules with nf2bpf (IPv6)" -- in_srv "$BIN" apply --from ip6tables --iface s0 "$WORK/rules6"
  N=$(run)
  echo "kernel: $K"
  echo "nf2bpf: $N"
}
kernel6_then_nf2bpf
want=AADDDA
if [ "$K" = "$want" ]; then pass "IPv6: the kernel reassembles, then judges each datagram once"; else fail "IPv6: the kernel's sequence is not $want"; fi
if [ "$K" = "$N" ]; then pass "IPv6: nf2bpf passes and drops the same datagrams as the kernel"; else fail "IPv6: the sequences differ"; fi
echo "fragments: $fails failed"
[ "$fails" -eq 0 ]
