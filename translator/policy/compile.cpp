#include "translator/policy/compile.h"
#include "translator/policy/services.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <cmath>
#include <map>
#include <set>
#include <sstream>
#include <strings.h>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include "common/progress.h"

namespace nf2bpf::policy {

using namespace ir;

namespace {

constexpr int kSlots = NF_SLOT_MAX;

struct SmallRange {
  uint32_t base = 0, size = 0;  // size includes the trailing "absent" index
};

SmallRange small_range(int slot) {
  switch (slot) {
    case NF_SLOT_SPORT: return {NF_SMALL_SPORT_BASE, NF_SMALL_SPORT_SIZE};
    case NF_SLOT_DPORT: return {NF_SMALL_DPORT_BASE, NF_SMALL_DPORT_SIZE};
    case NF_SLOT_PROTO: return {NF_SMALL_PROTO_BASE, NF_SMALL_PROTO_SIZE};
    case NF_SLOT_ICMP: return {NF_SMALL_ICMP_BASE, NF_SMALL_ICMP_SIZE};
    case NF_SLOT_CTSTATE: return {NF_SMALL_CTSTATE_BASE, NF_SMALL_CTSTATE_SIZE};
    case NF_SLOT_TCPFLAGS: return {NF_SMALL_TCPFLAGS_BASE, NF_SMALL_TCPFLAGS_SIZE};
    case NF_SLOT_PKTTYPE: return {NF_SMALL_PKTTYPE_BASE, NF_SMALL_PKTTYPE_SIZE};
    case NF_SLOT_LENGTH: return {NF_SMALL_LENGTH_BASE, NF_SMALL_LENGTH_SIZE};
    case NF_SLOT_TTL: return {NF_SMALL_TTL_BASE, NF_SMALL_TTL_SIZE};
    case NF_SLOT_NFPROTO: return {NF_SMALL_NFPROTO_BASE, NF_SMALL_NFPROTO_SIZE};
    case NF_SLOT_SADDRTYPE: return {NF_SMALL_SADDRTYPE_BASE, NF_SMALL_SADDRTYPE_SIZE};
    case NF_SLOT_DADDRTYPE: return {NF_SMALL_DADDRTYPE_BASE, NF_SMALL_DADDRTYPE_SIZE};
    case NF_SLOT_CTDIR: return {NF_SMALL_CTDIR_BASE, NF_SMALL_CTDIR_SIZE};
    case NF_SLOT_FRAG: return {NF_SMALL_FRAG_BASE, NF_SMALL_FRAG_SIZE};
    case NF_SLOT_TOS: return {NF_SMALL_TOS_BASE, NF_SMALL_TOS_SIZE};
  }
  return {};
}

bool is_lpm(int slot) { return slot == NF_SLOT_SADDR || slot == NF_SLOT_DADDR; }
bool is_iface(int slot) { return slot == NF_SLOT_IIF || slot == NF_SLOT_OIF; }

// Where an IR field's values land inside its slot: slot value = offset + v,
// v in [0, max]. Negation complements within [offset, offset + max].
struct FieldDomain {
  int slot = -1;
  u128 offset = 0, max = 0;
};

FieldDomain domain_of(Field f) {
  switch (f) {
    case Field::SrcAddr: return {NF_SLOT_SADDR, 0, kU128Max};
    case Field::DstAddr: return {NF_SLOT_DADDR, 0, kU128Max};
    case Field::SrcPort: return {NF_SLOT_SPORT, 0, 65535};
    case Field::DstPort: return {NF_SLOT_DPORT, 0, 65535};
    case Field::L4Proto:
    case Field::CtL4Proto: return {NF_SLOT_PROTO, 0, 255};
    case Field::IcmpType: return {NF_SLOT_ICMP, 0, 65535};
    case Field::Icmp6Type: return {NF_SLOT_ICMP, 65536, 65535};
    case Field::CtState: return {NF_SLOT_CTSTATE, 0, 255};
    case Field::TcpFlags: return {NF_SLOT_TCPFLAGS, 0, 255};
    case Field::PktType: return {NF_SLOT_PKTTYPE, 0, 255};
    case Field::Length: return {NF_SLOT_LENGTH, 0, 65535};
    case Field::Ttl: return {NF_SLOT_TTL, 0, 255};
    case Field::NfProto: return {NF_SLOT_NFPROTO, 0, 255};
    case Field::SrcAddrType: return {NF_SLOT_SADDRTYPE, 0, 4095};
    case Field::DstAddrType: return {NF_SLOT_DADDRTYPE, 0, 4095};
    case Field::CtDirection: return {NF_SLOT_CTDIR, 0, 1};
    case Field::Fragment: return {NF_SLOT_FRAG, 0, 1};
    case Field::Dscp: return {NF_SLOT_TOS, 0, 63};  // slot_set widens each DSCP to its 4 TOS bytes
    case Field::Tos: return {NF_SLOT_TOS, 0, 255};
    case Field::IifName: return {NF_SLOT_IIF, 0, 0};
    case Field::OifName: return {NF_SLOT_OIF, 0, 0};
    default: return {};
  }
}

// One conjunction of slot predicates. A rule is a union of boxes.
struct Box {
  std::array<std::optional<IntervalSet>, kSlots> v;
  std::array<IfacePredicate, 2> ifc;  // empty clauses = unconstrained
  bool empty = false;

