#!/usr/bin/env bash
# kube-proxy differential (issue 13): a client, a node and four pods, each in
# its own network namespace, dual-stack. The node holds the rules kube-proxy
# writes for 8 Services of every kind (scripts/kube-proxy-gen: iptables and
# nftables mode, IPv4 and IPv6); the same connections are made with the kernel running them
# and then with nf2bpf running them (netfilter emptied). For every frontend
# (ClusterIP, NodePort on the node's address, externalIP, LoadBalancer from
# inside and outside loadBalancerSourceRanges, UDP) and a pod reaching a
# Service that may pick itself (hairpin): every backend the kernel reaches is
# reached, no other; the distribution passes a chi-square test; the backends
# see the same source address (masquerade exactly where kube-proxy
# masquerades); ClientIP affinity holds; traffic policy Local keeps to the
# node's pod; what the kernel refuses or drops gets no connection.
# Needs root; exits 77 (skipped) otherwise.
#   kube.sh NF2BPF SOURCE_DIR
set -u
BIN=$1
SRC=$2
. "$(dirname "$0")/lib.sh" nf2bpf-kp
PROBE="python3 $(cd "$(dirname "$0")" && pwd)/kube_probe.py"
GEN="$SRC/scripts/kube-proxy-gen"
PODS=()
for k in 0 1 2 3; do PODS+=("$TAG-p$k"); done
cleanup_all() {
  for p in "${PODS[@]}"; do
    for pid in $(ip netns pids "$p" 2>/dev/null); do kill "$pid" 2>/dev/null; done
    ip netns del "$p" 2>/dev/null
  done
  cleanup
}
trap cleanup_all EXIT INT TERM

# Client 10.81.1.2 (and 198.51.100.5, inside the LoadBalancer's source
# ranges) -- node 10.81.1.1 -- pods 10.244.K.2 (pod 0 is this node's pod CIDR).
veth_pair 10.81.1
ip -n "$CLI" addr add 198.51.100.5/32 dev c0
ip -n "$CLI" route add default via 10.81.1.1
ip -n "$SRV" route add 198.51.100.5/32 dev s0
ip -n "$SRV" route add default via 10.81.1.2  # a node has a default route: unknown ClusterIPs are routed
in_srv sysctl -qw net.ipv4.ip_forward=1
# IPv6 (dual-stack): client fd00:81:1::2 (and 2001:db8:51::5), node fd00:81:1::1,
# pods fd00:10:244:K::2.
ip -n "$CLI" addr add fd00:81:1::2/64 dev c0 nodad
ip -n "$CLI" addr add 2001:db8:51::5/128 dev c0 nodad
ip -n "$SRV" addr add fd00:81:1::1/64 dev s0 nodad
ip -n "$CLI" -6 route add default via fd00:81:1::1
ip -n "$SRV" -6 route add 2001:db8:51::5/128 dev s0
ip -n "$SRV" -6 route add default via fd00:81:1::2
in_srv sysctl -qw net.ipv6.conf.all.forwarding=1
IFACES=(--iface s0)
for k in 0 1 2 3; do
  p=${PODS[$k]}
  ip netns add "$p" && ip -n "$p" link set lo up
  ip link add "n$k" netns "$SRV" type veth peer name eth0 netns "$p"
  ip -n "$SRV" addr add "10.244.$k.1/24" dev "n$k" && ip -n "$SRV" link set "n$k" up
  ip -n "$p" addr add "10.244.$k.2/24" dev eth0 && ip -n "$p" link set eth0 up
  ip -n "$p" route add default via "10.244.$k.1"
  ip -n "$SRV" addr add "fd00:10:244:$k::1/64" dev "n$k" nodad
  ip -n "$p" addr add "fd00:10:244:$k::2/64" dev eth0 nodad
  ip -n "$p" -6 route add default via "fd00:10:244:$k::1"
  ip netns exec "$p" $PROBE serve "pod$k" &
  BG+=($!)
  IFACES+=(--iface "n$k")
done
sleep 0.5

