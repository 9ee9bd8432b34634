#!/usr/bin/env bash
# -m owner and nft meta skuid/skgid against the kernel: processes of four
# identities (setpriv: uid/gid) in the server namespace send one UDP
# datagram to each rule's port; a client connects to closed ports (the
# kernel's RST comes from its own socket, which has no file) and to a port
# a uid-1000 process listens on (the SYN-ACK's request socket stands for
# that listener). Filtered first by the kernel (iptables-nft, then nft),
# then by nf2bpf with the same rules: the same datagrams must arrive and
# the same connections be refused, time out or connect. Needs root; exits
# 77 otherwise.
#   owner.sh NF2BPF
set -u
BIN=$1
. "$(dirname "$0")/lib.sh" nf2bpf-owner
chmod 755 "$WORK"

veth_pair 10.86.1

cat >"$WORK/iptables" <<'EOF'
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A OUTPUT -p udp -m udp --dport 9001 -m owner --uid-owner 1000 -j DROP
-A OUTPUT -p udp -m udp --dport 9002 -m owner ! --uid-owner 1000 -j DROP
-A OUTPUT -p udp -m udp --dport 9003 -m owner --gid-owner 2000-2005 -j DROP
-A OUTPUT -p udp -m udp --dport 9004 -m owner --uid-owner 1001 ! --gid-owner 3000 -j DROP
-A OUTPUT -p udp -m udp --dport 9005 -m owner ! --socket-exists -j DROP
-A OUTPUT -p tcp -m tcp --sport 9200 -m owner --socket-exists -j DROP
-A OUTPUT -p tcp -m tcp --sport 9201 -m owner --uid-owner 0 -j DROP
-A OUTPUT -p tcp -m tcp --sport 9300 -m owner --uid-owner 1000 -j DROP
COMMIT
EOF
cat >"$WORK/nft" <<'EOF'
table inet f {
  chain output {
    type filter hook output priority 0; policy accept;
    udp dport 9001 meta skuid 1000 drop
    udp dport 9002 meta skuid != 1000 drop
    udp dport 9003 meta skgid 2000-2005 drop
    udp dport 9004 meta skuid 1001 meta skgid != 3000 drop
    tcp sport 9200 meta skuid != 1000 drop
    tcp sport 9201 meta skuid 0 drop
    tcp sport 9300 meta skuid 1000 drop
  }
}
EOF

cat >"$WORK/send.py" <<'EOF'
import socket, sys
base = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i, port in enumerate((9001, 9002, 9003, 9004, 9005)):
    try: s.sendto(str(base + i).encode(), ("10.86.1.2", port))
    except PermissionError: pass  # netfilter's OUTPUT DROP answers EPERM
EOF
cat >"$WORK/listen.py" <<'EOF'
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 9300)); s.listen(8)
time.sleep(3600)
EOF
cat >"$WORK/connect.py" <<'EOF'
import socket
out = ""
for port in (9200, 9201, 9300):
    c = socket.socket(); c.settimeout(0.5)
    try:
        c.connect(("10.86.1.1", port)); out += "C"
    except ConnectionRefusedError: out += "R"
    except OSError: out += "T"
    c.close()
print(out)
EOF
chmod 644 "$WORK"/*.py

IDS=("0 0" "1000 2003" "1001 3000" "1001 2001")
run() {  # the arrivals of the datagrams (A/D), then the connections (C/R/T)
  udp_recv "$CLI" "$WORK/got" 9001 9002 9003 9004 9005 9999
  local i=0
  for id in "${IDS[@]}"; do
    set -- $id
    ip netns exec "$SRV" setpriv --reuid "$1" --regid "$2" --clear-groups /usr/bin/python3 "$WORK/send.py" $((i * 5))
    i=$((i + 1))
  done
  sleep 0.2
  ip netns exec "$SRV" python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(3): s.sendto(b"end", ("10.86.1.2", 9999))'
  wait "$RECV"
  local s
  s=$(arrivals "$WORK/got" 20)
  echo -n "${s:0:5} ${s:5:5} ${s:10:5} ${s:15:5} "
  ip netns exec "$CLI" python3 "$WORK/connect.py"
}
ip netns exec "$SRV" setpriv --reuid 1000 --regid 1000 --clear-groups /usr/bin/python3 "$WORK/listen.py" &
BG+=($!)
ip netns exec "$CLI" ping -c1 -W1 10.86.1.1 >/dev/null
sleep 0.3

check() {  # kind, the kernel's loader, the file, the outcome xt_owner / nft_meta give
  local kind=$1 load=$2 file=$3 want=$4 K N
  in_srv sh -c "$load < $file" || { fail "$kind: the kernel refused the rules"; return; }
  K=$(run)
  in_srv nft flush ruleset
  expect 0 "$kind: apply the same rules with nf2bpf" -- in_srv "$BIN" apply --iface s0 --iface lo "$file"
  N=$(run)
  in_srv "$BIN" unload >/dev/null 2>&1
  echo "$kind kernel: $K"
  echo "$kind nf2bpf: $N"
  if [ "$K" = "$want" ]; then pass "$kind: the kernel's outcome is the one its owner match predicts"; else fail "$kind: the kernel's outcome is not $want"; fi
  if [ "$K" = "$N" ]; then pass "$kind: nf2bpf passes and drops the same packets as the kernel"; else fail "$kind: outcomes differ"; fi
}
# Per identity (root, 1000/2003, 1001/3000, 1001/2001) the ports 9001-9005;
# then 9200 (the RST's socket exists, without a file), 9201 (and has no
# uid), 9300 (the listener's uid drops the SYN-ACK).
check iptables-nft iptables-nft-restore "$WORK/iptables" "ADAAA DADAA ADAAA ADDDA TRT"
# nft_meta: no process's socket, no match (negated or not): the RSTs pass.
check nft "nft -f /dev/stdin" "$WORK/nft" "ADAAA DADAA ADAAA ADDDA RRT"

echo "owner: $fails failed"
[ "$fails" -eq 0 ]
