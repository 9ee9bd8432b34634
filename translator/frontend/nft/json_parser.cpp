// `nft -j list ruleset` (the libnftables JSON schema) to syntax trees; the
// Builder applies them. Locations are JSON pointers.
#include <nlohmann/json.hpp>

#include <cstring>
#include <unordered_map>

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
    if (c == '~')
      k += "~0";
    else if (c == '/')
      k += "~1";
    else
      k += c;
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
    if (!fam)
      error(ptr_join(p, "family"), "unknown family '" + *f + "'", "families are ip, ip6, inet, arp, bridge, netdev");
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

  // One parser per statement key: `k` is the key, `v` its value at `vp`.
  using StmtParser = std::optional<Stmt> (JsonParser::*)(const std::string& k, const json& v, const std::string& vp,
                                                         Stmt s);
  void stmt_opt(Stmt& s, const json& v, const std::string& vp, const char* key, const std::string& out_key = {});
  bool stmt_pair(const json& v, const std::string& vp, const char* a, const char* b, Expr& ea, Expr& eb);
  std::optional<Stmt> stmt_match(const std::string& k, const json& v, const std::string& vp, Stmt s);
  std::optional<Stmt> stmt_verdict(const std::string& k, const json& v, const std::string& vp, Stmt s);
  std::optional<Stmt> stmt_counter(const std::string& k, const json& v, const std::string& vp, Stmt s);
  std::optional<Stmt> stmt_queue(const std::string& k, const json& v, const std::string& vp, Stmt s);
  std::optional<Stmt> stmt_log(const std::string& k, const json& v, const std::string& vp, Stmt s);
  std::optional<Stmt> stmt_limit(const std::string& k, const json& v, const std::string& vp, Stmt s);
  std::optional<Stmt> stmt_reject(const std::string& k, const json& v, const std::string& vp, Stmt s);
  std::optional<Stmt> stmt_nat(const std::string& k, const json& v, const std::string& vp, Stmt s);
  std::optional<Stmt> stmt_notrack(const std::string& k, const json& v, const std::string& vp, Stmt s);
  std::optional<Stmt> stmt_mangle(const std::string& k, const json& v, const std::string& vp, Stmt s);
  std::optional<Stmt> stmt_ct_object(const std::string& k, const json& v, const std::string& vp, Stmt s);
  std::optional<Stmt> stmt_vmap(const std::string& k, const json& v, const std::string& vp, Stmt s);
  std::optional<Stmt> stmt_set_update(const std::string& k, const json& v, const std::string& vp, Stmt s);
  std::optional<Stmt> stmt_xt(const std::string& k, const json& v, const std::string& vp, Stmt s);
  std::optional<Stmt> stmt_flow(const std::string& k, const json& v, const std::string& vp, Stmt s);
  std::optional<Stmt> stmt_recognised(const std::string& k, const json& v, const std::string& vp, Stmt s);

  // One parser per expression key, likewise.
  using ExprParser = std::optional<Expr> (JsonParser::*)(const std::string& k, const json& v, const std::string& vp,
                                                         Expr e);
  std::optional<Expr> value_expr(const json& j, const std::string& p, Expr e);
  bool expr_kids(Expr& e, const json& arr, const std::string& ap);
  std::optional<Expr> expr_payload(const std::string& k, const json& v, const std::string& vp, Expr e);
  std::optional<Expr> expr_meta(const std::string& k, const json& v, const std::string& vp, Expr e);
  std::optional<Expr> expr_ct(const std::string& k, const json& v, const std::string& vp, Expr e);
  std::optional<Expr> expr_fib(const std::string& k, const json& v, const std::string& vp, Expr e);
  std::optional<Expr> expr_hash(const std::string& k, const json& v, const std::string& vp, Expr e);
  std::optional<Expr> expr_other(const std::string& k, const json& v, const std::string& vp, Expr e);
  std::optional<Expr> expr_concat(const std::string& k, const json& v, const std::string& vp, Expr e);
  std::optional<Expr> expr_set(const std::string& k, const json& v, const std::string& vp, Expr e);
  std::optional<Expr> expr_map(const std::string& k, const json& v, const std::string& vp, Expr e);
  std::optional<Expr> expr_prefix(const std::string& k, const json& v, const std::string& vp, Expr e);
  std::optional<Expr> expr_range(const std::string& k, const json& v, const std::string& vp, Expr e);
  std::optional<Expr> expr_binop(const std::string& k, const json& v, const std::string& vp, Expr e);
  std::optional<Expr> expr_elem(const std::string& k, const json& v, const std::string& vp, Expr e);
  std::optional<Expr> expr_verdict(const std::string& k, const json& v, const std::string& vp, Expr e);

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
    if (*ty == "filter")
      spec.type = ir::ChainType::Filter;
    else if (*ty == "nat")
      spec.type = ir::ChainType::Nat;
    else if (*ty == "route")
      spec.type = ir::ChainType::Route;
    else
      return error(ptr_join(p, "type"), "unknown chain type '" + *ty + "'", "chain types are filter, nat and route");
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
    if (*pol == "accept")
      spec.policy = ir::VerdictKind::Accept;
    else if (*pol == "drop")
      spec.policy = ir::VerdictKind::Drop;
    else
      return error(ptr_join(p, "policy"), "invalid policy '" + *pol + "'", "a base chain's policy is accept or drop");
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
  if (cmd.empty() && (k == "add" || k == "create" || k == "insert" || k == "delete" || k == "destroy" || k == "flush" ||
                      k == "replace")) {
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
  static const std::unordered_map<std::string_view, StmtParser> kStatements = {
      {"match", &JsonParser::stmt_match},
      {"accept", &JsonParser::stmt_verdict},
      {"drop", &JsonParser::stmt_verdict},
      {"continue", &JsonParser::stmt_verdict},
      {"return", &JsonParser::stmt_verdict},
      {"jump", &JsonParser::stmt_verdict},
      {"goto", &JsonParser::stmt_verdict},
      {"counter", &JsonParser::stmt_counter},
      {"queue", &JsonParser::stmt_queue},
      {"log", &JsonParser::stmt_log},
      {"limit", &JsonParser::stmt_limit},
      {"reject", &JsonParser::stmt_reject},
      {"dnat", &JsonParser::stmt_nat},
      {"snat", &JsonParser::stmt_nat},
      {"masquerade", &JsonParser::stmt_nat},
      {"redirect", &JsonParser::stmt_nat},
      {"notrack", &JsonParser::stmt_notrack},
      {"mangle", &JsonParser::stmt_mangle},
      {"ct helper", &JsonParser::stmt_ct_object},
      {"ct timeout", &JsonParser::stmt_ct_object},
      {"ct expectation", &JsonParser::stmt_ct_object},
      {"vmap", &JsonParser::stmt_vmap},
      {"set", &JsonParser::stmt_set_update},
      {"map", &JsonParser::stmt_set_update},
      {"meter", &JsonParser::stmt_set_update},
      {"xt", &JsonParser::stmt_xt},
      {"flow", &JsonParser::stmt_flow},
      {"tproxy", &JsonParser::stmt_recognised},
      {"fwd", &JsonParser::stmt_recognised},
      {"dup", &JsonParser::stmt_recognised},
      {"synproxy", &JsonParser::stmt_recognised},
      {"quota", &JsonParser::stmt_recognised},
      {"last", &JsonParser::stmt_recognised},
      {"secmark", &JsonParser::stmt_recognised},
      {"ct count", &JsonParser::stmt_recognised}};
  if (auto it = kStatements.find(k); it != kStatements.end()) return (this->*it->second)(k, v, vp, std::move(s));
  error(vp, "unknown statement '" + k + "'");
  return std::nullopt;
}

