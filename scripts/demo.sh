#!/usr/bin/env bash
# The demo, on the bundled host firewall (testdata/iptables/host-firewall.rules):
#   1. translate it and print the per-rule report;
#   2. diff it against its compiled policy on the bundled capture
#      (testdata/pcap/host-firewall.pcapng, made with `nf2bpf diff --synthesize`);
#   3. as root: apply it in a throwaway network namespace, show `status`,
#      send a few packets, and unload. Nothing outside that namespace is touched.
set -uo pipefail
BUILD=${1:-build}
cd "$(dirname "$0")/.."
NF2BPF="$(pwd)/$BUILD/nf2bpf"
RULES=testdata/iptables/host-firewall.rules
CAPTURE=testdata/pcap/host-firewall.pcapng

echo "== nf2bpf translate --allow-partial $RULES"
"$NF2BPF" translate --allow-partial "$RULES"
echo "(exit status $?)"
echo
echo "== nf2bpf diff --pcap $CAPTURE $RULES"
"$NF2BPF" diff --pcap "$CAPTURE" "$RULES"
echo "(exit status $?)"
echo

if [ "$(id -u)" -ne 0 ]; then
  echo "== apply: skipped (needs root: it loads BPF programs in a throwaway network namespace)"
  exit 0
fi
NS=nf2bpf-demo-$$
PEER=nf2bpf-demo-peer-$$
cleanup() { ip netns del "$NS" 2>/dev/null; ip netns del "$PEER" 2>/dev/null; }
trap cleanup EXIT INT TERM
ip netns add "$NS" && ip netns add "$PEER" || exit 2
ip link add eth0 netns "$NS" type veth peer name eth0 netns "$PEER" || exit 2
ip -n "$NS" addr add 192.0.2.1/24 dev eth0 && ip -n "$NS" link set eth0 up && ip -n "$NS" link set lo up
ip -n "$PEER" addr add 192.0.2.2/24 dev eth0 && ip -n "$PEER" link set eth0 up
in_ns() { ip netns exec "$NS" "$@"; }

echo "== in a throwaway network namespace: nf2bpf apply --allow-partial --iface eth0 $RULES"
in_ns "$NF2BPF" apply --allow-partial --iface eth0 "$RULES" | tail -n 4
echo "(exit status ${PIPESTATUS[0]})"
echo
echo "== ping from a neighbour (host-firewall.rules accepts echo requests, 10/s)"
ip netns exec "$PEER" ping -c 2 -i 0.2 -W 1 192.0.2.1 | tail -n 2
echo
echo "== nf2bpf status"
in_ns "$NF2BPF" status
echo
echo "== nf2bpf unload"
in_ns "$NF2BPF" unload
echo "(exit status $?)"
