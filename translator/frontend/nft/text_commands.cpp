// nft text commands (`add`, `delete`, `flush`, `include`, `define` ...) and
// the table, chain and set blocks.
#include <glob.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>

#include "translator/frontend/nft/text_parser.h"

namespace nf2bpf::frontend::nft_text {

// ---- commands ------------------------------------------------------------------

std::optional<TextParser::TableRef> TextParser::table_spec() {
  TableRef r;
  if (peek().kind == TK::Word && is_name(1)) {
    if (auto f = nft::family_from_name(peek().text)) {
      r.fam = *f;
      next();
    }
  }
  auto n = name("a table name");
  if (!n) return std::nullopt;
  r.name = n->text;
  r.loc = loc(*n);
  return r;
}

void TextParser::cmd_define(bool redefine) {
  auto n = name("a variable name");
  if (!n) return skip_stmt();
  if (!punct("=")) {
    error(peek(), "expected '=' after 'define " + n->text + "'", "write: define NAME = VALUE");
    return skip_stmt();
  }
  next();
  std::vector<Token> value;
  int depth = 0;
  for (;;) {
    const Token& t = peek();
    if (t.kind == TK::End) break;
    if (depth == 0 && (t.kind == TK::Newline || (t.kind == TK::Punct && (t.text == ";" || t.text == "}")))) break;
    if (t.kind == TK::Punct && t.text == "{") ++depth;
    if (t.kind == TK::Punct && t.text == "}") --depth;
    Token tok = next();
    if (tok.kind != TK::Newline && tok.kind != TK::Handle) value.push_back(std::move(tok));
  }
  if (value.empty()) {
    error(*n, "variable '" + n->text + "' has no value");
    return;
  }
  auto& scope = scopes_.back();
  if (scope.count(n->text) && !redefine) {
    // nft refuses redefinition without `redefine`; keep the first value.
    error(*n, "variable '" + n->text + "' is already defined", "use 'redefine' to change it");
    return;
  }
  scope[n->text] = std::move(value);
}

void TextParser::cmd_include(const Token& kw) {
  if (peek().kind != TK::String) {
    error(peek(), "expected a quoted file name after 'include'", "write: include \"rules.nft\"");
    return skip_stmt();
  }
  Token f = next();
  const File& from = *files_[kw.file];
  if (from.depth + 1 > opt_.max_include_depth) {
    error(f, "includes nested more than " + std::to_string(opt_.max_include_depth) + " deep",
          "is a file including itself?");
    return;
  }
  std::filesystem::path p(f.text);
  if (p.is_relative()) p = std::filesystem::path(from.dir) / p;
  std::vector<std::string> paths;
  bool pattern = f.text.find_first_of("*?[") != std::string::npos;
  if (pattern) {
    glob_t g{};
    if (::glob(p.string().c_str(), 0, nullptr, &g) == 0)
      for (size_t i = 0; i < g.gl_pathc; ++i) paths.emplace_back(g.gl_pathv[i]);
    globfree(&g);
    std::sort(paths.begin(), paths.end());
  } else {
    paths.push_back(p.lexically_normal().string());
  }
  // Later files must come after earlier ones: splice in reverse order.
  for (auto it = paths.rbegin(); it != paths.rend(); ++it) {
    Result<std::string> text = Error{ENOENT, "open"};
    if (opt_.read_file) {
      text = opt_.read_file(*it);
    } else {
      std::ifstream in(*it, std::ios::binary);
      if (in) {
        std::stringstream ss;
        ss << in.rdbuf();
        text = ss.str();
      } else {
        text = Error{errno ? errno : ENOENT, "open"};
      }
    }
    if (!text) {
      error(f,
            "cannot read included file '" + *it + "': " + std::strerror(text.error().code ? text.error().code : ENOENT),
            "include paths are relative to the including file");
      continue;
    }
    auto nf = std::make_unique<File>();
    nf->name = *it;
    nf->text = std::move(*text);
    std::filesystem::path ip(*it);
    nf->dir = ip.has_parent_path() ? ip.parent_path().string() : ".";
    nf->depth = from.depth + 1;
    files_.push_back(std::move(nf));
    index_lines(*files_.back());
    load(*files_.back());
  }
}

void TextParser::command() {
  Token kw = next();
  const std::string& w = kw.text;
  if (w == "define" || w == "redefine") return cmd_define(w == "redefine");
  if (w == "undefine") {
    if (auto n = name("a variable name"))
      for (auto& s : scopes_) s.erase(n->text);
    return;
  }
  if (w == "include") return cmd_include(kw);
  if (w == "flush") return cmd_flush();
  if (w == "add" || w == "create") return cmd_add(w == "create");
  if (w == "insert") {
    if (!word("rule")) {
      error(peek(), "expected 'rule' after 'insert'");
      return skip_stmt();
    }
    next();
    return cmd_rule(true);
  }
  if (w == "delete" || w == "destroy") return cmd_delete(w == "delete");
  if (w == "table" || w == "chain" || w == "rule" || w == "set" || w == "map" || w == "element") {
    toks_.push_front(kw);  // `table ...` is `add table ...`
    return cmd_add(false);
  }
  if (w == "replace") {
    error(kw, "'replace rule' refers to a rule handle of a running ruleset",
          "nf2bpf reads a ruleset as written; write the final rule instead");
    return skip_stmt();
  }
  if (w == "list" || w == "reset" || w == "monitor" || w == "describe" || w == "export" || w == "import" ||
      w == "rename" || w == "get") {
    error(kw, "'" + w + "' is a command for a running ruleset, not part of a ruleset file");
    return skip_stmt();
  }
  error(kw, "unknown command " + describe(kw),
        "a ruleset file holds table blocks, add/insert/delete/flush commands, define and include");
  skip_stmt();
}

void TextParser::cmd_add(bool create) {
  Token what = next();
  const std::string& w = what.text;
  if (what.kind != TK::Word) {
    error(what, "expected what to add (table, chain, rule, set, map, element), found " + describe(what));
    return skip_stmt();
  }
  if (w == "table") return cmd_table(create);
  if (w == "rule") return cmd_rule(false);
  if (w == "chain") {
    auto t = table_spec();
    if (!t) return skip_stmt();
    auto n = name("a chain name");
    if (!n) return skip_stmt();
    return chain_block(*t, *n, create);
  }
  if (w == "set" || w == "map") {
    auto t = table_spec();
    if (!t) return skip_stmt();
    auto n = name(w == "set" ? "a set name" : "a map name");
    if (!n) return skip_stmt();
    return set_block(*t, *n, w == "map", create);
  }
  if (w == "element") {
    auto t = table_spec();
    if (!t) return skip_stmt();
    auto n = name("a set name");
    if (!n) return skip_stmt();
    auto set = parse_set_expr();
    if (!set) return skip_stmt();
    if (ir::Table* tab = table(*t)) b_.add_elements(*tab, n->text, set->kids, loc(*n));
    return;
  }
  if (w == "counter" || w == "quota" || w == "limit" || w == "ct" || w == "flowtable" || w == "secmark" ||
      w == "synproxy" || w == "tunnel") {
    // Stateful objects: only statements referencing them matter (reported there).
    return skip_object();
  }
  error(what, "cannot add " + describe(what), "add table, chain, rule, set, map or element");
  skip_stmt();
}

void TextParser::cmd_table(bool create) {
  auto t = table_spec();
  if (!t) return skip_stmt();
  if (!b_.add_table(t->fam, t->name, t->loc, create)) return skip_stmt();
  if (punct("{")) table_block(*t);
}

void TextParser::skip_object() {
  while (!at_stmt_end() && !punct("{")) next();
  if (punct("{")) skip_block();
}

void TextParser::table_block(const TableRef& t) {
  next();  // {
  scopes_.emplace_back();
  for (;;) {
    skip_separators();
    const Token& tok = peek();
    if (tok.kind == TK::End) {
      error(tok, "missing '}' at the end of table '" + t.name + "'");
      break;
    }
    if (tok.kind == TK::Punct && tok.text == "}") {
      next();
      break;
    }
    if (tok.kind != TK::Word) {
      error(tok, "unexpected " + describe(tok) + " in table '" + t.name + "'");
      skip_stmt();
      if (punct("}") && scopes_.size() > 1) continue;
      continue;
    }
    Token kw = next();
    const std::string& w = kw.text;
    if (w == "chain") {
      if (auto n = name("a chain name"))
        chain_block(t, *n, false);
      else
        skip_stmt();
    } else if (w == "set" || w == "map") {
      if (auto n = name("a set name"))
        set_block(t, *n, w == "map", false);
      else
        skip_stmt();
    } else if (w == "flags") {
      while (!at_stmt_end()) {
        Token f = next();
        if (f.kind == TK::Word && f.text == "dormant")
          if (ir::Table* tab = table(t)) b_.set_dormant(*tab, loc(f));
      }
    } else if (w == "comment") {
      skip_stmt();
    } else if (w == "define" || w == "redefine") {
      cmd_define(w == "redefine");
    } else if (w == "include") {
      cmd_include(kw);
    } else if (w == "counter" || w == "quota" || w == "limit" || w == "ct" || w == "flowtable" || w == "secmark" ||
               w == "synproxy" || w == "tunnel") {
      skip_object();
    } else {
      error(kw, "unexpected " + describe(kw) + " in table '" + t.name + "'",
            "a table holds chain, set, map, flowtable and object blocks");
      skip_stmt();
    }
  }
  scopes_.pop_back();
}

void TextParser::chain_type(nft::ChainSpec& spec, const TableRef& t) {
  Token kw = next();  // type
  auto ty = name("a chain type");
  if (!ty) return skip_stmt();
  spec.type_loc = loc(*ty);
  if (ty->text == "filter")
    spec.type = ir::ChainType::Filter;
  else if (ty->text == "nat")
    spec.type = ir::ChainType::Nat;
  else if (ty->text == "route")
    spec.type = ir::ChainType::Route;
  else {
    error(*ty, "unknown chain type '" + ty->text + "'", "chain types are filter, nat and route");
    return skip_stmt();
  }
  if (!word("hook")) {
    error(peek(), "expected 'hook' after 'type " + ty->text + "'", "write: type filter hook input priority filter;");
    return skip_stmt();
  }
  next();
  auto h = name("a hook name");
  if (!h) return skip_stmt();
  spec.hook_loc = loc(*h);
  spec.hook_name = h->text;
  spec.hook = ir::hook_from_string(h->text);
  if (word("device")) {
    next();
    if (auto d = name("a device name")) spec.device = d->text;
  }
  if (word("devices")) {
    next();
    if (punct("=")) next();
    if (punct("{")) skip_block();
  }
  if (!word("priority")) {
    error(peek(), "expected 'priority' after the hook", "write: type filter hook input priority filter;");
    return skip_stmt();
  }
  next();
  Token first = peek();
  std::string text;
  while (!at_stmt_end()) text += next().text;
  spec.priority_loc = span(first);
  if (text.empty()) {
    error(first, "expected a priority after 'priority'", "a number or filter, raw, mangle, dstnat, srcnat, security");
    return;
  }
  // "-10", "filter", "filter-10", "dstnat+5"
  uint64_t n = 0;
  bool neg = text[0] == '-';
  if (nft::parse_number(neg ? text.substr(1) : text, 0x7fffffff, n)) {
    spec.priority = neg ? -(int)n : (int)n;
    return;
  }
  size_t i = 0;
  while (i < text.size() && std::isalpha((unsigned char)text[i])) ++i;
  std::string base = text.substr(0, i);
  auto p = nft::priority_from_name(base, t.fam, spec.hook);
  int off = 0;
  bool ok = p.has_value();
  if (ok && i < text.size()) {
    ok = (text[i] == '+' || text[i] == '-') && nft::parse_number(text.substr(i + 1), 0x7fffffff, n);
    off = text[i] == '-' ? -(int)n : (int)n;
  }
  if (!ok) {
    error(first, "invalid priority '" + text + "'",
          t.fam == ir::Family::Bridge ? "use a number or dstnat, filter, out, srcnat (+/- N)"
                                      : "use a number or raw, mangle, dstnat, filter, security, srcnat (+/- N)");
    return;
  }
  spec.priority = *p + off;
  (void)kw;
}

void TextParser::chain_block(const TableRef& t, const Token& n, bool create) {
  ir::SourceLoc nloc = loc(n);
  if (!punct("{")) {
    if (ir::Table* tab = table(t)) b_.add_chain(*tab, n.text, nloc, nullptr, create);
    return;
  }
  next();
  scopes_.emplace_back();
  nft::ChainSpec spec;
  bool created = false, have_spec = false;
  auto ensure = [&] {
    if (created) return;
    created = true;
    if (ir::Table* tab = table(t)) b_.add_chain(*tab, n.text, nloc, have_spec ? &spec : nullptr, create);
  };
  for (;;) {
    skip_separators();
    const Token& tok = peek();
    if (tok.kind == TK::End) {
      error(tok, "missing '}' at the end of chain '" + n.text + "'");
      break;
    }
    if (tok.kind == TK::Punct && tok.text == "}") {
      next();
      break;
    }
    if (word("type") && peek(1).kind == TK::Word &&
        (word("filter", 1) || word("nat", 1) || word("route", 1) || word("hook", 2))) {
      Token type_tok = tok;  // chain_type consumes the token `tok` refers to
      size_t before = diag_.errors();
      chain_type(spec, t);
      // A bad spec is reported once; the chain still collects its rules.
      have_spec = diag_.errors() == before;
      if (!have_spec) spec = nft::ChainSpec{};
      if (created) {
        error(type_tok, "the chain's type comes after its rules", "put 'type ... hook ... priority ...;' first");
      }
      continue;
    }
    if (word("policy")) {
      next();
      auto p = name("a policy");
      if (!p) {
        skip_stmt();
        continue;
      }
      spec.policy_loc = loc(*p);
      if (p->text == "accept")
        spec.policy = ir::VerdictKind::Accept;
      else if (p->text == "drop")
        spec.policy = ir::VerdictKind::Drop;
      else {
        error(*p, "invalid policy '" + p->text + "'", "a base chain's policy is accept or drop");
        continue;
      }
      have_spec = true;
      if (created)
        if (ir::Table* tab = table(t)) b_.add_chain(*tab, n.text, nloc, &spec, false);
      continue;
    }
    if (word("comment") && peek(1).kind == TK::String) {
      next();
      next();
      continue;
    }
    if (word("devices") || (word("device") && is_name(1))) {
      skip_stmt();
      continue;
    }
    if (word("define") || word("redefine")) {
      Token kw = next();
      cmd_define(kw.text == "redefine");
      continue;
    }
    if (word("include")) {
      Token kw = next();
      cmd_include(kw);
      continue;
    }
    ensure();
    cur_fam_ = t.fam;
    cur_table_ = t.name;
    cur_chain_ = n.text;
    auto r = parse_rule();
    if (!r) continue;
    if (ir::Table* tab = table(t)) b_.add_rule(*tab, n.text, *r, nft::RulePos{}, nloc);
  }
  ensure();
  scopes_.pop_back();
}

void TextParser::set_block(const TableRef& t, const Token& n, bool is_map, bool create) {
  nft::SetDecl d;
  d.name = n.text;
  d.is_map = is_map;
  d.loc = loc(n);
  if (!expect_punct("{", "to open the set")) return skip_stmt();
  for (;;) {
    skip_separators();
    const Token& tok = peek();
    if (tok.kind == TK::End) {
      error(tok, "missing '}' at the end of set '" + n.text + "'");
      break;
    }
    if (tok.kind == TK::Punct && tok.text == "}") {
      next();
      break;
    }
    Token kw = next();
    const std::string& w = kw.text;
    if (kw.kind != TK::Word) {
      error(kw, "unexpected " + describe(kw) + " in set '" + n.text + "'");
      skip_stmt();
      continue;
    }
    if (w == "type") {
      d.type_loc = loc(peek());
      bool data = false;
      while (!at_stmt_end()) {
        Token x = next();
        std::string s = x.text;
        if (s == ".") continue;
        if (s == ":") {
          data = true;
          continue;
        }
        bool colon = s.size() > 1 && s.back() == ':';
        if (colon) s.pop_back();
        if (data)
          d.data_type += (d.data_type.empty() ? "" : " ") + s;
        else
          d.key_types.push_back(s);
        if (colon) data = true;
      }
      if (d.key_types.empty())
        error(kw, "expected a type after 'type'", "e.g. type ipv4_addr; or type ipv4_addr . inet_service");
    } else if (w == "typeof") {
      d.type_loc = loc(peek());
      for (;;) {
        auto e = parse_primary();
        if (!e) {
          error(peek(), "expected an expression after 'typeof', found " + describe(peek()));
          skip_stmt();
          break;
        }
        d.typeof_key.push_back(*e);
        if (word(".")) {
          next();
          continue;
        }
        break;
      }
      if (word(":")) {
        next();
        if (word("verdict")) {
          next();
          d.data_type = "verdict";
        } else if (auto e = parse_primary()) {
          d.typeof_data = *e;
          d.data_type = "typeof";
        }
      }
    } else if (w == "flags") {
      while (!at_stmt_end()) {
        Token f = next();
        if (f.kind == TK::Word) d.flags.push_back(f.text);
      }
    } else if (w == "timeout") {
      Token v = next();
      auto ms = nft::parse_time_ms(v.text);
      if (!ms) error(v, "invalid timeout '" + v.text + "'", "write e.g. 30s, 5m, 1h, 1d");
      d.timeout_ms = ms;
    } else if (w == "elements") {
      if (!expect_punct("=", "after 'elements'")) {
        skip_stmt();
        continue;
      }
      auto s = parse_set_expr();
      if (!s) {
        skip_stmt();
        continue;
      }
      d.has_elements = true;
      for (auto& e : s->kids) d.elements.push_back(std::move(e));
    } else if (w == "size" || w == "gc-interval" || w == "policy" || w == "comment" || w == "counter" ||
               w == "auto-merge" || w == "define") {
      skip_stmt();
    } else {
      error(kw, "unexpected " + describe(kw) + " in set '" + n.text + "'",
            "a set holds type/typeof, flags, timeout, size, policy and elements");
      skip_stmt();
    }
  }
  if (ir::Table* tab = table(t)) b_.add_set(*tab, d, create);
}

void TextParser::cmd_rule(bool insert) {
  auto t = table_spec();
  if (!t) return skip_stmt();
  auto c = name("a chain name");
  if (!c) return skip_stmt();
  nft::RulePos pos;
  pos.kind = insert ? nft::RulePos::Kind::Prepend : nft::RulePos::Kind::Append;
  if (word("position") || word("handle") || word("index")) {
    Token k = next();
    Token v = next();
    uint64_t n;
    if (!nft::parse_number(v.text, UINT64_MAX, n)) {
      error(v, "expected a number after '" + k.text + "'");
      return skip_stmt();
    }
    pos.kind = k.text == "index" ? nft::RulePos::Kind::Index : nft::RulePos::Kind::Handle;
    pos.n = n;
    pos.after = !insert;
    pos.loc = loc(k);
  }
  cur_fam_ = t->fam;
  cur_table_ = t->name;
  cur_chain_ = c->text;
  auto r = parse_rule();
  if (!r) return;
  if (ir::Table* tab = table(*t)) b_.add_rule(*tab, c->text, *r, pos, loc(*c));
}

void TextParser::cmd_delete(bool must_exist) {
  Token what = next();
  const std::string& w = what.text;
  if (w == "table") {
    auto t = table_spec();
    if (!t) return skip_stmt();
    b_.delete_table(t->fam, t->name, t->loc, must_exist);
    if (punct("{")) skip_block();
    return;
  }
  if (w == "chain" || w == "set" || w == "map" || w == "rule" || w == "element") {
    auto t = table_spec();
    if (!t) return skip_stmt();
    auto n = name("a name");
    if (!n) return skip_stmt();
    ir::Table* tab = must_exist ? table(*t) : b_.find_table(t->fam, t->name, t->loc, false);
    if (w == "rule") {
      if (!word("handle")) {
        error(peek(), "expected 'handle N' after the chain name", "rules are deleted by handle");
        return skip_stmt();
      }
      next();
      Token v = next();
      uint64_t h;
      if (!nft::parse_number(v.text, UINT64_MAX, h)) {
        error(v, "expected a rule handle");
        return skip_stmt();
      }
      if (tab) b_.delete_rule(*tab, n->text, h, loc(v));
      return;
    }
    if (w == "element") {
      auto set = parse_set_expr();
      if (!set) return skip_stmt();
      if (tab) b_.add_elements(*tab, n->text, set->kids, loc(*n), true);
      return;
    }
    if (tab && w == "chain") b_.delete_chain(*tab, n->text, loc(*n), must_exist);
    if (tab && (w == "set" || w == "map")) b_.delete_set(*tab, n->text, loc(*n), must_exist);
    if (punct("{")) skip_block();
    return;
  }
  skip_object();
}

void TextParser::cmd_flush() {
  Token what = next();
  const std::string& w = what.text;
  if (w == "ruleset") {
    if (peek().kind == TK::Word)
      if (auto f = nft::family_from_name(peek().text)) {
        next();
        std::vector<std::string> names;
        for (const auto& t : rs_.tables)
          if (t.family == *f) names.push_back(t.name);
        for (const auto& n : names) b_.delete_table(*f, n, loc(what), false);
        return;
      }
    b_.flush_ruleset();
    return;
  }
  if (w == "table") {
    auto t = table_spec();
    if (!t) return skip_stmt();
    if (ir::Table* tab = table(*t)) b_.flush_table(*tab);
    return;
  }
  if (w == "chain" || w == "set" || w == "map") {
    auto t = table_spec();
    if (!t) return skip_stmt();
    auto n = name("a name");
    if (!n) return skip_stmt();
    ir::Table* tab = table(*t);
    if (!tab) return;
    if (w == "chain") {
      if (ir::Chain* c = b_.find_chain(*tab, n->text, loc(*n))) b_.flush_chain(*c);
    } else {
      b_.flush_set(*tab, n->text, loc(*n));
    }
    return;
  }
  skip_object();
}

}  // namespace nf2bpf::frontend::nft_text
