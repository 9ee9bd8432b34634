#include "translator/frontend/iptables/parser.h"

#include <algorithm>
#include <cctype>
#include <deque>
#include <set>
#include <cstdlib>
#include <cstring>
#include <unordered_map>
#include <unordered_set>

#include "common/progress.h"
#include "common/strings.h"
#include "translator/frontend/iptables/lexer.h"
#include "translator/frontend/iptables/rule_context.h"
#include "translator/frontend/nat_placement.h"

namespace nf2bpf::frontend {

using namespace ipt;
using ir::Field;
using ir::Hook;
using ir::IntervalSet;

namespace ipt {

// ---- RuleCtx -----------------------------------------------------------------

ir::SourceLoc RuleCtx::loc(const Token& t) const { return {file, line, t.col, t.len, {}}; }

// Messages quote the offending word, and a word can be a megabyte long: keep
// its start and end, cut on UTF-8 character boundaries.
std::string bounded(std::string s) {
  constexpr size_t kHead = 160, kTail = 60;
  if (s.size() <= kHead + kTail + 40) return s;
  auto boundary = [&](size_t i) {
    while (i > 0 && i < s.size() && ((unsigned char)s[i] & 0xC0) == 0x80) --i;
    return i;
  };
  size_t head = boundary(kHead), tail = boundary(s.size() - kTail);
  return s.substr(0, head) + "[... " + std::to_string(tail - head) + " bytes ...]" + s.substr(tail);
}

void RuleCtx::error(const Token& t, std::string msg, std::string hint) {
  failed = true;
  diag.error(loc(t), bounded(std::move(msg)), bounded(std::move(hint)), std::string(line_text));
}

void RuleCtx::warning(const Token& t, std::string msg, std::string hint) {
  diag.warning(loc(t), bounded(std::move(msg)), bounded(std::move(hint)), std::string(line_text));
}

ir::Match& RuleCtx::add_match(Field f, bool negated, ir::MatchValue v, std::string cap, const Token& at,
                              std::string_view module) {
  ir::Match m;
  m.field = f;
  m.negated = negated;
  m.value = std::move(v);
  m.cap = std::move(cap);
  m.module = module;
  m.loc = loc(at);
  rule.matches.push_back(std::move(m));
  return rule.matches.back();
}

ir::Statement& RuleCtx::add_stmt(ir::StmtKind k, std::string cap, const Token& at) {
  ir::Statement s;
  s.kind = k;
  s.cap = std::move(cap);
  s.loc = loc(at);
  rule.statements.push_back(std::move(s));
  return rule.statements.back();
}

// ---- value helpers -----------------------------------------------------------

bool parse_uint(std::string_view s, uint64_t max, uint64_t& out) {
  if (s.empty() || s.size() > 20) return false;
  uint64_t v = 0;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    for (char c : s.substr(2)) {
      int d = (c >= '0' && c <= '9')   ? c - '0'
              : (c >= 'a' && c <= 'f') ? c - 'a' + 10
              : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                       : -1;
      if (d < 0 || v > (max >> 4)) return false;
      v = v * 16 + d;
    }
  } else {
    for (char c : s) {
      if (c < '0' || c > '9') return false;
      if (v > (max - (c - '0')) / 10) return false;
      v = v * 10 + (c - '0');
    }
  }
  if (v > max) return false;
  out = v;
  return true;
}

bool parse_port(RuleCtx& c, const Token& t, std::string_view s, uint16_t& out) {
  static const std::unordered_map<std::string_view, uint16_t> kServices = {
      {"ftp-data", 20},      {"ftp", 21},           {"ssh", 22},          {"telnet", 23},       {"smtp", 25},
      {"domain", 53},        {"bootps", 67},        {"bootpc", 68},       {"tftp", 69},         {"http", 80},
      {"www", 80},           {"kerberos", 88},      {"pop3", 110},        {"sunrpc", 111},      {"auth", 113},
      {"ntp", 123},          {"netbios-ns", 137},   {"netbios-dgm", 138}, {"netbios-ssn", 139}, {"imap", 143},
      {"imap2", 143},        {"snmp", 161},         {"snmp-trap", 162},   {"bgp", 179},         {"ldap", 389},
      {"https", 443},        {"microsoft-ds", 445}, {"isakmp", 500},      {"syslog", 514},      {"submission", 587},
      {"ldaps", 636},        {"rsync", 873},        {"imaps", 993},       {"pop3s", 995},       {"openvpn", 1194},
      {"ms-sql-s", 1433},    {"mysql", 3306},       {"ipp", 631},         {"nfs", 2049},        {"postgresql", 5432},
      {"ipsec-nat-t", 4500}, {"http-alt", 8080},    {"squid", 3128},      {"rdp", 3389},        {"ms-wbt-server", 3389},
      {"sip", 5060},         {"xmpp-client", 5222}, {"redis", 6379},      {"mdns", 5353}};
  uint64_t v;
  if (parse_uint(s, 65535, v)) {
    out = (uint16_t)v;
    return true;
  }
  auto it = kServices.find(s);
  if (it != kServices.end()) {
    out = it->second;
    return true;
  }
  c.error(t, "invalid port '" + std::string(s) + "'", "use a number 0-65535 or a service name such as ssh");
  return false;
}

bool parse_port_range(RuleCtx& c, const Token& t, std::string_view s, IntervalSet& out) {
  auto colon = s.find(':');
  if (colon == std::string_view::npos) {
    uint16_t p;
    if (!parse_port(c, t, s, p)) return false;
    out = IntervalSet::single(p);
    return true;
  }
  uint16_t lo = 0, hi = 65535;
  if (colon > 0 && !parse_port(c, t, s.substr(0, colon), lo)) return false;
  if (colon + 1 < s.size() && !parse_port(c, t, s.substr(colon + 1), hi)) return false;
  if (lo > hi) {
    c.error(t, "port range '" + std::string(s) + "' ends before it starts", "write LOW:HIGH");
    return false;
  }
  out = IntervalSet::range(lo, hi);
  return true;
}

std::optional<uint8_t> protocol_number(std::string_view name, ir::AddrFamily fam) {
  // iptables lower-cases -p and resolves it with getprotobyname(), so dumps
  // carry the names of netbase's /etc/protocols ("ipencap" is 4, "ipip" 94,
  // "mobility-header" 135), plus iptables' own aliases (icmpv6, ipv6-mh, mh).
  static const std::pair<std::string_view, uint8_t> kProtos[] = {{"ip", 0},
                                                                 {"hopopt", 0},
                                                                 {"icmp", 1},
                                                                 {"igmp", 2},
                                                                 {"ggp", 3},
                                                                 {"ipencap", 4},
                                                                 {"st", 5},
                                                                 {"tcp", 6},
                                                                 {"egp", 8},
                                                                 {"igp", 9},
                                                                 {"pup", 12},
                                                                 {"udp", 17},
                                                                 {"hmp", 20},
                                                                 {"xns-idp", 22},
                                                                 {"rdp", 27},
                                                                 {"iso-tp4", 29},
                                                                 {"dccp", 33},
                                                                 {"xtp", 36},
                                                                 {"ddp", 37},
                                                                 {"idpr-cmtp", 38},
                                                                 {"ipv6", 41},
                                                                 {"ipv6-route", 43},
                                                                 {"ipv6-frag", 44},
                                                                 {"idrp", 45},
                                                                 {"rsvp", 46},
                                                                 {"gre", 47},
                                                                 {"esp", 50},
                                                                 {"ah", 51},
                                                                 {"skip", 57},
                                                                 {"ipv6-icmp", 58},
                                                                 {"icmpv6", 58},
                                                                 {"ipv6-nonxt", 59},
                                                                 {"ipv6-opts", 60},
                                                                 {"rspf", 73},
                                                                 {"vmtp", 81},
                                                                 {"eigrp", 88},
                                                                 {"ospf", 89},
                                                                 {"ax.25", 93},
                                                                 {"ipip", 94},
                                                                 {"etherip", 97},
                                                                 {"encap", 98},
                                                                 {"pim", 103},
                                                                 {"ipcomp", 108},
                                                                 {"vrrp", 112},
                                                                 {"l2tp", 115},
                                                                 {"isis", 124},
                                                                 {"sctp", 132},
                                                                 {"fc", 133},
                                                                 {"mobility-header", 135},
                                                                 {"ipv6-mh", 135},
                                                                 {"mh", 135},
                                                                 {"udplite", 136},
                                                                 {"mpls-in-ip", 137},
                                                                 {"manet", 138},
                                                                 {"hip", 139},
                                                                 {"shim6", 140},
                                                                 {"wesp", 141},
                                                                 {"rohc", 142},
                                                                 {"ethernet", 143}};
  (void)fam;
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char ch) { return std::tolower(ch); });
  for (auto& [n, v] : kProtos)
    if (n == lower) return v;
  uint64_t v;
  if (parse_uint(name, 255, v)) return (uint8_t)v;
  return std::nullopt;
}

