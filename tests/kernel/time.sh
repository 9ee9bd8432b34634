#!/usr/bin/env bash
# -m time against the kernel: rules built around the current UTC time (a
# window of the day around now and one later, today's and tomorrow's
# weekday, today's day of the month and all but it, a date range around
# today and one in 2001, --kerneltz), one UDP datagram per rule's port, first
# through iptables (xt_time), then nf2bpf with the same rules: which arrive
# must be the same, and the ones the times predict. Needs root; exits 77
# otherwise.
#   time.sh NF2BPF
set -u
BIN=$1
. "$(dirname "$0")/lib.sh" nf2bpf-time

veth_pair 10.88.1
# Not within two minutes of midnight (UTC): both runs must see one day.
python3 -c '
import time
left = 86400 - time.time() % 86400
if left < 120: time.sleep(left + 5)'
python3 - "$WORK/rules" <<'EOF'
import sys, time
now = int(time.time())
def hms(t):
    t %= 86400
    return "%02d:%02d:%02d" % (t // 3600, t // 60 % 60, t % 60)
def date(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
today = time.gmtime(now).tm_wday
mday = time.gmtime(now).tm_mday
tests = [
    "--timestart %s --timestop %s" % (hms(now - 3600), hms(now + 3600)),
    "--timestart %s --timestop %s" % (hms(now + 7200), hms(now + 10800)),
    "--weekdays %s" % days[today],
    "--weekdays %s" % days[(today + 1) % 7],
    "--monthdays %d" % mday,
    "! --monthdays %d" % mday,
    "--datestart %s --datestop %s" % (date(now - 86400), date(now + 86400)),
    "--datestart 2001-01-01T00:00:00 --datestop 2001-01-02T00:00:00",
    "--timestart %s --timestop %s --kerneltz" % (hms(now - 3600), hms(now + 3600)),
]
out = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"]
for i, t in enumerate(tests):
    port = 9001 + i
    out.append("-A INPUT -p udp -m udp --dport %d -m time %s -j ACCEPT" % (port, t))
    out.append("-A INPUT -p udp -m udp --dport %d -j DROP" % port)
out.append("COMMIT")
open(sys.argv[1], "w").write("\n".join(out) + "\n")
EOF
cat >"$WORK/send.py" <<'EOF'
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(9):
    s.sendto(b"%d " % i, ("10.88.1.1", 9001 + i))
time.sleep(0.2)
for _ in range(3): s.sendto(b"end", ("10.88.1.1", 9999)); time.sleep(0.05)
EOF
run() {
  udp_recv "$SRV" "$WORK/got" 9001 9002 9003 9004 9005 9006 9007 9008 9009 9999
  ip netns exec "$CLI" python3 "$WORK/send.py"
  wait "$RECV"
  arrivals "$WORK/got" 9
}
ip netns exec "$CLI" ping -c1 -W1 10.88.1.1 >/dev/null
kernel_then_nf2bpf "$WORK/rules"
if [ "$K" = ADADADADA ]; then pass "the kernel's arrivals are the ones the times predict"; else fail "the kernel's arrivals are not ADADADADA"; sed 's/^/    /' "$WORK/rules"; fi
if [ "$K" = "$N" ]; then pass "nf2bpf passes and drops the same datagrams as the kernel"; else fail "the arrivals differ"; fi
echo "time: $fails failed"
[ "$fails" -eq 0 ]
