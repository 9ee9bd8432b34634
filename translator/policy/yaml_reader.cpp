// The reader half of the policy YAML (yaml.h): validates everything before
// anything is loaded, and locates the first problem in the file.
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <arpa/inet.h>

#include <cstring>
#include <sstream>
#include <unordered_map>

#include "translator/policy/yaml.h"
#include "translator/policy/yaml_schema.h"

namespace nf2bpf::policy {

using namespace yaml_schema;

namespace {

bool parse_cidr_text(std::string_view s, u128& addr, unsigned& len) {
  auto slash = s.find('/');
  if (slash == std::string_view::npos) return false;
  std::string a(s.substr(0, slash));
  uint64_t l = 0;
  Cursor c{s.substr(slash + 1)};
  if (!c.dec(l, 128) || !c.done()) return false;
  if (a.find(':') == std::string::npos) {
    in_addr x{};
    if (inet_pton(AF_INET, a.c_str(), &x) != 1 || l > 32) return false;
    addr = ir::v4_to_u128(ntohl(x.s_addr));
    len = (unsigned)l + 96;
    return true;
  }
  in6_addr x{};
  if (inet_pton(AF_INET6, a.c_str(), &x) != 1) return false;
  addr = 0;
  for (int i = 0; i < 16; ++i) addr = addr << 8 | x.s6_addr[i];
  len = (unsigned)l;
  // The IPv4-mapped form of a /96-or-longer prefix is spelled dotted.
  return !(ir::is_v4_mapped(addr) && len >= 96);
}

// The first problem found; thrown inside the reader only and turned into a
// diagnostic by from_yaml.
struct Refused {
  YAML::Mark mark;
  size_t offset = 0;  // into the scalar at mark
  bool quoted = false;
  std::string message, hint;
};

[[noreturn]] void refuse(const YAML::Node& n, std::string msg, std::string hint = {}, size_t offset = 0) {
  throw Refused{n.Mark(), offset, n.IsScalar() && n.Tag() == "!", std::move(msg), std::move(hint)};
}

class Loader {
 public:
  Loader(const YAML::Node& root, Policy& p) : root_(root), p_(p) {}
  void run();

 private:
  // A map's keys, each allowed once and each known.
  struct Fields {
    YAML::Node self;
    std::vector<std::pair<std::string, YAML::Node>> items;
    YAML::Node get(const std::string& k) const {
      for (const auto& [key, v] : items)
        if (key == k) return v;
      return YAML::Node(YAML::NodeType::Undefined);
    }
    YAML::Node req(const std::string& k, const std::string& what) const {
      YAML::Node v = get(k);
      if (!v.IsDefined()) refuse(self, what + " has no '" + k + "'", "the file is truncated or was edited");
      return v;
    }
  };
  Fields fields(const YAML::Node& n, const std::string& what, std::initializer_list<const char*> known);
  // By value: callers loop over seq(f.req(...)), whose temporary a
  // returned reference would outlive.
  YAML::Node seq(const YAML::Node& n, const std::string& what);
  std::string str(const YAML::Node& n, const std::string& what);
  uint64_t number(const YAML::Node& n, const std::string& what, uint64_t max);
  std::pair<uint64_t, uint64_t> pair(const YAML::Node& n, const std::string& what, uint64_t max);
  uint32_t slot(const YAML::Node& n, std::string_view name, size_t offset);
  template <typename T>
  void count_is(const YAML::Node& n, const std::vector<T>& v, const char* what, uint64_t expect);
  Origin origin(const Fields& f, const std::string& what, const char* text_key);
  nf2bpf_stmt stmt(const YAML::Node& n);
  nf2bpf_nat nat(const YAML::Node& n);
  Service service(const YAML::Node& n);

  void header();
  void rules();
  void stages();
  void machine();
  void small();
  void interfaces();

