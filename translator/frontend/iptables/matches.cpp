// `-m MODULE` handlers: each option of each match module becomes IR matches.
#include <grp.h>
#include <strings.h>
#include <pwd.h>

#include <algorithm>
#include <cstring>
#include <unordered_map>

#include "common/strings.h"
#include "translator/frontend/iptables/rule_context.h"

namespace nf2bpf::frontend::ipt {

using ir::Field;
using ir::IntervalSet;

// A DSCP class name (CS0-CS7, BE, AF11-AF43, EF) as libxt_dscp and
// libxt_DSCP read it.
bool dscp_class_value(std::string_view name, uint64_t& v) {
  static const std::pair<const char*, uint32_t> kClasses[] = {
      {"CS0", 0x00},  {"CS1", 0x08},  {"CS2", 0x10},  {"CS3", 0x18},  {"CS4", 0x20},  {"CS5", 0x28},
      {"CS6", 0x30},  {"CS7", 0x38},  {"BE", 0x00},   {"AF11", 0x0a}, {"AF12", 0x0c}, {"AF13", 0x0e},
      {"AF21", 0x12}, {"AF22", 0x14}, {"AF23", 0x16}, {"AF31", 0x1a}, {"AF32", 0x1c}, {"AF33", 0x1e},
      {"AF41", 0x22}, {"AF42", 0x24}, {"AF43", 0x26}, {"EF", 0x2e}};
  for (auto [n, value] : kClasses)
    if (name.size() == strlen(n) && strncasecmp(n, name.data(), name.size()) == 0) return v = value, true;
  return false;
}

// A TOS as libxt_tos and libxt_TOS read it: VALUE[/MASK] (mask 0xff) or a
// name (mask 0x3f).
bool tos_value_mask(std::string_view t, uint64_t& value, uint64_t& mask) {
  static const std::pair<const char*, uint32_t> kNames[] = {{"Minimize-Cost", 0x02},
                                                            {"Maximize-Reliability", 0x04},
                                                            {"Maximize-Throughput", 0x08},
                                                            {"Minimize-Delay", 0x10},
                                                            {"Normal-Service", 0x00}};
  mask = 0xff;
  for (auto [name, v] : kNames)
    if (t.size() == strlen(name) && strncasecmp(name, t.data(), t.size()) == 0) return value = v, mask = 0x3f, true;
  auto slash = t.find('/');
  return parse_uint(t.substr(0, slash), 0xff, value) &&
         (slash == std::string_view::npos || parse_uint(t.substr(slash + 1), 0xff, mask));
}

namespace {

bool ieq(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return std::toupper(x) == std::toupper(y); });
}

std::string cap_of(std::string_view module, std::string_view opt) {
  std::string s;
  s.reserve(4 + module.size() + opt.size());
  return s.append("-m ").append(module).append(" ").append(opt);
}

// ---- ports -----------------------------------------------------------------

void port_match(RuleCtx& c, bool neg, const Token& opt, const Args& a, Field f, std::string_view module,
                std::string_view canon) {
  IntervalSet s;
  if (!parse_port_range(c, *a[0], a[0]->text, s)) return;
  c.add_match(f, neg, s, cap_of(module, canon), opt, module);
}

// clang-format off
#define PORT_OPTS(mod)                                                                        \
  OptSpec{"--sport", 1, true,                                                                 \
          [](RuleCtx& c, bool n, const Token& o, const Args& a) {                             \
            port_match(c, n, o, a, Field::SrcPort, mod, "--sport");                           \
          },                                                                                  \
          ""},                                                                                \
      OptSpec{"--source-port", 1, true,                                                       \
              [](RuleCtx& c, bool n, const Token& o, const Args& a) {                         \
                port_match(c, n, o, a, Field::SrcPort, mod, "--sport");                       \
              },                                                                              \
              ""},                                                                            \
      OptSpec{"--dport", 1, true,                                                             \
              [](RuleCtx& c, bool n, const Token& o, const Args& a) {                         \
                port_match(c, n, o, a, Field::DstPort, mod, "--dport");                       \
              },                                                                              \
              ""},                                                                            \
      OptSpec{"--destination-port", 1, true,                                                  \
              [](RuleCtx& c, bool n, const Token& o, const Args& a) {                         \
                port_match(c, n, o, a, Field::DstPort, mod, "--dport");                       \
              },                                                                              \
              ""}
// clang-format on

// ---- tcp flags -------------------------------------------------------------

bool parse_tcp_flag_list(RuleCtx& c, const Token& t, uint64_t& out) {
  static const std::pair<std::string_view, uint8_t> kFlags[] = {
      {"FIN", 0x01}, {"SYN", 0x02}, {"RST", 0x04}, {"PSH", 0x08}, {"ACK", 0x10},
      {"URG", 0x20}, {"ECE", 0x40}, {"CWR", 0x80}, {"ALL", 0xff}, {"NONE", 0x00}};
  out = 0;
  for (auto part : split(t.text, ',')) {
    bool found = false;
    for (auto& [n, v] : kFlags)
      if (ieq(part, n)) {
        out |= v;
        found = true;
      }
    if (!found) {
      c.error(t, "unknown TCP flag '" + std::string(part) + "'",
              "flags are FIN, SYN, RST, PSH, ACK, URG, ECE, CWR, ALL, NONE");
      return false;
    }
  }
  return true;
}