EPS=10.244.0.2,10.244.1.2,10.244.2.2,10.244.3.2
EPS6=fd00:10:244::2,fd00:10:244:1::2,fd00:10:244:2::2,fd00:10:244:3::2
# A pod (pod 1) reaching the first Service, whose endpoints are pods 0-2.
hairpin() {  # hairpin CLUSTER_IP
  echo '[{"id": "hairpin: pod1 -> ns0/svc-0:p ClusterIP '"$1"':80/tcp", "proto": "tcp", "ip": "'"$1"'",
  "port": 80, "src": null, "count": 30, "affinity": false, "reject": false, "pods": ["pod0", "pod1", "pod2"]}]' >"$WORK/hairpin.json"
}

probe_all() {  # probe_all OUT: the client's and the hairpin probes, in one JSON object
  ip netns exec "$CLI" $PROBE probe "$WORK/targets.json" >"$WORK/c.json" &&
    ip netns exec "${PODS[1]}" $PROBE probe "$WORK/hairpin.json" >"$WORK/h.json" &&
    python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); a.update(json.load(open(sys.argv[2]))); print(json.dumps(a))' \
      "$WORK/c.json" "$WORK/h.json" >"$1"
}

run_mode() {  # run_mode iptables|nftables 4|6
  local mode=$1 fam=$2 rules eps=$EPS node=10.81.1.1 allowed=198.51.100.5 client=10.81.1.2
  [ "$fam" = 6 ] && eps=$EPS6 node=fd00:81:1::1 allowed=2001:db8:51::5 client=fd00:81:1::2
  rules=$WORK/kube.$mode$fam
  "$GEN" --mode "$mode" --family "$fam" --services 8 --endpoints 3 --endpoint-ips "$eps" --node-ip "$node" \
    -o "$rules" || { fail "$mode: generator"; return; }
  "$BIN" services --format json "$rules" >"$WORK/services.json" || { fail "$mode: nf2bpf services"; return; }
  $PROBE targets "$WORK/services.json" "$node" "$allowed" "$client" >"$WORK/targets.json"
  hairpin "$([ "$fam" = 6 ] && echo fd00:10:96::1 || echo 10.96.1.1)"
  mode=$mode$([ "$fam" = 6 ] && echo " IPv6")
  jq -s 'add' "$WORK/targets.json" "$WORK/hairpin.json" >"$WORK/all-targets.json" 2>/dev/null ||
    python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1])) + json.load(open(sys.argv[2]))))' \
      "$WORK/targets.json" "$WORK/hairpin.json" >"$WORK/all-targets.json"

  # The kernel runs kube-proxy's rules.
  if [ "${mode%% *}" = iptables ]; then
    in_srv "$([ "$fam" = 6 ] && echo ip6tables-nft-restore || echo iptables-nft-restore)" <"$rules" ||
      { fail "$mode: iptables-nft-restore"; return; }
  else
    in_srv nft -f "$rules" || { fail "$mode: nft -f"; return; }
  fi
  probe_all "$WORK/kernel.json" || { fail "$mode: probes with the kernel"; return; }
  in_srv nft flush ruleset
  in_srv conntrack -F >/dev/null 2>&1

  # nf2bpf runs them, netfilter empty.
  local out
  out=$(in_srv "$BIN" apply "${IFACES[@]}" "$rules" 2>&1) || {
    fail "$mode: nf2bpf apply"
    echo "$out" | tail -5 | sed 's/^/    /'
    return
  }
  probe_all "$WORK/nf2bpf.json" || fail "$mode: probes with nf2bpf"
  # services --live: the connections each backend got, from the DNAT rules'
  # counters, against the connections the probes made to svc-0 (30 from the
  # client, 30 hairpin).
  local made live
  made=$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1]))
print(sum(1 for k, v in j.items() if "svc-0:p" in k for r in v if r.startswith("pod")))' "$WORK/nf2bpf.json")
  live=$(in_srv "$BIN" services --live --format json | python3 -c 'import json,sys
s=[x for x in json.load(sys.stdin)["services"] if x["name"] == "ns0/svc-0:p"][0]
print(s["connections"], sorted(b["connections"] for b in s["backends"]))')
  [ "${live%% *}" = "$made" ] && pass "$mode: services --live counts svc-0's $made connections (per backend: ${live#* })" ||
    fail "$mode: services --live says '$live' for svc-0, the probes made $made connections"
  in_srv "$BIN" unload >/dev/null 2>&1
  if $PROBE compare "$WORK/kernel.json" "$WORK/nf2bpf.json" "$WORK/all-targets.json" >"$WORK/verdict" 2>&1; then
    pass "$mode mode: $(grep -c '^ok' "$WORK/verdict") frontends behave as with the kernel"
  else
    fail "$mode mode: nf2bpf differs from the kernel"
  fi
  sed "s/^/    $mode: /" "$WORK/verdict"
}