// A statement option as text: strings as they are, numbers in decimal, true
// as "1" (false leaves it out), arrays joined with ','.
void JsonParser::stmt_opt(Stmt& s, const json& v, const std::string& vp, const char* key, const std::string& out_key) {
  const json* x = field(v, key);
  if (!x) return;
  std::string val;
  if (x->is_string())
    val = x->get<std::string>();
  else if (x->is_number_unsigned())
    val = std::to_string(x->get<uint64_t>());
  else if (x->is_number_integer())
    val = std::to_string(x->get<int64_t>());
  else if (x->is_boolean())
    val = x->get<bool>() ? "1" : "";
  else if (x->is_array()) {
    for (const auto& e : *x) val += (val.empty() ? "" : ",") + (e.is_string() ? e.get<std::string>() : e.dump());
  } else {
    val = x->dump();
  }
  if (x->is_boolean() && val.empty()) return;
  s.opts.push_back({out_key.empty() ? key : out_key, val, loc(ptr_join(vp, key))});
}

// Two expressions of a statement (match: left/right, mangle: key/value ...).
bool JsonParser::stmt_pair(const json& v, const std::string& vp, const char* a, const char* b, Expr& ea, Expr& eb) {
  auto ae = expr(*field(v, a), ptr_join(vp, a));
  auto be = expr(*field(v, b), ptr_join(vp, b));
  if (!ae || !be) return false;
  ea = std::move(*ae);
  eb = std::move(*be);
  return true;
}