void tcp_flags(RuleCtx& c, bool neg, const Token& opt, const Args& a) {
  uint64_t mask, comp;
  if (!parse_tcp_flag_list(c, *a[0], mask) || !parse_tcp_flag_list(c, *a[1], comp)) return;
  c.add_match(Field::TcpFlags, neg, ir::Masked{mask, IntervalSet::single(comp & mask)}, "-m tcp --tcp-flags", opt,
              "tcp");
}

void tcp_syn(RuleCtx& c, bool neg, const Token& opt, const Args&) {
  c.add_match(Field::TcpFlags, neg, ir::Masked{0x17, IntervalSet::single(0x02)}, "-m tcp --syn", opt, "tcp");
}

void opaque(RuleCtx& c, bool neg, const Token& opt, const Args& a, std::string_view module, std::string cap) {
  auto& m = c.add_match(Field::Opaque, neg, IntervalSet{}, std::move(cap), opt, module);
  std::string v;
  for (auto* t : a) v += (v.empty() ? "" : " ") + t->text;
  m.args.emplace_back(opt.text, v);
}

// ---- icmp ------------------------------------------------------------------

struct IcmpName {
  std::string_view name;
  int type, code;  // code -1 = any
};

const IcmpName kIcmpNames[] = {
    {"any", -1, -1},
    {"echo-reply", 0, -1},
    {"pong", 0, -1},
    {"destination-unreachable", 3, -1},
    {"network-unreachable", 3, 0},
    {"host-unreachable", 3, 1},
    {"protocol-unreachable", 3, 2},
    {"port-unreachable", 3, 3},
    {"fragmentation-needed", 3, 4},
    {"source-route-failed", 3, 5},
    {"network-unknown", 3, 6},
    {"host-unknown", 3, 7},
    {"network-prohibited", 3, 9},
    {"host-prohibited", 3, 10},
    {"TOS-network-unreachable", 3, 11},
    {"TOS-host-unreachable", 3, 12},
    {"communication-prohibited", 3, 13},
    {"host-precedence-violation", 3, 14},
    {"precedence-cutoff", 3, 15},
    {"source-quench", 4, -1},
    {"redirect", 5, -1},
    {"network-redirect", 5, 0},
    {"host-redirect", 5, 1},
    {"TOS-network-redirect", 5, 2},
    {"TOS-host-redirect", 5, 3},
    {"echo-request", 8, -1},
    {"ping", 8, -1},
    {"router-advertisement", 9, -1},
    {"router-solicitation", 10, -1},
    {"time-exceeded", 11, -1},
    {"ttl-exceeded", 11, -1},
    {"ttl-zero-during-transit", 11, 0},
    {"ttl-zero-during-reassembly", 11, 1},
    {"parameter-problem", 12, -1},
    {"ip-header-bad", 12, 0},
    {"required-option-missing", 12, 1},
    {"timestamp-request", 13, -1},
    {"timestamp-reply", 14, -1},
    {"address-mask-request", 17, -1},
    {"address-mask-reply", 18, -1},
};

const IcmpName kIcmp6Names[] = {
    {"destination-unreachable", 1, -1},
    {"no-route", 1, 0},
    {"communication-prohibited", 1, 1},
    {"beyond-scope", 1, 2},
    {"address-unreachable", 1, 3},
    {"port-unreachable", 1, 4},
    {"failed-policy", 1, 5},
    {"reject-route", 1, 6},
    {"packet-too-big", 2, -1},
    {"time-exceeded", 3, -1},
    {"ttl-exceeded", 3, -1},
    {"ttl-zero-during-transit", 3, 0},
    {"ttl-zero-during-reassembly", 3, 1},
    {"parameter-problem", 4, -1},
    {"bad-header", 4, 0},
    {"unknown-header-type", 4, 1},
    {"unknown-option", 4, 2},
    {"echo-request", 128, -1},
    {"ping", 128, -1},
    {"echo-reply", 129, -1},
    {"pong", 129, -1},
    {"mld-listener-query", 130, -1},
    {"mld-listener-report", 131, -1},
    {"mld-listener-done", 132, -1},
    {"mld-listener-reduction", 132, -1},
    {"router-solicitation", 133, -1},
    {"router-advertisement", 134, -1},
    {"neighbour-solicitation", 135, -1},
    {"neighbor-solicitation", 135, -1},
    {"neighbour-advertisement", 136, -1},
    {"neighbor-advertisement", 136, -1},
    {"redirect", 137, -1},
};

void icmp_type(RuleCtx& c, bool neg, const Token& opt, const Args& a, bool v6) {
  std::string_view s = a[0]->text;
  int type = -2, code = -1;
  auto names = v6 ? std::begin(kIcmp6Names) : std::begin(kIcmpNames);
  auto names_end = v6 ? std::end(kIcmp6Names) : std::end(kIcmpNames);
  for (auto it = names; it != names_end; ++it)
    if (ieq(it->name, s)) {
      type = it->type;
      code = it->code;
    }
  if (type == -2) {
    auto parts = split(s, '/');
    uint64_t t = 0, cd = 0;
    if (parts.size() > 2 || !parse_uint(parts[0], 255, t) || (parts.size() == 2 && !parse_uint(parts[1], 255, cd))) {
      c.error(*a[0], "invalid ICMP type '" + std::string(s) + "'",
              v6 ? "use a number (128), type/code (1/4) or a name such as echo-request"
                 : "use a number (8), type/code (3/4) or a name such as echo-request");
      return;
    }
    type = (int)t;
    code = parts.size() == 2 ? (int)cd : -1;
  }
  const char* cap = v6 ? "-m icmp6 --icmpv6-type" : "-m icmp --icmp-type";
  Field f = v6 ? Field::Icmp6Type : Field::IcmpType;
  IntervalSet set;
  if (type < 0)
    set = IntervalSet::range(0, 0xffff);  // "any": any ICMP packet
  else if (code < 0)
    set = IntervalSet::range((unsigned)type << 8, ((unsigned)type << 8) | 0xff);
  else
    set = IntervalSet::single(((unsigned)type << 8) | (unsigned)code);
  c.add_match(f, neg, set, cap, opt, v6 ? "icmp6" : "icmp");
}

