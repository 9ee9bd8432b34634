#!/usr/bin/env bash
# The demo: translate the bundled host firewall and print the per-rule report.
set -uo pipefail
BUILD=${1:-build}
cd "$(dirname "$0")/.."
NF2BPF="$BUILD/nf2bpf"
RULES=testdata/iptables/host-firewall.rules

echo "== nf2bpf translate $RULES"
"$NF2BPF" translate --allow-partial "$RULES"
echo "(exit status $?)"
