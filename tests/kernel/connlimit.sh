#!/usr/bin/env bash
# -m connlimit against the kernel: a client opens TCP connections from two
# addresses, 60 ms apart, to a server whose INPUT limits them, first with
# iptables (xt_connlimit over nf_conncount), then with nf2bpf and the same
# rules; which connections open (A) and which the server resets (R) must be
# the same.
#   7000  above 2 connections a source address: reset (tcp-reset)
#   7001  up to 1 connection a source /24, else reset
# A closed connection no longer counts (conntrack's TIME_WAIT), nor does one
# the rule reset. Then the same with nft's ct count (in a set element, and a
# rule's own). Needs root; exits 77 otherwise.
#   connlimit.sh NF2BPF
set -u
BIN=$1
. "$(dirname "$0")/lib.sh" nf2bpf-connlimit

veth_pair 10.87.1
ip -n "$CLI" addr add 10.87.1.3/24 dev c0
cat >"$WORK/rules" <<'EOF'
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --dport 7000 --tcp-flags FIN,SYN,RST,ACK SYN -m connlimit --connlimit-above 2 --connlimit-mask 32 --connlimit-saddr -j REJECT --reject-with tcp-reset
-A INPUT -p tcp -m tcp --dport 7001 --tcp-flags FIN,SYN,RST,ACK SYN -m connlimit --connlimit-upto 1 --connlimit-mask 24 --connlimit-saddr -j ACCEPT
-A INPUT -p tcp -m tcp --dport 7001 --tcp-flags FIN,SYN,RST,ACK SYN -j REJECT --reject-with tcp-reset
COMMIT
EOF
# The server holds every connection until its peer closes it.
cat >"$WORK/serve.py" <<'EOF'
import select, socket
ls = []
for port in (7000, 7001):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(64); ls.append(s)
conns = []
while True:
    for r in select.select(ls + conns, [], [])[0]:
        if r in ls:
            conns.append(r.accept()[0])
        elif not r.recv(100):
            conns.remove(r); r.close()
EOF
# Each step opens (or closes) one connection: "open HOST PORT" prints A or R.
cat >"$WORK/client.py" <<'EOF'
import socket, sys, time
steps = [("open", 2, 7000), ("open", 2, 7000), ("open", 2, 7000), ("open", 2, 7000), ("open", 3, 7000),
         ("close", 0), ("open", 2, 7000), ("open", 2, 7000),
         ("open", 2, 7001), ("open", 3, 7001), ("close", 8), ("open", 3, 7001)]
opened, out = [], ""
for st in steps:
    if st[0] == "close":
        opened[st[1]].close(); time.sleep(0.3); out += "|"; opened.append(None); continue
    s = socket.socket(); s.settimeout(1); s.bind(("10.87.1.%d" % st[1], 0))
    try:
        s.connect(("10.87.1.1", st[2])); out += "A"
    except ConnectionRefusedError:
        out += "R"
    except OSError:
        out += "?"
    opened.append(s)
    time.sleep(0.06)
print(out)
EOF
ip netns exec "$SRV" python3 "$WORK/serve.py" &
BG+=($!)
sleep 0.3
ip netns exec "$CLI" ping -c1 -W1 10.87.1.1 >/dev/null
run() {  # (after a pause: the last run's connections close first)
  sleep 0.5
  ip netns exec "$CLI" python3 "$WORK/client.py"
}

kernel_then_nf2bpf "$WORK/rules"
want="AARRA|AR""AR|A"
if [ "$K" = "$want" ]; then pass "the kernel's connections are the ones nf_conncount's counting predicts"; else fail "the kernel's sequence is not $want"; fi
if [ "$K" = "$N" ]; then pass "nf2bpf opens and resets the same connections as the kernel"; else fail "the sequences differ"; fi

# The same with nft_connlimit: a set element's ct count per source for 7000,
# the rule's own count for 7001 (both client addresses share it, as they
# share a /24 above).
in_srv "$BIN" unload >/dev/null 2>&1
cat >"$WORK/rules.nft" <<'EOF'
table inet t {
	set per_src {
		type ipv4_addr
		flags dynamic
	}
	chain input {
		type filter hook input priority 0; policy accept;
		tcp dport 7000 tcp flags & (fin | syn | rst | ack) == syn add @per_src { ip saddr ct count over 2 } reject with tcp reset
		tcp dport 7001 tcp flags & (fin | syn | rst | ack) == syn ct count 1 accept
		tcp dport 7001 tcp flags & (fin | syn | rst | ack) == syn reject with tcp reset
	}
}
EOF
kernel_then_nf2bpf "$WORK/rules.nft"
if [ "$K" = "$want" ]; then pass "nft: the kernel's connections are the ones nft_connlimit's counting predicts"; else fail "nft: the kernel's sequence is not $want"; fi
if [ "$K" = "$N" ]; then pass "nft: nf2bpf opens and resets the same connections as the kernel"; else fail "nft: the sequences differ"; fi
echo "connlimit: $fails failed"
[ "$fails" -eq 0 ]