  void constrain(int slot, const IntervalSet& s) {
    v[slot] = v[slot] ? v[slot]->intersect(s) : s;
    if (v[slot]->empty()) empty = true;
  }
  void constrain_iface(int which, const IfaceClause& c) { ifc[which].clauses.push_back(c); }
  Box and_with(const Box& o) const {
    Box b = *this;
    for (int s = 0; s < kSlots; ++s)
      if (o.v[s]) b.constrain(s, *o.v[s]);
    for (int w = 0; w < 2; ++w)
      for (const auto& c : o.ifc[w].clauses) b.ifc[w].clauses.push_back(c);
    b.empty |= o.empty;
    return b;
  }
  uint32_t slot_mask() const {
    uint32_t m = 0;
    for (int s = 0; s < kSlots; ++s)
      if (v[s]) m |= 1u << s;
    if (!ifc[0].clauses.empty()) m |= 1u << NF_SLOT_IIF;
    if (!ifc[1].clauses.empty()) m |= 1u << NF_SLOT_OIF;
    return m;
  }
};

struct Lowered {
  std::vector<Box> boxes;
  nf2bpf_rule desc{};
  std::vector<nf2bpf_stmt> stmts;
  bool unconditional_terminal = false;  // terminal with no residual check
};

std::string interval_key(const IntervalSet& s) {
  std::string k;
  for (const auto& iv : s.intervals()) {
    k.append(reinterpret_cast<const char*>(&iv.lo), sizeof iv.lo);
    k.append(reinterpret_cast<const char*>(&iv.hi), sizeof iv.hi);
  }
  return k;
}

struct Hash128 {
  uint64_t a = 0, b = 0;
  bool operator==(const Hash128&) const = default;
  void mix(const Hash128& o) { a ^= o.a, b ^= o.b; }
};
struct Hash128H {
  size_t operator()(const Hash128& h) const { return h.a ^ (h.b * 0x9e3779b97f4a7c15ULL); }
};

// Deterministic per-predicate random tags (splitmix64).
Hash128 tag_of(uint64_t slot, uint64_t pid) {
  auto mix = [](uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  uint64_t x = mix(slot * 0x100000001b3ULL + pid + 1);
  return {x, mix(x ^ 0x5bd1e995)};
}

// Values of a field, negation applied, as a slot interval set.
std::pair<int, IntervalSet> slot_set(Field f, const IntervalSet& vals, bool neg) {
  FieldDomain d = domain_of(f);
  IntervalSet dom = IntervalSet::range(0, d.max);
  IntervalSet v = neg ? vals.intersect(dom).complement(d.max) : vals.intersect(dom);
  if (f == Field::Dscp) {  // DSCP d is the TOS bytes d << 2 .. d << 2 | 3 (any ECN)
    IntervalSet tos;
    for (const auto& iv : v.intervals()) tos.add(iv.lo << 2, (iv.hi << 2) | 3);
    return {d.slot, tos};
  }
  if (d.offset == 0) return {d.slot, v};
  IntervalSet shifted;
  for (const auto& iv : v.intervals()) shifted.add(iv.lo + d.offset, iv.hi + d.offset);
  return {d.slot, shifted};
}

// Whether xt_addrtype's IPv6 test of `mask` holds for an address of `type`.
bool addrtype6_holds(uint32_t mask, uint32_t type) {
  bool multicast = type == kAddrMulticast, any = type == kAddrUnspec;
  bool unicast = type == kAddrUnicast || type == kAddrLocal;
  uint32_t route = type == kAddrLocal ? (uint32_t)kAddrLocal : 0;  // match_lookup_rt6
  if ((mask & kAddrMulticast) && !multicast) return false;
  if ((mask & kAddrUnicast) && !unicast) return false;
  if ((mask & kAddrUnspec) && !any) return false;
  uint32_t by_route = kAddrLocal | kAddrAnycast | kAddrUnreachable;
  if (mask & by_route) return (mask & by_route & route) != 0;
  return true;
}

struct StageWork {
  const DecisionList* dl;
  std::vector<Lowered> rules;
  std::vector<RuleRef> origins;
};

// A box's slots and, per slot, its predicate id.
struct BoxPreds {
  uint32_t mask;
  std::array<uint32_t, kSlots> pid;
};

struct TupleBuild {
  nf2bpf_tuple tu{};
  std::unordered_map<nf2bpf_entry_key, std::vector<uint32_t>, EntryKeyHash, EntryKeyEq> chains;
};

class Compiler {
 public:
  Compiler(const Translation& tr, diag::Diagnostics& d, const CompileOptions& o) : tr_(tr), diag_(d), opt_(o) {}
  Policy run();

 private:
  bool lower(const FlatRule& f, const DecisionList& dl, Lowered& out);
  bool nat_action(const ir::Statement& st, const DecisionList& dl, nf2bpf_rule& d);
  void add_match(const Match& m, std::vector<Box>& boxes, nf2bpf_rule& desc, const SourceLoc& rule_loc, bool& ok);
  void classes_small(int slot);
  void classes_lpm(int slot);
  void classes_iface(int slot);
  uint32_t pred_id(int slot, const IntervalSet& s);
  uint32_t iface_pred_id(int slot, const IfacePredicate& p);
  void intern_nat(const nf2bpf_nat& n, nf2bpf_rule& d);
  ir::Pipeline services_pipeline_;  // tr_.pipeline with load-balancing chains as services (services.h)
  const Rule& source(const RuleRef& r) const { return tr_.ruleset.tables[r.table].chains[r.chain].rules[r.rule]; }
  uint32_t prefix_id(const std::string& p);
  void add_xdp_stage(const std::vector<uint32_t>& rule_slots);
  class MatchLowering;

  StageWork lower_stage(const DecisionList& dl, const std::set<RuleRef>& unsupported);
  std::vector<std::vector<std::vector<BoxPreds>>> box_predicates(const std::vector<StageWork>& work);
  void compute_classes();
  void emit_stage(StageWork& w, const std::vector<std::vector<BoxPreds>>& bp, std::vector<uint32_t>& rule_slots,
                  uint32_t& max_micro);
  uint32_t emit_rules(StageWork& w, const std::vector<std::vector<BoxPreds>>& bp, uint32_t first_rule,
                      std::vector<uint32_t>& rule_slots);
  std::vector<TupleBuild> build_tuples(const StageWork& w, const std::vector<std::vector<BoxPreds>>& bp,
                                       uint32_t first_rule);
  TupleBuild build_tuple(const StageWork& w, uint32_t mask,
                         const std::vector<std::pair<uint32_t, const BoxPreds*>>& list, uint32_t first_rule,
                         const std::vector<uint32_t>& resume, size_t& stage_entries);
  uint32_t emit_entries(std::vector<TupleBuild>& builds, uint32_t& max_chain);

  const Translation& tr_;
  diag::Diagnostics& diag_;
  const CompileOptions& opt_;
  Policy pol_;

  // Per slot: distinct predicates and, after class computation, the classes each covers.
  std::array<std::unordered_map<std::string, uint32_t>, kSlots> pred_index_;
  std::array<std::vector<IntervalSet>, kSlots> preds_;
  std::array<std::vector<IfacePredicate>, 2> iface_preds_;
  std::array<std::vector<std::vector<uint32_t>>, kSlots> pred_classes_;
  std::array<uint32_t, kSlots> class_count_{};
  std::unordered_map<std::string, uint32_t> prefix_ids_;
  bool failed_ = false;
  uint32_t table_index_ = 0;  // table of the rule being lowered (for set names)
  bool ip6_stage_ = false;    // the rule being lowered is in an ip6 (ip6tables) stage
  uint32_t stage_fams_ = 0;   // NF_FAM_* of the stage being lowered
  uint32_t nat_fams_ = 0;     // NF_FAM_* with a compiled nat stage
  // -m statistic --mode nth: the counter slot of each source rule (rules
  // inlined more than once share the kernel's one counter).
  std::map<RuleRef, uint32_t> nth_slots_;                // -m statistic --mode nth: its rule -> its counter
  std::map<std::string, uint32_t> numgen_slots_;         // nft numgen inc: its place -> its counter (same numbering)
  std::unordered_map<std::string, uint32_t> chain_ids_;  // pol_.chain_names -> index
  uint32_t nth_slot_count_ = 0;
  uint32_t nth_slot(std::map<RuleRef, uint32_t>::iterator it, bool fresh) {
    if (fresh) it->second = nth_slot_count_++;
    return it->second;
  }
  std::map<std::string, uint32_t> rand_slots_;  // a statistic-random match (its place and probability) -> its draw slot
  bool nth(const FlatRule& f, const Rule& src, nf2bpf_rule& d);
  // -m owner / meta skuid, skgid: NF_RES_OWNER.
  bool owner(const FlatRule& f, const Rule& src, const DecisionList& dl, nf2bpf_rule& d);
  // -m recent: per table name its hash, --mask (as the kernel keeps it: one
  // 16-byte union, an IPv4 mask in its first 4 bytes, all ones elsewhere)
  // and stamp ring (xt_recent's nstamps_max_mask, the largest any rule
  // naming it needs).
  struct RecentTable {
    uint32_t hash = 0;
    std::array<uint8_t, 16> mask{};
    uint8_t ring = 0;
  };
  std::map<std::string, RecentTable> recent_tables_;
  std::map<uint32_t, std::string> hashlimit_names_;  // -m hashlimit tables and nft sets by name hash
  std::map<uint32_t, std::string> recent_names_;     // hash -> name, for collisions
  bool recent(const FlatRule& f, const Rule& src, nf2bpf_rule& d);
};

uint32_t Compiler::prefix_id(const std::string& p) {
  auto it = prefix_ids_.find(p);
  if (it != prefix_ids_.end()) return it->second;
  uint32_t id = (uint32_t)pol_.log_prefixes.size();
  pol_.log_prefixes.push_back(p);
  prefix_ids_[p] = id;
  return id;
}

uint32_t Compiler::pred_id(int slot, const IntervalSet& s) {
  auto key = interval_key(s);
  auto it = pred_index_[slot].find(key);
  if (it != pred_index_[slot].end()) return it->second;
  uint32_t id = (uint32_t)preds_[slot].size();
  preds_[slot].push_back(s);
  pred_index_[slot][key] = id;
  return id;
}

uint32_t Compiler::iface_pred_id(int slot, const IfacePredicate& p) {
  auto& v = iface_preds_[slot - NF_SLOT_IIF];
  for (uint32_t i = 0; i < v.size(); ++i)
    if (v[i] == p) return i;
  v.push_back(p);
  return (uint32_t)v.size() - 1;
}

// A -m limit or nft limit match as the kernel configures its bucket
// (struct nf2bpf_limit_cfg). iptables: --limit as libxt_limit's parse_rate
// reads it (avg in 1/10000 s per packet); iptables-legacy keeps that for
// xt_limit, iptables-nft converts it to nft_limit's rate per unit as its
// add_nft_limit does. nft: "N[ UNIT]/PER" and "B UNIT" from the frontend.
// An empty string: fine; otherwise what is wrong.
static std::string limit_config(const ir::Match& m, bool legacy, nf2bpf_limit_cfg& out) {
  constexpr uint64_t kScale = 10000, kNsec = 1000000000;
  out = {};
  std::string rate, burst;
  bool iptables = m.cap.starts_with("-m ");  // "-m limit --limit", not nft's "limit rate"
  for (const auto& [k, v] : m.args) {
    if (k == "--limit" || k == "rate") rate = v;
    if (k == "--limit-burst" || k == "burst") burst = v;
  }
  uint64_t unit = 1, n = 0, b = 5, bytes_mult = 0;
  auto slash = rate.find('/');
  std::string per = slash == std::string::npos ? "" : rate.substr(slash + 1);
  std::string count = rate.substr(0, slash);
  if (!per.empty()) {
    auto is = [&](std::string_view w) { return per.size() <= w.size() && w.starts_with(per); };
    unit = is("second")              ? 1
           : is("minute")            ? 60
           : is("hour")              ? 3600
           : is("day")               ? 86400
           : !iptables && is("week") ? 604800
                                     : 0;
    if (!unit) return "invalid limit rate '" + rate + "'";
  }
  if (auto sp = count.find(' '); sp != std::string::npos) {  // nft: "10 mbytes"
    std::string u = count.substr(sp + 1);
    bytes_mult = u == "bytes" ? 1 : u == "kbytes" ? 1024 : u == "mbytes" ? 1024 * 1024 : 0;
    if (!bytes_mult) return "invalid limit rate '" + rate + "'";
    count.resize(sp);
  }
  if (rate.empty()) count = "3", unit = 3600;  // xt_limit's default, 3/hour
  n = std::strtoull(count.c_str(), nullptr, 10);
  if (!n || count.find_first_not_of("0123456789") != std::string::npos) return "invalid limit rate '" + rate + "'";
  if (!burst.empty()) {  // "5", "5 packets", "0 bytes", "1 mbytes"
    char* end = nullptr;
    b = std::strtoull(burst.c_str(), &end, 10);
    std::string_view u = end;
    b *= u == " kbytes" ? 1024 : u == " mbytes" ? 1024 * 1024 : 1;
  }
  if (iptables) {
    if (n > 0xffffffffu) return "invalid limit rate '" + rate + "'";
    uint32_t avg = (uint32_t)(kScale * unit / n);
    if (!avg) return "rate too fast '" + rate + "' (at most 10000/second)";
    if (!b || b > 10000 || (uint32_t)(avg * (uint32_t)b) / (uint32_t)b != avg)
      return "--limit-burst " + burst + " with --limit " + rate + " overflows the kernel's credit counter";
    if (legacy) {
      out.cost = avg, out.cap = b, out.flags = NF_LIMIT_XT;
      return "";
    }
    std::tie(n, unit) = xt_rate(avg);
  }
  uint64_t nsecs = unit * kNsec;
  if (bytes_mult) {
    out.rate = n * bytes_mult, out.flags = NF_LIMIT_BYTES | (m.negated ? NF_LIMIT_INV : 0);
    out.cost = nsecs;
    out.cap = (uint64_t)((unsigned __int128)nsecs * (out.rate + b) / out.rate);
    return "";
  }
  if (!b) b = 5;  // nft_limit_init's NFT_LIMIT_PKT_BURST_DEFAULT
  out.cost = nsecs / n, out.cap = out.cost * b;
  if (m.negated) out.flags |= NF_LIMIT_INV;
  return "";
}

// A -m hashlimit match as xt_hashlimit (revision 3) configures its table
// (struct nf2bpf_limit_cfg with NF_LIMIT_HASH): rates as libxt_hashlimit's
// parse_rate reads them (avg in 1/1000000 s per packet), its defaults (burst
// 5, expire 10 s, masks 32/128), and hashlimit_mt_check_common's checks.
// Byte rates and --hashlimit-rate-match are refused. An empty string: fine;
// otherwise what is wrong.
static std::string hashlimit_config(const ir::Match& m, bool ip6, nf2bpf_limit_cfg& out, std::string& name) {
  constexpr uint64_t kScale = 1000000;
  out = {};
  out.flags = NF_LIMIT_HASH;
  out.cap = 5;
  out.expire = 10000;
  uint32_t maxmask = ip6 ? 128 : 32;
  out.srcmask = out.dstmask = (uint8_t)maxmask;
  bool have_rate = false;
  auto number = [](const std::string& v, uint64_t max, uint64_t& n) {
    char* end = nullptr;
    n = std::strtoull(v.c_str(), &end, 10);
    return !v.empty() && !*end && v[0] != '-' && n <= max;
  };
  for (const auto& [k, v] : m.args) {
    uint64_t n = 0;
    if (k == "--hashlimit-upto" || k == "--hashlimit-above" || k == "--hashlimit") {
      auto slash = v.find('/');
      std::string count = v.substr(0, slash), per = slash == std::string::npos ? "" : v.substr(slash + 1);
      if (count.find_first_not_of("0123456789") != std::string::npos)
        return "byte rates ('" + v + "') are not supported with -m hashlimit";
      uint64_t mult = 1;
      if (!per.empty()) {
        auto is = [&](std::string_view w) {
          return per.size() <= w.size() && strncasecmp(per.c_str(), w.data(), per.size()) == 0;
        };
        mult = is("second") ? 1 : is("minute") ? 60 : is("hour") ? 3600 : is("day") ? 86400 : 0;
      }
      if (!mult || !number(count, UINT32_MAX, n) || !n) return "invalid -m hashlimit rate '" + v + "'";
      out.cost = kScale * mult / n;
      if (!out.cost) return "rate too fast '" + v + "'";
      if (k == "--hashlimit-above") out.flags |= NF_LIMIT_INV;
      have_rate = true;
    } else if (k == "--hashlimit-burst") {
      if (!number(v, 10000, n) || !n) return "invalid --hashlimit-burst '" + v + "' (1 to 10000)";
      out.cap = n;
    } else if (k == "--hashlimit-mode") {
      out.mode = 0;
      std::stringstream ss(v);
      std::string part;
      while (std::getline(ss, part, ','))
        out.mode |= part == "srcip"     ? NF_HL_SIP
                    : part == "dstip"   ? NF_HL_DIP
                    : part == "srcport" ? NF_HL_SPT
                    : part == "dstport" ? NF_HL_DPT
                                        : 0x80;
      if (out.mode & 0x80) return "invalid --hashlimit-mode '" + v + "' (srcip, srcport, dstip, dstport)";
    } else if (k == "--hashlimit-srcmask" || k == "--hashlimit-dstmask") {
      if (!number(v, maxmask, n)) return "invalid " + k + " '" + v + "' (0 to " + std::to_string(maxmask) + ")";
      (k == "--hashlimit-srcmask" ? out.srcmask : out.dstmask) = (uint8_t)n;
    } else if (k == "--hashlimit-name") {
      name = v;
    } else if (k == "--hashlimit-htable-expire") {
      if (!number(v, UINT32_MAX, n) || !n) return "invalid --hashlimit-htable-expire '" + v + "'";
      out.expire = (uint32_t)n;
    } else if (k == "--hashlimit-htable-size" || k == "--hashlimit-htable-max" ||
               k == "--hashlimit-htable-gcinterval") {
      if (!number(v, UINT32_MAX, n) || (k == "--hashlimit-htable-gcinterval" && !n))
        return "invalid " + k + " '" + v + "'";
    } else {
      return "-m hashlimit " + k + " is not supported";
    }
  }
  if (!have_rate) return "-m hashlimit needs --hashlimit-upto or --hashlimit-above";
  if (name.empty() || name.size() > 254) return "-m hashlimit needs a --hashlimit-name of 1 to 254 characters";
  // user2credits(avg * burst) < user2credits(avg): the kernel's overflow
  // check, with the largest credits per microsecond of any HZ (300's).
  unsigned __int128 cap = (unsigned __int128)out.cost * out.cap * 164926744u;
  if (cap >> 64) return "--hashlimit-burst with this rate overflows the kernel's credit counter";
  if (m.negated) out.flags ^= NF_LIMIT_INV;
  for (unsigned char c : name) out.table = (out.table ^ c) * 16777619u;
  return "";
}

// An nft set operation (module nftset, Builder::dynamic_sets) as the
// dataplane's set elements take it (struct nf2bpf_limit_cfg with
// NF_LIMIT_SET): the operation, the set (`name`, its hash the table), the
// key's parts, the timeout, and an element's packet-rate limit as nft_limit
// configures one.
static std::string nftset_config(const ir::Match& m, nf2bpf_limit_cfg& out, std::string& name) {
  out = {};
  std::string op, key;
  int family = 0;
  bool limited = false;
  ir::Match lim;
  lim.field = Field::Opaque;
  lim.module = "limit";
  for (const auto& [k, v] : m.args) {
    if (k == "op") op = v;
    if (k == "set") name = v;
    if (k == "key") key = v;
    if (k == "family") family = std::atoi(v.c_str());
    if (k == "timeout") out.expire = (uint32_t)std::min<uint64_t>(std::strtoull(v.c_str(), nullptr, 10), UINT32_MAX);
    if (k == "own timeout") out.rate |= NF_SET_TIMEOUT;
    if (k == "limit over") lim.negated = true;
    if (k == "limit rate" || k == "limit burst") lim.args.emplace_back(k.substr(6), v), limited = true;
  }
  out.rate |= op == "lookup"   ? NF_SET_LOOKUP
              : op == "add"    ? NF_SET_ADD
              : op == "update" ? NF_SET_UPDATE
              : op == "delete" ? NF_SET_DELETE
                               : 0;
  if (!(out.rate & NF_SET_OP) || name.empty()) return "invalid set operation '" + op + "'";
  if (limited) {
    nf2bpf_limit_cfg l;
    lim.cap = "limit rate";
    if (auto err = limit_config(lim, false, l); !err.empty()) return err;
    if (l.flags & NF_LIMIT_BYTES) return "byte rates in a set's elements are not supported";
    out.cost = l.cost, out.cap = l.cap, out.rate |= NF_SET_LIMIT;
    if (l.flags & NF_LIMIT_INV) out.flags |= NF_LIMIT_INV;
  }
  out.flags |= NF_LIMIT_SET;
  if (m.negated) out.flags ^= NF_LIMIT_INV;
  uint8_t full = family == 6 ? 128 : 32;
  for (const char* part : {"saddr", "daddr", "sport", "dport"})
    if (key.find(part) != std::string::npos) {
      std::string_view p = part;
      out.mode |= p == "saddr" ? NF_HL_SIP : p == "daddr" ? NF_HL_DIP : p == "sport" ? NF_HL_SPT : NF_HL_DPT;
    }
  if (out.mode & NF_HL_SIP) out.srcmask = full;
  if (out.mode & NF_HL_DIP) out.dstmask = full;
  for (unsigned char c : name) out.table = (out.table ^ c) * 16777619u;
  return "";
}

// A -m connlimit match as xt_connlimit configures it (struct
// nf2bpf_limit_cfg with NF_LIMIT_CONN): --connlimit-upto/--connlimit-above
// N, --connlimit-mask (32 or 128 by default), --connlimit-saddr (the
// default) or --connlimit-daddr. An empty string: fine; otherwise what is
// wrong.
static std::string connlimit_config(const ir::Match& m, bool ip6, nf2bpf_limit_cfg& out) {
  out = {};
  out.flags = NF_LIMIT_CONN;
  uint32_t maxmask = ip6 ? 128 : 32;
  out.srcmask = (uint8_t)maxmask;
  bool have = false;
  for (const auto& [k, v] : m.args) {
    char* end = nullptr;
    uint64_t n = std::strtoull(v.c_str(), &end, 10);
    bool num = !v.empty() && !*end && v[0] != '-';
    if (k == "--connlimit-upto" || k == "--connlimit-above") {
      if (!num || n > UINT32_MAX) return "invalid " + k + " '" + v + "'";
      out.cost = n;
      out.flags = NF_LIMIT_CONN | (k == "--connlimit-upto" ? NF_LIMIT_INV : 0);
      have = true;
    } else if (k == "--connlimit-mask") {
      if (!num || n > maxmask) return "invalid --connlimit-mask '" + v + "' (0 to " + std::to_string(maxmask) + ")";
      out.srcmask = (uint8_t)n;
    } else if (k == "--connlimit-saddr" || k == "--connlimit-daddr") {
      out.mode = k == "--connlimit-daddr" ? NF_CL_DADDR : 0;
    } else {
      return "-m connlimit " + k + " is not supported";
    }
  }
  if (!have) return "-m connlimit needs --connlimit-upto or --connlimit-above";
  // A list keeps up to NF_CONNLIMIT_CONNS connections: a limit below that
  // decides as the kernel's count does.
  if (out.cost >= NF_CONNLIMIT_CONNS - 1)
    return "-m connlimit limits from " + std::to_string(NF_CONNLIMIT_CONNS - 1) +
           " up are not supported (nf2bpf keeps " + std::to_string(NF_CONNLIMIT_CONNS) + " connections a key)";
  if (m.negated) out.flags ^= NF_LIMIT_INV;
  return "";
}

// A -m time match as libxt_time parses it and xt_time checks it (struct
// nf2bpf_limit_cfg with NF_LIMIT_TIME, fields as abi.h says): dates
// YYYY[-MM[-DD[Thh[:mm[:ss]]]]] in UTC, times of day hh:mm[:ss], weekdays
// by name or number, days of the month, `!` before --weekdays or
// --monthdays, --kerneltz (or --localtz), --utc, --contiguous. An empty
// string: fine; otherwise what is wrong.
static std::string time_config(const ir::Match& m, nf2bpf_limit_cfg& out) {
  uint64_t date_start = 0, date_stop = 0x7fffffff, day_start = 0, day_stop = 86399;
  uint64_t weekdays = 0xfe, monthdays = 0xfffffffe;
  out = {};
  out.flags = NF_LIMIT_TIME;
  auto date = [](const std::string& v, uint64_t& t) {
    unsigned y = 0, mo = 1, d = 1, h = 0, mi = 0, sec = 0;
    int n = std::sscanf(v.c_str(), "%4u-%2u-%2uT%2u:%2u:%2u", &y, &mo, &d, &h, &mi, &sec);
    if (n < 1 || y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 59) return false;
    // days_from_civil (UTC, as libxt_time's mktime under TZ=UTC)
    int yy = (int)y - (mo <= 2);
    int64_t era = yy / 400, yoe = yy - era * 400, mp = (mo + 9) % 12;
    int64_t doy = (153 * mp + 2) / 5 + d - 1, doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    int64_t days = era * 146097 + doe - 719468;
    t = (uint64_t)(days * 86400 + h * 3600 + mi * 60 + sec);
    return t <= UINT32_MAX;
  };
  auto daytime = [](const std::string& v, uint64_t& t) {
    unsigned h = 0, mi = 0, sec = 0;
    int n = std::sscanf(v.c_str(), "%2u:%2u:%2u", &h, &mi, &sec);
    if (n < 2 || h > 23 || mi > 59 || sec > 59) return false;
    t = h * 3600 + mi * 60 + sec;
    return true;
  };
  for (const auto& [key, v] : m.args) {
    bool neg = key.starts_with("! ");
    std::string k = neg ? key.substr(2) : key;
    if (neg && k != "--weekdays" && k != "--monthdays") return "'!' before -m time " + k + " is not valid";
    if (k == "--datestart" || k == "--datestop") {
      if (!date(v, k == "--datestart" ? date_start : date_stop)) return "invalid " + k + " '" + v + "'";
    } else if (k == "--timestart" || k == "--timestop") {
      if (!daytime(v, k == "--timestart" ? day_start : day_stop)) return "invalid " + k + " '" + v + "'";
    } else if (k == "--weekdays") {
      static const char* names[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
      weekdays = 0;
      std::stringstream ss(v);
      std::string part;
      while (std::getline(ss, part, ',')) {
        unsigned d = 0;
        for (unsigned i = 0; i < 7; ++i)
          if (strncasecmp(part.c_str(), names[i], 3) == 0) d = i + 1;
        if (!d && part.size() == 1 && part[0] >= '1' && part[0] <= '7') d = (unsigned)(part[0] - '0');
        if (!d) return "invalid --weekdays '" + v + "'";
        weekdays |= 1u << d;
      }
      if (neg) weekdays ^= 0xfe;
    } else if (k == "--monthdays") {
      monthdays = 0;
      std::stringstream ss(v);
      std::string part;
      while (std::getline(ss, part, ',')) {
        char* end = nullptr;
        unsigned long d = std::strtoul(part.c_str(), &end, 10);
        if (part.empty() || *end || d < 1 || d > 31) return "invalid --monthdays '" + v + "'";
        monthdays |= 1u << d;
      }
      if (neg) monthdays ^= 0xfffffffe;
    } else if (k == "--kerneltz" || k == "--localtz") {
      out.mode |= NF_TM_KERNELTZ;
    } else if (k == "--utc") {
      out.mode &= ~NF_TM_KERNELTZ;
    } else if (k == "--contiguous") {
      out.mode |= NF_TM_CONTIGUOUS;
    } else {
      return "-m time " + k + " is not supported";
    }
  }
  if (m.negated) return "a negated -m time is not valid";
  out.cost = date_start | date_stop << 32;
  out.cap = day_start | day_stop << 32;
  out.rate = monthdays | weekdays << 32;
  return "";
}

// One match of one rule: constraints on the rule's boxes, or a residual
// check in its descriptor.
class Compiler::MatchLowering {
 public:
  MatchLowering(Compiler& c, const Match& m, std::vector<Box>& boxes, nf2bpf_rule& desc, const SourceLoc& rule_loc,
                bool& ok)
      : c_(c), m_(m), boxes_(boxes), desc_(desc), rule_loc_(rule_loc), ok_(ok) {}
  void run();

 private:
  void constrain_all(int slot, const IntervalSet& s) {
    for (auto& b : boxes_) b.constrain(slot, s);
  }
  void alternatives(const std::vector<Box>& alts);
  void fail(const std::string& why) {
    c_.diag_.error(m_.loc.line ? m_.loc : rule_loc_, why);
    ok_ = false;
  }
  void masked(const Masked& mk);
  void set(const SetRef& ref);
  void opaque(const IntervalSet& vals);
  void ct_tuple(const IntervalSet& vals);
  void addrtype6(const IntervalSet& vals);
  void mac(const IntervalSet& vals);
  void values(const IntervalSet& vals);

  Compiler& c_;
  const Match& m_;
  std::vector<Box>& boxes_;
  nf2bpf_rule& desc_;
  const SourceLoc& rule_loc_;
  bool& ok_;
};

void Compiler::add_match(const Match& m, std::vector<Box>& boxes, nf2bpf_rule& desc, const SourceLoc& rule_loc,
                         bool& ok) {
  MatchLowering(*this, m, boxes, desc, rule_loc, ok).run();
}

void Compiler::MatchLowering::run() {
  const Match& m = m_;
  if (auto* mk = std::get_if<Masked>(&m.value)) {
    masked(*mk);
  } else if (auto* ifs = std::get_if<std::vector<IfacePattern>>(&m.value)) {
    int which = m.field == Field::IifName ? 0 : 1;
    for (auto& b : boxes_) b.constrain_iface(which, IfaceClause{*ifs, m.negated});
  } else if (auto* ref = std::get_if<SetRef>(&m.value)) {
    set(*ref);
  } else {
    const auto& vals = std::get<IntervalSet>(m.value);
    if (m.field == Field::Opaque)
      opaque(vals);
    else if (m.field == Field::CtOrigSrc || m.field == Field::CtOrigDst || m.field == Field::CtReplSrc ||
             m.field == Field::CtReplDst || m.field == Field::CtOrigSrcPort || m.field == Field::CtOrigDstPort ||
             m.field == Field::CtReplSrcPort || m.field == Field::CtReplDstPort)
      ct_tuple(vals);
    else if ((m.field == Field::SrcAddrType || m.field == Field::DstAddrType) && c_.ip6_stage_ &&
             m.cap.rfind("-m addrtype", 0) == 0)
      addrtype6(vals);
    else if (m.field == Field::SrcMac)
      mac(vals);
    else if (m.field == Field::SkUid || m.field == Field::SkGid)
      return;  // Compiler::owner
    else
      values(vals);
  }
}

// Every box once per alternative (a set of boxes ORed), empty ones dropped.
void Compiler::MatchLowering::alternatives(const std::vector<Box>& alts) {
  std::vector<Box> out;
  for (const auto& b : boxes_)
    for (const auto& a : alts) {
      Box x = b.and_with(a);
      if (!x.empty) out.push_back(std::move(x));
    }
  boxes_ = std::move(out);
}

// TCP flags become the flag values that pass; marks and connmarks residual checks.
void Compiler::MatchLowering::masked(const Masked& mk) {
  const Match& m = m_;
  nf2bpf_rule& desc = desc_;
  if (m.field == Field::TcpFlags) {
    IntervalSet s;
    for (uint32_t v = 0; v < 256; ++v)
      if (mk.values.contains(v & mk.mask) != m.negated) s.add(v, v);
    constrain_all(NF_SLOT_TCPFLAGS, s);
    return;
  }
  if (m.field == Field::CtStatus) {
    // Only the NAT bits (snat 16, dnat 32) are known to the dataplane: the
    // test becomes the set of NAT statuses it holds for. Several tests of
    // one rule (with the chains that jump to it) intersect.
    if (mk.mask & ~(uint64_t)48) {
      fail("ct status bits other than snat and dnat are not supported by the dataplane");
      return;
    }
    uint32_t ok = 0;
    for (uint32_t st = 0; st < 4; ++st) {
      uint64_t status = (st & 1 ? 16 : 0) | (st & 2 ? 32 : 0);
      if (mk.values.contains(status & mk.mask) != m.negated) ok |= 1u << st;
    }
    if (!(desc.residual & NF_RES_CTSTATUS)) desc.ctstatus = 15;
    desc.residual |= NF_RES_CTSTATUS;
    desc.ctstatus &= ok;
    return;
  }
  if (mk.values.intervals().size() != 1 || mk.values.intervals()[0].lo != mk.values.intervals()[0].hi) {
    fail("a mark test with several values is not supported");
    return;
  }
  uint32_t val = (uint32_t)mk.values.intervals()[0].lo;
  if (m.field == Field::Mark) {
    // Every mark test of a rule is checked against the same mark (a chain
    // that changes it is guarded, see flatten), so tests on one mask combine:
    // a repeated test adds nothing, an equality makes inequalities of other
    // values redundant, and contradicting tests leave a rule that never matches.
    auto same = [&](uint32_t have_mask, uint32_t have_val, bool have_neg, bool& keep_new, bool& never) {
      if (have_mask != (uint32_t)mk.mask) return false;
      if (have_neg == m.negated && have_val == val) return keep_new = false, true;
      if (!have_neg && !m.negated) return never = true, true;                                // == v and == w
      if (!have_neg && m.negated) return (never = have_val == val), keep_new = false, true;  // == v, != w
      if (have_neg && !m.negated && have_val == val) return never = true, true;              // != v, == v
      return false;
    };
    bool keep_new = true, never = false, replaced = false;
    if (desc.residual & NF_RES_MARK) {
      bool neg = desc.residual & NF_RES_MARK_NEG;
      if (!same(desc.mark_mask, desc.mark_value, neg, keep_new, never) && neg && !m.negated &&
          desc.mark_mask == (uint32_t)mk.mask) {
        desc.residual &= ~NF_RES_MARK_NEG, desc.mark_value = val, replaced = true;  // != v, == w: == w
      }
    }
    if (!never && keep_new && !replaced && (desc.residual & NF_RES_MARK2)) {
      bool neg = desc.residual & NF_RES_MARK2_NEG;
      if (!same(desc.mark2_mask, desc.mark2_value, neg, keep_new, never) && neg && !m.negated &&
          desc.mark2_mask == (uint32_t)mk.mask) {
        desc.residual &= ~NF_RES_MARK2_NEG, desc.mark2_value = val, replaced = true;
      }
    }
    if (never) {
      boxes_.clear();  // no packet can satisfy every test: the rule has no entries
      return;
    }
    if (!keep_new || replaced) return;
    if (!(desc.residual & NF_RES_MARK)) {
      desc.residual |= NF_RES_MARK | (m.negated ? NF_RES_MARK_NEG : 0);
      desc.mark_mask = (uint32_t)mk.mask, desc.mark_value = val;
    } else if (!(desc.residual & NF_RES_MARK2)) {
      desc.residual |= NF_RES_MARK2 | (m.negated ? NF_RES_MARK2_NEG : 0);
      desc.mark2_mask = (uint32_t)mk.mask, desc.mark2_value = val;
    } else {
      fail("more than two mark tests apply to this rule (with the chains that jump to it)");
    }
    return;
  }
  if (m.field == Field::CtMark) {
    if (desc.residual & NF_RES_CTMARK) {
      fail("more than one connmark test applies to this rule (with the chains that jump to it)");
      return;
    }
    desc.residual |= NF_RES_CTMARK | (m.negated ? NF_RES_CTMARK_NEG : 0);
    desc.ctmark_mask = (uint32_t)mk.mask, desc.ctmark_value = val;
    return;
  }
  fail(std::string("masked test of ") + to_string(m.field) + " is not supported by the dataplane");
}

// A one-field set is a value list; a multi-field set is one box per element.
void Compiler::MatchLowering::set(const SetRef& ref) {
  const Set* set = c_.tr_.ruleset.find_set(c_.tr_.ruleset.tables[c_.table_index_], ref.name);
  if (!set) {
    fail("set '" + ref.name + "' is not defined");
    return;
  }
  size_t dims = ref.key.size();
  if (dims == 1) {
    IntervalSet u;
    for (const auto& e : set->elements)
      if (!e.key.empty()) u.add(e.key[0]);
    auto [slot, s] = slot_set(ref.key[0], u, m_.negated);
    if (slot < 0) {
      fail(std::string("sets keyed by ") + to_string(ref.key[0]) + " are not supported by the dataplane");
      return;
    }
    constrain_all(slot, s);
    return;
  }
  if (m_.negated) {
    fail("a negated match on a multi-dimensional set is not supported");
    return;
  }
  std::vector<Box> alts;
  for (const auto& e : set->elements) {
    Box b;
    for (size_t i = 0; i < dims && i < e.key.size(); ++i) {
      // An ICMP element's "port" is its type << 8 | code (ipset's
      // ip_set_get_ip4_port), whichever side the set's dimension names.
      Field f = ref.key[i];
      if ((f == Field::SrcPort || f == Field::DstPort) && i > 0 && ref.key[i - 1] == Field::L4Proto) {
        const auto& proto = e.key[i - 1];
        if (proto == IntervalSet::single(1)) f = Field::IcmpType;
        if (proto == IntervalSet::single(58)) f = Field::Icmp6Type;
      }
      auto [slot, s] = slot_set(f, e.key[i], false);
      if (slot < 0) {
        fail(std::string("sets keyed by ") + to_string(ref.key[i]) + " are not supported by the dataplane");
        return;
      }
      b.constrain(slot, s);
    }
    if (!b.empty) alts.push_back(std::move(b));
  }
  alternatives(alts);
}

void Compiler::MatchLowering::opaque(const IntervalSet& vals) {
  const Match& m = m_;
  if (m.cap == "-m multiport --ports") {
    if (m.negated) {
      constrain_all(NF_SLOT_SPORT, vals.complement(65535));
      constrain_all(NF_SLOT_DPORT, vals.complement(65535));
    } else {
      Box a, b;
      a.constrain(NF_SLOT_SPORT, vals);
      b.constrain(NF_SLOT_DPORT, vals);
      b.constrain(NF_SLOT_SPORT, vals.complement(65535));  // disjoint: a packet hits one box
      alternatives({a, b});
    }
    return;
  }
  if (m.module == "limit" || m.module == "owner") return;  // handled per rule (Compiler::owner, limit_config)
  if (m.module == "statistic") return;
  if (m.module == ir::kNumgenModule) return;     // its draws: the statistic matches the flattener added
  if (m.module == ir::kNumgenIncModule) return;  // handled per rule (Compiler::nth)
  if (m.module == "recent") return;              // handled per rule (Compiler::recent)
  if (m.module == "hashlimit" || m.module == "connlimit" || m.module == "time" || m.module == "nftset")
    return;  // per rule (*_config)
  // ipset's own counters: no effect on whether the rule matches.
  if (m.cap == "-m set --update-counters" || m.cap == "-m set --update-subcounters") return;
  fail("unsupported match " + m.cap + " reached the compiler");
}

void Compiler::MatchLowering::ct_tuple(const IntervalSet& vals) {
  const Match& m = m_;
  bool addr = m.field == Field::CtOrigSrc || m.field == Field::CtOrigDst || m.field == Field::CtReplSrc ||
              m.field == Field::CtReplDst;
  if (c_.stage_fams_ & c_.nat_fams_) {
    // NAT makes the packet's addresses differ from the connection's: the
    // dataplane tests the connection's tuple (NF_RES_CTTUPLE), one range
    // per test, chained in nf_nat.
    if (vals.intervals().size() != 1) {
      fail("a conntrack tuple test in a family with NAT must be one address prefix/range or port range");
      return;
    }
    bool reply = m.field == Field::CtReplSrc || m.field == Field::CtReplDst || m.field == Field::CtReplSrcPort ||
                 m.field == Field::CtReplDstPort;
    bool dst = m.field == Field::CtOrigDst || m.field == Field::CtReplDst || m.field == Field::CtOrigDstPort ||
               m.field == Field::CtReplDstPort;
    nf2bpf_nat t{};
    t.kind = (uint8_t)(NF_NAT_CT + (reply ? 4 : 0) + (dst ? 2 : 0) + (addr ? 0 : 1));
    const auto& iv = vals.intervals()[0];
    if (addr) {
      for (int i = 0; i < 16; ++i) {
        t.addr_min[i] = (uint8_t)(iv.lo >> (8 * (15 - i)));
        t.addr_max[i] = (uint8_t)(iv.hi >> (8 * (15 - i)));
      }
      t.flags |= NF_NAT_F_ADDR;
    } else {
      t.port_min = (uint16_t)iv.lo;
      t.port_max = (uint16_t)std::min<u128>(iv.hi, 65535);
      t.flags |= NF_NAT_F_PORTS;
    }
    if (m.negated) t.flags |= NF_NAT_F_NEG;
    auto& nats = c_.pol_.nats;
    if (desc_.residual & NF_RES_CTTUPLE) {
      // Chained after the rule's previous test, the last entry so far.
      uint32_t n = 1;
      while (nats[desc_.ct_range + n - 1].flags & NF_NAT_F_MORE) ++n;
      if (n == 4 || desc_.ct_range + n != nats.size()) {
        fail("at most four conntrack tuple tests per rule in a family with NAT");
        return;
      }
      nats.back().flags |= NF_NAT_F_MORE;
    } else {
      desc_.residual |= NF_RES_CTTUPLE;
      desc_.ct_range = (uint32_t)nats.size();
    }
    nats.push_back(t);
    // No connection (INVALID, UNTRACKED): no tuple matches (negated or not).
    constrain_all(NF_SLOT_CTDIR, IntervalSet::range(0, 1));
    return;
  }
  // Without NAT the original tuple is the packet's own in the original
  // direction and the swapped one in the reply direction.
  bool src_in_orig = m.field == Field::CtOrigSrc || m.field == Field::CtOrigSrcPort || m.field == Field::CtReplDst ||
                     m.field == Field::CtReplDstPort;
  Field s = addr ? Field::SrcAddr : Field::SrcPort, d = addr ? Field::DstAddr : Field::DstPort;
  Box orig, repl;
  orig.constrain(NF_SLOT_CTDIR, IntervalSet::single(0));
  repl.constrain(NF_SLOT_CTDIR, IntervalSet::single(1));
  auto [so, vo] = slot_set(src_in_orig ? s : d, vals, m.negated);
  auto [sr, vr] = slot_set(src_in_orig ? d : s, vals, m.negated);
  orig.constrain(so, vo);
  repl.constrain(sr, vr);
  alternatives({orig, repl});
}

// ip6tables' addrtype (xt_addrtype match_type6) is not IPv4's "the address's
// one type is in the list": every listed condition must hold, and a local
// address is UNICAST as well as LOCAL. The classifier sees the address's one
// type from the host table; list the types for which the kernel's test holds.
void Compiler::MatchLowering::addrtype6(const IntervalSet& vals) {
  uint32_t mask = 0;
  for (const auto& iv : vals.intervals())
    for (u128 v = iv.lo; v <= iv.hi && v <= 4095; ++v) mask |= (uint32_t)v;
  IntervalSet types;
  for (uint32_t t = 0; t <= 4095; ++t)
    if (addrtype6_holds(mask, t)) types.add(t, t);
  auto [slot, s] = slot_set(m_.field, types, m_.negated);
  constrain_all(slot, s);
}

void Compiler::MatchLowering::mac(const IntervalSet& vals) {
  if (vals.intervals().size() != 1 || vals.intervals()[0].lo != vals.intervals()[0].hi ||
      (desc_.residual & NF_RES_MAC)) {
    fail("only one single-address MAC test per rule is supported");
    return;
  }
  desc_.residual |= NF_RES_MAC | (m_.negated ? NF_RES_MAC_NEG : 0);
  desc_.mac = (uint64_t)vals.intervals()[0].lo;
}

void Compiler::MatchLowering::values(const IntervalSet& vals) {
  auto [slot, s] = slot_set(m_.field, vals, m_.negated);
  if (slot < 0) {
    fail(std::string("match on ") + to_string(m_.field) + " is not supported by the dataplane");
    return;
  }
  constrain_all(slot, s);
  // The connection's protocol: a packet without a connection (INVALID,
  // UNTRACKED, or before conntrack) has none, so it matches neither the
  // protocol nor its negation. Those packets are the ones with no direction.
  if (m_.field == Field::CtL4Proto) constrain_all(NF_SLOT_CTDIR, IntervalSet::range(0, 1));
}

bool Compiler::lower(const FlatRule& f, const DecisionList& dl, Lowered& out) {
  const Rule& src = source(f.origin);
  table_index_ = f.origin.table;
  ip6_stage_ = dl.family == Family::Ip6;
  stage_fams_ = dl.family == Family::Ip ? NF_FAM_V4 : dl.family == Family::Ip6 ? NF_FAM_V6 : (NF_FAM_V4 | NF_FAM_V6);
  out.boxes = {Box{}};
  bool ok = true;
  nf2bpf_rule& d = out.desc;
  // The rule's checks kept in the limits table, in the rule's order: -m
  // limit / nft limit (iptables: a match per option, merged), -m hashlimit,
  // -m connlimit, -m time, nft set lookups and writes (module nftset).
  std::vector<ir::Match> limited;
  bool random = false;
  double probability = 1;
  bool random_neg = false;
  std::string random_at;  // the statistic match's place: its draw's slot
  for (const auto& m : f.matches) {
    add_match(m, out.boxes, d, src.loc, ok);
    if (m.field != Field::Opaque) continue;
    if (m.module == "hashlimit" || m.module == "connlimit" || m.module == "time" || m.module == "nftset")
      limited.push_back(m);
    if (m.module == "limit") {
      auto it = std::find_if(limited.begin(), limited.end(), [](const Match& x) { return x.module == "limit"; });
      if (it == limited.end())
        limited.push_back(m);
      else
        it->args.insert(it->args.end(), m.args.begin(), m.args.end());
    }
    if (m.module == "statistic")
      for (const auto& [k, v] : m.args) {
        if (k == "--mode" && v == "random") random = true;
        if (k == "--probability") {
          probability = std::atof(v.c_str());
          random_neg = m.negated;
          random_at = m.loc.str() + " " + v;
        }
      }
  }
  if (limited.size() > NF_LIMIT_CHAIN) {
    diag_.error(src.loc, std::to_string(limited.size()) +
                             " limits, connection counts, times and set operations in "
                             "one rule: the dataplane checks at most " +
                             std::to_string(NF_LIMIT_CHAIN));
    ok = false;
  } else if (!limited.empty()) {
    std::vector<nf2bpf_limit_cfg> cfgs;
    for (const Match& m : limited) {
      nf2bpf_limit_cfg lc;
      std::string name, err = m.module == "limit"       ? limit_config(m, tr_.ruleset.iptables_legacy, lc)
                              : m.module == "hashlimit" ? hashlimit_config(m, ip6_stage_, lc, name)
                              : m.module == "connlimit" ? connlimit_config(m, ip6_stage_, lc)
                              : m.module == "nftset"    ? nftset_config(m, lc, name)
                                                        : time_config(m, lc);
      if (err.empty() && !name.empty()) {
        auto [it, fresh] = hashlimit_names_.try_emplace(lc.table, name);
        if (!fresh && it->second != name)
          err = "'" + name + "' and '" + it->second + "' have the same hash (as tables of per-key state)";
        if (lc.flags & NF_LIMIT_SET) pol_.set_names[lc.table] = name;
      }
      if (!err.empty()) {
        diag_.error(m.loc.line ? m.loc : src.loc, err);
        ok = false;
      }
      cfgs.push_back(lc);
    }
    if (ok) {
      if (pol_.limits.empty()) pol_.limits.push_back({});
      d.residual |= NF_RES_LIMIT;
      d.limit = (uint32_t)pol_.limits.size();
      for (size_t i = 0; i < cfgs.size(); ++i) {
        if (i + 1 < cfgs.size()) cfgs[i].flags |= NF_LIMIT_MORE;
        pol_.limits.push_back(cfgs[i]);
      }
    }
  }
  if (!nth(f, src, d)) ok = false;
  if (!recent(f, src, d)) ok = false;
  if (!owner(f, src, dl, d)) ok = false;
  if (random && (d.residual & NF_RES_NTH)) {
    diag_.error(src.loc, "-m statistic --mode random and --mode nth in one rule are not supported");
    ok = false;
  } else if (random) {
    auto [slot, fresh] = rand_slots_.try_emplace(random_at, (uint32_t)rand_slots_.size());
    d.nth_slot = slot->second;
    d.residual |= NF_RES_RANDOM | (random_neg ? NF_RES_RANDOM_NEG : 0);
    double p = std::clamp(probability, 0.0, 1.0);
    d.random_below = (uint32_t)std::min<double>(std::llround(p * 2147483648.0), 2147483648.0 - 1 + (p >= 1 ? 1 : 0));
  }
  // Drop boxes that cannot match.
  std::erase_if(out.boxes, [](const Box& b) { return b.empty; });

  switch (f.action) {
    case FlatAction::Accept: d.action = NF_ACT_ACCEPT; break;
    case FlatAction::Drop: d.action = NF_ACT_DROP; break;
    case FlatAction::Reject: d.action = NF_ACT_REJECT; break;
    case FlatAction::Continue: d.action = NF_ACT_CONTINUE; break;
    case FlatAction::Skip: d.action = NF_ACT_SKIP; break;
    case FlatAction::Queue:
      diag_.error(src.loc, "queueing to userspace is not supported by the dataplane");
      ok = false;
      break;
  }
  for (const auto& st : f.statements) {
    nf2bpf_stmt s{};
    switch (st.kind) {
      case StmtKind::Counter: continue;  // every rule is counted
      case StmtKind::Log:
      case StmtKind::Nflog:
        s.kind = NF_STMT_LOG;
        s.level = (uint8_t)st.level;
        s.group = (uint16_t)st.group;
        s.prefix_id = prefix_id(st.text);
        break;
      case StmtKind::SetMark:
        s.kind = NF_STMT_SET_MARK, s.value = (uint32_t)st.value, s.mask = (uint32_t)st.mask;
        break;
      case StmtKind::SetCtMark:
        s.kind = NF_STMT_SET_CTMARK, s.value = (uint32_t)st.value, s.mask = (uint32_t)st.mask;
        break;
      case StmtKind::SaveMark: s.kind = NF_STMT_SAVE_MARK, s.mask = (uint32_t)st.mask; break;
      case StmtKind::RestoreMark: s.kind = NF_STMT_RESTORE_MARK, s.mask = (uint32_t)st.mask; break;
      case StmtKind::SetTos: s.kind = NF_STMT_SET_TOS, s.value = (uint32_t)st.value, s.mask = (uint32_t)st.mask; break;
      case StmtKind::Dnat:
      case StmtKind::Snat:
      case StmtKind::Masquerade:
      case StmtKind::Redirect:
      case StmtKind::Netmap:
        if (!nat_action(st, dl, d)) ok = false;
        continue;
      case StmtKind::TcpMss: {
        // iptables: --set-mss N or --clamp-mss-to-pmtu; nft: set N or set rt mtu.
        std::string v;
        bool pmtu = false;
        for (const auto& [k, a] : st.args) {
          if (k == "--set-mss" || k == "set") v = a;
          if (k == "--clamp-mss-to-pmtu" || a == "rt mtu") pmtu = true;
        }
        uint64_t mss = v.empty() || v.find_first_not_of("0123456789") != std::string::npos
                           ? 0
                           : std::strtoull(v.c_str(), nullptr, 10);
        if (!pmtu && (mss == 0 || mss > 65535)) {
          diag_.error(st.loc, "invalid MSS '" + v + "'", "an MSS from 1 to 65535, or the path MTU's");
          ok = false;
          continue;
        }
        if (pmtu && dl.hook != Hook::Forward) {
          diag_.error(st.loc,
                      "nf2bpf clamps the MSS to the path MTU in the forward hook only, where the route is known",
                      "put the rule in mangle FORWARD (a forward chain), or set a fixed MSS");
          ok = false;
          continue;
        }
        s.kind = NF_STMT_TCPMSS, s.value = (uint32_t)mss;
        // xt_TCPMSS adds the option to a SYN without one; nft's exthdr write does not.
        for (const auto& [k, a] : st.args)
          if (k == "--set-mss" || k == "--clamp-mss-to-pmtu") s.mask = NF_TCPMSS_INSERT;
        break;
      }
      case StmtKind::Notrack:
        if (!(dl.priority < -200)) {
          diag_.error(st.loc, "NOTRACK outside the raw table has no effect in netfilter and is not compiled");
          ok = false;
        }
        s.kind = NF_STMT_NOTRACK;
        break;
      default:
        diag_.error(st.loc, std::string("statement '") + to_string(st.kind) + "' is not supported by the dataplane");
        ok = false;
        continue;
    }
    out.stmts.push_back(s);
  }
  out.unconditional_terminal =
      d.residual == 0 && (d.action == NF_ACT_ACCEPT || d.action == NF_ACT_DROP || d.action == NF_ACT_REJECT);
  if (f.action == FlatAction::Reject) {
    d.reject_type = reject_code(f.reject_with) == kRejectUnknown ? 0 : reject_code(f.reject_with);
  }
  return ok;
}

// `-m statistic --mode nth --every N --packet P`. xt_statistic counts the
// packets that reach the match, whatever the matches after it say; the
// dataplane counts the packets that passed every other test of the rule, so
// it takes rules whose statistic match comes last (the address, protocol and
// interface options, which the kernel tests before any match, may follow
// it). A jump's matches are inlined into every rule of its chain, which
// would advance the counter once per inlined rule: refused too.
// The owner matches' tests: iptables' --uid-owner, --gid-owner (a range
// "A-B") and --socket-exists, nft's skuid/skgid (NF_OWNER_NFT), each at most
// once per rule (a jump's prefix and the rule's own would be an AND of two).
bool Compiler::owner(const FlatRule& f, const Rule& src, const DecisionList& dl, nf2bpf_rule& d) {
  bool any = false;
  for (const Match& m : f.matches) {
    const SourceLoc& at = m.loc.line ? m.loc : src.loc;
    std::vector<std::pair<std::string, std::string>> args = m.args;
    if (m.field == Field::SkUid || m.field == Field::SkGid) {  // nft: meta skuid 1000, != 1000, 1000-1999
      const auto* vals = std::get_if<IntervalSet>(&m.value);
      if (!vals || vals->intervals().size() != 1) {
        diag_.error(at, std::string("meta ") + to_string(m.field) + " with several values or a set is not supported",
                    "write one rule per value or range");
        return false;
      }
      const auto& iv = vals->intervals()[0];
      args = {{to_string(m.field), std::to_string((uint64_t)iv.lo) + "-" + std::to_string((uint64_t)iv.hi)}};
    } else if (m.field != Field::Opaque || m.module != "owner") {
      continue;
    }
    any = true;
    for (const auto& [k, v] : args) {
      bool nft = k == "skuid" || k == "skgid";
      uint32_t bit = k == "--uid-owner" || k == "skuid"   ? NF_OWNER_UID
                     : k == "--gid-owner" || k == "skgid" ? NF_OWNER_GID
                     : k == "--socket-exists"             ? NF_OWNER_SOCKET
                                                          : 0;
      if (!bit) continue;  // --suppl-groups: refused by its capability
      if (d.owner_match & bit) {
        diag_.error(at, "two " + k + " tests on one packet path are not supported",
                    "test the owner once, in the chain's jump or in its rules");
        return false;
      }
      d.owner_match |= bit | (nft ? NF_OWNER_NFT : 0);
      if (m.negated) d.owner_inv |= bit;
      uint32_t* range = bit == NF_OWNER_UID ? d.owner_uid : bit == NF_OWNER_GID ? d.owner_gid : nullptr;
      if (range) {
        auto dash = v.find('-');
        range[0] = (uint32_t)std::strtoul(v.c_str(), nullptr, 10);
        range[1] = dash == std::string::npos ? range[0] : (uint32_t)std::strtoul(v.c_str() + dash + 1, nullptr, 10);
      }
    }
  }
  if (!any) return true;
  if (dl.hook != Hook::Output && dl.hook != Hook::Postrouting) {
    diag_.error(src.loc,
                std::string("the sending socket is only known at OUTPUT and POSTROUTING, and this rule is reached "
                            "from ") +
                    to_string(dl.hook),
                (d.owner_match & NF_OWNER_NFT) ? "test meta skuid/skgid in an output or postrouting chain"
                                               : "the kernel refuses -m owner elsewhere too");
    return false;
  }
  d.residual |= NF_RES_OWNER;
  return true;
}

bool Compiler::nth(const FlatRule& f, const Rule& src, nf2bpf_rule& d) {
  bool on = false, neg = false, have_every = false;
  uint64_t every = 0, packet = 0;
  size_t first = SIZE_MAX, last = 0;
  std::string bad;
  // One -m statistic's options are consecutive matches, from its --mode on.
  bool in_nth = false;
  for (size_t i = 0; i < f.matches.size(); ++i) {
    const Match& m = f.matches[i];
    bool stat = m.field == Field::Opaque && m.module == "statistic";
    bool mode = stat && !m.args.empty() && m.args[0].first == "--mode";
    if (!stat || mode) in_nth = false;
    if (mode && m.args[0].second == "nth") {
      if (on) bad = "more than one -m statistic --mode nth in one rule is not supported";
      on = in_nth = true;
      first = i;
    }
    if (!in_nth) continue;
    last = i;
    for (const auto& [k, v] : m.args) {
      if (k == "--every") {
        have_every = true;
        neg = m.negated;
        every = std::strtoull(v.c_str(), nullptr, 10);
      }
      if (k == "--packet") packet = std::strtoull(v.c_str(), nullptr, 10);
    }
  }
  // nft `numgen inc mod N`, one map element's value: the source rule's
  // counter, one step per evaluation for all its elements (NF_RES_NTH_ONCE).
  for (const auto& m : f.matches) {
    if (m.module != ir::kNumgenIncModule) continue;
    uint64_t mod = 0, value = 0;
    for (const auto& [k, v] : m.args) (k == "mod" ? mod : value) = std::strtoull(v.c_str(), nullptr, 10);
    if (on || mod == 0 || value >= mod) {
      diag_.error(m.loc, "numgen inc with -m statistic --mode nth, or out of range, is not supported");
      return false;
    }
    // Keyed by the numgen expression's place: the elements' rules come from
    // the chains they go to, the counter is the map rule's.
    auto [it, fresh] = numgen_slots_.try_emplace(m.loc.str(), nth_slot_count_);
    if (fresh) ++nth_slot_count_;
    d.residual |= NF_RES_NTH | NF_RES_NTH_ONCE;
    d.nth_slot = it->second;
    d.nth_every = (uint32_t)mod;
    d.nth_hit = (uint32_t)((value + 1) % mod);
    return true;
  }
  if (!on) return true;
  const SourceLoc& loc = f.matches[first].loc;
  size_t own = src.matches.size();
  if (f.matches.size() < own || first < f.matches.size() - own || src.verdict.kind == ir::VerdictKind::Jump ||
      src.verdict.kind == ir::VerdictKind::Goto)
    bad = "-m statistic --mode nth on a rule that jumps to or goes to a chain is not supported";
  for (size_t i = last + 1; i < f.matches.size() && bad.empty(); ++i)
    if (!f.matches[i].module.empty() && f.matches[i].module != "comment")
      bad = "'" + f.matches[i].cap +
            "' after -m statistic --mode nth is not supported: the kernel counts packets before testing it";
  if (bad.empty() && (!have_every || every == 0 || every > UINT32_MAX))
    bad = "-m statistic --mode nth needs --every N with 1 <= N < 2^32";
  if (bad.empty() && packet >= every) bad = "--packet must be below --every";
  if (!bad.empty()) {
    diag_.error(loc, bad,
                bad.find("after -m statistic") != std::string::npos
                    ? "move the statistic match to the end of the rule (after its other matches)"
                    : "");
    return false;
  }
  auto [it, fresh] = nth_slots_.try_emplace(f.origin, 0);
  d.residual |= NF_RES_NTH | (neg ? NF_RES_NTH_NEG : 0);
  d.nth_slot = nth_slot(it, fresh);
  d.nth_every = (uint32_t)every;
  d.nth_hit = (uint32_t)((packet + 1) % every);
  return true;
}

// `-m recent`: xt_recent's checkentry rules (one command; --seconds,
// --hitcount, --rttl and --reap only with --rcheck/--update; --reap needs
// --seconds) and the dataplane's own limits (the match last in its rule, as
// for nth: it changes its table for every packet that reaches it; up to 32
// stamps per address, NF_RECENT_TABLES names).
bool Compiler::recent(const FlatRule& f, const Rule& src, nf2bpf_rule& d) {
  size_t at = SIZE_MAX;
  std::string bad;
  for (size_t i = 0; i < f.matches.size(); ++i)
    if (f.matches[i].field == Field::Opaque && f.matches[i].module == "recent") {
      if (at != SIZE_MAX) bad = "more than one -m recent in one rule is not supported";
      at = i;
    }
  if (at == SIZE_MAX) return true;
  const Match& m = f.matches[at];
  // A jump's or goto's recent match is tested once, by the flattener's
  // guard rule (`kept ∧ ¬recent → skip`), where it is the last match; the
  // rules inlined behind the jump never carry it.
  size_t own = src.matches.size();
  bool jumps = src.verdict.kind == ir::VerdictKind::Jump || src.verdict.kind == ir::VerdictKind::Goto;
  if (bad.empty() &&
      (f.guard ? at + 1 != f.matches.size() : (jumps || f.matches.size() < own || at < f.matches.size() - own)))
    bad = "-m recent on a rule that jumps to or goes to a chain is supported as the rule's last match only";
  for (size_t i = at + 1; i < f.matches.size() && bad.empty(); ++i)
    if (!f.matches[i].module.empty() && f.matches[i].module != "comment")
      bad =
          "'" + f.matches[i].cap + "' after -m recent is not supported: the kernel updates the list before testing it";
  std::string name = "DEFAULT", mask;
  uint64_t seconds = 0, hitcount = 0;
  int cmds = 0;
  bool neg = m.negated;
  for (const auto& arg : m.args) {
    std::string_view k = arg.first;
    const std::string& v = arg.second;
    bool kneg = k.starts_with("! ");
    if (kneg) k.remove_prefix(2);
    auto number = [&](uint64_t& out, uint64_t max) {
      char* end = nullptr;
      out = std::strtoull(v.c_str(), &end, 10);
      if (v.empty() || *end || out > max) bad = "invalid -m recent " + std::string(k) + " '" + v + "'";
    };
    if (k == "--set" || k == "--rcheck" || k == "--update" || k == "--remove") {
      ++cmds;
      neg = neg != kneg;
      d.recent_cmd = k == "--set"      ? NF_RECENT_SET
                     : k == "--rcheck" ? NF_RECENT_CHECK
                     : k == "--update" ? NF_RECENT_UPDATE
                                       : NF_RECENT_REMOVE;
    } else if (kneg) {
      bad = "'!' before -m recent " + std::string(k) + " is not valid";
    } else if (k == "--name") {
      name = v;
    } else if (k == "--seconds") {
      number(seconds, UINT32_MAX);
    } else if (k == "--hitcount") {
      number(hitcount, 65535);
    } else if (k == "--reap") {
      d.recent_flags |= NF_RECENT_REAP;
    } else if (k == "--rttl") {
      d.recent_flags |= NF_RECENT_RTTL;
    } else if (k == "--rdest") {
      d.recent_flags |= NF_RECENT_RDEST;
    } else if (k == "--rsource") {
      d.recent_flags &= ~NF_RECENT_RDEST;
    } else if (k == "--mask") {
      mask = v;
    } else {
      bad = "unknown -m recent option '" + std::string(k) + "'";
    }
  }
  bool set_remove = d.recent_cmd == NF_RECENT_SET || d.recent_cmd == NF_RECENT_REMOVE;
  if (bad.empty() && cmds != 1) bad = "-m recent needs exactly one of --set, --rcheck, --update and --remove";
  if (bad.empty() && set_remove && (seconds || hitcount || (d.recent_flags & (NF_RECENT_REAP | NF_RECENT_RTTL))))
    bad = "--seconds, --hitcount, --rttl and --reap go with --rcheck or --update only";
  if (bad.empty() && (d.recent_flags & NF_RECENT_REAP) && !seconds) bad = "--reap needs --seconds";
  if (bad.empty() && (name.empty() || name.size() >= 200)) bad = "-m recent --name must have 1 to 199 characters";
  if (bad.empty() && hitcount > NF_RECENT_STAMPS)
    bad = "-m recent --hitcount above " + std::to_string(NF_RECENT_STAMPS) + " is not supported";
  // --mask over the IPv4-mapped address the dataplane keys by.
  std::array<uint8_t, 16> mk;
  mk.fill(0xff);
  if (bad.empty() && !mask.empty()) {
    bool ok = ip6_stage_ ? inet_pton(AF_INET6, mask.c_str(), mk.data()) == 1
                         : inet_pton(AF_INET, mask.c_str(), mk.data() + 12) == 1;
    if (!ok) bad = "invalid -m recent --mask '" + mask + "'";
  }
  uint32_t h = 2166136261u;  // FNV-1a of the name: the table's key in every generation
  for (unsigned char c : name) h = (h ^ c) * 16777619u;
  if (h == 0) h = 1;
  // xt_recent's stamps per address: a power of two covering --hitcount, 32 without one.
  uint8_t ring = 31;
  if (hitcount) {
    uint32_t p = 1;
    while (p < hitcount) p <<= 1;
    ring = (uint8_t)(p - 1);
  }
  std::array<uint8_t, 16> kernel_mask;
  kernel_mask.fill(0xff);
  if (ip6_stage_)
    kernel_mask = mk;
  else
    std::memcpy(kernel_mask.data(), mk.data() + 12, 4);
  if (bad.empty()) {
    auto [it, fresh] = recent_tables_.try_emplace(name);
    RecentTable& t = it->second;
    if (fresh) {
      if (recent_tables_.size() > NF_RECENT_TABLES)
        bad = "more than " + std::to_string(NF_RECENT_TABLES) + " -m recent names are not supported";
      else if (auto [nt, nfresh] = recent_names_.try_emplace(h, name); !nfresh)
        bad = "-m recent names '" + name + "' and '" + nt->second + "' have the same hash";
      t.hash = h;
      t.mask = kernel_mask;
      t.ring = ring;
    } else if (t.mask != kernel_mask) {
      bad = "-m recent --name " + name +
            " with two different --mask values: the kernel keeps the first rule's for the whole table";
    }
    t.ring = std::max(t.ring, ring);
  }
  if (!bad.empty()) {
    diag_.error(m.loc, bad,
                bad.find("after -m recent") != std::string::npos
                    ? "move the recent match to the end of the rule (after its other matches)"
                    : "");
    return false;
  }
  d.residual |= NF_RES_RECENT | (neg ? NF_RES_RECENT_NEG : 0);
  d.recent_table = h;
  d.recent_seconds = (uint32_t)seconds;
  d.recent_hitcount = (uint16_t)hitcount;
  d.recent_ring = ring;  // widened to the table's in run()
  std::memcpy(d.recent_mask, mk.data(), 16);
  return true;
}

// A NAT statement ends its rule with the binding (NF_ACT_NAT) and names its
// range in the policy's NAT table.
bool Compiler::nat_action(const ir::Statement& st, const DecisionList& dl, nf2bpf_rule& d) {
  if (dl.type != ChainType::Nat) {
    diag_.error(st.loc, std::string(to_string(st.kind)) + " is only valid in a nat chain");
    return false;
  }
  bool dst_hook = dl.hook == Hook::Prerouting || dl.hook == Hook::Output;
  bool dst_kind = st.kind == StmtKind::Dnat || st.kind == StmtKind::Redirect;
  if (st.kind != StmtKind::Netmap && dst_hook != dst_kind) {  // NETMAP's side is its hook's
    diag_.error(
        st.loc, std::string(to_string(st.kind)) + " is not valid at " + to_string(dl.hook),
        dst_kind ? "destination NAT happens at prerouting and output" : "source NAT happens at postrouting and input");
    return false;
  }
  nf2bpf_nat n{};
  if (st.nat.service) {  // services.h: the backends are in the policy's service table
    n.kind = NF_NAT_SERVICE;
    n.service = st.nat.service - 1;
    intern_nat(n, d);
    return true;
  }
  n.kind = st.kind == StmtKind::Dnat         ? NF_NAT_DNAT
           : st.kind == StmtKind::Snat       ? NF_NAT_SNAT
           : st.kind == StmtKind::Masquerade ? NF_NAT_MASQUERADE
           : st.kind == StmtKind::Netmap     ? NF_NAT_NETMAP
                                             : NF_NAT_REDIRECT;
  const ir::NatSpec& ns = st.nat;
  if (ns.addrs && !ns.addrs->empty()) {
    if (ns.addrs->intervals().size() != 1) {
      diag_.error(st.loc, "a NAT address range must be one contiguous range");
      return false;
    }
    const auto& iv = ns.addrs->intervals()[0];
    for (int i = 0; i < 16; ++i) {
      n.addr_min[i] = (uint8_t)(iv.lo >> (8 * (15 - i)));
      n.addr_max[i] = (uint8_t)(iv.hi >> (8 * (15 - i)));
    }
    n.flags |= NF_NAT_F_ADDR;
  } else if (n.kind == NF_NAT_DNAT || n.kind == NF_NAT_SNAT) {
    // nft `dnat to :8080` changes only the port; the address stays.
  }
  if (ns.ports) {
    if (ns.ports->first > ns.ports->second) {
      diag_.error(st.loc, "the NAT port range is empty");
      return false;
    }
    n.port_min = ns.ports->first;
    n.port_max = ns.ports->second;
    n.flags |= NF_NAT_F_PORTS;
  }
  if (ns.random) n.flags |= NF_NAT_F_RANDOM;
  if (ns.fully_random) n.flags |= NF_NAT_F_RANDOM_FULLY;
  if (ns.persistent) n.flags |= NF_NAT_F_PERSISTENT;
  intern_nat(n, d);
  return true;
}

// The rule binds range `n`. Rules with the same range (a source rule
// flattened into several, a service at several frontends) share it.
void Compiler::intern_nat(const nf2bpf_nat& n, nf2bpf_rule& d) {
  d.action = NF_ACT_NAT;
  auto same = std::find_if(pol_.nats.begin(), pol_.nats.end(),
                           [&](const nf2bpf_nat& x) { return std::memcmp(&x, &n, sizeof n) == 0; });
  d.nat = (uint32_t)(same - pol_.nats.begin());
  if (same == pol_.nats.end()) pol_.nats.push_back(n);
}

// Array slots: partition [0, size-1) into elementary intervals, one class per
// distinct set of covering predicates. Index size-1 ("absent") is class 0.
void Compiler::classes_small(int slot) {
  SmallRange r = small_range(slot);
  auto& preds = preds_[slot];
  std::vector<std::pair<uint32_t, uint32_t>> events;  // (position, pred) at lo and hi+1
  for (uint32_t p = 0; p < preds.size(); ++p)
    for (const auto& iv : preds[p].intervals()) {
      events.emplace_back((uint32_t)iv.lo, p);
      events.emplace_back((uint32_t)iv.hi + 1, p);
    }
  std::sort(events.begin(), events.end());
  std::unordered_map<Hash128, uint32_t, Hash128H> class_of;
  class_of[Hash128{}] = 0;
  uint32_t next_class = 1;
  Hash128 cur{};
  uint32_t domain_end = r.size - 1;  // exclusive; the absent index stays class 0
  size_t e = 0;
  std::vector<uint32_t> seg_class;  // class per segment start
  std::vector<uint32_t> seg_start;
  uint32_t pos = 0;
  while (pos < domain_end) {
    while (e < events.size() && events[e].first == pos) {
      cur.mix(tag_of(slot, events[e].second));
      ++e;
    }
    uint32_t next = e < events.size() ? std::min(events[e].first, domain_end) : domain_end;
    auto [it, fresh] = class_of.try_emplace(cur, next_class);
    if (fresh) ++next_class;
    seg_start.push_back(pos);
    seg_class.push_back(it->second);
    for (uint32_t v = pos; v < next; ++v) pol_.small[r.base + v] = it->second;
    pos = next;
  }
  pol_.small[r.base + r.size - 1] = 0;
  class_count_[slot] = next_class;
  pred_classes_[slot].assign(preds.size(), {});
  for (uint32_t p = 0; p < preds.size(); ++p) {
    std::set<uint32_t> cs;
    for (const auto& iv : preds[p].intervals()) {
      // Segments intersecting [lo, hi].
      auto first = std::upper_bound(seg_start.begin(), seg_start.end(), (uint32_t)iv.lo) - seg_start.begin() - 1;
      for (size_t s = (size_t)first; s < seg_start.size() && seg_start[s] <= (uint32_t)iv.hi; ++s)
        cs.insert(seg_class[s]);
    }
    pred_classes_[slot][p].assign(cs.begin(), cs.end());
  }
}

// Address slots: every prefix of every predicate's minimal decomposition is
// an LPM entry. The longest prefix containing an address is covered exactly
// by the predicates the address is in, so its class is that set.
void Compiler::classes_lpm(int slot) {
  auto& preds = preds_[slot];
  struct Pfx {
    u128 base;
    unsigned len;
    Hash128 own;
    std::vector<uint32_t> owners;
  };
  std::map<std::pair<u128, unsigned>, size_t> index;
  std::vector<Pfx> pf;
  auto get = [&](u128 base, unsigned len) -> Pfx& {
    auto [it, fresh] = index.try_emplace({base, len}, pf.size());
    if (fresh) pf.push_back({base, len, {}, {}});
    return pf[it->second];
  };
  get(0, 0);
  for (uint32_t p = 0; p < preds.size(); ++p)
    for (auto& [base, len] : preds[p].to_prefixes(128)) {
      Pfx& x = get(base, len);
      x.own.mix(tag_of(slot, p));
      x.owners.push_back(p);
    }
  // Sorted by (base, len): a parent comes before its children.
  std::vector<size_t> order(pf.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return std::tie(pf[a].base, pf[a].len) < std::tie(pf[b].base, pf[b].len); });
  auto contains = [](const Pfx& outer, const Pfx& inner) {
    if (outer.len > inner.len) return false;
    if (outer.len == 0) return true;
    u128 mask = outer.len >= 128 ? kU128Max : ~(kU128Max >> outer.len);
    return (inner.base & mask) == outer.base;
  };
  std::unordered_map<Hash128, uint32_t, Hash128H> class_of;
  class_of[Hash128{}] = 0;
  uint32_t next_class = 1;
  std::vector<std::pair<size_t, Hash128>> stack;  // (pfx, signature)
  std::vector<uint32_t> cls(pf.size());
  pred_classes_[slot].assign(preds.size(), {});
  std::vector<std::vector<size_t>> stack_owners;
  std::vector<std::set<uint32_t>> pc(preds.size());
  for (size_t i : order) {
    while (!stack.empty() && !contains(pf[stack.back().first], pf[i])) stack.pop_back();
    Hash128 sig = stack.empty() ? Hash128{} : stack.back().second;
    sig.mix(pf[i].own);
    auto [it, fresh] = class_of.try_emplace(sig, next_class);
    if (fresh) ++next_class;
    cls[i] = it->second;
    stack.emplace_back(i, sig);
    pol_.lpm.push_back({(uint8_t)slot, pf[i].base, (uint8_t)pf[i].len, cls[i]});
  }
  // Predicate p covers the classes of every family prefix inside one of its
  // own prefixes.
  for (size_t oi = 0; oi < order.size(); ++oi) {
    const Pfx& x = pf[order[oi]];
    if (x.owners.empty()) continue;
    std::vector<uint32_t> inside;
    for (size_t j = oi; j < order.size() && contains(x, pf[order[j]]); ++j) inside.push_back(cls[order[j]]);
    for (uint32_t p : x.owners) pc[p].insert(inside.begin(), inside.end());
  }
  for (uint32_t p = 0; p < preds.size(); ++p) pred_classes_[slot][p].assign(pc[p].begin(), pc[p].end());
  class_count_[slot] = next_class;
}

// Interface slots: names are only known on the host, so enumerate names that
// stand for every distinguishable case (each literal, each wildcard's
// "longer name", no interface) and give each distinct signature a class.
void Compiler::classes_iface(int slot) {
  int which = slot - NF_SLOT_IIF;
  auto& preds = iface_preds_[which];
  std::set<std::string> candidates = {"", "\x7f\x7f"};
  for (const auto& p : preds)
    for (const auto& c : p.clauses)
      for (const auto& pat : c.patterns) {
        candidates.insert(pat.name);
        if (pat.prefix) candidates.insert(pat.name + "\x7f");
      }
  auto& classes = pol_.iface_classes[which];
  classes.clear();
  classes[std::vector<bool>(preds.size(), false)] = 0;
  uint32_t next = 1;
  pred_classes_[slot].assign(preds.size(), {});
  std::vector<std::set<uint32_t>> pc(preds.size());
  for (const auto& name : candidates) {
    std::vector<bool> sig(preds.size());
    for (size_t i = 0; i < preds.size(); ++i) sig[i] = preds[i].matches(name);
    auto [it, fresh] = classes.try_emplace(sig, next);
    if (fresh) ++next;
    for (size_t i = 0; i < preds.size(); ++i)
      if (sig[i]) pc[i].insert(it->second);
  }
  for (size_t i = 0; i < preds.size(); ++i) pred_classes_[slot][i].assign(pc[i].begin(), pc[i].end());
  pol_.iface_predicates[which] = preds;
  class_count_[slot] = next;
}

Policy Compiler::run() {
  pol_.source = tr_.ruleset.source;
  pol_.input_format = tr_.input_format;
  pol_.small.assign(NF_SMALL_TOTAL, 0);

  std::set<RuleRef> unsupported;
  for (const auto& r : tr_.rules)
    if (r.status == caps::Fidelity::Unsupported) unsupported.insert(r.ref);
  pol_.rule_count_source = tr_.rules.size() - unsupported.size();
  const ir::Pipeline& pipeline =
      lower_services(tr_.ruleset, tr_.pipeline, services_pipeline_, pol_.services) ? services_pipeline_ : tr_.pipeline;

  std::vector<StageWork> work;
  progress::report("compiling: lowering rules");
  // NAT is all or nothing per family: when a nat rule of a family stays in
  // netfilter (unsupported), every nat chain of the family stays with it.
  auto fams = [](const DecisionList& dl) -> uint32_t {
    return dl.family == Family::Ip     ? NF_FAM_V4
           : dl.family == Family::Ip6  ? NF_FAM_V6
           : dl.family == Family::Inet ? (NF_FAM_V4 | NF_FAM_V6)
                                       : 0;
  };
  uint32_t nat_kept = 0;
  for (const auto& dl : pipeline.stages)
    if (dl.type == ChainType::Nat &&
        std::any_of(dl.rules.begin(), dl.rules.end(), [&](const FlatRule& f) { return unsupported.count(f.origin); }))
      nat_kept |= fams(dl);
  auto nat_compiled = [&](const DecisionList& dl) { return dl.type == ChainType::Nat && !(fams(dl) & nat_kept); };
  for (const auto& dl : pipeline.stages)
    if (nat_compiled(dl)) nat_fams_ |= fams(dl);
  for (const auto& dl : pipeline.stages) {
    if (dl.hook == Hook::Ingress || dl.hook == Hook::Egress) continue;
    if (dl.family != Family::Ip && dl.family != Family::Ip6 && dl.family != Family::Inet) continue;
    if (dl.type == ChainType::Nat && !nat_compiled(dl)) continue;
    work.push_back(lower_stage(dl, unsupported));
  }
  // Each hook's nat stages run at its NAT point (nf_run_hook): place them
  // there, in their own priority order.
  auto point = [](const DecisionList& dl) {
    if (dl.type != ChainType::Nat) return dl.priority;
    return dl.hook == Hook::Prerouting || dl.hook == Hook::Output ? -100 : 100;
  };
  std::stable_sort(work.begin(), work.end(), [&](const StageWork& a, const StageWork& b) {
    return std::tuple(a.dl->hook, point(*a.dl), a.dl->priority) < std::tuple(b.dl->hook, point(*b.dl), b.dl->priority);
  });
  progress::report("compiling: field classes");
  std::vector<std::vector<std::vector<BoxPreds>>> bp = box_predicates(work);
  compute_classes();

  progress::report("compiling: classifier entries");
  // Rules, stages, tuples and entries.
  uint32_t max_micro = 0;
  std::vector<uint32_t> rule_slots;  // per compiled rule: the slots its boxes constrain
  for (size_t s = 0; s < work.size(); ++s) emit_stage(work[s], bp[s], rule_slots, max_micro);
  // Stages are already in hook order (flatten sorts them).
  for (size_t i = 0; i < pol_.stages.size(); ++i) {
    pol_.stages[i].policy_counter = (uint32_t)(pol_.rules.size() + i);
    auto& h = pol_.hooks[pol_.stages[i].hook];
    if (h.stage_count == 0) h.stage_first = (uint32_t)i;
    ++h.stage_count;
  }
  add_xdp_stage(rule_slots);
  for (auto& r : pol_.rules)  // one stamp ring per -m recent table
    if (r.residual & NF_RES_RECENT)
      for (const auto& [name, t] : recent_tables_)
        if (t.hash == r.recent_table) r.recent_ring = t.ring;
  pol_.cfg.nrules = (uint32_t)pol_.rules.size();
  pol_.cfg.max_steps = max_micro;
  if (pol_.cfg.slots_used & ((1u << NF_SLOT_CTSTATE) | (1u << NF_SLOT_CTDIR))) pol_.cfg.ct_needed = 1;
  pol_.checksum = compute_checksum(pol_);
  (void)failed_;
  return std::move(pol_);
}

// The rules of one decision list that compile, with skip targets renumbered
// to the rules kept.
StageWork Compiler::lower_stage(const DecisionList& dl, const std::set<RuleRef>& unsupported) {
  StageWork w{&dl, {}, {}};
  std::vector<int64_t> remap(dl.rules.size() + 1, -1);  // flat index -> compiled index
  std::vector<uint32_t> kept;
  for (uint32_t i = 0; i < dl.rules.size(); ++i) {
    progress::tick("compiling: lowering rules", i, dl.rules.size());
    const FlatRule& f = dl.rules[i];
    bool skip = unsupported.count(f.origin) > 0;
    for (const auto& p : f.path) skip |= unsupported.count(p) > 0;
    if (skip) continue;
    Lowered l;
    if (!lower(f, dl, l)) {
      failed_ = true;
      continue;
    }
    remap[i] = (int64_t)w.rules.size();
    kept.push_back(i);
    w.rules.push_back(std::move(l));
    w.origins.push_back(f.origin);
  }
  // Skip targets: the first kept rule at or after the flat target.
  int64_t next_kept = (int64_t)w.rules.size();
  for (int64_t i = (int64_t)dl.rules.size(); i >= 0; --i) {
    if (remap[i] >= 0) next_kept = remap[i];
    remap[i] = next_kept;
  }
  for (size_t k = 0; k < kept.size(); ++k)
    if (w.rules[k].desc.action == NF_ACT_SKIP) w.rules[k].desc.skip_to = (uint32_t)remap[dl.rules[kept[k]].skip_to];
  return w;
}

// Predicates per slot, and each rule box's predicate ids: [stage][rule][box].
std::vector<std::vector<std::vector<BoxPreds>>> Compiler::box_predicates(const std::vector<StageWork>& work) {
  std::vector<std::vector<std::vector<BoxPreds>>> bp(work.size());
  for (size_t s = 0; s < work.size(); ++s) {
    bp[s].resize(work[s].rules.size());
    for (size_t r = 0; r < work[s].rules.size(); ++r)
      for (const auto& b : work[s].rules[r].boxes) {
        BoxPreds x{b.slot_mask(), {}};
        for (int sl = 0; sl < kSlots; ++sl) {
          if (is_iface(sl)) {
            if (!b.ifc[sl - NF_SLOT_IIF].clauses.empty()) x.pid[sl] = iface_pred_id(sl, b.ifc[sl - NF_SLOT_IIF]);
          } else if (b.v[sl]) {
            x.pid[sl] = pred_id(sl, *b.v[sl]);
          }
        }
        bp[s][r].push_back(x);
      }
  }
  return bp;
}

void Compiler::compute_classes() {
  for (int sl = 0; sl < kSlots; ++sl) {
    if (is_lpm(sl))
      classes_lpm(sl);
    else if (is_iface(sl))
      classes_iface(sl);
    else
      classes_small(sl);
    if (class_count_[sl] > opt_.max_classes_per_slot) {
      diag_.error(SourceLoc{pol_.source, 0, 0, 0, {}},
                  std::string("the ruleset needs ") + std::to_string(class_count_[sl]) + " classes for " +
                      "one packet field; the limit is " + std::to_string(opt_.max_classes_per_slot));
      failed_ = true;
    }
    bool used = !preds_[sl].empty() || (is_iface(sl) && !iface_preds_[sl - NF_SLOT_IIF].empty());
    if (used) pol_.cfg.slots_used |= 1u << sl;
  }
}

// One stage: its rules, statements, tuples and entries.
void Compiler::emit_stage(StageWork& w, const std::vector<std::vector<BoxPreds>>& bp, std::vector<uint32_t>& rule_slots,
                          uint32_t& max_micro) {
  const DecisionList& dl = *w.dl;
  nf2bpf_stage st{};
  st.first_rule = (uint32_t)pol_.rules.size();
  st.end_rule = st.first_rule + (uint32_t)w.rules.size();
  st.policy = dl.policy == VerdictKind::Drop ? NF_ACT_DROP : NF_ACT_ACCEPT;
  st.hook = dl.hook == Hook::Prerouting ? NF_HOOK_PREROUTING
            : dl.hook == Hook::Input    ? NF_HOOK_INPUT
            : dl.hook == Hook::Forward  ? NF_HOOK_FORWARD
            : dl.hook == Hook::Output   ? NF_HOOK_OUTPUT
                                        : NF_HOOK_POSTROUTING;
  st.family_mask = dl.family == Family::Ip ? NF_FAM_V4 : dl.family == Family::Ip6 ? NF_FAM_V6 : (NF_FAM_V4 | NF_FAM_V6);
  st.flags = dl.priority < -200 ? NF_STAGE_BEFORE_CT : 0;
  // The kernel runs every nat chain of a hook inside its one NAT hook, at
  // -100 (destination NAT) or +100 (source NAT); other chains run before or
  // after that point by their own priority.
  bool dst_point = dl.hook == Hook::Prerouting || dl.hook == Hook::Output;
  if (dl.type == ChainType::Nat) {
    st.flags = NF_STAGE_NAT;
    pol_.cfg.nat_fams |= st.family_mask;
    pol_.cfg.ct_needed = 1;
  } else if (dl.priority > (dst_point ? -100 : 100)) {
    st.flags |= NF_STAGE_AFTER_NAT;
  }
  st.tuple_first = (uint32_t)pol_.tuples.size();

  uint32_t steps = emit_rules(w, bp, st.first_rule, rule_slots);
  std::vector<TupleBuild> builds = build_tuples(w, bp, st.first_rule);
  uint32_t max_chain = 1;
  st.tuple_count = emit_entries(builds, max_chain);
  st.policy_counter = 0;  // set below once rule count is final
  pol_.stages.push_back(st);
  const auto& t = tr_.ruleset.tables[dl.table_index];
  pol_.stage_origins.push_back({t.chains[dl.chain_index].loc.file_line(), dl.table, dl.chain,
                                "policy " + std::string(to_string(dl.policy)), t.chains[dl.chain_index].loc.line});
  uint64_t micro = (uint64_t)steps * (st.tuple_count + max_chain) + 4;
  max_micro = (uint32_t)std::min<uint64_t>(std::max<uint64_t>(max_micro, micro), 1u << 23);
  if (micro > (1u << 23)) {
    diag_.error(SourceLoc{pol_.source, 0, 0, 0, {}},
                "base chain " + dl.table + "/" + dl.chain + " needs more classifier steps than one BPF loop allows");
    failed_ = true;
  }
  if (dl.hook == Hook::Prerouting || dl.hook == Hook::Input || dl.hook == Hook::Forward || dl.hook == Hook::Output ||
      dl.hook == Hook::Postrouting)
    pol_.cfg.hooks_used |= 1u << st.hook;
}

// The stage's rules and statements, with their origins; returns the
// classifier steps a search of the stage can take.
uint32_t Compiler::emit_rules(StageWork& w, const std::vector<std::vector<BoxPreds>>& bp, uint32_t first_rule,
                              std::vector<uint32_t>& rule_slots) {
  uint32_t steps = 1;
  for (size_t r = 0; r < w.rules.size(); ++r) {
    Lowered& l = w.rules[r];
    if (l.desc.action == NF_ACT_SKIP) l.desc.skip_to += first_rule;
    l.desc.stmt_first = (uint32_t)pol_.stmts.size();
    l.desc.stmt_count = (uint16_t)l.stmts.size();
    pol_.stmts.insert(pol_.stmts.end(), l.stmts.begin(), l.stmts.end());
    pol_.rules.push_back(l.desc);
    uint32_t slots = 0;
    for (const auto& b : bp[r]) slots |= b.mask;
    rule_slots.push_back(slots);
    const Rule& src = source(w.origins[r]);
    const auto& t = tr_.ruleset.tables[w.origins[r].table];
    pol_.origins.push_back({src.loc.file_line(), t.name, t.chains[w.origins[r].chain].name, src.text, src.loc.line});
    std::string cname = t.name + "/" + t.chains[w.origins[r].chain].name;
    auto [cit, added] = chain_ids_.try_emplace(cname, (uint32_t)pol_.chain_names.size());
    if (added) pol_.chain_names.push_back(cname);
    pol_.rules.back().src_chain = cit->second;
    pol_.rules.back().src_line = src.loc.line;
    if (!l.unconditional_terminal) ++steps;
    if (l.desc.residual & (NF_RES_CTMARK | NF_RES_CTSTATUS)) pol_.cfg.ct_needed = 1;
    // -m connlimit counts tracked connections (xt_connlimit loads conntrack).
    if (l.desc.residual & NF_RES_LIMIT)
      for (size_t i = l.desc.limit; i < pol_.limits.size(); ++i) {  // the rule's chain of checks
        if (pol_.limits[i].flags & NF_LIMIT_CONN) pol_.cfg.ct_needed = 1;
        if (!(pol_.limits[i].flags & NF_LIMIT_MORE)) break;
      }
    if (l.desc.residual & NF_RES_OWNER) pol_.cfg.owner = 1;
    for (const auto& stt : l.stmts)
      if (stt.kind == NF_STMT_SET_CTMARK || stt.kind == NF_STMT_SAVE_MARK || stt.kind == NF_STMT_RESTORE_MARK)
        pol_.cfg.ct_needed = 1;
  }
  return steps;
}

// Where a search can resume: after rules that do not end the stage
// (statements only, RETURN-like skips, residual checks) and at skip targets.
std::vector<uint32_t> resume_points(const StageWork& w, uint32_t first_rule) {
  std::vector<uint32_t> resume = {first_rule};
  for (size_t r = 0; r < w.rules.size(); ++r) {
    const auto& d = w.rules[r].desc;
    if (!w.rules[r].unconditional_terminal) resume.push_back(first_rule + (uint32_t)r + 1);
    if (d.action == NF_ACT_SKIP) resume.push_back(d.skip_to);
  }
  std::sort(resume.begin(), resume.end());
  return resume;
}

// The stage's tuples (boxes grouped by slot set) with their entry chains,
// in probe order.
std::vector<TupleBuild> Compiler::build_tuples(const StageWork& w, const std::vector<std::vector<BoxPreds>>& bp,
                                               uint32_t first_rule) {
  std::vector<uint32_t> resume = resume_points(w, first_rule);
  std::map<uint32_t, std::vector<std::pair<uint32_t, const BoxPreds*>>> by_mask;
  for (uint32_t r = 0; r < bp.size(); ++r)
    for (const auto& b : bp[r]) by_mask[b.mask].emplace_back(r, &b);
  std::vector<TupleBuild> builds;
  size_t stage_entries = 0;
  for (auto& [mask, list] : by_mask) {
    TupleBuild tb = build_tuple(w, mask, list, first_rule, resume, stage_entries);
    if (tb.tu.min_rule != UINT32_MAX) builds.push_back(std::move(tb));
    if (failed_) break;
  }
  // Probe order: by first rule, so the search can stop early.
  std::sort(builds.begin(), builds.end(), [](auto& a, auto& b) { return a.tu.min_rule < b.tu.min_rule; });
  if (pol_.tuples.size() + builds.size() > 65535) {
    diag_.error(SourceLoc{pol_.source, 0, 0, 0, {}}, "the ruleset needs more than 65535 classifier tuples");
    failed_ = true;
    builds.clear();
  }
  return builds;
}

// One tuple: the product of the class sets of its slots, per box, each key
// with the chain of rules that can match it.
TupleBuild Compiler::build_tuple(const StageWork& w, uint32_t mask,
                                 const std::vector<std::pair<uint32_t, const BoxPreds*>>& list, uint32_t first_rule,
                                 const std::vector<uint32_t>& resume, size_t& stage_entries) {
  auto resumable = [&](uint32_t terminal, uint32_t rule) {
    auto it = std::upper_bound(resume.begin(), resume.end(), terminal);
    return it != resume.end() && *it <= rule;
  };
  TupleBuild tb;
  nf2bpf_tuple& tu = tb.tu;
  for (int sl = 0; sl < kSlots; ++sl)
    if (mask & (1u << sl)) {
      if (tu.nslots == NF_MAX_TUPLE_SLOTS) {
        diag_.error(source(w.origins[list.front().first]).loc,
                    "a rule constrains more than " + std::to_string(NF_MAX_TUPLE_SLOTS) + " packet fields");
        failed_ = true;
        break;
      }
      tu.slots[tu.nslots++] = (uint8_t)sl;
    }
  std::unordered_map<nf2bpf_entry_key, uint32_t, EntryKeyHash, EntryKeyEq> closed;  // key -> terminal rule
  tu.min_rule = UINT32_MAX;
  bool over = false;
  for (auto& [r, b] : list) {
    // Enumerate the product of class sets of the tuple's slots.
    std::vector<const std::vector<uint32_t>*> sets;
    for (int i = 0; i < tu.nslots; ++i) sets.push_back(&pred_classes_[tu.slots[i]][b->pid[tu.slots[i]]]);
    if (std::any_of(sets.begin(), sets.end(), [](auto* v) { return v->empty(); })) continue;
    std::vector<size_t> idx(sets.size(), 0);
    uint32_t global = first_rule + r;
    for (;;) {
      nf2bpf_entry_key k{};
      for (size_t i = 0; i < sets.size(); ++i) k.cls[i] = (*sets[i])[idx[i]];
      auto cl = closed.find(k);
      // After an unconditional terminal rule, later rules of the same key
      // matter only to searches that resume past it (RETURN, LOG ...).
      bool reachable = cl == closed.end() || resumable(cl->second, global);
      if (reachable) {
        auto& chain = tb.chains[k];
        if (chain.empty() || chain.back() != global) {
          chain.push_back(global);
          ++stage_entries;
          if (w.rules[r].unconditional_terminal)
            closed[k] = global;
          else if (cl != closed.end())
            closed.erase(cl);
          tu.min_rule = std::min(tu.min_rule, global);
          tu.max_rule = std::max(tu.max_rule, global);
        }
      }
      size_t i = 0;
      while (i < idx.size() && ++idx[i] == sets[i]->size()) idx[i++] = 0;
      if (i == idx.size()) break;
      if (pol_.entries.size() + stage_entries > opt_.max_entries) {
        over = true;
        break;
      }
    }
    if (over) {
      diag_.error(
          source(w.origins[r]).loc,
          "the compiled policy exceeds " + std::to_string(opt_.max_entries) + " classifier entries at this rule",
          "rules whose ranges overlap many other rules' ranges multiply entries; "
          "split wide ranges or move this rule earlier");
      failed_ = true;
      break;
    }
  }
  return tb;
}

// The tuples and their entries into the policy; returns the tuple count and
// the longest entry chain in `max_chain`.
uint32_t Compiler::emit_entries(std::vector<TupleBuild>& builds, uint32_t& max_chain) {
  std::vector<nf2bpf_tuple> tuples;
  for (auto& tb : builds) {
    uint16_t tuple_id = (uint16_t)(pol_.tuples.size() + tuples.size());
    for (auto& [k, chain] : tb.chains) {
      max_chain = std::max<uint32_t>(max_chain, (uint32_t)chain.size());
      for (size_t i = 0; i < chain.size() && i < 65535; ++i) {
        nf2bpf_entry_key kk = k;
        kk.tuple = tuple_id;
        kk.seq = (uint16_t)i;
        pol_.entries.push_back({kk, {chain[i], i + 1 < chain.size() ? 1u : 0u}});
      }
    }
    tuples.push_back(tb.tu);
  }
  pol_.tuples.insert(pol_.tuples.end(), tuples.begin(), tuples.end());
  return (uint32_t)tuples.size();
}

}  // namespace

// XDP early drop (docs/design.md, "XDP"): the leading rules of the first
// INPUT stage that drop on stateless fields alone, evaluated in XDP for
// packets to this host's own addresses. Exactly equivalent when nothing
// before INPUT can change the outcome: every PREROUTING stage of the family
// accepts and has no statements (no MARK, NOTRACK, LOG to skip). A packet
// XDP drops is counted by the same rule and, as in netfilter, still updates
// the connection it belongs to. One family per policy (the first that
// qualifies, IPv4 before IPv6).
void Compiler::add_xdp_stage(const std::vector<uint32_t>& rule_slots) {
  constexpr uint32_t kStateless = (1u << NF_SLOT_SADDR) | (1u << NF_SLOT_DADDR) | (1u << NF_SLOT_SPORT) |
                                  (1u << NF_SLOT_DPORT) | (1u << NF_SLOT_PROTO) | (1u << NF_SLOT_ICMP) |
                                  (1u << NF_SLOT_TCPFLAGS) | (1u << NF_SLOT_LENGTH) | (1u << NF_SLOT_TTL) |
                                  (1u << NF_SLOT_NFPROTO) | (1u << NF_SLOT_SADDRTYPE) | (1u << NF_SLOT_DADDRTYPE) |
                                  (1u << NF_SLOT_FRAG) | (1u << NF_SLOT_TOS) | (1u << NF_SLOT_IIF);
  auto inert = [&](const nf2bpf_stage& st) {
    if (st.policy != NF_ACT_ACCEPT) return false;
    for (uint32_t r = st.first_rule; r < st.end_rule; ++r) {
      const auto& d = pol_.rules[r];
      if (d.stmt_count || (d.action != NF_ACT_ACCEPT && d.action != NF_ACT_CONTINUE && d.action != NF_ACT_SKIP))
        return false;
    }
    return true;
  };
  for (uint8_t fam : {(uint8_t)NF_FAM_V4, (uint8_t)NF_FAM_V6}) {
    size_t input = pol_.stages.size();
    bool ok = true;
    for (size_t i = 0; i < pol_.stages.size() && ok; ++i) {
      const auto& st = pol_.stages[i];
      if (!(st.family_mask & fam)) continue;
      if (st.hook == NF_HOOK_PREROUTING) ok = inert(st);
      if (st.hook == NF_HOOK_INPUT) {
        input = i;
        break;
      }
    }
    if (!ok || input == pol_.stages.size()) continue;
    nf2bpf_stage x = pol_.stages[input];
    uint32_t end = x.first_rule;
    while (end < x.end_rule) {
      const auto& d = pol_.rules[end];
      if (d.action != NF_ACT_DROP || d.stmt_count || d.residual || (rule_slots[end] & ~kStateless)) break;
      ++end;
    }
    if (end == x.first_rule) continue;
    x.end_rule = end;
    x.policy = NF_ACT_ACCEPT;       // no early drop: TC decides
    x.policy_counter = UINT32_MAX;  // and counts nothing here
    x.family_mask = fam;
    pol_.stages.push_back(x);
    pol_.stage_origins.push_back(pol_.stage_origins[input]);
    pol_.cfg.xdp_stage = (uint32_t)pol_.stages.size();  // index + 1
    return;
  }
}

int slot_of(Field f) { return domain_of(f).slot; }

Policy compile(const Translation& tr, diag::Diagnostics& diags, const CompileOptions& opt) {
  return Compiler(tr, diags, opt).run();
}

}  // namespace nf2bpf::policy
