#!/usr/bin/env bash
# `apply --cutover` and `restore` in a throwaway pair of network namespaces:
# iptables-nft rules (one of them untranslatable, left in place with
# --allow-partial) next to a foreign nft table; the cut-over must remove
# exactly the translated rules in one transaction, traffic must follow the
# policy at every step, and restore must give back the netfilter ruleset as
# it was (nft list ruleset and iptables-save, modulo counters). Then the same
# with a native nft ruleset (anonymous sets). Needs root; exits 77 otherwise.
#   cutover.sh NF2BPF SOURCE_DIR
set -u
BIN=$1
SRC=$2
. "$(dirname "$0")/lib.sh" nf2bpf-co
ping_ok() { ip netns exec "$CLI" ping -c1 -W0.4 -q 10.79.0.2 >/dev/null 2>&1; }
tcp_ok() { ip netns exec "$CLI" timeout 0.5 bash -c "exec 3<>/dev/tcp/10.79.0.2/$1" 2>/dev/null; }
# The netfilter ruleset without counters (they move with traffic).
ruleset() { in_srv nft list ruleset | sed -E 's/counter packets [0-9]+ bytes [0-9]+/counter/; s/packets [0-9]+ bytes [0-9]+//'; }
ipt_save() { in_srv iptables-nft-save | grep -v '^#' | sed -E 's/\[[0-9]+:[0-9]+\]/[-]/'; }
loaded() { in_srv "$BIN" status --format json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get("loaded", False))' 2>/dev/null; }

ip netns add "$CLI" && ip netns add "$SRV" || { echo "cannot create namespaces"; exit 2; }
ip link add c0 netns "$CLI" type veth peer name s0 netns "$SRV"
ip -n "$CLI" addr add 10.79.0.1/24 dev c0 && ip -n "$SRV" addr add 10.79.0.2/24 dev s0
for ns in "$CLI" "$SRV"; do ip -n "$ns" link set lo up; done
ip -n "$CLI" link set c0 up && ip -n "$SRV" link set s0 up
for port in 8001 8002 8005; do
  in_srv python3 -c '
import socket,sys
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)
s.bind(("10.79.0.2",int(sys.argv[1]))); s.listen(1024)
while True:
  c,_=s.accept(); c.close()' $port &
  BG+=($!)
done
for i in $(seq 50); do [ "$(in_srv ss -ltn | grep -c ':800[125] ')" = 3 ] && break; sleep 0.1; done

# The policy: ping and TCP 8001 (through a user chain) allowed, the rest
# dropped; one rule nf2bpf cannot translate (-m string) stays in netfilter.
cat > "$WORK/fw.rules" <<'EOF'
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:TCPIN - [0:0]
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p icmp -m icmp --icmp-type 8 -j ACCEPT
-A INPUT -m string --string "nf2bpf-never-sent" --algo bm --to 65535 -j DROP
-A INPUT -p tcp -j TCPIN
-A TCPIN -p tcp -m tcp --dport 8001 -j ACCEPT
-A TCPIN -s 10.9.0.0/16 -p tcp -m multiport --dports 9000:9100 -m comment --comment "office" -j ACCEPT
COMMIT
EOF
# A table nf2bpf is not given: it only counts TCP 8001 and must survive everything.
cat > "$WORK/foreign.nft" <<'EOF'
table inet foreign {
	chain watch {
		type filter hook input priority 10; policy accept;
		tcp dport 8001 counter
	}
}
EOF
in_srv iptables-nft-restore "$WORK/fw.rules" || { echo "iptables-nft-restore failed"; exit 2; }
in_srv nft -f "$WORK/foreign.nft" || { echo "nft -f failed"; exit 2; }
in_srv iptables-nft-save > "$WORK/saved.rules"
policy() { ping_ok && tcp_ok 8001 && ! tcp_ok 8002; }
foreign_count() { in_srv nft list chain inet foreign watch | sed -nE 's/.*counter packets ([0-9]+).*/\1/p'; }

policy && pass "netfilter alone: ping, 8001 pass, 8002 dropped" || fail "netfilter alone does not follow the policy"
before=$(ruleset)
before_ipt=$(ipt_save)

