// nft's text syntax: `nft list ruleset` output and files for `nft -f`.
// Tokens become syntax trees (ast.h); the Builder applies the commands.
#include <glob.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include "translator/frontend/nft/builder.h"
#include "translator/frontend/nft/lexer.h"
#include "translator/frontend/nft/lower.h"
#include "translator/frontend/nft/nft.h"

namespace nf2bpf::frontend {

using nft::Expr;
using nft::Stmt;
using nft::Token;
using TK = nft::Token::Kind;
using EK = nft::Expr::Kind;
using SK = nft::Stmt::Kind;

namespace {

struct File {
  std::string name;  // as shown in locations
  std::string text;
  std::vector<std::string_view> lines;
  std::string dir;   // for relative includes
  unsigned depth = 0;
};

const char* const kVerdictWords[] = {"accept", "drop", "continue", "return", "jump", "goto"};

bool is_verdict_word(std::string_view w) {
  for (auto v : kVerdictWords)
    if (w == v) return true;
  return false;
}

// Payload fields by protocol; fields not listed are syntax errors.
const std::map<std::string, std::vector<std::string>, std::less<>> kFields = {
    {"ip", {"version", "hdrlength", "dscp", "ecn", "length", "id", "frag-off", "ttl", "protocol", "checksum", "saddr", "daddr"}},
    {"ip6", {"version", "dscp", "ecn", "flowlabel", "length", "nexthdr", "hoplimit", "saddr", "daddr"}},
    {"tcp", {"sport", "dport", "sequence", "ackseq", "doff", "reserved", "flags", "window", "checksum", "urgptr"}},
    {"udp", {"sport", "dport", "length", "checksum"}},
    {"udplite", {"sport", "dport", "csumcov", "checksum"}},
    {"sctp", {"sport", "dport", "vtag", "checksum"}},
    {"dccp", {"sport", "dport", "type"}},
    {"th", {"sport", "dport"}},
    {"icmp", {"type", "code", "checksum", "id", "sequence", "gateway", "mtu"}},
    {"icmpv6", {"type", "code", "checksum", "id", "sequence", "mtu", "max-delay", "parameter"}},
    {"igmp", {"type", "mrt", "checksum", "group"}},
    {"ether", {"saddr", "daddr", "type"}},
    {"vlan", {"id", "cfi", "dei", "pcp", "type"}},
    {"arp", {"htype", "ptype", "hlen", "plen", "operation", "saddr", "daddr"}},
    {"ah", {"nexthdr", "hdrlength", "reserved", "spi", "sequence"}},
    {"esp", {"spi", "sequence"}},
    {"comp", {"nexthdr", "flags", "cpi"}},
    {"gre", {"version", "flags", "protocol"}},
};

const char* const kExthdrs[] = {"hbh", "frag", "dst", "mh", "srh", "rt0", "rt2", "exthdr"};

const char* const kUnqualifiedMeta[] = {
    "mark", "iif", "iifname", "iiftype", "oif", "oifname", "oiftype", "skuid", "skgid", "nftrace", "rtclassid",
    "ibriport", "obriport", "ibrname", "obrname", "pkttype", "cpu", "iifgroup", "oifgroup", "cgroup", "time",
    "day", "hour", "iifkind", "oifkind", "priority", "random", "secmark"};

const char* const kCtKeys[] = {"state", "status", "mark", "direction", "expiration", "helper", "l3proto",
                               "protocol", "saddr", "daddr", "proto-src", "proto-dst", "zone", "label",
                               "bytes", "packets", "avgpkt", "id", "event", "secmark", "timeout",
                               "expectation"};

template <size_t N>
bool one_of(std::string_view w, const char* const (&list)[N]) {
  for (const char* x : list)
    if (w == x) return true;
  return false;
}

class TextParser {
 public:
  TextParser(const Source& src, diag::Diagnostics& d, const NftTextOptions& opt)
      : diag_(d), opt_(opt), b_(rs_, d, [this](const ir::SourceLoc& l) { return line_of(l); }) {
    auto f = std::make_unique<File>();
    f->name = src.name;
    f->text = src.text;
    std::filesystem::path p(src.name == "<stdin>" ? "" : src.name);
    f->dir = p.has_parent_path() ? p.parent_path().string() : ".";
    files_.push_back(std::move(f));
    index_lines(*files_.back());
  }

  ir::Ruleset run();

 private:
  // ---- tokens -------------------------------------------------------------
  void index_lines(File& f) {
    Source s{f.name, ""};
    std::string_view t = f.text;
    size_t pos = 0;
    while (pos <= t.size()) {
      size_t nl = t.find('\n', pos);
      size_t end = nl == std::string_view::npos ? t.size() : nl;
      std::string_view l = t.substr(pos, end - pos);
      if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
      f.lines.push_back(l);
      if (nl == std::string_view::npos) break;
      pos = nl + 1;
    }
    by_name_[f.name] = &f;
  }

  bool load(File& f) {
    std::vector<nft::LexError> errs;
    auto toks = nft::lex(f.text, (uint32_t)(files_.size() - 1), errs);
    for (const auto& e : errs)
      diag_.error(ir::SourceLoc{f.name, e.line, e.col, e.len, {}}, e.message, e.hint,
                  e.line <= f.lines.size() ? std::string(f.lines[e.line - 1]) : std::string());
    toks.pop_back();  // End
    Token nl;
    nl.kind = TK::Newline;
    nl.file = (uint32_t)(files_.size() - 1);
    toks.push_back(nl);
    toks_.insert(toks_.begin(), toks.begin(), toks.end());
    return errs.empty();
  }

