// nft text rules: statements, verdicts and NAT targets.
#include <algorithm>
#include <unordered_map>

#include "translator/frontend/nft/text_parser.h"

namespace nf2bpf::frontend::nft_text {

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
    if (t.kind == TK::Word &&
        (is_verdict_word(t.text) || t.text == "counter" || t.text == "comment" || t.text == "log" || t.text == "meta"))
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
  const std::string& w = kw.text;
  Stmt s;
  s.loc = loc(kw);
  static const std::unordered_map<std::string_view, StmtParser> kStatements = {
      {"accept", &TextParser::stmt_verdict},    {"drop", &TextParser::stmt_verdict},
      {"continue", &TextParser::stmt_verdict},  {"return", &TextParser::stmt_verdict},
      {"jump", &TextParser::stmt_jump},         {"goto", &TextParser::stmt_jump},
      {"queue", &TextParser::stmt_queue},       {"reject", &TextParser::stmt_reject},
      {"counter", &TextParser::stmt_counter},   {"log", &TextParser::stmt_log},
      {"limit", &TextParser::stmt_limit},       {"notrack", &TextParser::stmt_notrack},
      {"dnat", &TextParser::stmt_nat},          {"snat", &TextParser::stmt_nat},
      {"masquerade", &TextParser::stmt_nat},    {"redirect", &TextParser::stmt_nat},
      {"comment", &TextParser::stmt_comment},   {"xt", &TextParser::stmt_xt},
      {"tproxy", &TextParser::stmt_recognised}, {"fwd", &TextParser::stmt_recognised},
      {"dup", &TextParser::stmt_recognised},    {"synproxy", &TextParser::stmt_recognised},
      {"quota", &TextParser::stmt_recognised},  {"flow", &TextParser::stmt_recognised},
      {"last", &TextParser::stmt_recognised}};
  if (auto it = kStatements.find(w); it != kStatements.end()) return (this->*it->second)(r, s, kw);
  if ((w == "add" || w == "update" || w == "delete") && peek(1).kind == TK::Word && peek(1).text.starts_with("@"))
    return stmt_set_update(r, s, kw);
  if (w == "meter" && peek(1).kind == TK::Word) return stmt_set_update(r, s, kw);
  if (w == "ct" && word("count", 1)) return stmt_recognised(r, s, kw);
  return stmt_expression(r, s, kw);
}

bool TextParser::done(nft::RuleAst& r, Stmt& s, const Token& kw) {
  s.loc = span(kw);
  r.stmts.push_back(std::move(s));
  return true;
}

bool TextParser::stmt_verdict(nft::RuleAst& r, Stmt& s, const Token& kw) {
  const std::string& w = kw.text;
  next();
  s.kind = SK::Verdict;
  s.name = w;
  return done(r, s, kw);
}

bool TextParser::stmt_jump(nft::RuleAst& r, Stmt& s, const Token& kw) {
  const std::string& w = kw.text;
  next();
  auto c = name("a chain name after '" + w + "'");
  if (!c) return false;
  s.kind = SK::Verdict;
  s.name = w;
  s.target = c->text;
  return done(r, s, kw);
}

bool TextParser::stmt_queue(nft::RuleAst& r, Stmt& s, const Token& kw) {
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
  return done(r, s, kw);
}

bool TextParser::stmt_reject(nft::RuleAst& r, Stmt& s, const Token& kw) {
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
  return done(r, s, kw);
}

bool TextParser::stmt_counter(nft::RuleAst& r, Stmt& s, const Token& kw) {
  next();
  s.kind = SK::Counter;
  if (word("name") || (peek().kind == TK::String)) {
    if (word("name")) next();
    auto n = name("a counter name");
    if (!n) return false;
    s.opts.push_back({"name", n->text, loc(*n)});
    return done(r, s, kw);
  }
  while (word("packets") || word("bytes")) {
    Token k = next();
    Token v = next();
    s.opts.push_back({k.text, v.text, loc(v)});
  }
  return done(r, s, kw);
}

bool TextParser::stmt_log(nft::RuleAst& r, Stmt& s, const Token& kw) {
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
                                word("skuid") || word("ether") || word("all"))) {
        bool glue = v.empty() || last_.text == "," || punct(",");
        v += (glue ? "" : " ") + next().text;
      }
      s.opts.push_back({k.text, v, loc(k)});
      continue;
    }
    break;
  }
  return done(r, s, kw);
}

bool TextParser::stmt_limit(nft::RuleAst& r, Stmt& s, const Token& kw) {
  next();
  s.kind = SK::Limit;
  if (word("name")) {
    next();
    auto n = name("a limit name");
    if (!n) return false;
    s.kind = SK::Other;
    s.name = "limit name";
    s.opts.push_back({"name", n->text, loc(*n)});
    return done(r, s, kw);
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
    if (word("packets") || word("bytes") || word("kbytes") || word("mbytes"))
      s.opts.push_back({"burst_unit", next().text, loc(b)});
  }
  return done(r, s, kw);
}

bool TextParser::stmt_notrack(nft::RuleAst& r, Stmt& s, const Token& kw) {
  next();
  s.kind = SK::Notrack;
  return done(r, s, kw);
}

