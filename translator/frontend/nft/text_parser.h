// Private to the nft text front-end, the parser of `nft list ruleset` output
// and `nft -f` files: the parser class with its token layer. text_parser.cpp
// runs it, text_commands.cpp parses commands and blocks, text_rules.cpp rules
// and statements, text_exprs.cpp expressions.
#pragma once

#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "translator/frontend/nft/builder.h"
#include "translator/frontend/nft/lexer.h"
#include "translator/frontend/nft/lower.h"
#include "translator/frontend/nft/nft.h"

namespace nf2bpf::frontend::nft_text {

using nft::Expr;
using nft::Stmt;
using nft::Token;
using TK = nft::Token::Kind;
using EK = nft::Expr::Kind;
using SK = nft::Stmt::Kind;

struct File {
  std::string name;  // as shown in locations
  std::string text;
  std::vector<std::string_view> lines;
  std::string dir;  // for relative includes
  unsigned depth = 0;
};

bool is_verdict_word(std::string_view w);

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

  ir::SourceLoc loc(const Token& t) const { return {files_[t.file]->name, t.line, t.col, t.len, {}}; }

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

  // A copy: looking further ahead expands variables, which inserts into
  // toks_ and so moves the tokens a reference would point at.
  Token peek(size_t k = 0) {
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
  // One parser per statement keyword (the keyword `kw` is not consumed yet);
  // each returns done() with the statement, or false after an error.
  using StmtParser = bool (TextParser::*)(nft::RuleAst& r, Stmt& s, const Token& kw);
  bool done(nft::RuleAst& r, Stmt& s, const Token& kw);
  bool stmt_verdict(nft::RuleAst& r, Stmt& s, const Token& kw);
  bool stmt_jump(nft::RuleAst& r, Stmt& s, const Token& kw);
  bool stmt_queue(nft::RuleAst& r, Stmt& s, const Token& kw);
  bool stmt_reject(nft::RuleAst& r, Stmt& s, const Token& kw);
  bool stmt_counter(nft::RuleAst& r, Stmt& s, const Token& kw);
  bool stmt_log(nft::RuleAst& r, Stmt& s, const Token& kw);
  bool stmt_limit(nft::RuleAst& r, Stmt& s, const Token& kw);
  bool stmt_notrack(nft::RuleAst& r, Stmt& s, const Token& kw);
  bool stmt_nat(nft::RuleAst& r, Stmt& s, const Token& kw);
  bool stmt_comment(nft::RuleAst& r, Stmt& s, const Token& kw);
  bool stmt_set_update(nft::RuleAst& r, Stmt& s, const Token& kw);
  bool stmt_xt(nft::RuleAst& r, Stmt& s, const Token& kw);
  bool stmt_recognised(nft::RuleAst& r, Stmt& s, const Token& kw);
  // A match, a mangle (`... set VALUE`) or a verdict map.
  bool stmt_expression(nft::RuleAst& r, Stmt& s, const Token& kw);
  std::optional<Expr> parse_primary();
  std::optional<Expr> payload_field(const std::string& proto);
  std::optional<Expr> header_option(const std::string& what);
  std::optional<Expr> ct_expr();
  std::optional<Expr> fib_expr();
  std::optional<Expr> hash_expr(const std::string& w);
  std::optional<Expr> socket_expr(const std::string& w);
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

}  // namespace nf2bpf::frontend::nft_text
