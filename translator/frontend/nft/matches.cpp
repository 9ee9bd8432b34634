// Match statements (`lhs op rhs`) and their values: nft selectors compared
// with values, ranges, prefixes, anonymous and named sets, bitmask tests.
#include <algorithm>
#include <tuple>
#include <cstdio>

#include "translator/frontend/nft/lower.h"

namespace nf2bpf::frontend::nft {

using ir::Field;
using ir::IntervalSet;
using ir::u128;

namespace {

u128 max_of_bits(unsigned bits) { return bits >= 128 ? ir::kU128Max : (((u128)1 << bits) - 1); }

bool is_eq(const std::string& op) { return op.empty() || op == "in" || op == "=="; }
bool is_relational(const std::string& op) { return op == "<" || op == ">" || op == "<=" || op == ">="; }

// Valid conntrack states: negation and flag tests stay inside them.
IntervalSet all_ct_states() {
  IntervalSet s;
  for (uint8_t b : {ir::kCtInvalid, ir::kCtEstablished, ir::kCtRelated, ir::kCtNew, ir::kCtUntracked}) s.add(b, b);
  return s;
}

}  // namespace

bool parse_ifname_pattern(std::string_view s, ir::IfacePattern& out, std::string& err) {
  std::string name;
  bool prefix = false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      name += s[++i];
      continue;
    }
    if (s[i] == '*' && i + 1 == s.size()) {
      prefix = true;
      continue;
    }
    name += s[i];
  }
  if (name.size() > 15) {
    err = "interface name '" + std::string(s) + "' is longer than 15 characters";
    return false;
  }
  out.name = name;
  out.prefix = prefix;
  return true;
}

void RuleLowering::error(const ir::SourceLoc& loc, std::string msg, std::string hint) {
  failed = true;
  b.error(loc, std::move(msg), std::move(hint));
}

void RuleLowering::add_match(ir::Match m) {
  if ((m.field == Field::NfProto || m.field == Field::L4Proto) && !m.negated)
    if (auto* iv = std::get_if<IntervalSet>(&m.value))
      for (const auto& o : rule.matches)
        if (o.field == m.field && !o.negated)
          if (auto* ov = std::get_if<IntervalSet>(&o.value); ov && *ov == *iv) return;
  if (stmt_pending) {
    // nft runs statements where they are written; the IR runs them after all
    // matches. A statement before a match cannot be represented exactly.
    ir::Match s;
    s.field = Field::Opaque;
    s.cap = "statement before match";
    s.module = "rule";
    s.loc = stmt_pending_loc;
    stmt_pending = false;
    rule.matches.push_back(std::move(s));
  }
  rule.matches.push_back(std::move(m));
}

void RuleLowering::add_deps(const Selector& s, const ir::SourceLoc& loc) {
  if (!s.supported) return;
  if (s.nfproto) {
    auto fam = table.family;
    if ((fam == ir::Family::Ip && s.nfproto == 10) || (fam == ir::Family::Ip6 && s.nfproto == 2)) {
      error(loc, "'" + s.text + "' cannot match in a table of family " + ir::to_string(fam),
            s.nfproto == 10 ? "IPv6 expressions belong in ip6 or inet tables"
                            : "IPv4 expressions belong in ip or inet tables");
      return;
    }
    if (fam != ir::Family::Ip && fam != ir::Family::Ip6) {
      ir::Match m;
      m.field = Field::NfProto;
      m.value = IntervalSet::single((u128)s.nfproto);
      m.cap = s.cap;
      m.module = s.text;
      m.loc = loc;
      add_match(std::move(m));
    }
  }
  if (s.l4proto >= 0) {
    ir::Match m;
    m.field = Field::L4Proto;
    m.value = IntervalSet::single((u128)s.l4proto);
    m.cap = s.cap;
    m.module = s.text;
    m.loc = loc;
    add_match(std::move(m));
  }
}

void RuleLowering::opaque(const Selector& s, const std::string& op, const Expr* rhs, const ir::SourceLoc& loc) {
  ir::Match m;
  m.field = Field::Opaque;
  m.cap = s.cap;
  m.module = s.text;
  std::string o = (op.empty() || op == "in") ? "==" : op;
  if (s.text != s.cap) m.args.emplace_back(s.text, "");
  if (rhs) m.args.emplace_back(o, render(*rhs));
  m.loc = loc;
  add_match(std::move(m));
}