  std::string line_of(const ir::SourceLoc& l) const {
    auto it = by_name_.find(l.file);
    if (it == by_name_.end() || l.line == 0 || l.line > it->second->lines.size()) return {};
    return std::string(it->second->lines[l.line - 1]);
  }

  ir::SourceLoc loc(const Token& t) const {
    return {files_[t.file]->name, t.line, t.col, t.len, {}};
  }

  void expand(size_t i) {
    Token var = toks_[i];
    const std::vector<Token>* def = nullptr;
    for (auto it = scopes_.rbegin(); it != scopes_.rend() && !def; ++it)
      if (auto f = it->find(var.text); f != it->end()) def = &f->second;
    toks_.erase(toks_.begin() + (long)i);
    if (!def) {
      error(var, "undefined variable '$" + var.text + "'", "define it first: define " + var.text + " = ...");
      Token w = var;
      w.kind = TK::Word;
      w.text = "$" + var.text;
      toks_.insert(toks_.begin() + (long)i, w);
      return;
    }
    std::vector<Token> copy;
    for (Token t : *def) {
      t.file = var.file;
      t.line = var.line;
      t.col = var.col;
      t.len = var.len;
      t.via = var.text;
      copy.push_back(std::move(t));
    }
    toks_.insert(toks_.begin() + (long)i, copy.begin(), copy.end());
  }

  const Token& peek(size_t k = 0) {
    for (size_t i = 0;; ++i) {
      while (i < toks_.size() && toks_[i].kind == TK::Var) expand(i);
      if (i >= toks_.size()) return end_;
      if (i == k) return toks_[i];
    }
  }
  Token next() {
    const Token& t = peek();
    if (t.kind == TK::End) return t;
    Token out = toks_.front();
    toks_.pop_front();
    last_ = out;
    return out;
  }
  bool word(std::string_view w, size_t k = 0) {
    const Token& t = peek(k);
    return t.kind == TK::Word && t.text == w;
  }
  bool punct(std::string_view p, size_t k = 0) {
    const Token& t = peek(k);
    return t.kind == TK::Punct && t.text == p;
  }
  bool is_name(size_t k = 0) {
    auto kind = peek(k).kind;
    return kind == TK::Word || kind == TK::String;
  }
  bool at_stmt_end() {
    const Token& t = peek();
    return t.kind == TK::Newline || t.kind == TK::End || (t.kind == TK::Punct && (t.text == ";" || t.text == "}"));
  }
  void skip_separators() {
    while (peek().kind == TK::Newline || peek().kind == TK::Handle || punct(";")) next();
  }
  // Error recovery: to the end of the statement, over balanced braces.
  void skip_stmt() {
    int depth = 0;
    for (;;) {
      const Token& t = peek();
      if (t.kind == TK::End) return;
      if (depth == 0 && (t.kind == TK::Newline || (t.kind == TK::Punct && (t.text == ";" || t.text == "}")))) return;
      if (t.kind == TK::Punct && (t.text == "{" || t.text == "(")) ++depth;
      if (t.kind == TK::Punct && (t.text == "}" || t.text == ")")) --depth;
      next();
    }
  }
  void skip_block() {  // at '{': to after the matching '}'
    int depth = 0;
    do {
      const Token& t = peek();
      if (t.kind == TK::End) return;
      if (t.kind == TK::Punct && t.text == "{") ++depth;
      if (t.kind == TK::Punct && t.text == "}") --depth;
      next();
    } while (depth > 0);
  }

  void error(const Token& t, std::string msg, std::string hint = {}) {
    if (!t.via.empty()) msg += " (from $" + t.via + ")";
    ir::SourceLoc l = loc(t);
    if (t.kind == TK::End && t.line == 0) l = loc(last_);
    diag_.error(l, std::move(msg), std::move(hint), line_of(l));
  }
  std::string describe(const Token& t) {
    switch (t.kind) {
      case TK::Newline: return "end of line";
      case TK::End: return "end of input";
      case TK::String: return "\"" + t.text + "\"";
      default: return "'" + t.text + "'";
    }
  }
  bool expect_punct(std::string_view p, std::string_view what) {
    if (punct(p)) {
      next();
      return true;
    }
    error(peek(), "expected '" + std::string(p) + "' " + std::string(what) + ", found " + describe(peek()));
    return false;
  }
  std::optional<Token> name(std::string_view what) {
    if (is_name()) return next();
    error(peek(), "expected " + std::string(what) + ", found " + describe(peek()));
    return std::nullopt;
  }

  // ---- commands -----------------------------------------------------------
  struct TableRef {
    ir::Family fam = ir::Family::Ip;
    std::string name;
    ir::SourceLoc loc;
  };
  std::optional<TableRef> table_spec();
  ir::Table* table(const TableRef& r) { return b_.find_table(r.fam, r.name, r.loc); }

  void command();
  void cmd_define(bool redefine);
  void cmd_include(const Token& kw);
  void cmd_table(bool create);
  void cmd_add(bool create);
  void cmd_rule(bool insert);
  void cmd_delete(bool must_exist);
  void cmd_flush();
  void table_block(const TableRef& t);
  void chain_block(const TableRef& t, const Token& name, bool create);
  void chain_type(nft::ChainSpec& spec, const TableRef& t);
  void set_block(const TableRef& t, const Token& name, bool is_map, bool create);
  void skip_object();

