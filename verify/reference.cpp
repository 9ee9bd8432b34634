#include "verify/reference.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <limits>

#include "common/strings.h"
#include "verify/parse.h"

namespace nf2bpf::verify {

using namespace std::string_view_literals;

using ir::Field;
using ir::FlatAction;
using ir::Hook;
using ir::u128;

namespace {

enum class Tri : uint8_t { False, True, Unknown };

bool port_proto(uint8_t p) { return p == 6 || p == 17 || p == 136 || p == 132 || p == 33; }

bool uses_conntrack(const ir::Ruleset& rs) {
  for (const auto& t : rs.tables)
    for (const auto& c : t.chains) {
      if (c.base && c.base->type == ir::ChainType::Nat) return true;
      for (const auto& r : c.rules) {
        for (const auto& m : r.matches) {
          switch (m.field) {
            case Field::CtState:
            case Field::CtStatus:
            case Field::CtMark:
            case Field::CtDirection:
            case Field::CtL4Proto:
            case Field::CtOrigSrc:
            case Field::CtOrigDst:
            case Field::CtReplSrc:
            case Field::CtReplDst:
            case Field::CtOrigSrcPort:
            case Field::CtOrigDstPort:
            case Field::CtReplSrcPort:
            case Field::CtReplDstPort: return true;
            default: break;
          }
          if (m.module == "conntrack" || m.module == "state" || m.module == "connmark" || m.module == "connlimit" ||
              m.module == "helper" || m.module == "connbytes")
            return true;
        }
        for (const auto& s : r.statements) {
          switch (s.kind) {
            case ir::StmtKind::SetCtMark:
            case ir::StmtKind::SaveMark:
            case ir::StmtKind::RestoreMark:
            case ir::StmtKind::Dnat:
            case ir::StmtKind::Snat:
            case ir::StmtKind::Masquerade:
            case ir::StmtKind::Redirect:
            case ir::StmtKind::Netmap:
            case ir::StmtKind::Notrack:
            case ir::StmtKind::CtHelper:
            case ir::StmtKind::CtZone: return true;
            default: break;
          }
        }
      }
    }
  return false;
}

bool family_sees(ir::Family f, int fam) {
  switch (f) {
    case ir::Family::Ip: return fam == 4;
    case ir::Family::Ip6: return fam == 6;
    case ir::Family::Inet:
    case ir::Family::Netdev: return true;
    default: return false;
  }
}

std::string hex(uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%llx", (unsigned long long)v);
  return b;
}

std::string arg_text(const ir::Match& m) {
  std::string s;
  for (const auto& [k, v] : m.args) s += (s.empty() ? "" : " ") + k + (v.empty() ? "" : " " + v);
  return s;
}

}  // namespace

// What decided one base chain for this packet.
struct ReferenceEngine::StageOutcome {
  size_t stage = 0;
  const ir::FlatRule* rule = nullptr;  // nullptr: the policy
  FlatAction action = FlatAction::Accept;
};

// One evaluation of one packet. Unknown matches consult `choices` (true when
// beyond it), so the engine can run a packet again with other answers.
struct ReferenceEngine::Run {
  pkt::Packet p;
  std::vector<bool> choices;
  size_t used = 0;
  std::vector<std::pair<const ir::FlatRule*, std::string>> unknowns;

  bool ct_model = false;
  CtView ct;
  bool ct_done = false;
  bool untracked = false;
  // NAT of this packet: where a header field's new value is a choice the
  // reference does not reproduce, its range ([0] source, [1] destination).
  CtChoice nat_choice[2];
  std::string nat_drop;        // a NAT target dropped the packet (no address to use): why
  bool confirm_clash = false;  // accepted, but its connection could not be confirmed (tuple clash): dropped
  bool iif_known = true, oif_known = true;

  std::vector<Hook> path;
  Verdict verdict = Verdict::Accept;
  std::string reject_with;
  Hook hook = Hook::Input;
  std::vector<StageOutcome> outcomes;
  std::vector<Event> events;
  std::vector<ir::RuleRef> hit_rules;
  std::vector<std::pair<uint32_t, uint32_t>> hit_policies;
  std::vector<std::string> touched;

  // Jump/goto match results of the regions being evaluated, by depth, so a
  // jump's matches are tested once, as the kernel does, even when a
  // statement inside the chain changes what they test (MARK ...).
  // Keyed by the region's first rule (FlatInfo::region_start).
  std::vector<std::pair<uint32_t, Tri>> jump_cache;
  // nth counters this run moved (committed with the run); nft numgen inc
  // counters are kept there too, at position SIZE_MAX of their rule.
  NthCounters nth;
  // The value each rule's `numgen inc` gave this run: the expression is
  // evaluated once per rule, whichever map element then matches.
  std::map<ir::RuleRef, uint32_t> numgen;
  // -m recent lists this run changed, whole (committed with the run).
  RecentLists recent;
  // nft sets this run wrote, whole (committed with the run).
  NftSets nftsets;