// ---- values -------------------------------------------------------------------

IntervalSet RuleLowering::domain(const Selector& s) const {
  if (s.type == Type::Ipv4Addr) return ir::family_space(ir::AddrFamily::V4);
  return IntervalSet::range(0, max_of_bits(s.bits));
}

IntervalSet RuleLowering::to_ir(const Selector& s, const IntervalSet& raw) const {
  IntervalSet out;
  switch (s.xform) {
    case Xform::None: return raw;
    case Xform::IcmpType:
      for (const auto& iv : raw.intervals()) {
        u128 lo = std::min<u128>(iv.lo, 255), hi = std::min<u128>(iv.hi, 255);
        out.add(lo << 8, (hi << 8) | 0xff);
      }
      return out;
    case Xform::IcmpCode:
      for (u128 t = 0; t < 256; ++t)
        for (const auto& iv : raw.intervals()) {
          u128 lo = std::min<u128>(iv.lo, 255), hi = std::min<u128>(iv.hi, 255);
          out.add((t << 8) | lo, (t << 8) | hi);
        }
      return out;
    case Xform::EtherToNfProto:
      if (raw.contains(0x0800)) out.add(2, 2);
      if (raw.contains(0x86dd)) out.add(10, 10);
      return out;
  }
  return raw;
}

std::optional<u128> RuleLowering::scalar(const Selector& s, const Expr& v) {
  std::string err;
  if (v.kind == Expr::Kind::Literal && v.a.starts_with("$")) {
    failed = true;  // an undefined variable, reported where it was used
    return std::nullopt;
  }
  switch (v.kind) {
    case Expr::Kind::Literal: {
      auto r = symbol_value(s.type, v.a, s.bits, err);
      if (!r) error(v.loc, err, type_hint(s.type));
      return r;
    }
    case Expr::Kind::Number:
    case Expr::Kind::Bool: {
      if (s.type == Type::FibAddrType) {
        if (v.num > 11) {
          error(v.loc, "fib address type " + std::to_string(v.num) + " is out of range", type_hint(s.type));
          return std::nullopt;
        }
        return (u128)1 << v.num;
      }
      if (s.type == Type::Ipv4Addr) return ir::v4_to_u128((uint32_t)v.num);
      if (s.bits < 64 && v.num > (uint64_t)max_of_bits(s.bits)) {
        error(v.loc, "value " + std::to_string(v.num) + " does not fit in " + std::to_string(s.bits) + " bits",
              type_hint(s.type));
        return std::nullopt;
      }
      return v.num;
    }
    case Expr::Kind::List:
    case Expr::Kind::Binop: {
      if (v.kind == Expr::Kind::Binop && v.a != "|") break;
      if (v.kind == Expr::Kind::List && !is_bitmask(s.type) && !s.masked) {
        error(v.loc, "'" + render(v) + "' combines values, but " + s.text + " is not a bitmask",
              "write a set instead: { a, b }");
        return std::nullopt;
      }
      u128 acc = 0;
      for (const auto& k : v.kids) {
        auto x = scalar(s, k);
        if (!x) return std::nullopt;
        acc |= *x;
      }
      return acc;
    }
    case Expr::Kind::Elem:
      if (!v.kids.empty()) return scalar(s, v.kids[0]);
      break;
    default: break;
  }
  error(v.loc, "expected a single " + std::string(type_name(s.type)) + " value, not '" + render(v) + "'",
        type_hint(s.type));
  return std::nullopt;
}

