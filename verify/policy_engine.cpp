#include "verify/policy_engine.h"

#include <algorithm>
#include <cmath>
#include <map>

namespace nf2bpf::verify {

namespace {

ir::Hook hook_of(uint8_t h) {
  switch (h) {
    case NF_HOOK_PREROUTING: return ir::Hook::Prerouting;
    case NF_HOOK_INPUT: return ir::Hook::Input;
    case NF_HOOK_FORWARD: return ir::Hook::Forward;
    case NF_HOOK_OUTPUT: return ir::Hook::Output;
    case NF_HOOK_POSTROUTING: return ir::Hook::Postrouting;
  }
  return ir::Hook::Input;
}

const char* ct_name(uint8_t s) {
  switch (s) {
    case ir::kCtInvalid: return "INVALID";
    case ir::kCtEstablished: return "ESTABLISHED";
    case ir::kCtRelated: return "RELATED";
    case ir::kCtNew: return "NEW";
    case ir::kCtUntracked: return "UNTRACKED";
  }
  return "";
}

}  // namespace

PolicyEngine::PolicyEngine(const policy::Policy& pol, const HostModel& host, std::string name)
    : pol_(pol), host_(host), name_(std::move(name)) {
  model::ModelEnv env;
  env.addrtype = [this](const ir::u128& a) { return (uint32_t)host_.addr_type(a); };
  env.route = [this](uint8_t, const ir::u128& dst) -> std::optional<std::string> {
    if (host_.is_local(dst)) return std::string();
    std::string oif = host_.route(dst);
    return oif.empty() ? std::string("(default route)") : oif;
  };
  env.source_address = [this](uint8_t fam, const std::string& oif, const ir::u128& dst) {
    return host_.masquerade_source(fam, oif, dst);
  };
  env.iface_address = [this](uint8_t fam, const std::string& ifname) {
    bool guessed = false;
    return host_.redirect_target(fam, ifname, fam == 4 ? ir::v4_to_u128(0x08080808) : (ir::u128)0x2000 << 112,
                                 &guessed);
  };
  model_ = std::make_unique<model::Model>(pol_, env);
}

Decision describe(const policy::Policy& pol_, const model::Decision& md) {
  Decision d;
  d.verdict = md.action == NF_ACT_DROP ? Verdict::Drop : md.action == NF_ACT_REJECT ? Verdict::Reject : Verdict::Accept;
  if (md.indeterminate) {
    d.verdict = Verdict::Indeterminate;
    d.note = "a rate-limited or random rule took part in the compiled policy's decision";
  }
  if (md.stage < pol_.stages.size()) d.hook = hook_of(pol_.stages[md.stage].hook);
  if (md.by_policy && md.stage < pol_.stage_origins.size()) {
    const auto& o = pol_.stage_origins[md.stage];
    d.rule.location = o.location;
    d.rule.chain = o.table + "/" + o.chain;
    d.rule.policy = true;
    bool drop = pol_.stages[md.stage].policy == NF_ACT_DROP;
    d.rule.text = ":" + o.chain + (drop ? " DROP" : " ACCEPT") + " (policy of " + d.rule.chain + ")";
  } else if (!md.by_policy && md.rule < pol_.origins.size()) {
    const auto& o = pol_.origins[md.rule];
    d.rule.location = o.location;
    d.rule.text = o.text;
    d.rule.chain = o.table + "/" + o.chain;
    if (d.verdict == Verdict::Reject && md.rule < pol_.rules.size())
      d.reject_with = pol_.rules[md.rule].reject_type ? policy::reject_name(pol_.rules[md.rule].reject_type) : "";
  } else {
    d.rule.text = "no stage on this path: accepted";
  }
  d.ct_state = ct_name(md.ctstate);
  return d;
}

model::Decision combine_forward(model::Decision md, model::Decision post) {
  if (md.action != NF_ACT_ACCEPT || md.indeterminate) return md;
  bool explicit_accept = !post.by_policy && post.stage != UINT32_MAX;
  post.translated |= md.translated;
  if (post.action != NF_ACT_ACCEPT || post.indeterminate || explicit_accept) {
    post.ctstate = md.ctstate;
    return post;
  }
  md.out = post.out;
  md.translated = post.translated;
  return md;
}

// The header the packet leaves with, when NAT changed it.
std::optional<NatTuple> nat_of(const pkt::Packet& in, const model::Decision& md) {
  if (!md.translated || md.action != NF_ACT_ACCEPT) return std::nullopt;
  const pkt::Packet& o = md.out;
  bool icmp = o.has_l4 && (o.l4proto == 1 || o.l4proto == 58) && !o.inner;
  bool ports = o.has_l4 && !icmp && o.l4proto != 1 && o.l4proto != 58;
  uint16_t sp = ports ? o.sport : icmp ? o.icmp_id : 0, dp = ports ? o.dport : icmp ? o.icmp_id : 0;
  uint16_t isp = ports ? in.sport : icmp ? in.icmp_id : 0, idp = ports ? in.dport : icmp ? in.icmp_id : 0;
  if (o.saddr == in.saddr && o.daddr == in.daddr && sp == isp && dp == idp) return std::nullopt;
  return NatTuple::exact(o.saddr, o.daddr, sp, dp, ports || icmp);
}

Decision PolicyEngine::decide(const pkt::Packet& p, const Traversal& t) {
  uint64_t now = (uint64_t)std::llround(p.time * 1e9);
  bool forward = std::find(t.hooks.begin(), t.hooks.end(), ir::Hook::Forward) != t.hooks.end();
  Decision d;
  bool to_self = std::find(t.hooks.begin(), t.hooks.end(), ir::Hook::Input) != t.hooks.end();
  if (t.origin == Origin::Local) {
    // lo's egress program judges OUTPUT and POSTROUTING; a packet to this
    // host comes back in on lo, whose ingress program judges PREROUTING and
    // INPUT.
    auto md = model_->decide(p, model::Path::Output, now);
    if (md.action == NF_ACT_ACCEPT && !md.indeterminate && md.forwarded) {
      // nat OUTPUT changed the destination: routed again, POSTROUTING on
      // the new route's device (lo: back to this host).
      to_self = md.out.oif == "lo";
      pkt::Packet out = md.out;
      out.mark = md.mark;
      md = combine_forward(md, model_->decide(out, model::Path::PostForward, now));
    }
    if (to_self && md.action == NF_ACT_ACCEPT && !md.indeterminate) {
      pkt::Packet back = md.out;
      back.mark = md.mark;
      auto in = model_->decide(back, model::Path::Looped, now);
      in.translated |= md.translated;
      if (in.action != NF_ACT_ACCEPT || in.indeterminate || in.stage != UINT32_MAX) md = in;
    }
    d = describe(pol_, md);
    d.nat = nat_of(p, md);
  } else {
    // TC ingress judges PREROUTING and then FORWARD or INPUT (routing after
    // PREROUTING's destination NAT); a forwarded packet's egress program
    // judges POSTROUTING.
    auto md = model_->decide(p, forward ? model::Path::Forward : model::Path::Input, now);
    if (md.action == NF_ACT_ACCEPT && !md.indeterminate && md.forwarded) {
      pkt::Packet out = md.out;
      out.mark = md.mark;
      md = combine_forward(md, model_->decide(out, model::Path::PostForward, now));
    }
    d = describe(pol_, md);
    d.nat = nat_of(p, md);
  }
  d.path = t.hooks;
  return d;
}

std::vector<RuleHits> PolicyEngine::hits() const { return rule_hits(pol_, model_->hits()); }

std::vector<RuleHits> rule_hits(const policy::Policy& pol_, const std::vector<uint64_t>& h) {
  // Compiled rules may share a source rule: report per source rule.
  std::vector<RuleHits> out;
  std::map<std::string, size_t> index;
  auto add = [&](const std::string& loc, const std::string& text, const std::string& chain, bool policy, uint64_t n) {
    std::string key = loc + "\n" + text;
    auto it = index.find(key);
    if (it == index.end()) {
      index[key] = out.size();
      out.push_back({loc, text, chain, policy, n});
    } else {
      out[it->second].hits += n;
    }
  };
  for (size_t i = 0; i < pol_.rules.size() && i < pol_.origins.size(); ++i) {
    const auto& o = pol_.origins[i];
    add(o.location, o.text, o.table + "/" + o.chain, false, i < h.size() ? h[i] : 0);
  }
  for (size_t s = 0; s < pol_.stages.size() && s < pol_.stage_origins.size(); ++s) {
    const auto& o = pol_.stage_origins[s];
    uint32_t c = pol_.stages[s].policy_counter;
    bool drop = pol_.stages[s].policy == NF_ACT_DROP;
    add(o.location, ":" + o.chain + (drop ? " DROP" : " ACCEPT") + " (policy)", o.table + "/" + o.chain, true,
        c < h.size() ? h[c] : 0);
  }
  return out;
}

}  // namespace nf2bpf::verify
