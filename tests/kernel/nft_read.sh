#!/usr/bin/env bash
# The nft chain reader (translator/frontend/nft/netlink_rules: one chain's
# rules read over netlink and printed as `nft list chain` prints them, for
# `sync --watch` in kube-proxy's nftables mode) against nft itself, on the
# same tables in a throwaway namespace:
#  - kube-proxy's nftables-mode tables (scripts/kube-proxy-gen, every kind of
#    Service, IPv4 and IPv6): every service, local and endpoint chain must be
#    read, and equal `nft list chain`; any other chain is read equal or refused;
#  - rules with what the reader prints and kube-proxy does not write (address
#    prefixes with a mask, inversions, sport, comments) equal nft's listing;
#  - what it cannot print (ct, counter, an anonymous set of addresses) is
#    refused, never printed differently; a missing chain is an error.
# Needs root; exits 77 (skipped) otherwise.
#   nft_read.sh NF2BPF_XTABLES_READ SOURCE_DIR
set -u
READ=$1
SRC=$2
. "$(dirname "$0")/lib.sh" nf2bpf-nr
ip netns add "$SRV" || { echo "cannot create a namespace"; exit 2; }

# nft's listing of one chain: its rules, one a line, without the base chain's
# type line.
listed() {  # listed ip|ip6 TABLE CHAIN
  in_srv nft list chain "$1" "$2" "$3" | sed -n '3,$p' | head -n -2 | sed 's/^\t\t//' | grep -v '^type .* hook '
}
# compare FAMILY TABLE PATTERN: every chain whose name matches PATTERN must be
# read and equal nft's listing; the others are read equal or refused.
compare() {
  local fam=$1 table=$2 must=$3 t=ip n=0 read=0 refused=0 bad=0 rc c
  [ "$fam" = 6 ] && t=ip6
  for c in $(in_srv nft -j list chains "$t" | python3 -c '
import json, sys
for x in json.load(sys.stdin)["nftables"]:
    if "chain" in x and x["chain"]["table"] == sys.argv[1]: print(x["chain"]["name"])' "$table"); do
    n=$((n + 1))
    in_srv "$READ" --nft "$fam" "$table" "$c" >"$WORK/ours" 2>"$WORK/err"
    rc=$?
    if [ "$rc" -eq 3 ] && ! [[ "$c" =~ $must ]]; then refused=$((refused + 1)); continue; fi
    if [ "$rc" -ne 0 ]; then
      bad=$((bad + 1))
      echo "    $c: exit $rc: $(cat "$WORK/err")"
      continue
    fi
    listed "$t" "$table" "$c" >"$WORK/theirs"
    if diff -u "$WORK/theirs" "$WORK/ours" >"$WORK/diff"; then
      read=$((read + 1))
    else
      bad=$((bad + 1))
      head -8 "$WORK/diff" | sed 's/^/    /'
    fi
  done
  if [ "$bad" -eq 0 ] && [ "$read" -gt 0 ]; then
    pass "v$fam $table: $read of $n chains read as nft lists them, $refused refused (none of $must)"
  else
    fail "v$fam $table: $bad of $n chains differ from nft's listing or were refused"
  fi
}

for fam in 4 6; do
  for kind in mix affinity; do
    python3 "$SRC/scripts/kube-proxy-gen" --mode nftables --family "$fam" --services 24 --endpoints 3 --kind "$kind" \
      -o "$WORK/kube$fam-$kind.nft" || fail "kube-proxy-gen v$fam $kind"
    in_srv nft -f "$WORK/kube$fam-$kind.nft" || fail "nft -f of kube-proxy's rules (v$fam, $kind)"
    compare "$fam" kube-proxy '^(service|local|endpoint)-[A-Z0-9]{8}-'
    in_srv nft delete table "$([ "$fam" = 6 ] && echo ip6 || echo ip)" kube-proxy
  done
done

# What the reader prints beyond kube-proxy's rules, both families.
in_srv nft -f - <<'RULES' || fail "nft -f of the option table"
table ip t {
  set s { type ipv4_addr; }
  chain x {
    ip saddr 10.2.3.0/27 ip daddr != 192.168.0.0/16 udp sport 53 accept
    ip saddr != 10.0.0.1 tcp dport != 22 drop comment "a comment, with words"
    meta l4proto udp return
    ip daddr @s goto y
    ip saddr != @s jump y
    numgen random mod 3 offset 1 vmap { 1 : goto y, 2 : jump y, 3 : goto y }
  }
  chain y {
    add @s { ip saddr }
    meta l4proto sctp dnat to 10.0.0.9:1234
  }
  chain z {
    ct state established accept
  }
  chain w {
    ip saddr { 10.0.0.1, 10.0.0.2 } accept
  }
  chain v {
    counter accept
  }
}
table ip6 t {
  chain x {
    ip6 saddr fd00:1::/61 ip6 daddr != fd00::5 tcp dport 80 goto y
    numgen random mod 2 vmap { 0 : goto y, 1 : goto y }
  }
  chain y {
    meta l4proto tcp dnat to [fd00::1]:8080
  }
}
RULES
compare 4 t '^(x|y)$'
compare 6 t '^(x|y)$'
expect 3 "ct state: refused" -- in_srv "$READ" --nft 4 t z
has "expression ct" "the refusal names the expression"
expect 3 "an anonymous set of addresses: refused" -- in_srv "$READ" --nft 4 t w
has "anonymous set" "the refusal names the set"
expect 3 "counter: refused" -- in_srv "$READ" --nft 4 t v
expect 1 "a missing chain is an error" -- in_srv "$READ" --nft 4 t no-such-chain
has "No such file" "the error says the chain does not exist"

echo "$fails failures"
[ "$fails" -eq 0 ]