std::optional<IntervalSet> RuleLowering::raw(const Selector& s, const Expr& v) {
  std::string err;
  if (v.kind == Expr::Kind::Literal && v.a.starts_with("$")) {
    failed = true;  // an undefined variable, reported where it was used
    return std::nullopt;
  }
  switch (v.kind) {
    case Expr::Kind::Literal: {
      auto r = literal_value(s.type, v.a, s.bits, err);
      if (!r) error(v.loc, err, type_hint(s.type));
      return r;
    }
    case Expr::Kind::Number:
    case Expr::Kind::Bool:
    case Expr::Kind::Binop:
    case Expr::Kind::List: {
      if (v.kind == Expr::Kind::List && !is_bitmask(s.type) && !s.masked) {
        error(v.loc, "a comma list of values needs braces: { " + render(v) + " }",
              "'a,b' ORs flags; to match any of several values write a set");
        return std::nullopt;
      }
      auto x = scalar(s, v);
      if (!x) return std::nullopt;
      return IntervalSet::single(*x);
    }
    case Expr::Kind::Range: {
      if (v.kids.size() != 2) break;
      auto lo = scalar(s, v.kids[0]);
      if (!lo) return std::nullopt;
      auto hi = scalar(s, v.kids[1]);
      if (!hi) return std::nullopt;
      if (*lo > *hi) {
        error(v.loc, "range '" + render(v) + "' ends before it starts");
        return std::nullopt;
      }
      return IntervalSet::range(*lo, *hi);
    }
    case Expr::Kind::Prefix: {
      if (v.kids.size() != 1 || (s.type != Type::Ipv4Addr && s.type != Type::Ipv6Addr)) break;
      std::string text =
          (v.kids[0].kind == Expr::Kind::Literal ? v.kids[0].a : render(v.kids[0])) + "/" + std::to_string(v.num);
      auto r = literal_value(s.type, text, s.bits, err);
      if (!r) error(v.loc, err, type_hint(s.type));
      return r;
    }
    case Expr::Kind::Set: {
      IntervalSet out;
      for (const auto& k : v.kids) {
        if (k.kind == Expr::Kind::MapEntry) {
          error(k.loc, "a map element ('key : value') in a set", "use vmap or map for key : value pairs");
          return std::nullopt;
        }
        auto r = raw(s, k);
        if (!r) return std::nullopt;
        out.add(*r);
      }
      return out;
    }
    case Expr::Kind::Elem:
      if (!v.kids.empty()) return raw(s, v.kids[0]);
      break;
    case Expr::Kind::Wildcard: return domain(s);
    default: break;
  }
  error(v.loc, "'" + render(v) + "' is not a " + std::string(type_name(s.type)) + " value", type_hint(s.type));
  return std::nullopt;
}

bool RuleLowering::names(const Selector& s, const Expr& v, std::vector<ir::IfacePattern>& out) {
  switch (v.kind) {
    case Expr::Kind::Literal: {
      if (v.a.starts_with("$")) {
        failed = true;  // an undefined variable, reported where it was used
        return false;
      }
      ir::IfacePattern p;
      std::string err;
      if (!parse_ifname_pattern(v.a, p, err)) {
        error(v.loc, err);
        return false;
      }
      if (p.prefix && s.type == Type::IfIndex) {
        error(v.loc, "'" + s.text + "' compares interface indexes and takes no wildcard",
              "use iifname/oifname for name patterns");
        return false;
      }
      out.push_back(p);
      return true;
    }
    case Expr::Kind::Set:
      for (const auto& k : v.kids)
        if (!names(s, k, out)) return false;
      return true;
    case Expr::Kind::Elem: return !v.kids.empty() && names(s, v.kids[0], out);
    case Expr::Kind::Number:
      error(v.loc, "interface index " + std::to_string(v.num) + " has no name here",
            "nf2bpf matches interfaces by name; write the interface's name");
      return false;
    default: error(v.loc, "'" + render(v) + "' is not an interface name"); return false;
  }
}

// ---- anonymous sets -------------------------------------------------------------

bool RuleLowering::element_key(const std::vector<Selector>& key, const Expr& e, std::vector<IntervalSet>& out) {
  const Expr* k = &e;
  while (k->kind == Expr::Kind::Elem && !k->kids.empty()) k = &k->kids[0];
  if (k->kind == Expr::Kind::Wildcard) {
    for (const auto& s : key) out.push_back(to_ir(s, domain(s)));
    return true;
  }
  if (key.size() == 1) {
    auto r = raw(key[0], *k);
    if (!r) return false;
    out.push_back(to_ir(key[0], *r));
    return true;
  }
  if (k->kind != Expr::Kind::Concat || k->kids.size() != key.size()) {
    error(k->loc, "element '" + render(*k) + "' does not have " + std::to_string(key.size()) + " components",
          "write each element as a . b" + std::string(key.size() > 2 ? " . c" : ""));
    return false;
  }
  for (size_t i = 0; i < key.size(); ++i) {
    auto r = raw(key[i], k->kids[i]);
    if (!r) return false;
    out.push_back(to_ir(key[i], *r));
  }
  return true;
}

