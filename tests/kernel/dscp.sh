#!/usr/bin/env bash
# -j DSCP, -j TOS and nft's `ip dscp set` / `ip6 dscp set` against the
# kernel: a client sends UDP datagrams through a router, each port with its
# own TOS / traffic class byte (ECN bits set on some); the router's mangle
# PREROUTING, FORWARD and POSTROUTING rewrite them, and a filter FORWARD rule
# drops by the DSCP a mangle rule gave (later rules see the new value). The
# server's side records "port:tos" of each datagram that arrives. First the
# kernel (iptables, ip6tables, then nft), then nf2bpf with the same rules:
# the same bytes must arrive. Needs root; exits 77 otherwise.
#   dscp.sh NF2BPF
set -u
BIN=$1
. "$(dirname "$0")/lib.sh" nf2bpf-dscp
RTR=$TAG-rtr
trap 'cleanup; ip netns del "$RTR" 2>/dev/null' EXIT INT TERM

ip netns add "$CLI" && ip netns add "$SRV" && ip netns add "$RTR" || { echo "cannot create namespaces"; exit 2; }
ip link add c0 netns "$CLI" type veth peer name r0 netns "$RTR"
ip link add r1 netns "$RTR" type veth peer name s0 netns "$SRV"
for ns in "$CLI" "$SRV" "$RTR"; do
  ip -n "$ns" link set lo up
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
done
ip -n "$CLI" addr add 10.89.1.2/24 dev c0 && ip -n "$CLI" addr add fd89:1::2/64 dev c0 nodad
ip -n "$SRV" addr add 10.89.2.2/24 dev s0 && ip -n "$SRV" addr add fd89:2::2/64 dev s0 nodad
ip -n "$RTR" addr add 10.89.1.1/24 dev r0 && ip -n "$RTR" addr add fd89:1::1/64 dev r0 nodad
ip -n "$RTR" addr add 10.89.2.1/24 dev r1 && ip -n "$RTR" addr add fd89:2::1/64 dev r1 nodad
for d in "$CLI c0" "$SRV s0" "$RTR r0" "$RTR r1"; do set -- $d; ip -n "$1" link set "$2" up; done
ip -n "$CLI" route add default via 10.89.1.1 && ip -n "$CLI" -6 route add default via fd89:1::1
ip -n "$SRV" route add default via 10.89.2.1 && ip -n "$SRV" -6 route add default via fd89:2::1
ip netns exec "$RTR" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1

# Port: the byte the client sends (ECN bits 01 or 11 on most).
SENDS="9001:0x01 9002:0xb9 9003:0x07 9004:0xff 9005:0x49 9006:0x03 9007:0x10"
mangle() {  # the mangle and filter rules, for iptables (4) or ip6tables (6)
  cat <<EOF
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -p udp -m udp --dport 9001 -j DSCP --set-dscp-class AF21
-A PREROUTING -p udp -m udp --dport 9005 -j DSCP --set-dscp 0x2e
-A FORWARD -p udp -m udp --dport 9002 -j TOS --set-tos 0x10/0x3f
-A FORWARD -p udp -m udp --dport 9003 -j TOS --xor-tos 0x04
-A FORWARD -p udp -m udp --dport 9004 -j TOS --and-tos 0x0f
-A FORWARD -p udp -m udp --dport 9004 -j TOS --or-tos 0x20
-A POSTROUTING -p udp -m udp --dport 9006 -j DSCP --set-dscp 0x0a
-A POSTROUTING -p udp -m udp --dport 9007 -j TOS --set-tos Minimize-Cost
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -p udp -m dscp --dscp-class EF -j DROP
-A FORWARD -p udp -m udp --dport 9003 -m tos --tos 0xbd -j DROP
COMMIT
EOF
}
cat >"$WORK/rules.nft" <<'EOF'
table inet t {
	chain c_pre {
		type filter hook prerouting priority mangle; policy accept;
		udp dport 9001 ip dscp set af21
		udp dport 9001 ip6 dscp set af21
		udp dport 9005 ip dscp set ef
		udp dport 9005 ip6 dscp set ef
	}
	chain c_fwd {
		type filter hook forward priority filter; policy accept;
		udp dport 9002 ip dscp set cs4
		udp dport 9002 ip6 dscp set cs4
		ip dscp ef drop
		ip6 dscp ef drop
	}
	chain c_post {
		type filter hook postrouting priority mangle; policy accept;
		udp dport 9006 ip dscp set 10
		udp dport 9006 ip6 dscp set 10
	}
}
EOF
cat >"$WORK/send.py" <<'EOF'
import socket, sys, time
dst, sends = sys.argv[1], sys.argv[2:]
v6 = ":" in dst
for item in sends:
    port, tos = item.split(":")
    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
    if v6: s.setsockopt(socket.IPPROTO_IPV6, 67, int(tos, 16))  # IPV6_TCLASS
    else: s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, int(tos, 16))
    s.sendto(b"nf2bpf", (dst, int(port))); s.close(); time.sleep(0.02)