bool TextParser::stmt_nat(nft::RuleAst& r, Stmt& s, const Token& kw) {
  const std::string& w = kw.text;
  next();
  s.kind = SK::Nat;
  s.name = w;
  if (!parse_nat(s)) return false;
  return done(r, s, kw);
}

bool TextParser::stmt_comment(nft::RuleAst& r, Stmt&, const Token&) {
  next();
  if (!is_name()) {
    error(peek(), "expected a quoted comment after 'comment'");
    return false;
  }
  r.comment = next().text;
  return true;
}

// `add|update|delete @SET { KEY [timeout T] [STATEMENT ...] }`, and the
// older `meter NAME [size N] { KEY ... }` (an update of a set the rule
// makes): the element's statements are limit, counter and ct count.
bool TextParser::stmt_set_update(nft::RuleAst& r, Stmt& s, const Token& kw) {
  const std::string& w = kw.text;
  next();
  s.kind = SK::SetUpdate;
  s.name = w == "meter" ? "update" : w;
  if (w == "meter") {
    auto n = name("a meter name");
    if (!n) return false;
    s.target = n->text;
    std::string size = "0";
    if (word("size")) {
      next();
      size = next().text;
    }
    s.opts.push_back({"meter", size, loc(*n)});
  } else {
    s.target = next().text.substr(1);
  }
  if (!expect_punct("{", "after the set name")) return false;
  auto e = parse_lhs();
  if (!e) return false;
  s.lhs = *e;
  while (!punct("}") && peek().kind != TK::End && peek().kind != TK::Newline) {
    const Token t = peek();
    if (word("timeout") || word("expires")) {
      next();
      Token v = next();
      auto ms = nft::parse_time_ms(v.text);
      if (!ms) {
        error(v, "invalid timeout '" + v.text + "'", "write e.g. 30s, 5m, 1h, 1d");
        return false;
      }
      if (t.text == "timeout") s.opts.push_back({"timeout", std::to_string(*ms), loc(v)});
      continue;
    }
    nft::RuleAst inner;
    Stmt is;
    bool ok = word("limit")                    ? stmt_limit(inner, is, t)
              : word("counter")                ? stmt_counter(inner, is, t)
              : word("ct") && word("count", 1) ? stmt_recognised(inner, is, t)
              : word("quota") || word("last")  ? stmt_recognised(inner, is, t)
                                               : (error(t,
                                                        "expected timeout, limit, counter or ct count in the "
                                                         "element, found " +
                                                            describe(t)),
                                                 false);
    if (!ok) return false;
    for (auto& x : inner.stmts) s.elem.push_back(std::move(x));
  }
  if (!expect_punct("}", "to close the element")) return false;
  return done(r, s, kw);
}

bool TextParser::stmt_xt(nft::RuleAst& r, Stmt& s, const Token& kw) {
  next();
  Token ty = next();
  Token n = next();
  s.kind = SK::Other;
  s.name = "xt " + ty.text;
  s.opts.push_back({"name", n.text, loc(n)});
  return done(r, s, kw);
}

bool TextParser::stmt_recognised(nft::RuleAst& r, Stmt& s, const Token& kw) {
  const std::string& w = kw.text;
  next();
  s.kind = SK::Other;
  s.name = w;
  if (w == "ct") {  // ct count [over] N
    next();
    s.name = "ct count";
    if (word("over")) s.opts.push_back({"inv", "1", loc(next())});
    if (peek().kind == TK::Word) {
      Token n = next();
      s.opts.push_back({"count", n.text, loc(n)});
    }
    return done(r, s, kw);
  }
  if (w == "flow" && (word("add") || word("offload"))) {
    Token a = next();
    s.name = "flow add";
    if (peek().kind == TK::Word) s.opts.push_back({"flowtable", next().text, loc(a)});
    return done(r, s, kw);
  }
  consume_words(s, 8);
  s.opts.clear();  // recognised, not modelled: the capability names it
  return done(r, s, kw);
}

bool TextParser::stmt_expression(nft::RuleAst& r, Stmt& s, const Token& kw) {
  auto lhs = parse_lhs();
  if (!lhs) return false;
  if (word("set")) {
    next();
    s.kind = SK::Mangle;
    s.lhs = *lhs;
    auto v = parse_lhs(true, true);
    if (!v) return false;
    s.rhs = *v;
    return done(r, s, kw);
  }
  if (word("vmap")) {
    next();
    s.kind = SK::Vmap;
    s.lhs = *lhs;
    std::optional<Expr> m;
    if (punct("{"))
      m = parse_set_expr();
    else if (peek().kind == TK::Word && peek().text.starts_with("@")) {
      Token n = next();
      m = make(EK::SetRef, n, n.text.substr(1));
    } else {
      error(peek(), "expected '{' or @map after 'vmap', found " + describe(peek()));
      return false;
    }
    if (!m) return false;
    s.rhs = *m;
    return done(r, s, kw);
  }
  s.kind = SK::Match;
  s.lhs = *lhs;
  const Token& o = peek();
  static const std::pair<std::string_view, std::string_view> kOps[] = {
      {"==", "=="}, {"!=", "!="}, {"<", "<"},  {">", ">"},  {"<=", "<="}, {">=", ">="},
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
  return done(r, s, kw);
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

}  // namespace nf2bpf::frontend::nft_text