void sort_patterns(std::vector<ir::IfacePattern>& p) {
  std::sort(p.begin(), p.end(), [](const ir::IfacePattern& a, const ir::IfacePattern& b) {
    return std::tie(a.name, a.prefix) < std::tie(b.name, b.prefix);
  });
  p.erase(std::unique(p.begin(), p.end()), p.end());
}

namespace {
bool element_less(const ir::SetElement& a, const ir::SetElement& b) {
  for (size_t i = 0; i < a.key.size() && i < b.key.size(); ++i) {
    const auto& x = a.key[i].intervals();
    const auto& y = b.key[i].intervals();
    for (size_t j = 0; j < x.size() && j < y.size(); ++j) {
      if (x[j].lo != y[j].lo) return x[j].lo < y[j].lo;
      if (x[j].hi != y[j].hi) return x[j].hi < y[j].hi;
    }
    if (x.size() != y.size()) return x.size() < y.size();
  }
  return a.key.size() < b.key.size();
}
}  // namespace

void sort_elements(std::vector<ir::SetElement>& elems, size_t wild) {
  std::stable_sort(elems.begin(), elems.end() - (long)std::min(wild, elems.size()), element_less);
}

void insert_sorted(std::vector<ir::SetElement>& elems, size_t wild, ir::SetElement el) {
  auto end = elems.end() - (long)std::min(wild, elems.size());
  elems.insert(std::upper_bound(elems.begin(), end, el, element_less), std::move(el));
}

void merge_icmp_components(std::vector<Field>& key, std::vector<ir::SetElement>& elems) {
  for (size_t i = 0; i + 1 < key.size();) {
    bool icmp = key[i] == Field::IcmpType || key[i] == Field::Icmp6Type;
    if (!icmp || key[i + 1] != key[i]) {
      ++i;
      continue;
    }
    for (auto& e : elems)
      if (e.key.size() > i + 1) {
        e.key[i] = e.key[i].intersect(e.key[i + 1]);
        e.key.erase(e.key.begin() + (long)i + 1);
      }
    key.erase(key.begin() + (long)i + 1);
  }
}

std::string RuleLowering::make_anon_set(const std::vector<Selector>& key, const Expr& set, bool vmap,
                                        const ir::SourceLoc& loc, bool& ok) {
  ir::Set s;
  s.name = b.anon_name();
  s.anonymous = true;
  s.constant = true;
  s.kind = vmap ? ir::Set::Kind::VerdictMap : ir::Set::Kind::Set;
  s.loc = loc;
  for (const auto& k : key) {
    s.key.push_back(k.field);
    s.origin_type += (s.origin_type.empty() ? "" : " . ") + std::string(type_name(k.type));
  }
  if (vmap) s.origin_type += " : verdict";
  ok = true;
  std::vector<ir::SetElement> wildcards;
  auto add = [&](auto&& self, const Expr& e) -> void {
    if (e.kind == Expr::Kind::Set) {  // nested (from a set-valued variable)
      for (const auto& k : e.kids) self(self, k);
      return;
    }
    ir::SetElement el;
    el.loc = e.loc;
    const Expr* keyx = &e;
    if (vmap) {
      if (e.kind != Expr::Kind::MapEntry || e.kids.size() != 2) {
        error(e.loc, "verdict map element '" + render(e) + "' has no verdict",
              "write key : accept, key : jump chain ...");
        ok = false;
        return;
      }
      keyx = &e.kids[0];
      auto v = verdict_of(e.kids[1]);
      if (!v) {
        error(e.kids[1].loc, "'" + render(e.kids[1]) + "' is not a verdict",
              "verdicts are accept, drop, continue, return, jump CHAIN, goto CHAIN, queue");
        ok = false;
        return;
      }
      el.verdict = *v;
    } else if (e.kind == Expr::Kind::MapEntry) {
      error(e.loc, "a map element ('key : value') in a set", "use vmap for verdicts");
      ok = false;
      return;
    }
    if (keyx->kind == Expr::Kind::Elem) {
      el.timeout_ms = keyx->timeout_ms;
    }
    if (!element_key(key, *keyx, el.key)) {
      ok = false;
      return;
    }
    const Expr* inner = keyx;
    while (inner->kind == Expr::Kind::Elem && !inner->kids.empty()) inner = &inner->kids[0];
    (inner->kind == Expr::Kind::Wildcard ? wildcards : s.elements).push_back(std::move(el));
  };
  for (const auto& e : set.kids) add(add, e);
  merge_icmp_components(s.key, s.elements);
  merge_icmp_components(s.key, wildcards);
  sort_elements(s.elements);
  // The catch-all element applies when nothing else matched: evaluate it last.
  for (auto& w : wildcards) s.elements.push_back(std::move(w));
  std::string name = s.name;
  table.sets.push_back(std::move(s));
  return name;
}