run_mode iptables 4
run_mode nftables 4
run_mode iptables 6
run_mode nftables 6

# An endpoint leaves a UDP Service: the flow that used it must move to
# another endpoint (kube-proxy deletes its conntrack entry; so does nf2bpf),
# though the old pod still answers.
udp_from() {  # udp_from PORT: which pod answers a datagram from the client's PORT to svc-7
  ip netns exec "$CLI" python3 -c '
import socket,sys
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)
s.bind(("10.81.1.2",int(sys.argv[1]))); s.settimeout(1); s.sendto(b"x",("10.96.1.8",53))
try: print(s.recv(100).decode().split()[0])
except OSError: print("none")' "$1"
}
"$GEN" --services 8 --endpoints 3 --endpoint-ips "$EPS" --node-ip 10.81.1.1 -o "$WORK/udp1.rules"
in_srv "$BIN" apply "${IFACES[@]}" "$WORK/udp1.rules" >/dev/null 2>&1 || fail "apply for the UDP endpoint check"
first=$(udp_from 41000)
again=$(udp_from 41000)
case $first in
  pod[0-3]) ;;
  *) fail "no answer from the UDP Service (got '$first')" ;;
esac
[ "$first" = "$again" ] && pass "a UDP flow keeps its endpoint ($first)" || fail "a UDP flow changed endpoint: $first, then $again"
k=${first#pod}
left=$(echo "$EPS" | tr ',' '\n' | grep -v "^10.244.$k.2$" | paste -sd,)
"$GEN" --services 8 --endpoints 3 --endpoint-ips "$left" --node-ip 10.81.1.1 -o "$WORK/udp2.rules"
out=$(in_srv "$BIN" apply "${IFACES[@]}" "$WORK/udp2.rules" 2>&1)
after=$(udp_from 41000)
if [ "$after" != "$first" ] && [ "$after" != none ] && grep -q "cleared [1-9]" <<<"$out"; then
  pass "the endpoint left: the flow's entry was cleared, it now reaches $after"
else
  fail "after $first left the Service the flow reached '$after'"
  echo "$out" | tail -3 | sed 's/^/    /'
fi
# svc-7 removed as a whole by `apply`: the Service's backends are known from
# the generation that was live (its record and service maps), so the flow's
# entry is cleared as `sync` clears it.
before=$(udp_from 41200)
"$GEN" --services 7 --endpoints 3 --endpoint-ips "$left" --node-ip 10.81.1.1 -o "$WORK/udp3.rules"
out=$(in_srv "$BIN" apply "${IFACES[@]}" "$WORK/udp3.rules" 2>&1)
after=$(udp_from 41200)
case "$before/$after" in
  pod[0-3]/none) grep -q "cleared [1-9]" <<<"$out" && pass "svc-7 removed by apply: its UDP flow's entry was cleared, the flow no longer reaches $before" ||
    fail "svc-7 removed by apply: no entry cleared ($(echo "$out" | tail -1))" ;;
  *) fail "svc-7 removed by apply: the flow reached '$before', then '$after'" ;;
esac
in_srv "$BIN" unload >/dev/null 2>&1