bool parse_value_mask(RuleCtx& c, const Token& t, uint64_t& value, uint64_t& mask) {
  std::string_view s = t.text;
  auto slash = s.find('/');
  mask = 0xffffffff;
  if (!parse_uint(s.substr(0, slash), 0xffffffff, value) ||
      (slash != std::string_view::npos && !parse_uint(s.substr(slash + 1), 0xffffffff, mask))) {
    c.error(t, "invalid value '" + t.text + "'", "write VALUE or VALUE/MASK, e.g. 0x4000/0x4000");
    return false;
  }
  return true;
}

// ip6tables also takes a netmask written as an address ("2001:db8::/ffff:ffff::");
// the IR takes prefix lengths. Rewrites `s` into `out` as ADDR/LEN when it has
// such a mask; false (with `err`) when the mask is not a contiguous prefix.
bool ipv6_mask_to_len(std::string_view s, std::string& out, std::string& err) {
  auto slash = s.find('/');
  if (slash == std::string_view::npos || s.find(':', slash) == std::string_view::npos) return true;
  auto m = ir::parse_addr(s.substr(slash + 1), ir::AddrFamily::V6);
  if (!m) {
    err = "invalid netmask";
    return false;
  }
  unsigned len = 0;
  while (len < 128 && ((*m >> (127 - len)) & 1)) ++len;
  if (len < 128 && (ir::u128)(*m << len) != 0) {
    err = "non-contiguous netmask; nf2bpf takes prefix masks only";
    return false;
  }
  out = std::string(s.substr(0, slash)) + "/" + std::to_string(len);
  return true;
}

}  // namespace ipt

// ---- the file parser --------------------------------------------------------

namespace {

struct BuiltinChains {
  std::string_view table;
  std::vector<Hook> hooks;
};

const std::vector<BuiltinChains> kTables = {
    {"filter", {Hook::Input, Hook::Forward, Hook::Output}},
    {"nat", {Hook::Prerouting, Hook::Input, Hook::Output, Hook::Postrouting}},
    {"mangle", {Hook::Prerouting, Hook::Input, Hook::Forward, Hook::Output, Hook::Postrouting}},
    {"raw", {Hook::Prerouting, Hook::Output}},
    {"security", {Hook::Input, Hook::Forward, Hook::Output}},
};

std::optional<Hook> builtin_hook(std::string_view chain) {
  if (chain == "PREROUTING") return Hook::Prerouting;
  if (chain == "INPUT") return Hook::Input;
  if (chain == "FORWARD") return Hook::Forward;
  if (chain == "OUTPUT") return Hook::Output;
  if (chain == "POSTROUTING") return Hook::Postrouting;
  return std::nullopt;
}

// Targets iptables has that nf2bpf does not implement: recognised, so the
// report says "unsupported target" instead of "unknown chain".
const std::unordered_set<std::string_view> kOtherTargets = {
    "TPROXY",  "TEE",         "SET",   "CHECKSUM", "TOS",       "DSCP",          "TTL",      "HL",      "CLASSIFY",
    "SECMARK", "CONNSECMARK", "AUDIT", "LED",      "IDLETIMER", "SYNPROXY",      "HMARK",    "RATEEST", "TRACE",
    "ECN",     "CLUSTERIP",   "ULOG",  "MIRROR",   "SAME",      "IPV4OPTSSTRIP", "CONNTRACK"};

class Parser {
 public:
  Parser(const Source& src, ir::AddrFamily fam, const std::vector<ir::Set>& ipsets, diag::Diagnostics& d)
      : src_(src), fam_(fam), ipsets_(ipsets), diag_(d) {}

  ir::Ruleset run();

 private:
  struct Pending {  // a jump whose target is checked at COMMIT
    size_t chain, rule;
    Token tok;
    uint32_t line;
    std::string line_text;
  };