// ---- match statements -------------------------------------------------------------

void RuleLowering::lower_match(const Stmt& st) {
  const std::string& op = st.op;
  bool neg = op == "!=";
  bool none_of = op == "!";  // JSON for `flags & (a|b) == 0`: none of the flags set
  if (!is_eq(op) && !neg && !is_relational(op) && !none_of) {
    error(st.loc, "unknown operator '" + op + "'", "operators are ==, !=, <, >, <=, >=");
    return;
  }
  switch (st.lhs.kind) {
    case Expr::Kind::Binop: lower_bitwise_match(st); return;
    case Expr::Kind::MapLookup: {
      Selector s;
      s.cap = "map";
      s.text = render(st.lhs);
      opaque(s, op, &st.rhs, st.lhs.loc);
      return;
    }
    case Expr::Kind::Concat: lower_concat_match(st); return;
    default: lower_selector_match(st); return;
  }
}

// `ip frag-off & 0x1fff != 0`: not the first fragment (iptables -f). False
// when the match is not that test (and `sel` is then unsupported).
bool RuleLowering::frag_off_match(const Stmt& st, Selector& sel) {
  const Expr& lhs = st.lhs;
  const Expr& rhs = st.rhs;
  const std::string& op = st.op;
  bool neg = op == "!=";
  Selector s16 = sel;
  s16.supported = true;
  auto mask = scalar(s16, lhs.kids[1]);
  if (!mask) return true;
  u128 zero = 1;
  if (rhs.kind == Expr::Kind::Number) zero = rhs.num;
  if (rhs.kind == Expr::Kind::Literal) {
    uint64_t z;
    if (parse_number(rhs.a, 0xffff, z)) zero = z;
  }
  if (*mask == 0x1fff && zero == 0 && (neg || is_eq(op))) {
    add_deps(sel, lhs.loc);
    ir::Match m;
    m.field = Field::Fragment;
    m.value = IntervalSet::single(neg ? 1 : 0);
    m.cap = "ip frag-off";
    m.module = "ip frag-off";
    m.loc = lhs.loc;
    add_match(std::move(m));
    return true;
  }
  sel.supported = false;
  return false;
}

// `meta random & 0x7fffffff < N`: iptables-nft's `-m statistic --mode random`.
// False when the match is not that test.
bool RuleLowering::random_match(const Stmt& st) {
  const Expr& lhs = st.lhs;
  Selector r32 = selector_for_type(Type::Integer, 32);
  r32.text = "meta random";
  auto mask = scalar(r32, lhs.kids[1]);
  auto below = scalar(r32, st.rhs);
  if (!mask || !below) return true;
  if (*mask != 0x7fffffff) return false;
  char prob[32];
  std::snprintf(prob, sizeof prob, "%.11f", (double)*below / 2147483648.0);
  ir::Match m;
  m.field = Field::Opaque;
  m.cap = "meta random";
  m.module = "statistic";
  m.args = {{"--mode", "random"}, {"--probability", prob}};
  m.loc = lhs.loc;
  add_match(std::move(m));
  return true;
}

