#include "translator/frontend/nft/builder.h"

#include <algorithm>

#include "translator/frontend/nat_placement.h"
#include "translator/frontend/nft/lower.h"

namespace nf2bpf::frontend::nft {

using ir::Family;
using ir::Field;
using ir::Hook;

std::optional<Family> family_from_name(std::string_view s) {
  if (s == "ip") return Family::Ip;
  if (s == "ip6") return Family::Ip6;
  if (s == "inet") return Family::Inet;
  if (s == "arp") return Family::Arp;
  if (s == "bridge") return Family::Bridge;
  if (s == "netdev") return Family::Netdev;
  return std::nullopt;
}

std::optional<int> priority_from_name(std::string_view n, Family fam, std::optional<Hook> hook) {
  (void)hook;
  if (fam == Family::Bridge) {
    if (n == "dstnat") return -300;
    if (n == "filter") return -200;
    if (n == "out") return 100;
    if (n == "srcnat") return 300;
    return std::nullopt;
  }
  if (n == "raw") return -300;
  if (n == "mangle") return -150;
  if (n == "dstnat") return -100;
  if (n == "filter") return 0;
  if (n == "security") return 50;
  if (n == "srcnat") return 100;
  return std::nullopt;
}

Builder::Builder(ir::Ruleset& rs, diag::Diagnostics& d, LineFn line_of)
    : rs_(rs), diag_(d), line_of_(std::move(line_of)) {}

void Builder::error(const ir::SourceLoc& loc, std::string msg, std::string hint) {
  diag_.error(loc, std::move(msg), std::move(hint), line_of_ ? line_of_(loc) : std::string());
}

void Builder::warning(const ir::SourceLoc& loc, std::string msg, std::string hint) {
  diag_.warning(loc, std::move(msg), std::move(hint), line_of_ ? line_of_(loc) : std::string());
}

std::string Builder::key_of(const ir::Table& t) const { return std::string(ir::to_string(t.family)) + " " + t.name; }

std::string Builder::anon_name() { return "\x01" + std::to_string(anon_seq_++); }

// ---- tables --------------------------------------------------------------------

ir::Table* Builder::find_table(Family fam, const std::string& name, const ir::SourceLoc& loc, bool report) {
  for (auto& t : rs_.tables)
    if (t.family == fam && t.name == name) return &t;
  if (report)
    error(loc, "table '" + std::string(ir::to_string(fam)) + " " + name + "' does not exist",
          "declare it first: table " + std::string(ir::to_string(fam)) + " " + name + " { ... }");
  return nullptr;
}

ir::Table* Builder::add_table(Family fam, const std::string& name, const ir::SourceLoc& loc, bool create) {
  if (ir::Table* t = find_table(fam, name, loc, false)) {
    if (create)
      error(loc, "table '" + std::string(ir::to_string(fam)) + " " + name + "' already exists",
            "`create` refuses existing tables; use `add table` or a table block");
    return t;
  }
  if (name.empty() || name.size() > 255) {
    error(loc, "invalid table name '" + name + "'");
    return nullptr;
  }
  ir::Table t;
  t.family = fam;
  t.name = name;
  t.loc = loc;
  rs_.tables.push_back(std::move(t));
  return &rs_.tables.back();
}

void Builder::delete_table(Family fam, const std::string& name, const ir::SourceLoc& loc, bool must_exist) {
  for (auto it = rs_.tables.begin(); it != rs_.tables.end(); ++it)
    if (it->family == fam && it->name == name) {
      std::string k = key_of(*it);
      set_info_.erase(k);
      name_sets_.erase(k);
      dormant_.erase(k);
      chain_ix_.erase(k);
      set_ix_.erase(k);
      rs_.tables.erase(it);
      return;
    }
  if (must_exist) find_table(fam, name, loc, true);
}

void Builder::flush_table(ir::Table& t) {
  for (auto& c : t.chains) c.rules.clear();
}

void Builder::flush_ruleset() {
  rs_.tables.clear();
  set_info_.clear();
  name_sets_.clear();
  dormant_.clear();
  chain_ix_.clear();
  set_ix_.clear();
}

void Builder::set_dormant(ir::Table& t, const ir::SourceLoc& loc) {
  dormant_.insert(key_of(t));
  warning(loc, "table '" + key_of(t) + "' is dormant: the kernel does not evaluate its chains",
          "nf2bpf translates its chains as regular chains that no hook reaches");
}

// ---- chains --------------------------------------------------------------------

namespace {

bool hook_allowed(Family fam, Hook h) {
  switch (fam) {
    case Family::Ip:
    case Family::Ip6:
    case Family::Bridge: return h != Hook::Ingress && h != Hook::Egress;
    case Family::Inet: return h != Hook::Egress;
    case Family::Arp: return h == Hook::Input || h == Hook::Output;
    case Family::Netdev: return h == Hook::Ingress || h == Hook::Egress;
  }
  return false;
}

}  // namespace

namespace {

// The element of `v` named `name` through `ix`, which indexes appends as it
// goes. A hit is checked against the vector, so a stale index is rebuilt
// rather than trusted; a miss is final (erasures forget the index).
template <class T>
T* indexed(std::vector<T>& v, std::unordered_map<std::string, size_t>& pos, size_t& known, std::string_view name) {
  for (int pass = 0; pass < 2; ++pass) {
    if (pass == 1 || known > v.size()) {
      pos.clear();
      known = 0;
    }
    for (; known < v.size(); ++known) pos.try_emplace(v[known].name, known);
    auto it = pos.find(std::string(name));
    if (it == pos.end()) return nullptr;
    if (it->second < v.size() && v[it->second].name == name) return &v[it->second];
  }
  return nullptr;
}

}  // namespace

ir::Chain* Builder::chain_named(ir::Table& t, std::string_view name) {
  auto& ix = chain_ix_[key_of(t)];
  return indexed(t.chains, ix.pos, ix.known, name);
}

ir::Set* Builder::set_named(ir::Table& t, std::string_view name) {
  auto& ix = set_ix_[key_of(t)];
  return indexed(t.sets, ix.pos, ix.known, name);
}

ir::Chain* Builder::find_chain(ir::Table& t, const std::string& name, const ir::SourceLoc& loc) {
  if (ir::Chain* c = chain_named(t, name)) return c;
  error(loc, "chain '" + name + "' does not exist in table '" + key_of(t) + "'",
        "declare it first: chain " + name + " { ... }");
  return nullptr;
}

ir::Chain* Builder::add_chain(ir::Table& t, const std::string& name, const ir::SourceLoc& loc, const ChainSpec* spec,
                              bool create) {
  if (name.empty() || name.size() > 255) {
    error(loc, "invalid chain name '" + name + "'");
    return nullptr;
  }
  ir::Chain* c = chain_named(t, name);
  if (c && create) {
    error(loc, "chain '" + name + "' already exists in table '" + key_of(t) + "'",
          "`create` refuses existing chains; use `add chain`");
    return c;
  }
  bool base = spec && (spec->hook || spec->type || spec->priority);
  if (spec && !spec->hook_name.empty() && !spec->hook) {
    error(spec->hook_loc, "unknown hook '" + spec->hook_name + "'",
          "hooks are prerouting, input, forward, output, postrouting, ingress, egress");
    return c;
  }
  if (base && (!spec->hook || !spec->priority || !spec->type)) {
    error(spec->hook ? spec->priority_loc : loc, "base chain '" + name + "' needs type, hook and priority",
          "write: type filter hook input priority filter;");
    return c;
  }
  if (base) {
    if (!hook_allowed(t.family, *spec->hook)) {
      error(spec->hook_loc, "hook '" + std::string(ir::to_string(*spec->hook)) + "' does not exist in family " +
                                ir::to_string(t.family));
      return c;
    }
    if (*spec->type == ir::ChainType::Nat && (t.family == Family::Arp || t.family == Family::Netdev ||
                                              t.family == Family::Bridge || *spec->hook == Hook::Forward)) {
      error(spec->type_loc, "nat chains do not exist on this hook/family",
            "nat chains hook prerouting, input, output or postrouting in ip, ip6 or inet tables");
      return c;
    }
    if (*spec->type == ir::ChainType::Route && *spec->hook != Hook::Output) {
      error(spec->type_loc, "route chains hook output only");
      return c;
    }
  }
  if (spec && spec->policy && !base && !(c && c->base)) {
    error(spec->policy_loc, "chain '" + name + "' has a policy but no hook", "only base chains have a policy");
    return c;
  }
  if (c) {
    if (base) {
      if (!c->base) {
        error(spec->hook_loc, "chain '" + name + "' already exists as a regular chain");
        return c;
      }
      if (c->base->hook != *spec->hook || c->base->type != *spec->type || c->base->priority != *spec->priority) {
        error(spec->hook_loc, "chain '" + name + "' already exists with another type, hook or priority",
              "nft cannot change a base chain's hook; delete the chain first");
        return c;
      }
    }
    if (spec && spec->policy && c->base) c->base->policy = *spec->policy;
    return c;
  }
  ir::Chain ch;
  ch.name = name;
  ch.loc = loc;
  if (base) {
    ir::BaseChain b;
    b.type = *spec->type;
    b.hook = *spec->hook;
    b.priority = *spec->priority;
    b.policy = spec->policy.value_or(ir::VerdictKind::Accept);
    b.device = spec->device;
    ch.base = b;
  }
  t.chains.push_back(std::move(ch));
  return &t.chains.back();
}

void Builder::delete_chain(ir::Table& t, const std::string& name, const ir::SourceLoc& loc, bool must_exist) {
  ir::Chain* c = chain_named(t, name);
  if (!c) {
    if (must_exist) find_chain(t, name, loc);
    return;
  }
  t.chains.erase(t.chains.begin() + (c - t.chains.data()));
  forget_chains(t);
}

void Builder::flush_chain(ir::Chain& c) { c.rules.clear(); }

// ---- sets ----------------------------------------------------------------------

void Builder::add_set(ir::Table& t, const SetDecl& d, bool create) {
  SetInfo info;
  std::vector<Field> fields;
  std::string origin;
  if (!d.typeof_key.empty()) {
    for (const auto& e : d.typeof_key) {
      Selector s = describe(e, t.family);
      if (!s.supported) {
        s.type = Type::Unknown;
        s.field = Field::Opaque;
      }
      info.types.push_back(s.type);
      info.bits.push_back(s.bits);
      fields.push_back(s.field);
      s.masked = false;  // elements are exact values
      info.sels.push_back(s);
      origin += (origin.empty() ? "" : " . ") + render(e);
    }
    origin = "typeof " + origin;
  } else {
    for (const auto& n : d.key_types) {
      Type ty = type_from_name(n);
      if (ty == Type::Unknown)
        warning(d.type_loc.line || !d.type_loc.pointer.empty() ? d.type_loc : d.loc,
                "set '" + d.name + "' has type '" + n + "', which nf2bpf does not model",
                "rules that use this set are reported unsupported");
      Selector s = selector_for_type(ty, 32);
      info.types.push_back(ty);
      info.bits.push_back(s.bits);
      fields.push_back(s.field);
      origin += (origin.empty() ? "" : " . ") + n;
    }
  }
  if (info.types.empty()) {
    error(d.loc, "set '" + d.name + "' has no type", "write: type ipv4_addr; (or typeof ip saddr)");
    return;
  }
  for (Type ty : info.types) info.names |= is_name_type(ty);
  ir::Set s;
  s.name = d.name;
  s.loc = d.loc;
  s.key = fields;
  if (d.is_map) {
    Type dt = d.typeof_data ? describe(*d.typeof_data, t.family).type : type_from_name(d.data_type);
    info.data = dt;
    s.kind = d.data_type == "verdict" ? ir::Set::Kind::VerdictMap : ir::Set::Kind::Map;
    origin += " : " + (d.typeof_data ? render(*d.typeof_data) : d.data_type);
    if (d.data_type.empty() && !d.typeof_data) {
      error(d.loc, "map '" + d.name + "' has no data type", "write: type ipv4_addr : verdict;");
      return;
    }
  }
  s.origin_type = origin;
  for (const auto& f : d.flags) {
    if (f == "interval")
      s.interval = true;
    else if (f == "timeout")
      s.has_timeout = true;
    else if (f == "dynamic")
      s.dynamic = true;
    else if (f == "constant")
      s.constant = true;
  }
  if (d.timeout_ms) s.has_timeout = true, s.timeout_ms = *d.timeout_ms;
  // "icmp type . icmp code" keys are one IcmpType component in the IR.
  std::vector<ir::SetElement> none;
  merge_icmp_components(s.key, none);

  ir::Set* existing = set_named(t, d.name);
  if (existing && existing->anonymous) existing = nullptr;
  if (existing) {
    if (create) {
      error(d.loc, "set '" + d.name + "' already exists in table '" + key_of(t) + "'");
      return;
    }
    if (existing->key != s.key || existing->kind != s.kind) {
      error(d.loc, "set '" + d.name + "' already exists with another type");
      return;
    }
  } else {
    t.sets.push_back(std::move(s));
    set_info_[key_of(t)][d.name] = info;
    if (info.names) name_sets_[key_of(t)][d.name];
  }
  if (d.has_elements) add_elements(t, d.name, d.elements, d.loc);
}

void Builder::delete_set(ir::Table& t, const std::string& name, const ir::SourceLoc& loc, bool must_exist) {
  ir::Set* s = set_named(t, name);
  if (!s || s->anonymous) {
    if (must_exist) error(loc, "set '" + name + "' does not exist in table '" + key_of(t) + "'");
    return;
  }
  t.sets.erase(t.sets.begin() + (s - t.sets.data()));
  forget_sets(t);
  set_info_[key_of(t)].erase(name);
  name_sets_[key_of(t)].erase(name);
}

void Builder::flush_set(ir::Table& t, const std::string& name, const ir::SourceLoc& loc) {
  if (ir::Set* s = set_named(t, name); s && !s->anonymous) {
    s->elements.clear();
    auto ns = name_sets_.find(key_of(t));
    if (ns != name_sets_.end() && ns->second.count(name)) ns->second[name].clear();
    return;
  }
  error(loc, "set '" + name + "' does not exist in table '" + key_of(t) + "'");
}

bool Builder::parse_element(ir::Table& t, ir::Set& s, const SetInfo& info, const Expr& e, ir::SetElement& out,
                            std::vector<ir::IfacePattern>* names_out, bool& wildcard) {
  ir::Rule scratch;
  RuleLowering L{*this, t, scratch};
  const Expr* x = &e;
  const Expr* data = nullptr;
  if (x->kind == Expr::Kind::MapEntry && x->kids.size() == 2) {
    data = &x->kids[1];
    x = &x->kids[0];
  }
  while (x->kind == Expr::Kind::Elem && !x->kids.empty()) {
    if (x->timeout_ms) out.timeout_ms = x->timeout_ms;
    if (!x->comment.empty()) out.comment = x->comment;
    x = &x->kids[0];
  }
  out.loc = e.loc;
  wildcard = x->kind == Expr::Kind::Wildcard;
  bool is_map = s.kind != ir::Set::Kind::Set;
  if (is_map && !data) {
    error(e.loc, "element '" + render(e) + "' of map '" + s.name + "' has no value", "write key : value");
    return false;
  }
  if (!is_map && data) {
    error(e.loc, "element '" + render(e) + "' has a value, but '" + s.name + "' is a set, not a map");
    return false;
  }
  std::vector<Selector> sels;
  for (size_t i = 0; i < info.types.size(); ++i) {
    Selector sel = i < info.sels.size() ? info.sels[i] : selector_for_type(info.types[i], info.bits[i]);
    if (info.types[i] == Type::Unknown) {
      s.contents_known = false;
      return false;
    }
    sel.supported = true;
    sel.masked = false;
    sels.push_back(sel);
  }
  if (info.names) {
    if (sels.size() != 1 || !names_out) return true;  // concatenations with names: rules are unsupported
    return L.names(sels[0], *x, *names_out);
  }
  if (!L.element_key(sels, *x, out.key)) return false;
  if (data) {
    if (s.kind == ir::Set::Kind::VerdictMap) {
      auto v = verdict_of(*data);
      if (!v) {
        error(data->loc, "'" + render(*data) + "' is not a verdict",
              "verdicts are accept, drop, continue, return, jump CHAIN, goto CHAIN");
        return false;
      }
      out.verdict = *v;
    } else if (info.data != Type::Unknown && info.data != Type::Verdict) {
      Selector ds = selector_for_type(info.data, 32);
      ds.supported = true;
      if (auto r = L.raw(ds, *data))
        out.data = L.to_ir(ds, *r);
      else
        return false;
    }
  }
  std::vector<Field> key;
  for (const auto& sel : sels) key.push_back(sel.field);
  std::vector<ir::SetElement> one{out};
  merge_icmp_components(key, one);
  out = std::move(one[0]);
  return !L.failed;
}

void Builder::add_elements(ir::Table& t, const std::string& name, const std::vector<Expr>& elems,
                           const ir::SourceLoc& loc, bool remove) {
  ir::Set* s = set_named(t, name);
  if (s && s->anonymous) s = nullptr;
  if (!s) {
    error(loc, "set '" + name + "' does not exist in table '" + key_of(t) + "'", "declare the set before its elements");
    return;
  }
  auto& info = set_info_[key_of(t)][name];
  auto* names = info.names ? &name_sets_[key_of(t)][name] : nullptr;
  auto add = [&](auto&& self, const Expr& e) -> void {
    if (e.kind == Expr::Kind::Set) {  // a set-valued variable inside the braces
      for (const auto& k : e.kids) self(self, k);
      return;
    }
    ir::SetElement el;
    std::vector<ir::IfacePattern> pats;
    bool wild = false;
    if (!parse_element(t, *s, info, e, el, names ? &pats : nullptr, wild)) return;
    if (names) {
      for (const auto& p : pats) {
        auto it = std::find(names->begin(), names->end(), p);
        if (remove && it != names->end()) names->erase(it);
        if (!remove && it == names->end()) names->push_back(p);
      }
      return;
    }
    if (!s->contents_known) return;
    if (remove) {
      auto it = std::find_if(s->elements.begin(), s->elements.end(),
                             [&](const ir::SetElement& o) { return o.key == el.key; });
      if (it == s->elements.end()) {
        error(el.loc, "element '" + render(e) + "' is not in set '" + name + "'");
        return;
      }
      if ((size_t)(it - s->elements.begin()) >= s->elements.size() - info.wild) --info.wild;
      s->elements.erase(it);
      return;
    }
    if (wild) {
      s->elements.push_back(std::move(el));
      ++info.wild;
    } else {
      insert_sorted(s->elements, info.wild, std::move(el));  // sorted as sort_elements sorts
    }
  };
  for (const auto& e : elems) add(add, e);
}

// ---- rules ---------------------------------------------------------------------

void Builder::add_rule(ir::Table& t, const std::string& chain, const RuleAst& ast, const RulePos& pos,
                       const ir::SourceLoc& chain_loc) {
  ir::Chain* c = find_chain(t, chain, chain_loc);
  if (!c) return;
  ir::Rule r;
  r.loc = ast.loc;
  r.text = ast.text;
  r.handle = ast.handle;
  if (ast.comment) r.comment = *ast.comment;
  RuleLowering L{*this, t, r};
  for (const auto& st : ast.stmts) L.lower_stmt(st);
  if (L.failed) return;  // reported; the rule is not kept (anonymous sets it made are dropped by finish)
  L.finish_rule();
  c = chain_named(t, chain);  // lowering may have grown t.sets, never t.chains; look up again anyway
  auto& rules = c->rules;
  size_t at = rules.size();
  switch (pos.kind) {
    case RulePos::Kind::Append: break;
    case RulePos::Kind::Prepend: at = 0; break;
    case RulePos::Kind::Index:
      if (pos.n > rules.size()) {
        error(pos.loc, "rule index " + std::to_string(pos.n) + " is out of range",
              "chain '" + chain + "' has " + std::to_string(rules.size()) + " rules here");
        return;
      }
      at = (size_t)pos.n + (pos.after ? 1 : 0);
      if (at > rules.size()) at = rules.size();
      break;
    case RulePos::Kind::Handle: {
      auto it = std::find_if(rules.begin(), rules.end(), [&](const ir::Rule& x) { return x.handle == pos.n; });
      if (it == rules.end()) {
        error(pos.loc, "no rule with handle " + std::to_string(pos.n) + " in chain '" + chain + "'",
              "handles number the rules of a running ruleset (nft -a list ruleset); a file cannot rely on them");
        return;
      }
      at = (size_t)(it - rules.begin()) + (pos.after ? 1 : 0);
      break;
    }
  }
  rules.insert(rules.begin() + (long)at, std::move(r));
}

void Builder::delete_rule(ir::Table& t, const std::string& chain, uint64_t handle, const ir::SourceLoc& loc) {
  ir::Chain* c = find_chain(t, chain, loc);
  if (!c) return;
  auto it = std::find_if(c->rules.begin(), c->rules.end(), [&](const ir::Rule& x) { return x.handle == handle; });
  if (it == c->rules.end()) {
    error(loc, "no rule with handle " + std::to_string(handle) + " in chain '" + chain + "'",
          "handles number the rules of a running ruleset (nft -a list ruleset); a file cannot rely on them");
    return;
  }
  c->rules.erase(it);
}

// ---- finish --------------------------------------------------------------------

void Builder::finish() {
  for (auto& t : rs_.tables) {
    std::string tk = key_of(t);
    if (dormant_.count(tk))
      for (auto& c : t.chains) c.base.reset();
    check_references(t, tk);
    for (const auto& m : misplaced_nat(rs_, t, false)) error(m.stmt->loc, m.message, m.hint);
    name_anonymous_sets(t);
    dynamic_sets(t);
  }
}

namespace {

// A dynamic set's key as nf_hl_key builds it: its parts in order (saddr,
// daddr, sport, dport, each once) and the addresses' family (0: none).
struct DynKey {
  std::string parts;
  int family = 0;
  bool operator==(const DynKey&) const = default;
};

// The key of an element expression ("ip saddr . tcp dport").
std::optional<DynKey> dyn_key_of_element(const std::string& elem) {
  DynKey k;
  std::set<std::string> seen;
  size_t at = 0;
  while (at <= elem.size()) {
    size_t end = elem.find(" . ", at);
    std::string part = elem.substr(at, end == std::string::npos ? std::string::npos : end - at);
    at = end == std::string::npos ? elem.size() + 1 : end + 3;
    auto sp = part.find(' ');
    if (sp == std::string::npos) return std::nullopt;
    std::string proto = part.substr(0, sp), field = part.substr(sp + 1);
    bool addr = field == "saddr" || field == "daddr", port = field == "sport" || field == "dport";
    if (addr && (proto == "ip" || proto == "ip6")) {
      int fam = proto == "ip" ? 4 : 6;
      if (k.family && k.family != fam) return std::nullopt;
      k.family = fam;
    } else if (!port || !(proto == "tcp" || proto == "udp" || proto == "udplite" || proto == "sctp" ||
                          proto == "dccp" || proto == "th")) {
      return std::nullopt;
    }
    if (!seen.insert(field).second) return std::nullopt;
    k.parts += (k.parts.empty() ? "" : " . ") + field;
  }
  return k;
}

// The key of a lookup `KEY @S` of set S (its type names the family).
std::optional<DynKey> dyn_key_of_lookup(const ir::SetRef& ref, const ir::Set& s) {
  DynKey k;
  std::set<Field> seen;
  for (Field f : ref.key) {
    if (!seen.insert(f).second) return std::nullopt;
    const char* name = f == Field::SrcAddr   ? "saddr"
                       : f == Field::DstAddr ? "daddr"
                       : f == Field::SrcPort ? "sport"
                       : f == Field::DstPort ? "dport"
                                             : nullptr;
    if (!name) return std::nullopt;
    k.parts += (k.parts.empty() ? "" : " . ") + std::string(name);
  }
  if (s.origin_type.find("ipv4_addr") != std::string::npos) k.family = 4;
  if (s.origin_type.find("ipv6_addr") != std::string::npos) k.family = k.family ? -1 : 6;
  if (k.family < 0) return std::nullopt;
  return k;
}

}  // namespace

// Sets the packet path writes (`add`, `update`, `delete @S { KEY ... }`, and
// meters) and the lookups of them (`KEY @S`): module "nftset" matches, one
// operation each, which the policy compiler gives the dataplane's set
// elements (NF_LIMIT_SET). A set qualifies when every write and lookup of it
// uses one key of addresses and ports, its elements have no statements but
// packet-rate limits and counters, it is no map and not an interval set, the
// file gives it no elements, and nothing else names it (a vmap, a
// statement). Any other set's writes stay unsupported, with the reason.
// (kube-proxy's ClientIP affinity in nftables mode is one: `update @S
// { ip saddr }` in the endpoint chain, `ip saddr @S goto endpoint-...`.)
void Builder::dynamic_sets(ir::Table& t) {
  std::map<std::string, std::vector<ir::Match*>> writes;
  for (auto& c : t.chains)
    for (auto& r : c.rules)
      for (auto& m : r.matches)
        if (m.module == "dynset" && !m.args.empty()) writes[m.args[0].second.substr(1)].push_back(&m);
  for (auto& [name, ws] : writes) {
    const ir::Set* s = t.find_set(name);
    bool meter = std::any_of(ws.begin(), ws.end(), [](const ir::Match* m) {
      return std::any_of(m->args.begin(), m->args.end(), [](const auto& a) { return a.first == "meter"; });
    });
    if (s ? (s->kind != ir::Set::Kind::Set || s->interval || !s->elements.empty()) : !meter) continue;
    std::optional<DynKey> key;
    bool ok = true;
    size_t counting = 0;  // writes with an element `ct count`
    auto same = [&](const std::optional<DynKey>& k) {
      if (!k || (key && !(*key == *k))) return false;
      key = k;
      return true;
    };
    for (const ir::Match* m : ws) {
      const std::string* elem = nullptr;
      for (const auto& [k, v] : m->args) {
        if (k == "element") elem = &v;
        if (k == "limit cap" && v != "limit rate" && v != "limit rate over") ok = false;  // byte rates
        if (k == "ct count" || k == "ct count over") ++counting;
        if (k != "set" && k != "element" && k != "timeout" && k != "meter" && k != "counter" &&
            !k.starts_with("limit ") && !k.starts_with("ct count"))
          ok = false;  // quota, last
      }
      ok = ok && elem && same(dyn_key_of_element(*elem));
    }
    const std::string at = "@" + name;
    std::vector<ir::Match*> lookups;
    for (auto& c : t.chains)
      for (auto& r : c.rules) {
        for (auto& m : r.matches)
          if (auto* ref = std::get_if<ir::SetRef>(&m.value); ref && ref->name == name) {
            ok = ok && s && same(dyn_key_of_lookup(*ref, *s));
            lookups.push_back(&m);
          }
        for (const auto& st : r.statements)
          for (const auto& [k, v] : st.args)
            if (v.find(at) != std::string::npos) ok = false;
        if (r.vmap && r.vmap->name == name) ok = false;
      }
    if (!ok || !key) continue;
    if (counting) {
      // Each element counts its connections (nft_connlimit): per address, as
      // -m connlimit does per source or destination under a full mask. Only
      // where every write counts, none deletes, nothing looks the set up.
      bool one_addr = key->parts == "saddr" || key->parts == "daddr";
      if (counting != ws.size() || !lookups.empty() || !one_addr ||
          std::any_of(ws.begin(), ws.end(), [](const ir::Match* m) { return m->cap == "set delete"; }))
        continue;
      for (ir::Match* m : ws) {
        std::string n, above;
        for (const auto& [k, v] : m->args)
          if (k.starts_with("ct count")) n = v, above = k == "ct count over" ? "1" : "";
        m->module = "connlimit";
        m->cap = "ct count in a set element";
        m->args = {{above.empty() ? "--connlimit-upto" : "--connlimit-above", n},
                   {"--connlimit-mask", key->family == 6 ? "128" : "32"},
                   {key->parts == "saddr" ? "--connlimit-saddr" : "--connlimit-daddr", ""}};
      }
      continue;
    }
    const std::string set = "nft " + key_of(t) + " " + name;
    const std::string fam = std::to_string(key->family);
    const uint64_t set_timeout = s ? s->timeout_ms : 0;
    for (ir::Match* m : ws) {
      std::vector<std::pair<std::string, std::string>> args = {
          {"op", m->cap.substr(4)}, {"set", set}, {"key", key->parts}, {"family", fam}};
      bool own = false;
      for (const auto& [k, v] : m->args)
        if (k == "timeout") args.emplace_back("timeout", v), own = true;
      if (!own) args.emplace_back("timeout", std::to_string(set_timeout));
      if (own) args.emplace_back("own timeout", "");
      for (const auto& [k, v] : m->args)
        if (k.starts_with("limit ") && k != "limit cap") args.emplace_back(k, v);
      m->module = "nftset";
      m->cap = m->cap.substr(4) + " @set element";
      m->args = std::move(args);
    }
    for (ir::Match* m : lookups) {
      m->module = "nftset";
      m->cap = "lookup of a set the packet path writes";
      m->field = Field::Opaque;
      m->value = {};
      m->args = {{"op", "lookup"},
                 {"set", set},
                 {"key", key->parts},
                 {"family", fam},
                 {"timeout", std::to_string(set_timeout)}};  // (for reports: kube-proxy's affinity)
    }
  }
}

// A reference that does not resolve is an error (nft refuses the ruleset);
// the rule is not kept, as with any other error in it.
void Builder::check_references(ir::Table& t, const std::string& tk) {
  std::set<std::string> checked_maps;
  for (auto& c : t.chains) std::erase_if(c.rules, [&](ir::Rule& r) { return broken_rule(t, tk, r, checked_maps); });
  // Verdict maps nothing references still must name existing chains.
  for (const auto& s : t.sets)
    if (s.kind == ir::Set::Kind::VerdictMap && !s.anonymous && !checked_maps.count(s.name))
      for (const auto& e : s.elements)
        if (e.verdict) bad_target(t, tk, *e.verdict);
}

// Reports a jump or goto to a chain that does not exist or is a base chain.
bool Builder::bad_target(ir::Table& t, const std::string& tk, const ir::Verdict& v) {
  if (v.kind != ir::VerdictKind::Jump && v.kind != ir::VerdictKind::Goto) return false;
  const ir::Chain* target = chain_named(t, v.chain);
  if (!target) {
    error(v.loc, "chain '" + v.chain + "' does not exist in table '" + tk + "'",
          "declare it in the same table: chain " + v.chain + " { ... }");
    return true;
  }
  if (target->base) {
    error(v.loc, "cannot " + std::string(ir::to_string(v.kind)) + " to base chain '" + v.chain + "'",
          "jumps and gotos go to regular chains (without a hook)");
    return true;
  }
  return false;
}

// Checks a rule's jump, set references and verdict map (whose elements'
// targets are checked once per map); true when the rule is not kept.
bool Builder::broken_rule(ir::Table& t, const std::string& tk, ir::Rule& r, std::set<std::string>& checked_maps) {
  bool broken = bad_target(t, tk, r.verdict);
  for (auto& m : r.matches)
    if (bad_set_ref(t, tk, m)) broken = true;
  if (r.vmap) {
    const ir::Set* s = set_named(t, r.vmap->name);
    if (!s) {
      error(r.verdict.loc, "map '" + r.vmap->name + "' does not exist in table '" + tk + "'",
            "declare it in the same table: map " + r.vmap->name + " { type ... : verdict; }");
      return true;
    }
    if (s->kind != ir::Set::Kind::VerdictMap) {
      error(r.verdict.loc, "'" + r.vmap->name + "' is not a verdict map", "vmap needs a map of type ... : verdict");
      return true;
    }
    if (!s->anonymous && s->key.size() != r.vmap->key.size()) {
      error(r.verdict.loc, "map '" + r.vmap->name + "' has " + std::to_string(s->key.size()) +
                               " key components, the expression " + std::to_string(r.vmap->key.size()));
      broken = true;
    }
    if (checked_maps.insert(s->name).second)
      for (const auto& e : s->elements)
        if (e.verdict) bad_target(t, tk, *e.verdict);  // a bad element is the map's problem, reported once
  }
  return broken;
}

// Checks a match's set reference; an interface-name set becomes the
// patterns it holds. True when the reference is broken.
bool Builder::bad_set_ref(ir::Table& t, const std::string& tk, ir::Match& m) {
  auto* ref = std::get_if<ir::SetRef>(&m.value);
  if (!ref) return false;
  const ir::Set* s = set_named(t, ref->name);
  if (!s) {
    error(m.loc, "set '" + ref->name + "' does not exist in table '" + tk + "'",
          "declare it in the same table: set " + ref->name + " { type ...; }");
    return true;
  }
  if (s->kind != ir::Set::Kind::Set) {
    error(m.loc, "'" + ref->name + "' is a map; a match looks up a set");
    return true;
  }
  auto ns = name_sets_.find(tk);
  if (ns != name_sets_.end())
    if (auto it = ns->second.find(ref->name); it != ns->second.end()) {
      if (ref->key.size() == 1) {
        if (s->dynamic || s->has_timeout)
          warning(m.loc, "set '" + ref->name + "' can change at run time; nf2bpf uses the names it holds now");
        auto pats = it->second;  // interface names: the patterns themselves
        sort_patterns(pats);
        m.value = std::move(pats);
      }
      return false;
    }
  if (!s->anonymous && s->key.size() != ref->key.size()) {
    error(m.loc, "set '" + ref->name + "' has " + std::to_string(s->key.size()) + " key components, the expression " +
                     std::to_string(ref->key.size()));
    return true;
  }
  return false;
}

// Anonymous sets: named in rule order (__set0, __map0 ...), after the named
// sets; the ones no kept rule references are dropped.
void Builder::name_anonymous_sets(ir::Table& t) {
  std::vector<std::string> order;
  for (const auto& c : t.chains)
    for (const auto& r : c.rules) {
      for (const auto& m : r.matches)
        if (auto* ref = std::get_if<ir::SetRef>(&m.value); ref && !ref->name.empty() && ref->name[0] == '\x01')
          order.push_back(ref->name);
      if (r.vmap && !r.vmap->name.empty() && r.vmap->name[0] == '\x01') order.push_back(r.vmap->name);
    }
  std::map<std::string, std::string> rename;
  size_t nset = 0, nmap = 0;
  std::vector<ir::Set> named, anon;
  for (auto& s : t.sets) (s.anonymous ? anon : named).push_back(std::move(s));
  for (const auto& old : order) {
    auto it = std::find_if(anon.begin(), anon.end(), [&](const ir::Set& s) { return s.name == old; });
    if (it == anon.end() || rename.count(old)) continue;
    std::string nn =
        it->kind == ir::Set::Kind::Set ? "__set" + std::to_string(nset++) : "__map" + std::to_string(nmap++);
    rename[old] = nn;
    it->name = nn;
    named.push_back(std::move(*it));
  }
  t.sets = std::move(named);
  forget_sets(t);
  for (auto& c : t.chains)
    for (auto& r : c.rules) {
      for (auto& m : r.matches)
        if (auto* ref = std::get_if<ir::SetRef>(&m.value))
          if (auto it = rename.find(ref->name); it != rename.end()) ref->name = it->second;
      if (r.vmap)
        if (auto it = rename.find(r.vmap->name); it != rename.end()) r.vmap->name = it->second;
    }
}

}  // namespace nf2bpf::frontend::nft