  bool choose(const ir::FlatRule* fr, std::string why) {
    bool c = used < choices.size() ? (bool)choices[used] : true;
    if (used >= choices.size()) choices.push_back(true);
    ++used;
    unknowns.emplace_back(fr, std::move(why));
    return c;
  }
};

bool ReferenceEngine::FragKey::operator<(const FragKey& o) const {
  if (src != o.src) return src < o.src;
  if (dst != o.dst) return dst < o.dst;
  if (id != o.id) return id < o.id;
  return proto < o.proto;
}

ReferenceEngine::ReferenceEngine(const ir::Ruleset& rs, const ir::Pipeline& pipe, const HostModel& host,
                                 ReferenceOptions opt)
    : rs_(rs), pipe_(pipe), host_(host), opt_(opt) {
  conntrack_on_ = opt.conntrack < 0 ? uses_conntrack(rs) : opt.conntrack > 0;
  sets_.resize(rs.tables.size());
  for (size_t t = 0; t < rs.tables.size(); ++t)
    for (const auto* list : {&rs.tables[t].sets, &rs.global_sets})  // a table's own, then ipsets (find_set)
      for (const auto& set : *list) {
        SetLookup& l = sets_[t].try_emplace(set.name).first->second;
        if (l.set) continue;  // the first of a name, as find_set finds it
        l.set = &set;
        if (std::all_of(set.elements.begin(), set.elements.end(),
                        [](const ir::SetElement& e) { return e.key.size() == 1; })) {
          l.single.emplace();
          for (const auto& e : set.elements) l.single->add(e.key[0]);
        }
      }
  for (size_t i = 0; i < pipe.stages.size(); ++i)
    for (int fam : {4, 6}) {
      if (!family_sees(pipe.stages[i].family, fam)) continue;
      bool nat = pipe.stages[i].type == ir::ChainType::Nat;
      (nat ? nat_stages_ : stages_)[{pipe.stages[i].hook, fam}].push_back(i);
      if (nat) (fam == 4 ? nat_v4_ : nat_v6_) = true;
    }
  for (auto* m : {&stages_, &nat_stages_})
    for (auto& [k, v] : *m)
      std::stable_sort(v.begin(), v.end(),
                       [&](size_t a, size_t b) { return pipe.stages[a].priority < pipe.stages[b].priority; });
  index_.reserve(pipe.stages.size());
  info_.resize(pipe.stages.size());
  for (size_t si = 0; si < pipe.stages.size(); ++si) {
    for (const auto& fr : pipe.stages[si].rules) {
      FlatInfo fi;
      size_t total = 0;
      if (!fr.segments.empty()) {
        // Flatten left a test of a field the chain changes to guard entries.
        fi.seg_len = fr.segments;
        for (uint32_t n : fr.segments) total += n;
      } else {
        for (const auto& ref : fr.path) {
          const auto& rule = rs.tables[ref.table].chains[ref.chain].rules[ref.rule];
          fi.seg_len.push_back((uint32_t)(rule.matches.size() + (rule.vmap ? rule.vmap->key.size() : 0)));
          total += fi.seg_len.back();
        }
      }
      fi.segments_ok = fi.seg_len.size() == fr.path.size() && total <= fr.matches.size();
      const auto& src = rs.tables[fr.origin.table].chains[fr.origin.chain].rules[fr.origin.rule];
      bool jumps = src.verdict.kind == ir::VerdictKind::Jump || src.verdict.kind == ir::VerdictKind::Goto;
      // A verdict map's element that goes to a chain closes it the same way;
      // the rule's own verdict is the map's (whether the entry closes a
      // region right before it is checked below).
      fi.goto_tail =
          fr.action == FlatAction::Skip && !fr.guard && (src.verdict.kind == ir::VerdictKind::Goto || src.vmap);
      fi.jump_stmt = jumps && fr.action == FlatAction::Continue;
      info_[si].push_back(std::move(fi));
    }
    auto& infos = info_[si];
    const auto& rules = pipe.stages[si].rules;
    // Regions: the rules sharing path[0..k] in a row.
    for (size_t i = 0; i < rules.size(); ++i) {
      const auto& path = rules[i].path;
      auto& fi = infos[i];
      fi.region_start.assign(path.size(), (uint32_t)i);
      if (i > 0 && fi.segments_ok) {
        const auto& prev = rules[i - 1].path;
        for (size_t k = 0; k < path.size() && k < prev.size() && prev[k] == path[k]; ++k)
          fi.region_start[k] = infos[i - 1].region_start[k];
      }
      // A jump's statement entry comes right before its region; a goto's
      // tail right after it (or right after the entry, the chain empty).
      size_t d = path.size();
      fi.region_key = (uint32_t)(fi.jump_stmt ? i + 1 : i);
      if (fi.goto_tail && i > 0 && rules[i - 1].path.size() > d && rules[i - 1].path[d] == rules[i].origin &&
          std::equal(path.begin(), path.end(), rules[i - 1].path.begin()))
        fi.region_key = infos[i - 1].region_start[d];
    }
    // Where the walk enters an inlined chain: the matches of the jumps up to
    // the outermost one it enters there (what the kernel tests, and counts,
    // before the rule's deeper jumps and its own matches).
    std::vector<size_t> entry(rules.size(), RuleIndex::kNoEntry);
    for (size_t i = 0; i < rules.size(); ++i) {
      const auto& path = rules[i].path;
      if (path.empty()) continue;
      if (!infos[i].segments_ok) {
        if (i == 0 || rules[i - 1].path != path) entry[i] = RuleIndex::kUnknown;
        continue;
      }
      for (size_t k = 0; k < path.size(); ++k)
        if (infos[i].region_start[k] == i) {
          entry[i] = 0;
          for (size_t j = 0; j <= k; ++j) entry[i] += infos[i].seg_len[j];
          break;
        }
    }
    index_.emplace_back(pipe.stages[si], entry);
    for (size_t i = rules.size(); i-- > 0;) {
      const auto& path = rules[i].path;
      infos[i].region_end.assign(path.size(), (uint32_t)(i + 1));
      if (i + 1 == rules.size() || !infos[i + 1].segments_ok) continue;
      const auto& next = rules[i + 1].path;
      for (size_t k = 0; k < path.size() && k < next.size() && next[k] == path[k]; ++k)
        infos[i].region_end[k] = infos[i + 1].region_end[k];
    }
  }
  rule_hits_.resize(rs.tables.size());
  policy_hits_.resize(rs.tables.size());
  for (size_t t = 0; t < rs.tables.size(); ++t) {
    rule_hits_[t].resize(rs.tables[t].chains.size());
    policy_hits_[t].assign(rs.tables[t].chains.size(), 0);
    for (size_t c = 0; c < rs.tables[t].chains.size(); ++c)
      rule_hits_[t][c].assign(rs.tables[t].chains[c].rules.size(), 0);
  }
}

ReferenceEngine::~ReferenceEngine() = default;

std::string ReferenceEngine::name() const { return rs_.source.empty() ? "ruleset" : rs_.source; }

size_t ReferenceEngine::indexed_stages() const {
  size_t n = 0;
  for (const auto& ix : index_) n += ix.enabled();
  return n;
}

size_t ReferenceEngine::index_wildcards(size_t si) const {
  return index_[si].enabled() ? index_[si].wildcards() : pipe_.stages[si].rules.size();
}

uint64_t ReferenceEngine::hits_of(const ir::RuleRef& r) const {
  if (r.table >= rule_hits_.size() || r.chain >= rule_hits_[r.table].size() ||
      r.rule >= rule_hits_[r.table][r.chain].size())
    return 0;
  return rule_hits_[r.table][r.chain][r.rule];
}

RuleInfo ReferenceEngine::rule_info(const ir::RuleRef& ref, const std::vector<ir::RuleRef>& via) const {
  RuleInfo ri;
  const auto& t = rs_.tables[ref.table];
  const auto& c = t.chains[ref.chain];
  const auto& r = c.rules[ref.rule];
  ri.location = r.loc.file_line();
  ri.text = r.text;
  ri.chain = t.name + "/" + c.name;
  ri.ref = ref;
  for (const auto& v : via) ri.via.push_back(rs_.tables[v.table].chains[v.chain].rules[v.rule].loc.file_line());
  return ri;
}

RuleInfo ReferenceEngine::policy_info(const ir::DecisionList& dl) const {
  RuleInfo ri;
  const auto& c = rs_.tables[dl.table_index].chains[dl.chain_index];
  ri.location = c.loc.file_line();
  std::string pol = dl.policy == ir::VerdictKind::Drop ? "DROP" : "ACCEPT";
  ri.text = ":" + dl.chain + " " + pol + " (policy of " + dl.table + "/" + dl.chain + ")";
  ri.chain = dl.table + "/" + dl.chain;
  ri.policy = true;
  return ri;
}

std::vector<RuleHits> ReferenceEngine::hits() const {
  std::vector<RuleHits> out;
  for (size_t t = 0; t < rs_.tables.size(); ++t) {
    const auto& table = rs_.tables[t];
    for (size_t c = 0; c < table.chains.size(); ++c) {
      const auto& chain = table.chains[c];
      for (size_t r = 0; r < chain.rules.size(); ++r) {
        RuleHits h;
        h.location = chain.rules[r].loc.file_line();
        h.text = chain.rules[r].text;
        h.chain = table.name + "/" + chain.name;
        h.hits = rule_hits_[t][c][r];
        out.push_back(std::move(h));
      }
      if (chain.base) {
        RuleHits h;
        h.location = chain.loc.file_line();
        h.text =
            ":" + chain.name + " " + (chain.base->policy == ir::VerdictKind::Drop ? "DROP" : "ACCEPT") + " (policy)";
        h.chain = table.name + "/" + chain.name;
        h.policy = true;
        h.hits = policy_hits_[t][c];
        out.push_back(std::move(h));
      }
    }
  }
  return out;
}

// ---- matching ----------------------------------------------------------------

namespace {

struct Ctx {
  const ir::Ruleset& rs;
  const ReferenceEngine::SetIndex& sets;
  const HostModel& host;
  const ir::DecisionList& dl;
  ReferenceEngine::Run& r;
  const std::set<std::string>& touched_sets;
  const ReferenceEngine::NthCounters& nth;                       // committed counters
  const ReferenceEngine::RecentLists& recent;                    // committed -m recent lists
  const ReferenceEngine::NftSets& nftsets;                       // committed nft sets the packet path writes
  std::unordered_map<const ir::Match*, std::string>& why_cache;  // eval_opaque's explanations
};

// The value of a numeric field for this packet; nullopt when the packet has
// no such field (a port of an ICMP packet ...), which fails the match
// whatever its polarity, as both iptables and nftables do.
std::optional<u128> field_value(Field f, const Ctx& c, bool& unknown, std::string& why) {
  const pkt::Packet& p = c.r.p;
  const CtView& ct = c.r.ct;
  bool has_ct = c.r.ct_done && ct.dir >= 0 && !c.r.untracked;
  switch (f) {
    case Field::NfProto: return p.family == 4 ? 2 : 10;
    case Field::SrcAddr: return p.saddr;
    case Field::DstAddr: return p.daddr;
    case Field::L4Proto: return p.l4proto;
    case Field::SrcPort:
      if (p.has_l4 && port_proto(p.l4proto)) return p.sport;
      return std::nullopt;
    case Field::DstPort:
      if (p.has_l4 && port_proto(p.l4proto)) return p.dport;
      return std::nullopt;
    case Field::IcmpType:
      if (p.family == 4 && p.l4proto == 1 && p.has_l4) return (u128)(p.icmp_type << 8 | p.icmp_code);
      return std::nullopt;
    case Field::Icmp6Type:
      if (p.family == 6 && p.l4proto == 58 && p.has_l4) return (u128)(p.icmp_type << 8 | p.icmp_code);
      return std::nullopt;
    case Field::TcpFlags:
      if (p.l4proto == 6 && p.has_l4) return p.tcp_flags;
      return std::nullopt;
    case Field::Fragment: return p.later_fragment ? 1 : 0;
    case Field::Mark: return p.mark;
    case Field::CtState:
      if (!c.r.ct_model) {
        unknown = true;
        why = "connection state is not modelled for this ruleset";
        return std::nullopt;
      }
      if (c.r.untracked) return ir::kCtUntracked;
      if (!c.r.ct_done) return ir::kCtInvalid;  // before conntrack (raw): no entry yet
      return ct.state;
    case Field::CtStatus:
      if (has_ct) return ct.entry.status;
      return std::nullopt;
    case Field::CtMark:
      if (has_ct) return ct.entry.mark;
      return std::nullopt;
    case Field::CtDirection:
      if (has_ct) return ct.dir;
      return std::nullopt;
    case Field::CtL4Proto:
      if (has_ct) return ct.entry.orig.proto;
      return std::nullopt;
    case Field::CtOrigSrc:
      if (has_ct) return ct.entry.orig.src;
      return std::nullopt;
    case Field::CtOrigDst:
      if (has_ct) return ct.entry.orig.dst;
      return std::nullopt;
    case Field::CtReplSrc:
      if (has_ct) return ct.entry.reply.src;
      return std::nullopt;
    case Field::CtReplDst:
      if (has_ct) return ct.entry.reply.dst;
      return std::nullopt;
    case Field::CtOrigSrcPort:
      if (has_ct) return ct.entry.orig.sport;
      return std::nullopt;
    case Field::CtOrigDstPort:
      if (has_ct) return ct.entry.orig.dport;
      return std::nullopt;
    case Field::CtReplSrcPort:
      if (has_ct) return ct.entry.reply.sport;
      return std::nullopt;
    case Field::CtReplDstPort:
      if (has_ct) return ct.entry.reply.dport;
      return std::nullopt;
    case Field::SrcAddrType: return c.host.addr_type(p.family, p.saddr);
    case Field::DstAddrType: return c.host.addr_type(p.family, p.daddr);
    case Field::PktType: {
      // xt_pkttype: the link-layer type; without one (raw IP, OUTPUT) the
      // destination address says broadcast/multicast.
      if (p.has_l2 && p.pkttype != pkt::PktType::Host) return (u128)p.pkttype;
      uint16_t at = c.host.addr_type(p.family, p.daddr);
      if (at == ir::kAddrMulticast) return (u128)pkt::PktType::Multicast;
      if (at == ir::kAddrBroadcast) return (u128)pkt::PktType::Broadcast;
      return (u128)pkt::PktType::Host;
    }
    case Field::Length: return p.length;
    case Field::Ttl: return p.ttl;
    case Field::Dscp: return p.dscp();
    case Field::Tos: return p.tos;
    case Field::SrcMac:
      if (p.has_l2 && !p.iif.empty()) return p.src_mac;
      return std::nullopt;
    case Field::SkUid:
    case Field::SkGid:
      if (p.has_sk) return f == Field::SkUid ? p.sk_uid : p.sk_gid;
      if (c.dl.hook == Hook::Output || c.dl.hook == Hook::Postrouting) {
        unknown = true;
        why = "the owning socket of a captured packet is unknown";
      }
      return std::nullopt;
    default:
      unknown = true;
      why = std::string("field ") + ir::to_string(f) + " is not evaluated";
      return std::nullopt;
  }
}

bool iface_match(const std::vector<ir::IfacePattern>& pats, const std::string& name) {
  for (const auto& pt : pats)
    if (pt.matches(name)) return true;
  return false;
}

// The TCP option kinds present in the packet (xt_tcpudp --tcp-option).
std::optional<bool> has_tcp_option(const pkt::Packet& p, unsigned kind) {
  auto off = l4_offset(p);
  if (!off || p.l4proto != 6 || *off + 20 > p.l3.size()) return std::nullopt;
  const uint8_t* th = p.l3.data() + *off;
  size_t hlen = (size_t)(th[12] >> 4) * 4;
  if (hlen < 20 || *off + hlen > p.l3.size()) return std::nullopt;
  for (size_t i = 20; i < hlen;) {
    uint8_t k = th[i];
    if (k == kind) return true;
    if (k == 0) break;
    if (k == 1) {
      ++i;
      continue;
    }
    if (i + 1 >= hlen || th[i + 1] < 2) break;
    i += th[i + 1];
  }
  return false;
}

Tri eval_opaque(const ir::Match& m, const Ctx& c, std::string& why) {
  const pkt::Packet& p = c.r.p;
  // A numgen map's marker tests nothing: each element's value match (inc) or
  // draw (random, a -m statistic share) does. Random: one of the N values
  // always comes out, so the last element's share is 1, and holds.
  if (m.module == ir::kNumgenModule) return Tri::True;
  // xt_statistic's random mode: (random & 0x7fffffff) < probability * 2^31,
  // always when the probability is 1.
  if (m.module == "statistic"sv && !m.args.empty() && m.args[0].first == "--mode"sv && m.args[0].second == "random"sv) {
    for (const auto& [k, v] : m.args)
      if (k == "--probability"sv && std::strtod(v.c_str(), nullptr) >= 1.0) return m.negated ? Tri::False : Tri::True;
  }
  if (m.module == "multiport"sv && !m.args.empty() && m.args[0].first == "--ports"sv) {
    const auto* s = std::get_if<ir::IntervalSet>(&m.value);
    if (!s || !p.has_l4 || !port_proto(p.l4proto)) return Tri::False;
    bool hit = s->contains(p.sport) || s->contains(p.dport);
    return hit != m.negated ? Tri::True : Tri::False;
  }
  if (m.cap == "-m tcp --tcp-option"sv && !m.args.empty()) {
    uint64_t kind = std::strtoull(m.args[0].second.c_str(), nullptr, 0);
    if (p.l4proto != 6 || !p.has_l4) return Tri::False;
    auto has = has_tcp_option(p, (unsigned)kind);
    if (!has) {
      why = "TCP options are not in the capture";
      return Tri::Unknown;
    }
    return *has != m.negated ? Tri::True : Tri::False;
  }
  if (m.cap == "-m conntrack --ctstatus"sv && !m.args.empty()) {
    uint32_t mask = 0;
    for (auto part : split(m.args[0].second, ',')) {
      if (part == "EXPECTED")
        mask |= kStExpected;
      else if (part == "SEEN_REPLY")
        mask |= kStSeenReply;
      else if (part == "ASSURED")
        mask |= kStAssured;
      else if (part == "CONFIRMED")
        mask |= kStConfirmed;
      else if (part != "NONE") {
        why = "unknown conntrack status '" + std::string(part) + "'";
        return Tri::Unknown;
      }
    }
    bool has_ct = c.r.ct_done && c.r.ct.dir >= 0 && !c.r.untracked;
    if (!has_ct) return Tri::False;
    uint32_t st = c.r.ct.entry.status;
    bool hit = mask ? (st & mask) != 0 : (st & (kStExpected | kStSeenReply | kStAssured | kStConfirmed)) == 0;
    return hit != m.negated ? Tri::True : Tri::False;
  }
  if (m.cap == "-m conntrack --ctexpire"sv && !m.args.empty()) {
    bool has_ct = c.r.ct_done && c.r.ct.dir >= 0 && !c.r.untracked;
    if (!has_ct) return Tri::False;
    auto parts = split(m.args[0].second, ':');
    uint64_t lo = std::strtoull(std::string(parts[0]).c_str(), nullptr, 10);
    uint64_t hi = parts.size() > 1 ? std::strtoull(std::string(parts[1]).c_str(), nullptr, 10) : lo;
    double left = c.r.ct.entry.expires - p.time;
    if (c.r.ct.is_new) left = 0;  // not yet confirmed: the kernel reports no timeout
    uint64_t secs = left <= 0 ? 0 : (uint64_t)left;
    bool hit = secs >= lo && secs <= hi;
    return hit != m.negated ? Tri::True : Tri::False;
  }
  if (m.cap == "-m conntrack --ctstate SNAT,DNAT"sv && !m.args.empty()) {
    // xt_conntrack ORs the NAT status into the state bits it tests.
    bool has_ct = c.r.ct_done && c.r.ct.dir >= 0 && !c.r.untracked;
    uint8_t state = c.r.untracked ? (uint8_t)ir::kCtUntracked : c.r.ct_done ? c.r.ct.state : (uint8_t)ir::kCtInvalid;
    bool hit = false;
    for (auto part : split(m.args[0].second, ',')) {
      if (part == "INVALID")
        hit |= state == ir::kCtInvalid;
      else if (part == "NEW")
        hit |= state == ir::kCtNew;
      else if (part == "ESTABLISHED")
        hit |= state == ir::kCtEstablished;
      else if (part == "RELATED")
        hit |= state == ir::kCtRelated;
      else if (part == "UNTRACKED")
        hit |= state == ir::kCtUntracked;
      else if (part == "SNAT")
        hit |= has_ct && (c.r.ct.entry.status & kStSnat);
      else if (part == "DNAT")
        hit |= has_ct && (c.r.ct.entry.status & kStDnat);
    }
    return hit != m.negated ? Tri::True : Tri::False;
  }
  // What cannot be known from a capture, said once per match (a run meets
  // the same statistic match on every packet).
  auto [it, fresh] = c.why_cache.try_emplace(&m);
  if (fresh) {
    std::string& w = it->second;
    w = "'" + (m.args.empty() ? m.cap : "-m " + m.module + " " + arg_text(m)) + "'";
    if (m.module == "limit"sv || m.module == "hashlimit"sv)
      w += " depends on the packet rate";
    else if (m.module == "statistic"sv)
      w += " depends on sampling";
    else if (m.module == "connlimit"sv)
      w += " depends on state outside the capture";
    else if (m.module == "owner"sv)
      w += " depends on the sending socket";
    else if (m.module == "set"sv)
      w += " depends on ipset counters";
    else
      w += " cannot be evaluated from a capture";
  }
  why = it->second;
  return Tri::Unknown;
}

Tri eval_set(const ir::Match& m, const ir::SetRef& ref, const Ctx& c, std::string& why) {
  const auto& byname = c.sets[c.dl.table_index];
  auto look = byname.find(ref.name);
  if (look == byname.end()) return Tri::False;  // the front-end reported it
  const ir::Set* set = look->second.set;
  if (!set->contents_known) {
    why = "the contents of set '" + ref.name + "' are not known (give them with --ipsets)";
    return Tri::Unknown;
  }
  if (set->dynamic && c.touched_sets.count(ref.name)) {
    why = "set '" + ref.name + "' was changed by an earlier packet's rule";
    return Tri::Unknown;
  }
  std::vector<u128> key;
  for (Field f : ref.key) {
    bool unknown = false;
    std::string w;
    auto v = field_value(f, c, unknown, w);
    if (unknown) {
      why = w;
      return Tri::Unknown;
    }
    if (!v) return Tri::False;
    key.push_back(*v);
  }
  bool found = false;
  if (look->second.single && key.size() == 1)
    return look->second.single->contains(key[0]) != m.negated ? Tri::True : Tri::False;
  for (const auto& e : set->elements) {
    if (e.key.size() < key.size()) continue;
    bool all = true;
    for (size_t i = 0; i < key.size() && all; ++i) all = e.key[i].contains(key[i]);
    if (all) {
      found = true;
      break;
    }
  }
  return found != m.negated ? Tri::True : Tri::False;
}

Tri eval_match(const ir::Match& m, const Ctx& c, std::string& why) {
  if (m.field == Field::Opaque) return eval_opaque(m, c, why);
  if (const auto* ref = std::get_if<ir::SetRef>(&m.value)) return eval_set(m, *ref, c, why);
  if (const auto* pats = std::get_if<std::vector<ir::IfacePattern>>(&m.value)) {
    bool in = m.field == Field::IifName;
    if (in ? !c.r.iif_known : !c.r.oif_known) {
      // An unnamed interface is still known not to be the loopback: only
      // this host's own packets travel over lo.
      bool only_lo = std::all_of(pats->begin(), pats->end(),
                                 [](const ir::IfacePattern& pt) { return !pt.prefix && pt.name == "lo"; });
      if (only_lo) return m.negated ? Tri::True : Tri::False;
      why = in ? "the input interface is not known (give --iface)"
               : "the output interface is not known (give --route CIDR=IFACE)";
      return Tri::Unknown;
    }
    const std::string& name = in ? c.r.p.iif : c.r.p.oif;
    return iface_match(*pats, name) != m.negated ? Tri::True : Tri::False;
  }
  bool unknown = false;
  auto v = field_value(m.field, c, unknown, why);
  if (unknown) return Tri::Unknown;
  if (!v) return Tri::False;
  bool hit = false;
  if (const auto* s = std::get_if<ir::IntervalSet>(&m.value))
    hit = s->contains(*v);
  else if (const auto* mk = std::get_if<ir::Masked>(&m.value))
    hit = mk->values.contains(*v & mk->mask);
  return hit != m.negated ? Tri::True : Tri::False;
}

// xt_statistic in nth mode, one packet reaching it: the options of the
// rule's statistic match (split over several ir::Match) read from
// [from, to); the counter moves as statistic_mt moves it.
Tri eval_nth(const ir::FlatRule& fr, size_t from, size_t to, size_t at, const ir::RuleRef& owner, bool uncertain,
             const Ctx& c, std::string& why) {
  uint64_t every = 0, packet = 0;
  for (size_t i = from; i < to && i < fr.matches.size(); ++i)
    if (fr.matches[i].module == "statistic")
      for (const auto& [k, v] : fr.matches[i].args) {
        if (k == "--every") every = std::strtoull(v.c_str(), nullptr, 10);
        if (k == "--packet") packet = std::strtoull(v.c_str(), nullptr, 10);
      }
  if (every == 0 || packet >= every) return Tri::False;  // iptables refuses these
  // iptables keeps every - 1 and starts the counter at (every - 1) - packet.
  uint32_t last = (uint32_t)(every - 1);
  ReferenceEngine::NthKey key{owner, at - from};
  std::optional<uint32_t> count = last - (uint32_t)packet;
  if (auto it = c.r.nth.find(key); it != c.r.nth.end())
    count = it->second;
  else if (auto jt = c.nth.find(key); jt != c.nth.end())
    count = jt->second;
  if (!count) {
    why = "the -m statistic --mode nth counter depends on an earlier undecidable match";
    return Tri::Unknown;
  }
  uint32_t next = *count == last ? 0 : *count + 1;
  // An undecided match before it in the rule: whether the packet reached
  // the counter is a guess, so the count afterwards is unknown (earlier
  // rules' guesses are other runs, compared in evaluate()).
  c.r.nth[key] = uncertain ? std::nullopt : std::optional<uint32_t>(next);
  return (next == 0) != fr.matches[at].negated ? Tri::True : Tri::False;
}

// nft `numgen inc mod N`, one map element's value (the flattener's match):
// nft_ng_inc_init starts the rule's counter at N - 1 and nft_ng_inc_gen
// returns the next value, wrapping to 0 at N, once per evaluation.
Tri eval_numgen_inc(const ir::Match& m, const ir::RuleRef& owner, bool uncertain, const Ctx& c, std::string& why) {
  uint64_t mod = 0, value = 0;
  for (const auto& [k, v] : m.args) (k == "mod" ? mod : value) = std::strtoull(v.c_str(), nullptr, 10);
  if (mod == 0) return Tri::False;
  if (auto it = c.r.numgen.find(owner); it != c.r.numgen.end()) return it->second == value ? Tri::True : Tri::False;
  ReferenceEngine::NthKey key{owner, SIZE_MAX};
  std::optional<uint32_t> count = (uint32_t)(mod - 1);
  if (auto it = c.r.nth.find(key); it != c.r.nth.end())
    count = it->second;
  else if (auto jt = c.nth.find(key); jt != c.nth.end())
    count = jt->second;
  if (!count) {
    why = "the numgen inc counter depends on an earlier undecidable match";
    return Tri::Unknown;
  }
  uint32_t next = *count + 1 < mod ? *count + 1 : 0;
  c.r.nth[key] = uncertain ? std::nullopt : std::optional<uint32_t>(next);
  c.r.numgen[owner] = next;
  return next == value ? Tri::True : Tri::False;
}

// xt_recent's per-list settings, fixed when iptables-restore checks the
// rules: the stamps kept per address (ip_pkt_list_tot is 0 by default: the
// largest --hitcount of the list's rules rounded up to a power of two, 32
// without one) and the first rule's --mask.
struct RecentSetup {
  uint32_t ring = 0;
  std::optional<std::string> mask;
};
RecentSetup recent_setup(const ir::Ruleset& rs, const std::string& name) {
  RecentSetup out;
  bool first = true;
  for (const auto& t : rs.tables)
    for (const auto& ch : t.chains)
      for (const auto& rule : ch.rules)
        for (const auto& m : rule.matches) {
          if (m.module != "recent") continue;
          std::string n = "DEFAULT", mask;
          uint32_t hits = 0;
          for (const auto& [k, v] : m.args) {
            if (k == "--name") n = v;
            if (k == "--hitcount") hits = (uint32_t)std::strtoul(v.c_str(), nullptr, 10);
            if (k == "--mask") mask = v;
          }
          if (n != name) continue;
          uint32_t want = 32;
          if (hits) {
            want = 1;
            while (want < hits) want *= 2;
          }
          out.ring = std::max(out.ring, want);
          if (first && !mask.empty()) out.mask = mask;
          first = false;
        }
  if (!out.ring) out.ring = 32;
  return out;
}

// One packet through one -m recent match, as recent_mt handles it.
// `uncertain`: an undecided match before it in the rule, so whether the
// packet reached it is a guess and the list afterwards is unknown.
Tri eval_recent(const ir::Match& m, bool uncertain, const Ctx& c, std::string& why) {
  enum { None, Set, Check, Update, Remove } cmd = None;
  bool inverted = m.negated, reap = false, rttl = false, rdest = false;
  std::string name = "DEFAULT";
  double seconds = 0;
  uint32_t hitcount = 0;
  for (const auto& [key, v] : m.args) {
    std::string k = key;
    if (k.rfind("! ", 0) == 0) {
      inverted = !inverted;
      k = k.substr(2);
    }
    if (k == "--set") cmd = Set;
    if (k == "--rcheck") cmd = Check;
    if (k == "--update") cmd = Update;
    if (k == "--remove") cmd = Remove;
    if (k == "--name") name = v;
    if (k == "--seconds") seconds = std::strtod(v.c_str(), nullptr);
    if (k == "--hitcount") hitcount = (uint32_t)std::strtoul(v.c_str(), nullptr, 10);
    if (k == "--reap") reap = true;
    if (k == "--rttl") rttl = true;
    if (k == "--rdest") rdest = true;
    if (k == "--rsource") rdest = false;
  }
  if (cmd == None) return Tri::False;  // iptables refuses such a rule
  std::optional<ReferenceEngine::RecentList> list = ReferenceEngine::RecentList{};
  if (auto it = c.r.recent.find(name); it != c.r.recent.end())
    list = it->second;
  else if (auto jt = c.recent.find(name); jt != c.recent.end())
    list = jt->second;
  if (!list) {
    why = "the -m recent list " + name + " depends on an earlier undecidable match";
    return Tri::Unknown;
  }
  RecentSetup setup = recent_setup(c.rs, name);
  const pkt::Packet& p = c.r.p;
  ir::u128 addr = rdest ? p.daddr : p.saddr;
  if (setup.mask) {  // --mask of the packet's family; the other family's addresses stay whole
    bool v6 = setup.mask->find(':') != std::string::npos;
    unsigned char b[16] = {};
    if (v6 && p.family == 6 && inet_pton(AF_INET6, setup.mask->c_str(), b) == 1) {
      ir::u128 mk = 0;
      for (unsigned char x : b) mk = mk << 8 | x;
      addr &= mk;
    } else if (!v6 && p.family == 4 && inet_pton(AF_INET, setup.mask->c_str(), b) == 1) {
      ir::u128 mk = ~(ir::u128)0xffffffffu | ((ir::u128)b[0] << 24 | (ir::u128)b[1] << 16 | b[2] << 8 | b[3]);
      addr &= mk;
    }
  }
  // The TTL before forwarding: FORWARD sees it decremented.
  uint8_t ttl = (uint8_t)(p.ttl + (c.dl.hook == ir::Hook::Forward ? 1 : 0));
  double now = p.time;
  auto& l = *list;
  auto found = std::find_if(l.begin(), l.end(), [&](const ReferenceEngine::RecentEntry& e) {
    return e.family == p.family && e.addr == addr && (!rttl || e.ttl == ttl || e.ttl == 0 || ttl == 0);
  });
  bool ret = inverted;
  bool changed = false;
  if (found == l.end()) {
    if (cmd == Set) {
      if (l.size() >= 100) l.erase(l.begin());  // ip_list_tot: the least recently used goes
      ReferenceEngine::RecentEntry e;
      e.family = p.family;
      e.addr = addr;
      e.ttl = ttl;
      e.stamps.assign(setup.ring, 0);
      e.stamps[0] = now;
      e.next = e.filled = 1;
      l.push_back(e);
      ret = !ret;
      changed = true;
    }
  } else {
    size_t at = (size_t)(found - l.begin());
    bool gone = false;
    if (cmd == Set) {
      ret = !ret;
    } else if (cmd == Remove) {
      l.erase(found);
      gone = changed = true;
      ret = !ret;
    } else {
      double since = now - seconds;
      uint32_t hits = 0;
      for (uint32_t i = 0; i < found->filled; ++i) {
        if (seconds > 0 && found->stamps[i] < since) continue;
        ++hits;
        if (hitcount == 0 || hits >= hitcount) {
          ret = !ret;
          break;
        }
      }
      if (reap && !l.empty()) {  // the oldest entry, when its last stamp left the window
        const auto& o = l.front();
        if (o.stamps[(o.next + o.stamps.size() - 1) % o.stamps.size()] < since) {
          gone = at == 0;
          l.erase(l.begin());
          changed = true;
          if (!gone) --at;
        }
      }
    }
    if (!gone && (cmd == Set || (cmd == Update && ret))) {
      ReferenceEngine::RecentEntry e = l[at];
      e.next %= (uint32_t)e.stamps.size();
      e.stamps[e.next++] = now;
      e.filled = std::max(e.filled, e.next);
      e.ttl = ttl;
      l.erase(l.begin() + (long)at);
      l.push_back(e);  // most recently used
      changed = true;
    }
  }
  if (changed || uncertain) c.r.recent[name] = uncertain ? std::nullopt : list;
  return ret ? Tri::True : Tri::False;
}

// An nft set the packet path writes, as nft_dynset and nft_lookup treat it:
// an element is there until its timeout runs out; add makes a missing one
// (with the statement's timeout, else the set's), update makes or renews one
// (an element without a timeout stays so), delete removes it, a lookup finds
// it. An element's packet-rate limit decides the write's match: unknown from a
// capture (the set itself is known either way).
Tri eval_nftset(const ir::Match& m, bool uncertain, const Ctx& c, std::string& why) {
  std::string op, name, key;
  double timeout = 0;
  bool own = false, limited = false;
  for (const auto& [k, v] : m.args) {
    if (k == "op") op = v;
    if (k == "set") name = v;
    if (k == "key") key = v;
    if (k == "timeout") timeout = std::strtod(v.c_str(), nullptr) / 1000;
    if (k == "own timeout") own = true;
    if (k == "limit rate") limited = true;
  }
  std::optional<ReferenceEngine::NftSet> set = ReferenceEngine::NftSet{};
  if (auto it = c.r.nftsets.find(name); it != c.r.nftsets.end())
    set = it->second;
  else if (auto jt = c.nftsets.find(name); jt != c.nftsets.end())
    set = jt->second;
  if (!set) {
    why = "set " + name + " depends on an earlier undecidable match";
    return Tri::Unknown;
  }
  const pkt::Packet& p = c.r.p;
  // The element's key: the packet's values of the key's parts (a port only
  // where the protocol has ports).
  bool ports =
      p.has_l4 && (p.l4proto == 6 || p.l4proto == 17 || p.l4proto == 132 || p.l4proto == 33 || p.l4proto == 136);
  std::string elem = std::to_string(p.family);
  if (key.find("saddr") != std::string::npos) elem += " s" + ir::format_addr(p.saddr);
  if (key.find("daddr") != std::string::npos) elem += " d" + ir::format_addr(p.daddr);
  if (key.find("sport") != std::string::npos) elem += " sp" + std::to_string(ports ? p.sport : 0);
  if (key.find("dport") != std::string::npos) elem += " dp" + std::to_string(ports ? p.dport : 0);
  const double now = p.time, never = std::numeric_limits<double>::infinity();
  auto& s = *set;
  auto found = s.find(elem);
  if (found != s.end() && now >= found->second.expires) {
    s.erase(found);
    found = s.end();
  }
  bool ret = true, changed = false;
  if (op == "lookup") {
    ret = (found != s.end()) != m.negated;
  } else if (op == "delete") {
    if (found != s.end()) s.erase(found), changed = true;
  } else if (found == s.end()) {
    s[elem] = {timeout > 0 ? now + timeout : never, timeout};
    changed = true;
  } else if (op == "update" && found->second.expires != never) {
    found->second.expires = now + (own ? timeout : found->second.timeout);
    changed = true;
  }
  if (changed || uncertain) c.r.nftsets[name] = uncertain ? std::nullopt : set;
  if (limited && op != "lookup") {
    why = "'" + m.cap + "' depends on the packet rate";
    return Tri::Unknown;
  }
  return ret ? Tri::True : Tri::False;
}

// `owner`: the rule these matches belong to (the flat rule's own, or a jump's).
Tri eval_range(const ir::FlatRule& fr, size_t from, size_t to, const ir::RuleRef& owner, const Ctx& c,
               std::string& why) {
  Tri res = Tri::True;
  to = std::min(to, fr.matches.size());
  bool nth = false;  // a match with state (nth counter, recent list)
  for (size_t i = from; i < to; ++i) {
    for (const auto& [k, v] : fr.matches[i].args)
      nth |= fr.matches[i].module == "statistic" && k == "--mode" && v == "nth";
    nth |= fr.matches[i].module == "recent";
  }
  // With a counter in the rule, order matters: iptables tests the rule's
  // address, protocol and interface options (ip_packet_match) before any
  // match module, then the modules in the order they were given.
  for (int pass = nth ? 0 : 1; pass < 2; ++pass)
    for (size_t i = from; i < to; ++i) {
      const ir::Match& m = fr.matches[i];
      if (nth && (pass == 0) != m.module.empty()) continue;
      std::string w;
      Tri t;
      auto has = [&](const char* k, const char* v = nullptr) {
        return std::any_of(m.args.begin(), m.args.end(),
                           [&](const auto& a) { return a.first == k && (!v || a.second == v); });
      };
      if (nth && m.module == "statistic" && has("--every")) {
        t = eval_nth(fr, from, to, i, owner, res == Tri::Unknown, c, w);
      } else if (m.module == "recent") {
        t = eval_recent(m, res == Tri::Unknown, c, w);
      } else if (m.module == "nftset") {
        t = eval_nftset(m, res == Tri::Unknown, c, w);
      } else if (m.module == ir::kNumgenIncModule) {
        t = eval_numgen_inc(m, owner, res == Tri::Unknown, c, w);
      } else if (nth && m.module == "statistic" && (has("--mode", "nth") || has("--packet"))) {
        t = Tri::True;  // the rest of the nth match, decided at --every
      } else {
        t = eval_match(m, c, w);
      }
      if (t == Tri::False) return Tri::False;
      if (t == Tri::Unknown && res == Tri::True) {
        res = Tri::Unknown;
        why = w;
      }
    }
  return res;
}

}  // namespace

// ---- evaluation ----------------------------------------------------------------

// One evaluation of one packet along its hooks: the state that lives for
// the whole path (the packet, its connection, the hooks left) and the steps
// that change it.
struct ReferenceEngine::Walk {
  Walk(const ReferenceEngine& e, Run& r, const Traversal& t)
      : e(e), r(r), t(t), fam(r.p.family), hooks(t.hooks), daddr_in(r.p.daddr) {}