  // ---- rules --------------------------------------------------------------
  std::optional<nft::RuleAst> parse_rule();
  bool parse_stmt(nft::RuleAst& r);
  std::optional<Expr> parse_primary();
  std::optional<Expr> parse_lhs(bool with_binop = true, bool value_ok = false);
  std::optional<Expr> parse_operand();
  std::optional<Expr> parse_value();
  std::optional<Expr> parse_value_or();
  std::optional<Expr> parse_rhs_component(bool list_ok);
  std::optional<Expr> parse_rhs(bool list_ok);
  std::optional<Expr> parse_set_expr();
  std::optional<Expr> parse_element();
  std::optional<Expr> parse_map_data();
  bool parse_nat(Stmt& s);
  void consume_words(Stmt& s, size_t max);

  Expr make(EK k, const Token& t, std::string a = {}, std::string b = {}) {
    Expr e;
    e.kind = k;
    e.a = std::move(a);
    e.b = std::move(b);
    e.loc = loc(t);
    return e;
  }
  // A location covering tokens from `from` to the last consumed one (same line).
  ir::SourceLoc span(const Token& from) {
    ir::SourceLoc l = loc(from);
    if (last_.file == from.file && last_.line == from.line && last_.col >= from.col && !last_.via.size())
      l.len = last_.col + last_.len - from.col;
    return l;
  }

