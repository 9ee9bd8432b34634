#!/usr/bin/env bash
# Turns the TSV results of one `make bench` run into markdown tables, the
# packets/s plot and docs/benchmarks.md. Reads only what the run wrote; a
# part that was not run or not measurable says so.
#
#   bench/report.sh RESULTS_DIR DOC_PATH
set -euo pipefail
OUT=${1:?results dir}
DOC=${2:?doc path}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$(dirname "$DOC")"

m() { awk -F'\t' -v k="$1" '$1 == k { print $2 }' "$OUT/machine.tsv"; }
have() { [ -s "$OUT/$1" ]; }

# ---- end to end: tables and plot
# e2e_md TSV: one packets/s table, ratio table and load-time table per family.
e2e_md() {
  awk -F'\t' '
    function fmtpps(v) { if (v == "NA" || v == "") return "–"; if (v >= 1e6) return sprintf("%.2f M", v / 1e6); return sprintf("%.0f k", v / 1e3) }
    NR > 1 {
      fam[$1] = 1; if (!($1 SUBSEP $2 in seen)) { seen[$1, $2] = 1; order[$1, ++ne[$1]] = $2 }
      if (!($1 SUBSEP $3 in seenn)) { seenn[$1, $3] = 1; sizes[$1, ++nn[$1]] = $3 }
      pps[$1, $2, $3] = $5; load[$1, $2, $3] = $4; note[$1, $2, $3] = $7; sent[$1, $2, $3] = $6
    }
    END {
      for (f in fam) {
        printf "### %s\n\n", f
        printf "Received packets/s (median). N = 0 is an empty ruleset loaded by each engine; *none* is nothing loaded at all.\n\n"
        printf "| engine |"; for (i = 1; i <= nn[f]; i++) printf " N=%s |", sizes[f, i]; printf "\n|---|"
        for (i = 1; i <= nn[f]; i++) printf "---:|"; printf "\n"
        for (e = 1; e <= ne[f]; e++) {
          en = order[f, e]; printf "| %s |", en
          for (i = 1; i <= nn[f]; i++) {
            n = sizes[f, i]; v = pps[f, en, n]
            if (v == "" ) printf " |"; else if (v == "NA") printf " %s |", (note[f, en, n] == "" ? "–" : note[f, en, n]); else printf " %s |", fmtpps(v)
          }
          printf "\n"
        }
        printf "\nnf2bpf-tc ÷ iptables-nft, nf2bpf-tc ÷ nft (packets/s):\n\n| | "
        for (i = 1; i <= nn[f]; i++) printf "N=%s | ", sizes[f, i]; printf "\n|---|"
        for (i = 1; i <= nn[f]; i++) printf "---:|"; printf "\n"
        split("iptables-nft nft iptables-legacy", cmp, " ")
        for (c = 1; c <= 3; c++) {
          printf "| ÷ %s |", cmp[c]
          for (i = 1; i <= nn[f]; i++) {
            n = sizes[f, i]; a = pps[f, "nf2bpf-tc", n]; b = pps[f, cmp[c], n]
            if (a == "" || b == "" || a == "NA" || b == "NA" || b == 0) printf " – |"; else printf " %.2f |", a / b
          }
          printf "\n"
        }
        printf "\nLoad time of each engine (ms, one load into a fresh namespace, process start included):\n\n| engine |"
        for (i = 1; i <= nn[f]; i++) printf " N=%s |", sizes[f, i]; printf "\n|---|"
        for (i = 1; i <= nn[f]; i++) printf "---:|"; printf "\n"
        for (e = 1; e <= ne[f]; e++) {
          en = order[f, e]; if (en == "none") continue; printf "| %s |", en
          for (i = 1; i <= nn[f]; i++) { v = load[f, en, sizes[f, i]]; printf " %s |", (v == "" || v == "NA") ? "–" : v }
          printf "\n"
        }
        printf "\n"
      }
    }' "$1"
}
if have e2e.tsv; then
  e2e_md "$OUT/e2e.tsv" >"$OUT/e2e.md"

  # The plot: packets/s against rule count, one panel per family.
  fams=$(awk -F'\t' 'NR > 1 { print $1 }' "$OUT/e2e.tsv" | awk '!s[$0]++')
  nf=$(echo "$fams" | wc -w)
  gp=$OUT/e2e.gp
  {
    echo "set terminal pngcairo size 1000,$((420 * nf)) font 'sans,10'"
    echo "set output '$OUT/e2e.png'"
    echo "set multiplot layout $nf,1"
    echo "set logscale x 10"
    echo "set xrange [7:150000]"
    echo "set yrange [0:*]"
    echo "set xlabel 'rules (N)'"
    echo "set ylabel 'packets/s received'"
    echo "set format y '%.1s%c'"
    echo "set key outside right"
    echo "set grid"
    for fam in $fams; do
      ceil=$(awk -F'\t' -v f="$fam" '$1 == f && $2 == "none" && $5 != "NA" { print $5 }' "$OUT/e2e.tsv")
      echo "set title '$fam: packets/s through a veth pair (median), $(m cpu | tr -d "'"), $(m cores) cores, kernel $(m kernel)'"
      plots=""
      for eng in nf2bpf-tc nf2bpf-xdp iptables-nft iptables-legacy nft nft-set ipset; do
        data=$(awk -F'\t' -v f="$fam" -v e="$eng" '$1 == f && $2 == e && $3 > 0 && $5 != "NA" { print $3, $5 }' "$OUT/e2e.tsv")
        [ -z "$data" ] && continue
        printf '%s\n' "$data" >"$OUT/.plot-$fam-$eng.dat"
        plots+="'$OUT/.plot-$fam-$eng.dat' using 1:2 with linespoints lw 2 title '$eng', "
      done
      [ -n "$ceil" ] && plots+="$ceil with lines dt 2 lc rgb 'black' title 'no rules loaded', "
      echo "plot ${plots%, }"
    done
    echo "unset multiplot"
  } >"$gp"
  if command -v gnuplot >/dev/null; then
    gnuplot "$gp" || echo "report: gnuplot failed; no plot" >&2
  else
    echo "report: gnuplot is not installed; no plot (scripts/install-deps.sh installs gnuplot-nox)" >&2
  fi
  rm -f "$OUT"/.plot-*.dat