std::optional<Stmt> JsonParser::stmt_match(const std::string&, const json& v, const std::string& vp, Stmt s) {
  s.kind = SK::Match;
  auto o = str(v, "op", vp, false);
  s.op = o ? *o : "==";
  if (s.op == "in") s.op = "";
  if (!field(v, "left") || !field(v, "right")) {
    error(vp, "a match needs 'left' and 'right'");
    return std::nullopt;
  }
  if (!stmt_pair(v, vp, "left", "right", s.lhs, s.rhs)) return std::nullopt;
  return s;
}

std::optional<Stmt> JsonParser::stmt_verdict(const std::string& k, const json& v, const std::string& vp, Stmt s) {
  s.kind = SK::Verdict;
  s.name = k;
  if (k == "jump" || k == "goto") {
    auto t = str(v, "target", vp);
    if (!t) return std::nullopt;
    s.target = *t;
  }
  return s;
}

std::optional<Stmt> JsonParser::stmt_counter(const std::string&, const json& v, const std::string& vp, Stmt s) {
  s.kind = SK::Counter;
  if (v.is_string()) s.opts.push_back({"name", v.get<std::string>(), loc(vp)});
  stmt_opt(s, v, vp, "packets");
  stmt_opt(s, v, vp, "bytes");
  return s;
}

std::optional<Stmt> JsonParser::stmt_queue(const std::string&, const json& v, const std::string& vp, Stmt s) {
  s.kind = SK::Queue;
  stmt_opt(s, v, vp, "num");
  stmt_opt(s, v, vp, "flags");
  return s;
}

std::optional<Stmt> JsonParser::stmt_log(const std::string&, const json& v, const std::string& vp, Stmt s) {
  s.kind = SK::Log;
  for (const char* o : {"prefix", "level", "group", "snaplen", "queue-threshold", "flags"}) stmt_opt(s, v, vp, o);
  return s;
}

std::optional<Stmt> JsonParser::stmt_limit(const std::string&, const json& v, const std::string& vp, Stmt s) {
  if (v.is_string()) {
    s.kind = SK::Other;
    s.name = "limit name";
    s.opts.push_back({"name", v.get<std::string>(), loc(vp)});
    return s;
  }
  s.kind = SK::Limit;
  for (const char* o : {"rate", "per", "burst", "rate_unit", "burst_unit", "inv"}) stmt_opt(s, v, vp, o);
  return s;
}

