#!/usr/bin/env bash
# -m recent against the kernel: one scripted sequence of UDP datagrams (the
# destination port picks the rule) from two client addresses to two server
# addresses, with pauses that let a 1 s and a 2 s --seconds window expire,
# into a namespace filtered first by iptables, then by nf2bpf with the same
# rules. Which datagrams arrive must be the same. After each pass the rules
# are loaded again (iptables-restore / a new nf2bpf generation) and a list
# entry made before must still be there. Needs root; exits 77 otherwise.
#   recent.sh NF2BPF
set -u
BIN=$1
. "$(dirname "$0")/lib.sh" nf2bpf-recent

veth_pair 10.84.1
ip -n "$CLI" addr add 10.84.1.3/24 dev c0 && ip -n "$SRV" addr add 10.84.1.4/24 dev s0

# 9001: the SSH guard (--set, then --update over 2 s from the 3rd stamp on);
# 9002: --rcheck of the same list over 2 s; 9003-9005: a list of destination
# addresses (--rdest: --set, --rcheck, --remove); 9006: ! --rcheck over 1 s
# with --hitcount 2; 9007: --rcheck over 60 s (after a reload); 9008: --set
# on a rule that jumps to chain J, whose first rule only counts (the list
# must get one stamp per datagram, not one per rule of J), whose second
# drops one source; 9009: --rcheck --hitcount 2 of that list; 9010:
# --rcheck on a rule that jumps (kube-proxy's session affinity).
cat >"$WORK/rules" <<'EOF'
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:J - [0:0]
:J2 - [0:0]
-A J -p udp -m udp --dport 9008 -m comment --comment "counts only"
-A J -s 10.84.1.3/32 -j DROP
-A J -p tcp -j DROP
-A J2 -j DROP
-A INPUT -p udp -m udp --dport 9008 -m recent --set --name J --mask 255.255.255.255 --rsource -j J
-A INPUT -p udp -m udp --dport 9009 -m recent --rcheck --seconds 2 --hitcount 2 --name J --mask 255.255.255.255 --rsource -j DROP
-A INPUT -p udp -m udp --dport 9010 -m recent --rcheck --seconds 2 --name J --mask 255.255.255.255 --rsource -j J2
-A INPUT -p udp -m udp --dport 9001 -m recent --set --name G --mask 255.255.255.255 --rsource
-A INPUT -p udp -m udp --dport 9001 -m recent --update --seconds 2 --hitcount 3 --name G --mask 255.255.255.255 --rsource -j DROP
-A INPUT -p udp -m udp --dport 9002 -m recent --rcheck --seconds 2 --name G --mask 255.255.255.255 --rsource -j DROP
-A INPUT -p udp -m udp --dport 9003 -m recent --set --name T --mask 255.255.255.255 --rdest
-A INPUT -p udp -m udp --dport 9004 -m recent --rcheck --name T --mask 255.255.255.255 --rdest -j DROP
-A INPUT -p udp -m udp --dport 9005 -m recent --remove --name T --mask 255.255.255.255 --rdest -j DROP
-A INPUT -p udp -m udp --dport 9006 -m recent ! --rcheck --seconds 1 --hitcount 2 --name G --mask 255.255.255.255 --rsource -j DROP
-A INPUT -p udp -m udp --dport 9007 -m recent --rcheck --seconds 60 --name G --mask 255.255.255.255 --rsource -j DROP
COMMIT
EOF

# The script: (pause before, source, destination, port). "probe" sends the
# one datagram checked after a reload.
cat >"$WORK/send.py" <<'EOF'
import socket, sys, time
C2, C3, S1, S4 = "10.84.1.2", "10.84.1.3", "10.84.1.1", "10.84.1.4"
script = [(0, C2, S1, 9002)] + [(0, C2, S1, 9001)] * 5 + [
    (0, C3, S1, 9001), (0, C2, S1, 9002), (0, C2, S1, 9006), (0, C3, S1, 9006),
    (0, C2, S1, 9003), (0, C2, S4, 9004), (0, C2, S1, 9004), (0, C2, S1, 9005), (0, C2, S1, 9004), (0, C2, S1, 9005),
    (0, C2, S1, 9009), (0, C2, S1, 9008), (0, C2, S1, 9009), (0, C2, S1, 9010),  # recent on jump rules
    (0, C3, S1, 9008), (0, C3, S1, 9010), (0, C2, S1, 9008), (0, C2, S1, 9009),
    (1.3, C3, S1, 9006), (0, C2, S1, 9006),  # the 1 s window has passed
    (1.2, C2, S1, 9002), (0, C2, S1, 9001), (0, C2, S1, 9001), (0, C2, S1, 9001)]  # the 2 s window too