// ---- multiport -------------------------------------------------------------

void multiport(RuleCtx& c, bool neg, const Token& opt, const Args& a, std::string_view canon) {
  // libxt_multiport checks the protocol as it reads the port option, so -p
  // must come before it ("-m multiport -p tcp --dports" is fine, "-m
  // multiport --dports 80 -p tcp" is refused); "! -p tcp" is refused too.
  bool proto_ok =
      !c.proto_negated && (c.proto == 6 || c.proto == 17 || c.proto == 136 || c.proto == 132 || c.proto == 33);
  if (!proto_ok) {
    c.error(opt, "-m multiport needs -p tcp, udp, udplite, sctp or dccp before " + opt.text,
            "iptables refuses the ports without one of these protocols");
    return;
  }
  IntervalSet s;
  size_t n = 0;
  for (auto part : split(a[0]->text, ',')) {
    IntervalSet one;
    if (!parse_port_range(c, *a[0], part, one)) return;
    if (part.find(':') != std::string_view::npos && one.intervals()[0].lo == one.intervals()[0].hi) {
      c.error(*a[0], "port range '" + std::string(part) + "' in a multiport list starts and ends at one port",
              "iptables refuses it (invalid portrange); write the single port");
      return;
    }
    s.add(one);
    ++n;
  }
  if (n > 15) c.warning(*a[0], "more than 15 ports: iptables would reject this multiport match");
  if (canon == "--ports") {
    // Either port in the list: no single-field conjunction expresses that, so
    // --ports becomes an opaque match the classifier handles by expansion.
    auto& m = c.add_match(Field::Opaque, neg, s, cap_of("multiport", "--ports"), opt, "multiport");
    m.args.emplace_back("--ports", a[0]->text);
    return;
  }
  c.add_match(canon == "--sports" ? Field::SrcPort : Field::DstPort, neg, s, cap_of("multiport", canon), opt,
              "multiport");
}

// ---- conntrack / state -----------------------------------------------------

// `nat_status`: the ct status bits SNAT (16) and DNAT (32) named in the list.
bool parse_states(RuleCtx& c, const Token& t, bool allow_nat, IntervalSet& out, uint64_t& nat_status) {
  nat_status = 0;
  for (auto part : split(t.text, ',')) {
    if (ieq(part, "INVALID"))
      out.add(ir::kCtInvalid, ir::kCtInvalid);
    else if (ieq(part, "ESTABLISHED"))
      out.add(ir::kCtEstablished, ir::kCtEstablished);
    else if (ieq(part, "RELATED"))
      out.add(ir::kCtRelated, ir::kCtRelated);
    else if (ieq(part, "NEW"))
      out.add(ir::kCtNew, ir::kCtNew);
    else if (ieq(part, "UNTRACKED"))
      out.add(ir::kCtUntracked, ir::kCtUntracked);
    else if (allow_nat && ieq(part, "SNAT"))
      nat_status |= 16;
    else if (allow_nat && ieq(part, "DNAT"))
      nat_status |= 32;
    else {
      c.error(t, "unknown connection state '" + std::string(part) + "'",
              allow_nat ? "states are INVALID, NEW, ESTABLISHED, RELATED, UNTRACKED, SNAT, DNAT"
                        : "states are INVALID, NEW, ESTABLISHED, RELATED, UNTRACKED");
      return false;
    }
  }
  return true;
}

// The set of all values CtState can take, so negation stays inside it.
IntervalSet all_states() {
  IntervalSet s;
  for (uint8_t b : {ir::kCtInvalid, ir::kCtEstablished, ir::kCtRelated, ir::kCtNew, ir::kCtUntracked}) s.add(b, b);
  return s;
}

void ctstate(RuleCtx& c, bool neg, const Token& opt, const Args& a, bool conntrack) {
  IntervalSet s;
  uint64_t nat_status = 0;
  if (!parse_states(c, *a[0], conntrack, s, nat_status)) return;
  std::string cap = conntrack ? "-m conntrack --ctstate" : "-m state --state";
  // xt_conntrack: the SNAT/DNAT pseudo-states are the connection's
  // IPS_SRC_NAT/IPS_DST_NAT status bits, and the rule matches when any bit of
  // the list is set: alone they are one ct status test. With real states the
  // list is an OR across two fields; negated, it is the AND of both negations
  // (kube-proxy's "! --ctstate RELATED,ESTABLISHED,DNAT"), which a rule's
  // conjunction holds, but a positive one is kept opaque.
  if (nat_status) {
    if (!neg && !s.empty()) {
      opaque(c, neg, opt, a, "conntrack", "-m conntrack --ctstate SNAT,DNAT with other states");
      return;
    }
    IntervalSet any;
    for (uint64_t v : {16, 32, 48})
      if ((v & nat_status) == v) any.add(v, v);
    c.add_match(Field::CtStatus, neg, ir::Masked{nat_status, any}, "-m conntrack --ctstate SNAT,DNAT", opt,
                "conntrack");
    if (s.empty()) return;
  }
  // Negation is relative to the five real states, not the byte domain.
  if (neg) {
    s = all_states().intersect(s.complement(0xff));
    neg = false;
  }
  c.add_match(Field::CtState, neg, s, cap, opt, conntrack ? "conntrack" : "state");
}