  diag::Diagnostics& diag_;
  const NftTextOptions& opt_;
  ir::Ruleset rs_;
  nft::Builder b_;
  std::vector<std::unique_ptr<File>> files_;
  std::map<std::string, File*> by_name_;
  std::deque<Token> toks_;
  std::vector<std::map<std::string, std::vector<Token>>> scopes_{1};
  Token end_, last_;
  // Where the rule being parsed lives (for on_rule).
  ir::Family cur_fam_ = ir::Family::Ip;
  std::string cur_table_, cur_chain_;
};

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
      error(f, "cannot read included file '" + *it + "': " + std::strerror(text.error().code ? text.error().code : ENOENT),
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
      if (auto n = name("a chain name")) chain_block(t, *n, false);
      else skip_stmt();
    } else if (w == "set" || w == "map") {
      if (auto n = name("a set name")) set_block(t, *n, w == "map", false);
      else skip_stmt();
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
    } else if (w == "counter" || w == "quota" || w == "limit" || w == "ct" || w == "flowtable" ||
               w == "secmark" || w == "synproxy" || w == "tunnel") {
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
  if (ty->text == "filter") spec.type = ir::ChainType::Filter;
  else if (ty->text == "nat") spec.type = ir::ChainType::Nat;
  else if (ty->text == "route") spec.type = ir::ChainType::Route;
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
    if (word("type") && peek(1).kind == TK::Word && (word("filter", 1) || word("nat", 1) || word("route", 1) || word("hook", 2))) {
      size_t before = diag_.errors();
      chain_type(spec, t);
      // A bad spec is reported once; the chain still collects its rules.
      have_spec = diag_.errors() == before;
      if (!have_spec) spec = nft::ChainSpec{};
      if (created) {
        error(tok, "the chain's type comes after its rules", "put 'type ... hook ... priority ...;' first");
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
      if (p->text == "accept") spec.policy = ir::VerdictKind::Accept;
      else if (p->text == "drop") spec.policy = ir::VerdictKind::Drop;
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
        if (data) d.data_type += (d.data_type.empty() ? "" : " ") + s;
        else d.key_types.push_back(s);
        if (colon) data = true;
      }
      if (d.key_types.empty()) error(kw, "expected a type after 'type'", "e.g. type ipv4_addr; or type ipv4_addr . inet_service");
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

// ---- rules ---------------------------------------------------------------------

std::optional<nft::RuleAst> TextParser::parse_rule() {
  nft::RuleAst r;
  const Token& first = peek();
  r.loc = loc(first);
  r.loc.len = 0;
  r.text = line_of(r.loc);
  r.line_text = r.text;
  bool ok = true;
  while (!at_stmt_end()) {
    if (peek().kind == TK::Handle) {
      uint64_t h;
      if (nft::parse_number(next().text, UINT64_MAX, h)) r.handle = h;
      continue;
    }
    if (!parse_stmt(r)) {
      ok = false;
      skip_stmt();
      break;
    }
  }
  if (r.stmts.empty() && ok) {
    error(peek(), "empty rule");
    return std::nullopt;
  }
  if (!ok) return std::nullopt;
  if (opt_.on_rule) opt_.on_rule(cur_fam_, cur_table_, cur_chain_, r);
  return r;
}

void TextParser::consume_words(Stmt& s, size_t max) {
  for (size_t i = 0; i < max && !at_stmt_end() && peek().kind != TK::Handle; ++i) {
    const Token& t = peek();
    if (t.kind == TK::Word && (is_verdict_word(t.text) || t.text == "counter" || t.text == "comment" ||
                               t.text == "log" || t.text == "meta"))
      break;
    Token w = next();
    s.opts.push_back({w.text, "", loc(w)});
  }
}

bool TextParser::parse_stmt(nft::RuleAst& r) {
  const Token& t0 = peek();
  if (t0.kind != TK::Word) {
    error(t0, "unexpected " + describe(t0), "a rule is a sequence of matches and statements, e.g. tcp dport 22 accept");
    return false;
  }
  Token kw = t0;
  const std::string w = kw.text;
  Stmt s;
  s.loc = loc(kw);

  auto done = [&]() {
    s.loc = span(kw);
    r.stmts.push_back(std::move(s));
    return true;
  };

  if (w == "accept" || w == "drop" || w == "continue" || w == "return") {
    next();
    s.kind = SK::Verdict;
    s.name = w;
    return done();
  }
  if (w == "jump" || w == "goto") {
    next();
    auto c = name("a chain name after '" + w + "'");
    if (!c) return false;
    s.kind = SK::Verdict;
    s.name = w;
    s.target = c->text;
    return done();
  }
  if (w == "queue") {
    next();
    s.kind = SK::Queue;
    while (!at_stmt_end() && (word("num") || word("to") || word("flags") || word("bypass") || word("fanout"))) {
      Token k = next();
      std::string v;
      if (k.text == "num" || k.text == "to") v = next().text;
      if (k.text == "flags")
        while (!at_stmt_end() && (word("bypass") || word("fanout") || punct(","))) v += next().text;
      s.opts.push_back({k.text, v, loc(k)});
    }
    return done();
  }
  if (w == "reject") {
    next();
    s.kind = SK::Reject;
    if (word("with")) {
      next();
      Token ty = next();
      if (ty.text == "tcp") {
        if (!word("reset")) {
          error(peek(), "expected 'reset' after 'reject with tcp'");
          return false;
        }
        next();
        s.opts.push_back({"type", "tcp reset", loc(ty)});
      } else if (ty.text == "icmp" || ty.text == "icmpv6" || ty.text == "icmp6" || ty.text == "icmpx") {
        s.opts.push_back({"type", ty.text == "icmp6" ? "icmpv6" : ty.text, loc(ty)});
        if (word("type")) next();
        auto code = name("a reject code");
        if (!code) return false;
        s.opts.push_back({"code", code->text, loc(*code)});
      } else {
        error(ty, "unknown reject type " + describe(ty), "use icmp, icmpv6, icmpx or tcp reset");
        return false;
      }
    }
    return done();
  }
  if (w == "counter") {
    next();
    s.kind = SK::Counter;
    if (word("name") || (peek().kind == TK::String)) {
      if (word("name")) next();
      auto n = name("a counter name");
      if (!n) return false;
      s.opts.push_back({"name", n->text, loc(*n)});
      return done();
    }
    while (word("packets") || word("bytes")) {
      Token k = next();
      Token v = next();
      s.opts.push_back({k.text, v.text, loc(v)});
    }
    return done();
  }
  if (w == "log") {
    next();
    s.kind = SK::Log;
    for (;;) {
      if (word("prefix") || word("level") || word("group") || word("snaplen") || word("queue-threshold")) {
        Token k = next();
        if (!is_name()) {
          error(peek(), "expected a value after 'log " + k.text + "'");
          return false;
        }
        Token v = next();
        s.opts.push_back({k.text, v.text, loc(v)});
        continue;
      }
      if (word("flags")) {
        Token k = next();
        std::string v;
        while (!at_stmt_end() && (punct(",") || word("tcp") || word("ip") || word("sequence") || word("options") ||
                                  word("skuid") || word("ether") || word("all")))
        {
          bool glue = v.empty() || last_.text == "," || punct(",");
          v += (glue ? "" : " ") + next().text;
        }
        s.opts.push_back({k.text, v, loc(k)});
        continue;
      }
      break;
    }
    return done();
  }
  if (w == "limit") {
    next();
    s.kind = SK::Limit;
    if (word("name")) {
      next();
      auto n = name("a limit name");
      if (!n) return false;
      s.kind = SK::Other;
      s.name = "limit name";
      s.opts.push_back({"name", n->text, loc(*n)});
      return done();
    }
    if (!word("rate")) {
      error(peek(), "expected 'rate' after 'limit'", "write limit rate 10/second");
      return false;
    }
    next();
    if (word("over")) {
      s.opts.push_back({"inv", "1", loc(next())});
    } else if (word("until")) {
      next();
    }
    Token rt = next();
    std::string rate = rt.text, per;
    if (auto slash = rate.find('/'); slash != std::string::npos) {
      per = rate.substr(slash + 1);
      rate = rate.substr(0, slash);
    } else {
      Token u = next();
      auto slash2 = u.text.find('/');
      if (slash2 == std::string::npos) {
        error(u, "expected UNIT/TIME after the rate", "write limit rate 10 mbytes/second");
        return false;
      }
      s.opts.push_back({"rate_unit", u.text.substr(0, slash2), loc(u)});
      per = u.text.substr(slash2 + 1);
    }
    s.opts.push_back({"rate", rate, loc(rt)});
    s.opts.push_back({"per", per, loc(rt)});
    if (word("burst")) {
      next();
      Token b = next();
      s.opts.push_back({"burst", b.text, loc(b)});
      if (word("packets") || word("bytes") || word("kbytes") || word("mbytes")) s.opts.push_back({"burst_unit", next().text, loc(b)});
    }
    return done();
  }
  if (w == "notrack") {
    next();
    s.kind = SK::Notrack;
    return done();
  }
  if (w == "dnat" || w == "snat" || w == "masquerade" || w == "redirect") {
    next();
    s.kind = SK::Nat;
    s.name = w;
    if (!parse_nat(s)) return false;
    return done();
  }
  if (w == "comment") {
    next();
    if (!is_name()) {
      error(peek(), "expected a quoted comment after 'comment'");
      return false;
    }
    r.comment = next().text;
    return true;
  }
  if ((w == "add" || w == "update" || w == "delete") && peek(1).kind == TK::Word && peek(1).text.starts_with("@")) {
    next();
    s.kind = SK::SetUpdate;
    s.name = w;
    s.target = next().text.substr(1);
    if (!expect_punct("{", "after the set name")) return false;
    auto e = parse_lhs();
    if (!e) return false;
    s.lhs = *e;
    while (!punct("}") && peek().kind != TK::End && peek().kind != TK::Newline) next();
    if (!expect_punct("}", "to close the element")) return false;
    return done();
  }
  if (w == "xt") {
    next();
    Token ty = next();
    Token n = next();
    s.kind = SK::Other;
    s.name = "xt " + ty.text;
    s.opts.push_back({"name", n.text, loc(n)});
    return done();
  }
  if (w == "tproxy" || w == "fwd" || w == "dup" || w == "synproxy" || w == "quota" || w == "flow" || w == "last" ||
      (w == "ct" && (word("count", 1)))) {
    next();
    s.kind = SK::Other;
    s.name = w;
    if (w == "ct") {
      next();
      s.name = "ct count";
    }
    if (w == "flow" && (word("add") || word("offload"))) {
      Token a = next();
      s.name = "flow add";
      if (peek().kind == TK::Word) s.opts.push_back({"flowtable", next().text, loc(a)});
      return done();
    }
    consume_words(s, 8);
    s.opts.clear();  // recognised, not modelled: the capability names it
    return done();
  }

  // An expression: a match, a mangle (`... set VALUE`) or a verdict map.
  auto lhs = parse_lhs();
  if (!lhs) return false;
  if (word("set")) {
    next();
    s.kind = SK::Mangle;
    s.lhs = *lhs;
    auto v = parse_lhs(true, true);
    if (!v) return false;
    s.rhs = *v;
    return done();
  }
  if (word("vmap")) {
    next();
    s.kind = SK::Vmap;
    s.lhs = *lhs;
    std::optional<Expr> m;
    if (punct("{")) m = parse_set_expr();
    else if (peek().kind == TK::Word && peek().text.starts_with("@")) {
      Token n = next();
      m = make(EK::SetRef, n, n.text.substr(1));
    } else {
      error(peek(), "expected '{' or @map after 'vmap', found " + describe(peek()));
      return false;
    }
    if (!m) return false;
    s.rhs = *m;
    return done();
  }
  s.kind = SK::Match;
  s.lhs = *lhs;
  const Token& o = peek();
  static const std::pair<std::string_view, std::string_view> kOps[] = {
      {"==", "=="}, {"!=", "!="}, {"<", "<"}, {">", ">"}, {"<=", "<="}, {">=", ">="},
      {"eq", "=="}, {"ne", "!="}, {"lt", "<"}, {"gt", ">"}, {"le", "<="}, {"ge", ">="}};
  for (auto& [spelled, canon] : kOps)
    if ((o.kind == TK::Punct || o.kind == TK::Word) && o.text == spelled) {
      s.op = canon;
      next();
      break;
    }
  if (at_stmt_end() || peek().kind == TK::Handle) {
    error(peek(), "expected a value to compare " + nft::render(*lhs) + " with, found " + describe(peek()));
    return false;
  }
  auto rhs = parse_rhs(true);
  if (!rhs) return false;
  s.rhs = *rhs;
  return done();
}

bool TextParser::parse_nat(Stmt& s) {
  if (word("ip") || word("ip6") || word("inet")) {
    if (!(peek(1).kind == TK::Word && (peek(1).text == "daddr" || peek(1).text == "saddr"))) {
      Token f = next();
      s.opts.push_back({"family", f.text, loc(f)});
    }
  }
  if (word("addr") || word("prefix") || word("interval")) {  // dnat ip addr . port to ... map
    std::string v;
    while (!at_stmt_end() && !word("to")) v += (v.empty() ? "" : " ") + next().text;
    s.opts.push_back({"key", v, s.loc});
  }
  bool to = word("to");
  if (to) next();
  if (to || s.name == "dnat" || s.name == "snat") {
    if (at_stmt_end()) {
      error(peek(), "expected an address after '" + s.name + " to'", "write e.g. dnat to 10.0.0.1:80");
      return false;
    }
    // A lookup (`dnat to ip daddr map { ... }`)?
    if (peek().kind == TK::Word && !peek().text.empty() && std::isalpha((unsigned char)peek().text[0]) &&
        peek(1).kind == TK::Word) {
      auto key = parse_lhs();
      if (!key) return false;
      if (word("map")) {
        Token m = next();
        auto data = punct("{") ? parse_set_expr() : std::optional<Expr>(make(EK::SetRef, next()));
        if (!data) return false;
        if (data->kind == EK::SetRef && data->a.starts_with("@")) data->a = data->a.substr(1);
        Expr ml = make(EK::MapLookup, m);
        ml.kids = {*key, *data};
        s.lhs = ml;
      } else {
        s.lhs = *key;
      }
    } else {
      Token t = next();
      std::string text = t.text;
      if (t.kind == TK::Word && peek().kind == TK::Word && peek().text.starts_with(":") && peek().line == t.line)
        text += next().text;  // "$ADDR:80" after variable expansion
      std::string addr = text, port;
      bool v6 = text.starts_with("[") || (s.opt("family") && s.opt("family")->value == "ip6") ||
                std::count(text.begin(), text.end(), ':') > 1;
      if (text.starts_with("[")) {
        auto rb = text.find(']');
        if (rb == std::string::npos) {
          error(t, "missing ']' in '" + text + "'");
          return false;
        }
        addr = text.substr(1, rb - 1);
        if (rb + 1 < text.size() && text[rb + 1] == ':') port = text.substr(rb + 2);
      } else if (!v6 || text.starts_with(":")) {
        auto colon = text.rfind(':');
        if (colon != std::string::npos) {
          addr = text.substr(0, colon);
          port = text.substr(colon + 1);
        }
      }
      if (s.name == "masquerade" || s.name == "redirect") {
        if (port.empty() && !addr.empty()) port = addr;  // "redirect to 8080"
        addr.clear();
      }
      if (!addr.empty()) s.lhs = make(EK::Literal, t, addr);
      if (!port.empty()) s.rhs = make(EK::Literal, t, port);
    }
  }
  std::string flags;
  while (word("random") || word("fully-random") || word("persistent") || punct(",")) {
    Token f = next();
    if (f.text != ",") flags += (flags.empty() ? "" : ",") + f.text;
  }
  if (!flags.empty()) s.opts.push_back({"flags", flags, s.loc});
  return true;
}

std::optional<Expr> TextParser::parse_primary() {
  const Token& t = peek();
  if (t.kind != TK::Word) return std::nullopt;
  const std::string w = t.text;
  auto field_of = [&](const std::string& proto) -> std::optional<Expr> {
    Token p = next();
    const Token& f = peek();
    auto it = kFields.find(proto);
    if (f.kind == TK::Word && it != kFields.end() &&
        std::find(it->second.begin(), it->second.end(), f.text) != it->second.end()) {
      Token ft = next();
      Expr e = make(EK::Payload, p, proto, ft.text);
      if (proto == "arp" && (word("ip") || word("ether"))) e.b += " " + next().text;
      e.loc = span(p);
      return e;
    }
    error(f, "unknown " + proto + " field " + describe(f),
          it != kFields.end() ? "fields are " + [&] {
            std::string s;
            for (const auto& x : it->second) s += (s.empty() ? "" : ", ") + x;
            return s;
          }() : std::string());
    return std::nullopt;
  };
  if (w == "tcp" && word("option", 1)) {
    Token p = next();
    next();
    Expr e = make(EK::Other, p, "tcp option");
    std::string detail = next().text;
    if (peek().kind == TK::Word && (word("size") || word("kind") || word("length") || word("count") ||
                                    word("left") || word("right") || word("tsval") || word("tsecr")))
      detail += " " + next().text;
    e.b = detail;
    e.loc = span(p);
    return e;
  }
  if (w == "sctp" && word("chunk", 1)) {
    Token p = next();
    next();
    Expr e = make(EK::Other, p, "sctp chunk", next().text);
    if (peek().kind == TK::Word && !is_verdict_word(peek().text) && !word("exists") && !word("missing"))
      e.b += " " + next().text;
    return e;
  }
  if (w == "ip" && word("option", 1)) {
    Token p = next();
    next();
    Expr e = make(EK::Other, p, "ip option", next().text);
    if (peek().kind == TK::Word && (word("type") || word("length") || word("value") || word("ptr") || word("addr")))
      e.b += " " + next().text;
    return e;
  }
  if (w == "rt" && (word("mtu", 1) || word("classid", 1) || word("nexthop", 1) || word("ipsec", 1) ||
                    ((word("ip", 1) || word("ip6", 1)) && word("nexthop", 2)))) {
    Token p = next();
    std::string d = next().text;
    if (d == "ip" || d == "ip6") d += " " + next().text;
    return make(EK::Other, p, "rt", d);
  }
  if (kFields.count(w)) return field_of(w);
  if (one_of(w, kExthdrs) || w == "rt") {
    Token p = next();
    std::string d = w;
    if (peek().kind == TK::Word) d += " " + next().text;
    return make(EK::Other, p, "exthdr", d);
  }
  if (w == "meta") {
    Token p = next();
    auto k = name("a meta key");
    if (!k) return std::nullopt;
    Expr e = make(EK::Meta, p, k->text);
    e.loc = span(p);
    return e;
  }
  if (one_of(w, kUnqualifiedMeta)) {
    Token p = next();
    return make(EK::Meta, p, w);
  }
  if (w == "ct") {
    Token p = next();
    Expr e = make(EK::Ct, p);
    if (word("original") || word("reply")) e.b = next().text;
    if (word("ip") || word("ip6")) e.c = next().text;
    if (peek().kind != TK::Word || !one_of(peek().text, kCtKeys)) {
      error(peek(), "unknown ct key " + describe(peek()),
            "keys are state, status, mark, direction, protocol, saddr, daddr, proto-src, proto-dst, ...");
      return std::nullopt;
    }
    e.a = next().text;
    e.loc = span(p);
    return e;
  }
  if (w == "fib") {
    Token p = next();
    Expr e = make(EK::Fib, p);
    for (;;) {
      if (!(word("saddr") || word("daddr") || word("mark") || word("iif") || word("oif"))) {
        error(peek(), "expected saddr, daddr, mark, iif or oif after 'fib', found " + describe(peek()));
        return std::nullopt;
      }
      e.flags.push_back(next().text);
      if (word(".")) {
        next();
        continue;
      }
      break;
    }
    if (!(word("oif") || word("oifname") || word("type"))) {
      error(peek(), "expected oif, oifname or type as the fib result, found " + describe(peek()));
      return std::nullopt;
    }
    e.a = next().text;
    e.loc = span(p);
    return e;
  }
  if (w == "numgen" || w == "symhash") {
    Token p = next();
    std::string d;
    while (word("random") || word("inc") || word("mod") || word("offset") ||
           (peek().kind == TK::Word && std::isdigit((unsigned char)peek().text[0])))
      d += (d.empty() ? "" : " ") + next().text;
    Expr e = make(EK::Other, p, w, d);
    e.loc = span(p);
    return e;
  }
  if (w == "jhash") {
    Token p = next();
    auto key = parse_lhs(false);
    if (!key) return std::nullopt;
    std::string d = nft::render(*key);
    while (word("mod") || word("seed") || word("offset")) {
      d += " " + next().text;
      d += " " + next().text;
    }
    return make(EK::Other, p, "jhash", d);
  }
  if (w == "socket" || w == "osf" || w == "ipsec") {
    Token p = next();
    static const char* const kWords[] = {"transparent", "mark", "wildcard", "cgroupv2", "level", "ttl", "loose",
                                         "skip", "name", "version", "in", "out", "spnum", "reqid", "spi",
                                         "saddr", "daddr", "ip", "ip6"};
    std::string d;
    while (peek().kind == TK::Word && one_of(peek().text, kWords)) {
      bool level = word("level") || word("spnum");
      d += (d.empty() ? "" : " ") + next().text;
      if (level && peek().kind == TK::Word) d += " " + next().text;
    }
    return make(EK::Other, p, w, d);
  }
  if (w.starts_with("@") && punct(",", 1)) {  // raw payload @nh,16,8
    Token p = next();
    std::string d;
    while (punct(",")) {
      next();
      d += (d.empty() ? "" : ",") + next().text;
    }
    return make(EK::Payload, p, p.text, d);
  }
  return std::nullopt;
}

std::optional<Expr> TextParser::parse_operand() {
  if (auto p = parse_primary()) return p;
  return parse_value();  // `a & 0xff | 0x100` is (a & 0xff) | 0x100; combos need parentheses
}

std::optional<Expr> TextParser::parse_lhs(bool with_binop, bool value_ok) {
  const Token first = peek();
  size_t errors_before = diag_.errors();
  auto e = parse_primary();
  if (!e) {
    if (diag_.errors() != errors_before) return std::nullopt;  // reported by parse_primary
    // A constant where an expression may stand (`meta mark set 0x10`).
    if (value_ok && (first.kind == TK::Word || first.kind == TK::String || (first.kind == TK::Punct && first.text == "("))) {
      auto v = parse_value_or();
      if (!v) return std::nullopt;
      e = v;
    } else {
      error(first, "unknown expression " + describe(first),
            "expected a match such as ip saddr, tcp dport, meta iifname, ct state, or a statement");
      return std::nullopt;
    }
  }
  if (word(".")) {
    Expr c = make(EK::Concat, first);
    c.kids.push_back(std::move(*e));
    while (word(".")) {
      next();
      size_t before = diag_.errors();
      auto k = parse_primary();
      if (!k) {
        if (diag_.errors() == before) error(peek(), "expected an expression after '.', found " + describe(peek()));
        return std::nullopt;
      }
      c.kids.push_back(std::move(*k));
    }
    e = std::move(c);
  }
  if (!with_binop) return e;
  static const std::pair<std::string_view, std::string_view> kBinops[] = {
      {"&", "&"}, {"|", "|"}, {"^", "^"}, {"<<", "<<"}, {">>", ">>"},
      {"and", "&"}, {"or", "|"}, {"xor", "^"}, {"lshift", "<<"}, {"rshift", ">>"}};
  for (;;) {
    const Token& o = peek();
    std::string_view op;
    for (auto& [spelled, canon] : kBinops)
      if ((o.kind == TK::Punct || o.kind == TK::Word) && o.text == spelled) op = canon;
    if (op.empty()) break;
    Token ot = next();
    auto r = parse_operand();
    if (!r) return std::nullopt;
    Expr b = make(EK::Binop, ot, std::string(op));
    b.loc = e->loc;
    b.kids.push_back(std::move(*e));
    b.kids.push_back(std::move(*r));
    b.loc = span(first);
    e = std::move(b);
  }
  return e;
}

std::optional<Expr> TextParser::parse_value() {
  const Token& t = peek();
  if (t.kind == TK::Punct && t.text == "{") return parse_set_expr();
  if (t.kind == TK::Punct && t.text == "(") {
    next();
    auto v = parse_value_or();
    if (!v) return std::nullopt;
    if (!expect_punct(")", "to close the parenthesis")) return std::nullopt;
    return v;
  }
  if (t.kind == TK::String) {
    Token s = next();
    Expr e = make(EK::Literal, s, s.text);
    e.quoted = true;
    return e;
  }
  if (t.kind == TK::Word) {
    if (t.text == "-" || t.text == "." || t.text == ":" || t.text == "/") {
      error(t, "unexpected " + describe(t) + " where a value belongs");
      return std::nullopt;
    }
    Token w = next();
    if (w.text.size() > 1 && w.text[0] == '@') return make(EK::SetRef, w, w.text.substr(1));
    if (w.text == "*") return make(EK::Wildcard, w);
    return make(EK::Literal, w, w.text);
  }
  error(t, "expected a value, found " + describe(t));
  return std::nullopt;
}

std::optional<Expr> TextParser::parse_value_or() {
  auto v = parse_value();
  if (!v || !punct("|")) return v;
  Expr b = make(EK::Binop, peek(), "|");
  b.loc = v->loc;
  b.kids.push_back(std::move(*v));
  while (punct("|")) {
    next();
    auto k = parse_value();
    if (!k) return std::nullopt;
    b.kids.push_back(std::move(*k));
  }
  return b;
}

std::optional<Expr> TextParser::parse_rhs_component(bool list_ok) {
  Token first = peek();
  auto v = parse_value_or();
  if (!v) return std::nullopt;
  if (word("-")) {
    next();
    auto hi = parse_value_or();
    if (!hi) return std::nullopt;
    Expr r = make(EK::Range, first);
    r.kids = {std::move(*v), std::move(*hi)};
    r.loc = span(first);
    v = std::move(r);
  }
  if (word("/")) {
    next();
    Expr m = make(EK::Mask, first);
    auto mv = parse_value_or();
    if (!mv) return std::nullopt;
    if (punct(",")) {
      Expr l = make(EK::List, first);
      l.kids.push_back(std::move(*mv));
      while (punct(",")) {
        next();
        auto k = parse_value_or();
        if (!k) return std::nullopt;
        l.kids.push_back(std::move(*k));
      }
      mv = std::move(l);
    }
    m.kids = {std::move(*v), std::move(*mv)};
    m.loc = span(first);
    return m;
  }
  if (list_ok && punct(",")) {
    Expr l = make(EK::List, first);
    l.kids.push_back(std::move(*v));
    while (punct(",")) {
      next();
      auto k = parse_value_or();
      if (!k) return std::nullopt;
      l.kids.push_back(std::move(*k));
    }
    l.loc = span(first);
    return l;
  }
  return v;
}

std::optional<Expr> TextParser::parse_rhs(bool list_ok) {
  Token first = peek();
  auto v = parse_rhs_component(list_ok);
  if (!v || !word(".")) return v;
  Expr c = make(EK::Concat, first);
  c.kids.push_back(std::move(*v));
  while (word(".")) {
    next();
    auto k = parse_rhs_component(list_ok);
    if (!k) return std::nullopt;
    c.kids.push_back(std::move(*k));
  }
  c.loc = span(first);
  return c;
}

std::optional<Expr> TextParser::parse_map_data() {
  const Token& t = peek();
  if (t.kind == TK::Word && (is_verdict_word(t.text) || t.text == "queue")) {
    Token v = next();
    Expr e = make(EK::Verdict, v, v.text);
    if (v.text == "jump" || v.text == "goto") {
      auto c = name("a chain name");
      if (!c) return std::nullopt;
      e.b = c->text;
    }
    return e;
  }
  return parse_rhs(false);
}

std::optional<Expr> TextParser::parse_element() {
  Token first = peek();
  auto key = parse_rhs(false);
  if (!key) return std::nullopt;
  bool colon = false;
  // "22: accept": the colon glued to the key (but "fe80::" is an address).
  if (key->kind == EK::Literal && key->a.size() > 1 && key->a.back() == ':' && !key->a.ends_with("::")) {
    key->a.pop_back();
    colon = true;
  }
  Expr elem = make(EK::Elem, first);
  bool opts = false;
  for (;;) {
    if (word("timeout") || word("expires")) {
      Token k = next();
      Token v = next();
      auto ms = nft::parse_time_ms(v.text);
      if (!ms) {
        error(v, "invalid time '" + v.text + "'", "write e.g. 30s, 5m, 1h");
        return std::nullopt;
      }
      (k.text == "timeout" ? elem.timeout_ms : elem.expires_ms) = ms;
      opts = true;
    } else if (word("comment")) {
      next();
      auto c = name("a comment");
      if (!c) return std::nullopt;
      elem.comment = c->text;
      opts = true;
    } else if (word("counter")) {
      next();
      while (word("packets") || word("bytes")) {
        next();
        next();
      }
    } else {
      break;
    }
  }
  if (opts) {
    elem.kids.push_back(std::move(*key));
    key = std::move(elem);
  }
  if (word(":")) {
    next();
    colon = true;
  } else if (!colon && peek().kind == TK::Word && peek().text.starts_with(":") && peek().text.size() > 1) {
    // "22 :accept"
    toks_.front().text = toks_.front().text.substr(1);
    colon = true;
  }
  if (!colon) return key;
  auto data = parse_map_data();
  if (!data) return std::nullopt;
  Expr me = make(EK::MapEntry, first);
  me.kids = {std::move(*key), std::move(*data)};
  return me;
}

std::optional<Expr> TextParser::parse_set_expr() {
  if (!punct("{")) {
    error(peek(), "expected '{', found " + describe(peek()));
    return std::nullopt;
  }
  Token open = next();
  Expr set = make(EK::Set, open);
  for (;;) {
    while (peek().kind == TK::Newline || peek().kind == TK::Handle) next();
    if (punct("}")) {
      next();
      break;
    }
    if (peek().kind == TK::End) {
      error(open, "missing '}' for this set");
      return std::nullopt;
    }
    auto e = parse_element();
    if (!e) return std::nullopt;
    set.kids.push_back(std::move(*e));
    while (peek().kind == TK::Newline || peek().kind == TK::Handle) next();
    if (punct(",")) {
      next();
      continue;
    }
    if (punct("}")) continue;
    error(peek(), "expected ',' or '}' in the set, found " + describe(peek()));
    return std::nullopt;
  }
  return set;
}

ir::Ruleset TextParser::run() {
  rs_.source = files_[0]->name;
  rs_.frontend = ir::Frontend::Nft;
  end_.kind = TK::End;
  load(*files_[0]);
  for (;;) {
    skip_separators();
    const Token& t = peek();
    if (t.kind == TK::End) break;
    if (diag_.errors() > 1000) break;
    if (t.kind == TK::Punct && t.text == "}") {
      error(t, "unexpected '}'", "is there one '}' too many?");
      next();
      continue;
    }
    if (t.kind != TK::Word) {
      error(t, "unexpected " + describe(t), "a ruleset file holds table blocks and commands");
      skip_stmt();
      if (punct("}")) next();
      continue;
    }
    command();
  }
  b_.finish();
  if (rs_.tables.empty() && !diag_.has_errors() && files_[0]->text.find_first_not_of(" \t\r\n") == std::string::npos)
    diag_.error(ir::SourceLoc{files_[0]->name, 1, 1, 0, {}}, "the input is empty",
                "expected `nft list ruleset` output or a file for `nft -f`");
  return std::move(rs_);
}

}  // namespace

ir::Ruleset parse_nft_text(const Source& src, diag::Diagnostics& diags, const NftTextOptions& opt) {
  TextParser p(src, diags, opt);
  return p.run();
}

}  // namespace nf2bpf::frontend