# ---- refusals that change nothing -------------------------------------------------
expect 2 "restore with a --backup that is not there (cannot read)" -- in_srv "$BIN" restore --backup "$WORK/none.json"
has "no cut-over backup at $WORK/none.json" "restore names the missing backup"
expect 1 "apply --cutover without --allow-partial" -- in_srv "$BIN" apply --cutover --backup "$WORK/b.json" "$WORK/saved.rules"
has "unsupported -m string" "the untranslatable rule is named"
# A source that is not what the kernel has: refused before anything is loaded.
grep -v 'dport 8001' "$WORK/saved.rules" > "$WORK/other.rules"
expect 1 "apply --cutover of a ruleset that is not the live one" -- \
  in_srv "$BIN" apply --cutover --allow-partial --backup "$WORK/b.json" "$WORK/other.rules"
has "cut-over refused" "says the cut-over is refused"
[ "$(loaded)" = "False" ] && pass "refused cut-over loaded nothing" || fail "refused cut-over left an eBPF policy loaded"
[ "$(ruleset)" = "$before" ] && pass "refused cut-over removed nothing" || fail "refused cut-over changed the ruleset"
[ -e "$WORK/b.json" ] && fail "refused cut-over left a backup" || pass "no backup written"
expect 0 "apply --cutover --dry-run" -- in_srv "$BIN" apply --cutover --dry-run --allow-partial --backup "$WORK/b.json" "$WORK/saved.rules"
has "would remove 5 rules" "dry run: 5 rules to remove"
[ "$(loaded)" = "False" ] && [ "$(ruleset)" = "$before" ] && pass "dry run changes nothing" || fail "dry run changed something"

# ---- the cut-over ---------------------------------------------------------------------
c0=$(foreign_count)
expect 0 "apply --cutover --allow-partial" -- in_srv "$BIN" apply --cutover --allow-partial --backup "$WORK/b.json" "$WORK/saved.rules"
has "cut-over done: 5 rules" "5 translated rules removed"
has "1 rules kept" "1 rule kept"
has "not translated (unsupported)" "the report says why the rule stayed"
has "untouched (not translated): inet foreign" "the report names the foreign table"
after=$(ruleset)
echo "$after" | grep -q 'string' && pass "the untranslated rule is still in netfilter" || fail "untranslated rule removed"
[ "$(echo "$after" | sed -n '/^table ip filter/,/^}/p' | grep -c 'dport\|icmp\|ct state\|conntrack\|jump\|saddr')" = 0 ] &&
  pass "the translated rules are gone" || { fail "translated rules left:"; echo "$after" | sed 's/^/    /'; }
echo "$after" | grep -q 'chain INPUT {' && echo "$after" | grep -A1 'chain INPUT {' | grep -q 'policy accept' &&
  pass "INPUT's drop policy moved to eBPF (now accept)" || fail "INPUT policy after cut-over"
diff <(echo "$before" | sed -n '/table inet foreign/,$p') <(echo "$after" | sed -n '/table inet foreign/,$p') >/dev/null &&
  pass "the foreign table is untouched" || fail "the foreign table changed"
policy && pass "after cut-over: traffic follows the policy (eBPF)" || fail "after cut-over the policy is not enforced"
[ "$(foreign_count)" -gt "$c0" ] && pass "the foreign table still sees packets" || fail "foreign counter did not move"
[ "$(loaded)" = "True" ] && pass "the eBPF policy is live" || fail "no eBPF policy after cut-over"
python3 -c 'import json,sys; b=json.load(open(sys.argv[1])); assert b["nf2bpf-backup"]==1 and b["summary"]["rules_removed"]==5 and "inet foreign" in b["untouched"]' "$WORK/b.json" &&
  pass "backup written, with its summary" || fail "backup content"
expect 1 "a second cut-over refuses to overwrite the backup" -- in_srv "$BIN" apply --cutover --allow-partial --backup "$WORK/b.json" "$WORK/saved.rules"
has "a backup from an earlier cut-over is at" "names the existing backup"
policy && [ "$(ruleset)" = "$after" ] && pass "the refused second cut-over changed nothing" || fail "second cut-over changed something"

# ---- restore ------------------------------------------------------------------------------
expect 0 "restore --dry-run" -- in_srv "$BIN" restore --dry-run --backup "$WORK/b.json"
has "would send" "restore dry run lists the transaction"
[ "$(ruleset)" = "$after" ] && [ "$(loaded)" = "True" ] && pass "restore --dry-run changes nothing" || fail "restore --dry-run changed something"
expect 0 "restore" -- in_srv "$BIN" restore --backup "$WORK/b.json"
has "eBPF policy unloaded" "restore unloads"
restored=$(ruleset)
if [ "$restored" = "$before" ]; then pass "nft list ruleset is back exactly"; else
  fail "nft list ruleset differs after restore:"; diff <(echo "$before") <(echo "$restored") | sed 's/^/    /'; fi
