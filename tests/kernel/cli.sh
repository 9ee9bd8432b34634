#!/usr/bin/env bash
# What a user sees from the commands that need a kernel: --format json
# documents (apply, status, rollback, unload, restore), -q result lines, -v
# logging, the hint when not root, in a throwaway pair of network namespaces. Needs root;
# exits 77 otherwise.
#   cli.sh NF2BPF SOURCE_DIR
set -u
BIN=$1
SRC=$2
. "$(dirname "$0")/lib.sh" nf2bpf-ux

ip netns add "$CLI" && ip netns add "$SRV" || { echo "cannot create namespaces"; exit 2; }
ip link add c0 netns "$CLI" type veth peer name s0 netns "$SRV"
ip -n "$CLI" addr add 10.78.0.1/24 dev c0 && ip -n "$SRV" addr add 10.78.0.2/24 dev s0
for ns in "$CLI" "$SRV"; do ip -n "$ns" link set lo up; done
ip -n "$CLI" link set c0 up && ip -n "$SRV" link set s0 up

cat > "$WORK/a.rules" <<'EOF2'
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A INPUT -p icmp -m icmp --icmp-type echo-request -j ACCEPT
COMMIT
EOF2
sed 's/echo-request -j ACCEPT/echo-request -j DROP/' "$WORK/a.rules" >"$WORK/b.rules"
cat > "$WORK/unsupported.rules" <<'EOF2'
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m string --string "nf2bpf-never-sent" --algo bm --to 65535 -j DROP
COMMIT
EOF2

# json NAME PYTHON: the last output is one JSON document; PYTHON checks `j`.
json() {
  printf '%s' "$LAST" >"$WORK/doc.json"
  if python3 - "$WORK/doc.json" >"$WORK/py" 2>&1 <<EOF2; then pass "$1"; else fail "$1"; sed 's/^/    /' "$WORK/py"; echo "$LAST" | sed 's/^/    /'; fi
import json, sys
j = json.load(open(sys.argv[1]))
$2
EOF2
}
# run_json WANT NAME -- CMD...: stdout only (stderr is for humans).
run_json() {
  local want=$1 what=$2
  shift 3
  local rc
  LAST=$("$@" 2>"$WORK/stderr")
  rc=$?
  if [ "$rc" -eq "$want" ]; then pass "$what (exit $rc)"; else fail "$what: exit $rc, wanted $want"; cat "$WORK/stderr" | sed 's/^/    /'; fi
}

# ---- --format json: one document on stdout, errors too -------------------------
run_json 1 "status --format json, nothing loaded" -- in_srv "$BIN" status --format json
json "status: not loaded" 'assert j["result"] == "not-loaded" and j["loaded"] is False and j["exit"] == 1, j'
run_json 1 "rollback --format json, nothing loaded" -- in_srv "$BIN" rollback --format json
json "rollback: the error as JSON" 'assert j["result"] == "error" and j["exit"] == 1 and "no dataplane" in j["message"], j'
run_json 0 "unload --format json, nothing loaded" -- in_srv "$BIN" unload --format json
json "unload: nothing loaded" 'assert j == {"result": "nothing-loaded", "detached": [], "exit": 0}, j'
run_json 1 "apply --format json, unsupported rules" -- in_srv "$BIN" apply --format json "$WORK/unsupported.rules"
json "apply: the refusal as JSON, with the report" '
assert j["result"] == "error" and j["exit"] == 1 and "nothing was applied" in j["message"], j
assert j["translation"]["summary"]["unsupported"] == 1, j["translation"]'
run_json 2 "apply --format json, a missing file" -- in_srv "$BIN" apply --format json "$WORK/none.rules"
json "apply: a missing file as JSON" 'assert j["result"] == "error" and j["exit"] == 2 and "none.rules" in j["message"], j'
run_json 0 "apply --format json" -- in_srv "$BIN" apply --format json "$WORK/a.rules"
json "apply: the document" '
assert j["result"] == "applied" and j["exit"] == 0 and j["generation"] == 1, j
assert j["interfaces"] == ["lo", "s0"] and j["source"] == "'"$WORK"'/a.rules" and len(j["checksum"]) == 64, j
assert j["rules"] == {"total": 2, "exact": 2, "approximate": 0, "left_in_netfilter": 0}, j["rules"]
assert set(j["timings_ms"]) == {"translate_compile", "load_swap", "attach"}, j'
run_json 0 "apply --dry-run --format json" -- in_srv "$BIN" apply --dry-run --format json "$WORK/b.rules"
json "apply --dry-run: would-apply" 'assert j["result"] == "would-apply" and "generation" not in j, j'
run_json 0 "apply b --format json" -- in_srv "$BIN" apply --format json "$WORK/b.rules"
run_json 0 "status --format json" -- in_srv "$BIN" status --format json
json "status: loaded" 'assert j["result"] == "loaded" and j["loaded"] and j["generation"] == 2 and j["exit"] == 0, j'
run_json 0 "rollback --format json" -- in_srv "$BIN" rollback --format json
json "rollback: the document" '
assert j["result"] == "rolled-back" and isinstance(j["generation"], int) and j["exit"] == 0, j
assert j["source"] == "'"$WORK"'/a.rules", j'
run_json 0 "unload --format json" -- in_srv "$BIN" unload --format json
json "unload: the document" 'assert j == {"result": "unloaded", "detached": ["lo", "s0"], "warnings": [], "exit": 0}, j'
run_json 2 "restore --format json, a --backup that is not there" -- in_srv "$BIN" restore --format json --backup "$WORK/none.json"
json "restore: the error as JSON" 'assert j["result"] == "error" and j["exit"] == 2 and "none.json" in j["message"], j'
run_json 2 "restore --format json, a usage error" -- in_srv "$BIN" restore --format json --bogus
json "restore: a usage error as JSON" 'assert j["result"] == "error" and j["exit"] == 2 and "--bogus" in j["message"], j'

