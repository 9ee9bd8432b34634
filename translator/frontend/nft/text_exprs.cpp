// nft text expressions: selectors (payload, meta, ct, fib ...), values,
// ranges, masks, concatenations, sets and map elements.
#include <algorithm>

#include "translator/frontend/nft/text_parser.h"

namespace nf2bpf::frontend::nft_text {

namespace {

// Payload fields by protocol; fields not listed are syntax errors.
const std::map<std::string, std::vector<std::string>, std::less<>> kFields = {
    {"ip",
     {"version", "hdrlength", "dscp", "ecn", "length", "id", "frag-off", "ttl", "protocol", "checksum", "saddr",
      "daddr"}},
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
    "mark",      "iif",      "iifname",  "iiftype", "oif",     "oifname",  "oiftype", "skuid",    "skgid",    "nftrace",
    "rtclassid", "ibriport", "obriport", "ibrname", "obrname", "pkttype",  "cpu",     "iifgroup", "oifgroup", "cgroup",
    "time",      "day",      "hour",     "iifkind", "oifkind", "priority", "random",  "secmark"};

const char* const kCtKeys[] = {"state",   "status",   "mark",    "direction",  "expiration", "helper",
                               "l3proto", "protocol", "saddr",   "daddr",      "proto-src",  "proto-dst",
                               "zone",    "label",    "bytes",   "packets",    "avgpkt",     "id",
                               "event",   "secmark",  "timeout", "expectation"};

template <size_t N>
bool one_of(std::string_view w, const char* const (&list)[N]) {
  for (const char* x : list)
    if (w == x) return true;
  return false;
}

}  // namespace

std::optional<Expr> TextParser::parse_primary() {
  const Token& t = peek();
  if (t.kind != TK::Word) return std::nullopt;
  const std::string w = t.text;
  if ((w == "tcp" || w == "ip") && word("option", 1)) return header_option(w + " option");
  if (w == "sctp" && word("chunk", 1)) return header_option("sctp chunk");
  if (w == "rt" && (word("mtu", 1) || word("classid", 1) || word("nexthop", 1) || word("ipsec", 1) ||
                    ((word("ip", 1) || word("ip6", 1)) && word("nexthop", 2)))) {
    Token p = next();
    std::string d = next().text;
    if (d == "ip" || d == "ip6") d += " " + next().text;
    return make(EK::Other, p, "rt", d);
  }
  if (kFields.count(w)) return payload_field(w);
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
  if (w == "ct") return ct_expr();
  if (w == "fib") return fib_expr();
  if (w == "numgen" || w == "symhash" || w == "jhash") return hash_expr(w);
  if (w == "socket" || w == "osf" || w == "ipsec") return socket_expr(w);
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

// `ip saddr`, `tcp dport`: fields not listed for the protocol are errors.
std::optional<Expr> TextParser::payload_field(const std::string& proto) {
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
        it != kFields.end() ? "fields are " +
                                  [&] {
                                    std::string s;
                                    for (const auto& x : it->second) s += (s.empty() ? "" : ", ") + x;
                                    return s;
                                  }()
                            : std::string());
  return std::nullopt;
}

// `tcp option maxseg size`, `ip option rr type`, `sctp chunk data flags`.
std::optional<Expr> TextParser::header_option(const std::string& what) {
  Token p = next();
  next();
  if (what == "tcp option") {
    Expr e = make(EK::Other, p, "tcp option");
    std::string detail = next().text;
    if (peek().kind == TK::Word && (word("size") || word("kind") || word("length") || word("count") || word("left") ||
                                    word("right") || word("tsval") || word("tsecr")))
      detail += " " + next().text;
    e.b = detail;
    e.loc = span(p);
    return e;
  }
  Expr e = make(EK::Other, p, what, next().text);
  if (what == "sctp chunk") {
    if (peek().kind == TK::Word && !is_verdict_word(peek().text) && !word("exists") && !word("missing"))
      e.b += " " + next().text;
  } else if (peek().kind == TK::Word &&
             (word("type") || word("length") || word("value") || word("ptr") || word("addr"))) {
    e.b += " " + next().text;
  }
  return e;
}

std::optional<Expr> TextParser::ct_expr() {
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

std::optional<Expr> TextParser::fib_expr() {
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

// numgen, symhash and jhash: kept as text (their values are not modelled).
std::optional<Expr> TextParser::hash_expr(const std::string& w) {
  Token p = next();
  if (w == "jhash") {
    auto key = parse_lhs(false);
    if (!key) return std::nullopt;
    std::string d = nft::render(*key);
    while (word("mod") || word("seed") || word("offset")) {
      d += " " + next().text;
      d += " " + next().text;
    }
    return make(EK::Other, p, "jhash", d);
  }
  std::string d;
  while (word("random") || word("inc") || word("mod") || word("offset") ||
         (peek().kind == TK::Word && std::isdigit((unsigned char)peek().text[0])))
    d += (d.empty() ? "" : " ") + next().text;
  Expr e = make(EK::Other, p, w, d);
  e.loc = span(p);
  return e;
}

// socket, osf and ipsec: kept as text.
std::optional<Expr> TextParser::socket_expr(const std::string& w) {
  Token p = next();
  static const char* const kWords[] = {"transparent", "mark",  "wildcard", "cgroupv2", "level", "ttl",   "loose",
                                       "skip",        "name",  "version",  "in",       "out",   "spnum", "reqid",
                                       "spi",         "saddr", "daddr",    "ip",       "ip6"};
  std::string d;
  while (peek().kind == TK::Word && one_of(peek().text, kWords)) {
    bool level = word("level") || word("spnum");
    d += (d.empty() ? "" : " ") + next().text;
    if (level && peek().kind == TK::Word) d += " " + next().text;
  }
  return make(EK::Other, p, w, d);
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
    if (value_ok &&
        (first.kind == TK::Word || first.kind == TK::String || (first.kind == TK::Punct && first.text == "("))) {
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
      {"&", "&"},   {"|", "|"},  {"^", "^"},   {"<<", "<<"},     {">>", ">>"},
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

}  // namespace nf2bpf::frontend::nft_text
