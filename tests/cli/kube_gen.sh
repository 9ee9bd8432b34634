#!/usr/bin/env bash
# scripts/kube-proxy-gen (issue 13): the bundled outputs in testdata/kube-proxy
# are what it writes; `nf2bpf services` finds every kind of Service in both
# modes; iptables mode translates with nothing left in netfilter; the
# generator's own checks of its arguments.
#   tests/cli/kube_gen.sh NF2BPF SOURCE_DIR
set -u
BIN=${1:?usage: kube_gen.sh NF2BPF SOURCE_DIR}
SRC=$(cd "${2:?usage: kube_gen.sh NF2BPF SOURCE_DIR}" && pwd)
GEN=$SRC/scripts/kube-proxy-gen
W=$(mktemp -d /tmp/nf2bpf-kube-gen.XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0
ok() { echo "ok    $1"; }
bad() { echo "FAIL  $1"; fails=$((fails + 1)); }

for m in iptables:rules nftables:nft; do
  mode=${m%%:*} ext=${m##*:}
  "$GEN" --mode "$mode" --services 8 --endpoints 3 -o "$W/gen.$ext"
  cmp -s "$W/gen.$ext" "$SRC/testdata/kube-proxy/mix-8x3.$ext" && ok "$mode: the bundled file is what the generator writes" ||
    bad "$mode: testdata/kube-proxy/mix-8x3.$ext differs from the generator's output (regenerate it, see its README)"
  "$BIN" services --format json "$W/gen.$ext" >"$W/svc.json" 2>"$W/err" || bad "$mode: nf2bpf services failed: $(cat "$W/err")"
  python3 - "$W/svc.json" "$mode" <<'PY' && ok "$mode: 8 Services of every kind recognised" || bad "$mode: services"
import json, sys
svcs = json.load(open(sys.argv[1]))["services"]
kinds = {f["kind"] for s in svcs for f in s["frontends"]}
ok = len(svcs) == 8 and kinds == {"ClusterIP", "NodePort", "ExternalIP", "LoadBalancer"}
ok &= sum(s["no_endpoints"] for s in svcs) == 1
ok &= sum(s["external_traffic_policy"] == "Local" for s in svcs) == 1
ok &= any(s["source_ranges"] == ["198.51.100.0/24"] for s in svcs)
ok &= any(s["affinity_seconds"] == 10800 for s in svcs)
ok &= all(len(s["backends"]) == 3 for s in svcs if not s["no_endpoints"])
ok &= any(f["protocol"] == "udp" for s in svcs for f in s["frontends"])
if not ok:
    print(json.dumps(svcs, indent=1)[:3000])
sys.exit(0 if ok else 1)
PY
done
for f in mix-8x3.rules mix-8x3.nft; do
  "$BIN" translate "$SRC/testdata/kube-proxy/$f" >"$W/out" 2>&1
  grep -q " 0 unsupported" "$W/out" && ok "$f translates, nothing left in netfilter (affinity included)" ||
    bad "$f: $(tail -1 "$W/out")"
done

# IPv6 (the other half of a dual-stack node): both modes translate whole and
# every Service is found, with IPv6 addresses.
for mode in iptables nftables; do
  "$GEN" --mode "$mode" --family 6 --services 8 --endpoints 3 -o "$W/v6.$mode"
  "$BIN" translate "$W/v6.$mode" >"$W/out" 2>&1
  grep -q " 0 unsupported" "$W/out" && ok "$mode IPv6 translates, nothing left in netfilter" || bad "$mode IPv6: $(tail -1 "$W/out")"
  "$BIN" services --format json "$W/v6.$mode" | python3 -c 'import json,sys
s=json.load(sys.stdin)["services"]
sys.exit(not (len(s) == 8 and all(x["family"] == "ip6" for x in s) and s[0]["frontends"][0]["address"] == "fd00:10:96::1"))' &&
    ok "$mode IPv6: 8 Services, ip6" || bad "$mode IPv6: services"
done

# Many services: chain names stay unique, every Service is found.
"$GEN" --services 600 --endpoints 2 --kind clusterip -o "$W/big.rules"
n=$(grep -c '^:KUBE-SVC-' "$W/big.rules")
[ "$n" -eq 600 ] && ok "600 services: 600 distinct KUBE-SVC chains" || bad "600 services: $n KUBE-SVC chains"
"$BIN" services --format json "$W/big.rules" | python3 -c 'import json,sys; sys.exit(len(json.load(sys.stdin)["services"]) != 600)' &&
  ok "600 services recognised" || bad "600 services not all recognised"

"$GEN" --services -1 >/dev/null 2>&1 && bad "negative --services accepted" || ok "negative --services refused"

[ "$fails" -eq 0 ] && echo "all kube-proxy-gen checks passed"
[ "$fails" -eq 0 ]