void ct_addr(RuleCtx& c, bool neg, const Token& opt, const Args& a, Field f, std::string_view canon) {
  std::string err, with_len;
  if (c.fam == ir::AddrFamily::V6 && !ipv6_mask_to_len(a[0]->text, with_len, err)) {
    c.error(*a[0], "invalid address '" + a[0]->text + "': " + err);
    return;
  }
  auto s = ir::parse_cidr(with_len.empty() ? a[0]->text : with_len, c.fam, err);
  if (!s) {
    c.error(*a[0], "invalid address '" + a[0]->text + "': " + err);
    return;
  }
  c.add_match(f, neg, *s, cap_of("conntrack", canon), opt, "conntrack");
}

void ct_port(RuleCtx& c, bool neg, const Token& opt, const Args& a, Field f, std::string_view canon) {
  IntervalSet s;
  if (!parse_port_range(c, *a[0], a[0]->text, s)) return;
  c.add_match(f, neg, s, cap_of("conntrack", canon), opt, "conntrack");
}

void ctproto(RuleCtx& c, bool neg, const Token& opt, const Args& a) {
  auto p = protocol_number(a[0]->text, c.fam);
  if (!p) {
    c.error(*a[0], "unknown protocol '" + a[0]->text + "'");
    return;
  }
  c.add_match(Field::CtL4Proto, neg, IntervalSet::single(*p), "-m conntrack --ctproto", opt, "conntrack");
}

void ctdir(RuleCtx& c, bool neg, const Token& opt, const Args& a) {
  int d = ieq(a[0]->text, "ORIGINAL") ? 0 : ieq(a[0]->text, "REPLY") ? 1 : -1;
  if (d < 0) {
    c.error(*a[0], "unknown direction '" + a[0]->text + "'", "use ORIGINAL or REPLY");
    return;
  }
  c.add_match(Field::CtDirection, neg, IntervalSet::single(d), "-m conntrack --ctdir", opt, "conntrack");
}

// ---- mark ------------------------------------------------------------------

void mark_match(RuleCtx& c, bool neg, const Token& opt, const Args& a, Field f, std::string_view module) {
  uint64_t v, m;
  if (!parse_value_mask(c, *a[0], v, m)) return;
  c.add_match(f, neg, ir::Masked{m, IntervalSet::single(v & m)}, cap_of(module, "--mark"), opt, module);
}

// ---- addrtype --------------------------------------------------------------

void addrtype(RuleCtx& c, bool neg, const Token& opt, const Args& a, Field f, std::string_view canon) {
  static const std::pair<std::string_view, uint16_t> kTypes[] = {{"UNSPEC", ir::kAddrUnspec},
                                                                 {"UNICAST", ir::kAddrUnicast},
                                                                 {"LOCAL", ir::kAddrLocal},
                                                                 {"BROADCAST", ir::kAddrBroadcast},
                                                                 {"ANYCAST", ir::kAddrAnycast},
                                                                 {"MULTICAST", ir::kAddrMulticast},
                                                                 {"BLACKHOLE", ir::kAddrBlackhole},
                                                                 {"UNREACHABLE", ir::kAddrUnreachable},
                                                                 {"PROHIBIT", ir::kAddrProhibit},
                                                                 {"THROW", ir::kAddrThrow},
                                                                 {"NAT", ir::kAddrNat},
                                                                 {"XRESOLVE", ir::kAddrXresolve}};
  IntervalSet s;
  for (auto part : split(a[0]->text, ',')) {
    bool found = false;
    for (auto& [n, v] : kTypes)
      if (ieq(n, part)) {
        s.add(v, v);
        found = true;
      }
    if (!found) {
      c.error(*a[0], "unknown address type '" + std::string(part) + "'",
              "types are UNICAST, LOCAL, BROADCAST, ANYCAST, MULTICAST, BLACKHOLE, UNREACHABLE, "
              "PROHIBIT, THROW, NAT, XRESOLVE, UNSPEC");
      return;
    }
  }
  c.add_match(f, neg, s, cap_of("addrtype", canon), opt, "addrtype");
}

// ---- iprange ---------------------------------------------------------------

void iprange(RuleCtx& c, bool neg, const Token& opt, const Args& a, Field f, std::string_view canon) {
  auto dash = a[0]->text.find('-');
  std::string_view s = a[0]->text;
  auto lo = ir::parse_addr(s.substr(0, dash), c.fam);
  auto hi = dash == std::string_view::npos ? lo : ir::parse_addr(s.substr(dash + 1), c.fam);
  if (!lo || !hi) {
    c.error(*a[0], "invalid address range '" + a[0]->text + "'", "write FROM-TO, e.g. 10.0.0.1-10.0.0.9");
    return;
  }
  if (*lo > *hi) {
    c.error(*a[0], "address range '" + a[0]->text + "' ends before it starts");
    return;
  }
  c.add_match(f, neg, IntervalSet::range(*lo, *hi), cap_of("iprange", canon), opt, "iprange");
}