  const YAML::Node& root_;
  Policy& p_;
  Fields top_;
  std::unordered_map<std::string, uint64_t> counts_;
  ChainIndex chain_idx_;  // p_.chain_names, indexed once they are read
  YAML::Node counts_node_;
};

Loader::Fields Loader::fields(const YAML::Node& n, const std::string& what, std::initializer_list<const char*> known) {
  if (!n.IsMap()) refuse(n, what + " must be a map");
  Fields f{n, {}};
  for (auto it = n.begin(); it != n.end(); ++it) {
    if (!it->first.IsScalar()) refuse(it->first, "unexpected key in " + what);
    const std::string& k = it->first.Scalar();
    bool ok = false;
    for (const char* x : known) ok |= k == x;
    if (!ok) refuse(it->first, "unknown key '" + k + "' in " + what);
    if (f.get(k).IsDefined()) refuse(it->first, "'" + k + "' appears twice in " + what);
    f.items.emplace_back(k, it->second);
  }
  return f;
}

YAML::Node Loader::seq(const YAML::Node& n, const std::string& what) {
  if (!n.IsSequence()) refuse(n, what + " must be a list");
  return n;
}

std::string Loader::str(const YAML::Node& n, const std::string& what) {
  if (!n.IsScalar()) refuse(n, what + " must be a string");
  if (n.Tag() == "tag:yaml.org,2002:binary") {
    auto bytes = YAML::DecodeBase64(n.Scalar());
    if (bytes.empty() && !n.Scalar().empty()) refuse(n, what + " is not valid base64");
    return std::string(bytes.begin(), bytes.end());
  }
  return n.Scalar();
}

uint64_t Loader::number(const YAML::Node& n, const std::string& what, uint64_t max) {
  if (!n.IsScalar() || n.Tag() != "?") refuse(n, what + " must be a number");
  Cursor c{n.Scalar()};
  uint64_t v = 0;
  if (!c.dec(v, max) || !c.done()) refuse(n, what + " must be a number 0.." + std::to_string(max));
  return v;
}

std::pair<uint64_t, uint64_t> Loader::pair(const YAML::Node& n, const std::string& what, uint64_t max) {
  if (!n.IsSequence() || n.size() != 2) refuse(n, what + " must be a pair [a, b]");
  return {number(n[0], what, max), number(n[1], what, max)};
}

uint32_t Loader::slot(const YAML::Node& n, std::string_view name, size_t offset) {
  int s = slot_by_name(name);
  if (s < 0) {
    std::string all;
    for (const char* x : kSlotNames) all += (all.empty() ? "" : ", ") + std::string(x);
    refuse(n, "unknown slot '" + std::string(name) + "'", "slots are " + all, offset);
  }
  return (uint32_t)s;
}

template <typename T>
void Loader::count_is(const YAML::Node& n, const std::vector<T>& v, const char* what, uint64_t expect) {
  if (v.size() != expect)
    refuse(n,
           std::string("'") + what + "' lists " + std::to_string(v.size()) + " items but 'counts' says " +
               std::to_string(expect),
           "the file is truncated or was edited; write it again with `nf2bpf translate -o`");
}

Origin Loader::origin(const Fields& f, const std::string& what, const char* text_key) {
  Origin g;
  g.location = str(f.req("at", what), what + " 'at'");
  std::string chain = str(f.req("chain", what), what + " 'chain'");
  if (YAML::Node t = f.get("table"); t.IsDefined()) {
    g.table = str(t, what + " 'table'");
    g.chain = chain;
  } else {
    auto slash = chain.find('/');
    if (slash == std::string::npos) refuse(f.get("chain"), what + " 'chain' must be TABLE/CHAIN");
    g.table = chain.substr(0, slash);
    g.chain = chain.substr(slash + 1);
  }
  g.text = str(f.req(text_key, what), what + " '" + text_key + "'");
  g.source_line = line_of_location(g.location);
  if (YAML::Node l = f.get("line"); l.IsDefined()) g.source_line = (uint32_t)number(l, what + " 'line'", UINT32_MAX);
  return g;
}

// A statement: spelled out, or (when it cannot be) all its fields.
nf2bpf_stmt Loader::stmt(const YAML::Node& n) {
  nf2bpf_stmt x{};
  if (n.IsMap()) {
    Fields f = fields(n, "a statement", {"kind", "level", "group", "value", "mask", "prefix_id"});
    x.kind = (uint8_t)number(f.req("kind", "a statement"), "'kind'", 255);
    x.level = (uint8_t)number(f.req("level", "a statement"), "'level'", 255);
    x.group = (uint16_t)number(f.req("group", "a statement"), "'group'", 65535);
    x.value = (uint32_t)number(f.req("value", "a statement"), "'value'", UINT32_MAX);
    x.mask = (uint32_t)number(f.req("mask", "a statement"), "'mask'", UINT32_MAX);
    x.prefix_id = (uint32_t)number(f.req("prefix_id", "a statement"), "'prefix_id'", UINT32_MAX);
  } else if (auto fail = parse_stmt(str(n, "a statement"), p_, x)) {
    refuse(n, fail->why, {}, fail->offset);
  }
  return x;
}

// A `nat:` entry: {kind, to, flags}, and `raw:` for fields the spelling
// leaves out.
nf2bpf_nat Loader::nat(const YAML::Node& n) {
  std::string what = "NAT range #" + std::to_string(p_.nats.size());
  Fields f = fields(n, what, {"kind", "to", "service", "flags", "raw"});
  nf2bpf_nat x{};
  YAML::Node k = f.req("kind", what);
  std::string kind = str(k, "'kind'");
  int kv = nat_kind_by_name(kind);
  if (kv < 0) refuse(k, "unknown NAT kind '" + kind + "'", "kinds are dnat, snat, masquerade, redirect, service");
  x.kind = (uint8_t)kv;
  if (YAML::Node sv = f.get("service"); sv.IsDefined() || x.kind == NF_NAT_SERVICE) {
    if (x.kind != NF_NAT_SERVICE) refuse(sv, what + ": only a 'service' range names a service");
    x.service = (uint32_t)number(f.req("service", what), "'service'", UINT32_MAX);
    if (x.service >= p_.services.size())
      refuse(f.req("service", what), what + ": services #" + std::to_string(x.service) + " is not in 'services'");
  }
  if (YAML::Node to = f.get("to"); to.IsDefined())
    if (auto fail = parse_nat_to(str(to, "'to'"), x)) refuse(to, fail->why, fail->hint, fail->offset);
  if (YAML::Node fl = f.get("flags"); fl.IsDefined())
    for (const auto& fn : seq(fl, "'flags'")) {
      std::string name = str(fn, "a NAT flag");
      int bit = nat_flag_by_name(name);
      if (bit < 0) refuse(fn, "unknown NAT flag '" + name + "'", "flags are random, random-fully, persistent");
      x.flags |= (uint8_t)bit;
    }
  if (YAML::Node raw = f.get("raw"); raw.IsDefined()) {
    Fields r = fields(raw, what + " 'raw'", {"port_min", "port_max", "pad", "service", "addr_min", "addr_max"});
    if (YAML::Node v = r.get("service"); v.IsDefined()) x.service = (uint32_t)number(v, "'service'", UINT32_MAX);
    if (YAML::Node v = r.get("port_min"); v.IsDefined()) x.port_min = (uint16_t)number(v, "'port_min'", 65535);
    if (YAML::Node v = r.get("port_max"); v.IsDefined()) x.port_max = (uint16_t)number(v, "'port_max'", 65535);
    if (YAML::Node v = r.get("pad"); v.IsDefined()) x.pad = (uint16_t)number(v, "'pad'", 65535);
    for (auto [key, a] : {std::pair{"addr_min", x.addr_min}, {"addr_max", x.addr_max}})
      if (YAML::Node v = r.get(key); v.IsDefined() && !parse_nat_addr(str(v, key), a))
        refuse(v, std::string("'") + key + "' must be an address like 10.0.0.1 or fd00::1");
    // The ranges the flags give are checked again after the override.
    if ((x.flags & NF_NAT_F_PORTS) && x.port_min > x.port_max) refuse(raw, what + ": its port range is empty");
    if ((x.flags & NF_NAT_F_ADDR) && std::memcmp(x.addr_min, x.addr_max, 16) > 0)
      refuse(raw, what + ": its address range is empty");
  }
  return x;
}

// A `services:` entry: {name, family, hairpin_mark, backends}.
Service Loader::service(const YAML::Node& n) {
  std::string what = "service #" + std::to_string(p_.services.size());
  Fields f = fields(n, what, {"name", "family", "hairpin_mark", "backends"});
  Service sv;
  sv.name = str(f.req("name", what), "'name'");
  YAML::Node fam = f.req("family", what);
  std::string fs = str(fam, "'family'");
  if (fs != "ipv4" && fs != "ipv6") refuse(fam, what + ": unknown family '" + fs + "'", "a service is ipv4 or ipv6");
  sv.family = fs == "ipv4" ? 4 : 6;
  if (YAML::Node m = f.get("hairpin_mark"); m.IsDefined()) {
    std::string t = str(m, "'hairpin_mark'");
    Cursor c{t};
    if (!c.hex32(sv.mark_value) || !c.lit("/") || !c.hex32(sv.mark_mask) || !c.done() || !sv.mark_mask)
      refuse(m, what + ": 'hairpin_mark' is VALUE/MASK", "like 0x4000/0x4000");
  }
  for (const auto& b : seq(f.req("backends", what), "'backends'")) {
    ServiceBackend be;
    if (auto fail = parse_service_backend(str(b, "a backend"), be)) refuse(b, fail->why, fail->hint, fail->offset);
    bool v4 = (be.addr >> 32) == 0xffff;
    if (v4 != (sv.family == 4)) refuse(b, what + ": a backend of another family than the service's");
    sv.backends.push_back(be);
  }
  if (sv.backends.empty()) refuse(n, what + " has no backends");
  return sv;
}

void Loader::header() {
  top_ = fields(
      root_, "the policy",
      {"nf2bpf-policy", "source",  "format", "checksum",     "notes-checksum", "counts", "config",   "rules",
       "stages",        "hooks",   "chains", "log_prefixes", "limits",         "nat",    "services", "statements",
       "tuples",        "entries", "lpm",    "small",        "interfaces"});
  YAML::Node v = top_.get("nf2bpf-policy");
  if (!v.IsDefined())
    refuse(root_, "not an nf2bpf policy: no 'nf2bpf-policy:' version at the top",
           "policy files are written by `nf2bpf translate -o FILE.yaml`");
  if (!v.IsScalar() || v.Scalar() != std::to_string(kVersion))
    refuse(v, "unsupported policy format version '" + (v.IsScalar() ? v.Scalar() : std::string("?")) + "'",
           "this nf2bpf reads version " + std::to_string(kVersion) + "; translate the ruleset again");
  p_.source = str(top_.req("source", "the policy"), "'source'");
  p_.input_format = str(top_.req("format", "the policy"), "'format'");
  p_.checksum = str(top_.req("checksum", "the policy"), "'checksum'");
  counts_node_ = top_.req("counts", "the policy");
  Fields c = fields(counts_node_, "'counts'",
                    {"source_rules", "rules", "stages", "statements", "limits", "nat", "services", "tuples", "entries",
                     "lpm", "chains", "log_prefixes"});
  for (const char* k : {"source_rules", "rules", "stages", "statements", "limits", "nat", "services", "tuples",
                        "entries", "lpm", "chains", "log_prefixes"})
    counts_[k] = number(c.req(k, "'counts'"), std::string("count of ") + k, UINT32_MAX);
  p_.rule_count_source = counts_["source_rules"];

  Fields cfg = fields(top_.req("config", "the policy"), "'config'",
                      {"slots_used", "hooks_used", "nrules", "max_steps", "ct_needed", "xdp_stage", "nat_fams"});
  for (const auto& s : seq(cfg.req("slots_used", "'config'"), "'slots_used'"))
    p_.cfg.slots_used |= 1u << slot(s, str(s, "a slot name"), 0);
  for (const auto& h : seq(cfg.req("hooks_used", "'config'"), "'hooks_used'")) {
    std::string name = str(h, "a hook name");
    int k = -1;
    for (int i = 0; i < NF_HOOK_MAX; ++i)
      if (name == kHookNames[i]) k = i;
    if (k < 0) refuse(h, "unknown hook '" + name + "'", "hooks are prerouting, input, forward, output, postrouting");
    p_.cfg.hooks_used |= 1u << k;
  }
  p_.cfg.nrules = (uint32_t)number(cfg.req("nrules", "'config'"), "'nrules'", UINT32_MAX);
  p_.cfg.max_steps = (uint32_t)number(cfg.req("max_steps", "'config'"), "'max_steps'", UINT32_MAX);
  p_.cfg.ct_needed = (uint32_t)number(cfg.req("ct_needed", "'config'"), "'ct_needed'", UINT32_MAX);
  p_.cfg.xdp_stage = (uint32_t)number(cfg.req("xdp_stage", "'config'"), "'xdp_stage'", counts_["stages"]);
  YAML::Node nf = cfg.req("nat_fams", "'config'");
  std::string fams = str(nf, "'nat_fams'");
  p_.cfg.nat_fams = fams == "ipv4"   ? NF_FAM_V4
                    : fams == "ipv6" ? NF_FAM_V6
                    : fams == "inet" ? (NF_FAM_V4 | NF_FAM_V6)
                                     : 0;
  if (!p_.cfg.nat_fams && fams != "none")
    refuse(nf, "unknown family '" + fams + "' in 'nat_fams'", "'nat_fams' is none, ipv4, ipv6 or inet");

  // Tables the rules refer to.
  YAML::Node chains = top_.req("chains", "the policy");
  for (const auto& c : seq(chains, "'chains'")) p_.chain_names.push_back(str(c, "a chain name"));
  count_is(chains, p_.chain_names, "chains", counts_["chains"]);
  chain_idx_ = chain_index_of(p_);
  YAML::Node prefixes = top_.req("log_prefixes", "the policy");
  for (const auto& c : seq(prefixes, "'log_prefixes'")) p_.log_prefixes.push_back(str(c, "a log prefix"));
  count_is(prefixes, p_.log_prefixes, "log_prefixes", counts_["log_prefixes"]);
  YAML::Node limits = top_.req("limits", "the policy");
  for (const auto& l : seq(limits, "'limits'")) {
    if (!l.IsSequence() || (l.size() != 4 && l.size() != 9))
      refuse(l,
             "a limit must be [cost, cap, rate, flags] (a hashlimit's then [table, expire, mode, srcmask, dstmask])");
    nf2bpf_limit_cfg c{};
    c.cost = number(l[0], "a limit's cost", UINT64_MAX);
    c.cap = number(l[1], "a limit's cap", UINT64_MAX);
    c.rate = number(l[2], "a limit's rate", UINT64_MAX);
    c.flags = (uint32_t)number(l[3], "a limit's flags",
                               NF_LIMIT_XT | NF_LIMIT_BYTES | NF_LIMIT_INV | NF_LIMIT_HASH | NF_LIMIT_CONN |
                                   NF_LIMIT_TIME | NF_LIMIT_SET | NF_LIMIT_MORE);
    if ((c.flags & NF_LIMIT_BYTES) && !c.rate) refuse(l, "a byte limit's rate must not be 0");
    const uint32_t keyed_kinds = NF_LIMIT_HASH | NF_LIMIT_CONN | NF_LIMIT_TIME | NF_LIMIT_SET;
    uint32_t kind = c.flags & (NF_LIMIT_XT | NF_LIMIT_BYTES | keyed_kinds);
    bool keyed = c.flags & keyed_kinds;
    if (keyed != (l.size() == 9) || (keyed && (kind & (kind - 1))))
      refuse(l,
             "a hashlimit (flags 8), connlimit (16), time (32) or set operation (64), none with 1 or 2, has 9 "
             "values, any other limit 4");
    if ((c.flags & NF_LIMIT_SET) && ((c.rate & NF_SET_OP) < NF_SET_LOOKUP || (c.rate & NF_SET_OP) > NF_SET_DELETE ||
                                     (c.rate & ~(uint64_t)(NF_SET_OP | NF_SET_LIMIT | NF_SET_TIMEOUT))))
      refuse(l,
             "a set operation's rate is its operation (1 lookup, 2 add, 3 update, 4 delete) + 8 limit + 16 "
             "own timeout");
    if ((c.flags & NF_LIMIT_TIME) && ((c.cap & 0xffffffff) > 86399 || (c.cap >> 32) > 86399))
      refuse(l, "a time check's times of day are seconds of the day (0 to 86399)");
    if (l.size() == 9) {
      c.table = (uint32_t)number(l[4], "a limit's table", UINT32_MAX);
      c.expire = (uint32_t)number(l[5], "a limit's expire", UINT32_MAX);
      c.mode = (uint8_t)number(l[6], "a limit's mode", 15);
      c.srcmask = (uint8_t)number(l[7], "a limit's srcmask", 128);
      c.dstmask = (uint8_t)number(l[8], "a limit's dstmask", 128);
      if ((c.flags & NF_LIMIT_HASH) && (!c.expire || !c.cost || !c.cap))
        refuse(l, "a hashlimit's cost, cap and expire must not be 0");
      if ((c.flags & NF_LIMIT_CONN) && (c.cost >= NF_CONNLIMIT_CONNS - 1 || c.mode > NF_CL_DADDR))
        refuse(l, "a connlimit's limit is below " + std::to_string(NF_CONNLIMIT_CONNS - 1) + ", its mode 0 or 1");
    }
    p_.limits.push_back(c);
  }
  count_is(limits, p_.limits, "limits", counts_["limits"]);
  YAML::Node svcs = top_.req("services", "the policy");
  for (const auto& n : seq(svcs, "'services'")) p_.services.push_back(service(n));
  count_is(svcs, p_.services, "services", counts_["services"]);
  YAML::Node nats = top_.req("nat", "the policy");
  for (const auto& n : seq(nats, "'nat'")) p_.nats.push_back(nat(n));
  count_is(nats, p_.nats, "nat", counts_["nat"]);
  if (YAML::Node st = top_.get("statements"); st.IsDefined()) {
    for (const auto& s : seq(st, "'statements'")) {
      p_.stmts.push_back(stmt(s));
    }
  }
}

void Loader::rules() {
  YAML::Node list = seq(top_.req("rules", "the policy"), "'rules'");
  bool own_stmts = top_.get("statements").IsDefined();
  for (const auto& n : list) {
    std::string what = "rule " + std::to_string(p_.rules.size());
    Fields f = fields(n, what, {"index", "at", "table", "chain", "rule", "line", "action", "checks", "do", "raw"});
    if (number(f.req("index", what), "'index'", UINT32_MAX) != p_.rules.size())
      refuse(f.get("index"),
             "rule index " + f.get("index").Scalar() + " is out of order; expected " + std::to_string(p_.rules.size()),
             "rules are listed in evaluation order, each once");
    Origin g = origin(f, what, "rule");
    nf2bpf_rule r{};
    YAML::Node act = f.req("action", what);
    std::string action = str(act, "'action'");
    if (auto fail = parse_action(action, p_, r)) refuse(act, fail->why, fail->hint, fail->offset);
    if (YAML::Node checks = f.get("checks"); checks.IsDefined())
      for (const auto& c : seq(checks, "'checks'"))
        if (auto fail = parse_check(str(c, "a check"), p_, r)) refuse(c, fail->why, {}, fail->offset);
    r.stmt_first = (uint32_t)p_.stmts.size();
    if (YAML::Node d = f.get("do"); d.IsDefined()) {
      if (own_stmts) refuse(d, "'do' and a top-level 'statements' list cannot both be given");
      for (const auto& s : seq(d, "'do'")) {
        p_.stmts.push_back(stmt(s));
      }
      if (p_.stmts.size() - r.stmt_first > 65535) refuse(d, "more than 65535 statements in one rule");
    }
    r.stmt_count = (uint16_t)(p_.stmts.size() - r.stmt_first);
    if (own_stmts) r.stmt_first = 0;
    int64_t ci = chain_index(chain_idx_, g);
    r.src_chain = ci < 0 ? 0 : (uint32_t)ci;
    r.src_line = g.source_line;
    if (YAML::Node raw = f.get("raw"); raw.IsDefined()) {
      if (!raw.IsMap()) refuse(raw, "'raw' must be a map of rule fields");
      for (auto it = raw.begin(); it != raw.end(); ++it) {
        std::string k = it->first.IsScalar() ? it->first.Scalar() : "";
        const RawField* fld = nullptr;
        for (const auto& x : kRuleFields)
          if (k == x.name) fld = &x;
        if (!fld) refuse(it->first, "unknown rule field '" + k + "' in 'raw'");
        set_field(r, *fld, number(it->second, "'" + k + "'", field_max(*fld)));
      }
    } else if (ci < 0) {
      refuse(f.get("chain"), "chain '" + g.table + "/" + g.chain + "' is not in 'chains'");
    }
    p_.rules.push_back(r);
    p_.origins.push_back(std::move(g));
  }
  count_is(list, p_.rules, "rules", counts_["rules"]);
  count_is(top_.get("statements").IsDefined() ? top_.get("statements") : list, p_.stmts, "statements",
           counts_["statements"]);

  // Every index a rule holds points into the policy.
  for (size_t i = 0; i < p_.rules.size(); ++i) {
    const nf2bpf_rule& r = p_.rules[i];
    const YAML::Node& n = list[i];
    auto bad = [&](const std::string& m) { refuse(n, "rule " + std::to_string(i) + ": " + m); };
    if (r.action > NF_ACT_NAT) bad("unknown action " + std::to_string(r.action));
    if (r.action == NF_ACT_NAT && r.nat >= p_.nats.size())
      bad("its NAT range #" + std::to_string(r.nat) + " is not in 'nat'");
    if (r.action == NF_ACT_SKIP && (r.skip_to <= i || r.skip_to > p_.rules.size()))
      bad("skips to rule " + std::to_string(r.skip_to) + ", which is not after it in the policy");
    if ((uint64_t)r.stmt_first + r.stmt_count > p_.stmts.size()) bad("its statements are not in the policy");
    if (r.residual & NF_RES_LIMIT) {
      size_t n = 0, at = r.limit;
      while (at && at < p_.limits.size() && ++n <= NF_LIMIT_CHAIN && (p_.limits[at].flags & NF_LIMIT_MORE)) ++at;
      if (!at || at >= p_.limits.size()) bad("its limits are not in 'limits'");
      if (n > NF_LIMIT_CHAIN)
        bad("it has more than " + std::to_string(NF_LIMIT_CHAIN) + " limits (flags 128 chains them)");
    }
    if ((r.residual & NF_RES_NTH) && (r.nth_every == 0 || r.nth_hit >= r.nth_every || r.nth_slot >= p_.rules.size()))
      bad("its nth counter is not valid (every >= 1, hit below every, counter below the number of rules)");
    if ((r.residual & NF_RES_RECENT) &&
        (r.recent_cmd < NF_RECENT_SET || r.recent_cmd > NF_RECENT_REMOVE || r.recent_table == 0 ||
         r.recent_ring >= NF_RECENT_STAMPS || r.recent_hitcount > NF_RECENT_STAMPS))
      bad("its recent check is not valid (a command, a table, a ring below 32, a hit count up to 32)");
    if (r.src_chain >= p_.chain_names.size()) bad("its chain is not in 'chains'");
    if (r.residual & NF_RES_OWNER) p_.cfg.owner = 1;  // derived, as the compiler sets it
    if (r.residual & NF_RES_LIMIT)
      for (size_t at = r.limit; at < p_.limits.size(); ++at) {  // the rule's chain of checks
        if ((p_.limits[at].flags & NF_LIMIT_CONN) && !p_.cfg.ct_needed)
          refuse(top_.req("config", "the policy"),
                 "a -m connlimit check needs connection tracking: 'ct_needed' must be 1");
        if (!(p_.limits[at].flags & NF_LIMIT_MORE)) break;
      }
  }
  for (size_t i = 0; i < p_.stmts.size(); ++i) {
    const auto& s = p_.stmts[i];
    if (s.kind < NF_STMT_LOG || s.kind > NF_STMT_SET_TOS)
      refuse(list, "statement " + std::to_string(i) + " has unknown kind " + std::to_string(s.kind));
    if (s.kind == NF_STMT_LOG && s.prefix_id >= p_.log_prefixes.size())
      refuse(list, "statement " + std::to_string(i) + " logs with a prefix that is not in 'log_prefixes'");
  }
}

void Loader::stages() {
  YAML::Node list = seq(top_.req("stages", "the policy"), "'stages'");
  uint64_t nrules = p_.rules.size(), ntuples = counts_["tuples"], nstages = counts_["stages"];
  for (const auto& n : list) {
    std::string what = "stage " + std::to_string(p_.stages.size());
    Fields f = fields(n, what,
                      {"index", "hook", "family", "policy", "rules", "tuples", "policy_counter", "flags", "at", "table",
                       "chain", "text", "line"});
    if (number(f.req("index", what), "'index'", UINT32_MAX) != p_.stages.size())
      refuse(f.get("index"), "stage index out of order; expected " + std::to_string(p_.stages.size()));
    nf2bpf_stage s{};
    YAML::Node hook = f.req("hook", what);
    std::string h = str(hook, "'hook'");
    s.hook = 255;
    for (int i = 0; i < NF_HOOK_MAX; ++i)
      if (h == kHookNames[i]) s.hook = (uint8_t)i;
    if (s.hook == 255)
      refuse(hook, "unknown hook '" + h + "'", "hooks are prerouting, input, forward, output, postrouting");
    YAML::Node fam = f.req("family", what);
    std::string fm = str(fam, "'family'");
    s.family_mask = fm == "ipv4" ? NF_FAM_V4 : fm == "ipv6" ? NF_FAM_V6 : fm == "inet" ? (NF_FAM_V4 | NF_FAM_V6) : 0;
    if (!s.family_mask) refuse(fam, "unknown family '" + fm + "'", "families are ipv4, ipv6, inet");
    YAML::Node pol = f.req("policy", what);
    std::string pl = str(pol, "'policy'");
    if (pl == "accept")
      s.policy = NF_ACT_ACCEPT;
    else if (pl == "drop")
      s.policy = NF_ACT_DROP;
    else
      refuse(pol, "unknown policy '" + pl + "'", "a stage's policy is accept or drop");
    YAML::Node rr = f.req("rules", what);
    auto [first, end] = pair(rr, "'rules'", UINT32_MAX);
    if (first > end || end > nrules)
      refuse(rr, "rule range [" + std::to_string(first) + ", " + std::to_string(end) + ") is not in the policy's " +
                     std::to_string(nrules) + " rules");
    YAML::Node tt = f.req("tuples", what);
    auto [tf, tc] = pair(tt, "'tuples'", UINT32_MAX);
    if (tf + tc > ntuples)
      refuse(tt, "tuples " + std::to_string(tf) + " + " + std::to_string(tc) + " are not in the policy's " +
                     std::to_string(ntuples) + " tuples");
    s.first_rule = (uint32_t)first, s.end_rule = (uint32_t)end;
    s.tuple_first = (uint32_t)tf, s.tuple_count = (uint32_t)tc;
    YAML::Node pc = f.req("policy_counter", what);
    s.policy_counter = pc.IsScalar() && pc.Scalar() == "none"
                           ? UINT32_MAX
                           : (uint32_t)number(pc, "'policy_counter'", nrules + nstages - 1);
    if (YAML::Node fl = f.get("flags"); fl.IsDefined()) s.flags = (uint8_t)number(fl, "'flags'", 255);
    p_.stages.push_back(s);
    p_.stage_origins.push_back(origin(f, what, "text"));
  }
  count_is(list, p_.stages, "stages", nstages);
  for (size_t i = 0; i < p_.stages.size(); ++i)
    for (uint32_t r = p_.stages[i].first_rule; r < p_.stages[i].end_rule; ++r)
      if (p_.rules[r].action == NF_ACT_SKIP && p_.rules[r].skip_to > p_.stages[i].end_rule)
        refuse(list[i], "rule " + std::to_string(r) + " skips past the end of stage " + std::to_string(i));
  Fields hooks =
      fields(top_.req("hooks", "the policy"), "'hooks'", {"prerouting", "input", "forward", "output", "postrouting"});
  for (int h = 0; h < NF_HOOK_MAX; ++h) {
    YAML::Node n = hooks.req(kHookNames[h], "'hooks'");
    auto [first, count] = pair(n, "a hook's stages", UINT32_MAX);
    if (first + count > p_.stages.size())
      refuse(n, "stages " + std::to_string(first) + " + " + std::to_string(count) + " are not in the policy");
    p_.hooks[h] = {(uint32_t)first, (uint32_t)count};
  }
}

void Loader::machine() {
  YAML::Node tuples = seq(top_.req("tuples", "the policy"), "'tuples'");
  for (const auto& n : tuples) {
    Fields f = fields(n, "a tuple", {"slots", "rules"});
    nf2bpf_tuple t{};
    YAML::Node slots = seq(f.req("slots", "a tuple"), "'slots'");
    if (slots.size() > NF_MAX_TUPLE_SLOTS)
      refuse(slots, "a tuple has at most " + std::to_string(NF_MAX_TUPLE_SLOTS) + " slots");
    for (const auto& s : slots) t.slots[t.nslots++] = (uint8_t)slot(s, str(s, "a slot name"), 0);
    YAML::Node rr = f.req("rules", "a tuple");
    auto [lo, hi] = pair(rr, "'rules'", UINT32_MAX);
    if (lo > hi || hi >= p_.rules.size()) refuse(rr, "rule range is not in the policy");
    t.min_rule = (uint32_t)lo, t.max_rule = (uint32_t)hi;
    p_.tuples.push_back(t);
  }
  count_is(tuples, p_.tuples, "tuples", counts_["tuples"]);
  for (size_t i = 0; i < p_.stages.size(); ++i)
    if ((uint64_t)p_.stages[i].tuple_first + p_.stages[i].tuple_count > p_.tuples.size())
      refuse(tuples, "stage " + std::to_string(i) + "'s tuples are not in 'tuples'");

  YAML::Node entries = seq(top_.req("entries", "the policy"), "'entries'");
  p_.entries.reserve(entries.size());
  for (const auto& n : entries) {
    if (!n.IsScalar()) refuse(n, "an entry must be a string like \"t0 s0 [1, 2] -> 5\"");
    const std::string& s = n.Scalar();
    Cursor c{s};
    nf2bpf_entry_key k{};
    nf2bpf_entry_val v{};
    uint64_t tuple = 0, seqno = 0, rule = 0;
    auto bad = [&](const char* why) {
      refuse(n, std::string(why) + " (entries look like \"t0 s0 [1, 2] -> 5 +\")", {}, c.i);
    };
    if (!c.lit("t") || !c.dec(tuple, 65535)) bad("expected a tuple index tN");
    if (tuple >= p_.tuples.size()) refuse(n, "tuple t" + std::to_string(tuple) + " is not in 'tuples'", {}, 1);
    if (!c.lit(" s") || !c.dec(seqno, 65535)) bad("expected a sequence number sN");
    if (!c.lit(" [")) bad("expected ' ['");
    unsigned nslots = p_.tuples[tuple].nslots, got = 0;
    while (!c.lit("]")) {
      uint64_t cls = 0;
      if (got && !c.lit(", ")) bad("expected ', ' or ']'");
      if (got == nslots)
        refuse(n, "tuple t" + std::to_string(tuple) + " has " + std::to_string(nslots) + " slots", {}, c.i);
      if (!c.dec(cls, UINT32_MAX)) bad("expected a class number");
      k.cls[got++] = (uint32_t)cls;
    }
    if (got != nslots)
      refuse(n, "tuple t" + std::to_string(tuple) + " has " + std::to_string(nslots) + " slots", {}, c.i);
    if (!c.lit(" -> ") || !c.dec(rule, UINT32_MAX)) bad("expected ' -> RULE'");
    if (rule >= p_.rules.size()) refuse(n, "rule " + std::to_string(rule) + " is not in the policy", {}, c.i);
    if (c.lit(" +")) v.has_next = 1;
    if (!c.done()) bad("unexpected text");
    k.tuple = (uint16_t)tuple, k.seq = (uint16_t)seqno;
    v.rule = (uint32_t)rule;
    p_.entries.emplace_back(k, v);
  }
  count_is(entries, p_.entries, "entries", counts_["entries"]);

  YAML::Node lpm = seq(top_.req("lpm", "the policy"), "'lpm'");
  p_.lpm.reserve(lpm.size());
  for (const auto& n : lpm) {
    if (!n.IsScalar()) refuse(n, "an LPM entry must be a string like \"saddr 10.0.0.0/8 -> 3\"");
    std::string_view s = n.Scalar();
    auto sp = s.find(' '), arrow = s.find(" -> ");
    if (sp == std::string_view::npos || arrow == std::string_view::npos || arrow < sp)
      refuse(n, "an LPM entry looks like \"saddr 10.0.0.0/8 -> 3\"");
    LpmEntry e{};
    e.slot = (uint8_t)slot(n, s.substr(0, sp), 0);
    if (e.slot != NF_SLOT_SADDR && e.slot != NF_SLOT_DADDR) refuse(n, "only saddr and daddr have LPM entries");
    unsigned len = 0;
    if (!parse_cidr_text(s.substr(sp + 1, arrow - sp - 1), e.addr, len))
      refuse(n, "expected an address prefix like 10.0.0.0/8 or 2001:db8::/32", {}, sp + 1);
    e.prefixlen = (uint8_t)len;
    Cursor c{s, arrow + 4};
    uint64_t cls = 0;
    if (!c.dec(cls, UINT32_MAX) || !c.done()) refuse(n, "expected a class number", {}, c.i);
    e.cls = (uint32_t)cls;
    p_.lpm.push_back(e);
  }
  count_is(lpm, p_.lpm, "lpm", counts_["lpm"]);
}

void Loader::small() {
  std::initializer_list<const char*> names = {"sport",     "dport",     "proto",  "icmp", "ctstate",
                                              "tcpflags",  "pkttype",   "length", "ttl",  "nfproto",
                                              "saddrtype", "daddrtype", "ctdir",  "frag", "dscp"};
  Fields f = fields(top_.req("small", "the policy"), "'small'", names);
  p_.small.assign(NF_SMALL_TOTAL, 0);
  for (const auto& ss : kSmall) {
    YAML::Node runs = seq(f.req(kSlotNames[ss.slot], "'small'"), std::string("'") + kSlotNames[ss.slot] + "'");
    uint64_t next = 0;
    for (const auto& r : runs) {
      if (!r.IsSequence() || r.size() != 3) refuse(r, "a run must be [first, last, class]");
      uint64_t first = number(r[0], "a run's first value", UINT32_MAX);
      uint64_t last = number(r[1], "a run's last value", UINT32_MAX);
      uint64_t cls = number(r[2], "a class", UINT32_MAX);
      if (first != next || last < first || last >= ss.size)
        refuse(r, std::string(kSlotNames[ss.slot]) + " runs must cover 0.." + std::to_string(ss.size - 1) +
                      " in order without gaps; this one should start at " + std::to_string(next));
      std::fill(p_.small.begin() + ss.base + first, p_.small.begin() + ss.base + last + 1, (uint32_t)cls);
      next = last + 1;
    }
    if (next != ss.size)
      refuse(runs, std::string(kSlotNames[ss.slot]) + " runs end at " + std::to_string(next) + ", before " +
                       std::to_string(ss.size - 1));
  }
}

void Loader::interfaces() {
  Fields f = fields(top_.req("interfaces", "the policy"), "'interfaces'", {"iif", "oif"});
  for (int w = 0; w < 2; ++w) {
    const char* which = w ? "oif" : "iif";
    Fields g = fields(f.req(which, "'interfaces'"), std::string("'") + which + "'", {"predicates", "classes"});
    for (const auto& pn : seq(g.req("predicates", which), "'predicates'")) {
      IfacePredicate pr;
      for (const auto& cn : seq(pn, "a predicate")) {
        IfaceClause cl;
        YAML::Node pats = cn;
        if (cn.IsMap()) {
          Fields nf = fields(cn, "a negated clause", {"not"});
          pats = nf.req("not", "a negated clause");
          cl.negated = true;
        }
        for (const auto& x : seq(pats, "a clause")) {
          ir::IfacePattern pat;
          if (x.IsMap()) {
            pat.name = str(fields(x, "a pattern", {"exact"}).req("exact", "a pattern"), "'exact'");
          } else {
            pat.name = str(x, "an interface name");
            if (!pat.name.empty() && pat.name.back() == '+') pat.name.pop_back(), pat.prefix = true;
          }
          cl.patterns.push_back(std::move(pat));
        }
        pr.clauses.push_back(std::move(cl));
      }
      p_.iface_predicates[w].push_back(std::move(pr));
    }
    for (const auto& cn : seq(g.req("classes", which), "'classes'")) {
      if (!cn.IsSequence() || cn.size() != 2) refuse(cn, "a class must be ['SIGNATURE', CLASS]");
      std::string bits = str(cn[0], "a signature");
      if (bits.size() != p_.iface_predicates[w].size() || bits.find_first_not_of("01") != std::string::npos)
        refuse(cn[0], "a signature has one 0/1 per predicate (" + std::to_string(p_.iface_predicates[w].size()) + ")");
      std::vector<bool> sig;
      for (char b : bits) sig.push_back(b == '1');
      if (!p_.iface_classes[w].emplace(std::move(sig), (uint32_t)number(cn[1], "a class", UINT32_MAX)).second)
        refuse(cn, "signature '" + bits + "' appears twice");
    }
  }
}

void Loader::run() {
  header();
  rules();
  stages();
  machine();
  small();
  interfaces();
  if (p_.cfg.nrules != p_.rules.size())
    refuse(top_.get("config"), "'nrules' says " + std::to_string(p_.cfg.nrules) + " but the policy has " +
                                   std::to_string(p_.rules.size()) + " rules");
  p_.origins.shrink_to_fit();
  YAML::Node notes = top_.req("notes-checksum", "the policy");
  std::string want_notes = str(notes, "'notes-checksum'");
  std::string got = compute_checksum(p_);
  if (got != p_.checksum)
    refuse(top_.get("checksum"),
           "policy was edited: checksum mismatch (the file says " + p_.checksum + ", its contents give " + got + ")",
           "policy files are not edited by hand: change the ruleset and write the policy again with "
           "`nf2bpf translate RULES -o FILE.yaml`");
  if (notes_checksum(p_) != want_notes)
    refuse(notes, "policy was edited: the rule texts, locations or names do not match 'notes-checksum'",
           "policy files are not edited by hand: change the ruleset and write the policy again with "
           "`nf2bpf translate RULES -o FILE.yaml`");
}

std::string line_of(const std::string& text, size_t line) {
  size_t pos = 0;
  for (size_t l = 0; l < line && pos != std::string::npos; ++l) {
    pos = text.find('\n', pos);
    if (pos != std::string::npos) ++pos;
  }
  if (pos == std::string::npos || pos > text.size()) return {};
  return text.substr(pos, text.find('\n', pos) - pos);
}

}  // namespace

namespace {

// Counts the documents of a YAML stream, up to two; `second` is where the
// second one starts. Events are ignored: only the document boundaries count.
class DocumentCounter : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override {
    if (++documents == 2) second = mark;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
  size_t documents = 0;
  YAML::Mark second;
};

size_t count_documents(const std::string& text, YAML::Mark& second) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  DocumentCounter counter;
  while (counter.documents < 2 && parser.HandleNextDocument(counter)) {}
  second = counter.second;
  return counter.documents;
}

}  // namespace

