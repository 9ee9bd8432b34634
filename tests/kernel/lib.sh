# Shared by the kernel shell tests (lifecycle.sh, sync.sh, cutover.sh, nth.sh ...):
# a client and a server namespace with unique names, removed on exit whatever
# happens, and the ok:/FAIL: reporting. Source it with the test's tag:
#   . "$(dirname "$0")/lib.sh" nf2bpf-xx
# Exits 77 (skipped) when not root.
if [ "$(id -u)" -ne 0 ]; then echo "SKIPPED: needs root"; exit 77; fi

TAG=$1-$$
CLI=$TAG-cli
SRV=$TAG-srv
WORK=$(mktemp -d)
BG=()  # background processes to stop at exit
cleanup() {
  for p in "${BG[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  # Whatever still runs in the namespaces (listeners behind wrapper scripts).
  for ns in "$CLI" "$SRV"; do for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null; done; done
  ip netns del "$CLI" 2>/dev/null
  ip netns del "$SRV" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

fails=0
pass() { echo "ok: $*"; }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
expect() {  # expect EXIT_CODE DESCRIPTION -- command...
  local want=$1 what=$2
  shift 3
  local out rc
  out=$("$@" 2>&1)
  rc=$?
  if [ "$rc" -eq "$want" ]; then pass "$what (exit $rc)"; else fail "$what: exit $rc, wanted $want"; echo "$out" | sed 's/^/    /'; fi
  LAST="$out"
}
has() {  # has TEXT DESCRIPTION: the last expect's output contains TEXT
  if grep -qF -- "$1" <<<"$LAST"; then pass "$2"; else fail "$2: no '$1' in:"; echo "$LAST" | sed 's/^/    /'; fi
}
in_srv() { ip netns exec "$SRV" "$@"; }
# The client and server namespaces joined by one veth pair, c0 (NET.2) and
# s0 (NET.1) on NET.0/24:  veth_pair 10.83.1
veth_pair() {
  ip netns add "$CLI" && ip netns add "$SRV" || { echo "cannot create namespaces"; exit 2; }
  ip link add c0 netns "$CLI" type veth peer name s0 netns "$SRV"
  for ns in "$CLI" "$SRV"; do ip -n "$ns" link set lo up; done
  ip -n "$CLI" addr add "$1.2/24" dev c0 && ip -n "$CLI" link set c0 up
  ip -n "$SRV" addr add "$1.1/24" dev s0 && ip -n "$SRV" link set s0 up
}

# Datagram sequences: udp_recv NS OUT PORT... starts tests/kernel/udp_recv.py
# in namespace NS in the background (its pid in RECV); after the sender's
# "end", `wait "$RECV"`, then arrivals OUT N prints A (arrived) or D per index
# 0..N-1.
KDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
udp_recv() {
  local ns=$1
  shift
  ip netns exec "$ns" python3 "$KDIR/udp_recv.py" "$@" &
  RECV=$!
  sleep 0.3
}
arrivals() {
  python3 -c '
import sys
got = set(map(int, open(sys.argv[1]).read().split()))
print("".join("A" if i in got else "D" for i in range(int(sys.argv[2]))))' "$1" "$2"
}

# The kernel, then nf2bpf, on one ruleset: loads RULES (iptables-save text,
# or an nft file named *.nft) with iptables-restore (nft -f) in the server
# namespace and runs the test's `run` (its output in K), empties the filter
# table (the ruleset), applies RULES with nf2bpf on s0 and runs it again (N);
# both are printed.
kernel_then_nf2bpf() {
  local rules=$1
  if [[ $rules == *.nft ]]; then
    in_srv nft -f "$rules" || { echo "nft -f failed"; sed 's/^/    /' "$rules"; exit 2; }
    K=$(run)
    in_srv nft flush ruleset
  else
    in_srv iptables-restore "$rules" || { echo "iptables-restore failed"; sed 's/^/    /' "$rules"; exit 2; }
    K=$(run)
    in_srv iptables-restore <<<$'*filter\nCOMMIT'
  fi
  expect 0 "apply the same rules with nf2bpf" -- in_srv "$BIN" apply --iface s0 "$rules"
  N=$(run)
  echo "kernel: $K"
  echo "nf2bpf: $N"
}