// A bitwise expression on the left: masks.
void RuleLowering::lower_bitwise_match(const Stmt& st) {
  const Expr& lhs = st.lhs;
  const Expr& rhs = st.rhs;
  const std::string& op = st.op;
  bool neg = op == "!=";
  const Expr& inner = lhs.kids.size() == 2 ? lhs.kids[0] : lhs;
  Selector sel = b.describe(inner, table.family);
  sel.loc = lhs.loc;
  if (inner.kind == Expr::Kind::Payload && inner.a == "ip" && inner.b == "frag-off" && lhs.a == "&" &&
      lhs.kids.size() == 2 && frag_off_match(st, sel))
    return;
  if (inner.kind == Expr::Kind::Meta && inner.a == "random" && lhs.a == "&" && lhs.kids.size() == 2 && op == "<" &&
      random_match(st))
    return;
  if (!sel.supported || lhs.a != "&" || lhs.kids.size() != 2 || !sel.masked) {
    if (sel.supported) sel.cap = "bitwise expression";
    sel.supported = false;
    sel.text = render(lhs);
    opaque(sel, op, &rhs, lhs.loc);
    return;
  }
  add_deps(sel, lhs.loc);
  auto mask = scalar(sel, lhs.kids[1]);
  if (!mask) return;
  if (is_relational(op)) {
    error(st.loc, "'" + op + "' on a masked value", "compare masked values with == or !=");
    return;
  }
  auto vals = raw(sel, rhs);
  if (!vals) return;
  ir::Match m;
  m.field = sel.field;
  m.negated = neg;
  m.value = ir::Masked{(uint64_t)*mask, *vals};
  m.cap = sel.cap;
  m.module = sel.text;
  m.loc = lhs.loc;
  add_match(std::move(m));
}

// `ip saddr . tcp dport @set`.
void RuleLowering::lower_concat_match(const Stmt& st) {
  const Expr& lhs = st.lhs;
  const Expr& rhs = st.rhs;
  const std::string& op = st.op;
  bool neg = op == "!=";
  std::vector<Selector> sels;
  for (const auto& k : lhs.kids) {
    sels.push_back(b.describe(k, table.family));
    Selector& s = sels.back();
    if (s.supported && is_name_type(s.type)) {
      s.supported = false;
      s.cap = "interface-name keys";
    }
    if (!s.supported) {
      Selector whole = s;
      whole.text = render(lhs);
      opaque(whole, op, &rhs, lhs.loc);
      return;
    }
  }
  for (const auto& s : sels) add_deps(s, s.loc);
  std::vector<Field> fields;
  for (const auto& s : sels) fields.push_back(s.field);
  if (!is_eq(op) && !neg) {
    error(st.loc, "'" + op + "' cannot compare a concatenation", "use == or != with a set or a value");
    return;
  }
  ir::Match m;
  m.negated = neg;
  m.cap = "concatenation";
  m.module = render(lhs);
  m.loc = lhs.loc;
  if (rhs.kind == Expr::Kind::SetRef) {
    std::vector<ir::SetElement> none;
    merge_icmp_components(fields, none);  // as the set's own key
    m.field = fields[0];
    m.value = ir::SetRef{rhs.a, fields};
    add_match(std::move(m));
    return;
  }
  if (rhs.kind == Expr::Kind::Concat && !neg) {
    concat_components(sels, rhs);
    return;
  }
  if (rhs.kind != Expr::Kind::Set && rhs.kind != Expr::Kind::Concat) {
    error(rhs.loc, "a concatenation is compared with a set or a concatenated value, not '" + render(rhs) + "'",
          "write { a . b, c . d } or @set");
    return;
  }
  Expr one;  // `a . b != x . y`: a one-element set, negated
  const Expr* setx = &rhs;
  if (rhs.kind == Expr::Kind::Concat) {
    one.kind = Expr::Kind::Set;
    one.loc = rhs.loc;
    one.kids.push_back(rhs);
    setx = &one;
  }
  bool ok = true;
  std::string name = make_anon_set(sels, *setx, false, rhs.loc, ok);
  if (!ok) return;
  const ir::Set* made = b.set_named(table, name);
  if (made->key.size() == 1) {
    // "icmp type . icmp code" became one field: a plain value list.
    IntervalSet all;
    for (const auto& e : made->elements) all.add(e.key[0]);
    m.field = made->key[0];
    m.value = all;
    m.cap = sels[0].cap;
    table.sets.pop_back();
    b.forget_sets(table);
    add_match(std::move(m));
    return;
  }
  m.field = made->key.empty() ? fields[0] : made->key[0];
  m.value = ir::SetRef{name, made->key};
  add_match(std::move(m));
}