std::optional<Policy> from_yaml(const std::string& text, const std::string& name, diag::Diagnostics& d) {
  auto locate = [&](const YAML::Mark& m, size_t offset, bool quoted) {
    ir::SourceLoc loc{name, 0, 0, 0, {}};
    if (m.is_null() || m.line < 0) return loc;
    loc.line = (uint32_t)m.line + 1;
    loc.col = (uint32_t)m.column + 1 + (uint32_t)offset + (quoted ? 1 : 0);
    return loc;
  };
  auto report = [&](const YAML::Mark& m, size_t offset, bool quoted, const std::string& msg, const std::string& hint) {
    ir::SourceLoc loc = locate(m, offset, quoted);
    d.error(loc, msg, hint, loc.line ? line_of(text, loc.line - 1) : std::string());
  };
  try {
    // Not YAML::LoadAll: yaml-cpp 0.7 loops forever, allocating, on some
    // malformed streams (", a": the parser reports empty documents without
    // consuming anything); the first document and a bounded count instead.
    YAML::Node doc = YAML::Load(text);
    YAML::Mark second;
    bool several = doc.IsMap() && count_documents(text, second) > 1;
    if (!doc.IsMap() || several) {
      YAML::Mark m{};  // an empty file: its first line
      if (several)
        m = second;
      else if (!doc.Mark().is_null())
        m = doc.Mark();
      report(m, 0, false,
             several ? "a policy file holds one YAML document"
                     : "not an nf2bpf policy: expected a map starting with 'nf2bpf-policy: 1'",
             "policy files are written by `nf2bpf translate RULES -o FILE.yaml`");
      return std::nullopt;
    }
    Policy p;
    Loader(doc, p).run();
    return p;
  } catch (const Refused& r) {
    report(r.mark, r.offset, r.quoted, r.message, r.hint);
  } catch (const YAML::Exception& e) {
    report(e.mark, 0, false, "not valid YAML: " + e.msg,
           "the file is truncated or damaged; write it again with "
           "`nf2bpf translate RULES -o FILE.yaml`");
  } catch (const std::exception& e) {
    report(YAML::Mark::null_mark(), 0, false, std::string("cannot read the policy: ") + e.what(), {});
  }
  return std::nullopt;
}

bool looks_like_policy_yaml(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    size_t eol = text.find('\n', i);
    std::string_view line = text.substr(i, eol == std::string_view::npos ? std::string_view::npos : eol - i);
    if (!line.empty() && line[0] != '#' && line != "---") return line.starts_with("nf2bpf-policy:");
    if (eol == std::string_view::npos) break;
    i = eol + 1;
  }
  return false;
}

}  // namespace nf2bpf::policy