fi

# ---- NAT end to end
# nat_e2e_md TSV TITLE: the e2e tables, then whether every datagram reached the DNAT port.
nat_e2e_md() {
  {
    e2e_md "$1" | sed -E "s/^### (nat|svc).*/### $2/"
    awk -F'\t' 'NR > 1 && $7 ~ /not delivered/ {
        x = $7; sub(/.*sink on :[0-9]+, /, "", x); sub(/ datagrams.*/, "", x); stray += x; rows++
        if (x + 0) bad = bad sprintf(" %s N=%s: %s;", $2, $3, x) }
      END { if (!rows) exit
            if (bad == "") printf "Every datagram counted reached the sink on the DNAT port (5002; 5001 where nothing translates); none arrived anywhere else or with a broken checksum (NoPorts + InCsumErrors: 0 in all %d points).\n", rows
            else printf "Datagrams that did NOT reach the DNAT port (NoPorts + InCsumErrors):%s\n", bad }' "$1"
  }
}
if have nat-e2e.tsv; then nat_e2e_md "$OUT/nat-e2e.tsv" "A DNATed flow" >"$OUT/nat-e2e.md"; fi
if have nat-e2e-new.tsv; then nat_e2e_md "$OUT/nat-e2e-new.tsv" "A new connection per packet" >"$OUT/nat-e2e-new.md"; fi
if have svc-e2e.tsv; then nat_e2e_md "$OUT/svc-e2e.tsv" "A flow to a Service" | sed 's/(5002; 5001 where nothing translates)/(5353)/' >"$OUT/svc-e2e.md"; fi
if have svc-e2e-new.tsv; then nat_e2e_md "$OUT/svc-e2e-new.tsv" "A new connection to a Service per packet" | sed 's/(5002; 5001 where nothing translates)/(5353)/' >"$OUT/svc-e2e-new.md"; fi

