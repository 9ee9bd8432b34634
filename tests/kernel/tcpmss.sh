#!/usr/bin/env bash
# -j TCPMSS against the kernel: a client connects through a router (its link
# to the server has MTU 1400) to three ports; the router's mangle FORWARD
# sets the MSS to 1300 on one, clamps it to the path MTU on another, and
# leaves the third; the server's side records the MSS option of each SYN
# that arrives (and of the SYN-ACKs that come back to the client). Raw SYNs
# without the option follow, which the kernel gives one. First
# the kernel's iptables, then nf2bpf with the same rules: the same MSS must
# arrive. Needs root; exits 77 otherwise.
#   tcpmss.sh NF2BPF
set -u
BIN=$1
. "$(dirname "$0")/lib.sh" nf2bpf-tcpmss
RTR=$TAG-rtr
trap 'cleanup; ip netns del "$RTR" 2>/dev/null' EXIT INT TERM

ip netns add "$CLI" && ip netns add "$SRV" && ip netns add "$RTR" || { echo "cannot create namespaces"; exit 2; }
ip link add c0 netns "$CLI" type veth peer name r0 netns "$RTR"
ip link add r1 netns "$RTR" type veth peer name s0 netns "$SRV"
for ns in "$CLI" "$SRV" "$RTR"; do ip -n "$ns" link set lo up; done
ip -n "$RTR" link set r1 mtu 1400 && ip -n "$SRV" link set s0 mtu 1400
ip -n "$CLI" addr add 10.88.1.2/24 dev c0 && ip -n "$CLI" link set c0 up && ip -n "$CLI" route add default via 10.88.1.1
ip -n "$SRV" addr add 10.88.2.2/24 dev s0 && ip -n "$SRV" link set s0 up && ip -n "$SRV" route add default via 10.88.2.1
ip -n "$RTR" addr add 10.88.1.1/24 dev r0 && ip -n "$RTR" addr add 10.88.2.1/24 dev r1
ip -n "$RTR" link set r0 up && ip -n "$RTR" link set r1 up
ip netns exec "$RTR" sysctl -qw net.ipv4.ip_forward=1
# The server and client advertise the MSS their own MTU allows (1360 and
# 1460); the router lowers what it is told to, in both directions.
cat >"$WORK/rules" <<'EOF'
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A FORWARD -p tcp -m tcp --dport 9001 --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1300
-A FORWARD -p tcp -m tcp --dport 9002 --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu
-A FORWARD -p tcp -m tcp --sport 9002 --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1200
-A FORWARD -p tcp -m tcp --dport 9003 --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1500
COMMIT
EOF
cat >"$WORK/listen.py" <<'EOF'
import socket, time
ls = []
for port in (9001, 9002, 9003):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(8); ls.append(s)
time.sleep(3600)
EOF
cat >"$WORK/connect.py" <<'EOF'
import socket, struct
for port in (9001, 9002, 9003):
    c = socket.socket(); c.settimeout(2); c.connect(("10.88.2.2", port)); c.close()
