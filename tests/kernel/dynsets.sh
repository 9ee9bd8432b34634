#!/usr/bin/env bash
# nft sets the packet path writes, against the kernel: one scripted sequence
# of UDP datagrams from two client addresses (the destination port picks the
# rule), with pauses that keep every element's timeout and limit at least
# 200 ms from a verdict's edge, into a namespace filtered first by nft, then
# by nf2bpf with the same file. Which datagrams arrive must be the same.
#   9001  add @knock { ip saddr }       (knock: timeout 1s; an add does not
#   9002  ip saddr @knock accept, else drop      renew a present element)
#   9003  delete @knock { ip saddr }
#   9004  update @flood { ip saddr . udp dport limit rate over 5/second burst 2 packets } drop
#   9005  update @stamp { ip saddr }    (stamp: timeout 1s; an update renews it)
#   9006  ip saddr != @stamp drop
# Needs root; exits 77 otherwise.
#   dynsets.sh NF2BPF
set -u
BIN=$1
. "$(dirname "$0")/lib.sh" nf2bpf-dynsets

veth_pair 10.87.1
ip -n "$CLI" addr add 10.87.1.3/24 dev c0
cat >"$WORK/rules.nft" <<'NFT'
table inet t {
	set knock {
		type ipv4_addr
		flags dynamic, timeout
		timeout 1s
	}
	set stamp {
		type ipv4_addr
		flags dynamic, timeout
		timeout 1s
	}
	set flood {
		type ipv4_addr . inet_service
		flags dynamic
	}
	chain input {
		type filter hook input priority 0; policy accept;
		udp dport 9001 add @knock { ip saddr }
		udp dport 9002 ip saddr @knock accept
		udp dport 9002 drop
		udp dport 9003 delete @knock { ip saddr }
		udp dport 9004 update @flood { ip saddr . udp dport limit rate over 5/second burst 2 packets } drop
		udp dport 9005 update @stamp { ip saddr }
		udp dport 9006 ip saddr != @stamp drop
	}
}
NFT

# (pause before, datagrams back to back, port, source host)
cat >"$WORK/send.py" <<'PY'
import socket, time
script = [(0, 1, 9002, 2), (0, 1, 9001, 2), (0, 2, 9002, 2), (0, 1, 9002, 3),   # D A AA D
          (0, 1, 9003, 2), (0, 1, 9002, 2),                                     # A D: deleted
          (0, 1, 9001, 2), (0.6, 1, 9001, 2), (0, 1, 9002, 2), (0.7, 1, 9002, 2),  # A A A D: not renewed
          (0, 4, 9004, 2), (0, 2, 9004, 3), (0.6, 2, 9004, 2),                  # AADD AA AA: per element
          (0, 1, 9005, 3), (0.6, 1, 9005, 3), (0.7, 1, 9006, 3), (0, 1, 9006, 2),  # A A A D: renewed
          (1.0, 1, 9006, 3)]                                                    # D: expired
socks = {}
for host in (2, 3):
    socks[host] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    socks[host].bind(("10.87.1.%d" % host, 0))
n = 0
for pause, count, port, host in script:
    time.sleep(pause)
    for _ in range(count):
        socks[host].sendto(str(n).encode() + b" ", ("10.87.1.1", port)); n += 1
time.sleep(0.2)
for _ in range(3): socks[2].sendto(b"end", ("10.87.1.1", 9999)); time.sleep(0.05)
print(n)
PY
run() {  # the A/D string of one pass
  udp_recv "$SRV" "$WORK/got" 9001 9002 9003 9004 9005 9006 9999
  local n
  n=$(ip netns exec "$CLI" python3 "$WORK/send.py")
  wait "$RECV"
  arrivals "$WORK/got" "$n"
}
ip netns exec "$CLI" ping -c1 -W1 10.87.1.1 >/dev/null

kernel_then_nf2bpf "$WORK/rules.nft"
want=DAAAD""AD""AAAD""AADDAAAA""AAAD""D
if [ "$K" = "$want" ]; then pass "the kernel's sequence is the one nft_dynset's and nft_limit's semantics predict"; else fail "the kernel's sequence is not $want"; fi
if [ "$K" = "$N" ]; then pass "nf2bpf passes and drops the same datagrams as the kernel"; else fail "the sequences differ"; fi
# nf2bpf sets: the elements nf2bpf holds now. flood's two have no timeout;
# a knock from .3 just now has one of at most 1 s left.
ip netns exec "$CLI" python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("10.87.1.3", 0)); s.sendto(b"x", ("10.87.1.1", 9001))'
sleep 0.1
expect 0 "nf2bpf sets lists the sets the rules write" -- in_srv "$BIN" sets
has "nft inet t flood (key saddr . dport): 2 elements" "flood holds an element per source and port"
has "  10.87.1.2 . 9004" "an element's key is its parts' values"
has "nft inet t stamp (key saddr): 0 elements" "a set whose elements ran out is listed empty"
expect 0 "nf2bpf sets knock --format json" -- in_srv "$BIN" sets knock --format json
if python3 -c 'import json, sys; d = json.loads(sys.argv[1]); s = d["sets"]; assert len(s) == 1 and s[0]["name"] == "nft inet t knock"; e = s[0]["elements"]; assert [x["key"] for x in e] == [["10.87.1.3"]] and 0 < e[0]["expires_ms"] <= 1000, d' "$LAST"; then
  pass "the knock from .3 is there with its time left"
else
  fail "nf2bpf sets knock --format json: $LAST"
fi
expect 1 "a set no rule writes is refused" -- in_srv "$BIN" sets nosuch

echo "dynsets: $fails failed"
[ "$fails" -eq 0 ]