std::optional<Stmt> JsonParser::stmt_reject(const std::string&, const json& v, const std::string& vp, Stmt s) {
  s.kind = SK::Reject;
  stmt_opt(s, v, vp, "type");
  stmt_opt(s, v, vp, "expr", "code");
  return s;
}

std::optional<Stmt> JsonParser::stmt_nat(const std::string& k, const json& v, const std::string& vp, Stmt s) {
  s.kind = SK::Nat;
  s.name = k;
  stmt_opt(s, v, vp, "family");
  stmt_opt(s, v, vp, "flags");
  stmt_opt(s, v, vp, "type_flags");
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

std::optional<Stmt> JsonParser::stmt_notrack(const std::string&, const json&, const std::string&, Stmt s) {
  s.kind = SK::Notrack;
  return s;
}

std::optional<Stmt> JsonParser::stmt_mangle(const std::string&, const json& v, const std::string& vp, Stmt s) {
  s.kind = SK::Mangle;
  if (!field(v, "key") || !field(v, "value")) {
    error(vp, "mangle needs 'key' and 'value'");
    return std::nullopt;
  }
  if (!stmt_pair(v, vp, "key", "value", s.lhs, s.rhs)) return std::nullopt;
  return s;
}

// `ct helper set "ftp"`.
std::optional<Stmt> JsonParser::stmt_ct_object(const std::string& k, const json& v, const std::string& vp, Stmt s) {
  s.kind = SK::Mangle;
  s.lhs.kind = EK::Ct;
  s.lhs.a = k.substr(3);
  s.lhs.loc = loc(vp);
  s.rhs.kind = EK::Literal;
  s.rhs.a = v.is_string() ? v.get<std::string>() : v.dump();
  s.rhs.loc = loc(vp);
  return s;
}

std::optional<Stmt> JsonParser::stmt_vmap(const std::string&, const json& v, const std::string& vp, Stmt s) {
  s.kind = SK::Vmap;
  if (!field(v, "key") || !field(v, "data")) {
    error(vp, "vmap needs 'key' and 'data'");
    return std::nullopt;
  }
  if (!stmt_pair(v, vp, "key", "data", s.lhs, s.rhs)) return std::nullopt;
  return s;
}

// Dynamic set and map updates from the packet path.
// The element's timeout and statements (limit, counter, ct count) as the
// text form's; a meter is an update of the set it names.
std::optional<Stmt> JsonParser::stmt_set_update(const std::string& k, const json& v, const std::string& vp, Stmt s) {
  s.kind = SK::SetUpdate;
  bool meter = k == "meter";
  auto op = meter ? std::optional<std::string>("update") : str(v, "op", vp);
  auto target = str(v, meter ? "name" : k == "set" ? "set" : "map", vp);
  const char* ek = meter ? "key" : "elem";
  const json* el = field(v, ek);
  if (!op || !target || !el) return std::nullopt;
  s.name = *op;
  s.target = target->starts_with("@") ? target->substr(1) : *target;
  if (meter) {
    const json* size = field(v, "size");
    s.opts.push_back(
        {"meter", size && size->is_number_unsigned() ? std::to_string(size->get<uint64_t>()) : "0", loc(vp)});
  }
  auto e = expr(*el, ptr_join(vp, ek));
  if (!e) return std::nullopt;
  if (e->kind == EK::Elem && !e->kids.empty()) {
    if (e->timeout_ms) s.opts.push_back({"timeout", std::to_string(*e->timeout_ms), loc(ptr_join(vp, ek))});
    s.lhs = std::move(e->kids[0]);  // (not e = e->kids[0]: that assigns an object from its own part)
  } else {
    s.lhs = std::move(*e);
  }
  if (const json* st = field(v, "stmt")) {
    auto one = [&](const json& j, const std::string& p) {
      if (auto x = stmt(j, p)) s.elem.push_back(std::move(*x));
    };
    if (st->is_array())
      for (size_t i = 0; i < st->size(); ++i) one((*st)[i], ptr_join(ptr_join(vp, "stmt"), i));
    else
      one(*st, ptr_join(vp, "stmt"));
  }
  return s;
}

std::optional<Stmt> JsonParser::stmt_xt(const std::string&, const json& v, const std::string& vp, Stmt s) {
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

std::optional<Stmt> JsonParser::stmt_flow(const std::string&, const json& v, const std::string& vp, Stmt s) {
  s.kind = SK::Other;
  s.name = "flow " + str(v, "op", vp, false).value_or("add");
  if (auto ft = str(v, "flowtable", vp, false)) s.opts.push_back({"flowtable", *ft, loc(vp)});
  return s;
}

// Recognised, not modelled: the capability names them.
std::optional<Stmt> JsonParser::stmt_recognised(const std::string& k, const json& v, const std::string& vp, Stmt s) {
  s.kind = SK::Other;
  s.name = k;
  if (k == "ct count" && v.is_object()) {  // {"val": N, "inv": true}
    if (const json* n = field(v, "val"); n && n->is_number_unsigned())
      s.opts.push_back({"count", std::to_string(n->get<uint64_t>()), loc(vp)});
    if (const json* i = field(v, "inv"); i && i->is_boolean() && i->get<bool>())
      s.opts.push_back({"inv", "1", loc(vp)});
  }
  return s;
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
  if (!j.is_object() || j.size() != 1) return value_expr(j, p, std::move(e));
  const std::string& k = j.begin().key();
  const json& v = j.begin().value();
  std::string vp = ptr_join(p, k);
  static const std::unordered_map<std::string_view, ExprParser> kExpressions = {
      {"payload", &JsonParser::expr_payload}, {"meta", &JsonParser::expr_meta},
      {"ct", &JsonParser::expr_ct},           {"fib", &JsonParser::expr_fib},
      {"numgen", &JsonParser::expr_hash},     {"symhash", &JsonParser::expr_hash},
      {"jhash", &JsonParser::expr_hash},      {"tcp option", &JsonParser::expr_other},
      {"exthdr", &JsonParser::expr_other},    {"sctp chunk", &JsonParser::expr_other},
      {"ip option", &JsonParser::expr_other}, {"rt", &JsonParser::expr_other},
      {"socket", &JsonParser::expr_other},    {"osf", &JsonParser::expr_other},
      {"ipsec", &JsonParser::expr_other},     {"dccp option", &JsonParser::expr_other},
      {"concat", &JsonParser::expr_concat},   {"set", &JsonParser::expr_set},
      {"map", &JsonParser::expr_map},         {"prefix", &JsonParser::expr_prefix},
      {"range", &JsonParser::expr_range},     {"&", &JsonParser::expr_binop},
      {"|", &JsonParser::expr_binop},         {"^", &JsonParser::expr_binop},
      {"<<", &JsonParser::expr_binop},        {">>", &JsonParser::expr_binop},
      {"elem", &JsonParser::expr_elem},       {"accept", &JsonParser::expr_verdict},
      {"drop", &JsonParser::expr_verdict},    {"continue", &JsonParser::expr_verdict},
      {"return", &JsonParser::expr_verdict},  {"queue", &JsonParser::expr_verdict},
      {"jump", &JsonParser::expr_verdict},    {"goto", &JsonParser::expr_verdict}};
  if (auto it = kExpressions.find(k); it != kExpressions.end()) return (this->*it->second)(k, v, vp, std::move(e));
  error(vp, "unknown expression '" + k + "'");
  return std::nullopt;
}

// Strings (values, @set references, the `*` catch-all), numbers, booleans and lists.
std::optional<Expr> JsonParser::value_expr(const json& j, const std::string& p, Expr e) {
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
  error(p, "expected an expression, found " + j.dump().substr(0, 60));
  return std::nullopt;
}

// The expressions of an array, appended to `e.kids`.
bool JsonParser::expr_kids(Expr& e, const json& arr, const std::string& ap) {
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
}

std::optional<Expr> JsonParser::expr_payload(const std::string&, const json& v, const std::string& vp, Expr e) {
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

std::optional<Expr> JsonParser::expr_meta(const std::string&, const json& v, const std::string& vp, Expr e) {
  e.kind = EK::Meta;
  auto key = str(v, "key", vp);
  if (!key) return std::nullopt;
  e.a = *key;
  return e;
}

std::optional<Expr> JsonParser::expr_ct(const std::string&, const json& v, const std::string& vp, Expr e) {
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

std::optional<Expr> JsonParser::expr_fib(const std::string&, const json& v, const std::string& vp, Expr e) {
  e.kind = EK::Fib;
  auto r = str(v, "result", vp);
  if (!r) return std::nullopt;
  e.a = *r;
  e.flags = strings(field(v, "flags"));
  return e;
}

// numgen, symhash and jhash: kept as text (their values are not modelled).
std::optional<Expr> JsonParser::expr_hash(const std::string& k, const json& v, const std::string& vp, Expr e) {
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

// Header options, extension headers, routing, socket, osf, ipsec: kept as text.
std::optional<Expr> JsonParser::expr_other(const std::string& k, const json& v, const std::string& vp, Expr e) {
  e.kind = EK::Other;
  e.a = k == "dccp option" ? "exthdr" : k;
  std::string d;
  for (const char* f : {"family", "dir", "name", "key", "field", "level", "ttl"})
    if (auto x = str(v, f, vp, false)) d += (d.empty() ? "" : " ") + *x;
  e.b = d;
  if (k == "exthdr")
    e.b = str(v, "name", vp, false).value_or("?") +
          (field(v, "field") ? " " + str(v, "field", vp, false).value_or("") : "");
  return e;
}

std::optional<Expr> JsonParser::expr_concat(const std::string&, const json& v, const std::string& vp, Expr e) {
  e.kind = EK::Concat;
  if (!expr_kids(e, v, vp)) return std::nullopt;
  return e;
}

std::optional<Expr> JsonParser::expr_set(const std::string&, const json& v, const std::string& vp, Expr e) {
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

std::optional<Expr> JsonParser::expr_map(const std::string&, const json& v, const std::string& vp, Expr e) {
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

std::optional<Expr> JsonParser::expr_prefix(const std::string&, const json& v, const std::string& vp, Expr e) {
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

std::optional<Expr> JsonParser::expr_range(const std::string&, const json& v, const std::string& vp, Expr e) {
  e.kind = EK::Range;
  if (!expr_kids(e, v, vp)) return std::nullopt;
  if (e.kids.size() != 2) {
    error(vp, "a range has two values");
    return std::nullopt;
  }
  return e;
}

std::optional<Expr> JsonParser::expr_binop(const std::string& k, const json& v, const std::string& vp, Expr e) {
  e.kind = EK::Binop;
  e.a = k;
  if (!expr_kids(e, v, vp)) return std::nullopt;
  if (e.kids.size() < 2) {
    error(vp, "'" + k + "' needs two operands");
    return std::nullopt;
  }
  return e;
}

std::optional<Expr> JsonParser::expr_elem(const std::string&, const json& v, const std::string& vp, Expr e) {
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

std::optional<Expr> JsonParser::expr_verdict(const std::string& k, const json& v, const std::string& vp, Expr e) {
  e.kind = EK::Verdict;
  e.a = k;
  if (k == "jump" || k == "goto") {
    auto t = str(v, "target", vp);
    if (!t) return std::nullopt;
    e.b = *t;
  }
  return e;
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
      if (src_.text[i] == '\n')
        ++line, col = 1, line_start = i + 1;
      else
        ++col;
    size_t line_end = src_.text.find('\n', line_start);
    std::string text =
        src_.text.substr(line_start, line_end == std::string::npos ? std::string::npos : line_end - line_start);
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