// ---- set -------------------------------------------------------------------

void match_set(RuleCtx& c, bool neg, const Token& opt, const Args& a) {
  const std::string& name = a[0]->text;
  auto dirs = split(a[1]->text, ',');
  if (dirs.size() > 6) {
    c.error(*a[1], "too many set directions");
    return;
  }
  for (auto d : dirs)
    if (d != "src" && d != "dst") {
      c.error(*a[1], "invalid set direction '" + std::string(d) + "'", "use src or dst, comma separated");
      return;
    }
  const ir::Set* set = nullptr;
  for (const auto& s : c.ipsets)
    if (s.name == name) set = &s;
  ir::SetRef ref;
  ref.name = name;
  size_t di = 0;
  if (set) {
    // Map the set's key components to packet fields: addresses and ports take
    // the next direction; protocol and interface components take none.
    for (Field f : set->key) {
      bool src = di < dirs.size() ? dirs[di] == "src" : true;
      switch (f) {
        case Field::SrcAddr:
          ref.key.push_back(src ? Field::SrcAddr : Field::DstAddr);
          ++di;
          break;
        case Field::SrcPort:
          ref.key.push_back(src ? Field::SrcPort : Field::DstPort);
          ++di;
          break;
        case Field::SrcMac:
          ref.key.push_back(Field::SrcMac);
          ++di;
          break;
        default: ref.key.push_back(f);
      }
    }
    if (di > dirs.size())
      c.warning(*a[1], "set '" + name + "' has " + std::to_string(di) + " dimensions but " +
                           std::to_string(dirs.size()) + " directions are given");
  } else {
    for (auto d : dirs) ref.key.push_back(d == "src" ? Field::SrcAddr : Field::DstAddr);
  }
  auto& m = c.add_match(ref.key.empty() ? Field::SrcAddr : ref.key.front(), neg, ref, "-m set --match-set", opt, "set");
  m.args.emplace_back("--match-set", name + " " + a[1]->text);
}

// ---- misc ------------------------------------------------------------------

void length_match(RuleCtx& c, bool neg, const Token& opt, const Args& a) {
  std::string_view s = a[0]->text;
  auto colon = s.find(':');
  uint64_t lo = 0, hi = 0xffff;
  bool ok = colon == std::string_view::npos
                ? parse_uint(s, 0xffff, lo) && (hi = lo, true)
                : (colon == 0 || parse_uint(s.substr(0, colon), 0xffff, lo)) &&
                      (colon + 1 == s.size() || parse_uint(s.substr(colon + 1), 0xffff, hi));
  if (!ok || lo > hi) {
    c.error(*a[0], "invalid length '" + a[0]->text + "'", "write N or MIN:MAX (0-65535)");
    return;
  }
  c.add_match(Field::Length, neg, IntervalSet::range(lo, hi), "-m length --length", opt, "length");
}

void ttl_match(RuleCtx& c, bool neg, const Token& opt, const Args& a, std::string_view module, std::string_view canon) {
  uint64_t v;
  if (!parse_uint(a[0]->text, 255, v)) {
    c.error(*a[0], "invalid " + std::string(module) + " value '" + a[0]->text + "'", "0-255");
    return;
  }
  IntervalSet s;
  if (canon.ends_with("-eq"))
    s = IntervalSet::single(v);
  else if (canon.ends_with("-gt")) {
    if (v == 255)
      s = IntervalSet{};
    else
      s = IntervalSet::range(v + 1, 255);
  } else {
    if (v == 0)
      s = IntervalSet{};
    else
      s = IntervalSet::range(0, v - 1);
  }
  c.add_match(Field::Ttl, neg, s, cap_of(module, canon), opt, module);
}

void pkttype(RuleCtx& c, bool neg, const Token& opt, const Args& a) {
  // The names and aliases libxt_pkttype takes (case-insensitive), as PACKET_* values.
  static const std::pair<std::string_view, int> kTypes[] = {
      {"unicast", 0}, {"host", 0}, {"broadcast", 1}, {"bcast", 1}, {"multicast", 2}, {"mcast", 2}, {"otherhost", 3}};
  int v = -1;
  for (auto& [n, t] : kTypes)
    if (ieq(a[0]->text, n)) v = t;
  if (v < 0) {
    c.error(*a[0], "unknown packet type '" + a[0]->text + "'", "use unicast, broadcast, multicast or otherhost");
    return;
  }
  c.add_match(Field::PktType, neg, IntervalSet::single(v), "-m pkttype --pkt-type", opt, "pkttype");
}

void mac_source(RuleCtx& c, bool neg, const Token& opt, const Args& a) {
  auto parts = split(a[0]->text, ':');
  uint64_t mac = 0;
  bool ok = parts.size() == 6;
  for (auto p : parts) {
    uint64_t b = 0;
    if (!ok || p.empty() || p.size() > 2) {
      ok = false;
      break;
    }
    for (char ch : p) {
      int d = std::isxdigit((unsigned char)ch)
                  ? (std::isdigit((unsigned char)ch) ? ch - '0' : (std::tolower(ch) - 'a' + 10))
                  : -1;
      if (d < 0) ok = false;
      b = b * 16 + (d < 0 ? 0 : d);
    }
    mac = (mac << 8) | b;
  }
  if (!ok) {
    c.error(*a[0], "invalid MAC address '" + a[0]->text + "'", "write XX:XX:XX:XX:XX:XX");
    return;
  }
  c.add_match(Field::SrcMac, neg, IntervalSet::single(mac), "-m mac --mac-source", opt, "mac");
}

