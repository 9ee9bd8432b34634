#!/usr/bin/env bash
# Regenerates man/nf2bpf.8 from man/nf2bpf.8.in: the SUPPORTED MATCHES AND
# TARGETS section comes from the capability table (`nf2bpf capabilities
# --format man`), so it cannot drift from the code.
#   gen-man.sh NF2BPF [OUT]     (OUT defaults to man/nf2bpf.8)
set -euo pipefail
BIN=$1
cd "$(dirname "$0")/.."
OUT=${2:-man/nf2bpf.8}
version=$("$BIN" --version | awk '{print $2}')
caps=$(mktemp)
trap 'rm -f "$caps"' EXIT
"$BIN" capabilities --format man > "$caps"
awk -v caps="$caps" -v ver="$version" '
  /^\.\\" @CAPABILITIES@$/ { while ((getline line < caps) > 0) print line; next }
  { gsub(/@VERSION@/, ver); print }
' man/nf2bpf.8.in > "$OUT"
