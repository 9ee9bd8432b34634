// `ipset save` front-end: the sets iptables rules name with `-m set`.
#include <strings.h>

#include <algorithm>
#include <optional>
#include <span>
#include <string>

#include "common/strings.h"
#include "translator/frontend/iptables/lexer.h"
#include "translator/frontend/ipset/ipset_save.h"
#include "translator/frontend/iptables/rule_context.h"

namespace nf2bpf::frontend {

using ir::Field;
using ir::IntervalSet;

namespace {

struct TypeInfo {
  std::string_view name;
  std::vector<Field> key;  // SrcAddr = an address component, SrcPort = a port component
};

// Port components carry their protocol ("tcp:80"), so they expand to L4Proto + port.
const TypeInfo kTypes[] = {
    {"hash:ip", {Field::SrcAddr}},
    {"hash:net", {Field::SrcAddr}},
    {"hash:ip,port", {Field::SrcAddr, Field::L4Proto, Field::SrcPort}},
    {"hash:net,port", {Field::SrcAddr, Field::L4Proto, Field::SrcPort}},
    {"hash:ip,port,ip", {Field::SrcAddr, Field::L4Proto, Field::SrcPort, Field::DstAddr}},
    {"hash:ip,port,net", {Field::SrcAddr, Field::L4Proto, Field::SrcPort, Field::DstAddr}},
    {"hash:net,net", {Field::SrcAddr, Field::DstAddr}},
    {"hash:ip,mark", {Field::SrcAddr, Field::Mark}},
    {"hash:mac", {Field::SrcMac}},
    {"bitmap:port", {Field::SrcPort}},
    {"bitmap:ip", {Field::SrcAddr}},
};

// An ICMP or ICMPv6 "port" of an ipset element: a name as `ipset save`
// writes it (libipset's icmp.c / icmpv6.c) or TYPE/CODE; type << 8 | code.
std::optional<uint64_t> icmp_type_code(std::string_view c, bool v6) {
  struct Name {
    const char* name;
    uint8_t type, code;
  };
  static const Name k4[] = {{"echo-reply", 0, 0},
                            {"dest-unreachable", 3, 0},
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
                            {"source-quench", 4, 0},
                            {"network-redirect", 5, 0},
                            {"host-redirect", 5, 1},
                            {"TOS-network-redirect", 5, 2},
                            {"TOS-host-redirect", 5, 3},
                            {"echo-request", 8, 0},
                            {"router-advertisement", 9, 0},
                            {"router-solicitation", 10, 0},
                            {"ttl-zero-during-transit", 11, 0},
                            {"ttl-zero-during-reassembly", 11, 1},
                            {"ip-header-bad", 12, 0},
                            {"required-option-missing", 12, 1},
                            {"timestamp-request", 13, 0},
                            {"timestamp-reply", 14, 0},
                            {"address-mask-request", 17, 0},
                            {"address-mask-reply", 18, 0}};
  static const Name k6[] = {{"no-route", 1, 0},
                            {"communication-prohibited", 1, 1},
                            {"address-unreachable", 1, 3},
                            {"port-unreachable", 1, 4},
                            {"packet-too-big", 2, 0},
                            {"ttl-zero-during-transit", 3, 0},
                            {"ttl-zero-during-reassembly", 3, 1},
                            {"bad-header", 4, 0},
                            {"unknown-header-type", 4, 1},
                            {"unknown-option", 4, 2},
                            {"echo-request", 128, 0},
                            {"echo-reply", 129, 0}};
  for (const Name& n : v6 ? std::span<const Name>(k6) : std::span<const Name>(k4))
    if (strcasecmp(n.name, std::string(c).c_str()) == 0) return (uint64_t)n.type << 8 | n.code;
  auto slash = c.find('/');
  uint64_t type = 0, code = 0;
  if (slash == std::string_view::npos || !ipt::parse_uint(c.substr(0, slash), 255, type) ||
      !ipt::parse_uint(c.substr(slash + 1), 255, code))
    return std::nullopt;
  return type << 8 | code;
}

// One component of an element (an address, a port, a mark, a MAC) into
// `e.key`; false when it is not valid. `with_proto`: ports carry their
// protocol as a key field of their own.
bool element_component(Field f, std::string_view c, ir::AddrFamily fam, bool with_proto, ir::SetElement& e) {
  bool ok = true;
  if (f == Field::SrcAddr || f == Field::DstAddr) {
    std::string why;
    auto dash = c.find('-');
    std::optional<IntervalSet> s;
    if (dash != std::string_view::npos) {
      auto lo = ir::parse_addr(c.substr(0, dash), fam);
      auto hi = ir::parse_addr(c.substr(dash + 1), fam);
      if (lo && hi && *lo <= *hi) s = IntervalSet::range(*lo, *hi);
    } else {
      s = ir::parse_cidr(c, fam, why);
    }
    if (!s)
      ok = false;
    else
      e.key.push_back(*s);
  } else if (f == Field::SrcPort) {
    uint64_t proto = 6;
    auto colon = c.find(':');
    if (colon != std::string_view::npos) {
      auto pn = c.substr(0, colon);
      proto = pn == "tcp"       ? 6
              : pn == "udp"     ? 17
              : pn == "sctp"    ? 132
              : pn == "udplite" ? 136
              : pn == "icmp"    ? 1
              : pn == "icmpv6"  ? 58
                                : 256;
      if (proto == 256) ok = false;
      c = c.substr(colon + 1);
    }
    uint64_t lo = 0, hi = 0;
    auto dash = c.find('-');
    if (proto == 1 || proto == 58) {  // the ICMP type and code, as ipset keeps them: type << 8 | code
      auto tc = icmp_type_code(c, proto == 58);
      if (!tc) ok = false;
      lo = hi = tc.value_or(0);
    } else if (!ipt::parse_uint(c.substr(0, dash), 65535, lo) ||
               (dash != std::string_view::npos && !ipt::parse_uint(c.substr(dash + 1), 65535, hi))) {
      ok = false;
    }
    if (dash == std::string_view::npos || proto == 1 || proto == 58) hi = std::max(hi, lo);
    if (with_proto) e.key.push_back(IntervalSet::single(proto));
    e.key.push_back(IntervalSet::range(lo, hi));
  } else if (f == Field::Mark) {
    uint64_t m;
    if (!ipt::parse_uint(c, 0xffffffff, m)) ok = false;
    e.key.push_back(IntervalSet::single(m));
  } else if (f == Field::SrcMac) {
    uint64_t mac = 0;
    int n = 0;
    for (size_t i = 0; i < c.size(); ++i) {
      if (c[i] == ':') continue;
      int d = std::isxdigit((unsigned char)c[i])
                  ? (std::isdigit((unsigned char)c[i]) ? c[i] - '0' : std::tolower(c[i]) - 'a' + 10)
                  : -1;
      if (d < 0) ok = false;
      mac = mac * 16 + (d < 0 ? 0 : d);
      ++n;
    }
    if (n != 12) ok = false;
    e.key.push_back(IntervalSet::single(mac));
  }
  return ok;
}

// The `create` and `add` lines of one `ipset save` file.
class IpsetReader {
 public:
  IpsetReader(const Source& src, diag::Diagnostics& diags) : src_(src), diags_(diags) {}
  std::vector<ir::Set> run();