  ir::SourceLoc loc(uint32_t line, uint32_t col, uint32_t len = 0) const { return {src_.name, line, col, len, {}}; }
  void error(uint32_t line, std::string_view text, const Token& t, std::string msg, std::string hint = {}) {
    diag_.error(loc(line, t.col, t.len), bounded(std::move(msg)), bounded(std::move(hint)), std::string(text));
  }

  void header_comment(std::string_view l);
  void begin_table(uint32_t line, std::string_view text, const Token& t);
  void declare_chain(uint32_t line, std::string_view text, const std::vector<Token>& toks);
  void commit(uint32_t line, std::string_view text, const Token& t);
  void command(uint32_t line, std::string_view text, std::vector<Token>& toks, size_t first,
               std::optional<ir::Counters> counters);
  void parse_rule(uint32_t line, std::string_view text, const std::vector<Token>& toks, size_t i, ir::Chain& chain,
                  size_t chain_idx, std::optional<ir::Counters> counters, bool insert, size_t insert_pos);
  void end_of_input(uint32_t last_line);

  const Source& src_;
  ir::AddrFamily fam_;
  const std::vector<ir::Set>& ipsets_;
  diag::Diagnostics& diag_;
  ir::Ruleset rs_;
  ir::Table* table_ = nullptr;  // the table between *name and COMMIT
  bool skipping_ = false;       // inside an unknown table: skip to COMMIT
  uint32_t table_line_ = 0;
  std::string table_text_;
  std::vector<Pending> pending_;
  std::unordered_map<std::string, size_t> chain_index_;
};

// The options every rule may have, found with one lookup (this runs for every
// word of every rule; a chain of string compares showed in profiles).
enum class Generic { None, Src, Dst, Proto, Iface, Frag, Match, Target, Counters, Family4, Family6 };
Generic generic_option(std::string_view o) {
  static const std::unordered_map<std::string_view, Generic> kOpts = {{"-s", Generic::Src},
                                                                      {"--source", Generic::Src},
                                                                      {"--src", Generic::Src},
                                                                      {"-d", Generic::Dst},
                                                                      {"--destination", Generic::Dst},
                                                                      {"--dst", Generic::Dst},
                                                                      {"-p", Generic::Proto},
                                                                      {"--protocol", Generic::Proto},
                                                                      {"-i", Generic::Iface},
                                                                      {"--in-interface", Generic::Iface},
                                                                      {"-o", Generic::Iface},
                                                                      {"--out-interface", Generic::Iface},
                                                                      {"-f", Generic::Frag},
                                                                      {"--fragment", Generic::Frag},
                                                                      {"-m", Generic::Match},
                                                                      {"--match", Generic::Match},
                                                                      {"-j", Generic::Target},
                                                                      {"--jump", Generic::Target},
                                                                      {"-g", Generic::Target},
                                                                      {"--goto", Generic::Target},
                                                                      {"-c", Generic::Counters},
                                                                      {"--set-counters", Generic::Counters},
                                                                      {"-4", Generic::Family4},
                                                                      {"--ipv4", Generic::Family4},
                                                                      {"-6", Generic::Family6},
                                                                      {"--ipv6", Generic::Family6}};
  auto it = kOpts.find(o);
  return it == kOpts.end() ? Generic::None : it->second;
}

bool parse_counters(std::string_view s, ir::Counters& c) {
  if (s.size() < 5 || s.front() != '[' || s.back() != ']') return false;
  auto colon = s.find(':');
  if (colon == std::string_view::npos) return false;
  return parse_uint(s.substr(1, colon - 1), UINT64_MAX, c.packets) &&
         parse_uint(s.substr(colon + 1, s.size() - colon - 2), UINT64_MAX, c.bytes);
}

void Parser::header_comment(std::string_view l) {
  // "# Generated by ip6tables-save v1.8.9 (nf_tables) on ..." switches the
  // family and tells the backend: "(legacy)", or a version before 1.8 (which
  // had no other), is iptables-legacy's.
  if (l.find("Generated by") != std::string_view::npos) {
    auto v = l.find(" v1.");
    bool old = v != std::string_view::npos && v + 4 < l.size() && std::isdigit((unsigned char)l[v + 4]) &&
               std::atoi(std::string(l.substr(v + 4, 3)).c_str()) < 8;
    rs_.iptables_legacy = l.find("(legacy)") != std::string_view::npos || old;
  }
  if (l.find("ip6tables-save") != std::string_view::npos || l.find("ip6tables-restore") != std::string_view::npos)
    fam_ = ir::AddrFamily::V6;
  else if (l.find("iptables-save") != std::string_view::npos || l.find("iptables-restore") != std::string_view::npos)
    fam_ = ir::AddrFamily::V4;
}

void Parser::begin_table(uint32_t line, std::string_view text, const Token& t) {
  std::string name = t.text.substr(1);
  if (table_ || skipping_) {
    error(line, text, t, "table '" + name + "' starts before the previous table's COMMIT",
          "every *table section ends with a COMMIT line");
    table_ = nullptr;
  }
  skipping_ = false;
  auto it = std::find_if(kTables.begin(), kTables.end(), [&](auto& b) { return b.table == name; });
  if (it == kTables.end()) {
    error(line, text, t, "unknown table '" + name + "'", "iptables tables are filter, nat, mangle, raw and security");
    skipping_ = true;
    table_line_ = line;
    return;
  }
  ir::Family fam = fam_ == ir::AddrFamily::V4 ? ir::Family::Ip : ir::Family::Ip6;
  for (auto& existing : rs_.tables)
    if (existing.name == name && existing.family == fam) {
      error(line, text, t, "table '" + name + "' appears twice",
            "iptables-restore would replace the first copy; merge the two sections");
    }
  rs_.tables.push_back({});
  table_ = &rs_.tables.back();
  table_->family = fam;
  table_->name = name;
  table_->loc = loc(line, t.col, t.len);
  table_line_ = line;
  table_text_ = std::string(text);
  chain_index_.clear();
  pending_.clear();
  // Built-in chains exist even when not declared.
  for (Hook h : it->hooks) {
    ir::Chain c;
    static const char* kNames[] = {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"};
    c.name = kNames[(int)h];
    ir::BaseChain b;
    b.hook = h;
    b.type = ir::iptables_chain_type(name, h);
    b.priority = ir::iptables_table_priority(name);
    if (name == "nat" && (h == Hook::Postrouting || h == Hook::Input)) b.priority = 100;
    b.policy = ir::VerdictKind::Accept;
    c.base = b;
    c.loc = table_->loc;
    chain_index_[c.name] = table_->chains.size();
    table_->chains.push_back(std::move(c));
  }
}

void Parser::declare_chain(uint32_t line, std::string_view text, const std::vector<Token>& toks) {
  const Token& t = toks[0];
  std::string name = t.text.substr(1);
  if (name.empty()) {
    error(line, text, t, "chain declaration without a name", "write ':NAME POLICY [packets:bytes]'");
    return;
  }
  if (name.size() > 28)
    error(line, text, t, "chain name '" + name + "' is longer than 28 characters",
          "iptables limits chain names to 28 characters");
  if (toks.size() < 2) {
    error(line, text, t, "chain declaration without a policy",
          "built-in chains take ACCEPT or DROP, user chains take '-'");
    return;
  }
  const Token& pol = toks[1];
  auto hook = builtin_hook(name);
  auto idx = chain_index_.find(name);
  bool builtin = hook && idx != chain_index_.end() && table_->chains[idx->second].base;
  if (builtin) {
    auto& c = table_->chains[idx->second];
    c.loc = loc(line, t.col, t.len);
    if (pol.text == "ACCEPT")
      c.base->policy = ir::VerdictKind::Accept;
    else if (pol.text == "DROP")
      c.base->policy = ir::VerdictKind::Drop;
    else {
      error(line, text, pol, "invalid policy '" + pol.text + "' for built-in chain " + name,
            "a built-in chain's policy is ACCEPT or DROP");
    }
  } else {
    if (hook) {
      error(line, text, t, "'" + name + "' is not a built-in chain of table '" + table_->name + "'",
            "rename the chain; built-in chain names are reserved");
      return;
    }
    if (pol.text != "-") {
      error(line, text, pol, "user chain '" + name + "' has policy '" + pol.text + "'",
            "only built-in chains have a policy; write '-'");
    }
    if (idx != chain_index_.end()) {
      error(line, text, t, "chain '" + name + "' is declared twice");
      return;
    }
    if (ipt::find_target(name) || kOtherTargets.count(name)) {
      error(line, text, t, "chain name '" + name + "' is the name of a target", "choose another name");
    }
    ir::Chain c;
    c.name = name;
    c.loc = loc(line, t.col, t.len);
    chain_index_[name] = table_->chains.size();
    table_->chains.push_back(std::move(c));
  }
  auto& c = table_->chains[chain_index_[name]];
  if (toks.size() >= 3) {
    ir::Counters cnt;
    if (parse_counters(toks[2].text, cnt))
      c.counters = cnt;
    else
      error(line, text, toks[2], "invalid counters '" + toks[2].text + "'", "write [packets:bytes]");
  }
  if (toks.size() > 3) error(line, text, toks[3], "unexpected '" + toks[3].text + "' after chain declaration");
}

void Parser::commit(uint32_t line, std::string_view text, const Token& t) {
  if (!table_ && !skipping_) {
    error(line, text, t, "COMMIT outside a table", "a table section starts with '*filter' (or another table)");
    return;
  }
  if (table_) {
    for (auto& p : pending_) {
      auto& rule = table_->chains[p.chain].rules[p.rule];
      if (!chain_index_.count(rule.verdict.chain)) {
        diag_.error(
            loc(p.line, p.tok.col, p.tok.len), bounded("unknown target or chain '" + rule.verdict.chain + "'"),
            bounded("declare the chain with ':" + rule.verdict.chain + " - [0:0]' or check the target's spelling"),
            p.line_text);
      } else if (table_->chains[chain_index_[rule.verdict.chain]].base) {
        diag_.error(loc(p.line, p.tok.col, p.tok.len),
                    bounded("cannot jump to built-in chain '" + rule.verdict.chain + "'"),
                    "jumps go to user chains only", p.line_text);
      }
    }
    for (const auto& m : misplaced_nat(rs_, *table_, true))
      diag_.error(m.stmt->loc, bounded(m.message), bounded(m.hint), m.rule->text);
  }
  table_ = nullptr;
  skipping_ = false;
  pending_.clear();
}

void Parser::command(uint32_t line, std::string_view text, std::vector<Token>& toks, size_t i,
                     std::optional<ir::Counters> counters) {
  const Token& cmd = toks[i];
  if (!table_) {
    if (!skipping_)
      error(line, text, cmd, "'" + cmd.text + "' outside a table", "rules follow a '*filter' (or other table) line");
    return;
  }
  auto need_chain = [&](size_t at) -> ir::Chain* {
    if (at >= toks.size()) {
      error(line, text, cmd, "'" + cmd.text + "' without a chain name");
      return nullptr;
    }
    auto it = chain_index_.find(toks[at].text);
    if (it == chain_index_.end()) {
      error(line, text, toks[at], "chain '" + toks[at].text + "' does not exist in table '" + table_->name + "'",
            "declare it first with ':" + toks[at].text + " - [0:0]'");
      return nullptr;
    }
    return &table_->chains[it->second];
  };
  const std::string& c = cmd.text;
  if (c == "-A" || c == "--append") {
    ir::Chain* ch = need_chain(i + 1);
    if (ch) parse_rule(line, text, toks, i + 2, *ch, chain_index_[ch->name], counters, false, 0);
  } else if (c == "-I" || c == "--insert") {
    ir::Chain* ch = need_chain(i + 1);
    if (!ch) return;
    size_t at = i + 2, pos = 0;
    uint64_t n;
    if (at < toks.size() && parse_uint(toks[at].text, 1u << 30, n)) {
      if (n == 0 || n > ch->rules.size() + 1) {
        error(line, text, toks[at], "rule position " + toks[at].text + " is out of range",
              "chain '" + ch->name + "' has " + std::to_string(ch->rules.size()) + " rules here");
        return;
      }
      pos = n - 1;
      ++at;
    }
    parse_rule(line, text, toks, at, *ch, chain_index_[ch->name], counters, true, pos);
  } else if (c == "-N" || c == "--new-chain") {
    if (i + 1 >= toks.size()) {
      error(line, text, cmd, "-N without a chain name");
      return;
    }
    std::vector<Token> decl = {toks[i + 1], Token{"-", toks[i + 1].col, 1, false}};
    decl[0].text = ":" + decl[0].text;
    declare_chain(line, text, decl);
  } else if (c == "-P" || c == "--policy") {
    if (i + 2 >= toks.size()) {
      error(line, text, cmd, "-P needs a chain and a policy");
      return;
    }
    std::vector<Token> decl = {toks[i + 1], toks[i + 2]};
    decl[0].text = ":" + decl[0].text;
    declare_chain(line, text, decl);
  } else {
    error(line, text, cmd, "unknown command '" + c + "'",
          "iptables-save files contain *table, :chain, -A rules and COMMIT");
  }
}

// The options of one rule, left to right, into `c.rule`. Each handler
// returns false when the rest of the rule cannot be read.
class RuleOptions {
 public:
  RuleOptions(RuleCtx& c, const std::vector<Token>& toks, size_t i, ir::AddrFamily fam)
      : c_(c), toks_(toks), i_(i), fam_(fam) {}
  void parse();
  const Token* jump_tok() const { return jump_tok_; }
  // -6 in iptables-restore's input (-4 in ip6tables-restore's): the rule is
  // for the other family, and iptables-restore skips it without a word.
  bool other_family() const { return other_family_; }

 private:
  void check_at_end();
  std::optional<Args> args_for(int nargs, const Token& opt, bool& neg);
  void addr(const Token& opt, bool neg, const Args& a, Field f, const char* cap);
  bool proto(const Token& opt, bool neg);
  bool iface(const Token& opt, bool neg);
  bool match(const Token& opt, bool neg);
  void skip_unknown_module_options(ir::Match& mm);
  bool target(const Token& opt, bool neg);
  bool counters(const Token& opt, bool neg);
  bool module_option(const Token& opt, bool neg);
  const OptSpec* find_option(const std::string& o, bool implicit = true);
  std::string expand(const std::string& o, bool implicit);
  std::deque<Token> expanded_;  // options written abbreviated, spelt out (stable addresses)

  RuleCtx& c_;
  const std::vector<Token>& toks_;
  size_t i_;
  ir::AddrFamily fam_;
  std::vector<const ModuleSpec*> loaded_;  // -m modules, most recent last
  const TargetSpec* target_ = nullptr;
  bool have_target_ = false, have_proto_ = false;
  std::string unknown_target_;  // a known-but-unimplemented target's name
  const Token* jump_tok_ = nullptr;
  const Token* target_tok_ = nullptr;
  // -m tcp, udp, sctp, icmp ... need their protocol anywhere in the rule: the
  // kernel checks it when the rule is loaded (`-m tcp -p tcp` is fine).
  std::vector<std::pair<const ModuleSpec*, const Token*>> need_proto_;
  const Token* limit_tok_ = nullptr;  // -m limit's name, if the rule loads it
  // iptables refuses '!' on -s or -d when either holds an address list.
  const Token* list_tok_ = nullptr;
  bool negated_addr_ = false;
  bool other_family_ = false;
};

// The words after an option; `neg` is set by the old syntax "--dport ! 22".
std::optional<Args> RuleOptions::args_for(int nargs, const Token& opt, bool& neg) {
  Args a;
  nargs = std::min(nargs, (int)Args::kMax);  // option tables take at most kMax words
  for (int k = 0; k < nargs; ++k) {
    if (i_ >= toks_.size()) {
      c_.error(opt,
               "option '" + opt.text + "' needs " + std::to_string(nargs) + (nargs == 1 ? " argument" : " arguments"));
      return std::nullopt;
    }
    // Old syntax: "--dport ! 22", "-s ! 10.0.0.1".
    if (k == 0 && toks_[i_].text == "!" && !toks_[i_].quoted) {
      if (neg) {
        c_.error(toks_[i_], "'!' given twice");
        return std::nullopt;
      }
      neg = true;
      ++i_;
      if (i_ >= toks_.size()) {
        c_.error(opt, "option '" + opt.text + "' needs an argument after '!'");
        return std::nullopt;
      }
    }
    a.push_back(&toks_[i_++]);
  }
  return a;
}

void RuleOptions::parse() {
  while (i_ < toks_.size()) {
    bool neg = false;
    if (toks_[i_].text == "!" && !toks_[i_].quoted) {
      neg = true;
      if (++i_ >= toks_.size()) {
        c_.error(toks_[i_ - 1], "'!' at the end of the rule", "'!' negates the option that follows it");
        break;
      }
    }
    const Token* optp = &toks_[i_++];
    // getopt_long knows the loaded modules' options, abbreviated too; only
    // then does iptables load the protocol's module for an unknown option.
    if (optp->text.starts_with("--") && generic_option(optp->text) == Generic::None && unknown_target_.empty() &&
        !find_option(optp->text, false)) {
      std::string full = expand(optp->text, false);
      if (full.empty() && !find_option(optp->text, true)) full = expand(optp->text, true);
      if (!full.empty()) {
        expanded_.push_back(*optp);
        expanded_.back().text = full;
        optp = &expanded_.back();
      }
    }
    const Token& opt = *optp;
    const std::string& o = opt.text;
    if (o.size() < 2 || o[0] != '-' || opt.quoted) {
      c_.error(opt, "unexpected '" + o + "'", "expected an option such as -p, -m or -j");
      break;
    }
    bool more = true;
    switch (generic_option(o)) {
      case Generic::Src:
        if (auto a = args_for(1, opt, neg)) addr(opt, neg, *a, Field::SrcAddr, "-s");
        break;
      case Generic::Dst:
        if (auto a = args_for(1, opt, neg)) addr(opt, neg, *a, Field::DstAddr, "-d");
        break;
      case Generic::Proto: more = proto(opt, neg); break;
      case Generic::Iface: more = iface(opt, neg); break;
      case Generic::Frag:
        c_.add_match(Field::Fragment, false, neg ? IntervalSet::single(0) : IntervalSet::single(1), "-f", opt, "");
        break;
      case Generic::Match: more = match(opt, neg); break;
      case Generic::Target: more = target(opt, neg); break;
      case Generic::Counters: more = counters(opt, neg); break;
      case Generic::Family4:
      case Generic::Family6:
        if ((generic_option(o) == Generic::Family4) != (fam_ == ir::AddrFamily::V4)) {
          other_family_ = true;
          return;
        }
        break;
      case Generic::None:
        if (o.starts_with("--")) {
          more = module_option(opt, neg);
        } else {
          c_.error(opt, "unknown option '" + o + "'", "see iptables(8) for the rule syntax");
          more = false;
        }
        break;
    }
    if (!more) break;
  }
  if (list_tok_ && negated_addr_ && !c_.failed)
    c_.error(*list_tok_, "'!' cannot be used with multiple source or destination addresses",
             "iptables refuses it; write one rule per address");
  if (!c_.failed) check_at_end();
}

// What iptables checks once the whole rule is read.
void RuleOptions::check_at_end() {
  // A bare -m limit limits too: 3/hour, burst 5.
  if (limit_tok_ && std::none_of(c_.rule.matches.begin(), c_.rule.matches.end(),
                                 [](const ir::Match& m) { return m.module == "limit"; }))
    c_.add_match(Field::Opaque, false, IntervalSet{}, "-m limit --limit", *limit_tok_, "limit");
  for (auto [m, at] : need_proto_) {
    bool ok = !c_.proto_negated && std::find(m->protos.begin(), m->protos.end(), c_.proto) != m->protos.end();
    if (!ok) {
      std::string want = m->name == "icmp6" ? "icmpv6" : std::string(m->name);
      c_.error(*at, "-m " + std::string(m->name) + " needs -p " + want,
               "the kernel refuses this match without its protocol");
      return;
    }
  }
  if (c_.needs_tcp && !(c_.proto == 6 && !c_.proto_negated)) {
    c_.error(*c_.needs_tcp, "--reject-with tcp-reset needs -p tcp", "the kernel refuses this rule; add -p tcp");
    return;
  }
  if (target_ && !target_->required.empty() && !c_.rule.statements.empty()) {
    const auto& st = c_.rule.statements.back();
    bool given = std::any_of(st.args.begin(), st.args.end(), [&](auto& kv) { return kv.first == target_->required; });
    if (!given)
      c_.error(*target_tok_, "-j " + std::string(target_->name) + " needs " + std::string(target_->required),
               "iptables refuses " + std::string(target_->name) + " without option \"" +
                   std::string(target_->required) + "\"");
  }
}

// -s / -d: an address, a prefix or a comma-separated list of them.
void RuleOptions::addr(const Token& opt, bool neg, const Args& a, Field f, const char* cap) {
  IntervalSet s;
  size_t n = 0;
  for (std::string_view one : split(a[0]->text, ',')) {
    std::string err;
    std::string with_len;
    if (fam_ == ir::AddrFamily::V6 && !ipv6_mask_to_len(one, with_len, err)) {
      c_.error(*a[0], "invalid address '" + std::string(one) + "': " + err);
      return;
    }
    if (!with_len.empty()) one = with_len;
    auto v = ir::parse_cidr(one, fam_, err);
    if (!v) {
      c_.error(*a[0], "invalid address '" + std::string(one) + "': " + err);
      return;
    }
    ++n;
    s.add(*v);
  }
  if (n > 1) list_tok_ = a[0];
  if (neg) negated_addr_ = true;
  c_.add_match(f, neg, s, cap, opt, "");
}

bool RuleOptions::proto(const Token& opt, bool neg) {
  auto a = args_for(1, opt, neg);
  if (!a) return false;
  if (have_proto_) {
    c_.error(opt, "-p given twice", "a rule matches one protocol");
    return true;
  }
  have_proto_ = true;
  if ((*a)[0]->text == "all" || (*a)[0]->text == "0") {
    if (neg) c_.add_match(Field::L4Proto, false, IntervalSet{}, "-p", opt, "");  // never matches
    return true;
  }
  auto p = protocol_number((*a)[0]->text, fam_);
  if (!p) {
    c_.error(*(*a)[0], "unknown protocol '" + (*a)[0]->text + "'",
             "use a name (tcp, udp, icmp, ...) or a number 0-255");
    return true;
  }
  c_.proto = *p;
  c_.proto_negated = neg;
  c_.add_match(Field::L4Proto, neg, IntervalSet::single(*p), "-p", opt, "");
  return true;
}

bool RuleOptions::iface(const Token& opt, bool neg) {
  auto a = args_for(1, opt, neg);
  if (!a) return false;
  std::string name = (*a)[0]->text;
  if (name.size() > 15) {
    c_.error(*(*a)[0], "interface name '" + name + "' is longer than 15 characters");
    return true;
  }
  ir::IfacePattern p;
  p.prefix = !name.empty() && name.back() == '+';
  p.name = p.prefix ? name.substr(0, name.size() - 1) : name;
  bool in = opt.text == "-i" || opt.text == "--in-interface";
  if (!(p.prefix && p.name.empty()))  // "+" matches every interface
    c_.add_match(in ? Field::IifName : Field::OifName, neg, std::vector<ir::IfacePattern>{p}, in ? "-i" : "-o", opt,
                 "");
  return true;
}

bool RuleOptions::match(const Token& opt, bool neg) {
  auto a = args_for(1, opt, neg);
  if (!a) return false;
  const std::string& name = (*a)[0]->text;
  const ModuleSpec* m = find_match_module(name);
  if (!m) {
    // Unknown to nf2bpf: keep it as an opaque match so the report names it.
    auto& mm = c_.add_match(Field::Opaque, false, IntervalSet{}, "-m " + name, *(*a)[0], name);
    skip_unknown_module_options(mm);
    return true;
  }
  if (neg) c_.error(opt, "'!' cannot negate -m", "put '!' before the module's option instead");
  // multiport's protocol is checked by iptables when it reads the port
  // option (multiport.cpp); the others' by the kernel, after the whole rule.
  if (!m->protos.empty() && m->name != "multiport") need_proto_.emplace_back(m, (*a)[0]);
  loaded_.push_back(m);
  if (m->name == "limit") limit_tok_ = (*a)[0];
  return true;
}

// Every following --option of an unknown module and the words after it,
// kept with its opaque match.
void RuleOptions::skip_unknown_module_options(ir::Match& mm) {
  while (i_ < toks_.size()) {
    size_t save = i_;
    bool oneg = false;
    if (toks_[i_].text == "!" && i_ + 1 < toks_.size() && toks_[i_ + 1].text.starts_with("--")) {
      oneg = true;
      ++i_;
    }
    const std::string& t = toks_[i_].text;
    if (!t.starts_with("--") || t == "--jump" || t == "--goto" || t == "--match" || t == "--source" ||
        t == "--destination" || t == "--protocol") {
      i_ = save;
      break;
    }
    std::string v;
    size_t j = i_ + 1;
    for (; j < toks_.size(); ++j) {
      const Token& w = toks_[j];
      bool is_opt = !w.quoted && w.text.size() > 1 && w.text[0] == '-' && !std::isdigit((unsigned char)w.text[1]);
      if (is_opt || (!w.quoted && w.text == "!")) break;
      v += (v.empty() ? "" : " ") + w.text;
    }
    mm.args.emplace_back((oneg ? "! " : "") + t, v);
    i_ = j;
  }
}

bool RuleOptions::target(const Token& opt, bool neg) {
  auto a = args_for(1, opt, neg);
  if (!a) return false;
  const std::string& o = opt.text;
  if (have_target_) {
    c_.error(opt, "more than one target", "a rule has one -j or -g");
    return false;
  }
  have_target_ = true;
  const Token& t = *(*a)[0];
  bool is_goto = o == "-g" || o == "--goto";
  if (neg) c_.error(opt, "'!' cannot negate " + o);
  target_ = is_goto ? nullptr : find_target(t.text);
  target_tok_ = &t;
  if (target_) {
    target_->init(c_, t);
  } else if (!is_goto && kOtherTargets.count(t.text)) {
    unknown_target_ = t.text;
    c_.add_stmt(ir::StmtKind::Other, "-j " + t.text, t);
  } else {
    c_.rule.verdict.kind = is_goto ? ir::VerdictKind::Goto : ir::VerdictKind::Jump;
    c_.rule.verdict.chain = t.text;
    c_.rule.verdict.cap = is_goto ? "-g <chain>" : "-j <chain>";
    c_.rule.verdict.loc = c_.loc(t);
    jump_tok_ = &t;
  }
  return true;
}

bool RuleOptions::counters(const Token& opt, bool neg) {
  auto a = args_for(2, opt, neg);
  if (!a) return false;
  ir::Counters cnt;
  if (!parse_uint((*a)[0]->text, UINT64_MAX, cnt.packets) || !parse_uint((*a)[1]->text, UINT64_MAX, cnt.bytes))
    c_.error(opt, "invalid counters", "write -c PACKETS BYTES");
  else
    c_.rule.counters = cnt;
  return true;
}

// The match iptables loads for -p PROTO when an option needs it.
const char* implicit_module(uint32_t proto) {
  return proto == 6     ? "tcp"
         : proto == 17  ? "udp"
         : proto == 132 ? "sctp"
         : proto == 1   ? "icmp"
         : proto == 58  ? "icmp6"
         : proto == 136 ? "udplite"
                        : nullptr;
}

// A module or target option: target first, then modules, newest first; then
// the protocol's implicit module (iptables loads -p tcp's "tcp").
const OptSpec* RuleOptions::find_option(const std::string& o, bool implicit) {
  const OptSpec* spec = nullptr;
  if (target_)
    for (auto& s : target_->options)
      if (s.name == o) spec = &s;
  for (auto it = loaded_.rbegin(); !spec && it != loaded_.rend(); ++it)
    for (auto& s : (*it)->options)
      if (s.name == o) spec = &s;
  if (!spec && implicit && c_.proto && !c_.proto_negated) {
    if (const char* name = implicit_module(c_.proto))
      if (auto* m = find_match_module(name)) {
        for (auto& s : m->options)
          if (s.name == o) {
            spec = &s;
            loaded_.push_back(m);
          }
      }
  }
  return spec;
}

// getopt_long's abbreviations, as iptables-restore reads them: an option
// no name matches stands for the one option whose name it begins (generic,
// the target's, the loaded modules' or the protocol's implicit module's):
// "--mac" for "--mac-source", "--proto" for "--protocol". "" when there is
// none or more than one.
std::string RuleOptions::expand(const std::string& o, bool implicit) {
  static const char* kGeneric[] = {"--source",   "--destination", "--protocol", "--in-interface", "--out-interface",
                                   "--fragment", "--match",       "--jump",     "--goto",         "--set-counters"};
  std::set<std::string> names;
  auto add = [&](std::string_view n) {
    if (n.size() > o.size() && n.starts_with(o)) names.insert(std::string(n));
  };
  for (const char* n : kGeneric) add(n);
  if (target_)
    for (auto& sp : target_->options) add(sp.name);
  for (auto* m : loaded_)
    for (auto& sp : m->options) add(sp.name);
  if (const char* name = implicit_module(c_.proto); implicit && name && !c_.proto_negated)
    if (auto* m = find_match_module(name))
      for (auto& sp : m->options) add(sp.name);
  return names.size() == 1 ? *names.begin() : "";
}

bool RuleOptions::module_option(const Token& opt, bool neg) {
  const std::string& o = opt.text;
  const OptSpec* spec = find_option(o);
  if (!spec && !unknown_target_.empty()) {
    // Options of an unimplemented target: record them with the statement.
    std::string v;
    while (i_ < toks_.size() && !(toks_[i_].text.starts_with("-") && !toks_[i_].quoted))
      v += (v.empty() ? "" : " ") + toks_[i_++].text;
    c_.rule.statements.back().args.emplace_back(o, v);
    return true;
  }
  if (!spec) {
    std::string where;
    if (!loaded_.empty()) where = " for match '" + std::string(loaded_.back()->name) + "'";
    if (target_) where += (where.empty() ? " for target '" : " or target '") + std::string(target_->name) + "'";
    std::string hint = loaded_.empty() && !target_ ? "load the match module first, e.g. '-m tcp --dport 22'" : "";
    c_.error(opt, "unknown option '" + o + "'" + where, hint);
    return false;
  }
  auto a = args_for(spec->nargs, opt, neg);
  if (!a) return false;
  if (neg && !spec->negatable) {
    c_.error(opt, "'!' cannot negate " + o);
    return true;
  }
  spec->fn(c_, neg, opt, *a);
  return true;
}

void Parser::parse_rule(uint32_t line, std::string_view text, const std::vector<Token>& toks, size_t i,
                        ir::Chain& chain, size_t chain_idx, std::optional<ir::Counters> counters, bool insert,
                        size_t insert_pos) {
  ir::Rule rule;
  rule.matches.reserve(6);  // one allocation for the usual rule, not one per growth step
  rule.loc = loc(line, 1);
  rule.text = std::string(text);
  rule.counters = counters;
  RuleCtx c{diag_, src_.name, line, text, fam_, rule, ipsets_};
  // getopt_long's "--option=value": two words.
  std::vector<Token> split;
  for (size_t k = i; k < toks.size(); ++k) {
    const Token& t = toks[k];
    size_t eq = t.quoted || !t.text.starts_with("--") ? std::string::npos : t.text.find('=');
    if (split.empty() && eq != std::string::npos) split.assign(toks.begin(), toks.begin() + (long)k);
    if (eq == std::string::npos || eq < 3) {
      if (!split.empty()) split.push_back(t);
      continue;
    }
    split.push_back(Token{t.text.substr(0, eq), t.col, (uint32_t)eq, false});
    split.push_back(Token{t.text.substr(eq + 1), t.col + (uint32_t)eq + 1, t.len - (uint32_t)eq - 1, false});
  }
  RuleOptions opts(c, split.empty() ? toks : split, i, fam_);
  opts.parse();
  if (c.failed || opts.other_family()) return;  // errors already reported; the rule is not kept
  const Token* jump_tok = opts.jump_tok();
  auto& rules = chain.rules;
  size_t pos = insert ? insert_pos : rules.size();
  if (jump_tok) {
    // Positions shift on insert; fix pending entries of this chain.
    if (insert)
      for (auto& p : pending_)
        if (p.chain == chain_idx && p.rule >= pos) ++p.rule;
    pending_.push_back({chain_idx, pos, *jump_tok, line, std::string(text)});
  } else if (insert) {
    for (auto& p : pending_)
      if (p.chain == chain_idx && p.rule >= pos) ++p.rule;
  }
  rules.insert(rules.begin() + (long)pos, std::move(rule));
}

void Parser::end_of_input(uint32_t last_line) {
  if (table_ || skipping_) {
    std::string name = table_ ? table_->name : "?";
    diag_.error(loc(table_line_, 1, (uint32_t)name.size() + 1), "table '" + name + "' has no COMMIT line",
                "iptables-restore ignores a table without COMMIT; add COMMIT at line " + std::to_string(last_line + 1),
                table_text_);
    if (table_) commit(last_line, "", Token{"COMMIT", 1, 6, false});
  }
}

ir::Ruleset Parser::run() {
  rs_.source = src_.name;
  rs_.frontend = fam_ == ir::AddrFamily::V4 ? ir::Frontend::Iptables : ir::Frontend::Ip6tables;
  bool saw_v4 = false, saw_v6 = false;
  auto lines = src_.lines();
  uint32_t lineno = 0;
  // Reserve so Table pointers stay valid: tables never exceed the line count.
  size_t stars = 0;
  for (auto l : lines)
    if (!l.empty() && l[0] == '*') ++stars;
  rs_.tables.reserve(stars + 1);

  for (std::string_view l : lines) {
    ++lineno;
    progress::tick("parsing lines", lineno, lines.size());
    size_t first = l.find_first_not_of(" \t");
    if (first == std::string_view::npos) continue;
    if (l[first] == '#') {
      header_comment(l);
      continue;
    }
    if (std::memchr(l.data(), 0, l.size())) {
      diag_.error(loc(lineno, 1), "binary data in the input", "is this an iptables-save dump?", std::string(l));
      if (diag_.errors() > 50) break;
      continue;
    }
    auto lex = lex_line(l);
    if (lex.unterminated_quote) {
      diag_.error(loc(lineno, lex.quote_col, 1), "unterminated quote", "close the quote before the end of the line",
                  std::string(l));
      continue;
    }
    auto& toks = lex.tokens;
    if (toks.empty()) continue;
    const Token& t0 = toks[0];
    if (t0.text[0] == '*') {
      // Old dumps wrote "* nat" with a space.
      Token t = t0;
      if (t.text == "*" && toks.size() > 1) {
        t.text = "*" + toks[1].text;
        t.len = toks[1].col + toks[1].len - t0.col;
      }
      if (t.text.size() < 2) {
        error(lineno, l, t0, "table line without a table name", "write *filter, *nat, *mangle, *raw or *security");
        continue;
      }
      (fam_ == ir::AddrFamily::V4 ? saw_v4 : saw_v6) = true;
      begin_table(lineno, l, t);
      continue;
    }
    if (skipping_ && t0.text != "COMMIT") continue;
    if (t0.text[0] == ':') {
      if (!table_) {
        error(lineno, l, t0, "chain declaration outside a table", "declarations follow a '*filter' line");
        continue;
      }
      declare_chain(lineno, l, toks);
      continue;
    }
    if (t0.text == "COMMIT") {
      if (toks.size() > 1) error(lineno, l, toks[1], "unexpected '" + toks[1].text + "' after COMMIT");
      commit(lineno, l, t0);
      continue;
    }
    std::optional<ir::Counters> counters;
    size_t i = 0;
    if (t0.text[0] == '[') {
      ir::Counters cnt;
      if (!parse_counters(t0.text, cnt)) {
        error(lineno, l, t0, "invalid counters '" + t0.text + "'", "write [packets:bytes]");
        continue;
      }
      counters = cnt;
      i = 1;
      if (toks.size() < 2) {
        error(lineno, l, t0, "counters without a rule");
        continue;
      }
    }
    if (toks[i].text[0] == '-') {
      command(lineno, l, toks, i, counters);
      continue;
    }
    error(lineno, l, toks[i], "unexpected '" + toks[i].text + "'",
          "an iptables-save line is a comment, *table, :chain, a rule (-A CHAIN ...) or COMMIT");
    if (diag_.errors() > 100) break;
  }
  end_of_input(lineno);
  if (saw_v6 && !saw_v4) rs_.frontend = ir::Frontend::Ip6tables;
  if (saw_v4) rs_.frontend = ir::Frontend::Iptables;
  if (rs_.tables.empty() && !diag_.has_errors())
    diag_.error(loc(lineno ? lineno : 1, 1), "no tables in the input",
                "expected iptables-save output: '*filter', chains, rules, 'COMMIT'");
  rs_.global_sets = ipsets_;
  return std::move(rs_);
}

}  // namespace

ir::Ruleset parse_iptables(const Source& src, ir::AddrFamily fam, const std::vector<ir::Set>& ipsets,
                           diag::Diagnostics& diags) {
  Parser p(src, fam, ipsets, diags);
  return p.run();
}

}  // namespace nf2bpf::frontend
