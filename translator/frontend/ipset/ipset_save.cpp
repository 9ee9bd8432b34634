// `ipset save` front-end: the sets iptables rules name with `-m set`.
#include <algorithm>

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
    if (!ipt::parse_uint(c.substr(0, dash), 65535, lo) ||
        (dash != std::string_view::npos && !ipt::parse_uint(c.substr(dash + 1), 65535, hi)))
      ok = false;
    if (dash == std::string_view::npos) hi = lo;
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
