#include "verify/reference.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "common/strings.h"
#include "verify/parse.h"

namespace nf2bpf::verify {

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
  bool dst_nat_done = false, src_nat_done = false;
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
  std::vector<std::pair<ir::RuleRef, Tri>> jump_cache;

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
  for (size_t i = 0; i < pipe.stages.size(); ++i)
    for (int fam : {4, 6})
      if (family_sees(pipe.stages[i].family, fam)) stages_[{pipe.stages[i].hook, fam}].push_back(i);
  for (auto& [k, v] : stages_)
    std::stable_sort(v.begin(), v.end(),
                     [&](size_t a, size_t b) { return pipe.stages[a].priority < pipe.stages[b].priority; });
  index_.reserve(pipe.stages.size());
  info_.resize(pipe.stages.size());
  for (size_t si = 0; si < pipe.stages.size(); ++si) {
    index_.emplace_back(pipe.stages[si]);
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
      fi.goto_tail = fr.action == FlatAction::Skip && !fr.guard && src.verdict.kind == ir::VerdictKind::Goto;
      fi.jump_stmt = jumps && fr.action == FlatAction::Continue;
      info_[si].push_back(std::move(fi));
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
  const HostModel& host;
  const ir::DecisionList& dl;
  ReferenceEngine::Run& r;
  const std::set<std::string>& touched_sets;
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
    case Field::SrcAddrType: return c.host.addr_type(p.saddr);
    case Field::DstAddrType: return c.host.addr_type(p.daddr);
    case Field::PktType: {
      // xt_pkttype: the link-layer type; without one (raw IP, OUTPUT) the
      // destination address says broadcast/multicast.
      if (p.has_l2 && p.pkttype != pkt::PktType::Host) return (u128)p.pkttype;
      uint16_t at = c.host.addr_type(p.daddr);
      if (at == ir::kAddrMulticast) return (u128)pkt::PktType::Multicast;
      if (at == ir::kAddrBroadcast) return (u128)pkt::PktType::Broadcast;
      return (u128)pkt::PktType::Host;
    }
    case Field::Length: return p.length;
    case Field::Ttl: return p.ttl;
    case Field::Dscp: return p.dscp;
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
  if (m.module == "multiport" && !m.args.empty() && m.args[0].first == "--ports") {
    const auto* s = std::get_if<ir::IntervalSet>(&m.value);
    if (!s || !p.has_l4 || !port_proto(p.l4proto)) return Tri::False;
    bool hit = s->contains(p.sport) || s->contains(p.dport);
    return hit != m.negated ? Tri::True : Tri::False;
  }
  if (m.cap == "-m tcp --tcp-option" && !m.args.empty()) {
    uint64_t kind = std::strtoull(m.args[0].second.c_str(), nullptr, 0);
    if (p.l4proto != 6 || !p.has_l4) return Tri::False;
    auto has = has_tcp_option(p, (unsigned)kind);
    if (!has) {
      why = "TCP options are not in the capture";
      return Tri::Unknown;
    }
    return *has != m.negated ? Tri::True : Tri::False;
  }
  if (m.cap == "-m conntrack --ctstatus" && !m.args.empty()) {
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
  if (m.cap == "-m conntrack --ctexpire" && !m.args.empty()) {
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
  if (m.cap == "-m conntrack --ctstate SNAT,DNAT" && !m.args.empty()) {
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
  why = "'" + (m.args.empty() ? m.cap : "-m " + m.module + " " + arg_text(m)) + "'";
  if (m.module == "limit" || m.module == "hashlimit")
    why += " depends on the packet rate";
  else if (m.module == "statistic")
    why += " depends on sampling";
  else if (m.module == "recent" || m.module == "connlimit")
    why += " depends on state outside the capture";
  else if (m.module == "owner")
    why += " depends on the sending socket";
  else if (m.module == "set")
    why += " depends on ipset counters";
  else
    why += " cannot be evaluated from a capture";
  return Tri::Unknown;
}

Tri eval_set(const ir::Match& m, const ir::SetRef& ref, const Ctx& c, std::string& why) {
  const ir::Set* set = c.rs.find_set(c.rs.tables[c.dl.table_index], ref.name);
  if (!set) return Tri::False;  // the front-end reported it
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

Tri eval_range(const ir::FlatRule& fr, size_t from, size_t to, const Ctx& c, std::string& why) {
  Tri res = Tri::True;
  for (size_t i = from; i < to && i < fr.matches.size(); ++i) {
    std::string w;
    Tri t = eval_match(fr.matches[i], c, w);
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

  void run();
  bool hook(size_t hi);
  void conntrack();
  void manip(bool dst);
  void finish(Verdict v, Hook h, const std::string& rw);
  StageOutcome chain(size_t si, Hook h);
  Tri matches(const ir::FlatRule& fr, const FlatInfo& fi, const Ctx& c);
  bool statements(const ir::FlatRule& fr, Hook h);
  void nat(const ir::Statement& st, Hook h, const std::string& at);
  void reroute(size_t hi, Hook h);

  const ReferenceEngine& e;
  Run& r;
  const Traversal& t;
  const int fam;
  std::vector<Hook> hooks;
  const u128 daddr_in;
  bool use_index = false;  // of the chain being evaluated; NAT turns it off
};

void ReferenceEngine::run(Run& r, const Traversal& t) const { Walk(*this, r, t).run(); }

void ReferenceEngine::Walk::run() {
  r.ct_model = e.conntrack_on_;
  for (size_t hi = 0; hi < hooks.size(); ++hi)
    if (!hook(hi)) return;
  finish(Verdict::Accept, hooks.empty() ? Hook::Input : hooks.back(), "");
}

// The base chains of one hook, in priority order, with conntrack and the
// NAT rewrites of established connections between them. False when a chain
// ended the packet.
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
  const bool dst_hook = h == Hook::Prerouting || h == Hook::Output;
  const bool src_hook = h == Hook::Postrouting || h == Hook::Input;
  bool manip_done = false;
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
    if (!manip_done && ((dst_hook && dl.priority > -100) || (src_hook && dl.priority > 100))) {
      manip(dst_hook);
      manip_done = true;
    }
    if (dl.type == ir::ChainType::Nat) {
      // NAT chains see only the packet that creates a connection, once per
      // manipulation type (destination: PREROUTING/OUTPUT, source:
      // POSTROUTING/INPUT).
      bool first = e.conntrack_on_ && r.ct_done && !r.untracked && r.ct.dir >= 0 && r.ct.is_new;
      if (!first || (dst_hook && r.dst_nat_done) || (src_hook && r.src_nat_done)) continue;
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
  if (!manip_done && (dst_hook || src_hook)) manip(dst_hook);
  if (dst_hook) r.dst_nat_done = true;
  if (src_hook) r.src_nat_done = true;
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
  r.ct = e.ct_.classify(r.p, r.p.time);
  if (r.ct.state == ir::kCtUntracked) r.untracked = true;
}

// Rewrites for packets of an existing NATed connection (the first packet is
// rewritten by the nat rule itself).
void ReferenceEngine::Walk::manip(bool dst) {
  if (!e.conntrack_on_ || !r.ct_done || r.untracked || r.ct.dir < 0 || r.ct.is_new || r.ct.related) return;
  const CtEntry& en = r.ct.entry;
  CtTuple want = r.ct.dir == 0 ? invert(en.reply) : invert(en.orig);  // what the packet must become
  bool ports = port_proto(r.p.l4proto) && r.p.has_l4;
  if (dst) {
    r.p.daddr = want.dst;
    if (ports) r.p.dport = want.dport;
  } else {
    r.p.saddr = want.src;
    if (ports) r.p.sport = want.sport;
  }
}

void ReferenceEngine::Walk::finish(Verdict v, Hook h, const std::string& rw) {
  r.verdict = v;
  r.hook = h;
  r.reject_with = rw;
}

// One base chain: ordered first match over its decision list.
ReferenceEngine::StageOutcome ReferenceEngine::Walk::chain(size_t si, Hook h) {
  const ir::DecisionList& dl = e.pipe_.stages[si];
  Ctx c{e.rs_, e.host_, dl, r, e.touched_sets_};
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
    if (matches(fr, infos[i], c) == Tri::False) {
      ++i;
      continue;
    }
    if (!fr.guard) r.hit_rules.push_back(fr.origin);  // a guard hit: the jump is not taken
    if (!statements(fr, h)) {
      ++i;
      continue;
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
Tri ReferenceEngine::Walk::matches(const ir::FlatRule& fr, const FlatInfo& fi, const Ctx& c) {
  size_t off = 0;
  Tri res = Tri::True;
  std::string why;
  if (fi.segments_ok) {
    for (size_t k = 0; k < fr.path.size(); ++k) {
      const ir::RuleRef& ref = fr.path[k];
      size_t len = fi.seg_len[k];
      Tri seg;
      if (k < r.jump_cache.size() && r.jump_cache[k].first == ref) {
        seg = r.jump_cache[k].second;
      } else {
        r.jump_cache.resize(k);
        std::string w;
        seg = eval_range(fr, off, off + len, c, w);
        if (seg == Tri::Unknown) seg = r.choose(&fr, w) ? Tri::True : Tri::False;
        r.jump_cache.emplace_back(ref, seg);
        if (seg == Tri::True) r.hit_rules.push_back(ref);
      }
      off += len;
      if (seg == Tri::False) {
        res = Tri::False;
        break;
      }
    }
  }
  if (res != Tri::False) {
    // The rule's own matches. The trailing entry of a goto re-tests the
    // goto's matches: use what they were when the chain was entered.
    size_t k = fr.path.size();
    if (fi.goto_tail && k < r.jump_cache.size() && r.jump_cache[k].first == fr.origin) {
      res = r.jump_cache[k].second;
    } else {
      res = eval_range(fr, fi.segments_ok ? off : 0, fr.matches.size(), c, why);
      if (res == Tri::Unknown) res = r.choose(&fr, why) ? Tri::True : Tri::False;
      // A jump's statement entry comes right before its region: its
      // result is the region's jump result. Any other rule at this
      // depth means deeper regions are over.
      if (r.jump_cache.size() > k) r.jump_cache.resize(k);
      if (fi.jump_stmt && fi.segments_ok && r.jump_cache.size() == k) r.jump_cache.emplace_back(fr.origin, res);
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
      case ir::StmtKind::Notrack:
        if (!r.ct_done) r.untracked = true;
        r.events.push_back({"NOTRACK", at});
        break;
      case ir::StmtKind::Dnat:
      case ir::StmtKind::Redirect:
      case ir::StmtKind::Snat:
      case ir::StmtKind::Masquerade: nat(st, h, at); break;
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

// The first packet of a connection: the NAT statement rewrites it and sets
// the connection's reply tuple.
void ReferenceEngine::Walk::nat(const ir::Statement& st, Hook h, const std::string& at) {
  if (!r.ct_done || r.ct.dir < 0 || !r.ct.is_new || r.untracked) return;
  bool dst = st.kind == ir::StmtKind::Dnat || st.kind == ir::StmtKind::Redirect;
  std::optional<u128> addr;
  if (st.nat.addrs && !st.nat.addrs->empty()) addr = st.nat.addrs->intervals()[0].lo;
  if (st.kind == ir::StmtKind::Redirect)
    addr = h == Hook::Output ? (fam == 4 ? ir::v4_to_u128(0x7f000001) : (u128)1)
                             : e.host_.local_address((uint8_t)fam, r.p.iif).value_or(r.p.daddr);
  if (st.kind == ir::StmtKind::Masquerade) addr = e.host_.local_address((uint8_t)fam, r.p.oif);
  bool ports = port_proto(r.p.l4proto) && r.p.has_l4;
  std::optional<uint16_t> port;
  if (st.nat.ports && ports) port = st.nat.ports->first;
  CtEntry& en = r.ct.entry;
  use_index = false;  // addresses or ports change under the index
  if (dst) {
    if (addr) en.reply.src = *addr, r.p.daddr = *addr;
    if (port) en.reply.sport = *port, r.p.dport = *port;
    en.status |= kStDnat;
  } else {
    if (addr) en.reply.dst = *addr, r.p.saddr = *addr;
    if (port) en.reply.dport = *port, r.p.sport = *port;
    en.status |= kStSnat;
  }
  std::string to = addr ? ir::format_addr(*addr) : std::string("(unchanged)");
  if (port) to += ":" + std::to_string(*port);
  r.events.push_back({std::string(st.kind == ir::StmtKind::Dnat       ? "DNAT"
                                  : st.kind == ir::StmtKind::Redirect ? "REDIRECT"
                                  : st.kind == ir::StmtKind::Snat     ? "SNAT"
                                                                      : "MASQUERADE") +
                          " to " + to,
                      at});
}

// DNAT may have made a packet for this host a packet to forward, or the
// other way round: route again.
void ReferenceEngine::Walk::reroute(size_t hi, Hook h) {
  if (h == Hook::Prerouting && t.origin == Origin::Incoming && r.p.daddr != daddr_in && hi + 1 < hooks.size() &&
      (hooks[hi + 1] == Hook::Input || hooks[hi + 1] == Hook::Forward)) {
    hooks.resize(hi + 1);
    auto rest = e.host_.after_prerouting(r.p.daddr, r.p.pkttype);
    hooks.insert(hooks.end(), rest.begin(), rest.end());
    r.p.oif = rest.front() == Hook::Forward ? e.host_.route(r.p.daddr) : std::string();
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
  d.rule = deciding_rule(first);
  if (d.rule.empty()) d.rule.text = "no base chain on this path: accepted";
  if (first.verdict == Verdict::Accept) {
    // Report the hook of the chain whose rule (or policy) accepted it.
    for (auto it = first.outcomes.rbegin(); it != first.outcomes.rend(); ++it)
      if (outcome_info(*it).location == d.rule.location && outcome_info(*it).text == d.rule.text) {
        d.hook = pipe_.stages[it->stage].hook;
        break;
      }
  }
  explain_unknowns(d, runs, exhausted);
  commit(first, p.time);
  return d;
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
  for (auto it = r.outcomes.rbegin(); it != r.outcomes.rend(); ++it)
    if (it->rule) return outcome_info(*it);
  for (auto it = r.outcomes.rbegin(); it != r.outcomes.rend(); ++it)
    if (!pipe_.stages[it->stage].rules.empty()) return outcome_info(*it);
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
  if (conntrack_on_ && first.ct_done && !first.untracked) ct_.commit(first.ct, first.verdict == Verdict::Accept, time);
}

}  // namespace nf2bpf::verify