 private:
  ir::SourceLoc loc(const ipt::Token& tok) const { return ir::SourceLoc{src_.name, lineno_, tok.col, tok.len, {}}; }
  void err(const ipt::Token& tok, std::string m, std::string h = {}) {
    diags_.error(loc(tok), std::move(m), std::move(h), std::string(line_));
  }
  void create(const std::vector<ipt::Token>& t);
  void add(const std::vector<ipt::Token>& t);

  const Source& src_;
  diag::Diagnostics& diags_;
  std::vector<ir::Set> sets_;
  std::vector<ir::AddrFamily> fams_;  // per set
  uint32_t lineno_ = 0;
  std::string_view line_;
};

std::vector<ir::Set> IpsetReader::run() {
  for (std::string_view l : src_.lines()) {
    ++lineno_;
    line_ = l;
    auto lex = ipt::lex_line(l);
    auto& t = lex.tokens;
    if (t.empty() || t[0].text[0] == '#') continue;
    if (t[0].text == "create" || t[0].text == "-N")
      create(t);
    else if (t[0].text == "add" || t[0].text == "-A")
      add(t);
    else
      err(t[0], "unexpected '" + t[0].text + "' in an ipset file",
          "expected 'create' or 'add' lines from `ipset save`");
  }
  return std::move(sets_);
}

void IpsetReader::create(const std::vector<ipt::Token>& t) {
  if (t.size() < 3) {
    err(t[0], "create needs a set name and a type", "e.g. 'create blocklist hash:net family inet'");
    return;
  }
  auto it = std::find_if(std::begin(kTypes), std::end(kTypes), [&](auto& ti) { return ti.name == t[2].text; });
  if (it == std::end(kTypes)) {
    err(t[2], "unsupported ipset type '" + t[2].text + "'",
        "supported: hash:ip, hash:net, hash:ip,port, hash:net,port, hash:ip,port,ip, hash:ip,port,net, hash:net,net, "
        "hash:ip,mark, hash:mac, bitmap:port, bitmap:ip");
    return;
  }
  ir::Set s;
  s.name = t[1].text;
  s.key = it->key;
  s.origin_type = it->name;
  s.interval = it->name.find("net") != std::string_view::npos;
  s.loc = loc(t[1]);
  ir::AddrFamily fam = ir::AddrFamily::V4;
  for (size_t i = 3; i + 1 < t.size(); ++i) {
    if (t[i].text == "family" && t[i + 1].text == "inet6") fam = ir::AddrFamily::V6;
    if (t[i].text == "timeout") s.has_timeout = true;
  }
  sets_.push_back(std::move(s));
  fams_.push_back(fam);
}

void IpsetReader::add(const std::vector<ipt::Token>& t) {
  if (t.size() < 3) {
    err(t[0], "add needs a set name and an element");
    return;
  }
  size_t si = sets_.size();
  for (size_t i = 0; i < sets_.size(); ++i)
    if (sets_[i].name == t[1].text) si = i;
  if (si == sets_.size()) {
    err(t[1], "set '" + t[1].text + "' is not created before this line");
    return;
  }
  auto& set = sets_[si];
  ir::SetElement e;
  e.loc = loc(t[2]);
  bool nomatch = false;
  for (size_t i = 3; i < t.size(); ++i)
    if (t[i].text == "nomatch") nomatch = true;
  if (nomatch) {
    err(t[2], "nomatch elements are not supported", "remove the element or the nomatch flag");
    return;
  }
  // Split components on ',' (ports are "proto:port" or plain "port").
  std::vector<std::string_view> comps = split(t[2].text, ',');
  size_t ci = 0;
  bool ok = true;
  for (Field f : set.key) {
    if (f == Field::L4Proto) continue;  // filled with the port
    if (ci >= comps.size()) {
      ok = false;
      break;
    }
    if (!element_component(f, comps[ci++], fams_[si], set.key.size() > 1, e)) ok = false;
  }
  if (!ok || ci != comps.size()) {
    err(t[2], "invalid element '" + t[2].text + "' for set type " + set.origin_type);
    return;
  }
  for (size_t i = 3; i + 1 < t.size(); ++i)
    if (t[i].text == "timeout") {
      uint64_t ms;
      if (ipt::parse_uint(t[i + 1].text, UINT32_MAX, ms)) e.timeout_ms = ms * 1000;
    }
  set.elements.push_back(std::move(e));
}

}  // namespace

std::vector<ir::Set> parse_ipset_save(const Source& src, diag::Diagnostics& diags) {
  return IpsetReader(src, diags).run();
}

}  // namespace nf2bpf::frontend