// -m owner --uid-owner / --gid-owner ID[-ID] (a name is looked up on this
// host, as iptables does), --socket-exists. args: (option, "MIN-MAX").
void owner_opt(RuleCtx& c, bool neg, const Token& opt, const Args& a, std::string_view canon) {
  std::string v;
  if (!a.empty()) {
    bool uid = canon == "--uid-owner";
    auto id = [&](std::string_view t, uint64_t& out) {
      if (parse_uint(t, UINT32_MAX - 1, out)) return true;
      std::string name(t);
      if (uid) {
        if (const passwd* pw = getpwnam(name.c_str())) return out = pw->pw_uid, true;
      } else if (const group* gr = getgrnam(name.c_str())) {
        return out = gr->gr_gid, true;
      }
      return false;
    };
    std::string_view t = a[0]->text;
    auto dash = t.find('-');
    uint64_t lo = 0, hi = 0;
    bool ok = dash == std::string_view::npos ? id(t, lo) && id(t, hi)
                                             : id(t.substr(0, dash), lo) && id(t.substr(dash + 1), hi) && lo <= hi;
    if (!ok) {
      c.error(
          *a[0], std::string("invalid ") + (uid ? "user" : "group") + " '" + a[0]->text + "'",
          std::string("write a number, a range like 1000-1999, or a ") + (uid ? "user" : "group") + " this host knows");
      return;
    }
    v = std::to_string(lo) + "-" + std::to_string(hi);
  }
  auto& m = c.add_match(Field::Opaque, neg, IntervalSet{}, cap_of("owner", canon), opt, "owner");
  m.args.emplace_back(std::string(canon), v);
}

// -m dscp --dscp N (0-63) / --dscp-class NAME, as libxt_dscp reads them.
void dscp_opt(RuleCtx& c, bool neg, const Token& opt, const Args& a, bool cls) {
  uint64_t v = 0;
  bool ok = cls ? dscp_class_value(a[0]->text, v) : parse_uint(a[0]->text, 63, v);
  if (!ok) {
    c.error(*a[0], std::string("invalid DSCP ") + (cls ? "class" : "value") + " '" + a[0]->text + "'",
            cls ? "use CS0-CS7, BE, AF11-AF43 or EF" : "a number from 0 to 63 (0x3f)");
    return;
  }
  c.add_match(Field::Dscp, neg, IntervalSet::single(v), cap_of("dscp", cls ? "--dscp-class" : "--dscp"), opt, "dscp");
}

// -m tos --tos VALUE[/MASK] (mask 0xff) or a name (mask 0x3f), as libxt_tos
// reads them: the TOS bytes t with (t & mask) == value.
void tos_opt(RuleCtx& c, bool neg, const Token& opt, const Args& a) {
  uint64_t value = 0, mask = 0xff;
  if (!tos_value_mask(a[0]->text, value, mask)) {
    c.error(*a[0], "invalid TOS '" + a[0]->text + "'", "write VALUE[/MASK] (0-0xff) or a name such as Minimize-Delay");
    return;
  }
  IntervalSet bytes;
  for (uint64_t b = 0; b < 256; ++b)
    if ((b & mask) == value) bytes.add(b, b);
  c.add_match(Field::Tos, neg, bytes, cap_of("tos", "--tos"), opt, "tos");
}

void comment(RuleCtx& c, bool, const Token&, const Args& a) {
  if (a[0]->text.size() > 255) c.warning(*a[0], "comment longer than 255 characters: iptables would reject it");
  c.rule.comment = a[0]->text;
}

void limit_opt(RuleCtx& c, bool neg, const Token& opt, const Args& a, std::string_view canon) {
  if (canon == "--limit") {
    // Validate the rate now so a typo is reported where it is.
    std::string_view s = a[0]->text;
    auto slash = s.find('/');
    uint64_t n;
    if (!parse_uint(s.substr(0, slash), 1u << 30, n) || n == 0) {
      c.error(*a[0], "invalid rate '" + a[0]->text + "'", "write N/second, N/minute, N/hour or N/day");
      return;
    }
    if (slash != std::string_view::npos) {
      auto unit = s.substr(slash + 1);
      bool ok = false;
      for (auto u : {"second", "minute", "hour", "day"})
        if (!unit.empty() && std::string_view(u).starts_with(unit)) ok = true;
      if (!ok) {
        c.error(*a[0], "invalid rate unit '" + std::string(unit) + "'", "use second, minute, hour or day");
        return;
      }
    }
  }
  opaque(c, neg, opt, a, "limit", cap_of("limit", canon));
}

// Options whose handler only records them (for the report) with their own
// capability entry; the policy compiler reads `args`.
#define RECORD(mod, opt, n, negok)                                                                                   \
  OptSpec {                                                                                                          \
    opt, n, negok,                                                                                                   \
        [](RuleCtx& c, bool neg, const Token& o, const Args& a) { opaque(c, neg, o, a, mod, cap_of(mod, opt)); }, "" \
  }

