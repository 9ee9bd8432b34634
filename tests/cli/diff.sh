#!/usr/bin/env bash
# CLI checks for `nf2bpf diff`: exit codes, messages and report shapes.
#   tests/cli/diff.sh NF2BPF SOURCE_DIR
set -u
BIN=${1:?usage: diff.sh NF2BPF SOURCE_DIR}
case $BIN in /*) ;; *) BIN=$PWD/$BIN ;; esac  # some checks run in another directory
SRC=$(cd "${2:?usage: diff.sh NF2BPF SOURCE_DIR}" && pwd)
P=$SRC/testdata/pcap
TMP=$(mktemp -d /tmp/nf2bpf-cli-diff.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
fails=0 checks=0

# run NAME EXPECTED_EXIT ARGS... : runs nf2bpf, keeps stdout/stderr in $OUT/$ERR
run() {
  local name=$1 want=$2
  shift 2
  "$BIN" "$@" >"$TMP/out" 2>"$TMP/err"
  local got=$?
  OUT=$(cat "$TMP/out")
  ERR=$(cat "$TMP/err")
  checks=$((checks + 1))
  if [ "$got" != "$want" ]; then
    echo "FAIL $name: exit $got, want $want"
    echo "  stdout: ${OUT:0:600}"
    echo "  stderr: ${ERR:0:600}"
    fails=$((fails + 1))
    return 1
  fi
  return 0
}

# expect NAME HAYSTACK NEEDLE
expect() {
  checks=$((checks + 1))
  if [[ "$2" != *"$3"* ]]; then
    echo "FAIL $1: missing '$3'"
    echo "  in: ${2:0:800}"
    fails=$((fails + 1))
  fi
}

HOST=(--local-addr 192.0.2.10 --iface eth0)

run "same ruleset is equivalent" 0 diff --pcap "$P/tcp-stateful.pcap" --against "$P/host.rules" "${HOST[@]}" "$P/host.rules" &&
  expect "equivalent text" "$OUT" "result: equivalent on this capture"

run "edited port differs" 1 diff --pcap "$P/tcp-stateful.pcap" --against "$P/host-edited.rules" "${HOST[@]}" "$P/host.rules" &&
  {
    expect "summary" "$OUT" "packets 20, agreed 17, differed 3, indeterminate 0, skipped 0"
    expect "packet 9" "$OUT" "packet 9  2024-05-01 08:00:00.008000  tcp 198.51.100.7:40001 -> 192.0.2.10:80 [S]  INPUT (ct NEW)"
    expect "expected side" "$OUT" "expected ACCEPT              $P/host.rules:10"
    expect "actual side" "$OUT" "actual   REJECT (tcp-reset)  $P/host-edited.rules:14  -A INPUT -p tcp -j REJECT --reject-with tcp-reset"
    expect "hits per side" "$OUT" "rule hits (actual: $P/host-edited.rules, reference evaluator):"
    expect "never hit" "$OUT" "never hit (actual): 7 rules"
    expect "result" "$OUT" "result: 3 packets differ"
  }

run "json report" 1 diff --format json --pcap "$P/tcp-stateful.pcap" --against "$P/host-edited.rules" "${HOST[@]}" "$P/host.rules" &&
  {
    printf '%s' "$OUT" >"$TMP/report.json"
    checks=$((checks + 1))
    if ! python3 - "$TMP/report.json" "$P" <<'EOF'; then
import json, sys
r = json.load(open(sys.argv[1]))
p = sys.argv[2]
s = r["summary"]
assert (s["packets"], s["agreed"], s["differed"], s["skipped"]) == (20, 17, 3, 0), s
assert [d["packet"] for d in r["differences"]] == [9, 11, 12], r["differences"]
d = r["differences"][0]
assert d["hook"] == "INPUT" and isinstance(d["time"], float), d
assert d["tuple"]["dport"] == 80 and d["tuple"]["proto"] == "tcp", d["tuple"]
assert d["expected"] == {**d["expected"], "verdict": "ACCEPT", "rule": p + "/host.rules:10"}, d["expected"]
assert d["actual"]["verdict"] == "REJECT" and d["actual"]["rule"] == p + "/host-edited.rules:14", d["actual"]
assert any(x["rule"] == p + "/host.rules:10" and x["hits"] == 1 for x in r["rules"]), r["rules"]
assert {"rule": p + "/host-edited.rules:10", "side": "actual",
        "text": "-A INPUT -p tcp -m tcp --dport 8080 -j ACCEPT"} in r["never_hit"], r["never_hit"]
EOF
      echo "FAIL json report: shape"
      fails=$((fails + 1))
    fi
  }

run "markdown report" 1 diff --format markdown --pcap "$P/tcp-stateful.pcap" --against "$P/host-edited.rules" "${HOST[@]}" "$P/host.rules" &&
  {
    expect "md title" "$OUT" "## nf2bpf diff: \`$P/tcp-stateful.pcap\`"
    expect "md result" "$OUT" "**Result: 3 packets differ**"
    expect "md table" "$OUT" "| 9 | 08:00:00.008000 | \`tcp 198.51.100.7:40001 -> 192.0.2.10:80 [S]\` | INPUT (NEW) | **ACCEPT** \`$P/host.rules:10\` | **REJECT (tcp-reset)** \`$P/host-edited.rules:14\` |"
  }

run "truncated capture" 2 diff --pcap "$P/truncated.pcap" --against "$P/host-edited.rules" "${HOST[@]}" "$P/host.rules" &&
  {
    expect "truncated names packet" "$ERR" "nf2bpf: error: $P/truncated.pcap: packet 6: truncated dump file"
    expect "truncated keeps earlier" "$OUT" "packets 5, agreed 5, differed 0"
  }

run "default mode: the compiled policy agrees on the stateful capture" 0 diff --pcap "$P/tcp-stateful.pcap" "${HOST[@]}" "$P/host.rules" &&
  {
    expect "default mode names the model" "$OUT" "actual:   $P/host.rules (compiled policy (userspace model of the BPF programs))"
    expect "default mode result" "$OUT" "result: equivalent on this capture"
  }

run "--kernel with --against is a usage error" 2 diff --kernel --against "$P/host-edited.rules" --pcap "$P/tcp-stateful.pcap" "$P/host.rules" &&
  expect "kernel message" "$ERR" "excludes"

run "not a capture" 2 diff --pcap "$P/host.rules" --against "$P/host.rules" "$P/host.rules" &&
  expect "not a capture message" "$ERR" "nf2bpf: error: $P/host.rules:"

printf '*filter\n:INPUT DROP [0:0]\n-A INPUT -p tcp --dport 99999 -j ACCEPT\nCOMMIT\n' >"$TMP/bad.rules"
run "ruleset errors: trouble, not differences" 2 diff --pcap "$P/udp.pcap" --against "$P/host.rules" "$TMP/bad.rules" &&
  expect "located error" "$ERR" "$TMP/bad.rules:3:"

run "bad --local-addr is a usage error" 2 diff --pcap "$P/udp.pcap" --against "$P/host.rules" --local-addr 300.1.1.1 "$P/host.rules" &&
  expect "cidr message" "$ERR" "invalid address or CIDR '300.1.1.1'"

run "needs a capture" 2 diff --against "$P/host.rules" "$P/host.rules" &&
  expect "needs capture" "$ERR" "diff needs a capture"

run "pcapng router capture" 0 diff --pcap "$P/two-interfaces.pcapng" --against "$P/host.rules" "$P/host.rules" &&
  expect "forwarded copies skipped" "$OUT" "2 x forwarded copy of an earlier packet leaving the host: judged where it arrived (first: packet 2)"

run "sll capture without options" 0 diff --pcap "$P/sll.pcap" --against "$P/host.rules" "$P/host.rules" &&
  expect "otherhost skipped" "$OUT" "addressed to another host's MAC"

run "synthesize" 0 diff --synthesize "$TMP/probe.pcapng" "$P/host.rules" &&
  expect "synthesize summary" "$OUT" "11 of 11 rules exercised"
run "synthesized capture is equivalent to its rules" 0 diff --pcap "$TMP/probe.pcapng" --against "$P/host.rules" "$P/host.rules"
run "synthesized capture catches the edited port" 1 diff --pcap "$TMP/probe.pcapng" --against "$P/host-edited.rules" "$P/host.rules" &&
  expect "synth diff names the rule" "$OUT" "$P/host.rules:10         -A INPUT -p tcp -m tcp --dport 80 -j ACCEPT"

run "-q prints the result line only" 1 -q diff --pcap "$P/tcp-stateful.pcap" --against "$P/host-edited.rules" "${HOST[@]}" "$P/host.rules" &&
  { checks=$((checks + 1)); [ "$OUT" = "result: 3 packets differ" ] || { echo "FAIL -q output: '$OUT'"; fails=$((fails + 1)); }; }

run "missing capture: trouble" 2 diff --pcap "$TMP/none.pcap" "$P/host.rules" && expect "missing capture named" "$ERR" "$TMP/none.pcap"
run "missing FILE2: trouble" 2 diff --pcap "$P/udp.pcap" --against "$TMP/none.rules" "$P/host.rules"
run "unknown option: trouble" 2 diff --bogus --pcap "$P/udp.pcap" "$P/host.rules"

# "-": standard input for what is read, standard output for what is written.
checks=$((checks + 1))
(cd "$TMP" && "$BIN" diff --synthesize - "$P/host.rules" >"$TMP/stdout.pcapng" 2>"$TMP/err")
if [ $? -ne 0 ] || [ -e "$TMP/-" ] || ! grep -qF "wrote 54 packets to standard output (pcapng)" "$TMP/err" ||
  ! cmp -s "$TMP/stdout.pcapng" "$TMP/probe.pcapng"; then
  echo "FAIL --synthesize -: the capture on stdout, the summary on stderr, no file named '-'"
  ls -la "$TMP"; cat "$TMP/err"
  fails=$((fails + 1))
fi
stdin() { local f=$1; shift; "$BIN" "$@" <"$f" >"$TMP/out" 2>"$TMP/err"; echo $?; }
checks=$((checks + 1))
[ "$(stdin "$TMP/probe.pcapng" diff --pcap - --against "$P/host-edited.rules" "$P/host.rules")" = 1 ] &&
  grep -qF "result: 2 packets differ" "$TMP/out" || { echo "FAIL --pcap -"; cat "$TMP/err"; fails=$((fails + 1)); }
checks=$((checks + 1))
[ "$(stdin "$P/host-edited.rules" diff --pcap "$TMP/probe.pcapng" --against - "$P/host.rules")" = 1 ] &&
  grep -qF "result: 2 packets differ" "$TMP/out" || { echo "FAIL --against -"; cat "$TMP/err"; fails=$((fails + 1)); }
checks=$((checks + 1))
[ "$(stdin "$P/host.rules" diff --pcap "$TMP/probe.pcapng" -)" = 0 ] &&
  grep -qF "actual:   <stdin>" "$TMP/out" || { echo "FAIL FILE -"; cat "$TMP/out" "$TMP/err"; fails=$((fails + 1)); }
checks=$((checks + 1))
[ "$(stdin "$P/truncated.pcap" diff --pcap - --against "$P/host.rules" "$P/host.rules")" = 2 ] &&
  grep -qF "nf2bpf: error: <stdin>: packet 6: truncated dump file" "$TMP/err" ||
  { echo "FAIL --pcap - truncated"; cat "$TMP/err"; fails=$((fails + 1)); }
checks=$((checks + 1))
[ "$(stdin "$P/host.rules" diff --pcap - -)" = 2 ] && grep -qF "FILE and --pcap both read standard input" "$TMP/err" ||
  { echo "FAIL two stdin inputs"; cat "$TMP/err"; fails=$((fails + 1)); }

run "help" 0 diff --help && expect "help exit status" "$OUT" "Exit status (as diff(1)): 0 no differences on this capture, 1 differences found or rules of FILE left"

echo "cli-diff: $((checks - fails))/$checks checks passed"
[ "$fails" -eq 0 ]
