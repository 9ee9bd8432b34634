#!/usr/bin/env bash
# `nf2bpf sync --watch` (issue 13): a node namespace holds kube-proxy's
# iptables-mode rules (iptables-nft, xt matches and all, read back through
# iptables-nft-save); the watch follows every change made with
# iptables-nft-restore: a one-endpoint change, a writer rewriting the rules
# continuously (every change reaches the dataplane, none is applied twice),
# SIGKILL at random moments of that (the live generation stays whole and the
# next watch settles it), SIGTERM, a watched ruleset file, kube-proxy's
# nftables mode (a one-endpoint change read from the service chain alone),
# and a change made while a reconcile reads in the background.
# Needs root; exits 77 (skipped) otherwise.
#   watch.sh NF2BPF SOURCE_DIR
set -u
BIN=$1
SRC=$2
. "$(dirname "$0")/lib.sh" nf2bpf-wa
ST=$WORK/state
OUT=$WORK/watch.out
veth_pair 10.79.1
ping_ok() { ip netns exec "$CLI" ping -c1 -W0.5 -q 10.79.1.1 >/dev/null 2>&1; }

WATCH_PID=
start_watch() {  # start_watch [ARGS...]: the watch in the node namespace, JSON lines to $OUT
  # Not through a function: $! must be nf2bpf itself (ip netns exec execs it).
  ip netns exec "$SRV" "$BIN" sync --watch --format json --state-dir "$ST" --iface s0 --max-change 100 "$@" >>"$OUT" 2>>"$WORK/watch.err" &
  WATCH_PID=$!
  BG+=("$WATCH_PID")
}
runs() { awk '/^{/ { n++ } END { print n + 0 }' "$OUT" 2>/dev/null || echo 0; }
# wait_runs N: until $OUT has N runs (at most 60 s).
wait_runs() {
  for _ in $(seq 600); do [ "$(runs)" -ge "$1" ] && return 0; sleep 0.1; done
  return 1
}
# settle: until no new run for 2 s (at most 90 s).
settle() {
  local n=-1
  for _ in $(seq 45); do
    local m
    m=$(runs)
    [ "$m" -eq "$n" ] && return 0
    n=$m
    sleep 2
  done
  return 1
}
line() { sed -n "${1}p" <(grep '^{' "$OUT"); }
field() { python3 -c 'import json,sys; j=json.loads(sys.argv[2])
for k in sys.argv[1].split("."): j=j.get(k) if isinstance(j,dict) else None
print(j)' "$1" "$2"; }
in_sync() {  # the kernel's ruleset now is the live policy
  local r
  r=$(in_srv "$BIN" sync --from kernel --dry-run --format json --state-dir "$ST" --iface s0 2>/dev/null)
  [ "$(field result "$r")" = in-sync ]
}
# caught_up: until the watch has caught up with the kernel (at most 60 s; a
# run takes 0.3 s here, seconds on a loaded machine, so no fixed quiet time
# tells that the last one is done).
caught_up() {
  for _ in $(seq 60); do in_sync && return 0; sleep 1; done
  return 1
}

# 1. kube-proxy's rules, written as kube-proxy writes them (iptables-nft).
in_srv iptables-nft-restore <"$SRC/testdata/iptables/kube-proxy-node.rules" || { fail "iptables-nft-restore"; exit 1; }
start_watch --from kernel --reconcile 1
wait_runs 1 || fail "no first run"
L=$(line 1)
[ "$(field result "$L")" = swapped ] && [ "$(field rules "$L")" = 101 ] && [ "$(field watch.run "$L")" = 1 ] &&
  pass "first run: kube-proxy's 101 rules read from the kernel (xt matches through iptables-nft-save) and swapped in" ||
  { fail "first run"; echo "    $L" | cut -c1-600; cat "$WORK/watch.err"; }
ping_ok && pass "traffic passes the live policy" || fail "ping through the live policy"
n=$(in_srv "$BIN" services --from kernel --format json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["services"]))')
[ "$n" = 9 ] && pass "services --from kernel finds kube-proxy's 9 Services in what iptables-nft holds" ||
  fail "services --from kernel found $n Services, not 9"