# SYNs without an MSS option, from a raw socket: none at all (9001), window
# scale and SACK-permitted (9003, behind which the kernel puts the option),
# and one carrying data (9002, which it leaves as it is).
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
for sport, dport, opts, data in ((40001, 9001, b"", b""), (40003, 9003, b"\x01\x03\x03\x07\x04\x02\x01\x01", b""),
                                 (40002, 9002, b"", b"data")):
    hdr = struct.pack("!HHIIBBHHH", sport, dport, 1000, 0, (5 + len(opts) // 4) << 4, 0x02, 64240, 0, 0) + opts
    seg = hdr + data
    pseudo = socket.inet_aton("10.88.1.2") + socket.inet_aton("10.88.2.2") + struct.pack("!BBH", 0, 6, len(seg))
    seg = seg[:16] + struct.pack("!H", csum(pseudo + seg)) + seg[18:]
    r.sendto(seg, ("10.88.2.2", 0))
EOF
ip netns exec "$SRV" python3 "$WORK/listen.py" &
BG+=($!)
ip netns exec "$CLI" ping -c1 -W1 10.88.2.2 >/dev/null

run() {  # the SYNs the server gets, then the SYN-ACKs the client gets
  ip netns exec "$SRV" python3 "$KDIR/frames.py" s0 "$WORK/srv" 1.5 syns &
  local a=$!
  ip netns exec "$CLI" python3 "$KDIR/frames.py" c0 "$WORK/cli" 1.5 syns &
  local b=$!
  sleep 0.3
  ip netns exec "$CLI" python3 "$WORK/connect.py" || echo "connect failed"
  wait "$a" "$b"
  echo "$(cat "$WORK/srv") / $(cat "$WORK/cli")"
}
ip netns exec "$RTR" iptables-restore "$WORK/rules" || { echo "iptables-restore failed"; exit 2; }
K=$(run)
ip netns exec "$RTR" nft flush ruleset
expect 0 "apply the same rules with nf2bpf" -- ip netns exec "$RTR" "$BIN" apply --iface r0 --iface r1 "$WORK/rules"
N=$(run)
echo "kernel: $K"
echo "nf2bpf: $N"
# To the server: 1300 set; 1360 = 1400 (r1's MTU) - 40; 1460 kept (1500 would raise it).
# To the client: 1200 set on 9002's SYN-ACK; the others keep the server's 1360.
# The raw SYNs without the option get one of 536 (the RFC 1122 default caps
# every MSS asked for), 9003's in front of its other options; the one with
# data is left without.
# (The client sees the server's SYN-ACKs to both.)
if [ "$K" = "9001:1300 9002:1360 9003:1460 r9001:536=02040218 r9002:0+4 r9003:536=020402180103030704020101 / 9001:1360 9001:1360 9002:1200 9002:1200 9003:1360 9003:1360" ]; then
  pass "the kernel's MSS is the one xt_TCPMSS computes"
else
  fail "unexpected kernel MSS: $K"
fi
if [ "$K" = "$N" ]; then pass "nf2bpf rewrites the MSS as the kernel does"; else fail "the MSS differs"; fi

# IPv6: ip6tables sets 1300 on 9001; raw SYNs without the option get one of
# 1220 (IPv6's default MSS caps it), in front of their other options; one
# with data gets none.
ip -n "$CLI" addr add fd88:1::2/64 dev c0 nodad && ip -n "$CLI" -6 route add default via fd88:1::1
ip -n "$SRV" addr add fd88:2::2/64 dev s0 nodad && ip -n "$SRV" -6 route add default via fd88:2::1
ip -n "$RTR" addr add fd88:1::1/64 dev r0 nodad && ip -n "$RTR" addr add fd88:2::1/64 dev r1 nodad
ip netns exec "$RTR" sysctl -qw net.ipv6.conf.all.forwarding=1
grep -E '^[*:]|dport 9001|COMMIT' "$WORK/rules" >"$WORK/rules6"  # 9001's rule alone
cat >"$WORK/syn6.py" <<'EOF'
import socket, struct
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
src, dst = "fd88:1::2", "fd88:2::2"
r = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_TCP)
for sport, opts, data in ((40001, b"", b""), (40004, b"\x01\x01\x04\x02", b""), (40002, b"", b"data")):
    seg = struct.pack("!HHIIBBHHH", sport, 9001, 1000, 0, (5 + len(opts) // 4) << 4, 0x02, 64240, 0, 0) + opts + data
    pseudo = socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst) + struct.pack("!IxxxB", len(seg), 6)
    seg = seg[:16] + struct.pack("!H", csum(pseudo + seg)) + seg[18:]
    r.sendto(seg, (dst, 0))
EOF
run6() {
  ip netns exec "$SRV" python3 "$KDIR/frames.py" s0 "$WORK/srv" 1.2 syns &
  local a=$!
  sleep 0.3
  ip netns exec "$CLI" python3 "$WORK/syn6.py" || echo "send failed"
  wait "$a"
  cat "$WORK/srv"
}
ip netns exec "$CLI" ping -6 -c1 -W2 fd88:2::2 >/dev/null
ip netns exec "$RTR" "$BIN" unload >/dev/null 2>&1
ip netns exec "$RTR" ip6tables-restore "$WORK/rules6" || { echo "ip6tables-restore failed"; exit 2; }
K=$(run6)
ip netns exec "$RTR" nft flush ruleset
expect 0 "IPv6: apply the same rules with nf2bpf" -- ip netns exec "$RTR" "$BIN" apply --from ip6tables --iface r0 --iface r1 "$WORK/rules6"
N=$(run6)
echo "kernel: $K"
echo "nf2bpf: $N"
if [ "$K" = "r9001:0+4 r9001:1220=020404c4 r9001:1220=020404c401010402" ]; then
  pass "IPv6: the kernel adds the option xt_TCPMSS computes"
else
  fail "IPv6: unexpected kernel MSS: $K"
fi
if [ "$K" = "$N" ]; then pass "IPv6: nf2bpf adds it as the kernel does"; else fail "IPv6: the MSS differs"; fi

echo "tcpmss: $fails failed"
[ "$fails" -eq 0 ]