  // What a NAT binding may choose from (struct nf_nat_range2).
  struct NatRange {
    bool map_ips = false;  // NF_NAT_RANGE_MAP_IPS
    u128 addr_lo = 0, addr_hi = 0;
    bool proto = false;  // NF_NAT_RANGE_PROTO_SPECIFIED
    uint16_t port_lo = 0, port_hi = 0;
    bool random = false, fully_random = false;
  };

  void run();
  bool hook(size_t hi);
  void conntrack();
  bool nat_point(Hook h);
  void bind(const NatRange& rg, bool dst);
  CtTuple unique_tuple(const CtTuple& curr, const NatRange& rg, bool dst, CtChoice& ch) const;
  bool used(const CtTuple& t) const;
  void manip(bool dst);
  void icmp_error(bool dst);
  void finish(Verdict v, Hook h, const std::string& rw);
  StageOutcome chain(size_t si, Hook h);
  // `failed_at`: the path depth whose jump did not match (SIZE_MAX: the
  // rule's own matches, or it matched).
  Tri matches(const ir::FlatRule& fr, const FlatInfo& fi, const Ctx& c, size_t& failed_at);
  bool statements(const ir::FlatRule& fr, Hook h);
  void nat(const ir::Statement& st, Hook h, const std::string& at);
  void reroute(size_t hi, Hook h);