# 2. One endpoint removed, the way kube-proxy's partial restore does it: the
# service chain and the endpoint chain that stays declared (flushed) and
# written again, the endpoint chain that goes declared (flushed) and deleted.
# Only that Service's backends change: the watch reads the two chains the
# notifications name (not the whole ruleset) and updates the backends in
# place (no new generation). The full read that follows (--reconcile 1) finds
# the same backends and records the policy.
in_srv iptables-nft-restore --noflush <<'EOF'
*nat
:KUBE-SVC-ERIFXISQEP7F7OF4 - [0:0]
:KUBE-SEP-ZXMNUKOKXUTL2MK2 - [0:0]
:KUBE-SEP-IT2ZTR26TO4XFPTO - [0:0]
-A KUBE-SEP-ZXMNUKOKXUTL2MK2 -s 10.244.0.3/32 -m comment --comment "kube-system/kube-dns:dns-tcp" -j KUBE-MARK-MASQ
-A KUBE-SEP-ZXMNUKOKXUTL2MK2 -p tcp -m comment --comment "kube-system/kube-dns:dns-tcp" -m tcp -j DNAT --to-destination 10.244.0.3:53
-A KUBE-SVC-ERIFXISQEP7F7OF4 ! -s 10.244.0.0/16 -d 10.96.0.10/32 -p tcp -m comment --comment "kube-system/kube-dns:dns-tcp cluster IP" -m tcp --dport 53 -j KUBE-MARK-MASQ
-A KUBE-SVC-ERIFXISQEP7F7OF4 -m comment --comment "kube-system/kube-dns:dns-tcp -> 10.244.0.3:53" -j KUBE-SEP-ZXMNUKOKXUTL2MK2
-X KUBE-SEP-IT2ZTR26TO4XFPTO
COMMIT
EOF
wait_runs 2 || fail "no run after the endpoint change"
L=$(line 2)
if [ "$(field result "$L")" = updated ] && [ "$(field watch.notifications "$L")" != 0 ] &&
  [ "$(field watch.read "$L")" = chains ] && [ "$(field chains_read "$L")" = 2 ] && [ "$(field generation "$L")" = 1 ] &&
  [ "$(field services_changed "$L")" = "['nat/KUBE-SVC-ERIFXISQEP7F7OF4']" ]; then
  pass "the one-endpoint change is live in place from the two chains read: generation 1, $(field watch.since_change_ms "$L") ms after $(field watch.notifications "$L") notifications (read $(field timings_ms.read "$L") ms, update $(field timings_ms.update "$L") ms)"
else
  fail "endpoint change"
  echo "    $L" | cut -c1-600
fi
wait_runs 3 || fail "no full read after the update"
L=$(line 3)
if [ "$(field watch.reconcile "$L")" = True ] && [ "$(field result "$L")" = updated ] &&
  [ "$(field services_changed "$L")" = "[]" ] && [ "$(field rules "$L")" = 98 ] && [ "$(field generation "$L")" = 1 ]; then
  pass "the full read after it translates the whole ruleset (98 rules) to the same backends, and records it"
else
  fail "reconcile after the endpoint change"
  echo "    $L" | cut -c1-600
fi
in_sync && pass "the live policy is the kernel's ruleset" || fail "not in sync after the endpoint change"

# 3. A writer rewriting the rules continuously: 40 restores, each a
# different policy (one more service port), 0-50 ms apart.
writer() {
  for i in $(seq "$1" "$2"); do
    printf '*filter\n-A KUBE-SERVICES -d 10.96.200.%d/32 -p tcp -m comment --comment "churn/svc-%d has no endpoints" -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable\nCOMMIT\n' \
      "$((i % 250 + 1))" "$i" | in_srv iptables-nft-restore --noflush
    sleep "0.0$((RANDOM % 5))"
  done
}
before=$(runs)
writer 1 40
caught_up && pass "after 40 continuous rewrites the live policy is the kernel's last ruleset" ||
  fail "not in sync 60 s after the continuous rewrites"