EOF
ip netns exec "$CLI" ping -c1 -W1 10.89.2.2 >/dev/null
ip netns exec "$CLI" ping -6 -c1 -W2 fd89:2::2 >/dev/null

run() {  # run DST: the datagrams the server gets
  ip netns exec "$SRV" python3 "$KDIR/frames.py" s0 "$WORK/got" 1.2 tos &
  local a=$!
  sleep 0.3
  # shellcheck disable=SC2086
  ip netns exec "$CLI" python3 "$WORK/send.py" "$1" $SENDS
  wait "$a"
  cat "$WORK/got"
}
compare() {  # compare WHAT RULES DST EXPECTED
  local what=$1 rules=$2 dst=$3 want=$4 K N
  if [[ $rules == *.nft ]]; then
    ip netns exec "$RTR" nft -f "$rules" || { echo "nft -f failed"; exit 2; }
  elif [[ $dst == *:* ]]; then
    ip netns exec "$RTR" ip6tables-restore "$rules" || { echo "ip6tables-restore failed"; exit 2; }
  else
    ip netns exec "$RTR" iptables-restore "$rules" || { echo "iptables-restore failed"; exit 2; }
  fi
  K=$(run "$dst")
  ip netns exec "$RTR" nft flush ruleset
  local from=()
  [[ $rules == *.v6 ]] && from=(--from ip6tables)
  expect 0 "$what: apply the same rules with nf2bpf" -- ip netns exec "$RTR" "$BIN" apply "${from[@]}" --iface r0 --iface r1 "$rules"
  N=$(run "$dst")
  ip netns exec "$RTR" "$BIN" unload >/dev/null 2>&1
  echo "$what kernel: $K"
  echo "$what nf2bpf: $N"
  if [ "$K" = "$want" ]; then pass "$what: the kernel rewrites as xt_DSCP / nft compute it"; else fail "$what: unexpected kernel bytes: $K"; fi
  if [ "$K" = "$N" ]; then pass "$what: nf2bpf rewrites as the kernel does"; else fail "$what: the bytes differ"; fi
}
mangle >"$WORK/rules.v4"
mangle >"$WORK/rules.v6"
# 9001: AF21 (0x48) | ECN 01; 9002: (0xb9 & ~0x3f) ^ 0x10; 9003: 0x07 ^ 0x04 (not 0xbd: passes);
# 9004: (0xff & 0x0f) | 0x20; 9005: EF at PREROUTING, so FORWARD's EF rule drops it;
# 9006: 0x0a << 2 | ECN 11 at POSTROUTING; 9007: (0x10 & ~0x3f) ^ 0x02.
WANT="9001:0x49 9002:0x90 9003:0x03 9004:0x2f 9006:0x2b 9007:0x02"
compare "iptables" "$WORK/rules.v4" 10.89.2.2 "$WANT"
compare "ip6tables" "$WORK/rules.v6" fd89:2::2 "$WANT"
# nft: 9001 AF21, 9002 CS4 (0x80 | ECN 01), 9005 dropped, 9006 10; the rest as sent.
WANT_NFT="9001:0x49 9002:0x81 9003:0x07 9004:0xff 9006:0x2b 9007:0x10"
compare "nft IPv4" "$WORK/rules.nft" 10.89.2.2 "$WANT_NFT"
compare "nft IPv6" "$WORK/rules.nft" fd89:2::2 "$WANT_NFT"

echo "dscp: $fails failed"
[ "$fails" -eq 0 ]
