#!/usr/bin/env bash
# CLI checks on what the commands read and how they say it (issue 11): a
# policy file given back to apply and diff, input bytes that are not UTF-8 in
# JSON reports, control bytes in messages, repeated diagnostics folded, a
# partial translation never called equivalent, what LOG records promise.
#   tests/cli/inputs.sh NF2BPF SOURCE_DIR
set -u
BIN=${1:?usage: inputs.sh NF2BPF SOURCE_DIR}
case $BIN in /*) ;; *) BIN=$PWD/$BIN ;; esac
SRC=$(cd "${2:?usage: inputs.sh NF2BPF SOURCE_DIR}" && pwd)
W=$(mktemp -d /tmp/nf2bpf-cli-inputs.XXXXXX)
trap 'rm -rf "$W"' EXIT
export NO_COLOR=1
pass=0 fail=0

ok() { pass=$((pass + 1)); printf 'ok    %s\n' "$1"; }
bad() {
  fail=$((fail + 1))
  printf 'FAIL  %s: %s\n' "$1" "$2"
  printf '        stdout: %s\n' "$(head -c 600 "$W/out")"
  printf '        stderr: %s\n' "$(head -c 600 "$W/err")"
}
# run ARGS...: nf2bpf with stdout/stderr in $W/out, $W/err; exit status in $rc.
run() {
  (cd "$W" && "$BIN" "$@" >"$W/out" 2>"$W/err" </dev/null)
  rc=$?
}
expect_rc() { if [ "$rc" -eq "$2" ]; then ok "$1 (exit $rc)"; else bad "$1" "exit $rc, want $2"; fi; }
expect_in() { if grep -qF -- "$3" "$2"; then ok "$1"; else bad "$1" "missing: $3"; fi; }
expect_not_in() { if grep -qF -- "$3" "$2"; then bad "$1" "unexpected: $3"; else ok "$1"; fi; }
# json_check NAME PYTHON-EXPR: the expression over `d` (stdout as JSON) is true.
json_check() {
  if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if eval(sys.argv[2]) else 1)' \
    "$W/out" "$2" 2>"$W/pyerr"; then ok "$1"; else bad "$1" "not true: $2 $(cat "$W/pyerr")"; fi
}

cat >"$W/rules.v4" <<'R'
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p tcp -m tcp --dport 22 -s 10.0.0.0/8 -j ACCEPT
-A INPUT -p tcp -m multiport --dports 80,443 -j ACCEPT
COMMIT
R

# ---- #2: the policy file goes back in ----------------------------------------
run translate -o "$W/pol.yaml" "$W/rules.v4"
expect_rc "translate -o writes the policy" 0
run diff --synthesize "$W/probe.pcapng" "$W/rules.v4"
expect_rc "synthesize probes" 0

run apply --format json --dry-run --iface lo "$W/pol.yaml"
expect_rc "apply --dry-run POLICY.yaml" 0
json_check "apply POLICY.yaml: read as a policy, not as iptables" \
  'd["format"] == "policy" and d["policy_of"]["format"] == "iptables" and d["rules"]["total"] == 3'
run translate --format json "$W/rules.v4"
run apply --format json --dry-run --iface lo "$W/rules.v4"
sum_rules=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["checksum"])' "$W/out")
run apply --format json --dry-run --iface lo "$W/pol.yaml"
json_check "apply POLICY.yaml: the same policy as from the ruleset" "d['checksum'] == '$sum_rules'"
run apply --dry-run --iface lo --from iptables "$W/pol.yaml"
expect_rc "apply POLICY.yaml with --from iptables: still a policy" 0
run apply --dry-run --cutover --iface lo "$W/pol.yaml"
expect_rc "apply --cutover POLICY.yaml refused" 2
expect_in "apply --cutover POLICY.yaml: says why" "$W/err" "--cutover needs the ruleset"
sed 's/dport: 22/dport: 23/; s/22,/23,/' "$W/pol.yaml" >"$W/edited.yaml"
if cmp -s "$W/pol.yaml" "$W/edited.yaml"; then sed -i '0,/index: 0/s//index: 1/' "$W/edited.yaml"; fi
run apply --dry-run --iface lo "$W/edited.yaml"
expect_rc "apply of an edited policy refused" 1
expect_in "edited policy: a located error" "$W/err" "edited.yaml:"

run diff --pcap "$W/probe.pcapng" "$W/rules.v4" --against "$W/pol.yaml"
expect_rc "diff RULES --against POLICY.yaml" 0
expect_in "diff --against POLICY.yaml: judged by the model" "$W/out" "(policy file (userspace model of the BPF programs))"
expect_in "diff --against POLICY.yaml: equivalent" "$W/out" "result: equivalent on this capture"
run diff --pcap "$W/probe.pcapng" "$W/pol.yaml"
expect_rc "diff POLICY.yaml (expected side) refused" 2
expect_in "diff POLICY.yaml: says what diff cannot do" "$W/err" "cannot be the expected side of a diff"
expect_in "diff POLICY.yaml: says what it can do" "$W/err" "--against $W/pol.yaml"
run translate "$W/pol.yaml"
expect_rc "translate POLICY.yaml: not a ruleset" 1
expect_in "translate POLICY.yaml: one clear error" "$W/out" "this is a compiled nf2bpf policy"
expect_in "translate POLICY.yaml: the summary names the file" "$W/out" "$W/pol.yaml: 0 rules"
if [ "$(grep -c 'error:' "$W/out")" -eq 1 ]; then ok "translate POLICY.yaml: not a hundred syntax errors"; else
  bad "translate POLICY.yaml: not a hundred syntax errors" "$(grep -c 'error:' "$W/out") errors"; fi

# ---- #3: bytes that are not UTF-8; control bytes -----------------------------
printf '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 80 -m comment --comment "caf\xe9 \xff" -j DROP\nCOMMIT\n' >"$W/latin1.v4"
run translate --format json "$W/latin1.v4"
expect_rc "translate --format json on a Latin-1 comment" 0
json_check "Latin-1 bytes read as Latin-1 (U+00E9, U+00FF)" '"caf\u00e9 \u00ff" in d["rules"][0]["text"]'
run diff --synthesize "$W/l1.pcapng" "$W/latin1.v4"
run diff --format json --pcap "$W/l1.pcapng" "$W/latin1.v4"
expect_rc "diff --format json on a Latin-1 comment" 0
json_check "diff JSON: the rule text survives" 'any("caf\u00e9" in r["text"] for r in d["rules"])'

printf '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -j EVIL\x1b]0;owned\x07\nCOMMIT\n' >"$W/ctl.v4"
run translate "$W/ctl.v4"
expect_rc "a jump to a chain named with control bytes" 1
if grep -q $'\x1b\|\x07' "$W/out" "$W/err"; then bad "no raw ESC or BEL reaches the terminal" "raw control bytes"; else
  ok "no raw ESC or BEL reaches the terminal"; fi
expect_in "control bytes shown escaped" "$W/out" 'EVIL\x1b]0;owned\x07'
run diff --pcap "$W/probe.pcapng" "$W/ctl.v4"
if grep -q $'\x1b\|\x07' "$W/out" "$W/err"; then bad "diff: no raw ESC or BEL" "raw control bytes"; else
  ok "diff: no raw ESC or BEL"; fi

# ---- folding of repeated identical diagnostics -------------------------------
{
  printf '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 22 -j ACCEPT\n'
  # -m time: unsupported (one reason, twenty rules).
  for i in $(seq 1 20); do printf -- '-A INPUT -s 10.96.%d.0/24 -m time --timestart 09:00 -j DROP\n' "$i"; done
  printf 'COMMIT\n'
} >"$W/nat.v4"
run translate "$W/nat.v4"
n=$(grep -c 'nat.v4:[0-9]*:[0-9]*: ' "$W/out")
if [ "$n" -le 6 ]; then ok "20 identical diagnostics folded ($n shown)"; else bad "20 identical diagnostics folded" "$n shown"; fi
expect_in "folded: the count of the rest" "$W/out" "more like this"
run translate --format json "$W/nat.v4"
json_check "JSON keeps every diagnostic" 'len(d["diagnostics"]) >= 20'

# ---- locations of nft JSON (and kernel) input: table, chain, handle, the rule -
cat >"$W/h.json" <<'J'
{"nftables":[{"metainfo":{"json_schema_version":1}},{"table":{"family":"inet","name":"filter","handle":1}},{"chain":{"family":"inet","table":"filter","name":"input","handle":1,"type":"filter","hook":"input","prio":0,"policy":"accept"}},{"rule":{"family":"inet","table":"filter","chain":"input","handle":7,"expr":[{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":22}},{"log":{"prefix":"ssh "}},{"accept":null}]}}]}
J
run translate "$W/h.json"
expect_in "nft JSON: located by table, chain and handle" "$W/out" "h.json: table inet filter, chain input, handle 7: warning: approximate log"
expect_in "nft JSON: the rule as nft prints it" "$W/out" '    tcp dport 22 log prefix "ssh " accept'
expect_not_in "nft JSON: no JSON pointer" "$W/out" "#/nftables"
run translate --format json "$W/h.json"
json_check "nft JSON report: 'where' names the rule" \
  'd["diagnostics"][0]["where"] == "table inet filter, chain input, handle 7" and "handle 7" in d["rules"][0]["location"]'

# ---- #4: rules left in netfilter are never "equivalent" ----------------------
# (firewalld's fib reverse-path rule and ct helper rule stay in netfilter)
K=$SRC/testdata/nft/firewalld-zones.nft
run diff --synthesize "$W/kp.pcapng" "$K"
expect_rc "synthesize firewalld-zones" 0
run diff --pcap "$W/kp.pcapng" "$K"
expect_rc "diff firewalld-zones: not equivalent (rules stay in netfilter)" 1
expect_in "result line says rules stay in netfilter" "$W/out" "rules stay in netfilter, not in the compiled policy"
expect_not_in "never 'equivalent on this capture'" "$W/out" "result: equivalent on this capture"
run diff --format json --pcap "$W/kp.pcapng" "$K"
json_check "JSON: equivalent false, left_in_netfilter counted" \
  'd["summary"]["equivalent"] is False and d["summary"]["left_in_netfilter"] > 0 and d["exit"] == 1 if "exit" in d else d["summary"]["equivalent"] is False and d["summary"]["left_in_netfilter"] > 0'

run translate --allow-partial -o "$W/kp.yaml" "$K"
run diff --pcap "$W/kp.pcapng" "$K" --against "$W/kp.yaml"
expect_rc "diff --against a partial policy file: not equivalent either" 1
expect_in "partial policy file: says rules stay in netfilter" "$W/out" "rules stay in netfilter"

# ---- #7: LOG records: no promise that status shows them ----------------------
run capabilities --target LOG
expect_not_in "LOG: no promise that status shows the records" "$W/out" "nf2bpf status"
expect_in "LOG: says nothing reads them yet" "$W/out" "nothing reads that buffer yet"

echo
echo "cli-inputs: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
