// `nft -j list ruleset` (the libnftables JSON schema) to syntax trees; the
// Builder applies them. Locations are JSON pointers.
#include <nlohmann/json.hpp>

#include <cstring>

#include "translator/frontend/nft/builder.h"
#include "translator/frontend/nft/nft.h"

namespace nf2bpf::frontend {

using nft::Expr;
using nft::Stmt;
using json = nlohmann::json;
using EK = nft::Expr::Kind;
using SK = nft::Stmt::Kind;

namespace {

std::string ptr_join(const std::string& p, const std::string& key) {
  std::string k;
  for (char c : key) {
    if (c == '~') k += "~0";
    else if (c == '/') k += "~1";
    else k += c;
  }
  return p + "/" + k;
}
std::string ptr_join(const std::string& p, size_t i) { return p + "/" + std::to_string(i); }

class JsonParser {
 public:
  JsonParser(const Source& src, diag::Diagnostics& d, const NftJsonOptions& o)
      : src_(src), diag_(d), opt_(o), b_(rs_, d, nullptr) {}
  ir::Ruleset run();

 private:
  ir::SourceLoc loc(const std::string& p) const { return {src_.name, 0, 0, 0, p}; }
  void error(const std::string& p, std::string msg, std::string hint = {}) {
    diag_.error(loc(p), std::move(msg), std::move(hint));
  }

  // Field access with located errors.
  const json* field(const json& j, const char* k) const {
    if (!j.is_object()) return nullptr;
    auto it = j.find(k);
    return it == j.end() ? nullptr : &*it;
  }
  std::optional<std::string> str(const json& j, const char* k, const std::string& p, bool required = true) {
    const json* v = field(j, k);
    if (v && v->is_string()) return v->get<std::string>();
    if (v && v->is_number_unsigned()) return std::to_string(v->get<uint64_t>());
    if (v && v->is_number_integer()) return std::to_string(v->get<int64_t>());
    if (required) error(p, v ? std::string("'") + k + "' is not a string" : std::string("missing '") + k + "'");
    return std::nullopt;
  }
  std::optional<ir::Family> family(const json& j, const std::string& p) {
    auto f = str(j, "family", p);
    if (!f) return std::nullopt;
    auto fam = nft::family_from_name(*f);
    if (!fam) error(ptr_join(p, "family"), "unknown family '" + *f + "'", "families are ip, ip6, inet, arp, bridge, netdev");
    return fam;
  }
  std::vector<std::string> strings(const json* v) {
    std::vector<std::string> out;
    if (!v) return out;
    if (v->is_string()) out.push_back(v->get<std::string>());
    if (v->is_array())
      for (const auto& x : *v)
        if (x.is_string()) out.push_back(x.get<std::string>());
    return out;
  }
  ir::Table* table_of(const json& j, const std::string& p) {
    auto fam = family(j, p);
    auto t = str(j, "table", p);
    if (!fam || !t) return nullptr;
    return b_.find_table(*fam, *t, loc(ptr_join(p, "table")));
  }

  void object(const json& item, const std::string& p, const std::string& cmd);
  void table(const json& j, const std::string& p, const std::string& cmd);
  void chain(const json& j, const std::string& p, const std::string& cmd);
  void rule(const json& j, const std::string& p, const std::string& cmd);
  void set(const json& j, const std::string& p, bool is_map, const std::string& cmd);
  void element(const json& j, const std::string& p, const std::string& cmd);

  std::optional<Stmt> stmt(const json& j, const std::string& p);
  std::optional<Expr> expr(const json& j, const std::string& p);
  std::optional<Expr> set_elem(const json& j, const std::string& p);

