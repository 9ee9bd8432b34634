#!/usr/bin/env bash
# The iptables-nft reader (translator/frontend/iptables/nft_rules: rules read
# over netlink and printed as iptables-nft-save prints them) against the tools
# themselves, on the same tables in a throwaway namespace:
#  - kube-proxy's filter and nat tables (scripts/kube-proxy-gen, every kind of
#    Service, IPv4 and IPv6): nat must be read, and equal iptables-nft-save;
#  - a nat table using every option the reader prints (addresses and masks,
#    interfaces and wildcards, inversions, port ranges, TCP flags, mark,
#    addrtype, statistic, recent, comments that need quoting, DNAT/SNAT
#    ranges and flags, MASQUERADE, MARK, goto), both families;
#  - every chain read alone equals `iptables-nft -S CHAIN`;
#  - what it cannot print (conntrack, a rule nft added) is refused, never
#    printed differently; a missing chain is an error.
# Needs root; exits 77 (skipped) otherwise.
#   xtables_read.sh NF2BPF_XTABLES_READ SOURCE_DIR
set -u
READ=$1
SRC=$2
. "$(dirname "$0")/lib.sh" nf2bpf-xr
ip netns add "$SRV" || { echo "cannot create a namespace"; exit 2; }

# The tool's text without its comment lines and with chain counters zeroed.
saved() {  # saved 4|6 TABLE
  local tool=iptables-nft-save
  [ "$1" = 6 ] && tool=ip6tables-nft-save
  in_srv "$tool" -t "$2" | grep -v '^#' | sed -E 's/\[[0-9]+:[0-9]+\]$/[0:0]/'
}
flag() { [ "$1" = 6 ] && echo -6; }

# compare FAMILY TABLE MUST: the reader's text equals the tool's; with MUST=must
# the reader may not refuse, otherwise a refusal (exit 3) passes.
compare() {
  local fam=$1 table=$2 must=$3 rc
  in_srv "$READ" $(flag "$fam") "$table" >"$WORK/ours" 2>"$WORK/err"
  rc=$?
  if [ "$rc" -eq 3 ] && [ "$must" != must ]; then
    pass "v$fam $table: refused ($(cat "$WORK/err"))"
    return
  fi
  if [ "$rc" -ne 0 ]; then fail "v$fam $table: exit $rc: $(cat "$WORK/err")"; return; fi
  saved "$fam" "$table" >"$WORK/theirs"
  if diff -u "$WORK/theirs" "$WORK/ours" >"$WORK/diff"; then
    pass "v$fam $table: $(grep -c '^-A' "$WORK/ours") rules as iptables-nft-save prints them"
  else
    fail "v$fam $table differs from iptables-nft-save:"
    head -20 "$WORK/diff" | sed 's/^/    /'
  fi
}

# chains FAMILY TABLE: each chain read alone equals `iptables-nft -S CHAIN`.
chains() {
  local fam=$1 table=$2 tool=iptables-nft bad=0 n=0 c
  [ "$fam" = 6 ] && tool=ip6tables-nft
  for c in $(saved "$fam" "$table" | sed -n 's/^:\([^ ]*\) .*/\1/p'); do
    n=$((n + 1))
    in_srv "$READ" $(flag "$fam") "$table" "$c" >"$WORK/ours" 2>&1 || { bad=$((bad + 1)); continue; }
    in_srv "$tool" -t "$table" -S "$c" | grep '^-A' | diff -q - "$WORK/ours" >/dev/null || bad=$((bad + 1))
  done
  if [ "$bad" -eq 0 ] && [ "$n" -gt 0 ]; then pass "v$fam $table: $n chains read alone as $tool -S prints them"
  else fail "v$fam $table: $bad of $n chains read alone differ from $tool -S"; fi
}

for fam in 4 6; do
  restore=iptables-nft-restore
  [ "$fam" = 6 ] && restore=ip6tables-nft-restore
  python3 "$SRC/scripts/kube-proxy-gen" --mode iptables --family "$fam" --services 24 --endpoints 3 --kind mix \
    -o "$WORK/kube$fam.rules" || fail "kube-proxy-gen v$fam"
  in_srv "$restore" "$WORK/kube$fam.rules" || fail "$restore of kube-proxy's rules (v$fam)"
  compare "$fam" nat must
  compare "$fam" filter may
  chains "$fam" nat
done

