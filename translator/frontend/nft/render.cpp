// nft text syntax from syntax trees: the rule text shown for JSON and kernel
// input, and option values recorded in the IR.
#include "common/strings.h"
#include "translator/frontend/nft/builder.h"

namespace nf2bpf::frontend::nft {

namespace {

std::string join(const std::vector<Expr>& v, const char* sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + render(v[i]);
  return out;
}

std::string quote_if_needed(const std::string& s) {
  bool plain = !s.empty();
  for (char c : s)
    if (c == ' ' || c == '"' || c == '\t' || c == '{' || c == '}' || c == ';' || c == '#') plain = false;
  return plain ? s : "\"" + s + "\"";
}

}  // namespace

std::string render(const Expr& e) {
  using K = Expr::Kind;
  switch (e.kind) {
    case K::Payload: return e.a.starts_with("@") ? e.a + "," + e.b : e.a + " " + e.b;
    case K::Meta: return "meta " + e.a;
    case K::Ct: return "ct " + (e.b.empty() ? "" : e.b + " ") + (e.c.empty() ? "" : e.c + " ") + e.a;
    case K::Fib: {
      std::string f;
      for (const auto& x : e.flags) f += (f.empty() ? "" : " . ") + x;
      return "fib " + f + " " + e.a;
    }
    case K::Other: return e.b.empty() ? e.a : e.a + " " + e.b;
    case K::Concat: return join(e.kids, " . ");
    case K::Binop: {
      std::string out;
      for (size_t i = 0; i < e.kids.size(); ++i) {
        std::string k = render(e.kids[i]);
        if (i && e.kids[i].kind == K::Binop) k = "(" + k + ")";
        out += (i ? " " + e.a + " " : "") + k;
      }
      return out;
    }
    case K::Literal: return quote_if_needed(e.a);
    case K::Number: return std::to_string(e.num);
    case K::Bool: return e.num ? "exists" : "missing";
    case K::Range: return e.kids.size() == 2 ? render(e.kids[0]) + "-" + render(e.kids[1]) : "?";
    case K::Prefix: return (e.kids.empty() ? "?" : render(e.kids[0])) + "/" + std::to_string(e.num);
    case K::Mask: return e.kids.size() == 2 ? render(e.kids[0]) + " / " + render(e.kids[1]) : "?";
    case K::List: return join(e.kids, ",");
    case K::Set: return "{ " + join(e.kids, ", ") + " }";
    case K::SetRef: return "@" + e.a;
    case K::Elem: return e.kids.empty() ? "?" : render(e.kids[0]);
    case K::MapEntry: return e.kids.size() == 2 ? render(e.kids[0]) + " : " + render(e.kids[1]) : "?";
    case K::Verdict: return e.b.empty() ? e.a : e.a + " " + e.b;
    case K::MapLookup: return e.kids.size() == 2 ? render(e.kids[0]) + " map " + render(e.kids[1]) : "?";
    case K::Wildcard: return "*";
  }
  return "?";
}

std::string render(const Stmt& s) {
  using K = Stmt::Kind;
  auto opt = [&](std::string_view k) -> std::string {
    const Opt* o = s.opt(k);
    return o ? o->value : std::string();
  };
  std::string out;
  switch (s.kind) {
    case K::Match: {
      // nft lists `==` as nothing, except where leaving it out changes the
      // meaning: flags (`tcp flags syn` tests one bit) and masked values.
      bool flags = (s.lhs.kind == Expr::Kind::Payload && s.lhs.a == "tcp" && s.lhs.b == "flags") ||
                   (s.lhs.kind == Expr::Kind::Ct && (s.lhs.a == "state" || s.lhs.a == "status")) ||
                   s.lhs.kind == Expr::Kind::Binop;
      bool implicit = s.op.empty() || s.op == "in" || (s.op == "==" && !flags);
      std::string op = implicit ? " " : " " + s.op + " ";
      return render(s.lhs) + op + render(s.rhs);
    }
    case K::Verdict: return s.target.empty() ? s.name : s.name + " " + s.target;
    case K::Queue:
      out = "queue";
      for (const auto& o : s.opts) out += " " + o.key + (o.value.empty() ? "" : " " + o.value);
      return out;
    case K::Counter:
      if (s.opt("name")) return "counter name " + quote_if_needed(opt("name"));
      out = "counter";
      if (s.opt("packets")) out += " packets " + opt("packets") + " bytes " + opt("bytes");
      return out;
    case K::Log:
      out = "log";
      if (s.opt("prefix")) out += " prefix \"" + opt("prefix") + "\"";
      for (const char* k : {"level", "group", "snaplen", "queue-threshold", "flags"})
        if (s.opt(k)) out += std::string(" ") + k + " " + opt(k);
      return out;
    case K::Limit: {
      out = "limit rate ";
      if (opt("inv") == "1") out += "over ";
      out += opt("rate");
      std::string unit = opt("rate_unit");
      if (!unit.empty() && unit != "packets") out += " " + unit;
      out += "/" + (s.opt("per") ? opt("per") : std::string("second"));
      if (s.opt("burst")) out += " burst " + opt("burst") + " " + (s.opt("burst_unit") ? opt("burst_unit") : "packets");
      return out;
    }
    case K::Reject:
      out = "reject";
      if (s.opt("type")) {
        out += " with " + opt("type");
        if (s.opt("code")) out += " " + opt("code");
      }
      return out;
    case K::Nat: {
      out = s.name;
      if (s.opt("family")) out += " " + opt("family");
      if ((s.opt("key") && opt("key") == "prefix") || (s.opt("type_flags") && opt("type_flags") == "prefix"))
        out += " prefix";
      bool addr = !(s.lhs.kind == Expr::Kind::Literal && s.lhs.a.empty());
      bool port = !(s.rhs.kind == Expr::Kind::Literal && s.rhs.a.empty());
      std::string a = addr ? render(s.lhs) : std::string();
      if (port && a.find(':') != std::string::npos) a = "[" + a + "]";  // nft's IPv6 address:port form
      if (addr || port) out += " to " + a + (port ? ":" + render(s.rhs) : "");
      std::string all = s.opt("flags") ? opt("flags") : "", flags;
      for (std::string_view f : split(all, ','))
        if (!f.empty() && f != "netmap") flags += (flags.empty() ? " " : ",") + std::string(f);  // netmap: "prefix"
      return out + flags;
    }
    case K::Notrack: return "notrack";
    case K::Mangle: return render(s.lhs) + " set " + render(s.rhs);
    case K::Vmap: return render(s.lhs) + " vmap " + render(s.rhs);
    case K::SetUpdate: return s.name + " @" + s.target + " { " + render(s.lhs) + " }";
    case K::Comment: return "comment \"" + s.target + "\"";
    case K::Other:
      out = s.name;
      for (const auto& o : s.opts) out += " " + o.key + (o.value.empty() ? "" : " " + o.value);
      return out;
  }
  return "?";
}

std::string render(const RuleAst& r) {
  std::string out;
  for (const auto& s : r.stmts) out += (out.empty() ? "" : " ") + render(s);
  if (r.comment) out += (out.empty() ? "" : " ") + std::string("comment \"") + *r.comment + "\"";
  return out;
}

}  // namespace nf2bpf::frontend::nft