# Endpoint churn under traffic, through `sync`: kube-proxy's rewrite when
# one of svc-0's endpoints leaves (its KUBE-SEP chain gone, the others' draws
# 1/2 and the rest) is a change of that Service's backends alone, which sync
# applies in place to the live generation's service maps ("updated", no new
# generation). An established TCP connection to svc-0 keeps its backend and
# loses no exchange through 4 updates, removing pod 2 or 0 and restoring it
# (a TCP connection keeps its endpoint even when the endpoint leaves, as with
# kube-proxy); once an update is live, no new connection reaches the
# endpoint it removed.
STATE="$WORK/sync-state"
cp "$WORK/udp1.rules" "$WORK/churn.rules"
in_srv "$BIN" sync "${IFACES[@]}" --state-dir "$STATE" "$WORK/churn.rules" >/dev/null 2>&1 || fail "sync for the churn check"
ip netns exec "$CLI" $PROBE hold 10.96.1.1 80 3.5 >"$WORK/hold.json" &
holder=$!
sleep 0.5
echo '[{"id": "svc-0", "proto": "tcp", "ip": "10.96.1.1", "port": 80, "src": null, "count": 20}]' >"$WORK/svc0.json"
updated=0
for i in 1 2 3 4; do
  sleep 0.2
  gone=
  if [ $((i % 2)) -eq 1 ]; then
    gone=$((i == 1 ? 2 : 0))
    $PROBE drop-endpoint "$WORK/udp1.rules" ns0/svc-0:p "10.244.$gone.2" >"$WORK/churn.rules" || fail "drop-endpoint"
  else
    cp "$WORK/udp1.rules" "$WORK/churn.rules"
  fi
  res=$(in_srv "$BIN" sync "${IFACES[@]}" --state-dir "$STATE" --format json "$WORK/churn.rules" 2>/dev/null |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["result"], d.get("services_changed"))')
  case $res in
    "updated ['nat/KUBE-SVC-"*) updated=$((updated + 1)) ;;
    *) fail "churn sync $i: $res, not an in-place update of svc-0" ;;
  esac
  if [ -n "$gone" ]; then
    ip netns exec "$CLI" $PROBE probe "$WORK/svc0.json" >"$WORK/after.json"
    if grep -q "pod$gone " "$WORK/after.json" || ! grep -q '"pod' "$WORK/after.json"; then
      fail "after the update that removed pod$gone: $(cat "$WORK/after.json")"
    fi
  fi
done
wait "$holder"
[ "$updated" -eq 4 ] && pass "4 endpoint changes applied in place (sync: updated); no new connection reached a removed endpoint"
python3 - "$WORK/hold.json" <<'PY' && pass "an established connection kept its backend through 4 updates, no exchange lost" || fail "churn: $(cat "$WORK/hold.json")"
import json, sys
j = json.load(open(sys.argv[1]))
print("    %d exchanges, backends %s" % (j["exchanges"], j["backends"]))
sys.exit(0 if j["failed"] == 0 and len(j["backends"]) == 1 and j["exchanges"] > 30 else 1)
PY
# A UDP Service removed as a whole (svc-7): kube-proxy deletes the conntrack
# entries to its IP; so does sync (it knows the Service from the policy that
# was live), else the flow would go on reaching its old endpoint.
first=$(udp_from 41500)
"$GEN" --services 7 --endpoints 3 --endpoint-ips "$EPS" --node-ip 10.81.1.1 -o "$WORK/churn.rules"
out=$(in_srv "$BIN" sync "${IFACES[@]}" --state-dir "$STATE" --max-change 100 --format json "$WORK/churn.rules" 2>/dev/null)
after=$(udp_from 41500)
cleared=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["result"], d.get("stale_udp_cleared", 0))' "$out")
case "$first/$after/$cleared" in
  pod[0-3]/none/"swapped "[1-9]*) pass "svc-7 removed: its UDP flow's entry was cleared ($cleared), the flow no longer reaches $first" ;;
  *) fail "svc-7 removed: the flow reached '$first', then '$after' (sync: $cleared)" ;;
esac
in_srv "$BIN" unload >/dev/null 2>&1

# Many chains: 100 Services x 10 endpoints are 1,200 chains, whose names once
# overflowed the generation's state record (the swap failed).
"$GEN" --services 100 --endpoints 10 --kind clusterip -o "$WORK/big.rules"
out=$(in_srv "$BIN" apply "${IFACES[@]}" "$WORK/big.rules" 2>&1) &&
  in_srv "$BIN" status --format json | python3 -c 'import json,sys; j=json.load(sys.stdin); sys.exit(not j["live"]["valid"])' &&
  pass "100 services x 10 endpoints (1,200 chains) apply, and the generation is live" ||
  { fail "100 services x 10 endpoints do not apply"; echo "$out" | tail -3 | sed 's/^/    /'; }
in_srv "$BIN" unload >/dev/null 2>&1

[ "$fails" -eq 0 ] && echo "all kube-proxy differential checks passed" || echo "$fails kube-proxy check(s) failed"
[ "$fails" -eq 0 ]