# Every option the reader prints, in a second namespace's nat tables.
ip netns del "$SRV"
ip netns add "$SRV" || { echo "cannot create a namespace"; exit 2; }
cat >"$WORK/nat4" <<'RULES'
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:X - [0:0]
:Y - [0:0]
-A PREROUTING -i eth0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.0.0.1:80
-A PREROUTING ! -s 10.1.0.0/16 -i eth+ -p tcp -m tcp --dport 1000:2000 -j DNAT --to-destination 10.0.0.1-10.0.0.9:80-90 --persistent --random
-A PREROUTING -d 192.168.1.0/25 ! -i lo -p udp -m udp ! --sport 53 -j DNAT --to-destination 10.0.0.2
-A PREROUTING -p udp -m udp --sport 10:20 --dport 30 -j X
-A PREROUTING -s 10.2.3.0/27 -p tcp -m tcp --tcp-flags SYN,ACK SYN -j Y
-A PREROUTING -p tcp -m tcp ! --tcp-flags FIN,SYN,RST,PSH,ACK,URG NONE -j RETURN
-A PREROUTING -p tcp -m tcp ! --dport 22 -m comment --comment ssh -j RETURN
-A PREROUTING ! -p tcp -j X
-A PREROUTING -p sctp -j X
-A PREROUTING -p icmp -j X
-A PREROUTING -m mark --mark 0x10 -j ACCEPT
-A PREROUTING -m mark ! --mark 0x4000/0x4000 -j ACCEPT
-A PREROUTING -m addrtype --src-type LOCAL,BROADCAST ! --dst-type UNICAST --limit-iface-in -j Y
-A PREROUTING -m statistic --mode random --probability 0.25000000000 -j X
-A PREROUTING -m statistic --mode random ! --probability 0.50000000000 -j X
-A PREROUTING -m recent --set --name foo --mask 255.255.255.0 --rdest -j X
-A PREROUTING -m recent ! --rcheck --seconds 60 --reap --hitcount 3 --rttl --name bar --mask 255.255.255.255 --rsource -j X
-A PREROUTING -m recent --update --name baz --mask 255.255.255.255 --rsource -j X
-A PREROUTING -m comment --comment "a \"quoted\" 'one' \\ here" -j X
-A PREROUTING -m comment --comment plain_word-1 -j X
-A OUTPUT -o veth+ -j MARK --set-xmark 0x1/0xff
-A OUTPUT -j MARK --set-xmark 0x4000/0xffffffff
-A POSTROUTING -o eth0 -p tcp -j MASQUERADE --to-ports 1024-2048 --random
-A POSTROUTING -o eth1 -j MASQUERADE --random-fully
-A POSTROUTING -s 10.0.0.0/8 -p udp -j SNAT --to-source 1.2.3.4:1000-2000 --random-fully
-A POSTROUTING -s 10.0.0.0/8 -j SNAT --to-source 1.2.3.4-1.2.3.5 --random-fully --persistent
-A X -g Y
-A Y -j RETURN
COMMIT
RULES
cat >"$WORK/nat6" <<'RULES'
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:X - [0:0]
-A PREROUTING -i eth0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd00::1]:80
-A PREROUTING ! -s fd00:1::/64 -d fd00:2::/61 -p udp -m udp --dport 53 -j DNAT --to-destination fd00::2
-A PREROUTING -d fd00::5/128 -p tcp -m tcp --dport 1:2 -j DNAT --to-destination [fd00::1-fd00::9]:80-90 --random
-A PREROUTING -m statistic --mode random --probability 0.33333333349 -j X
-A PREROUTING -m recent --rcheck --seconds 10800 --reap --name KUBE-SEP-X --mask ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff --rsource -j X
-A PREROUTING -m addrtype --dst-type LOCAL -j X
-A POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A POSTROUTING -o eth0 -p udp -j MASQUERADE --to-ports 40000
-A POSTROUTING -p tcp -j SNAT --to-source [fd00::7]:1000
COMMIT
RULES
in_srv iptables-nft-restore "$WORK/nat4" || fail "iptables-nft-restore of the option table"
in_srv ip6tables-nft-restore "$WORK/nat6" || fail "ip6tables-nft-restore of the option table"
compare 4 nat must
compare 6 nat must
chains 4 nat
chains 6 nat

# A missing chain is an error; what the reader cannot print is refused.
expect 1 "a missing chain is an error" -- in_srv "$READ" nat NO-SUCH-CHAIN
has "No such file" "the error says the chain does not exist"
in_srv iptables-nft -t nat -A Y -m statistic --mode nth --every 3 --packet 1 -j RETURN
expect 3 "statistic --mode nth: refused" -- in_srv "$READ" nat Y
has "match statistic revision 0" "the refusal names the match"
in_srv iptables-nft -t nat -D Y -m statistic --mode nth --every 3 --packet 1 -j RETURN
in_srv nft add rule ip nat X ct state established accept
expect 3 "a rule nft added (ct state): refused" -- in_srv "$READ" nat
has "expression ct" "the refusal names the expression"

echo "$fails failures"
[ "$fails" -eq 0 ]