# ---- control plane tables
{
  if have control-nf2bpf.md; then cat "$OUT/control-nf2bpf.md"; echo; fi
  if have control-load.tsv; then
    echo "### Loading a full ruleset into an empty namespace (ms, wall clock, median)"
    echo
    echo "Each tool as a user runs it (process start included): \`nf2bpf apply\` (translate, compile,"
    echo "load the BPF programs, fill a generation, attach to one interface), \`iptables-nft-restore\`,"
    echo "\`iptables-legacy-restore\`, \`nft -f\`. The rules are the end-to-end benchmark's."
    echo
    awk -F'\t' 'NR > 1 { k = $1 "\t" $2; if (!(k in s)) { s[k] = 1; keys[++nk] = k } v[k, $3] = $4 }
      END { print "| family | rules | nf2bpf apply | iptables-nft-restore | iptables-legacy-restore | nft -f |"
            print "|---|---:|---:|---:|---:|---:|"
            for (i = 1; i <= nk; i++) { split(keys[i], p, "\t")
              printf "| %s | %s | %s | %s | %s | %s |\n", p[1], p[2], v[keys[i], "nf2bpf"], v[keys[i], "iptables-nft"], v[keys[i], "iptables-legacy"], v[keys[i], "nft"] } }' \
      "$OUT/control-load.tsv"
    echo
  fi
  if have control-change.tsv; then
    echo "### One-rule change in a 10,000-rule ruleset (ms, wall clock, median)"
    echo
    echo "*full reload*: the whole changed file again (\`nf2bpf apply\` on the live dataplane,"
    echo "\`iptables-restore\`, \`nft -f\` with \`flush ruleset\`), what kube-proxy and \`nf2bpf apply\` do."
    echo "The incremental forms change one rule or one set element in place."
    echo
    echo "| family | engine | how | ms |"
    echo "|---|---|---|---:|"
    awk -F'\t' 'NR > 1 { printf "| %s | %s | %s | %s |\n", $1, $2, $3, $4 }' "$OUT/control-change.tsv"
    echo
  fi
} >"$OUT/control.md"

# ---- headline numbers
ratio() {  # ratio FAMILY COLUMN(2 match, 3 nomatch)
  awk -F'\t' -v f="$1" -v c="$2" '$1 == f { print $c }' "$OUT/classifier-ratios.tsv" 2>/dev/null
}
e2e() {  # e2e FAMILY ENGINE N -> pps
  awk -F'\t' -v f="$1" -v e="$2" -v n="$3" '$1 == f && $2 == e && $3 == n { print $5 }' "$OUT/e2e.tsv" 2>/dev/null
}
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || a == "NA" || b == "NA" || b == 0) print "not measured"; else printf "%.2f\n", a / b }'; }
kpps() { awk -v a="$1" 'BEGIN { if (a == "" || a == "NA") print "not measured"; else printf "%.0f k\n", a / 1000 }'; }
ctl() {  # ctl FAMILY N COLUMN
  awk -F'\t' -v f="$1" -v n="$2" -v c="$3" '$1 == f && $2 == n { print $c }' "$OUT/control-nf2bpf.tsv" 2>/dev/null
}