# apply --cutover and restore as JSON.
in_srv iptables-nft-restore "$WORK/a.rules" || { echo "iptables-nft-restore failed"; exit 2; }
run_json 0 "apply --cutover --format json" -- in_srv "$BIN" apply --cutover --format json --backup "$WORK/b.json" "$WORK/a.rules"
json "apply --cutover: the cut-over in the document" '
c = j["cutover"]
assert j["result"] == "applied" and j["exit"] == 0, j
assert c["rules_removed"] == 2 and c["rules_kept"] == 0 and c["backup"] == "'"$WORK"'/b.json", c
assert c["tables"][0]["table"] == "ip filter" and c["messages"] > 0, c'
run_json 0 "restore --dry-run --format json" -- in_srv "$BIN" restore --dry-run --format json --backup "$WORK/b.json"
json "restore --dry-run: would-restore, the messages" 'assert j["result"] == "would-restore" and j["planned"] and j["messages"] == len(j["planned"]), j'
run_json 0 "restore --format json" -- in_srv "$BIN" restore --format json --backup "$WORK/b.json"
json "restore: the document" '
assert j["result"] == "restored" and j["restored"] and j["rules"] == 2 and j["exit"] == 0, j
assert j["dataplane"] == "unloaded" and j["detached"] == ["lo", "s0"], j
assert j["backup_moved_to"] == "'"$WORK"'/b.json.restored", j'
in_srv iptables-nft -F INPUT

# ---- -q: the result line only ------------------------------------------------------
expect 0 "apply -q" -- in_srv "$BIN" apply -q "$WORK/a.rules"
grep -qE '^generation [0-9]+ live, checksum [0-9a-f]{16}; attached to lo, s0 \(tc ingress/egress\)$' <<<"$LAST" &&
  pass "apply -q: one line, the result" || fail "apply -q: '$LAST'"
expect 0 "-q status" -- in_srv "$BIN" -q status
grep -qE '^generation [0-9]+ live$' <<<"$LAST" && pass "status -q: the generation line" || fail "status -q: '$LAST'"
expect 0 "apply b" -- in_srv "$BIN" apply "$WORK/b.rules"
expect 0 "rollback -q" -- in_srv "$BIN" rollback -q
grep -qE '^rolled back: generation [0-9]+ is live \(.*/a.rules, checksum [0-9a-f]{16}\)$' <<<"$LAST" &&
  pass "rollback -q: one line" || fail "rollback -q: '$LAST'"
expect 0 "unload -q" -- in_srv "$BIN" unload -q
[ "$LAST" = "unloaded: detached from lo, s0" ] && pass "unload -q: one line" || fail "unload -q: '$LAST'"

# ---- -v: nf2bpf's log on stderr, libbpf's expected warnings only with -vv ------------

for i in 1 2; do
  in_srv "$BIN" -v apply "$WORK/a.rules" >"$WORK/v.out" 2>"$WORK/v.err"
  rc=$?
  [ "$rc" -eq 0 ] && pass "apply -v ($i) (exit 0)" || fail "apply -v ($i): exit $rc"
  grep -q "libbpf" "$WORK/v.err" "$WORK/v.out" &&
    { fail "apply -v ($i): libbpf's warnings about expected failures shown"; sed 's/^/    /' "$WORK/v.err" "$WORK/v.out"; } ||
    pass "apply -v ($i): no libbpf line"
  grep -qF "nf2bpf: info: translate+compile" "$WORK/v.err" && pass "apply -v ($i): the timing line on stderr" ||
    fail "apply -v ($i): no timing line on stderr"
  grep -q "nf2bpf: info" "$WORK/v.out" && fail "apply -v ($i): log lines on stdout" || pass "apply -v ($i): stdout has no log line"
  [ -z "$(sort "$WORK/v.err" | uniq -d)" ] && pass "apply -v ($i): no line twice" || fail "apply -v ($i): repeated lines"
done
in_srv "$BIN" -vv apply "$WORK/b.rules" >"$WORK/vv.out" 2>"$WORK/vv.err"
grep -qF "nf2bpf: debug: attached to s0 (tc ingress, tc egress; clsact qdisc created earlier)" "$WORK/vv.err" &&
  pass "apply -vv: what was attached" || { fail "apply -vv: no attach detail"; sed 's/^/    /' "$WORK/vv.err"; }