const std::vector<ModuleSpec>& modules() {
  static const std::vector<ModuleSpec> kModules = {
      {"tcp",
       {PORT_OPTS("tcp"),
        {"--tcp-flags", 2, true, tcp_flags, ""},
        {"--syn", 0, true, tcp_syn, ""},
        RECORD("tcp", "--tcp-option", 1, true)},
       {6}},
      {"udp", {PORT_OPTS("udp")}, {17}},
      {"udplite", {PORT_OPTS("udplite")}, {136}},
      {"sctp", {PORT_OPTS("sctp"), RECORD("sctp", "--chunk-types", 2, true)}, {132}},
      {"icmp",
       {{"--icmp-type", 1, true,
         [](RuleCtx& c, bool n, const Token& o, const Args& a) { icmp_type(c, n, o, a, false); }, ""}},
       {1}},
      {"icmp6",
       {{"--icmpv6-type", 1, true,
         [](RuleCtx& c, bool n, const Token& o, const Args& a) { icmp_type(c, n, o, a, true); }, ""}},
       {58}},
      {"multiport",
       {{"--sports", 1, true,
         [](RuleCtx& c, bool n, const Token& o, const Args& a) { multiport(c, n, o, a, "--sports"); }, ""},
        {"--source-ports", 1, true,
         [](RuleCtx& c, bool n, const Token& o, const Args& a) { multiport(c, n, o, a, "--sports"); }, ""},
        {"--dports", 1, true,
         [](RuleCtx& c, bool n, const Token& o, const Args& a) { multiport(c, n, o, a, "--dports"); }, ""},
        {"--destination-ports", 1, true,
         [](RuleCtx& c, bool n, const Token& o, const Args& a) { multiport(c, n, o, a, "--dports"); }, ""},
        {"--ports", 1, true,
         [](RuleCtx& c, bool n, const Token& o, const Args& a) { multiport(c, n, o, a, "--ports"); }, ""}},
       {6, 17, 132, 136, 33}},
      {"conntrack",
       {{"--ctstate", 1, true, [](RuleCtx& c, bool n, const Token& o, const Args& a) { ctstate(c, n, o, a, true); },
         ""},
        {"--ctproto", 1, true, ctproto, ""},
        {"--ctorigsrc", 1, true,
         [](RuleCtx& c, bool n, const Token& o, const Args& a) {
           ct_addr(c, n, o, a, Field::CtOrigSrc, "--ctorigsrc");
         },
         ""},
        {"--ctorigdst", 1, true,
         [](RuleCtx& c, bool n, const Token& o, const Args& a) {
           ct_addr(c, n, o, a, Field::CtOrigDst, "--ctorigdst");
         },
         ""},
        {"--ctreplsrc", 1, true,
         [](RuleCtx& c, bool n, const Token& o, const Args& a) {
           ct_addr(c, n, o, a, Field::CtReplSrc, "--ctreplsrc");
         },
         ""},
        {"--ctrepldst", 1, true,
         [](RuleCtx& c, bool n, const Token& o, const Args& a) {
           ct_addr(c, n, o, a, Field::CtReplDst, "--ctrepldst");
         },
         ""},
        {"--ctorigsrcport", 1, true,
         [](RuleCtx& c, bool n, const Token& o, const Args& a) {
           ct_port(c, n, o, a, Field::CtOrigSrcPort, "--ctorigsrcport");
         },
         ""},
        {"--ctorigdstport", 1, true,
         [](RuleCtx& c, bool n, const Token& o, const Args& a) {
           ct_port(c, n, o, a, Field::CtOrigDstPort, "--ctorigdstport");
         },
         ""},
        {"--ctreplsrcport", 1, true,
         [](RuleCtx& c, bool n, const Token& o, const Args& a) {
           ct_port(c, n, o, a, Field::CtReplSrcPort, "--ctreplsrcport");
         },
         ""},
        {"--ctrepldstport", 1, true,
         [](RuleCtx& c, bool n, const Token& o, const Args& a) {
           ct_port(c, n, o, a, Field::CtReplDstPort, "--ctrepldstport");
         },
         ""},
        {"--ctdir", 1, false, ctdir, ""},
        RECORD("conntrack", "--ctstatus", 1, true),
        RECORD("conntrack", "--ctexpire", 1, true)},
       {}},
      {"state",
       {{"--state", 1, true, [](RuleCtx& c, bool n, const Token& o, const Args& a) { ctstate(c, n, o, a, false); },
         ""}},
       {}},
      {"comment", {{"--comment", 1, false, comment, ""}}, {}},
      {"set",
       {{"--match-set", 2, true, match_set, ""},
        RECORD("set", "--return-nomatch", 0, false),
        RECORD("set", "--update-counters", 0, true),
        RECORD("set", "--update-subcounters", 0, true),
        RECORD("set", "--packets-eq", 1, true),
        RECORD("set", "--packets-gt", 1, false),
        RECORD("set", "--packets-lt", 1, false),
        RECORD("set", "--bytes-eq", 1, true),
        RECORD("set", "--bytes-gt", 1, false),
        RECORD("set", "--bytes-lt", 1, false)},
       {}},
      {"mark",
       {{"--mark", 1, true,
         [](RuleCtx& c, bool n, const Token& o, const Args& a) { mark_match(c, n, o, a, Field::Mark, "mark"); }, ""}},
       {}},
      {"connmark",
       {{"--mark", 1, true,
         [](RuleCtx& c, bool n, const Token& o, const Args& a) { mark_match(c, n, o, a, Field::CtMark, "connmark"); },
         ""}},
       {}},
      {"addrtype",
       {{"--src-type", 1, true,
         [](RuleCtx& c, bool n, const Token& o, const Args& a) {
           addrtype(c, n, o, a, Field::SrcAddrType, "--src-type");
         },
         ""},
        {"--dst-type", 1, true,
         [](RuleCtx& c, bool n, const Token& o, const Args& a) {
           addrtype(c, n, o, a, Field::DstAddrType, "--dst-type");
         },
         ""},
        RECORD("addrtype", "--limit-iface-in", 0, false),
        RECORD("addrtype", "--limit-iface-out", 0, false)},
       {}},
      {"iprange",
       {{"--src-range", 1, true,
         [](RuleCtx& c, bool n, const Token& o, const Args& a) { iprange(c, n, o, a, Field::SrcAddr, "--src-range"); },
         ""},
        {"--dst-range", 1, true,
         [](RuleCtx& c, bool n, const Token& o, const Args& a) { iprange(c, n, o, a, Field::DstAddr, "--dst-range"); },
         ""}},
       {}},
      {"limit",
       {{"--limit", 1, false,
         [](RuleCtx& c, bool n, const Token& o, const Args& a) { limit_opt(c, n, o, a, "--limit"); }, ""},
        {"--limit-burst", 1, false,
         [](RuleCtx& c, bool n, const Token& o, const Args& a) { limit_opt(c, n, o, a, "--limit-burst"); }, ""}},
       {}},
      {"statistic",
       {{"--mode", 1, false,
         [](RuleCtx& c, bool n, const Token& o, const Args& a) {
           // nth mode is exact, random mode is not: their own capability rows.
           bool nth = !a.empty() && a[0]->text == "nth";
           opaque(c, n, o, a, "statistic", nth ? "-m statistic --mode nth" : cap_of("statistic", "--mode"));
         },
         ""},
        RECORD("statistic", "--probability", 1, true),
        RECORD("statistic", "--every", 1, true), RECORD("statistic", "--packet", 1, false)},
       {}},
      {"mac", {{"--mac-source", 1, true, mac_source, ""}}, {}},
      {"dscp",
       {{"--dscp", 1, true,
         [](RuleCtx& c, bool n, const Token& o, const Args& a) { dscp_opt(c, n, o, a, false); }, ""},
        {"--dscp-class", 1, true,
         [](RuleCtx& c, bool n, const Token& o, const Args& a) { dscp_opt(c, n, o, a, true); }, ""}},
       {}},
      {"tos", {{"--tos", 1, true, tos_opt, ""}}, {}},
      {"owner",
       {{"--uid-owner", 1, true,
         [](RuleCtx& c, bool n, const Token& o, const Args& a) { owner_opt(c, n, o, a, "--uid-owner"); }, ""},
        {"--gid-owner", 1, true,
         [](RuleCtx& c, bool n, const Token& o, const Args& a) { owner_opt(c, n, o, a, "--gid-owner"); }, ""},
        {"--socket-exists", 0, true,
         [](RuleCtx& c, bool n, const Token& o, const Args& a) { owner_opt(c, n, o, a, "--socket-exists"); }, ""},
        RECORD("owner", "--suppl-groups", 0, false)},
       {}},
      {"pkttype", {{"--pkt-type", 1, true, pkttype, ""}}, {}},
      {"length", {{"--length", 1, true, length_match, ""}}, {}},
      {"ttl",
       {{"--ttl-eq", 1, true,
         [](RuleCtx& c, bool n, const Token& o, const Args& a) { ttl_match(c, n, o, a, "ttl", "--ttl-eq"); }, ""},
        {"--ttl-gt", 1, false,
         [](RuleCtx& c, bool n, const Token& o, const Args& a) { ttl_match(c, n, o, a, "ttl", "--ttl-gt"); }, ""},
        {"--ttl-lt", 1, false,
         [](RuleCtx& c, bool n, const Token& o, const Args& a) { ttl_match(c, n, o, a, "ttl", "--ttl-lt"); }, ""}},
       {}},
      {"hl",
       {{"--hl-eq", 1, true,
         [](RuleCtx& c, bool n, const Token& o, const Args& a) { ttl_match(c, n, o, a, "hl", "--hl-eq"); }, ""},
        {"--hl-gt", 1, false,
         [](RuleCtx& c, bool n, const Token& o, const Args& a) { ttl_match(c, n, o, a, "hl", "--hl-gt"); }, ""},
        {"--hl-lt", 1, false,
         [](RuleCtx& c, bool n, const Token& o, const Args& a) { ttl_match(c, n, o, a, "hl", "--hl-lt"); }, ""}},
       {}},
  };
  return kModules;
}

}  // namespace

const ModuleSpec* find_match_module(std::string_view name) {
  static const auto index = [] {
    std::unordered_map<std::string_view, const ModuleSpec*> m;
    for (const auto& s : modules()) m.emplace(s.name, &s);
    return m;
  }();
  auto it = index.find(name);
  return it == index.end() ? nullptr : it->second;
}

}  // namespace nf2bpf::frontend::ipt