[ "$(ipt_save)" = "$before_ipt" ] && pass "iptables-save is back exactly" || { fail "iptables-save differs"; diff <(echo "$before_ipt") <(ipt_save) | sed 's/^/    /'; }
[ "$(loaded)" = "False" ] && pass "nothing loaded after restore" || fail "eBPF policy still loaded after restore"
in_srv tc filter show dev s0 ingress | grep -q . && fail "a tc filter is left on s0" || pass "no tc filter left"
policy && pass "after restore: netfilter enforces the policy again" || fail "after restore the policy is not enforced"
expect 2 "restore again (the backup was used and moved)" -- in_srv "$BIN" restore --backup "$WORK/b.json"
[ -e "$WORK/b.json.restored" ] && pass "used backup kept as .restored" || fail "no .restored backup"

# ---- a second round, then a kept rule gone: restore refuses as a whole -------------------
expect 0 "cut-over again" -- in_srv "$BIN" apply --cutover --allow-partial --backup "$WORK/b2.json" "$WORK/saved.rules"
policy && pass "policy enforced after the second cut-over" || fail "traffic after the second cut-over"
in_srv iptables-nft-save > "$WORK/mid.rules"
in_srv iptables-nft -D INPUT 1
expect 1 "restore when a rule that stayed is gone" -- in_srv "$BIN" restore --backup "$WORK/b2.json"
has "stayed at the cut-over but is gone now" "restore names the conflict"
[ "$(loaded)" = "True" ] && pass "refused restore leaves the eBPF policy loaded" || fail "refused restore unloaded"
in_srv iptables-nft-restore "$WORK/mid.rules"
expect 1 "restore when the kept rule came back with a new handle" -- in_srv "$BIN" restore --backup "$WORK/b2.json"
in_srv nft flush ruleset; in_srv iptables-nft-restore "$WORK/fw.rules"; in_srv nft -f "$WORK/foreign.nft"
in_srv "$BIN" unload >/dev/null 2>&1
policy && [ "$(ruleset)" = "$before" ] && pass "reset to the original rules" || fail "reset"

# ---- a native nft ruleset with anonymous sets -------------------------------------------
in_srv iptables-nft -F; in_srv iptables-nft -X; in_srv nft flush ruleset
cat > "$WORK/fw.nft" <<'EOF'
table inet fw {
	chain input {
		type filter hook input priority filter; policy drop;
		ct state established,related accept
		icmp type echo-request accept
		tcp dport { 8001, 8005 } accept
		ip saddr { 10.9.0.0/16, 10.10.0.0/16 } tcp dport 9000-9100 counter accept comment "office"
	}
	chain forward {
		type filter hook forward priority filter; policy drop;
	}
}
EOF
in_srv nft -f "$WORK/fw.nft" && in_srv nft -f "$WORK/foreign.nft" || { echo "nft -f failed"; exit 2; }
before=$(ruleset)
policy && tcp_ok 8005 && pass "nft ruleset enforced by netfilter" || fail "nft ruleset not enforced"
expect 0 "apply --from nft --cutover" -- in_srv "$BIN" apply --from nft --cutover --backup "$WORK/n.json" "$WORK/fw.nft"
has "(the table stays, empty)" "a fully translated table is emptied"
after=$(ruleset)
echo "$after" | grep -q 'chain input' && fail "chain input still there" || pass "table inet fw emptied"
echo "$after" | grep -q 'table inet foreign' && pass "foreign table still there" || fail "foreign table gone"
policy && tcp_ok 8005 && pass "after nft cut-over: policy enforced by eBPF" || fail "after nft cut-over"
in_srv nft add chain inet fw input
expect 1 "restore when a deleted chain exists again" -- in_srv "$BIN" restore --backup "$WORK/n.json"
has "exists again" "restore names the chain in the way"
in_srv nft delete chain inet fw input
expect 0 "restore" -- in_srv "$BIN" restore --backup "$WORK/n.json"
restored=$(ruleset)
if [ "$restored" = "$before" ]; then pass "nft ruleset back exactly (anonymous sets included)"; else
  fail "nft ruleset differs after restore:"; diff <(echo "$before") <(echo "$restored") | sed 's/^/    /'; fi
policy && tcp_ok 8005 && pass "after restore: netfilter enforces the nft ruleset" || fail "after nft restore"

echo "cutover: $fails failures"
[ "$fails" -eq 0 ]