  const Source& src_;
  diag::Diagnostics& diag_;
  const NftJsonOptions& opt_;
  ir::Ruleset rs_;
  nft::Builder b_;
};

void JsonParser::table(const json& j, const std::string& p, const std::string& cmd) {
  auto fam = family(j, p);
  auto name = str(j, "name", p);
  if (!fam || !name) return;
  if (cmd == "delete" || cmd == "destroy") return b_.delete_table(*fam, *name, loc(p), cmd == "delete");
  if (cmd == "flush") {
    if (ir::Table* t = b_.find_table(*fam, *name, loc(p))) b_.flush_table(*t);
    return;
  }
  ir::Table* t = b_.add_table(*fam, *name, loc(p), cmd == "create");
  if (t)
    for (const auto& f : strings(field(j, "flags")))
      if (f == "dormant") b_.set_dormant(*t, loc(ptr_join(p, "flags")));
}

void JsonParser::chain(const json& j, const std::string& p, const std::string& cmd) {
  ir::Table* t = table_of(j, p);
  auto name = str(j, "name", p);
  if (!t || !name) return;
  if (cmd == "delete" || cmd == "destroy") return b_.delete_chain(*t, *name, loc(p), cmd == "delete");
  if (cmd == "flush") {
    if (ir::Chain* c = b_.find_chain(*t, *name, loc(p))) b_.flush_chain(*c);
    return;
  }
  nft::ChainSpec spec;
  bool has_spec = false;
  if (auto ty = str(j, "type", p, false)) {
    has_spec = true;
    spec.type_loc = loc(ptr_join(p, "type"));
    if (*ty == "filter") spec.type = ir::ChainType::Filter;
    else if (*ty == "nat") spec.type = ir::ChainType::Nat;
    else if (*ty == "route") spec.type = ir::ChainType::Route;
    else return error(ptr_join(p, "type"), "unknown chain type '" + *ty + "'", "chain types are filter, nat and route");
  }
  if (auto h = str(j, "hook", p, false)) {
    has_spec = true;
    spec.hook_name = *h;
    spec.hook = ir::hook_from_string(*h);
    spec.hook_loc = loc(ptr_join(p, "hook"));
  }
  if (const json* pr = field(j, "prio")) {
    has_spec = true;
    spec.priority_loc = loc(ptr_join(p, "prio"));
    if (pr->is_number_integer()) {
      spec.priority = (int)pr->get<int64_t>();
    } else if (pr->is_string()) {
      auto v = nft::priority_from_name(pr->get<std::string>(), t->family, spec.hook);
      if (!v) return error(ptr_join(p, "prio"), "unknown priority '" + pr->get<std::string>() + "'");
      spec.priority = *v;
    } else {
      return error(ptr_join(p, "prio"), "'prio' is not a number");
    }
  }
  if (auto pol = str(j, "policy", p, false)) {
    has_spec = true;
    spec.policy_loc = loc(ptr_join(p, "policy"));
    if (*pol == "accept") spec.policy = ir::VerdictKind::Accept;
    else if (*pol == "drop") spec.policy = ir::VerdictKind::Drop;
    else return error(ptr_join(p, "policy"), "invalid policy '" + *pol + "'", "a base chain's policy is accept or drop");
  }
  if (auto dev = str(j, "dev", p, false)) spec.device = *dev;
  b_.add_chain(*t, *name, loc(p), has_spec ? &spec : nullptr, cmd == "create");
}

void JsonParser::rule(const json& j, const std::string& p, const std::string& cmd) {
  auto fam = family(j, p);
  ir::Table* t = table_of(j, p);
  auto ch = str(j, "chain", p);
  if (!fam || !t || !ch) return;
  std::optional<uint64_t> handle;
  if (const json* h = field(j, "handle"); h && h->is_number_unsigned()) handle = h->get<uint64_t>();
  if (cmd == "delete" || cmd == "destroy") {
    if (!handle) return error(p, "deleting a rule needs its 'handle'");
    return b_.delete_rule(*t, *ch, *handle, loc(p));
  }
  const json* ex = field(j, "expr");
  if (!ex || !ex->is_array()) return error(p, "rule without an 'expr' array");
  nft::RuleAst r;
  r.loc = loc(p);
  r.handle = handle;
  if (auto c = str(j, "comment", p, false)) r.comment = *c;
  bool failed = false, has_xt = false;
  std::string ep = ptr_join(p, "expr");
  for (size_t i = 0; i < ex->size(); ++i) {
    const json& s = (*ex)[i];
    if (s.is_object() && s.size() == 1 && s.begin().key() == "xt") has_xt = true;
    auto st = stmt(s, ptr_join(ep, i));
    if (!st) {
      failed = true;
      continue;
    }
    r.stmts.push_back(std::move(*st));
  }
  if (failed) return;
  // iptables-nft rules: the JSON output names xt matches without their
  // options; the text listing (when given) spells them out.
  if (has_xt && opt_.substitutes && handle) {
    auto it = opt_.substitutes->find({*fam, t->name, *ch, *handle});
    if (it != opt_.substitutes->end()) {
      bool sub_xt = false;
      for (const auto& s : it->second.stmts) sub_xt |= s.kind == SK::Other && s.name.starts_with("xt ");
      if (!sub_xt || it->second.stmts.size() >= r.stmts.size()) {
        std::string keep_comment = r.comment.value_or("");
        r.stmts = it->second.stmts;
        auto relocate = [&](auto&& self, Expr& e) -> void {
          e.loc = r.loc;
          for (auto& k : e.kids) self(self, k);
        };
        for (auto& s : r.stmts) {
          s.loc = r.loc;
          for (auto& o : s.opts) o.loc = r.loc;
          relocate(relocate, s.lhs);
          relocate(relocate, s.rhs);
        }
        if (it->second.comment) r.comment = it->second.comment;
      }
    }
  }
  r.text = nft::render(r);
  nft::RulePos pos;
  if (cmd == "insert") pos.kind = nft::RulePos::Kind::Prepend;
  if (const json* ix = field(j, "index"); ix && ix->is_number_unsigned() && (cmd == "add" || cmd == "insert")) {
    pos.kind = nft::RulePos::Kind::Index;
    pos.n = ix->get<uint64_t>();
    pos.after = cmd == "add";
    pos.loc = loc(ptr_join(p, "index"));
  } else if (handle && (cmd == "add" || cmd == "insert") && field(j, "position")) {
    pos.kind = nft::RulePos::Kind::Handle;
    pos.n = (*field(j, "position")).get<uint64_t>();
    pos.after = cmd == "add";
    pos.loc = loc(ptr_join(p, "position"));
  }
  b_.add_rule(*t, *ch, r, pos, loc(ptr_join(p, "chain")));
}

void JsonParser::set(const json& j, const std::string& p, bool is_map, const std::string& cmd) {
  ir::Table* t = table_of(j, p);
  auto name = str(j, "name", p);
  if (!t || !name) return;
  if (cmd == "delete" || cmd == "destroy") return b_.delete_set(*t, *name, loc(p), cmd == "delete");
  if (cmd == "flush") return b_.flush_set(*t, *name, loc(p));
  nft::SetDecl d;
  d.name = *name;
  d.is_map = is_map;
  d.loc = loc(p);
  d.type_loc = loc(ptr_join(p, "type"));
  d.key_types = strings(field(j, "type"));
  if (is_map) {
    auto data = strings(field(j, "map"));
    for (const auto& x : data) d.data_type += (d.data_type.empty() ? "" : " . ") + x;
  }
  d.flags = strings(field(j, "flags"));
  if (const json* to = field(j, "timeout"); to && to->is_number_unsigned()) d.timeout_ms = to->get<uint64_t>() * 1000;
  if (const json* el = field(j, "elem")) {
    if (!el->is_array()) return error(ptr_join(p, "elem"), "'elem' is not an array");
    d.has_elements = true;
    for (size_t i = 0; i < el->size(); ++i)
      if (auto e = set_elem((*el)[i], ptr_join(ptr_join(p, "elem"), i))) d.elements.push_back(std::move(*e));
  }
  b_.add_set(*t, d, cmd == "create");
}

void JsonParser::element(const json& j, const std::string& p, const std::string& cmd) {
  ir::Table* t = table_of(j, p);
  auto name = str(j, "name", p);
  if (!t || !name) return;
  const json* el = field(j, "elem");
  if (!el || !el->is_array()) return error(p, "element without an 'elem' array");
  std::vector<Expr> elems;
  for (size_t i = 0; i < el->size(); ++i)
    if (auto e = set_elem((*el)[i], ptr_join(ptr_join(p, "elem"), i))) elems.push_back(std::move(*e));
  b_.add_elements(*t, *name, elems, loc(p), cmd == "delete" || cmd == "destroy");
}

void JsonParser::object(const json& item, const std::string& p, const std::string& cmd) {
  if (!item.is_object() || item.size() != 1) {
    error(p, "expected an object with one key (table, chain, rule, set, map, element ...)");
    return;
  }
  const std::string& k = item.begin().key();
  const json& v = item.begin().value();
  std::string vp = ptr_join(p, k);
  if (k == "metainfo") return;
  if (cmd.empty() && (k == "add" || k == "create" || k == "insert" || k == "delete" || k == "destroy" ||
                      k == "flush" || k == "replace")) {
    if (k == "flush" && v.is_object() && v.contains("ruleset")) return b_.flush_ruleset();
    if (k == "replace") return error(vp, "'replace' refers to a rule handle of a running ruleset");
    return object(v, vp, k);
  }
  if (k == "table") return table(v, vp, cmd);
  if (k == "chain") return chain(v, vp, cmd);
  if (k == "rule") return rule(v, vp, cmd.empty() ? "add" : cmd);
  if (k == "set" || k == "map") return set(v, vp, k == "map", cmd);
  if (k == "element") return element(v, vp, cmd);
  if (k == "counter" || k == "quota" || k == "ct helper" || k == "limit" || k == "flowtable" || k == "ct timeout" ||
      k == "ct expectation" || k == "secmark" || k == "synproxy" || k == "tunnel")
    return;  // stateful objects: only statements referencing them matter
  error(vp, "unknown object '" + k + "'", "expected table, chain, rule, set, map or element");
}

// ---- statements ----------------------------------------------------------------

std::optional<Stmt> JsonParser::stmt(const json& j, const std::string& p) {
  if (!j.is_object() || j.size() != 1) {
    error(p, "a statement is an object with one key");
    return std::nullopt;
  }
  const std::string& k = j.begin().key();
  const json& v = j.begin().value();
  std::string vp = ptr_join(p, k);
  Stmt s;
  s.loc = loc(p);
  auto opt = [&](const char* key, const std::string& out_key = {}) {
    const json* x = field(v, key);
    if (!x) return;
    std::string val;
    if (x->is_string()) val = x->get<std::string>();
    else if (x->is_number_unsigned()) val = std::to_string(x->get<uint64_t>());
    else if (x->is_number_integer()) val = std::to_string(x->get<int64_t>());
    else if (x->is_boolean()) val = x->get<bool>() ? "1" : "";
    else if (x->is_array()) {
      for (const auto& e : *x) val += (val.empty() ? "" : ",") + (e.is_string() ? e.get<std::string>() : e.dump());
    } else {
      val = x->dump();
    }
    if (x->is_boolean() && val.empty()) return;
    s.opts.push_back({out_key.empty() ? key : out_key, val, loc(ptr_join(vp, key))});
  };
  if (k == "match") {
    s.kind = SK::Match;
    auto o = str(v, "op", vp, false);
    s.op = o ? *o : "==";
    if (s.op == "in") s.op = "";
    const json* l = field(v, "left");
    const json* r = field(v, "right");
    if (!l || !r) {
      error(vp, "a match needs 'left' and 'right'");
      return std::nullopt;
    }
    auto le = expr(*l, ptr_join(vp, "left"));
    auto re = expr(*r, ptr_join(vp, "right"));
    if (!le || !re) return std::nullopt;
    s.lhs = std::move(*le);
    s.rhs = std::move(*re);
    return s;
  }
  if (k == "accept" || k == "drop" || k == "continue" || k == "return") {
    s.kind = SK::Verdict;
    s.name = k;
    return s;
  }
  if (k == "jump" || k == "goto") {
    s.kind = SK::Verdict;
    s.name = k;
    auto t = str(v, "target", vp);
    if (!t) return std::nullopt;
    s.target = *t;
    return s;
  }
  if (k == "counter") {
    s.kind = SK::Counter;
    if (v.is_string()) s.opts.push_back({"name", v.get<std::string>(), loc(vp)});
    opt("packets");
    opt("bytes");
    return s;
  }
  if (k == "queue") {
    s.kind = SK::Queue;
    opt("num");
    opt("flags");
    return s;
  }
  if (k == "log") {
    s.kind = SK::Log;
    for (const char* o : {"prefix", "level", "group", "snaplen", "queue-threshold", "flags"}) opt(o);
    return s;
  }
  if (k == "limit") {
    if (v.is_string()) {
      s.kind = SK::Other;
      s.name = "limit name";
      s.opts.push_back({"name", v.get<std::string>(), loc(vp)});
      return s;
    }
    s.kind = SK::Limit;
    for (const char* o : {"rate", "per", "burst", "rate_unit", "burst_unit", "inv"}) opt(o);
    return s;
  }
  if (k == "reject") {
    s.kind = SK::Reject;
    opt("type");
    opt("expr", "code");
    return s;
  }
  if (k == "dnat" || k == "snat" || k == "masquerade" || k == "redirect") {
    s.kind = SK::Nat;
    s.name = k;
    opt("family");
    opt("flags");
    if (const json* a = field(v, "addr")) {
      auto e = expr(*a, ptr_join(vp, "addr"));
      if (!e) return std::nullopt;
      s.lhs = *e;
    }
    if (const json* pt = field(v, "port")) {
      auto e = expr(*pt, ptr_join(vp, "port"));
      if (!e) return std::nullopt;
      s.rhs = *e;
    }
    return s;
  }
  if (k == "notrack") {
    s.kind = SK::Notrack;
    return s;
  }
  if (k == "mangle") {
    s.kind = SK::Mangle;
    const json* key = field(v, "key");
    const json* val = field(v, "value");
    if (!key || !val) {
      error(vp, "mangle needs 'key' and 'value'");
      return std::nullopt;
    }
    auto ke = expr(*key, ptr_join(vp, "key"));
    auto ve = expr(*val, ptr_join(vp, "value"));
    if (!ke || !ve) return std::nullopt;
    s.lhs = *ke;
    s.rhs = *ve;
    return s;
  }
  if (k == "ct helper" || k == "ct timeout" || k == "ct expectation") {  // ct helper set "ftp"
    s.kind = SK::Mangle;
    s.lhs.kind = EK::Ct;
    s.lhs.a = k.substr(3);
    s.lhs.loc = loc(vp);
    s.rhs.kind = EK::Literal;
    s.rhs.a = v.is_string() ? v.get<std::string>() : v.dump();
    s.rhs.loc = loc(vp);
    return s;
  }
  if (k == "vmap") {
    s.kind = SK::Vmap;
    const json* key = field(v, "key");
    const json* data = field(v, "data");
    if (!key || !data) {
      error(vp, "vmap needs 'key' and 'data'");
      return std::nullopt;
    }
    auto ke = expr(*key, ptr_join(vp, "key"));
    auto de = expr(*data, ptr_join(vp, "data"));
    if (!ke || !de) return std::nullopt;
    s.lhs = *ke;
    s.rhs = *de;
    return s;
  }
  if (k == "set" || k == "map") {  // dynamic updates from the packet path
    s.kind = SK::SetUpdate;
    auto op = str(v, "op", vp);
    auto target = str(v, k == "set" ? "set" : "map", vp);
    const json* el = field(v, "elem");
    if (!op || !target || !el) return std::nullopt;
    s.name = *op;
    s.target = target->starts_with("@") ? target->substr(1) : *target;
    auto e = expr(*el, ptr_join(vp, "elem"));
    if (!e) return std::nullopt;
    s.lhs = *e;
    return s;
  }
  if (k == "xt") {
    auto ty = str(v, "type", vp, false);
    auto n = str(v, "name", vp, false);
    if (ty.value_or("") == "match" && n.value_or("") == "comment") {
      s.kind = SK::Comment;  // iptables-nft's -m comment: no effect on packets
      return s;
    }
    s.kind = SK::Other;
    s.name = "xt " + ty.value_or("?");
    s.opts.push_back({"name", n.value_or("?"), loc(vp)});
    return s;
  }
  if (k == "flow") {
    s.kind = SK::Other;
    s.name = "flow " + str(v, "op", vp, false).value_or("add");
    if (auto ft = str(v, "flowtable", vp, false)) s.opts.push_back({"flowtable", *ft, loc(vp)});
    return s;
  }
  if (k == "tproxy" || k == "fwd" || k == "dup" || k == "synproxy" || k == "quota" || k == "last" || k == "secmark" ||
      k == "ct count") {
    s.kind = SK::Other;
    s.name = k;
    return s;
  }
  error(vp, "unknown statement '" + k + "'");
  return std::nullopt;
}

// ---- expressions ---------------------------------------------------------------

std::optional<Expr> JsonParser::set_elem(const json& j, const std::string& p) {
  if (j.is_array() && j.size() == 2) {  // map element [key, value]
    auto key = expr(j[0], ptr_join(p, 0));
    auto data = expr(j[1], ptr_join(p, 1));
    if (!key || !data) return std::nullopt;
    Expr m;
    m.kind = EK::MapEntry;
    m.loc = loc(p);
    m.kids = {std::move(*key), std::move(*data)};
    return m;
  }
  return expr(j, p);
}

std::optional<Expr> JsonParser::expr(const json& j, const std::string& p) {
  Expr e;
  e.loc = loc(p);
  if (j.is_string()) {
    std::string s = j.get<std::string>();
    if (s.size() > 1 && s[0] == '@') {
      e.kind = EK::SetRef;
      e.a = s.substr(1);
    } else if (s == "*") {
      e.kind = EK::Wildcard;
    } else {
      e.kind = EK::Literal;
      e.a = s;
    }
    return e;
  }
  if (j.is_number_unsigned()) {
    e.kind = EK::Number;
    e.num = j.get<uint64_t>();
    return e;
  }
  if (j.is_number()) {
    error(p, "expected a non-negative integer, found " + j.dump());
    return std::nullopt;
  }
  if (j.is_boolean()) {
    e.kind = EK::Bool;
    e.num = j.get<bool>() ? 1 : 0;
    return e;
  }
  if (j.is_array()) {
    e.kind = EK::List;
    for (size_t i = 0; i < j.size(); ++i) {
      auto k = expr(j[i], ptr_join(p, i));
      if (!k) return std::nullopt;
      e.kids.push_back(std::move(*k));
    }
    return e;
  }
  if (!j.is_object() || j.size() != 1) {
    error(p, "expected an expression, found " + j.dump().substr(0, 60));
    return std::nullopt;
  }
  const std::string& k = j.begin().key();
  const json& v = j.begin().value();
  std::string vp = ptr_join(p, k);
  auto kids = [&](const json& arr, const std::string& ap) -> bool {
    if (!arr.is_array()) {
      error(ap, "expected an array");
      return false;
    }
    for (size_t i = 0; i < arr.size(); ++i) {
      auto x = expr(arr[i], ptr_join(ap, i));
      if (!x) return false;
      e.kids.push_back(std::move(*x));
    }
    return true;
  };
  if (k == "payload") {
    e.kind = EK::Payload;
    if (auto proto = str(v, "protocol", vp, false)) {
      e.a = *proto;
      auto f = str(v, "field", vp);
      if (!f) return std::nullopt;
      e.b = *f;
    } else {
      e.a = "@" + str(v, "base", vp, false).value_or("?");
      e.b = str(v, "offset", vp, false).value_or("?") + "," + str(v, "len", vp, false).value_or("?");
    }
    return e;
  }
  if (k == "meta") {
    e.kind = EK::Meta;
    auto key = str(v, "key", vp);
    if (!key) return std::nullopt;
    e.a = *key;
    return e;
  }
  if (k == "ct") {
    e.kind = EK::Ct;
    auto key = str(v, "key", vp);
    if (!key) return std::nullopt;
    e.a = *key;
    e.b = str(v, "dir", vp, false).value_or("");
    e.c = str(v, "family", vp, false).value_or("");
    // `ct original ip saddr` is {"key": "ip saddr", "dir": "original"}.
    for (const char* f : {"ip ", "ip6 "})
      if (e.a.starts_with(f)) {
        e.c = std::string(f, std::strlen(f) - 1);
        e.a = e.a.substr(std::strlen(f));
      }
    return e;
  }
  if (k == "fib") {
    e.kind = EK::Fib;
    auto r = str(v, "result", vp);
    if (!r) return std::nullopt;
    e.a = *r;
    e.flags = strings(field(v, "flags"));
    return e;
  }
  if (k == "numgen" || k == "symhash" || k == "jhash") {
    e.kind = EK::Other;
    e.a = k;
    std::string d;
    if (k == "numgen") d = str(v, "mode", vp, false).value_or("random") + " ";
    if (k == "jhash")
      if (const json* x = field(v, "expr"))
        if (auto xe = expr(*x, ptr_join(vp, "expr"))) d = nft::render(*xe) + " ";
    d += "mod " + str(v, "mod", vp, false).value_or("?");
    if (auto seed = str(v, "seed", vp, false)) d += " seed " + *seed;
    if (auto off = str(v, "offset", vp, false); off && *off != "0") d += " offset " + *off;
    e.b = d;
    return e;
  }
  if (k == "tcp option" || k == "exthdr" || k == "sctp chunk" || k == "ip option" || k == "rt" || k == "socket" ||
      k == "osf" || k == "ipsec" || k == "dccp option") {
    e.kind = EK::Other;
    e.a = k == "dccp option" ? "exthdr" : k;
    std::string d;
    for (const char* f : {"family", "dir", "name", "key", "field", "level", "ttl"})
      if (auto x = str(v, f, vp, false)) d += (d.empty() ? "" : " ") + *x;
    e.b = d;
    if (k == "exthdr") e.b = str(v, "name", vp, false).value_or("?") + (field(v, "field") ? " " + str(v, "field", vp, false).value_or("") : "");
    return e;
  }
  if (k == "concat") {
    e.kind = EK::Concat;
    if (!kids(v, vp)) return std::nullopt;
    return e;
  }
  if (k == "set") {
    e.kind = EK::Set;
    if (!v.is_array()) {  // a single element
      auto x = set_elem(v, vp);
      if (!x) return std::nullopt;
      e.kids.push_back(std::move(*x));
      return e;
    }
    for (size_t i = 0; i < v.size(); ++i) {
      auto x = set_elem(v[i], ptr_join(vp, i));
      if (!x) return std::nullopt;
      e.kids.push_back(std::move(*x));
    }
    return e;
  }
  if (k == "map") {
    e.kind = EK::MapLookup;
    const json* key = field(v, "key");
    const json* data = field(v, "data");
    if (!key || !data) {
      error(vp, "map needs 'key' and 'data'");
      return std::nullopt;
    }
    auto ke = expr(*key, ptr_join(vp, "key"));
    auto de = expr(*data, ptr_join(vp, "data"));
    if (!ke || !de) return std::nullopt;
    e.kids = {std::move(*ke), std::move(*de)};
    return e;
  }
  if (k == "prefix") {
    e.kind = EK::Prefix;
    const json* a = field(v, "addr");
    const json* len = field(v, "len");
    if (!a || !len || !len->is_number_unsigned()) {
      error(vp, "prefix needs 'addr' and 'len'");
      return std::nullopt;
    }
    auto ae = expr(*a, ptr_join(vp, "addr"));
    if (!ae) return std::nullopt;
    e.kids.push_back(std::move(*ae));
    e.num = len->get<uint64_t>();
    return e;
  }
  if (k == "range") {
    e.kind = EK::Range;
    if (!kids(v, vp)) return std::nullopt;
    if (e.kids.size() != 2) {
      error(vp, "a range has two values");
      return std::nullopt;
    }
    return e;
  }
  if (k == "&" || k == "|" || k == "^" || k == "<<" || k == ">>") {
    e.kind = EK::Binop;
    e.a = k;
    if (!kids(v, vp)) return std::nullopt;
    if (e.kids.size() < 2) {
      error(vp, "'" + k + "' needs two operands");
      return std::nullopt;
    }
    return e;
  }
  if (k == "elem") {
    e.kind = EK::Elem;
    const json* val = field(v, "val");
    if (!val) {
      error(vp, "elem without 'val'");
      return std::nullopt;
    }
    auto ve = expr(*val, ptr_join(vp, "val"));
    if (!ve) return std::nullopt;
    e.kids.push_back(std::move(*ve));
    if (const json* t = field(v, "timeout"); t && t->is_number_unsigned()) e.timeout_ms = t->get<uint64_t>() * 1000;
    if (const json* t = field(v, "expires"); t && t->is_number_unsigned()) e.expires_ms = t->get<uint64_t>() * 1000;
    if (auto c = str(v, "comment", vp, false)) e.comment = *c;
    return e;
  }
  if (k == "accept" || k == "drop" || k == "continue" || k == "return" || k == "queue") {
    e.kind = EK::Verdict;
    e.a = k;
    return e;
  }
  if (k == "jump" || k == "goto") {
    e.kind = EK::Verdict;
    e.a = k;
    auto t = str(v, "target", vp);
    if (!t) return std::nullopt;
    e.b = *t;
    return e;
  }
  error(vp, "unknown expression '" + k + "'");
  return std::nullopt;
}

ir::Ruleset JsonParser::run() {
  rs_.source = src_.name;
  rs_.frontend = opt_.frontend;
  json root;
  try {
    root = json::parse(src_.text);
  } catch (const json::parse_error& e) {
    // Locate the byte offset as line:col.
    size_t off = std::min<size_t>(e.byte ? e.byte - 1 : 0, src_.text.size());
    uint32_t line = 1, col = 1;
    size_t line_start = 0;
    for (size_t i = 0; i < off; ++i)
      if (src_.text[i] == '\n') ++line, col = 1, line_start = i + 1;
      else ++col;
    size_t line_end = src_.text.find('\n', line_start);
    std::string text = src_.text.substr(line_start, line_end == std::string::npos ? std::string::npos : line_end - line_start);
    std::string what = e.what();
    if (auto pos = what.find("syntax error"); pos != std::string::npos) what = what.substr(pos);
    diag_.error(ir::SourceLoc{src_.name, line, col, 1, {}}, "invalid JSON: " + what,
                "expected the output of `nft -j list ruleset`", text);
    return std::move(rs_);
  }
  const json* list = root.is_object() ? field(root, "nftables") : nullptr;
  if (!list || !list->is_array()) {
    error("", "expected {\"nftables\": [...]} at the top level", "this is the shape `nft -j list ruleset` prints");
    return std::move(rs_);
  }
  for (size_t i = 0; i < list->size(); ++i) {
    object((*list)[i], ptr_join("/nftables", i), "");
    if (diag_.errors() > 1000) break;
  }
  b_.finish();
  return std::move(rs_);
}

}  // namespace

ir::Ruleset parse_nft_json(const Source& src, diag::Diagnostics& diags, const NftJsonOptions& opt) {
  JsonParser p(src, diags, opt);
  return p.run();
}

}  // namespace nf2bpf::frontend