// `a . b == x . y`: one match per component.
void RuleLowering::concat_components(const std::vector<Selector>& sels, const Expr& rhs) {
  if (rhs.kids.size() != sels.size()) {
    error(rhs.loc, "'" + render(rhs) + "' does not have " + std::to_string(sels.size()) + " components");
    return;
  }
  for (size_t i = 0; i < sels.size(); ++i) {
    auto r = raw(sels[i], rhs.kids[i]);
    if (!r) return;
    ir::Match c;
    c.field = sels[i].field;
    if (sels[i].masked)
      c.value = ir::Masked{(uint64_t)max_of_bits(sels[i].bits), to_ir(sels[i], *r)};
    else
      c.value = to_ir(sels[i], *r);
    c.cap = sels[i].cap;
    c.module = sels[i].text;
    c.loc = rhs.kids[i].loc;
    add_match(std::move(c));
  }
}

// One selector on the left, by what the right-hand side is.
void RuleLowering::lower_selector_match(const Stmt& st) {
  const Expr& lhs = st.lhs;
  const Expr& rhs = st.rhs;
  const std::string& op = st.op;
  bool implicit = op.empty() || op == "in";
  Selector sel = b.describe(lhs, table.family);
  if (!sel.supported) {
    opaque(sel, op, &rhs, lhs.loc);
    return;
  }
  add_deps(sel, lhs.loc);
  ir::Match m;
  m.field = sel.field;
  m.cap = sel.cap;
  m.module = sel.text;
  m.loc = lhs.loc;
  if (rhs.kind == Expr::Kind::SetRef)
    match_set_ref(st, sel, std::move(m));
  else if (is_name_type(sel.type))
    match_names(st, sel, std::move(m));
  else if (op == "!")
    match_none_of(st, sel, std::move(m));
  // Bitmask types without an operator test flags: `tcp flags syn,ack` is
  // "syn or ack set", `ct state established,related` "one of them".
  else if (is_bitmask(sel.type) && implicit && rhs.kind != Expr::Kind::Set && rhs.kind != Expr::Kind::Mask)
    match_flags(st, sel, std::move(m));
  else if (rhs.kind == Expr::Kind::Mask)
    match_value_mask(st, sel, std::move(m));
  else
    match_values(st, sel, std::move(m));
}

void RuleLowering::match_set_ref(const Stmt& st, const Selector& sel, ir::Match m) {
  const Expr& rhs = st.rhs;
  const std::string& op = st.op;
  bool neg = op == "!=";
  if (!is_eq(op) && !neg) {
    error(st.loc, "'" + op + "' cannot compare with a set", "use == or !=");
    return;
  }
  if (const ir::Set* set = b.set_named(table, rhs.a); set && !set->anonymous) {
    auto& infos = b.set_info_[b.key_of(table)];
    if (auto it = infos.find(rhs.a); it != infos.end() && it->second.types.size() == 1) {
      Type st_type = it->second.types[0];
      bool mismatch = st_type != sel.type && st_type != Type::Integer && sel.type != Type::Integer &&
                      st_type != Type::Unknown && !(is_name_type(st_type) && is_name_type(sel.type)) &&
                      !(st_type == Type::Mark && sel.masked);
      if (mismatch) {
        error(rhs.loc, "set '" + rhs.a + "' holds " + type_name(st_type) + " elements, but " + sel.text + " is " +
                           type_name(sel.type));
        return;
      }
    }
  }
  m.negated = neg;
  m.value = ir::SetRef{rhs.a, {sel.field}};
  add_match(std::move(m));
}

void RuleLowering::match_names(const Stmt& st, const Selector& sel, ir::Match m) {
  if (is_relational(st.op)) {
    error(st.loc, "'" + st.op + "' cannot compare interface names", "use == or !=");
    return;
  }
  std::vector<ir::IfacePattern> pats;
  if (!names(sel, st.rhs, pats)) return;
  sort_patterns(pats);
  m.negated = st.op == "!=";
  m.value = std::move(pats);
  add_match(std::move(m));
}

