#!/usr/bin/env bash
# The cut-over backup must always be restorable: `apply --cutover` then
# `restore` on every bundled nft ruleset (testdata/nft), on rulesets that
# exercise anonymous sets and maps and chains only a named verdict map jumps
# to, and on random nft rulesets from the differential generator, each in its
# own throwaway network namespace. `nft list ruleset` after restore must be
# what it was before. Normalised, as nft itself renumbers or moves them:
# counter values and the remaining time of set elements with a timeout
# (handles and the names of anonymous sets are not in the listing).
# Needs root; exits 77 otherwise.
#   cutover_restore.sh NF2BPF SOURCE_DIR DIFFTEST [RANDOM_COUNT]
# NF2BPF_RESTORE_SEED=N replays the random part.
set -u
BIN=$1
SRC=$2
GEN=$3
COUNT=${4:-8}
. "$(dirname "$0")/lib.sh" nf2bpf-cr
command -v nft >/dev/null || { echo "SKIPPED: nft is not installed"; exit 77; }
SEED=${NF2BPF_RESTORE_SEED:-$(( $(date +%s) % 1000000 ))}
echo "random rulesets from seed $SEED (NF2BPF_RESTORE_SEED=$SEED replays them)"

ruleset() { in_srv nft list ruleset | sed -E 's/counter packets [0-9]+ bytes [0-9]+/counter/g; s/ expires [0-9dhms.]+//g'; }

# chains_sorted: nft list ruleset on stdin with each table's chain blocks in
# name order (only the order of the blocks changes, nothing inside them).
chains_sorted() {
  python3 -c '
import re, sys
text = sys.stdin.read()
def sort_table(m):
    body = m.group(2)
    blocks = re.findall(r"\t(?:chain|set|map|flowtable|counter|quota|limit) [^\n]*\{\n.*?\n\t\}\n", body, re.S)
    rest = body
    for b in blocks: rest = rest.replace(b, "", 1)
    return m.group(1) + "".join(sorted(blocks)) + rest + m.group(3)
print(re.sub(r"(table [^\n]*\{\n)(.*?)(^\}$)", sort_table, text, flags=re.S | re.M))'
}

# round NAME FILE: cut-over and restore of FILE in a fresh namespace.
round() {
  local name=$1 file=$2
  ip netns add "$SRV" || { fail "$name: cannot create a namespace"; return; }
  ip -n "$SRV" link set lo up
  ip -n "$SRV" link add veth0 type veth peer name veth1 && ip -n "$SRV" link set veth0 up
  if ! out=$(in_srv nft -I "$(dirname "$file")" -f "$file" 2>&1); then
    fail "$name: nft -f refused it"; echo "$out" | sed 's/^/    /'
    ip netns del "$SRV"; return
  fi
  local before after restored
  before=$(ruleset)
  expect 0 "$name: apply --cutover" -- in_srv "$BIN" apply --allow-partial --iface veth0 --cutover \
    --backup "$WORK/$name.json" --from nft "$file"
  after=$(ruleset)
  if grep -q "cut-over done: 0 rules and 0 chains" <<<"$LAST"; then
    [ "$after" = "$before" ] && pass "$name: nothing to remove, nothing removed" || fail "$name: ruleset changed"
  else
    [ "$after" != "$before" ] && pass "$name: the cut-over removed rules" || fail "$name: cut-over removed nothing"
  fi
  expect 0 "$name: restore" -- in_srv "$BIN" restore --backup "$WORK/$name.json"
  restored=$(ruleset)
  if [ "$restored" = "$before" ]; then pass "$name: nft list ruleset is back exactly"
  elif [ "$(chains_sorted <<<"$restored")" = "$(chains_sorted <<<"$before")" ]; then
    # Known, left open: a chain the cut-over deleted is created again after
    # the chains it kept, and nft lists chains in creation order. Evaluation
    # does not depend on it; every chain, rule and set is back as it was.
    pass "$name: nft list ruleset is back (chains listed in another order)"
  else
    fail "$name: nft list ruleset differs after restore:"; diff <(echo "$before") <(echo "$restored") | sed 's/^/    /'
  fi
  in_srv "$BIN" status >/dev/null 2>&1 && fail "$name: an eBPF policy is still loaded" || pass "$name: unloaded"
  ip netns del "$SRV"
}

# ---- every bundled nft ruleset (include fragments are loaded by the files that include them)
for f in "$SRC"/testdata/nft/*.nft; do
  grep -q '^table ' "$f" || continue
  round "$(basename "$f" .nft)" "$f"
done

# ---- anonymous sets and maps side by side (issue 11: restore failed on this one)
cat > "$WORK/anon.nft" <<'EOF'
table inet filter {
	chain input {
		type filter hook input priority filter; policy drop;
		ct state vmap { established : accept, related : accept, invalid : drop }
		tcp dport { 22, 9100 } accept
		udp dport vmap { 53 : accept, 123 : accept }
		ip saddr { 10.0.0.0/8, 192.168.0.0/16 } tcp dport 8000-8100 accept
	}
}
EOF
round anon-sets "$WORK/anon.nft"

# ---- a chain only a named verdict map jumps to, in a table the cut-over empties
cat > "$WORK/named-map.nft" <<'EOF'
table inet fw {
	map l4 {
		type inet_service : verdict
		elements = { 25 : jump smtp_in, 80 : accept, 443 : goto web }
	}
	chain smtp_in {
		ip saddr 10.0.0.0/8 accept
		counter drop
	}
	chain web {
		ip saddr 192.0.2.0/24 drop
		accept
	}
	chain input {
		type filter hook input priority filter; policy drop;
		ct state established,related accept
		tcp dport vmap @l4
	}
}
EOF
round named-map "$WORK/named-map.nft"

# ---- random nft rulesets from the differential generator
for i in $(seq 0 $((COUNT - 1))); do
  fam=$((i % 2 == 0 ? 4 : 6))
  mode=$([ $((i % 4)) -lt 2 ] && echo host || echo router)
  "$GEN" --dump --reference nft --family $fam --mode $mode --cases 1 --seed $((SEED + i)) > "$WORK/random-$i.nft"
  round "random-$i-v$fam-$mode-seed$((SEED + i))" "$WORK/random-$i.nft"
done

echo "cutover_restore: $fails failures"
[ "$fails" -eq 0 ]