if sys.argv[1] == "probe": script = [(0, C2, S1, 9007), (0, C3, S1, 9004)]
for i, (pause, src, dst, port) in enumerate(script):
    time.sleep(pause)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, 0)); s.sendto(str(i).encode(), (dst, port)); s.close()
    time.sleep(0.005)
time.sleep(0.2)
e = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); e.bind((C2, 0))
for _ in range(3): e.sendto(b"end", (S1, 9999)); time.sleep(0.05)
print(len(script))
EOF
# One pass: A/D per datagram of the script.
# (The sender's end marker goes to port 9999, which no rule tests.)
run() {
  udp_recv "$SRV" "$WORK/got" $(seq 9001 9010) 9999
  local n
  n=$(ip netns exec "$CLI" python3 "$WORK/send.py" "$1")
  wait "$RECV"
  arrivals "$WORK/got" "$n"
}
# Resolve both addresses of each side before the passes.
for src in 10.84.1.2 10.84.1.3; do for dst in 10.84.1.1 10.84.1.4; do
  ip netns exec "$CLI" ping -c1 -W1 -I "$src" "$dst" >/dev/null
done; done

ip netns exec "$SRV" iptables-restore "$WORK/rules" || { echo "iptables-restore failed"; exit 2; }
K=$(run script)
ip netns exec "$SRV" iptables-restore "$WORK/rules"
KP=$(run probe)
ip netns exec "$SRV" nft flush ruleset
expect 0 "apply the same rules with nf2bpf" -- ip netns exec "$SRV" "$BIN" apply --iface s0 "$WORK/rules"
has "15 rules (4 exact, 11 approximate" "every rule translates (approximate: the lists are not /proc/net/xt_recent)"
N=$(run script)
expect 0 "apply them again (a new generation)" -- ip netns exec "$SRV" "$BIN" apply --iface s0 "$WORK/rules"
NP=$(run probe)

drops=$(tr -cd D <<<"$K" | wc -c)
echo "kernel:  $K ($drops dropped), after a reload $KP"
echo "nf2bpf:  $N, after a new generation $NP"
# 9002 before any --set passes; then the 3rd, 4th and 5th SSH-guard datagram are dropped.
if [ "${K:0:6}" = "AAADDD" ] && [ "$drops" -gt 5 ]; then pass "the kernel's sequence exercises the rules ($drops of ${#K} dropped)"; else fail "unexpected kernel sequence $K"; fi
# The jump rules' part (datagrams 17-24): one stamp per datagram, J's DROP for C3, affinity's jump.
if [ "${K:16:8}" = "AAADDDAD" ]; then pass "the kernel's sequence through the jump rules is AAADDDAD"; else fail "unexpected kernel sequence through the jump rules: ${K:16:8}"; fi
if [ "$K" = "$N" ]; then pass "nf2bpf passes and drops the same datagrams as the kernel"; else fail "sequences differ:"; echo "    kernel $K"; echo "    nf2bpf $N"; fi
# After the pause the 2 s window holds none of the earlier stamps: 9002 passes, the guard drops the 3rd again.
if [ "${K: -4}" = "AAAD" ]; then pass "the 2 s window expired in the kernel (the last ${K: -4})"; else fail "the window did not expire: ${K: -4}"; fi
if [ "$KP" = "DA" ]; then pass "the kernel keeps list G over iptables-restore (list T was emptied by --remove)"; else fail "kernel after reload: $KP"; fi
if [ "$KP" = "$NP" ]; then pass "nf2bpf keeps its lists over a new generation as the kernel does"; else fail "after a reload: kernel $KP, nf2bpf $NP"; fi

echo "recent: $fails failed"
[ "$fails" -eq 0 ]