grep -qF "nf2bpf: debug: libbpf: Kernel error message: Exclusivity flag on" "$WORK/vv.err" &&
  pass "apply -vv: libbpf's expected warning, as debug" || fail "apply -vv: libbpf's warning not shown as debug"
grep -qF "libbpf: libbpf:" "$WORK/vv.err" "$WORK/vv.out" && fail "apply -vv: libbpf named twice" || pass "apply -vv: libbpf named once"
in_srv "$BIN" -v unload >"$WORK/v.out" 2>"$WORK/v.err"
grep -q "libbpf" "$WORK/v.err" "$WORK/v.out" && { fail "unload -v: libbpf lines"; sed 's/^/    /' "$WORK/v.err"; } || pass "unload -v: no libbpf line"

# ---- bytes that are not UTF-8 (a Latin-1 comment and log prefix) ----------------------
# Never an internal error: the generation record, the state and the cut-over
# backup read them as Latin-1; restore puts the rules back byte for byte.
printf '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 22 -m comment --comment "caf\xe9" -j ACCEPT\n-A INPUT -p tcp -m tcp --dport 23 -j LOG --log-prefix "d\xe9ny "\nCOMMIT\n' >"$WORK/latin1.rules"
run_json 0 "apply --format json, Latin-1 bytes in a comment and a log prefix" -- in_srv "$BIN" apply --format json "$WORK/latin1.rules"
json "apply (Latin-1): the document" 'assert j["result"] == "applied" and j["exit"] == 0, j'
run_json 0 "status --format json after a Latin-1 apply" -- in_srv "$BIN" status --format json
json "status (Latin-1): loaded" 'assert j["loaded"] is True, j'
expect 0 "unload after the Latin-1 apply" -- in_srv "$BIN" unload
in_srv iptables-restore <"$WORK/latin1.rules"
in_srv iptables-save | grep -a '^-A' >"$WORK/latin1.before"
expect 0 "apply --cutover of the Latin-1 ruleset" -- in_srv "$BIN" apply --cutover --backup "$WORK/latin1.backup" "$WORK/latin1.rules"
expect 0 "restore of the Latin-1 cut-over" -- in_srv "$BIN" restore --backup "$WORK/latin1.backup"
in_srv iptables-save | grep -a '^-A' >"$WORK/latin1.after"
cmp -s "$WORK/latin1.before" "$WORK/latin1.after" && grep -aq $'caf\xe9' "$WORK/latin1.after" &&
  pass "restore: the Latin-1 rules back byte for byte" || { fail "restore changed the Latin-1 rules"; diff "$WORK/latin1.before" "$WORK/latin1.after" | cat -v | sed 's/^/    /'; }
in_srv "$BIN" unload >/dev/null 2>&1
in_srv iptables -F

# ---- not root: the hint says what is needed ------------------------------------------

# as_nobody CMD...: in the server namespace, as nobody, with no capabilities.
as_nobody() { in_srv setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all "$@"; }
# The ruleset on stdin: $WORK is root's alone.
out=$(as_nobody "$BIN" apply - <"$WORK/a.rules" 2>&1)
rc=$?
[ "$rc" -eq 2 ] && pass "apply as nobody: exit 2" || fail "apply as nobody: exit $rc"
grep -qF "hint: nf2bpf apply needs root or CAP_BPF+CAP_NET_ADMIN" <<<"$out" && pass "apply as nobody: the hint" ||
  { fail "apply as nobody: no hint"; echo "$out" | sed 's/^/    /'; }
for c in status rollback unload; do
  out=$(as_nobody "$BIN" $c 2>&1)
  grep -qF "hint: nf2bpf $c needs root or CAP_BPF+CAP_NET_ADMIN" <<<"$out" && pass "$c as nobody: the hint" ||
    { fail "$c as nobody: no hint"; echo "$out" | sed 's/^/    /'; }
done
out=$(as_nobody "$BIN" status --format json 2>/dev/null)
grep -qF '"hint": "nf2bpf status needs root or CAP_BPF+CAP_NET_ADMIN"' <<<"$out" && pass "status --format json as nobody: the hint" ||
  { fail "status --format json as nobody"; echo "$out" | sed 's/^/    /'; }
out=$(as_nobody "$BIN" sync --state-dir /tmp/nf2bpf-ux-none-$$ - <"$WORK/a.rules" 2>&1)
rm -rf "/tmp/nf2bpf-ux-none-$$"
grep -qF "hint: nf2bpf sync needs root or CAP_BPF+CAP_NET_ADMIN" <<<"$out" && pass "sync as nobody: the hint" ||
  { fail "sync as nobody: no hint"; echo "$out" | sed 's/^/    /'; }

echo
[ "$fails" -eq 0 ] && echo "cli (kernel): all passed" || echo "cli (kernel): $fails failed"
[ "$fails" -eq 0 ]
