// `-j TARGET` handlers: verdicts and the non-terminal statements targets add.
#include <unordered_map>

#include "translator/frontend/iptables/rule_context.h"

namespace nf2bpf::frontend::ipt {

using ir::StmtKind;
using ir::VerdictKind;

namespace {

void set_verdict(RuleCtx& c, const Token& t, VerdictKind k, std::string cap) {
  c.rule.verdict.kind = k;
  c.rule.verdict.cap = std::move(cap);
  c.rule.verdict.loc = c.loc(t);
}

ir::Statement& last_stmt(RuleCtx& c) { return c.rule.statements.back(); }

void record_arg(RuleCtx& c, const Token& opt, const Args& a) {
  std::string v;
  for (auto* t : a) v += (v.empty() ? "" : " ") + t->text;
  if (!c.rule.statements.empty()) last_stmt(c).args.emplace_back(opt.text, v);
}

// ---- REJECT ----------------------------------------------------------------

void reject_with(RuleCtx& c, bool, const Token&, const Args& a) {
  static const std::string_view kV4[] = {
      "icmp-net-unreachable", "icmp-host-unreachable", "icmp-port-unreachable", "icmp-proto-unreachable",
      "icmp-net-prohibited",  "icmp-host-prohibited",  "icmp-admin-prohibited", "tcp-reset"};
  static const std::string_view kV6[] = {"icmp6-no-route",
                                         "no-route",
                                         "icmp6-adm-prohibited",
                                         "adm-prohibited",
                                         "icmp6-addr-unreachable",
                                         "addr-unreach",
                                         "icmp6-port-unreachable",
                                         "port-unreach",
                                         "icmp6-policy-fail",
                                         "icmp6-reject-route",
                                         "tcp-reset"};
  const std::string& w = a[0]->text;
  bool ok = false;
  if (c.fam == ir::AddrFamily::V4) {
    for (auto v : kV4) ok |= v == w;
    // iptables also accepts short aliases.
    for (auto v :
         {"net-unreach", "host-unreach", "port-unreach", "proto-unreach", "net-prohib", "host-prohib", "admin-prohib"})
      ok |= w == v;
  } else {
    for (auto v : kV6) ok |= v == w;
  }
  if (!ok) {
    c.error(*a[0], "unknown reject type '" + w + "'",
            c.fam == ir::AddrFamily::V4 ? "e.g. icmp-port-unreachable, icmp-host-prohibited, tcp-reset"
                                        : "e.g. icmp6-port-unreachable, icmp6-adm-prohibited, tcp-reset");
    return;
  }
  if (w == "tcp-reset") c.needs_tcp = a[0];
  c.rule.verdict.reject_with = w;
}

// ---- LOG / NFLOG -----------------------------------------------------------

void log_prefix(RuleCtx& c, bool, const Token& opt, const Args& a) {
  if (a[0]->text.size() > 29)
    c.error(*a[0], "log prefix longer than 29 characters", "iptables refuses longer prefixes");
  last_stmt(c).text = a[0]->text;
  record_arg(c, opt, a);
}

void log_level(RuleCtx& c, bool, const Token& opt, const Args& a) {
  static const std::string_view kLevels[] = {"emerg", "alert", "crit", "error", "warning", "notice", "info", "debug"};
  uint64_t v = 8;
  for (uint64_t i = 0; i < 8; ++i)
    if (a[0]->text == kLevels[i]) v = i;
  if (v == 8 && a[0]->text == "err") v = 3;
  if (v == 8 && a[0]->text == "warn") v = 4;
  if (v == 8 && (!parse_uint(a[0]->text, 7, v))) {
    c.error(*a[0], "invalid log level '" + a[0]->text + "'",
            "0-7 or emerg, alert, crit, error, warning, notice, info, debug");
    return;
  }
  last_stmt(c).level = (uint32_t)v;
  record_arg(c, opt, a);
}

void nflog_group(RuleCtx& c, bool, const Token& opt, const Args& a) {
  uint64_t v;
  if (!parse_uint(a[0]->text, 0xffff, v)) {
    c.error(*a[0], "invalid NFLOG group '" + a[0]->text + "'", "0-65535");
    return;
  }
  last_stmt(c).group = (uint32_t)v;
  record_arg(c, opt, a);
}

void record(RuleCtx& c, bool, const Token& opt, const Args& a) { record_arg(c, opt, a); }

// ---- MARK / CONNMARK -------------------------------------------------------

// All mark operations normalise to "new = (old & ~mask) ^ value" (xt_MARK).
void xmark(RuleCtx& c, const Token& opt, const Args& a, std::string_view op) {
  uint64_t v, m;
  if (!parse_value_mask(c, *a[0], v, m)) return;
  auto& s = last_stmt(c);
  bool has_mask = a[0]->text.find('/') != std::string::npos;
  if (op == "--set-xmark") {
    s.value = v, s.mask = has_mask ? m : 0xffffffff;
  } else if (op == "--set-mark") {
    s.value = v, s.mask = (has_mask ? m : 0xffffffff) | v;
  } else if (op == "--and-mark") {
    s.value = 0, s.mask = (~v) & 0xffffffff;
  } else if (op == "--or-mark") {
    s.value = v, s.mask = v;
  } else if (op == "--xor-mark") {
    s.value = v, s.mask = 0;
  }
  record_arg(c, opt, a);
}

// ---- DSCP / TOS ------------------------------------------------------------

// Both rewrite the TOS / traffic class byte as "new = (old & ~mask) ^
// value": xt_DSCP's dscp_tg keeps the ECN bits (mask 0xfc); tos_tg's
// --set-tos VALUE[/MASK] is (old & ~MASK) ^ VALUE, and --and-tos, --or-tos
// and --xor-tos are its special cases, as libxt_TOS writes them.
void dscp_set(RuleCtx& c, const Token& opt, const Args& a, bool cls) {
  uint64_t v = 0;
  if (!(cls ? dscp_class_value(a[0]->text, v) : parse_uint(a[0]->text, 63, v))) {
    c.error(*a[0], std::string("invalid DSCP ") + (cls ? "class" : "value") + " '" + a[0]->text + "'",
            cls ? "use CS0-CS7, BE, AF11-AF43 or EF" : "a number from 0 to 63 (0x3f)");
    return;
  }
  last_stmt(c).value = v << 2, last_stmt(c).mask = 0xfc;
  record_arg(c, opt, a);
}

void tos_set(RuleCtx& c, const Token& opt, const Args& a, std::string_view op) {
  uint64_t v = 0, m = 0xff;
  bool ok = op == "--set-tos" ? tos_value_mask(a[0]->text, v, m) : parse_uint(a[0]->text, 0xff, v);
  if (!ok) {
    c.error(*a[0], "invalid TOS '" + a[0]->text + "'",
            op == "--set-tos" ? "write VALUE[/MASK] (0-0xff) or a name such as Minimize-Delay" : "a value 0-0xff");
    return;
  }
  auto& s = last_stmt(c);
  if (op == "--set-tos")
    s.value = v, s.mask = m;
  else if (op == "--and-tos")
    s.value = 0, s.mask = ~v & 0xff;
  else if (op == "--or-tos")
    s.value = v, s.mask = v;
  else
    s.value = v, s.mask = 0;
  record_arg(c, opt, a);
}

#define TOS_OPT(name)                                                                                   \
  OptSpec {                                                                                             \
    name, 1, false, [](RuleCtx& c, bool, const Token& o, const Args& a) { tos_set(c, o, a, name); }, "" \
  }

#define XMARK_OPT(name)                                                                               \
  OptSpec {                                                                                           \
    name, 1, false, [](RuleCtx& c, bool, const Token& o, const Args& a) { xmark(c, o, a, name); }, "" \
  }

// --save-mark / --restore-mark copy between the packet and the connection
// mark under two masks, --nfmask (packet side) and --ctmask (connection side),
// both 0xffffffff by default and both set by --mask; they may come before or
// after the mode. The IR has one mask, so different masks cannot be expressed:
// the statement then names a capability nf2bpf does not have, and the rule is
// reported unsupported instead of translated with the wrong mask.
void connmark_masks(RuleCtx& c) {
  auto& s = last_stmt(c);
  if (s.kind != StmtKind::SaveMark && s.kind != StmtKind::RestoreMark) return;  // masks do nothing
  uint64_t nf = 0xffffffff, ct = 0xffffffff;
  for (const auto& [k, v] : s.args) {
    uint64_t m;
    if (!parse_uint(v, 0xffffffff, m)) continue;
    if (k == "--mask" || k == "--nfmask") nf = m;
    if (k == "--mask" || k == "--ctmask") ct = m;
  }
  s.value = 0;
  s.mask = nf;
  s.cap = nf == ct ? "-j CONNMARK" : "-j CONNMARK with different --nfmask and --ctmask";
}

void connmark_mode(RuleCtx& c, const Token& opt, const Args& a, StmtKind k) {
  last_stmt(c).kind = k;
  record_arg(c, opt, a);
  connmark_masks(c);
}

void connmark_mask(RuleCtx& c, bool, const Token& opt, const Args& a) {
  uint64_t v;
  if (!parse_uint(a[0]->text, 0xffffffff, v)) {
    c.error(*a[0], "invalid mask '" + a[0]->text + "'");
    return;
  }
  record_arg(c, opt, a);
  connmark_masks(c);
}

// ---- NAT -------------------------------------------------------------------

// NAT ports rewrite the transport header, so libxt_NAT (DNAT, SNAT,
// MASQUERADE, REDIRECT) refuses them unless -p named TCP, UDP, SCTP or DCCP
// before the target ("Need TCP, UDP, SCTP or DCCP with port specification").
// It tests the protocol number only ("! -p tcp" passes), and it runs while
// the option is read, so a -p after the target does not count.
bool nat_ports_allowed(RuleCtx& c, const Token& t) {
  if (c.proto == 6 || c.proto == 17 || c.proto == 132 || c.proto == 33) return true;
  c.error(t, "NAT ports need -p tcp, udp, sctp or dccp before the target",
          "iptables refuses port translation for other protocols; add e.g. -p tcp before -j");
  return false;
}

// "PORT" or "LOW-HIGH" (iptables: "Port range `80' funky" when LOW > HIGH).
bool nat_port_range(RuleCtx& c, const Token& t, std::string_view s, std::pair<uint16_t, uint16_t>& out) {
  auto dash = s.find('-');
  uint16_t lo, hi;
  if (!parse_port(c, t, s.substr(0, dash), lo)) return false;
  hi = lo;
  if (dash != std::string_view::npos && !parse_port(c, t, s.substr(dash + 1), hi)) return false;
  if (lo > hi) {
    c.error(t, "port range '" + std::string(s) + "' ends before it starts", "write LOW-HIGH");
    return false;
  }
  out = {lo, hi};
  return true;
}

// [ipaddr[-ipaddr]][:port[-port]]
void nat_to(RuleCtx& c, bool, const Token& opt, const Args& a) {
  std::string_view s = a[0]->text;
  auto& st = last_stmt(c);
  for (const auto& [k, v] : st.args)
    if (k == opt.text) {
      c.error(opt, opt.text + " given twice", "iptables takes one range per rule; write one rule per range");
      return;
    }
  std::string_view addr = s, ports;
  bool has_ports = false;
  if (c.fam == ir::AddrFamily::V6 && !s.empty() && s[0] == '[') {
    auto rb = s.find(']');
    if (rb == std::string_view::npos) {
      c.error(*a[0], "missing ']' in IPv6 NAT address");
      return;
    }
    addr = s.substr(1, rb - 1);
    has_ports = rb + 1 < s.size() && s[rb + 1] == ':';
    if (has_ports) ports = s.substr(rb + 2);
  } else if (c.fam == ir::AddrFamily::V4) {
    auto colon = s.find(':');
    if (colon != std::string_view::npos) {
      addr = s.substr(0, colon);
      ports = s.substr(colon + 1);
      has_ports = true;
    }
  }
  if (!addr.empty()) {
    auto dash = addr.find('-');
    auto lo = ir::parse_addr(addr.substr(0, dash), c.fam);
    auto hi = dash == std::string_view::npos ? lo : ir::parse_addr(addr.substr(dash + 1), c.fam);
    if (!lo || !hi) {
      c.error(*a[0], "invalid NAT address '" + std::string(addr) + "'",
              c.fam == ir::AddrFamily::V4 ? "write ADDR[-ADDR][:PORT[-PORT]], e.g. 10.0.0.5:8080"
                                          : "write ADDR[-ADDR] or [ADDR[-ADDR]]:PORT[-PORT]");
      return;
    }
    // iptables-restore takes a reversed range, but the kernel's address
    // choice (find_best_ips_proto: min + hash % (max - min + 1), in u32)
    // then wraps and hands out addresses from outside it.
    if (*lo > *hi) {
      c.error(*a[0], "NAT address range '" + std::string(addr) + "' ends before it starts",
              "write LOW-HIGH; the kernel would pick addresses outside the range");
      return;
    }
    st.nat.addrs = ir::IntervalSet::range(*lo, *hi);
  }
  if (has_ports) {
    std::pair<uint16_t, uint16_t> pr;
    if (ports.empty()) {
      c.error(*a[0], "NAT port missing after ':'", "write ADDR:PORT[-PORT], or leave out the ':'");
      return;
    }
    if (!nat_ports_allowed(c, *a[0]) || !nat_port_range(c, *a[0], ports, pr)) return;
    st.nat.ports = pr;
  }
  record_arg(c, opt, a);
}

void to_ports(RuleCtx& c, bool, const Token& opt, const Args& a) {
  std::pair<uint16_t, uint16_t> pr;
  if (!nat_ports_allowed(c, *a[0]) || !nat_port_range(c, *a[0], a[0]->text, pr)) return;
  last_stmt(c).nat.ports = pr;
  record_arg(c, opt, a);
}

// NETMAP --to ADDR[/PREFIX]: maps the prefix's bits, keeps the host bits.
// The prefix is kept as its address range (the mask is ~(min ^ max)); host
// bits written in ADDR are cleared, as iptables-save shows them.
void netmap_to(RuleCtx& c, bool, const Token& opt, const Args& a) {
  std::string err, with_len;
  std::string_view s = a[0]->text;
  if (c.fam == ir::AddrFamily::V6 && !ipv6_mask_to_len(s, with_len, err)) {
    c.error(*a[0], "invalid NETMAP prefix '" + std::string(s) + "': " + err);
    return;
  }
  if (!with_len.empty()) s = with_len;
  auto v = ir::parse_cidr(s, c.fam, err);
  if (!v) {
    c.error(*a[0], "invalid NETMAP prefix '" + std::string(s) + "': " + err, "write ADDR/PREFIX, e.g. 10.5.6.0/24");
    return;
  }
  last_stmt(c).nat.addrs = *v;
  record_arg(c, opt, a);
}

// The flags draw addresses or ports from another random source than the
// kernel's, so they have their own capability rows: the statement names its
// target and its first flag ("-j SNAT --random").
void nat_flag(RuleCtx& c, bool, const Token& opt, const Args& a) {
  auto& st = last_stmt(c);
  auto& n = st.nat;
  if (opt.text == "--random") n.random = true;
  if (opt.text == "--random-fully") n.fully_random = true;
  if (opt.text == "--persistent") n.persistent = true;
  st.cap = st.cap.substr(0, st.cap.find(' ', 3));  // "-j SNAT"
  st.cap += n.random ? " --random" : n.fully_random ? " --random-fully" : " --persistent";
  record_arg(c, opt, a);
}

// ---- CT --------------------------------------------------------------------

void ct_notrack(RuleCtx& c, bool, const Token& opt, const Args& a) {
  auto& s = last_stmt(c);
  s.kind = StmtKind::Notrack;
  s.cap = "-j CT --notrack";
  record_arg(c, opt, a);
}

void ct_other(RuleCtx& c, bool, const Token& opt, const Args& a) {
  auto& s = last_stmt(c);
  if (s.kind != StmtKind::Notrack) s.kind = StmtKind::Other;
  s.cap = "-j CT";  // anything beyond --notrack is unsupported
  record_arg(c, opt, a);
}

const std::vector<TargetSpec>& targets() {
  static const std::vector<TargetSpec> kTargets = {
      {"ACCEPT", {}, [](RuleCtx& c, const Token& t) { set_verdict(c, t, VerdictKind::Accept, "-j ACCEPT"); }},
      {"DROP", {}, [](RuleCtx& c, const Token& t) { set_verdict(c, t, VerdictKind::Drop, "-j DROP"); }},
      {"RETURN", {}, [](RuleCtx& c, const Token& t) { set_verdict(c, t, VerdictKind::Return, "-j RETURN"); }},
      {"QUEUE", {}, [](RuleCtx& c, const Token& t) { set_verdict(c, t, VerdictKind::Queue, "-j QUEUE"); }},
      {"NFQUEUE",
       {{"--queue-num", 1, false, record, ""},
        {"--queue-balance", 1, false, record, ""},
        {"--queue-bypass", 0, false, record, ""},
        {"--queue-cpu-fanout", 0, false, record, ""}},
       [](RuleCtx& c, const Token& t) { set_verdict(c, t, VerdictKind::Queue, "-j NFQUEUE"); }},
      {"REJECT",
       {{"--reject-with", 1, false, reject_with, ""}},
       [](RuleCtx& c, const Token& t) {
         set_verdict(c, t, VerdictKind::Reject, "-j REJECT");
         c.rule.verdict.reject_with = c.fam == ir::AddrFamily::V4 ? "icmp-port-unreachable" : "icmp6-port-unreachable";
       }},
      {"LOG",
       {{"--log-prefix", 1, false, log_prefix, ""},
        {"--log-level", 1, false, log_level, ""},
        {"--log-tcp-sequence", 0, false, record, ""},
        {"--log-tcp-options", 0, false, record, ""},
        {"--log-ip-options", 0, false, record, ""},
        {"--log-uid", 0, false, record, ""},
        {"--log-macdecode", 0, false, record, ""}},
       [](RuleCtx& c, const Token& t) { c.add_stmt(StmtKind::Log, "-j LOG", t).level = 4; }},
      {"NFLOG",
       {{"--nflog-group", 1, false, nflog_group, ""},
        {"--nflog-prefix", 1, false, log_prefix, ""},
        {"--nflog-range", 1, false, record, ""},
        {"--nflog-size", 1, false, record, ""},
        {"--nflog-threshold", 1, false, record, ""}},
       [](RuleCtx& c, const Token& t) { c.add_stmt(StmtKind::Nflog, "-j NFLOG", t); }},
      {"MARK",
       {XMARK_OPT("--set-xmark"), XMARK_OPT("--set-mark"), XMARK_OPT("--and-mark"), XMARK_OPT("--or-mark"),
        XMARK_OPT("--xor-mark")},
       [](RuleCtx& c, const Token& t) { c.add_stmt(StmtKind::SetMark, "-j MARK", t); }},
      {"DSCP",
       {{"--set-dscp", 1, false, [](RuleCtx& c, bool, const Token& o, const Args& a) { dscp_set(c, o, a, false); }, ""},
        {"--set-dscp-class", 1, false, [](RuleCtx& c, bool, const Token& o, const Args& a) { dscp_set(c, o, a, true); },
         ""}},
       [](RuleCtx& c, const Token& t) { c.add_stmt(StmtKind::SetTos, "-j DSCP", t); }},
      {"TOS",
       {TOS_OPT("--set-tos"), TOS_OPT("--and-tos"), TOS_OPT("--or-tos"), TOS_OPT("--xor-tos")},
       [](RuleCtx& c, const Token& t) { c.add_stmt(StmtKind::SetTos, "-j TOS", t); }},
      {"CONNMARK",
       {{"--set-xmark", 1, false,
         [](RuleCtx& c, bool, const Token& o, const Args& a) { xmark(c, o, a, "--set-xmark"); }, ""},
        {"--set-mark", 1, false, [](RuleCtx& c, bool, const Token& o, const Args& a) { xmark(c, o, a, "--set-mark"); },
         ""},
        {"--and-mark", 1, false, [](RuleCtx& c, bool, const Token& o, const Args& a) { xmark(c, o, a, "--and-mark"); },
         ""},
        {"--or-mark", 1, false, [](RuleCtx& c, bool, const Token& o, const Args& a) { xmark(c, o, a, "--or-mark"); },
         ""},
        {"--xor-mark", 1, false, [](RuleCtx& c, bool, const Token& o, const Args& a) { xmark(c, o, a, "--xor-mark"); },
         ""},
        {"--save-mark", 0, false,
         [](RuleCtx& c, bool, const Token& o, const Args& a) { connmark_mode(c, o, a, StmtKind::SaveMark); }, ""},
        {"--restore-mark", 0, false,
         [](RuleCtx& c, bool, const Token& o, const Args& a) { connmark_mode(c, o, a, StmtKind::RestoreMark); }, ""},
        {"--nfmask", 1, false, connmark_mask, ""},
        {"--ctmask", 1, false, connmark_mask, ""},
        {"--mask", 1, false, connmark_mask, ""}},
       [](RuleCtx& c, const Token& t) { c.add_stmt(StmtKind::SetCtMark, "-j CONNMARK", t); }},
      {"DNAT",
       {{"--to-destination", 1, false, nat_to, ""},
        {"--random", 0, false, nat_flag, ""},
        {"--persistent", 0, false, nat_flag, ""}},
       [](RuleCtx& c, const Token& t) {
         c.add_stmt(StmtKind::Dnat, "-j DNAT", t);
         set_verdict(c, t, VerdictKind::Accept, "-j DNAT");
       },
       "--to-destination"},
      {"SNAT",
       {{"--to-source", 1, false, nat_to, ""},
        {"--random", 0, false, nat_flag, ""},
        {"--random-fully", 0, false, nat_flag, ""},
        {"--persistent", 0, false, nat_flag, ""}},
       [](RuleCtx& c, const Token& t) {
         c.add_stmt(StmtKind::Snat, "-j SNAT", t);
         set_verdict(c, t, VerdictKind::Accept, "-j SNAT");
       },
       "--to-source"},
      {"MASQUERADE",
       {{"--to-ports", 1, false, to_ports, ""},
        {"--random", 0, false, nat_flag, ""},
        {"--random-fully", 0, false, nat_flag, ""}},
       [](RuleCtx& c, const Token& t) {
         c.add_stmt(StmtKind::Masquerade, "-j MASQUERADE", t);
         set_verdict(c, t, VerdictKind::Accept, "-j MASQUERADE");
       }},
      {"REDIRECT",
       {{"--to-ports", 1, false, to_ports, ""}, {"--random", 0, false, nat_flag, ""}},
       [](RuleCtx& c, const Token& t) {
         c.add_stmt(StmtKind::Redirect, "-j REDIRECT", t);
         set_verdict(c, t, VerdictKind::Accept, "-j REDIRECT");
       }},
      {"NETMAP",
       {{"--to", 1, false, netmap_to, ""}},
       [](RuleCtx& c, const Token& t) {
         c.add_stmt(StmtKind::Netmap, "-j NETMAP", t);
         set_verdict(c, t, VerdictKind::Accept, "-j NETMAP");
       },
       "--to"},
      {"CT",
       {{"--notrack", 0, false, ct_notrack, ""},
        {"--helper", 1, false, ct_other, ""},
        {"--zone", 1, false, ct_other, ""},
        {"--zone-orig", 1, false, ct_other, ""},
        {"--zone-reply", 1, false, ct_other, ""},
        {"--ctevents", 1, false, ct_other, ""},
        {"--expevents", 1, false, ct_other, ""},
        {"--timeout", 1, false, ct_other, ""}},
       [](RuleCtx& c, const Token& t) { c.add_stmt(StmtKind::Other, "-j CT", t); }},
      {"NOTRACK", {}, [](RuleCtx& c, const Token& t) { c.add_stmt(StmtKind::Notrack, "-j NOTRACK", t); }},
      // Fills in a partial checksum (CHECKSUM_PARTIAL) in software; changes
      // no verdict, and the rule goes on to the next.
      {"CHECKSUM",
       {{"--checksum-fill", 0, false, [](RuleCtx&, bool, const Token&, const Args&) {}, ""}},
       [](RuleCtx& c, const Token& t) { set_verdict(c, t, VerdictKind::Continue, "-j CHECKSUM"); }},
      {"TCPMSS",
       {{"--set-mss", 1, false, record, ""}, {"--clamp-mss-to-pmtu", 0, false, record, ""}},
       [](RuleCtx& c, const Token& t) { c.add_stmt(StmtKind::TcpMss, "-j TCPMSS", t); }},
  };
  return kTargets;
}

}  // namespace

const TargetSpec* find_target(std::string_view name) {
  static const auto index = [] {
    std::unordered_map<std::string_view, const TargetSpec*> m;
    for (const auto& s : targets()) m.emplace(s.name, &s);
    return m;
  }();
  auto it = index.find(name);
  return it == index.end() ? nullptr : it->second;
}

}  // namespace nf2bpf::frontend::ipt