void RuleLowering::match_none_of(const Stmt& st, const Selector& sel, ir::Match m) {
  auto v = scalar(sel, st.rhs);
  if (!v) return;
  if (sel.type == Type::CtState) {
    IntervalSet states = all_ct_states();
    for (uint8_t bit : {ir::kCtInvalid, ir::kCtEstablished, ir::kCtRelated, ir::kCtNew, ir::kCtUntracked})
      if (*v & bit) states = states.intersect(IntervalSet::single(bit).complement(0xff));
    m.value = states;
  } else if (sel.masked) {
    m.value = ir::Masked{(uint64_t)*v, IntervalSet::single(0)};
  } else {
    error(st.loc, "'!' (none of) applies to flags", "compare with == or !=");
    return;
  }
  add_match(std::move(m));
}

void RuleLowering::match_flags(const Stmt& st, const Selector& sel, ir::Match m) {
  auto v = scalar(sel, st.rhs);
  if (!v) return;
  if (sel.type == Type::CtState) {
    IntervalSet states;
    for (uint8_t bit : {ir::kCtInvalid, ir::kCtEstablished, ir::kCtRelated, ir::kCtNew, ir::kCtUntracked})
      if (*v & bit) states.add(bit, bit);
    m.value = states;
  } else {
    m.value = ir::Masked{(uint64_t)*v, *v ? IntervalSet::range(1, *v) : IntervalSet{}};
    // `ct status snat|dnat` (iptables-translate's --ctstate SNAT,DNAT) is
    // the connection's NAT binding, which the NAT dataplane keeps.
    if (sel.type == Type::CtStatus && *v && (*v & ~(u128)48) == 0) m.cap = "ct status snat,dnat";
  }
  add_match(std::move(m));
}

// `tcp flags syn / fin,syn,rst,ack`: (flags & mask) == value.
void RuleLowering::match_value_mask(const Stmt& st, const Selector& sel, ir::Match m) {
  const Expr& rhs = st.rhs;
  if (!sel.masked || rhs.kids.size() != 2 || is_relational(st.op)) {
    error(rhs.loc, "'value / mask' applies to flags and marks, compared with == or !=");
    return;
  }
  auto v = scalar(sel, rhs.kids[0]);
  if (!v) return;
  auto mask = scalar(sel, rhs.kids[1]);
  if (!mask) return;
  m.negated = st.op == "!=";
  m.value = ir::Masked{(uint64_t)*mask, IntervalSet::single(*v & *mask)};
  add_match(std::move(m));
}

// Values, ranges, prefixes, anonymous sets and relational comparisons.
void RuleLowering::match_values(const Stmt& st, const Selector& sel, ir::Match m) {
  const Expr& rhs = st.rhs;
  const std::string& op = st.op;
  bool neg = op == "!=";
  IntervalSet vals;
  if (is_relational(op)) {
    auto v = scalar(sel, rhs);
    if (!v) return;
    IntervalSet dom = domain(sel);
    u128 lo = dom.intervals().front().lo, hi = dom.intervals().back().hi;
    if (op == "<") vals = *v > lo ? IntervalSet::range(lo, std::min(*v - 1, hi)) : IntervalSet{};
    if (op == "<=") vals = *v >= lo ? IntervalSet::range(lo, std::min(*v, hi)) : IntervalSet{};
    if (op == ">") vals = *v < hi ? IntervalSet::range(std::max(*v + 1, lo), hi) : IntervalSet{};
    if (op == ">=") vals = *v <= hi ? IntervalSet::range(std::max(*v, lo), hi) : IntervalSet{};
  } else {
    auto r = raw(sel, rhs);
    if (!r) return;
    vals = *r;
  }
  vals = to_ir(sel, vals);
  if (sel.type == Type::CtState && neg) {
    // Negation is relative to the five real states (as the iptables front-end does).
    vals = all_ct_states().intersect(vals.complement(0xff));
    neg = false;
  }
  m.negated = neg;
  if (sel.masked)
    m.value = ir::Masked{(uint64_t)max_of_bits(sel.bits), vals};
  else
    m.value = vals;
  add_match(std::move(m));
}

}  // namespace nf2bpf::frontend::nft