settle || fail "the watch never went quiet"
python3 - "$OUT" "$before" <<'PY' && pass "no change applied twice, generations in order" || fail "a change applied twice"
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")][int(sys.argv[2]):]
swapped = [r for r in runs if r["result"] == "swapped"]
ok = all(r["result"] in ("swapped", "in-sync") for r in runs)
ok &= all(a["checksum"] != b["checksum"] for a, b in zip(swapped, swapped[1:]))
ok &= all(a["generation"] < b["generation"] for a, b in zip(swapped, swapped[1:]))
ok &= len(swapped) <= 40
print("    %d runs, %d swaps for 40 changes" % (len(runs), len(swapped)))
sys.exit(0 if ok and swapped else 1)
PY

# 4. SIGKILL at random moments while the writer goes on; each time a new
# watch takes over. The live generation is always whole: traffic passes.
writer 41 80 &
WRITER=$!
BG+=("$WRITER")
for k in 1 2 3; do
  sleep "0.$((RANDOM % 9 + 1))"
  kill -KILL "$WATCH_PID" 2>/dev/null
  wait "$WATCH_PID" 2>/dev/null
  ping_ok || fail "traffic after SIGKILL $k"
  start_watch --from kernel
done
wait "$WRITER"
caught_up && settle || fail "the watch never caught up after the kills"
ping_ok && in_sync && pass "after 3 SIGKILLs under churn the live policy is whole and the kernel's last ruleset" ||
  fail "not in sync after the kills"

# 5. SIGTERM ends the watch with status 0.
kill -TERM "$WATCH_PID"
wait "$WATCH_PID"
rc=$?
[ "$rc" -eq 0 ] && pass "SIGTERM ends the watch (exit 0)" || fail "SIGTERM: exit $rc"

# 6. A ruleset file: its atomic replacement is a change.
cat >"$WORK/rules.v4" <<'EOF'
*filter
:INPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --dport 9 -j DROP
COMMIT
EOF
: >"$OUT"
start_watch "$WORK/rules.v4"
wait_runs 1 || fail "no first run on the file"
sed 's/--dport 9 /--dport 10 /' "$WORK/rules.v4" >"$WORK/rules.v4.new" && mv "$WORK/rules.v4.new" "$WORK/rules.v4"
wait_runs 2 || fail "no run after the file changed"
L=$(line 2)
[ "$(field result "$L")" = swapped ] && [ "$(field watch.notifications "$L")" != 0 ] &&
  pass "a rename over the watched file is a change, swapped in" || { fail "file watch"; echo "    $L" | cut -c1-400; }

# 7. Usage: standard input cannot be watched.
expect 2 "--watch refuses standard input" -- in_srv "$BIN" sync --watch --state-dir "$ST" - </dev/null
has "not standard input" "and says so"

# 8. kube-proxy's nftables mode: its table replaces the iptables rules, and
# a one-endpoint change made as kube-proxy makes it (the service chain
# flushed and written again with a new numgen map, the endpoint chain
# deleted) is read from the service chain alone over netlink and updated in
# place; the full read after it finds the same backends.
in_srv nft flush ruleset
python3 "$SRC/scripts/kube-proxy-gen" --mode nftables --services 8 --endpoints 3 -o "$WORK/kube.nft" &&
  python3 "$SRC/scripts/kube-proxy-gen" --mode nftables --services 8 --endpoints 3 --delta remove-endpoint \
    -o "$WORK/kube-delta.nft" && in_srv nft -f "$WORK/kube.nft" || fail "kube-proxy's nftables-mode rules"
: >"$OUT"
start_watch --from kernel --reconcile 1
wait_runs 1 || fail "no first run on the nftables-mode rules"
[ "$(field result "$(line 1)")" = swapped ] && pass "nftables mode: the first run swaps kube-proxy's table in" ||
  { fail "nftables mode: first run"; line 1 | cut -c1-600; }
in_srv nft -f "$WORK/kube-delta.nft" || fail "nft -f of the endpoint change"
wait_runs 2 || fail "no run after the nftables-mode endpoint change"
L=$(line 2)
if [ "$(field result "$L")" = updated ] && [ "$(field watch.read "$L")" = chains ] &&
  [ "$(field chains_read "$L")" = 1 ] && [ "$(field services_changed "$L")" = "['kube-proxy/service-QTH7OQHG-ns0/svc-0/tcp/p']" ]; then
  pass "nftables mode: the one-endpoint change is live in place from the service chain read alone, $(field watch.since_change_ms "$L") ms after $(field watch.notifications "$L") notifications (read $(field timings_ms.read "$L") ms, update $(field timings_ms.update "$L") ms)"