  const ReferenceEngine& e;
  Run& r;
  const Traversal& t;
  const int fam;
  std::vector<Hook> hooks;
  const u128 daddr_in;
  bool use_index = false;  // of the chain being evaluated
};

void ReferenceEngine::run(Run& r, const Traversal& t) const { Walk(*this, r, t).run(); }

void ReferenceEngine::Walk::run() {
  r.ct_model = e.conntrack_on_;
  for (size_t hi = 0; hi < hooks.size(); ++hi)
    if (!hook(hi)) return;
  Hook last = hooks.empty() ? Hook::Input : hooks.back();
  // Confirmation (__nf_conntrack_confirm): a new connection whose reply
  // tuple NAT left clashing with another connection's is not inserted and
  // its packet is dropped (insert_failed; checked on Linux 6.18 for TCP and
  // UDP with SNAT to one port).
  if (e.conntrack_on_ && r.ct_done && !r.untracked && r.ct.is_new && !r.ct.kill_after &&
      e.ct_.taken(r.ct.entry.reply, r.p.time, r.ct.remove)) {
    r.confirm_clash = true;
    finish(Verdict::Drop, last, "");
    return;
  }
  finish(Verdict::Accept, last, "");
}

// The base chains of one hook, in priority order, with conntrack and the
// NAT hook between them. False when a chain ended the packet.
bool ReferenceEngine::Walk::hook(size_t hi) {
  const Hook h = hooks[hi];
  r.path.push_back(h);
  // ip_forward()/ip6_forward() decrement the TTL / hop limit before the
  // FORWARD hook runs.
  if (h == Hook::Forward && r.p.ttl > 0) --r.p.ttl;
  if (t.origin == Origin::Local && (h == Hook::Prerouting || h == Hook::Input)) r.p.iif = "lo";  // looped back
  // Interface names are known when the capture or the options said.
  r.iif_known = !(r.p.iif.empty() && t.origin == Origin::Incoming);
  r.oif_known =
      !(r.p.oif.empty() && (h == Hook::Forward || h == Hook::Postrouting || h == Hook::Output || h == Hook::Egress));
  const bool ct_hook = h == Hook::Prerouting || h == Hook::Output;
  const bool nat_hook = ct_hook || h == Hook::Postrouting || h == Hook::Input;
  // NF_IP_PRI_NAT_DST / NF_IP_PRI_NAT_SRC. A chain at the same priority runs
  // first (hook order among equal priorities follows registration, which a
  // ruleset does not record).
  const int nat_priority = ct_hook ? -100 : 100;
  bool nat_done = false;
  auto it = e.stages_.find({h, fam});
  static const std::vector<size_t> kNone;
  const auto& list = it == e.stages_.end() ? kNone : it->second;
  for (size_t si : list) {
    const ir::DecisionList& dl = e.pipe_.stages[si];
    if ((h == Hook::Ingress || h == Hook::Egress) && !dl.chain.empty()) {
      const auto& base = e.rs_.tables[dl.table_index].chains[dl.chain_index].base;
      const std::string& dev = h == Hook::Ingress ? r.p.iif : r.p.oif;
      if (base && !base->device.empty() && base->device != dev) continue;
    }
    if (ct_hook && dl.priority > -200) conntrack();
    if (nat_hook && !nat_done && dl.priority > nat_priority) {
      nat_done = true;
      if (!nat_point(h)) return false;
    }
    StageOutcome out = chain(si, h);
    r.outcomes.push_back(out);
    if (out.action != FlatAction::Accept) {
      Verdict v = out.action == FlatAction::Drop     ? Verdict::Drop
                  : out.action == FlatAction::Reject ? Verdict::Reject
                                                     : Verdict::Queue;
      finish(v, h, out.rule ? out.rule->reject_with : std::string());
      return false;
    }
  }
  if (ct_hook) conntrack();
  if (nat_hook && !nat_done && !nat_point(h)) return false;
  reroute(hi, h);
  return true;
}

void ReferenceEngine::Walk::conntrack() {
  if (r.ct_done) return;
  r.ct_done = true;
  if (!e.conntrack_on_) return;
  if (r.untracked) {
    r.ct = CtView{};
    r.ct.state = ir::kCtUntracked;
    r.ct.why = "NOTRACK";
    return;
  }
  r.ct = e.ct_.classify(r.p, r.p.time, !r.path.empty() && r.path.back() == Hook::Prerouting);
  if (r.ct.state == ir::kCtUntracked) r.untracked = true;
}

// The NAT hook (nf_nat_inet_fn), registered for a family once it has a nat
// chain. A connection not yet bound at this manip type (its first packet)
// runs the hook's nat chains in their priority order until one binds, else
// gets the null binding; then the packet is rewritten from the binding
// (nf_nat_packet). ICMP errors are translated from their connection's
// binding, without any chain. False when a nat chain ended the packet.
bool ReferenceEngine::Walk::nat_point(Hook h) {
  if (!e.conntrack_on_ || !(fam == 4 ? e.nat_v4_ : e.nat_v6_)) return true;
  if (!r.ct_done || r.untracked || r.ct.dir < 0) return true;
  const bool dst = h == Hook::Prerouting || h == Hook::Output;
  if (r.ct.related) {
    icmp_error(dst);
    return true;
  }
  const uint32_t done = dst ? kStDstNatDone : kStSrcNatDone;
  if (!(r.ct.entry.status & done)) {
    if (auto it = e.nat_stages_.find({h, fam}); it != e.nat_stages_.end())
      for (size_t si : it->second) {
        StageOutcome out = chain(si, h);
        r.outcomes.push_back(out);
        if (out.action != FlatAction::Accept) {
          Verdict v = out.action == FlatAction::Drop     ? Verdict::Drop
                      : out.action == FlatAction::Reject ? Verdict::Reject
                                                         : Verdict::Queue;
          finish(v, h, out.rule ? out.rule->reject_with : std::string());
          return false;
        }
        if (r.ct.entry.status & done) break;
      }
    if (!(r.ct.entry.status & done)) {
      // nf_nat_alloc_null_binding(): the address as it is, any port.
      NatRange rg;
      rg.map_ips = true;
      rg.addr_lo = rg.addr_hi = dst ? r.ct.entry.reply.src : r.ct.entry.reply.dst;
      CtTuple before = r.ct.entry.reply;
      bind(rg, dst);
      if (!(r.ct.entry.reply == before)) {
        const CtChoice& ch = r.ct.entry.choice[dst];
        std::string port = ch.port ? "[" + std::to_string(ch.port_lo) + "-" + std::to_string(ch.port_hi) + "]"
                                   : std::to_string(dst ? r.ct.entry.reply.sport : r.ct.entry.reply.dport);
        r.events.push_back({std::string(dst ? "destination" : "source") + " port remapped to " + port +
                                ": the reply tuple was taken by another connection (null binding)",
                            ""});
      }
    }
  }
  manip(dst);
  return true;
}

namespace {

bool icmp_proto(uint8_t p) { return p == 1 || p == 58; }

// The ICMP messages whose identifier NAT rewrites (icmp_manip_pkt, icmpv6_manip_pkt).
bool icmp_has_id(const pkt::Packet& p) {
  if (!p.has_l4) return false;
  if (p.family == 4 && p.l4proto == 1)
    return p.icmp_type == 0 || p.icmp_type == 8 || (p.icmp_type >= 13 && p.icmp_type <= 18);
  if (p.family == 6 && p.l4proto == 58) return p.icmp_type == 128 || p.icmp_type == 129;
  return false;
}

}  // namespace

// nf_nat_used_tuple(): another connection already answers to the reply of `t`.
bool ReferenceEngine::Walk::used(const CtTuple& t) const { return e.ct_.taken(invert(t), r.p.time, r.ct.remove); }

// nf_nat_setup_info() for this packet's new connection: choose the tuple,
// alter the reply tuple when it changed (and only then set SNAT/DNAT), mark
// the manip type bound.
void ReferenceEngine::Walk::bind(const NatRange& rg, bool dst) {
  CtEntry& en = r.ct.entry;
  CtTuple curr = invert(en.reply);  // the packet as it looks after earlier manips
  CtChoice ch;
  CtTuple nt = unique_tuple(curr, rg, dst, ch);
  if (!(nt == curr)) {
    en.reply = invert(nt);
    en.status |= dst ? kStDnat : kStSnat;
  }
  en.status |= dst ? kStDstNatDone : kStSrcNatDone;
  en.choice[dst] = ch;
}

// get_unique_tuple() and nf_nat_l4proto_unique_tuple(). Where the kernel
// hashes or draws at random, the result holds a stand-in (the lowest
// address, the first free port from the range's start) and `ch` the range.
CtTuple ReferenceEngine::Walk::unique_tuple(const CtTuple& curr, const NatRange& rg, bool dst, CtChoice& ch) const {
  const bool random_all = rg.random || rg.fully_random;
  const bool icmp = icmp_proto(curr.proto), ports = port_proto(curr.proto);
  auto addr_of = [&](CtTuple& t) -> u128& { return dst ? t.dst : t.src; };
  // The per-protocol part a manip changes: the port, or ICMP's identifier
  // (kept in sport in both directions).
  auto key_of = [&](CtTuple& t) -> uint16_t* {
    if (icmp) return &t.sport;
    if (ports) return dst ? &t.dport : &t.sport;
    return nullptr;
  };
  auto port_in_range = [&](CtTuple& t) {
    uint16_t* k = key_of(t);
    return !k || (*k >= rg.port_lo && *k <= rg.port_hi);
  };
  if (!dst && !random_all) {
    // 1) The original tuple when it is in the range and free; else the
    // mapping another connection from the same source got (bysource,
    // newest first), when it is in the range and free.
    CtTuple t = curr;
    bool in = (!rg.map_ips || (t.src >= rg.addr_lo && t.src <= rg.addr_hi)) && (!rg.proto || port_in_range(t));
    if (in) {
      if (!used(t)) return t;
    } else {
      auto same = e.ct_.by_source(curr, r.p.time);
      for (auto it = same.rbegin(); it != same.rend(); ++it) {
        CtTuple m = invert((*it)->reply);
        CtTuple cand = curr;
        cand.src = m.src;
        cand.sport = m.sport;
        if ((rg.map_ips && (cand.src < rg.addr_lo || cand.src > rg.addr_hi)) || (rg.proto && !port_in_range(cand)))
          continue;
        if (used(cand)) break;
        ch = (*it)->choice[0];  // the same mapping, as far as the reference knows it
        return cand;
      }
    }
  }
  // 2) The address: the only one, or a hash of the tuple over the range.
  CtTuple t = curr;
  if (rg.map_ips) {
    addr_of(t) = rg.addr_lo;
    if (rg.addr_lo != rg.addr_hi) ch.addr = true, ch.addr_lo = rg.addr_lo, ch.addr_hi = rg.addr_hi;
  }
  // 3) Keep the port when it is in the range (a single-port range even when
  // taken) and the tuple is free.
  if (!random_all) {
    if (rg.proto) {
      if (port_in_range(t) && (rg.port_lo == rg.port_hi || !used(t))) return t;
    } else if (!used(t)) {
      return t;
    }
  }
  uint16_t* key = key_of(t);
  if (!key) return t;  // no per-protocol part to change
  uint32_t min, size;
  if (icmp) {
    min = rg.proto ? rg.port_lo : 0;
    size = rg.proto ? (uint32_t)rg.port_hi - rg.port_lo + 1 : 65536;
  } else if (!rg.proto) {
    if (dst) return t;  // a destination port is never changed without a range
    // Ports below 1024 stay in their class.
    if (*key < 512)
      min = 1, size = 511;
    else if (*key < 1024)
      min = 600, size = 424;
    else
      min = 1024, size = 64512;
  } else {
    min = rg.port_lo;
    size = (uint32_t)rg.port_hi - rg.port_lo + 1;
  }
  const uint32_t attempts = std::min<uint32_t>(size, 128);
  if (dst && !random_all) {
    // Destination without --random: the search starts at the range's
    // start, one by one; exact while the first round finds a free tuple.
    for (uint32_t i = 0; i < attempts; ++i) {
      *key = (uint16_t)(min + i % size);
      if (!used(t)) return t;
    }
    if (attempts >= size || attempts < 16) return t;  // all taken: the last one tried
  }
  // A random start (source manips always, --random, later rounds): any
  // free port of the range.
  for (uint32_t i = 0; i < size; ++i) {
    *key = (uint16_t)(min + i);
    if (!used(t)) break;
  }
  ch.port = true;
  ch.port_lo = (uint16_t)min;
  ch.port_hi = (uint16_t)(min + size - 1);
  return t;
}

// nf_nat_packet(): rewrites the packet from its connection's binding, where
// the binding changed what this direction's manip type sees.
void ReferenceEngine::Walk::manip(bool dst) {
  const CtEntry& en = r.ct.entry;
  const int dir = r.ct.dir;
  uint32_t bit = dst ? kStDnat : kStSnat;
  if (dir == 1) bit = bit == kStDnat ? kStSnat : kStDnat;
  if (!(en.status & bit)) return;
  const CtTuple want = invert(en.tuple(!dir));  // what the packet must become
  bool ports = port_proto(r.p.l4proto) && r.p.has_l4;
  if (dst) {
    r.p.daddr = want.dst;
    if (ports) r.p.dport = want.dport;
  } else {
    r.p.saddr = want.src;
    if (ports) r.p.sport = want.sport;
  }
  if (icmp_has_id(r.p)) r.p.icmp_id = want.sport;
  // The original direction takes the binding's new values, which may be a
  // choice the reference only bounds; replies get the connection's own
  // original addresses back, which are exact.
  if (dir == 0) r.nat_choice[dst] = en.choice[dst];
}

// nf_nat_icmp_reply_translation(): an ICMP error about a NATed connection
// gets its quoted packet translated back to what its sender sent and its
// outer addresses to those of the connection's other end.
void ReferenceEngine::Walk::icmp_error(bool dst) {
  const CtEntry& en = r.ct.entry;
  const int dir = r.ct.dir;
  uint32_t bit = dst ? kStDnat : kStSnat;
  if (dir == 1) bit = bit == kStDnat ? kStSnat : kStDnat;
  if (!(en.status & bit)) return;
  const CtTuple& other = en.tuple(!dir);  // the quoted packet's direction
  std::string inner;
  if (r.p.inner) {
    auto& in = *r.p.inner;
    // The quoted packet gets the opposite manip type, from `other` itself.
    if (dst) {
      in.saddr = other.src;
      if (port_proto(in.l4proto) || icmp_proto(in.l4proto)) in.sport = other.sport;
    } else {
      in.daddr = other.dst;
      if (port_proto(in.l4proto)) in.dport = other.dport;
      if (icmp_proto(in.l4proto)) in.sport = other.sport;
    }
    bool p = port_proto(in.l4proto);
    inner = ir::format_addr(in.saddr) + (p ? ":" + std::to_string(in.sport) : "") + " -> " + ir::format_addr(in.daddr) +
            (p ? ":" + std::to_string(in.dport) : "");
  }
  if (dst)
    r.p.daddr = other.src;
  else
    r.p.saddr = other.dst;
  r.events.push_back({std::string("ICMP error translated (") + (dst ? "destination" : "source") +
                          "): " + ir::format_addr(r.p.saddr) + " -> " + ir::format_addr(r.p.daddr) +
                          (inner.empty() ? "" : ", quoting " + inner),
                      ""});
}

void ReferenceEngine::Walk::finish(Verdict v, Hook h, const std::string& rw) {
  r.verdict = v;
  r.hook = h;
  r.reject_with = rw;
}

// One base chain: ordered first match over its decision list.
ReferenceEngine::StageOutcome ReferenceEngine::Walk::chain(size_t si, Hook h) {
  const ir::DecisionList& dl = e.pipe_.stages[si];
  Ctx c{e.rs_, e.sets_, e.host_, dl, r, e.touched_sets_, e.nth_, e.recent_, e.nftsets_, e.why_cache_};
  r.jump_cache.clear();
  StageOutcome out;
  out.stage = si;
  bool decided = false;
  size_t i = 0;
  // Only rules that can match are visited; NAT changing addresses or
  // ports turns the index off for the rest of the chain.
  const RuleIndex& ix = e.index_[si];
  use_index = e.opt_.use_index && ix.enabled();
  std::vector<uint32_t> cand;
  size_t cp = 0;
  if (use_index) ix.candidates(r.p, cand);
  const auto& infos = e.info_[si];
  while (i < dl.rules.size()) {
    if (use_index) {
      while (cp < cand.size() && cand[cp] < i) ++cp;
      if (cp == cand.size()) break;
      i = cand[cp];
    }
    const ir::FlatRule& fr = dl.rules[i];
    size_t failed_at = SIZE_MAX;
    if (matches(fr, infos[i], c, failed_at) == Tri::False) {
      i = failed_at < infos[i].region_end.size() ? infos[i].region_end[failed_at] : i + 1;
      continue;
    }
    if (!fr.guard) r.hit_rules.push_back(fr.origin);  // a guard hit: the jump is not taken
    if (!statements(fr, h)) {
      ++i;
      continue;
    }
    if (!r.nat_drop.empty()) {  // a NAT target found no address: NF_DROP
      out.rule = &fr;
      out.action = FlatAction::Drop;
      decided = true;
      break;
    }
    switch (fr.action) {
      case FlatAction::Accept:
      case FlatAction::Drop:
      case FlatAction::Reject:
      case FlatAction::Queue:
        out.rule = &fr;
        out.action = fr.action;
        decided = true;
        break;
      case FlatAction::Continue: ++i; continue;
      case FlatAction::Skip: i = fr.skip_to; continue;
    }
    break;
  }
  if (!decided) {
    out.rule = nullptr;
    out.action = dl.policy == ir::VerdictKind::Drop ? FlatAction::Drop : FlatAction::Accept;
    r.hit_policies.emplace_back(dl.table_index, dl.chain_index);
  }
  return out;
}

// Whether a flattened rule matches (True or False: unknown matches are
// decided by the run's choices). Matches come in a segment per jump/goto on
// the path, each tested once per region.
Tri ReferenceEngine::Walk::matches(const ir::FlatRule& fr, const FlatInfo& fi, const Ctx& c, size_t& failed_at) {
  size_t off = 0;
  Tri res = Tri::True;
  std::string why;
  if (fi.segments_ok) {
    for (size_t k = 0; k < fr.path.size(); ++k) {
      const ir::RuleRef& ref = fr.path[k];
      size_t len = fi.seg_len[k];
      Tri seg;
      if (k < r.jump_cache.size() && r.jump_cache[k].first == fi.region_start[k]) {
        seg = r.jump_cache[k].second;
      } else {
        r.jump_cache.resize(k);
        std::string w;
        seg = eval_range(fr, off, off + len, ref, c, w);
        if (seg == Tri::Unknown) seg = r.choose(&fr, w) ? Tri::True : Tri::False;
        r.jump_cache.emplace_back(fi.region_start[k], seg);
        if (seg == Tri::True) r.hit_rules.push_back(ref);
      }
      off += len;
      if (seg == Tri::False) {
        res = Tri::False;
        failed_at = k;
        break;
      }
    }
  }
  if (res != Tri::False) {
    // The rule's own matches. The trailing entry of a goto re-tests the
    // goto's matches: use what they were when the chain was entered.
    size_t k = fr.path.size();
    if (fi.goto_tail && k < r.jump_cache.size() && r.jump_cache[k].first == fi.region_key) {
      res = r.jump_cache[k].second;
    } else {
      res = eval_range(fr, fi.segments_ok ? off : 0, fr.matches.size(), fr.origin, c, why);
      if (res == Tri::Unknown) res = r.choose(&fr, why) ? Tri::True : Tri::False;
      // A jump's statement entry comes right before its region: its
      // result is the region's jump result. Any other rule at this
      // depth means deeper regions are over.
      if (r.jump_cache.size() > k) r.jump_cache.resize(k);
      if (fi.jump_stmt && fi.segments_ok && r.jump_cache.size() == k) r.jump_cache.emplace_back(fi.region_key, res);
    }
  }
  return res;
}

// The statements of a matching rule, in order. False when one stopped the
// rule (a rate limit over its rate).
bool ReferenceEngine::Walk::statements(const ir::FlatRule& fr, Hook h) {
  std::string at;
  if (!fr.statements.empty())
    at = e.rs_.tables[fr.origin.table].chains[fr.origin.chain].rules[fr.origin.rule].loc.file_line();
  for (const auto& st : fr.statements) {
    switch (st.kind) {
      case ir::StmtKind::Counter: break;
      case ir::StmtKind::Log:
      case ir::StmtKind::Nflog:
        r.events.push_back({std::string(st.kind == ir::StmtKind::Log ? "LOG" : "NFLOG") +
                                (st.text.empty() ? "" : " prefix \"" + st.text + "\""),
                            at});
        break;
      case ir::StmtKind::SetMark:
        r.p.mark = (uint32_t)((r.p.mark & ~st.mask) ^ st.value);
        r.events.push_back({"MARK " + hex(r.p.mark), at});
        break;
      case ir::StmtKind::SetCtMark:
      case ir::StmtKind::SaveMark:
      case ir::StmtKind::RestoreMark: {
        if (!r.ct_done || r.ct.dir < 0 || r.untracked) break;  // no connection: no effect
        uint32_t& cm = r.ct.entry.mark;
        if (st.kind == ir::StmtKind::SetCtMark)
          cm = (uint32_t)((cm & ~st.mask) ^ st.value);
        else if (st.kind == ir::StmtKind::SaveMark)
          cm = (uint32_t)((cm & ~st.mask) ^ (r.p.mark & st.mask));
        else
          r.p.mark = (uint32_t)((r.p.mark & ~st.mask) ^ (cm & st.mask));
        r.events.push_back(
            {st.kind == ir::StmtKind::RestoreMark ? "CONNMARK restore: mark " + hex(r.p.mark) : "CONNMARK " + hex(cm),
             at});
        break;
      }
      case ir::StmtKind::SetTos:  // xt_DSCP's dscp_tg / tos_tg, nft's dscp payload write
        r.p.tos = (uint8_t)((r.p.tos & ~st.mask) ^ st.value);
        r.events.push_back({"TOS " + hex(r.p.tos), at});
        break;
      case ir::StmtKind::Notrack:
        if (!r.ct_done) r.untracked = true;
        r.events.push_back({"NOTRACK", at});
        break;
      case ir::StmtKind::Dnat:
      case ir::StmtKind::Redirect:
      case ir::StmtKind::Snat:
      case ir::StmtKind::Masquerade:
      case ir::StmtKind::Netmap: nat(st, h, at); break;
      case ir::StmtKind::Limit:
        if (!r.choose(&fr, "'" + st.cap + "' depends on the packet rate")) return false;
        break;
      case ir::StmtKind::SetAdd:
        r.touched.push_back(st.text);
        r.events.push_back({"set update (" + st.cap + ") not modelled", at});
        break;
      default: r.events.push_back({"'" + st.cap + "' not modelled", at}); break;
    }
  }
  return true;
}

// A NAT statement on a connection's first packet: sets up the binding for
// the hook's manip type (the packet is rewritten once the nat chains are
// done, nf_nat_packet). DNAT/REDIRECT bind the destination at
// PREROUTING/OUTPUT, SNAT/MASQUERADE the source at POSTROUTING/INPUT; NETMAP
// the side its hook manipulates.
void ReferenceEngine::Walk::nat(const ir::Statement& st, Hook h, const std::string& at) {
  if (!r.ct_done || r.ct.dir < 0 || r.untracked || r.ct.related) return;
  const bool dst = st.kind == ir::StmtKind::Netmap ? (h == Hook::Prerouting || h == Hook::Output)
                                                   : st.kind == ir::StmtKind::Dnat || st.kind == ir::StmtKind::Redirect;
  const char* name = st.kind == ir::StmtKind::Dnat       ? "DNAT"
                     : st.kind == ir::StmtKind::Redirect ? "REDIRECT"
                     : st.kind == ir::StmtKind::Snat     ? "SNAT"
                     : st.kind == ir::StmtKind::Netmap   ? "NETMAP"
                                                         : "MASQUERADE";
  if (dst != (h == Hook::Prerouting || h == Hook::Output)) {
    r.events.push_back({std::string(name) + " is not valid in a " + hook_name(h) + " chain: ignored", at});
    return;
  }
  if (r.ct.entry.status & (dst ? kStDstNatDone : kStSrcNatDone)) return;
  NatRange rg;
  rg.random = st.nat.random;
  rg.fully_random = st.nat.fully_random;
  if (st.nat.ports) rg.proto = true, rg.port_lo = st.nat.ports->first, rg.port_hi = st.nat.ports->second;
  if (rg.port_lo > rg.port_hi) std::swap(rg.port_lo, rg.port_hi);
  std::string guess;
  if (st.kind == ir::StmtKind::Redirect || st.kind == ir::StmtKind::Masquerade) {
    std::optional<u128> a;
    if (st.kind == ir::StmtKind::Masquerade) {
      a = e.host_.masquerade_source((uint8_t)fam, r.p.oif, r.p.daddr);
      if (!a) r.nat_drop = "MASQUERADE: no address to masquerade as on " + (r.p.oif.empty() ? "?" : r.p.oif);
    } else if (h == Hook::Output) {
      a = fam == 4 ? ir::v4_to_u128(0x7f000001) : (u128)1;
    } else {
      bool guessed = false;
      a = e.host_.redirect_target((uint8_t)fam, r.p.iif, r.p.daddr, &guessed);
      if (!a)
        r.nat_drop = "REDIRECT: " + (r.p.iif.empty() ? std::string("the input interface") : r.p.iif) +
                     " has no address to redirect to";
      if (guessed)
        guess = " (the addresses of " + (r.p.iif.empty() ? std::string("the input interface") : r.p.iif) +
                " are not known: a local address stands in)";
    }
    if (!a) {
      r.events.push_back({std::string(name) + ": no address, the kernel drops the packet", at});
      return;
    }
    rg.map_ips = true;
    rg.addr_lo = rg.addr_hi = *a;
  } else if (st.kind == ir::StmtKind::Netmap && st.nat.addrs && !st.nat.addrs->empty()) {
    // xt_NETMAP: netmask = ~(min ^ max); the address the hook's side has now
    // keeps its host bits and takes the prefix's network bits.
    const u128 lo = st.nat.addrs->intervals().front().lo, hi = st.nat.addrs->intervals().back().hi;
    const u128 netmask = ~(lo ^ hi);
    const u128 now = dst ? r.p.daddr : r.p.saddr;
    rg.map_ips = true;
    rg.addr_lo = rg.addr_hi = (now & ~netmask) | (lo & netmask);
  } else if (st.nat.addrs && !st.nat.addrs->empty()) {
    // The kernel's range is min..max (an nft prefix is one such range).
    rg.map_ips = true;
    rg.addr_lo = st.nat.addrs->intervals().front().lo;
    rg.addr_hi = st.nat.addrs->intervals().back().hi;
  }
  bind(rg, dst);
  // "DNAT to 10.0.0.2:80": the manip's side of the tuple the connection now has.
  const CtTuple nt = invert(r.ct.entry.reply);
  const CtChoice& ch = r.ct.entry.choice[dst];
  u128 addr = dst ? nt.dst : nt.src;
  std::string to =
      ch.addr ? "[" + ir::format_addr(ch.addr_lo) + "-" + ir::format_addr(ch.addr_hi) + "]" : ir::format_addr(addr);
  const CtTuple curr = tuple_of(r.p);
  uint16_t port = icmp_proto(nt.proto) ? nt.sport : dst ? nt.dport : nt.sport;
  uint16_t was = icmp_proto(nt.proto) ? curr.sport : dst ? curr.dport : curr.sport;
  if (ch.port)
    to += ":[" + std::to_string(ch.port_lo) + "-" + std::to_string(ch.port_hi) + "]";
  else if ((port_proto(nt.proto) || icmp_proto(nt.proto)) && (rg.proto || port != was))
    to += ":" + std::to_string(port);
  r.events.push_back({std::string(name) + " to " + to + guess, at});
}

// DNAT may have made a packet for this host a packet to forward, or the
// other way round: route again. Locally sent packets are routed again too
// (ip_route_me_harder): to this host over lo, or out.
void ReferenceEngine::Walk::reroute(size_t hi, Hook h) {
  if (r.p.daddr == daddr_in) return;
  if (h == Hook::Prerouting && t.origin == Origin::Incoming && hi + 1 < hooks.size() &&
      (hooks[hi + 1] == Hook::Input || hooks[hi + 1] == Hook::Forward)) {
    hooks.resize(hi + 1);
    auto rest = e.host_.after_prerouting(r.p.family, r.p.daddr, r.p.pkttype);
    hooks.insert(hooks.end(), rest.begin(), rest.end());
    r.p.oif = rest.front() == Hook::Forward ? e.host_.route(r.p.daddr) : std::string();
  } else if (h == Hook::Output && t.origin == Origin::Local) {
    hooks.resize(hi + 1);
    if (e.host_.is_local(r.p.daddr)) {
      hooks.insert(hooks.end(), {Hook::Postrouting, Hook::Prerouting, Hook::Input});
      r.p.oif = "lo";
    } else {
      hooks.insert(hooks.end(), {Hook::Postrouting, Hook::Egress});
      if (auto oif = e.host_.route(r.p.daddr); !oif.empty()) r.p.oif = oif;
    }
  }
}

Decision ReferenceEngine::decide(const pkt::Packet& p, const Traversal& t) {
  if (conntrack_on_ && p.fragment) {
    // nf_defrag reassembles before any rule: the datagram is judged at its
    // first fragment and the others follow.
    auto id = fragment_id(p);
    FragKey key{p.saddr, p.daddr, id.value_or(0), p.l4proto};
    if (p.later_fragment) {
      auto it = frag_decisions_.find(key);
      if (it != frag_decisions_.end() && p.time - it->second.second <= 30) {
        Decision d = it->second.first;
        d.events.clear();
        d.note = "fragment: reassembled with its first fragment before the rules (nf_defrag), shares its verdict";
        return d;
      }
      Decision d;
      d.verdict = Verdict::Drop;
      d.path = t.hooks;
      d.hook = t.hooks.empty()                                          ? Hook::Prerouting
               : t.hooks.front() == Hook::Ingress && t.hooks.size() > 1 ? t.hooks[1]
                                                                        : t.hooks.front();
      d.rule.text = "incomplete datagram: never reassembled (nf_defrag), so no rule sees it";
      d.note = "non-first fragment whose first fragment is not in the capture";
      return d;
    }
    pkt::Packet whole = p;
    whole.fragment = false;
    Decision d = evaluate(whole, t);
    if (frag_decisions_.size() > 100000) frag_decisions_.clear();
    frag_decisions_[key] = {d, p.time};
    return d;
  }
  return evaluate(p, t);
}

namespace {

// Queues a run for each answer after `from` that was true: the same answers
// before it, false at it, the rest decided as the run goes.
void push_alternatives(const ReferenceEngine::Run& r, size_t from, std::vector<std::vector<bool>>& todo) {
  for (size_t i = from; i < r.used && i < r.choices.size(); ++i)
    if (r.choices[i]) {
      std::vector<bool> alt(r.choices.begin(), r.choices.begin() + (long)i);
      alt.push_back(false);
      todo.push_back(std::move(alt));
    }
}

// The header a run's packet leaves with, when NAT changed it (or may have:
// a choice the reference only bounds): Decision::nat.
std::optional<NatTuple> leaves_as(const pkt::Packet& in, const ReferenceEngine::Run& r) {
  const pkt::Packet& p = r.p;
  bool ports = p.has_l4 && port_proto(p.l4proto), id = icmp_has_id(p);
  uint16_t sp = ports ? p.sport : id ? p.icmp_id : 0, dp = ports ? p.dport : id ? p.icmp_id : 0;
  uint16_t sp0 = ports ? in.sport : id ? in.icmp_id : 0, dp0 = ports ? in.dport : id ? in.icmp_id : 0;
  const CtChoice &cs = r.nat_choice[0], &cd = r.nat_choice[1];
  bool choice = cs.addr || cs.port || cd.addr || cd.port;
  if (!choice && p.saddr == in.saddr && p.daddr == in.daddr && sp == sp0 && dp == dp0) return std::nullopt;
  NatTuple n = NatTuple::exact(p.saddr, p.daddr, sp, dp, ports || id);
  if (cs.addr) n.src_lo = cs.addr_lo, n.src_hi = cs.addr_hi;
  if (cd.addr) n.dst_lo = cd.addr_lo, n.dst_hi = cd.addr_hi;
  // An ICMP identifier is one value carried in both port fields.
  if (cs.port || (id && cd.port)) {
    const CtChoice& c = cs.port ? cs : cd;
    n.sport_lo = c.port_lo, n.sport_hi = c.port_hi;
    if (id) n.dport_lo = c.port_lo, n.dport_hi = c.port_hi;
  }
  if (cd.port && !id) n.dport_lo = cd.port_lo, n.dport_hi = cd.port_hi;
  return n;
}

// The smallest tuple allowing both.
NatTuple hull(const NatTuple& a, const NatTuple& b) {
  NatTuple n = a;
  n.src_lo = std::min(a.src_lo, b.src_lo), n.src_hi = std::max(a.src_hi, b.src_hi);
  n.dst_lo = std::min(a.dst_lo, b.dst_lo), n.dst_hi = std::max(a.dst_hi, b.dst_hi);
  n.sport_lo = std::min(a.sport_lo, b.sport_lo), n.sport_hi = std::max(a.sport_hi, b.sport_hi);
  n.dport_lo = std::min(a.dport_lo, b.dport_lo), n.dport_hi = std::max(a.dport_hi, b.dport_hi);
  return n;
}

}  // namespace

Decision ReferenceEngine::evaluate(const pkt::Packet& p, const Traversal& t) {
  // Explore every answer to the matches a capture cannot decide.
  std::vector<Run> runs;
  runs.emplace_back();
  runs[0].p = p;
  run(runs[0], t);
  std::vector<std::vector<bool>> todo;
  push_alternatives(runs[0], 0, todo);
  bool exhausted = false;
  while (!todo.empty()) {
    if (runs.size() >= opt_.max_branches) {
      exhausted = true;
      break;
    }
    Run r;
    r.p = p;
    r.choices = std::move(todo.back());
    todo.pop_back();
    size_t given = r.choices.size();
    run(r, t);
    push_alternatives(r, given, todo);
    runs.push_back(std::move(r));
  }

  Run& first = runs[0];
  Decision d;
  d.path = first.path;
  d.hook = first.hook;
  d.verdict = first.verdict;
  d.reject_with = first.reject_with;
  d.events = first.events;
  if (conntrack_on_) {
    if (first.untracked)
      d.ct_state = "UNTRACKED";
    else if (first.ct_done)
      d.ct_state = first.ct.state_name();
  }
  if (conntrack_on_ && first.ct_done && !first.untracked && first.ct.state == ir::kCtInvalid && !first.ct.why.empty())
    d.note = "INVALID: " + first.ct.why;
  if (!first.nat_drop.empty()) d.note = first.nat_drop;
  d.rule = deciding_rule(first);
  if (first.confirm_clash) {
    d.rule = RuleInfo{};
    d.rule.text = "conntrack confirmation: the reply tuple is another connection's, so the kernel drops the packet";
    d.note = "reply tuple " + ir::format_addr(first.ct.entry.reply.src) + ":" +
             std::to_string(first.ct.entry.reply.sport) + " -> " + ir::format_addr(first.ct.entry.reply.dst) + ":" +
             std::to_string(first.ct.entry.reply.dport) + " is taken (NAT found no free tuple)";
  }
  if (d.rule.empty()) d.rule.text = "no base chain on this path: accepted";
  if (first.verdict == Verdict::Accept) {
    // What leaves. When undecidable matches chose the NAT rule (statistic,
    // recent ...), every translation a run found is allowed.
    d.nat = leaves_as(p, first);
    auto as_tuple = [&](const Run& r) {
      if (auto n = leaves_as(p, r)) return *n;
      bool ports = p.has_l4 && port_proto(p.l4proto), id = icmp_has_id(p);
      uint16_t sp = ports ? p.sport : id ? p.icmp_id : 0, dp = ports ? p.dport : id ? p.icmp_id : 0;
      return NatTuple::exact(p.saddr, p.daddr, sp, dp, ports || id);
    };
    bool differs = false;
    for (size_t i = 1; i < runs.size(); ++i)
      if (runs[i].verdict == Verdict::Accept && leaves_as(p, runs[i]) != d.nat) {
        differs = true;
        d.nat = hull(d.nat ? *d.nat : as_tuple(first), as_tuple(runs[i]));
      }
    if (differs && first.unknowns.front().first)
      d.note = "the translation depends on " + rule_info(first.unknowns.front().first->origin, {}).location + " (" +
               first.unknowns.front().second + "): any of them is allowed";
  }
  if (first.verdict == Verdict::Accept) {
    // Report the hook of the chain whose rule (or policy) accepted it.
    for (auto it = first.outcomes.rbegin(); it != first.outcomes.rend(); ++it)
      if (outcome_info(*it).location == d.rule.location && outcome_info(*it).text == d.rule.text) {
        d.hook = pipe_.stages[it->stage].hook;
        break;
      }
  }
  explain_unknowns(d, runs, exhausted);
  widen_binding(runs);
  // An nth counter, a -m recent list, an nft set the packet path writes: each
  // is known afterwards only when every explored run (and any not explored)
  // leaves it the same.
  auto agree = [&](auto member, const auto& committed) {
    for (const auto& r : runs)
      for (const auto& [k, v] : r.*member) {
        using Value = typename std::decay_t<decltype(committed)>::mapped_type;
        auto after = [&](const Run& x) -> std::optional<Value> {
          if (auto it = (x.*member).find(k); it != (x.*member).end()) return it->second;
          if (auto it = committed.find(k); it != committed.end()) return it->second;
          return std::nullopt;  // untouched
        };
        bool same = !exhausted;
        for (const auto& o : runs) same &= after(o) == after(r);
        if (!same) (first.*member)[k] = std::nullopt;
      }
  };
  agree(&Run::nth, nth_);
  agree(&Run::recent, recent_);
  agree(&Run::nftsets, nftsets_);
  commit(first, p.time);
  return d;
}

// When undecidable matches chose between NAT rules (kube-proxy's
// `-m statistic` backends ...), the connection committed is the first run's,
// but the kernel's binding may be any run's: the binding becomes a choice
// over all of them, so later packets are reported as that range and the
// first reply pins it (Conntrack::find_reply).
void ReferenceEngine::widen_binding(std::vector<Run>& runs) const {
  Run& first = runs[0];
  if (!conntrack_on_ || !first.ct_done || first.untracked || !first.ct.is_new || first.verdict != Verdict::Accept)
    return;
  CtEntry& en = first.ct.entry;
  const bool icmp = en.orig.proto == 1 || en.orig.proto == 58;
  auto widen = [](bool& on, auto& lo, auto& hi, auto base, auto v) {
    if (!on && v == base) return false;
    if (!on) on = true, lo = hi = base;
    lo = std::min(lo, v), hi = std::max(hi, v);
    return true;
  };
  for (size_t i = 1; i < runs.size(); ++i) {
    const Run& r = runs[i];
    if (r.verdict != Verdict::Accept || !r.ct_done || r.untracked || !r.ct.is_new) continue;
    const CtTuple& o = r.ct.entry.reply;
    CtChoice& d = en.choice[1];
    CtChoice& s = en.choice[0];
    bool dn = widen(d.addr, d.addr_lo, d.addr_hi, en.reply.src, o.src);
    if (!icmp) dn |= widen(d.port, d.port_lo, d.port_hi, en.reply.sport, o.sport);  // (ICMP: the id, below)
    bool sn = widen(s.addr, s.addr_lo, s.addr_hi, en.reply.dst, o.dst);
    sn |= widen(s.port, s.port_lo, s.port_hi, icmp ? en.reply.sport : en.reply.dport, icmp ? o.sport : o.dport);
    if (dn) en.status |= kStDnat;
    if (sn) en.status |= kStSnat;
  }
}

RuleInfo ReferenceEngine::outcome_info(const StageOutcome& o) const {
  const auto& dl = pipe_.stages[o.stage];
  return o.rule ? rule_info(o.rule->origin, o.rule->path) : policy_info(dl);
}

// The deciding rule: what ended the packet; for ACCEPT the last explicit
// ACCEPT on the path, else the last policy of a chain that had rules.
RuleInfo ReferenceEngine::deciding_rule(const Run& r) const {
  if (r.outcomes.empty()) return {};
  if (r.verdict != Verdict::Accept) return outcome_info(r.outcomes.back());
  // A nat chain's rule binds NAT, it does not accept: skip them.
  auto nat = [&](const StageOutcome& o) { return pipe_.stages[o.stage].type == ir::ChainType::Nat; };
  for (auto it = r.outcomes.rbegin(); it != r.outcomes.rend(); ++it)
    if (it->rule && !nat(*it)) return outcome_info(*it);
  for (auto it = r.outcomes.rbegin(); it != r.outcomes.rend(); ++it)
    if (!pipe_.stages[it->stage].rules.empty() && !nat(*it)) return outcome_info(*it);
  for (auto it = r.outcomes.rbegin(); it != r.outcomes.rend(); ++it)
    if (!nat(*it)) return outcome_info(*it);
  return outcome_info(r.outcomes.back());
}

// When the first run met matches it could not decide: INDETERMINATE if the
// verdict depends on them, a note if only the deciding rule does.
void ReferenceEngine::explain_unknowns(Decision& d, const std::vector<Run>& runs, bool exhausted) const {
  const Run& first = runs[0];
  bool same = true, same_rule = true;
  for (size_t i = 1; i < runs.size(); ++i) {
    if (runs[i].verdict != first.verdict || runs[i].reject_with != first.reject_with) same = false;
    RuleInfo ri = deciding_rule(runs[i]);
    if (ri.location != d.rule.location || ri.text != d.rule.text) same_rule = false;
  }
  if (first.unknowns.empty()) return;
  const auto& [fr, why] = first.unknowns.front();
  std::string where = fr ? rule_info(fr->origin, {}).location : std::string();
  if (exhausted || !same) {
    d.verdict = Verdict::Indeterminate;
    std::string outcomes;
    for (const auto& r : runs) {
      std::string v = to_string(r.verdict);
      if (outcomes.find(v) == std::string::npos) outcomes += (outcomes.empty() ? "" : " or ") + v;
    }
    d.note = exhausted ? "too many undecidable matches on this packet's path (first: " + where + ": " + why + ")"
                       : where + ": " + why + ": the verdict is " + outcomes + " depending on it";
    if (fr) d.rule = rule_info(fr->origin, fr->path);
  } else if (!same_rule) {
    d.note = "the deciding rule depends on " + where + " (" + why + "); the verdict does not";
  }
}

// Commits the first run: hit counters, conntrack, dynamic sets.
void ReferenceEngine::commit(const Run& first, double time) {
  std::vector<ir::RuleRef> hits = first.hit_rules;
  std::sort(hits.begin(), hits.end());
  hits.erase(std::unique(hits.begin(), hits.end()), hits.end());
  for (const auto& h : hits) ++rule_hits_[h.table][h.chain][h.rule];
  auto pols = first.hit_policies;
  std::sort(pols.begin(), pols.end());
  pols.erase(std::unique(pols.begin(), pols.end()), pols.end());
  for (const auto& [tt, cc] : pols) ++policy_hits_[tt][cc];
  for (const auto& s : first.touched) touched_sets_.insert(s);
  for (const auto& [k, v] : first.nth) nth_[k] = v;
  for (const auto& [k, v] : first.recent) recent_[k] = v;
  for (const auto& [k, v] : first.nftsets) nftsets_[k] = v;
  if (conntrack_on_ && first.ct_done && !first.untracked) ct_.commit(first.ct, first.verdict == Verdict::Accept, time);
}

}  // namespace nf2bpf::verify
