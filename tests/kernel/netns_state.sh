#!/usr/bin/env bash
# Per-namespace state is keyed by the namespace cookie, not by the inode
# number the kernel reuses: a namespace that gets a deleted one's inode must
# not be refused --cutover because of the dead one's backup, nor restore it;
# the state of namespaces that are gone is removed. Runs against a scratch
# state root (NF2BPF_STATE_ROOT), never /var/lib/nf2bpf. Needs root; exits 77
# otherwise.
#   netns_state.sh NF2BPF SOURCE_DIR
set -u
BIN=$1
SRC=$2
. "$(dirname "$0")/lib.sh" nf2bpf-ns
command -v nft >/dev/null || { echo "SKIPPED: nft is not installed"; exit 77; }
export NF2BPF_STATE_ROOT=$WORK/state
A=$TAG-a
B=$TAG-b
cleanup_ns() { ip netns del "$A" 2>/dev/null; ip netns del "$B" 2>/dev/null; cleanup; }
trap cleanup_ns EXIT INT TERM
inode() { ip netns exec "$1" stat -L -c %i /proc/self/ns/net; }
mkns() {
  ip netns add "$1" || return 1
  ip -n "$1" link set lo up
  ip -n "$1" link add veth0 type veth peer name veth1 && ip -n "$1" link set veth0 up
  ip netns exec "$1" nft -f "$WORK/fw.nft"
}
cat > "$WORK/fw.nft" <<'EOF'
table inet fw {
	chain input {
		type filter hook input priority filter; policy drop;
		ct state established,related accept
		tcp dport { 22, 8001 } accept
	}
}
EOF

# ---- A: a cut-over, then A is deleted without a restore ------------------------------
mkns "$A" || { echo "cannot create namespaces"; exit 2; }
ino_a=$(inode "$A")
expect 0 "A: apply --cutover" -- ip netns exec "$A" "$BIN" apply --iface veth0 --cutover --from nft "$WORK/fw.nft"
dir_a=$(ls -d "$NF2BPF_STATE_ROOT"/netns-cookie-* 2>/dev/null | head -1)
[ -n "$dir_a" ] && [ -e "$dir_a/cutover-backup.json" ] && pass "A's backup is under its cookie: ${dir_a##*/}" ||
  { fail "no cookie-keyed state for A"; ls -R "$NF2BPF_STATE_ROOT" | sed 's/^/    /'; }
python3 -c 'import json,sys; o=json.load(open(sys.argv[1])); assert o["inode"]==int(sys.argv[2]) and o["cookie"]>0 and o["boot_id"]' \
  "$dir_a/owner.json" "$ino_a" && pass "owner.json records A's cookie, inode and boot" || fail "owner.json content"
ip netns del "$A"

# ---- B: most often the kernel hands out A's inode again --------------------------------
mkns "$B" || { echo "cannot create namespace B"; exit 2; }
ino_b=$(inode "$B")
[ "$ino_b" = "$ino_a" ] && echo "  (B got A's inode $ino_a: the reuse case)" || echo "  (B got inode $ino_b, A had $ino_a)"
# What an older nf2bpf left: a backup under the inode number B now has.
mkdir -p "$NF2BPF_STATE_ROOT/netns-$ino_b"
cp "$dir_a/cutover-backup.json" "$NF2BPF_STATE_ROOT/netns-$ino_b/cutover-backup.json"
expect 1 "B: restore finds no backup of its own" -- ip netns exec "$B" "$BIN" restore
has "no cut-over backup at" "B is not given A's backup"
has "netns-$ino_b/cutover-backup.json" "the inode-keyed backup is pointed out, not used"
before=$(ip netns exec "$B" nft list ruleset)
[ "$before" = "$(ip netns exec "$B" nft list ruleset)" ] && pass "B's ruleset untouched by the refused restore" || fail "ruleset changed"
# A's backup given explicitly: its cookie says it is not B's.
expect 1 "B: restore --backup of A's backup" -- ip netns exec "$B" "$BIN" restore --backup "$dir_a/cutover-backup.json"
has "was made in another network namespace" "restore names the other namespace"
expect 0 "B: apply --cutover is not refused by A's backup" -- ip netns exec "$B" "$BIN" apply --iface veth0 --cutover --from nft "$WORK/fw.nft"
[ -d "$dir_a" ] && fail "A's state directory is still there ($dir_a)" || pass "A's state (a namespace that is gone) was removed"
[ -d "$NF2BPF_STATE_ROOT/netns-$ino_b" ] && pass "an inode-keyed directory whose inode is in use is kept" ||
  fail "the inode-keyed directory of a live inode was removed"
expect 0 "B: restore" -- ip netns exec "$B" "$BIN" restore
[ "$(ip netns exec "$B" nft list ruleset)" = "$before" ] && pass "B's own backup restores B" || fail "B after restore"
ip netns del "$B"
# Once B is gone too, a run elsewhere removes both.
mkns "$A" || { echo "cannot create namespace"; exit 2; }
expect 0 "a sync in a new namespace" -- ip netns exec "$A" "$BIN" sync --iface veth0 --from kernel
left=$(ls "$NF2BPF_STATE_ROOT" | grep -cv "^netns-cookie-$(ip netns exec "$A" python3 -c 'import socket,struct; print(struct.unpack("Q", socket.socket().getsockopt(socket.SOL_SOCKET, 71, 8))[0])')$")
[ "$left" = 0 ] && pass "the state of every namespace that is gone was removed" ||
  { fail "state left behind:"; ls "$NF2BPF_STATE_ROOT" | sed 's/^/    /'; }
ip netns exec "$A" "$BIN" unload >/dev/null 2>&1

echo "netns_state: $fails failures"
[ "$fails" -eq 0 ]