{
  echo "# Benchmarks"
  echo
  echo "What \`make bench\` measures and what it measured on one machine. Produced by"
  echo "\`bench/report.sh\` from \`bench/results/\` of one run; every number below comes from that"
  echo "run (nothing is estimated or copied from elsewhere). Re-run \`make bench\` (about 13 minutes on the 2-core VM below;"
  echo "\`BENCH_QUICK=1 make bench\` for a 2-minute subset) to measure your own machine."
  echo
  echo "## Machine"
  echo
  echo "| | |"
  echo "|---|---|"
  for k in cpu cores memory virt kernel iptables nft ipset commit date elapsed loadavg priority quick; do
    v=$(m "$k")
    [ -n "$v" ] && echo "| $k | $v |"
  done
  echo
  echo "The load average is other work on the same machine during the run; a shared or busy"
  echo "machine makes every column noisier, but all engines are measured in the same run, interleaved,"
  echo "so the ratios stay comparable."
  echo
  echo "## Headline"
  echo
  if have classifier-ratios.tsv; then
    echo "Classifier cost per packet at the largest size ÷ at 10 rules (target ≤ 1.25):"
    echo
    echo "| family | matching packet (last rule) | non-matching packet (policy) |"
    echo "|---|---:|---:|"
    while IFS=$'\t' read -r f a b _; do echo "| $f | $a | $b |"; done <"$OUT/classifier-ratios.tsv"
    echo
  fi
  if have e2e.tsv; then
    ceil=$(e2e "$(awk -F'\t' 'NR == 2 { print $1 }' "$OUT/e2e.tsv")" none 0)
    sent=$(awk -F'\t' '$2 == "none" && $3 == 0 { print $6; exit }' "$OUT/e2e.tsv")
    echo "- Ceiling with no rules loaded: $(kpps "$ceil") packets/s received (sender: $(kpps "$sent") packets/s)."
    for f in $(awk -F'\t' 'NR > 1 { print $1 }' "$OUT/e2e.tsv" | awk '!s[$0]++'); do
      echo "- $f, 10,000 rules: nf2bpf (TC) $(kpps "$(e2e "$f" nf2bpf-tc 10000)") packets/s, iptables-nft $(kpps "$(e2e "$f" iptables-nft 10000)"), nft $(kpps "$(e2e "$f" nft 10000)"): nf2bpf ÷ iptables-nft = **$(div "$(e2e "$f" nf2bpf-tc 10000)" "$(e2e "$f" iptables-nft 10000)")**; at 100,000 rules: $(div "$(e2e "$f" nf2bpf-tc 100000)" "$(e2e "$f" iptables-nft 100000)")."
    done
  fi
  if have nat-classifier.tsv; then
    awk -F'\t' 'NR > 1 && $2 != "NA" { printf "%s%s nat rules %s / %s / %s ns", (k++ ? "; " : "- NAT in nf2bpf (BPF_PROG_TEST_RUN, one run per packet, median), first packet of a connection / established / filter-only: "), $1, $2, $5, $8 }
      END { if (k) print "." }' "$OUT/nat-classifier.tsv"
  fi
  for t in "nat-e2e.tsv:A DNATed flow (one connection)" "nat-e2e-new.tsv:A new DNATed connection per packet"; do
    f=${t%%:*}
    have "$f" || continue
    nat() { awk -F'\t' -v e="$1" -v n="$2" '$2 == e && $3 == n { print $5 }' "$OUT/$f"; }
    for n in 10 10000; do
      [ -z "$(nat nf2bpf-tc $n)" ] && continue
      echo "- ${t#*:} end to end, $n nat rules: nf2bpf (TC) $(kpps "$(nat nf2bpf-tc $n)") packets/s, iptables-nft $(kpps "$(nat iptables-nft $n)") (no rules loaded: $(kpps "$(nat none 0)")): nf2bpf ÷ iptables-nft = **$(div "$(nat nf2bpf-tc $n)" "$(nat iptables-nft $n)")**."
    done
  done
  if have control-nf2bpf.tsv; then
    for f in kube hostfw deny; do
      t=$(ctl $f 100000 3); c=$(ctl $f 100000 4); i=$(ctl $f 100000 5); s=$(ctl $f 100000 6)
      [ -z "$t" ] && continue
      echo "- $f, 100,000 rules: translate $t ms + compile $c ms (target: < 1,000 ms together); load + swap $i ms (target < 100 ms); swap alone $s ms."
    done
  fi
  if have control-nf2bpf.tsv; then
    awk -F'\t' 'NR > 1 { t[$1] = t[$1] (t[$1] == "" ? "" : ", ") sprintf("%s rules %.0f ms", $2, $3) }
      END { for (f in t) printf "- Translate time, %s: %s.\n", f, t[f] }' "$OUT/control-nf2bpf.tsv" | sort
  fi
  if have classifier.tsv; then
    awk -F'\t' 'NR > 1 && $2 == 100000 && $14 != "NA" { printf "%s%s %.0f", (n++ ? ", " : "- BPF map bytes per rule at 100,000 rules (one generation): "), $1, $14 / $2 }
      END { if (n) print "." }' "$OUT/classifier.tsv"
  fi
  if have change-nf2bpf.tsv; then
    awk -F'\t' 'NR > 1 && $1 == "kube" { printf "- One-rule (one-service) change in a 10,000-rule kube policy: %s ms in process (translate %s + compile %s + install %s; target < 1 ms).\n", $6, $3, $4, $5 }' "$OUT/change-nf2bpf.tsv"
    if have control-change.tsv; then
      awk -F'\t' '$1 == "kube" { printf "%s%s (%s) %s ms", (n++ ? ", " : "- The same change with the tools, wall clock: "), $2, $3, $4 } END { if (n) print "." }' "$OUT/control-change.tsv"
    fi
  fi
  echo
  echo "Where a target is missed, [the analysis](#analysis) below says why."
  echo
  echo "## How it is measured"
  echo
  echo "- **Rulesets** (\`bench/rulesets.cpp\`, deterministic): *kube* — kube-proxy-like service"
  echo "  matches \`-d VIP -p tcp|udp --dport P -j ACCEPT\` (two ports per service VIP, policy DROP);"
  echo "  *hostfw* — a host firewall: loopback, conntrack INVALID/ESTABLISHED header, negations"
  echo "  (\`! -i lo\`, \`! -s 10.0.0.0/8\`), then rules over source CIDRs /25–/32 (or any),"
  echo "  single ports and port ranges, \`--ctstate NEW\`, \`-i bx+\`, ACCEPT or DROP, policy DROP;"
  echo "  *deny* — N rules \`-s PREFIX -j DROP\` (/25–/32, policy ACCEPT); *denyset* — the same"
  echo "  prefixes as one \`-m set --match-set deny src\` rule over an \`ipset save\` hash:net set."
  echo "  Traffic is decided by the last rule (kube, hostfw) or by the policy after no rule matched"
  echo "  (deny): the worst case for a linear ruleset."
  echo "- **Classifier** (\`nf2bpf-bench classifier\`): a private network namespace"
  echo "  (\`unshare(CLONE_NEWNET)\`, a veth pair, service VIPs routed locally), a private,"
  echo "  unattached dataplane, \`BPF_PROG_TEST_RUN\` of the TC ingress program with \`repeat\`."
  echo "  Conntrack: before each measurement the tracker is flushed and the packet is run 1,000 times"
  echo "  as warm-up, so every measured run sees the same state (the accepted hostfw packet's flow"
  echo "  exists but has seen no reply, so it stays NEW, exactly as in netfilter; dropped packets never"
  echo "  create a flow; kube and deny rules do not read conntrack, so it is not consulted). The rule"
  echo "  that decided is read back from the per-rule counters and checked."
  echo "- **End to end** (\`bench/e2e.sh\`): two namespaces joined by a veth pair; \`udpflood\`"
  echo "  (AF_PACKET with PACKET_QDISC_BYPASS, 64 prebuilt 60-byte UDP frames per \`sendmmsg\`, one"
  echo "  thread on CPU 0) sends one flow 198.18.0.1 → 198.18.0.2:5001; received = UDP datagrams"
  echo "  that reached the receiving namespace's UDP layer (\`/proc/net/snmp\`), drained by \`udpsink\`"
  echo "  on the last CPU. On a veth pair the receive path (TC, netfilter, UDP) runs in the sender's"
  echo "  softirq on the sender's CPU, so *packets/s is the per-core cost of the whole path*, and"
  echo "  filter cost shows up directly as lower packets/s. Each point: fresh namespaces, load, 0.3 s"
  echo "  warm-up, median of several timed runs."
  echo "- **NAT** (\`nf2bpf-bench nat\`, \`bench/e2e.sh\` with the *nat* family): N kube-proxy-like"
  echo "  DNAT rules in nat PREROUTING (the flow matches the last), backends local so the whole path"
  echo "  runs in TC ingress and the end-to-end sink counts it (198.18.0.2:5001 → :5002 in the receiving"
  echo "  namespace). The [NAT section](#nat) says how first packets, established packets and the"
  echo "  translation itself are measured and checked."
  echo "- **Control plane**: in process (\`nf2bpf-bench control\`: translate, compile, install, swap);"
  echo "  and as users run the tools (\`bench/control.sh\`: \`nf2bpf apply\`, \`iptables-nft-restore\`,"
  echo "  \`iptables-legacy-restore\`, \`nft -f\`, incremental forms) in a scratch namespace."
  echo "- **Memory**: \`memlock\` (the kernel's own accounting of map memory) of the live"
  echo "  generation's maps, read from \`/proc/self/fdinfo\` of the private dataplane's maps."
  echo
  echo "## Classifier cost"
  echo
  if have classifier.md; then sed '1,2d' "$OUT/classifier.md"; else echo "Not run."; fi
  echo
  echo "## End to end"
  echo
  if have e2e.md; then
    [ -f "$OUT/e2e.png" ] && echo "![packets/s vs rules](../bench/results/e2e.png)" && echo
    cat "$OUT/e2e.md"
  else
    echo "Not run."
  fi
  echo
  echo "## NAT"
  echo
  if have nat-classifier.md || have nat-e2e.md || have nat-e2e-new.md; then
    if [ -s "$OUT/nat-machine.tsv" ] && ! cmp -s "$OUT/nat-machine.tsv" "$OUT/machine.tsv"; then
      nm() { awk -F'\t' -v k="$1" '$1 == k { print $2 }' "$OUT/nat-machine.tsv"; }
      echo "Measured in a run of its own (same machine): $(nm date), commit $(nm commit), load average $(nm loadavg), $(nm priority), quick $(nm quick)."
      echo
    fi
    if have nat-classifier.md; then sed '1,2d' "$OUT/nat-classifier.md"; echo; fi
    if have nat-e2e.md; then
      echo "### End to end"
      echo
      echo "The end-to-end set-up above with the *nat* family: the sender's flow 198.18.0.1 → 198.18.0.2:5001"
      echo "is DNATed to 198.18.0.2:5002 in the receiving namespace by the last of N rules; the sink"
      echo "listens on 5002 only. It is one flow: after its first packet every engine rewrites it from"
      echo "the connection's binding, so the nat rules themselves run once per connection."
      echo
      sed 's/^### /#### /' "$OUT/nat-e2e.md"
      echo
    fi
    if have nat-e2e-new.md; then
      echo "The same, but every packet opens a new connection (\`BENCH_E2E_NEWFLOWS\`): the sender gives"
      echo "each frame its own source port (rewriting port and checksum before each \`sendmmsg\`, in"
      echo "the sender's time), so every packet runs the nat rules and makes a binding — the"
      echo "end-to-end counterpart of the *first* column. A 2,000-flow warm-up, then up to"
      echo "30,000 new flows timed (\`BENCH_NAT_NEWFLOWS\`; at most 3 s); each repetition in fresh namespaces with a fresh"
      echo "load, so no flow is known to the tracker and no namespace holds more than 32,000"
      echo "connections (nf2bpf's tracker: 64,000 of its 262,144 entries)."
      echo
      sed 's/^### /#### /' "$OUT/nat-e2e-new.md"
    fi
  else
    echo "Not run."
  fi
  echo
  echo "## kube-proxy's rules: a one-endpoint change"
  echo
  if have kube-change.md; then
    echo "\`bench/kube.sh\`: N Services x 10 endpoints in kube-proxy's rules (\`scripts/kube-proxy-gen\`),"
    echo "and the change kube-proxy writes when one Service loses an endpoint"
    echo "(\`--delta remove-endpoint\`): a partial \`iptables-restore --noflush\` for iptables-nft and"
    echo "iptables-legacy, an nft transaction for kube-proxy's nftables mode, and for nf2bpf each of"
    echo "those two writes followed by \`nf2bpf sync --watch --from kernel\`, timed from just before the"
    echo "write to the line saying the change is live (the write's own time included). In both modes"
    echo "the watch reads only the chains the notifications name, over netlink (as \`iptables-nft -S\` or"
    echo "\`nft list chain\` prints them), proves the change is one of endpoints alone, and updates that"
    echo "Service's backends in place in the service maps (result \`updated\`, \`read: chains\`). The"
    echo "notification-to-live time includes the 20 ms debounce; the rest of the end-to-end time is the"
    echo "write itself. nftables mode at 10,000 Services ran with \`BENCH_KUBE_NFT_MAX=10000\` (loading"
    echo "that table with \`nft -f\` takes 3 minutes of kernel time)."
    echo
    sed '1,2d' "$OUT/kube-change.md"
  else
    echo "Not run."
  fi
  if have svc-e2e.md || have svc-e2e-new.md; then
    echo
    echo "### A Service's packets/s"
    echo
    echo "The end-to-end set-up with the *svc* family: kube-proxy's own rules for N UDP Services x 10"
    echo "endpoints (iptables mode for nf2bpf and iptables, nftables mode for nft), the sender's flow"
    echo "to the last Service's ClusterIP:53, its endpoints 10 addresses of the receiving namespace on"
    echo "port 5353, where the sink listens (N = 0: straight to 198.18.0.2:5353, the ceiling). nf2bpf"
    echo "runs the Service from its service maps; iptables walks KUBE-SERVICES, then the Service's"
    echo "chains; nft looks the ClusterIP up in its verdict map."
    echo
    echo "N = 0 to 1,000 were measured in one run, N = 10,000 in another (one repetition; every"
    echo "ratio is within one column, so within one run)."
    echo
    if have svc-e2e.md; then sed 's/^### /#### /' "$OUT/svc-e2e.md"; echo; fi
    if have svc-e2e-new.md; then
      echo "Every packet a new connection (a new source port: the first packet of a flow, which draws a"
      echo "backend and makes a binding), 30,000 new flows after a 2,000-flow warm-up (20,000 at"
      echo "N = 10,000):"
      echo
      sed 's/^### /#### /' "$OUT/svc-e2e-new.md"
    fi
  fi
  echo
  echo "## Control plane"
  echo
  if have control.md; then sed 's/^## Control plane (in process)/### In process/' "$OUT/control.md"; else echo "Not run."; fi
  echo
  echo "## Memory"
  echo
  if have memory.md; then sed '1,2d' "$OUT/memory.md"; else echo "Not run."; fi
  echo
  if [ -f "$ROOT/bench/analysis.md" ]; then
    echo "## Analysis"
    echo
    cat "$ROOT/bench/analysis.md"
  fi
} >"$DOC"
echo "report: wrote $DOC" >&2
