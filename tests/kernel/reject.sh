#!/usr/bin/env bash
# REJECT's answers under the kernel's ICMP rate limits: a client sends bursts
# of 20 UDP datagrams to a port a rule rejects, and counts the ICMP port
# unreachables it gets back, first from the kernel's REJECT (nft), then from
# nf2bpf's with the same rules (bpf/lib/reject.h): per peer 6 in a burst
# (net.ipv4.icmp_ratelimit 1 s, net.ipv6.icmp.ratelimit 100 ms), all 20
# with the limit set to 0 (read at apply), and all 20 again for a type left
# out of the ratemasks; an IPv6 peer a wider prefix routes gets more: every
# count as the kernel's.
# (The random rejects of kernel-diff-reject-* compare the answers' bytes.)
#   reject.sh NF2BPF SRCDIR
BIN=$1
. "$(dirname "$0")/lib.sh" nf2bpf-rj
veth_pair 10.84.1
ip -n "$CLI" -6 addr add fd00:84:1::2/64 dev c0 nodad
ip -n "$SRV" -6 addr add fd00:84:1::1/64 dev s0 nodad
cat >"$WORK/rules.nft" <<'EOF'
table inet rj {
	chain input {
		type filter hook input priority 0; policy accept;
		udp dport 5000 reject
	}
}
EOF

# count FAMILY: ICMP destination unreachables the client gets for 20
# datagrams sent at once (a raw socket sees them).
count() {
  ip netns exec "$CLI" python3 -c "
import select, socket, time
v4 = '$1' == '4'
af = socket.AF_INET if v4 else socket.AF_INET6
raw = socket.socket(af, socket.SOCK_RAW, socket.IPPROTO_ICMP if v4 else socket.IPPROTO_ICMPV6)
s = socket.socket(af, socket.SOCK_DGRAM)
for _ in range(20): s.sendto(b'x', ('10.84.1.1' if v4 else 'fd00:84:1::1', 5000))
n, end = 0, time.time() + 0.5
while time.time() < end:
    if select.select([raw], [], [], max(0, end - time.time()))[0]:
        d = raw.recv(2048)
        n += (d[(d[0] & 15) * 4] == 3) if v4 else (d[0] == 1)
print(n)"
}

# compare WHAT: the kernel's counts (both families) then nf2bpf's.
compare() {
  local what=$1 k4 k6 b4 b6
  in_srv nft -f "$WORK/rules.nft" || { fail "nft -f"; return; }
  k4=$(count 4) k6=$(count 6)
  in_srv nft delete table inet rj
  if ! out=$(in_srv "$BIN" apply --iface s0 "$WORK/rules.nft" 2>&1); then
    fail "$what: nf2bpf apply"
    echo "$out" | sed 's/^/    /'
    return
  fi
  b4=$(count 4) b6=$(count 6)
  in_srv "$BIN" unload >/dev/null 2>&1 # (its buckets go: the next apply's start full, as a new peer's do)
  if [ "$k4" = "$b4" ] && [ "$k6" = "$b6" ]; then
    pass "$what: IPv4 $k4 of 20 answered, IPv6 $k6 of 20, by both"
  else
    fail "$what: the kernel answered IPv4 $k4, IPv6 $k6 of 20; nf2bpf IPv4 $b4, IPv6 $b6"
  fi
}

# paced: ICMPv6 errors for 6 datagrams sent at once and 4 more 150 ms apart,
# from fd00:99::2, an address the server reaches by its default route.
paced() {
  ip netns exec "$CLI" python3 -c "
import select, socket, time
raw = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind(('fd00:99::2', 0))
for i in range(10):
    if i >= 6: time.sleep(0.15)
    s.sendto(b'x', ('fd00:84:1::1', 5000))
n, end = 0, time.time() + 0.5
while time.time() < end:
    if select.select([raw], [], [], max(0, end - time.time()))[0]:
        n += raw.recv(2048)[0] == 1
print(n)"
}

compare "default rate limits (6 in a burst a peer)"
# A peer reached by a wider prefix: kernels before commit 0201eedb69b2 give
# it more (icmpv6_xrlim_allow: the limit >> ((128 - plen) >> 5); through the
# default route, 1 s >> 4 = 60 ms, so the 4 paced datagrams are answered too:
# 10), later ones the same 1 s (6); an on-link /64 peer's 248 ms would answer
# 8 either way. With a 1 s limit, nf2bpf must answer as many as the kernel.
in_srv sysctl -qw net.ipv6.icmp.ratelimit=1000
ip -n "$CLI" -6 addr add fd00:99::2/128 dev c0 nodad
ip -n "$SRV" -6 route add default via fd00:84:1::2
in_srv nft -f "$WORK/rules.nft"
k=$(paced)
in_srv nft delete table inet rj
in_srv "$BIN" apply --iface s0 "$WORK/rules.nft" >/dev/null 2>&1 || fail "nf2bpf apply (paced)"
b=$(paced)
in_srv "$BIN" unload >/dev/null 2>&1
if [ "$k" = "$b" ] && { [ "$k" = 10 ] || [ "$k" = 6 ]; }; then
  pass "IPv6 peer behind the default route: $k of 10 answered by both"
else
  fail "IPv6 peer behind the default route: the kernel answered $k of 10 (10 or 6 expected), nf2bpf $b"
fi
# The global bucket out of the way (it refills only once empty, and a message
# takes 0-2 credits at random: 40 messages could empty 50).
in_srv sysctl -qw net.ipv4.icmp_msgs_burst=1000
in_srv sysctl -qw net.ipv4.icmp_ratelimit=0 net.ipv6.icmp.ratelimit=0
compare "no per-peer limit (icmp_ratelimit 0)"
in_srv sysctl -qw net.ipv4.icmp_ratelimit=1000 net.ipv4.icmp_ratemask=0 net.ipv6.icmp.ratemask=0
compare "destination unreachable left out of the ratemasks"
[ "$fails" -eq 0 ] || exit 1
