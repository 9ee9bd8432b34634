// Statements and verdicts: counter, log, limit, reject, NAT, notrack, mark
// setting, verdict maps, set updates, and the ones nf2bpf only recognises.
#include <algorithm>

#include <sstream>

#include "common/strings.h"
#include "translator/frontend/nft/lower.h"

namespace nf2bpf::frontend::nft {

using ir::Field;
using ir::IntervalSet;
using ir::StmtKind;
using ir::VerdictKind;

namespace {

bool present(const Expr& e) { return !(e.kind == Expr::Kind::Literal && e.a.empty() && !e.quoted); }

std::string opt_or(const Stmt& s, std::string_view key, std::string def) {
  const Opt* o = s.opt(key);
  return o ? o->value : def;
}

const std::pair<std::string_view, VerdictKind> kVerdicts[] = {
    {"accept", VerdictKind::Accept}, {"drop", VerdictKind::Drop}, {"continue", VerdictKind::Continue},
    {"return", VerdictKind::Return}, {"jump", VerdictKind::Jump}, {"goto", VerdictKind::Goto},
    {"queue", VerdictKind::Queue}};

// Mark arithmetic: new = (old & keep) ^ xorv, from `meta mark set meta mark & a | b`.
struct Affine {
  uint64_t keep = 0, xorv = 0;
  enum Src : uint8_t { Const, Self, Other } src = Const;
};

// The value of `meta mark set ...` / `ct mark set ...` as mark arithmetic
// over constants; nullopt when it is anything else.
std::optional<Affine> mark_arith(RuleLowering& l, const Expr& e, bool meta_mark, bool ct_mark) {
  Selector ms = selector_for_type(Type::Mark, 32);
  if (e.kind == Expr::Kind::Meta && e.a == "mark")
    return Affine{0xffffffff, 0, meta_mark ? Affine::Self : Affine::Other};
  if (e.kind == Expr::Kind::Ct && e.a == "mark" && e.b.empty())
    return Affine{0xffffffff, 0, ct_mark ? Affine::Self : Affine::Other};
  if (e.kind == Expr::Kind::Binop && e.kids.size() == 2 && e.a != "<<" && e.a != ">>") {
    auto lhs = mark_arith(l, e.kids[0], meta_mark, ct_mark);
    if (!lhs) return std::nullopt;
    auto c = l.scalar(ms, e.kids[1]);
    if (!c) return std::nullopt;
    uint64_t cv = (uint64_t)*c;
    if (e.a == "&") lhs->keep &= cv, lhs->xorv &= cv;
    if (e.a == "|") lhs->keep &= ~cv & 0xffffffff, lhs->xorv |= cv;
    if (e.a == "^") lhs->xorv ^= cv;
    return lhs;
  }
  if (e.kind == Expr::Kind::Literal || e.kind == Expr::Kind::Number) {
    auto c = l.scalar(ms, e);
    if (!c) return std::nullopt;
    return Affine{0, (uint64_t)*c, Affine::Const};
  }
  return std::nullopt;
}

}  // namespace

std::optional<ir::Verdict> verdict_of(const Expr& e) {
  if (e.kind != Expr::Kind::Verdict) return std::nullopt;
  for (auto& [n, k] : kVerdicts)
    if (e.a == n) {
      ir::Verdict v;
      v.kind = k;
      v.chain = e.b;
      v.cap = std::string(n);
      v.loc = e.loc;
      return v;
    }
  return std::nullopt;
}

void RuleLowering::set_verdict(VerdictKind k, std::string cap, const ir::SourceLoc& loc, std::string chain) {
  if (have_verdict) {
    error(loc, "a second verdict in one rule", "a rule ends with at most one verdict");
    return;
  }
  have_verdict = true;
  rule.verdict.kind = k;
  rule.verdict.cap = std::move(cap);
  rule.verdict.chain = std::move(chain);
  rule.verdict.loc = loc;
}

namespace {

// `numgen random|inc mod N [offset O]`, or nullopt for another expression.
struct Numgen {
  std::string mode;  // "random" or "inc"
  uint64_t n = 0, off = 0;
};
std::optional<Numgen> numgen_of(const Expr& e) {
  if (e.kind != Expr::Kind::Other || e.a != "numgen") return std::nullopt;
  std::istringstream in(e.b);
  std::string mod, word;
  Numgen g;
  if (!(in >> g.mode >> mod >> g.n) || (g.mode != "random" && g.mode != "inc") || mod != "mod" || g.n == 0 ||
      g.n > 65536)
    return std::nullopt;
  if (in >> word) {
    if (word != "offset" || !(in >> g.off)) return std::nullopt;
  }
  if (in >> word) return std::nullopt;
  return g;
}

// The marker a numgen vmap or NAT map rule carries (ir::kNumgenModule).
ir::Match numgen_marker(const Numgen& g, const std::string& cap, const ir::SourceLoc& loc) {
  ir::Match m;
  m.field = Field::Opaque;
  m.module = ir::kNumgenModule;
  m.cap = cap;
  m.args = {{"mode", g.mode}, {"mod", std::to_string(g.n)}, {"offset", std::to_string(g.off)}};
  m.loc = loc;
  return m;
}

}  // namespace

void RuleLowering::lower_vmap(const Stmt& st) {
  std::vector<const Expr*> parts;
  if (st.lhs.kind == Expr::Kind::Concat)
    for (const auto& k : st.lhs.kids) parts.push_back(&k);
  else
    parts.push_back(&st.lhs);
  // kube-proxy's endpoint choice, `numgen random mod N vmap { 0 : goto A,
  // 1 : goto B ... }` (and round robin, `numgen inc`): the flattener gives
  // each element its share of the draw or its counter value
  // (ir::kNumgenModule); an element that jumps would come back to the next
  // one, so only goto and final verdicts.
  if (auto ng = numgen_of(st.lhs); ng && st.rhs.kind == Expr::Kind::Set) {
    bool ok = true;
    Selector s = selector_for_type(Type::Integer, 32);
    s.field = Field::Opaque;
    s.text = "numgen " + ng->mode;
    std::string name = make_anon_set({s}, st.rhs, true, st.rhs.loc, ok);
    if (!ok) return;
    const ir::Set* made = b.set_named(table, name);
    bool jumps = std::any_of(made->elements.begin(), made->elements.end(),
                             [](const ir::SetElement& e) { return e.verdict && e.verdict->kind == VerdictKind::Jump; });
    ir::Match m = numgen_marker(*ng, jumps ? "numgen" : "numgen " + ng->mode + " vmap", st.lhs.loc);
    if (jumps) m.args.emplace_back("jump", "an element jumps");
    add_match(std::move(m));
    rule.vmap = ir::SetRef{name, made->key};
    set_verdict(VerdictKind::Continue, "vmap", st.loc);
    return;
  }
  std::vector<Selector> sels;
  bool named_key = false;  // an interface-name part: its element values are names, not numbers
  for (const Expr* p : parts) {
    Selector s = p->kind == Expr::Kind::Binop ? Selector{} : b.describe(*p, table.family);
    if (p->kind == Expr::Kind::Binop) s.cap = "bitwise expression", s.text = render(*p);
    if (s.supported && is_name_type(s.type)) {
      named_key = true;
      s.supported = false;
      s.cap = "interface-name keys";
    }
    if (!s.supported) {
      // Keep the map (its jumps keep chains reachable); the key is opaque.
      opaque(s, "vmap", nullptr, p->loc);
      s.field = Field::Opaque;
      s.type = Type::Integer;
      s.bits = 32;
    } else {
      add_deps(s, p->loc);
    }
    sels.push_back(s);
  }
  std::vector<Field> fields;
  for (const auto& s : sels) fields.push_back(s.field);
  // Opaque keys still parse element keys as integers (numgen N, jhash ...).
  for (auto& s : sels)
    if (s.field == Field::Opaque) s.supported = true;
  if (st.rhs.kind == Expr::Kind::SetRef) {
    std::vector<ir::SetElement> none;
    merge_icmp_components(fields, none);  // as the map's own key
    rule.vmap = ir::SetRef{st.rhs.a, fields};
  } else if (st.rhs.kind == Expr::Kind::Set) {
    bool ok = true;
    if (named_key && parts.size() > 1) {  // an interface name in a concatenation: no map is kept
      set_verdict(VerdictKind::Continue, "vmap", st.loc);
      return;
    }
    // Keys of an opaque interface-name part stand in as element numbers:
    // the map only keeps its verdicts (and the chains they reach).
    Expr elems = st.rhs;
    if (named_key)
      for (size_t i = 0; i < elems.kids.size(); ++i)
        if (elems.kids[i].kind == Expr::Kind::MapEntry && !elems.kids[i].kids.empty()) {
          Expr n;
          n.kind = Expr::Kind::Literal;
          n.a = std::to_string(i);
          n.loc = elems.kids[i].kids[0].loc;
          elems.kids[i].kids[0] = n;
        }
    std::string name = make_anon_set(sels, elems, true, st.rhs.loc, ok);
    if (!ok) return;
    rule.vmap = ir::SetRef{name, b.set_named(table, name)->key};
  } else {
    error(st.rhs.loc, "vmap needs a set of 'key : verdict' elements or @map, not '" + render(st.rhs) + "'");
    return;
  }
  set_verdict(VerdictKind::Continue, "vmap", st.loc);
}

void RuleLowering::lower_stmt(const Stmt& st) {
  if (have_verdict && st.kind != Stmt::Kind::Comment) {
    if (st.kind == Stmt::Kind::Verdict || st.kind == Stmt::Kind::Vmap || st.kind == Stmt::Kind::Reject ||
        st.kind == Stmt::Kind::Queue || st.kind == Stmt::Kind::Nat) {
      error(st.loc, "a second verdict in one rule", "a rule ends with at most one verdict");
    } else {
      b.warning(st.loc, "'" + render(st) + "' follows the rule's verdict and never runs", "move it before the verdict");
    }
    return;
  }
  switch (st.kind) {
    case Stmt::Kind::Match: lower_match(st); return;
    case Stmt::Kind::Verdict: lower_verdict(st); return;
    case Stmt::Kind::Queue: set_verdict(VerdictKind::Queue, "queue", st.loc); return;
    case Stmt::Kind::Counter: lower_counter(st); return;
    case Stmt::Kind::Log: lower_log(st); return;
    case Stmt::Kind::Limit: lower_limit(st); return;
    case Stmt::Kind::Reject: lower_reject(st); return;
    case Stmt::Kind::Nat: lower_nat(st); return;
    case Stmt::Kind::Notrack: push_stmt(st, StmtKind::Notrack, "notrack"); return;
    case Stmt::Kind::Mangle: lower_mangle(st); return;
    case Stmt::Kind::Vmap: lower_vmap(st); return;
    case Stmt::Kind::SetUpdate: lower_set_update(st); return;
    case Stmt::Kind::Comment: rule.comment = st.target; return;
    case Stmt::Kind::Other: lower_other(st); return;
  }
}

ir::Statement& RuleLowering::push_stmt(const Stmt& st, StmtKind k, std::string cap) {
  if (k != StmtKind::Counter && !stmt_pending) {
    stmt_pending = true;
    stmt_pending_loc = st.loc;
  }
  ir::Statement s;
  s.kind = k;
  s.cap = std::move(cap);
  s.loc = st.loc;
  rule.statements.push_back(std::move(s));
  return rule.statements.back();
}

void RuleLowering::lower_verdict(const Stmt& st) {
  for (auto& [n, k] : kVerdicts)
    if (st.name == n) {
      set_verdict(k, std::string(n), st.loc, st.target);
      return;
    }
  error(st.loc, "unknown verdict '" + st.name + "'");
}

void RuleLowering::lower_counter(const Stmt& st) {
  if (const Opt* name = st.opt("name")) {
    push_stmt(st, StmtKind::Counter, "counter name").args.emplace_back("name", name->value);
    return;
  }
  push_stmt(st, StmtKind::Counter, "counter");
  ir::Counters c;
  uint64_t v;
  if (const Opt* p = st.opt("packets"); p && parse_number(p->value, UINT64_MAX, v)) c.packets = v;
  if (const Opt* p = st.opt("bytes"); p && parse_number(p->value, UINT64_MAX, v)) c.bytes = v;
  rule.counters = c;
}

void RuleLowering::lower_log(const Stmt& st) {
  static const std::string_view kLevels[] = {"emerg", "alert", "crit", "err", "warn", "notice", "info", "debug"};
  bool nflog = st.opt("group") != nullptr;
  std::string level = opt_or(st, "level", "warn");
  if (level == "audit") {
    push_stmt(st, StmtKind::Log, "log level audit").args.emplace_back("level", "audit");
    return;
  }
  uint64_t lv = 8;
  for (uint64_t i = 0; i < 8; ++i)
    if (kLevels[i] == level) lv = i;
  if (lv == 8 && level == "warning") lv = 4;
  if (lv == 8 && level == "error") lv = 3;
  if (lv == 8 && !parse_number(level, 7, lv)) {
    error(st.opt("level") ? st.opt("level")->loc : st.loc, "invalid log level '" + level + "'",
          "levels are emerg, alert, crit, err, warn, notice, info, debug, audit");
    return;
  }
  auto& s = push_stmt(st, nflog ? StmtKind::Nflog : StmtKind::Log, "log");
  s.text = opt_or(st, "prefix", "");
  s.level = (uint32_t)lv;
  if (nflog) {
    uint64_t g;
    if (!parse_number(st.opt("group")->value, 0xffff, g)) {
      error(st.opt("group")->loc, "invalid log group '" + st.opt("group")->value + "'", "0-65535");
      return;
    }
    s.group = (uint32_t)g;
  }
  for (const char* k : {"snaplen", "queue-threshold", "flags"})
    if (const Opt* o = st.opt(k)) s.args.emplace_back(k, o->value);
}

void RuleLowering::lower_limit(const Stmt& st) {
  if (auto m = limit_match(st)) add_match(std::move(*m));
}

// A limit statement as a match (nullopt: an error was reported).
std::optional<ir::Match> RuleLowering::limit_match(const Stmt& st) {
  std::string unit = opt_or(st, "rate_unit", "packets");
  bool bytes = unit != "packets";
  std::string per = opt_or(st, "per", "second");
  uint64_t rate = 0, burst = bytes ? 0 : 5;
  const Opt* r = st.opt("rate");
  if (!r || !parse_number(r->value, UINT64_MAX, rate)) {
    error(r ? r->loc : st.loc, "invalid limit rate '" + (r ? r->value : std::string()) + "'",
          "write limit rate N/second (or minute, hour, day, week)");
    return std::nullopt;
  }
  if (per != "second" && per != "minute" && per != "hour" && per != "day" && per != "week") {
    error(st.opt("per") ? st.opt("per")->loc : st.loc, "invalid limit unit '" + per + "'",
          "use second, minute, hour, day or week");
    return std::nullopt;
  }
  if (const Opt* bo = st.opt("burst"); bo && !parse_number(bo->value, UINT32_MAX, burst)) {
    error(bo->loc, "invalid burst '" + bo->value + "'");
    return std::nullopt;
  }
  std::string burst_unit = opt_or(st, "burst_unit", bytes ? "bytes" : "packets");
  ir::Match m;
  m.field = Field::Opaque;
  m.negated = opt_or(st, "inv", "") == "1";
  m.cap = bytes           ? "limit rate bytes"
          : m.negated     ? "limit rate over"
          : per == "week" ? "limit rate per week"
                          : "limit rate";
  m.module = "limit";
  m.args.emplace_back("rate", std::to_string(rate) + (bytes ? " " + unit : "") + "/" + per);
  m.args.emplace_back("burst", std::to_string(burst) + " " + burst_unit);
  m.loc = st.loc;
  return m;
}

void RuleLowering::lower_reject(const Stmt& st) {
  std::string type = opt_or(st, "type", "");
  std::string code = opt_or(st, "code", "");
  auto fam = table.family;
  if (type.empty()) type = fam == ir::Family::Ip ? "icmp" : fam == ir::Family::Ip6 ? "icmpv6" : "icmpx";
  if (type == "icmp6") type = "icmpv6";
  std::string with;
  if (type == "tcp reset" || type == "tcp-reset") {
    with = "tcp reset";
    Selector tcp;
    tcp.supported = true;
    tcp.l4proto = 6;
    tcp.cap = "reject";
    tcp.text = "reject with tcp reset";
    add_deps(tcp, st.loc);
  } else if (type == "icmp" || type == "icmpv6" || type == "icmpx") {
    Type t = type == "icmp" ? Type::IcmpCode : type == "icmpv6" ? Type::Icmpv6Code : Type::IcmpxCode;
    if (code.empty()) code = "port-unreachable";
    std::string err;
    auto v = symbol_value(t, code, 8, err);
    const ir::SourceLoc& cl = st.opt("code") ? st.opt("code")->loc : st.loc;
    if (!v) {
      error(cl, "invalid " + type + " reject code '" + code + "'", type_hint(t));
      return;
    }
    std::string canon = symbol_name(t, *v);
    with = type + " " + (canon.empty() ? code : canon);
    if (type != "icmpx") {
      Selector dep;
      dep.supported = true;
      dep.nfproto = type == "icmp" ? 2 : 10;
      dep.cap = "reject";
      dep.text = "reject with " + type;
      add_deps(dep, st.loc);
    } else if (fam == ir::Family::Ip || fam == ir::Family::Ip6) {
      // nft accepts icmpx in ip/ip6 tables and sends the family's own code.
    }
  } else {
    error(st.loc, "unknown reject type '" + type + "'", "use icmp, icmpv6, icmpx or tcp reset");
    return;
  }
  set_verdict(VerdictKind::Reject, "reject", st.loc);
  rule.verdict.reject_with = with;
}

void RuleLowering::lower_nat(const Stmt& st) {
  // nft: "NAT is only supported for IPv4/IPv6" (bridge, netdev, arp).
  if (table.family != ir::Family::Ip && table.family != ir::Family::Ip6 && table.family != ir::Family::Inet) {
    error(st.loc, st.name + " in a table of family " + ir::to_string(table.family),
          "NAT exists for ip, ip6 and inet tables only; nft refuses the rule");
    return;
  }
  // `dnat prefix to 10.0.0.0/24` (JSON: flags "netmap", type_flags "prefix")
  // maps the prefix and keeps the host bits: NETMAP.
  std::string flags = opt_or(st, "flags", "");
  bool netmap = opt_or(st, "key", "") == "prefix" || opt_or(st, "type_flags", "") == "prefix";
  StmtKind k = netmap                    ? StmtKind::Netmap
               : st.name == "dnat"       ? StmtKind::Dnat
               : st.name == "snat"       ? StmtKind::Snat
               : st.name == "masquerade" ? StmtKind::Masquerade
                                         : StmtKind::Redirect;
  bool was_pending = stmt_pending;
  auto& s = push_stmt(st, k, netmap ? st.name + " prefix" : st.name);
  std::string fam = opt_or(st, "family", "");
  if (present(st.lhs)) {
    // nft: "ip or ip6 must be specified with address for inet tables."
    if (fam.empty() && table.family == ir::Family::Inet) {
      error(st.lhs.loc, st.name + " to an address in an inet table needs 'ip' or 'ip6'",
            "write " + st.name + " ip to ADDR or " + st.name + " ip6 to ADDR; nft refuses the rule");
      return;
    }
    Type at = fam == "ip6" || (fam.empty() && table.family == ir::Family::Ip6) ? Type::Ipv6Addr : Type::Ipv4Addr;
    Selector as = selector_for_type(at, 0);
    const Expr& a = st.lhs;
    if (a.kind == Expr::Kind::Literal || a.kind == Expr::Kind::Range || a.kind == Expr::Kind::Prefix ||
        a.kind == Expr::Kind::Number) {
      auto v = raw(as, a);
      if (!v) return;
      s.nat.addrs = *v;
    } else {
      s.args.emplace_back("to", render(a));
      s.cap = st.name + " map";
      if (!present(st.rhs) && (flags.empty() || flags == "netmap") && lower_nat_map(st, s, at, was_pending)) return;
    }
  }
  if (present(st.rhs)) {
    // nft: "transport protocol mapping is only valid after transport protocol
    // match": a positive l4proto test (meta l4proto, ip protocol, tcp dport
    // ...; a set of protocols counts) must come before the ports.
    bool l4 = std::any_of(rule.matches.begin(), rule.matches.end(),
                          [](const ir::Match& m) { return m.field == Field::L4Proto && !m.negated; });
    if (!l4) {
      error(st.rhs.loc, "NAT ports need a transport protocol match before " + st.name,
            "add e.g. 'meta l4proto tcp' or 'tcp dport 80' before it; nft refuses the rule");
      return;
    }
    Selector ps = selector_for_type(Type::InetService, 16);
    auto v = raw(ps, st.rhs);
    if (!v) return;
    if (v->intervals().size() != 1) {
      error(st.rhs.loc, "NAT ports are one port or one range");
      return;
    }
    s.nat.ports = {(uint16_t)v->intervals()[0].lo, (uint16_t)v->intervals()[0].hi};
  }
  for (std::string_view f : split(flags, ',')) {
    if (f == "random")
      s.nat.random = true;
    else if (f == "fully-random")
      s.nat.fully_random = true;
    else if (f == "persistent")
      s.nat.persistent = true;
    else if (f != "netmap" && !f.empty())
      s.args.emplace_back(f, "");
  }
  // The flags draw from another random source: their own capability rows.
  if (s.cap == st.name && (s.nat.random || s.nat.fully_random || s.nat.persistent))
    s.cap += s.nat.random ? " random" : s.nat.fully_random ? " fully-random" : " persistent";
  if (!fam.empty()) s.args.emplace_back("family", fam);
  // A NAT statement ends the rule's evaluation with accept, as the kernel does.
  set_verdict(VerdictKind::Accept, st.name, st.loc);
}

// `dnat to KEY map { K : ADDR, ... }` (snat too): KEY one field the
// dataplane tests (ip saddr, tcp dport ...) or `numgen random mod N`; each
// element's data an address, a range or a prefix. The rule becomes a map the
// flattener expands into one rule per element — its key tested, its address
// the translation — whose keys never overlap; no element: the lookup fails
// and the rule does not match, as in the kernel. False (the statement stays
// an unsupported "dnat map") for other keys (jhash, numgen inc,
// concatenations) and data (address . port).
bool RuleLowering::lower_nat_map(const Stmt& st, ir::Statement& nat, Type addr_type, bool was_pending) {
  const Expr& look = st.lhs;
  if (look.kind != Expr::Kind::MapLookup || look.kids.size() != 2 || look.kids[1].kind != Expr::Kind::Set) return false;
  const Expr& key = look.kids[0];
  const Expr& map = look.kids[1];
  auto ng = numgen_of(key);
  Selector ks;
  if (ng) {
    ks = selector_for_type(Type::Integer, 32);
    ks.field = Field::Opaque;
    ks.text = "numgen " + ng->mode;
  } else {
    if (key.kind == Expr::Kind::Concat || key.kind == Expr::Kind::Binop || key.kind == Expr::Kind::Other) return false;
    ks = b.describe(key, table.family);
    if (!ks.supported || is_name_type(ks.type)) return false;
  }
  Selector as = selector_for_type(addr_type, 0);
  for (const auto& e : map.kids) {
    if (e.kind != Expr::Kind::MapEntry || e.kids.size() != 2) return false;
    auto k = e.kids[1].kind;
    if (k != Expr::Kind::Literal && k != Expr::Kind::Range && k != Expr::Kind::Prefix && k != Expr::Kind::Number)
      return false;
  }
  // The key's tests come with the rule's matches: before this statement,
  // as nft tests them (a statement before it stays one).
  stmt_pending = was_pending;
  if (!ng) add_deps(ks, key.loc);
  ir::Set m;
  m.name = b.anon_name();
  m.anonymous = true;
  m.constant = true;
  m.kind = ir::Set::Kind::VerdictMap;  // (each element: accept, with its address as data)
  m.loc = map.loc;
  m.key = {ks.field};
  m.origin_type = std::string(type_name(ks.type)) + " : " + type_name(addr_type);
  for (const auto& e : map.kids) {
    ir::SetElement el;
    el.loc = e.loc;
    auto v = element_key({ks}, e.kids[0], el.key) ? raw(as, e.kids[1]) : std::nullopt;
    if (!v) {  // (reported)
      stmt_pending = true;
      return true;
    }
    el.data = *v;
    el.verdict = ir::Verdict{};
    el.verdict->kind = VerdictKind::Accept;
    el.verdict->cap = st.name;
    el.verdict->loc = st.loc;
    m.elements.push_back(std::move(el));
  }
  sort_elements(m.elements);
  if (ng) add_match(numgen_marker(*ng, "numgen " + ng->mode + " vmap", key.loc));
  stmt_pending = true;
  rule.vmap = ir::SetRef{m.name, m.key};
  table.sets.push_back(std::move(m));
  nat.cap = st.name + (nat.kind == StmtKind::Netmap ? " prefix address map" : " address map");
  nat.nat.from_map = true;
  nat.args.clear();
  if (!opt_or(st, "family", "").empty()) nat.args.emplace_back("family", opt_or(st, "family", ""));
  set_verdict(VerdictKind::Continue, st.name, st.loc);
  return true;
}

void RuleLowering::lower_mangle(const Stmt& st) {
  const Expr& key = st.lhs;
  bool meta_mark = key.kind == Expr::Kind::Meta && key.a == "mark";
  bool ct_mark = key.kind == Expr::Kind::Ct && key.a == "mark" && key.b.empty();
  std::string keytext = key.kind == Expr::Kind::Meta ? "meta " + key.a : render(key);
  // `ip dscp set V` / `ip6 dscp set V`: a payload write of the DSCP bits,
  // ECN kept (the IPv4 header checksum follows).
  if (key.kind == Expr::Kind::Payload && key.b == "dscp" && (key.a == "ip" || key.a == "ip6") &&
      (st.rhs.kind == Expr::Kind::Literal || st.rhs.kind == Expr::Kind::Number)) {
    std::string err;
    auto v = symbol_value(Type::Dscp, render(st.rhs), 6, err);
    if (!v) {
      error(st.rhs.loc, err, type_hint(Type::Dscp));
      return;
    }
    add_deps(b.describe(key, table.family), st.loc);
    auto& s = push_stmt(st, StmtKind::SetTos, key.a + " dscp set");
    s.value = (uint64_t)*v << 2;
    s.mask = 0xfc;
    return;
  }
  if (!meta_mark && !ct_mark) {
    StmtKind k = StmtKind::Other;
    if (key.kind == Expr::Kind::Other && key.a == "tcp option" && key.b.starts_with("maxseg")) k = StmtKind::TcpMss;
    if (key.kind == Expr::Kind::Ct && key.a == "helper") k = StmtKind::CtHelper;
    if (key.kind == Expr::Kind::Ct && key.a == "zone") k = StmtKind::CtZone;
    std::string cap = keytext + " set";
    if (k == StmtKind::TcpMss) cap = "tcp option maxseg size set";
    push_stmt(st, k, cap).args.emplace_back("set", render(st.rhs));
    return;
  }
  bool was_failed = failed;
  auto a = mark_arith(*this, st.rhs, meta_mark, ct_mark);
  if (!a) {
    if (failed && !was_failed) return;
    push_stmt(st, StmtKind::Other, keytext + " set (expression)").args.emplace_back("set", render(st.rhs));
    return;
  }
  if (a->src == Affine::Other) {
    if (a->keep != 0xffffffff || a->xorv != 0) {
      push_stmt(st, StmtKind::Other, keytext + " set (expression)").args.emplace_back("set", render(st.rhs));
      return;
    }
    // meta mark set ct mark: restore; ct mark set meta mark: save.
    auto& s = push_stmt(st, meta_mark ? StmtKind::RestoreMark : StmtKind::SaveMark, keytext + " set");
    s.value = 0;
    s.mask = 0xffffffff;
    return;
  }
  auto& s = push_stmt(st, meta_mark ? StmtKind::SetMark : StmtKind::SetCtMark, keytext + " set");
  s.value = a->xorv & 0xffffffff;
  s.mask = ~a->keep & 0xffffffff;
}

void RuleLowering::lower_set_update(const Stmt& st) {
  // Also a condition: `update @s { ip saddr limit rate over 10/second }`
  // stops the rule. An opaque match keeps later rules reachable; the
  // builder turns the updates of a set and its lookups into module
  // "nftset" matches where it can (Builder::dynamic_sets).
  // The key's protocol dependencies first, as nft adds them (an inet
  // table's `ip saddr` key: IPv4 packets only).
  if (st.lhs.kind == Expr::Kind::Concat)
    for (const Expr& k : st.lhs.kids) add_deps(b.describe(k, table.family), st.loc);
  else
    add_deps(b.describe(st.lhs, table.family), st.loc);
  ir::Match m;
  m.field = Field::Opaque;
  m.cap = "set " + st.name;
  m.module = "dynset";
  m.args.emplace_back("set", "@" + st.target);
  m.args.emplace_back("element", render(st.lhs));
  if (const Opt* t = st.opt("timeout")) m.args.emplace_back("timeout", t->value);
  if (const Opt* t = st.opt("meter")) m.args.emplace_back("meter", t->value);
  for (const Stmt& e : st.elem) {
    if (e.kind == Stmt::Kind::Limit) {
      auto l = limit_match(e);
      if (!l) return;
      if (l->negated) m.args.emplace_back("limit over", "");
      for (const auto& [k, v] : l->args) m.args.emplace_back("limit " + k, v);
      m.args.emplace_back("limit cap", l->cap);
    } else if (e.name == "ct count" && e.opt("count")) {
      m.args.emplace_back(e.opt("inv") ? "ct count over" : "ct count", e.opt("count")->value);
    } else {
      m.args.emplace_back(e.kind == Stmt::Kind::Counter ? "counter" : e.name, "");
    }
  }
  m.loc = st.loc;
  add_match(std::move(m));
}

void RuleLowering::lower_other(const Stmt& st) {
  if (st.name == "ct count" && st.opt("count")) {
    // nft_connlimit: the connections of the rule, all sources together, as
    // xt_connlimit counts those of one key (the source under mask 0).
    ir::Match m;
    m.field = Field::Opaque;
    m.cap = "ct count";
    m.module = "connlimit";
    m.args = {{st.opt("inv") ? "--connlimit-above" : "--connlimit-upto", st.opt("count")->value},
              {"--connlimit-mask", "0"},
              {"--connlimit-saddr", ""}};
    m.loc = st.loc;
    add_match(std::move(m));
    return;
  }
  if (st.name == "quota" || st.name == "ct count" || st.name == "xt match") {
    // Conditions (over quota, connection count, an xtables match).
    ir::Match m;
    m.field = Field::Opaque;
    m.cap = st.name;
    m.module = st.name;
    for (const auto& o : st.opts) m.args.emplace_back(o.key, o.value);
    m.loc = st.loc;
    add_match(std::move(m));
    return;
  }
  auto& s = push_stmt(st, StmtKind::Other, st.name);
  for (const auto& o : st.opts) s.args.emplace_back(o.key, o.value);
}

void RuleLowering::finish_rule() {
  auto& ms = rule.matches;
  // ICMP type and code tested separately are one test of type<<8|code.
  for (size_t i = 0; i < ms.size(); ++i) {
    if ((ms[i].field != Field::IcmpType && ms[i].field != Field::Icmp6Type) || ms[i].negated) continue;
    auto* a = std::get_if<IntervalSet>(&ms[i].value);
    if (!a) continue;
    for (size_t j = i + 1; j < ms.size();) {
      auto* bv = std::get_if<IntervalSet>(&ms[j].value);
      if (ms[j].field == ms[i].field && !ms[j].negated && bv) {
        *a = a->intersect(*bv);
        ms.erase(ms.begin() + (long)j);
      } else {
        ++j;
      }
    }
  }
  // Canonical order: family and protocol tests first, but never across an
  // opaque match (limit has side effects, so what precedes it matters).
  auto rank = [](const ir::Match& m) { return m.field == Field::NfProto ? 0 : m.field == Field::L4Proto ? 1 : 2; };
  for (auto seg = ms.begin(); seg != ms.end();) {
    auto end = std::find_if(seg, ms.end(), [](const ir::Match& m) { return m.field == Field::Opaque; });
    std::stable_sort(seg, end, [&](const ir::Match& x, const ir::Match& y) { return rank(x) < rank(y); });
    seg = end == ms.end() ? end : end + 1;
  }
  // th sport/dport read any transport header; exact when the rule limits the
  // protocol to ones with ports.
  bool port_protos = false;
  static const IntervalSet kPortProtos = [] {
    IntervalSet s;
    for (uint8_t p : {6, 17, 132, 136}) s.add(p, p);
    return s;
  }();
  for (const auto& m : ms)
    if (m.field == Field::L4Proto && !m.negated)
      if (auto* v = std::get_if<IntervalSet>(&m.value); v && v->subset_of(kPortProtos)) port_protos = true;
  if (rule.vmap)
    for (Field f : rule.vmap->key) port_protos |= f == Field::L4Proto;
  if (!port_protos)
    for (auto& m : ms)
      if (m.cap == "th sport" || m.cap == "th dport") m.cap += " (any protocol)";
}

}  // namespace nf2bpf::frontend::nft
