#!/usr/bin/env bash
# Round trip through the kernel: each nftables ruleset is loaded with `nft -f`
# into a scratch network namespace, then read back three ways, and the three
# IR dumps must be equal:
#   1. nf2bpf's text front-end on the file as written,
#   2. nf2bpf's JSON front-end on `nft -j list ruleset` of the namespace,
#   3. nf2bpf translate --from kernel inside the namespace (libnftables).
# Needs root; exits 77 (skipped) otherwise. Never touches the host namespace.
#
# usage: nft_roundtrip.sh NF2BPF_BINARY SOURCE_DIR [FILE.nft ...]
set -u

BIN=${1:?usage: nft_roundtrip.sh NF2BPF_BINARY SOURCE_DIR [FILE.nft ...]}
SRC=${2:?usage: nft_roundtrip.sh NF2BPF_BINARY SOURCE_DIR [FILE.nft ...]}
shift 2

if [ "$(id -u)" -ne 0 ]; then
	echo "SKIPPED: the nft round trip needs root (network namespaces, nft -f)"
	exit 77
fi
for tool in ip nft; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "SKIPPED: '$tool' is not installed"
		exit 77
	fi
done

NS="nf2bpf-rt-$$-${RANDOM}"
TMP=$(mktemp -d)
cleanup() {
	ip netns del "$NS" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! ip netns add "$NS"; then
	echo "SKIPPED: cannot create a network namespace"
	exit 77
fi

# Devices the rulesets name where nft resolves them at load time (iif, oif):
# veth pairs inside the scratch namespace (both ends stay in it).
for dev in eth0 eth1 br-lan wan wan6 docker0; do
	ip -n "$NS" link add "$dev" type veth peer name "$dev-rt" 2>/dev/null
	ip -n "$NS" link set "$dev" up 2>/dev/null
done

if [ $# -gt 0 ]; then
	files=("$@")
else
	# Every realistic ruleset and every golden input that nft accepts
	# (inputs meant to be rejected say so on their first line).
	files=()
	for f in "$SRC"/testdata/nft/*.nft "$SRC"/tests/golden/nft/*.nft; do
		head -n1 "$f" | grep -q 'nft-roundtrip: skip' && continue
		# Included fragments are loaded through the file that includes them.
		grep -q '^table\|^add \|^flush' "$f" || continue
		files+=("$f")
	done
fi

# Source lines differ by design (the file has them, JSON does not).
normalise() { sed -E 's/^(    |  [0-9]+ )@[0-9]+:/\1@:/'; }

pass=0
fail=0
for f in "${files[@]}"; do
	name=$(basename "$f")
	ip netns exec "$NS" nft flush ruleset
	if ! ip netns exec "$NS" nft -I "$(dirname "$f")" -f "$f" 2>"$TMP/load.err"; then
		echo "FAIL $name: nft -f refused it:"
		sed 's/^/    /' "$TMP/load.err"
		fail=$((fail + 1))
		continue
	fi
	"$BIN" translate --from nft --dump-ir "$f" >"$TMP/text.dump" 2>"$TMP/text.err"
	ip netns exec "$NS" nft -j list ruleset >"$TMP/kernel.json"
	"$BIN" translate --from nft-json --dump-ir "$TMP/kernel.json" >"$TMP/json.dump" 2>"$TMP/json.err"
	ip netns exec "$NS" "$BIN" translate --from kernel --dump-ir >"$TMP/kernel.dump" 2>"$TMP/kernel.err"
	ok=1
	for side in json kernel; do
		if ! diff -u <(normalise <"$TMP/text.dump") <(normalise <"$TMP/$side.dump") >"$TMP/$side.diff"; then
			echo "FAIL $name: the text front-end and --from ${side/json/nft-json (nft -j list ruleset)} disagree:"
			sed 's/^/    /' "$TMP/$side.diff" | head -60
			ok=0
		fi
	done
	if [ ! -s "$TMP/text.dump" ]; then
		echo "FAIL $name: no IR dump from the text front-end:"
		sed 's/^/    /' "$TMP/text.err"
		ok=0
	fi
	if [ $ok = 1 ]; then
		pass=$((pass + 1))
		echo "ok   $name"
	else
		fail=$((fail + 1))
	fi
done

echo "nft round trip: $pass passed, $fail failed (${#files[@]} rulesets)"
[ "$fail" -eq 0 ]