else
  fail "nftables mode: endpoint change"
  echo "    $L" | cut -c1-600
fi
wait_runs 3 || fail "no full read after the nftables-mode update"
L=$(line 3)
[ "$(field watch.reconcile "$L")" = True ] && [ "$(field result "$L")" = updated ] &&
  [ "$(field services_changed "$L")" = "[]" ] &&
  pass "nftables mode: the full read after it finds the same backends, and records them" ||
  { fail "nftables mode: reconcile"; echo "    $L" | cut -c1-600; }
in_sync && pass "nftables mode: the live policy is the kernel's ruleset" || fail "nftables mode: not in sync"
kill -TERM "$WATCH_PID"
wait "$WATCH_PID"

# 9. A change while a reconcile reads in the background (kube-proxy's
# iptables mode, 1,000 Services): the watch answers it from the chains
# without waiting for the read, drops what the read found (it may predate
# the change) and reconciles again later. The read takes a few hundred ms
# here, so the change usually lands inside it; either order must end in
# sync, and the order that happened is said.
in_srv nft flush ruleset
python3 "$SRC/scripts/kube-proxy-gen" --services 1000 --endpoints 3 --kind clusterip -o "$WORK/k1k.rules" &&
  python3 "$SRC/scripts/kube-proxy-gen" --services 1000 --endpoints 3 --kind clusterip --delta remove-endpoint \
    -o "$WORK/k1k-delta.rules" && in_srv iptables-nft-restore "$WORK/k1k.rules" || fail "kube-proxy's 1,000 Services"
python3 - "$WORK/k1k.rules" "$WORK/k1k-delta.rules" >"$WORK/k1k-back.rules" <<'PY'
import re, sys
rules, delta = open(sys.argv[1]).read().splitlines(), open(sys.argv[2]).read()
chains = set(re.findall(r"^:(\S+)", delta, re.M)) | set(re.findall(r"-X (\S+)", delta))
print("*nat")
for c in sorted(chains): print(":%s - [0:0]" % c)
for l in rules:
    m = re.match(r"-A (\S+) ", l)
    if m and m.group(1) in chains: print(l)
print("COMMIT")
PY
: >"$OUT"
start_watch --from kernel --reconcile 1
wait_runs 1 || fail "no first run on 1,000 Services"
in_srv iptables-nft-restore --noflush "$WORK/k1k-delta.rules"
wait_runs 2 || fail "no run after the endpoint went"
sleep 1.1  # the reconcile is due 1 s after the update: its read is under way
in_srv iptables-nft-restore --noflush "$WORK/k1k-back.rules"
caught_up || fail "not in sync after the endpoint came back"
settle || fail "the watch never went quiet"
python3 - "$OUT" <<'PY' && pass "a change during a reconcile's read: $(cat "$WORK/order")" || fail "a change during a reconcile's read"
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
upd = [i for i, r in enumerate(runs) if r["watch"]["read"] == "chains" and r["result"] == "updated"]
rec = [i for i, r in enumerate(runs) if r["watch"]["reconcile"]]
ok = len(upd) == 2 and bool(rec) and rec[-1] > upd[1]
ok &= all(r["result"] in ("swapped", "updated", "in-sync") for r in runs)
second = runs[upd[1]] if len(upd) == 2 else None
before = [i for i in rec if i < upd[1]] if second else []
with open(sys.argv[1].rsplit("/", 1)[0] + "/order", "w") as f:
    if second and not before:
        f.write("answered from its chains in %.0f ms while the read ran, the read dropped, the next reconcile %s"
                % (second["watch"]["since_change_ms"], runs[rec[-1]]["result"]))
    else:
        f.write("the read finished first (%d reconciles before it), then the change from its chains" % len(before))
sys.exit(0 if ok else 1)
PY
kill -TERM "$WATCH_PID"
wait "$WATCH_PID"

[ "$fails" -eq 0 ] && echo "all watch checks passed" || echo "$fails watch check(s) failed"
[ "$fails" -eq 0 ]
