#!/usr/bin/env bash
# The release binary is stripped and its debug info is beside it, linked:
#   stripped.sh NF2BPF BUILD_TYPE
# Other build types are not stripped: exit 77 (skipped).
set -u
BIN=${1:?usage: stripped.sh NF2BPF BUILD_TYPE}
case ${2:-} in RelWithDebInfo | Release) ;; *) echo "SKIPPED: build type '${2:-}' is not stripped"; exit 77 ;; esac
fails=0
check() { if eval "$2"; then echo "ok    $1"; else echo "FAIL  $1"; fails=$((fails + 1)); fi; }
sections() { readelf -S --wide "$1" 2>/dev/null; }
check "nf2bpf has no debug info" '! sections "$BIN" | grep -q "\.debug_info"'
check "nf2bpf has no symbol table" '! sections "$BIN" | grep -q "\.symtab"'
check "nf2bpf links its debug info (.gnu_debuglink nf2bpf.debug)" \
  'readelf --string-dump=.gnu_debuglink "$BIN" 2>/dev/null | grep -q "nf2bpf.debug"'
size=$(stat -c %s "$BIN")
check "nf2bpf is small (${size} bytes < 40 MB)" '[ "$size" -lt 40000000 ]'
check "nf2bpf.debug is beside it" '[ -f "$BIN.debug" ]'
if [ "${2}" = RelWithDebInfo ]; then
  check "nf2bpf.debug has the debug info" 'sections "$BIN.debug" | grep -q "\.debug_info"'
fi
check "the stripped binary runs" '"$BIN" --version | grep -q "^nf2bpf "'
[ "$fails" -eq 0 ]
