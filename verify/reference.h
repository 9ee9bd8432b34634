// The reference evaluator: runs a ruleset's decision lists (ir::Pipeline) on
// packets the way netfilter would, with a connection tracking model carried
// from one packet to the next. It is the "what netfilter does" side of diff.
//
// Semantics:
//  - the hooks a packet meets come from HostModel::place (PREROUTING > INPUT,
//    PREROUTING > FORWARD > POSTROUTING, OUTPUT > POSTROUTING, loopback);
//    within a hook every base chain of the packet's family runs in priority
//    order; ACCEPT ends only that base chain, DROP/REJECT/QUEUE end the packet;
//  - inside a chain: ordered first match; statements (MARK, CONNMARK, LOG ...)
//    run when their rule matches and later rules see their effect; Skip
//    entries (RETURN, the end of a goto) continue at their target; when no
//    terminal rule matches, the chain's policy decides;
//  - conntrack runs between the raw (priority < -200) and later chains of
//    PREROUTING/OUTPUT; NOTRACK before it makes the packet UNTRACKED; an
//    entry is confirmed only when its first packet is accepted;
//  - NAT as nf_nat_core.c does it: once the family has a nat chain, the NAT
//    hook runs at priority -100 (PREROUTING/OUTPUT: destination) and +100
//    (INPUT/POSTROUTING: source), and the nat chains of that hook run inside
//    it in their own priority order, only for a connection not yet bound at
//    that manip type, until one binds; otherwise the null binding. The
//    binding picks a unique tuple (get_unique_tuple: a source port is kept
//    unless the reply tuple is taken, then searched); the packet, and every
//    later packet of the connection in both directions, is rewritten from
//    the binding; ICMP errors about a NATed connection are translated outer
//    and inner; DNAT re-routes (INPUT vs FORWARD, OUTPUT to lo or out).
//    Choices the kernel makes by hash or at random are reported as ranges
//    (Decision::nat); a reply inside the range pins the choice. A new
//    connection whose reply tuple still clashes is dropped at confirmation;
//  - NAT approximations: an address range is taken as its min..max; with an
//    address range, whether the port must move is judged on its lowest
//    address; MASQUERADE's nexthop is taken to be the destination (routes
//    carry no gateway); IPv6 source selection uses RFC 6724 rules 2, 5 and
//    8 only; a clashing entry the kernel may kill and reuse
//    (nf_nat_used_tuple_new) counts as taken; masqueraded connections are
//    not flushed when a device goes down (no device events);
//  - while conntrack is in use the kernel reassembles fragments before any
//    rule: a datagram is judged once, at its first fragment, and its other
//    fragments share that verdict;
//  - matches that depend on what a capture cannot show (rate limits, random
//    sampling, socket owners, unknown set contents, an unknown interface) are
//    explored both ways; when the verdict depends on them the packet is
//    reported INDETERMINATE, never guessed.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "translator/ir/ir.h"
#include "translator/ir/pipeline.h"
#include "verify/conntrack.h"
#include "verify/engine.h"
#include "verify/host.h"
#include "verify/rule_index.h"

namespace nf2bpf::verify {

struct ReferenceOptions {
  // Model connection tracking (and defragmentation): -1 when the ruleset uses
  // it (state matches, CONNMARK, NAT, NOTRACK), 0 never, 1 always.
  int conntrack = -1;
  // Most evaluations of one packet when exploring unknown matches.
  unsigned max_branches = 64;
  // Skip rules that cannot match (verify/rule_index.h); off only to test it.
  bool use_index = true;
};

class ReferenceEngine : public VerdictEngine {
 public:
  // `rs` and `pipe` must outlive the engine.
  ReferenceEngine(const ir::Ruleset& rs, const ir::Pipeline& pipe, const HostModel& host, ReferenceOptions opt = {});
  ~ReferenceEngine() override;

  std::string name() const override;
  Decision decide(const pkt::Packet& p, const Traversal& t) override;
  std::vector<RuleHits> hits() const override;
  // How many decision lists are evaluated through a rule index, and how many
  // rules of stage `si` its index visits for every packet (tests).
  size_t indexed_stages() const;
  size_t index_wildcards(size_t si) const;

  bool tracks_connections() const { return conntrack_on_; }
  const Conntrack& conntrack() const { return ct_; }
  // Hit count of one source rule (jump rules count the packets that took the jump).
  uint64_t hits_of(const ir::RuleRef& r) const;

  struct Run;  // one evaluation of one packet (defined in reference.cpp)

 private:
  Decision evaluate(const pkt::Packet& p, const Traversal& t);
  void run(Run& r, const Traversal& t) const;
  struct Walk;          // the steps of one run (defined in reference.cpp)
  struct StageOutcome;  // what decided one base chain (likewise)
  RuleInfo rule_info(const ir::RuleRef& ref, const std::vector<ir::RuleRef>& via) const;
  RuleInfo policy_info(const ir::DecisionList& dl) const;
  RuleInfo outcome_info(const StageOutcome& o) const;
  RuleInfo deciding_rule(const Run& r) const;
  void explain_unknowns(Decision& d, const std::vector<Run>& runs, bool exhausted) const;
  void widen_binding(std::vector<Run>& runs) const;
  void commit(const Run& first, double time);

  const ir::Ruleset& rs_;
  const ir::Pipeline& pipe_;
  const HostModel& host_;
  ReferenceOptions opt_;
  bool conntrack_on_ = false;
  Conntrack ct_;
  // stages per (hook, family 4/6), in evaluation order
  std::map<std::pair<ir::Hook, int>, std::vector<size_t>> stages_;
  // nat-type stages per (hook, family), in priority order: they run inside the NAT hook
  std::map<std::pair<ir::Hook, int>, std::vector<size_t>> nat_stages_;
  bool nat_v4_ = false, nat_v6_ = false;  // the family has a nat chain: the NAT hooks are registered
  // hit counters: [table][chain][rule], and base chain policies [table][chain]
  std::vector<std::vector<std::vector<uint64_t>>> rule_hits_;
  std::vector<std::vector<uint64_t>> policy_hits_;
  // datagrams judged at their first fragment: (src, dst, proto, id) -> decision
  struct FragKey {
    ir::u128 src, dst;
    uint32_t id;
    uint8_t proto;
    bool operator<(const FragKey& o) const;
  };
  std::map<FragKey, std::pair<Decision, double>> frag_decisions_;
  std::set<std::string> touched_sets_;  // dynamic sets a statement added to
 public:
  // -m statistic --mode nth: xt_statistic's counter (`count`, which starts at
  // every - packet) per (rule, position of its --every among the rule's
  // matches); nullopt once an undecidable match left it unknown.
  using NthKey = std::pair<ir::RuleRef, size_t>;
  using NthCounters = std::map<NthKey, std::optional<uint32_t>>;
  // -m recent: xt_recent's lists by --name, each entry a (family, masked
  // address) with its TTL and ring of stamps (capture seconds); entries in
  // LRU order, oldest first. nullopt once an undecidable match left a list
  // unknown. Lists start empty, as after the first iptables-restore naming them.
  struct RecentEntry {
    uint8_t family = 4;
    ir::u128 addr = 0;
    uint8_t ttl = 0;
    std::vector<double> stamps;  // the ring; the first `filled` are valid
    uint32_t next = 0, filled = 0;
    bool operator==(const RecentEntry&) const = default;
  };
  using RecentList = std::vector<RecentEntry>;
  using RecentLists = std::map<std::string, std::optional<RecentList>>;
  // nft sets the packet path writes (module nftset), by name: each element
  // (its key as text) with the capture second it expires at (infinity: no
  // timeout) and its own timeout (what an update without one renews it by).
  // nullopt once an undecidable match left a set unknown. Sets start empty.
  struct NftElement {
    double expires = 0, timeout = 0;
    bool operator==(const NftElement&) const = default;
  };
  using NftSet = std::map<std::string, NftElement>;
  using NftSets = std::map<std::string, std::optional<NftSet>>;

 private:
  NthCounters nth_;
  RecentLists recent_;
  NftSets nftsets_;
  // Per stage: which rules can match a packet, and per flattened rule what
  // the loop needs without walking back into the ruleset.
  std::vector<RuleIndex> index_;
  struct FlatInfo {
    std::vector<uint32_t> seg_len;  // matches contributed by each jump on the path
    bool segments_ok = true;        // the segments add up (else: no per-region caching)
    bool goto_tail = false;         // the Skip entry closing a goto
    bool jump_stmt = false;         // the statement entry of a jump/goto rule
    // By path depth k: the first later rule outside this rule's region at
    // depth k (another path[0..k], or segments not ok). When the jump at
    // depth k does not match, the rules up to there cannot either (their
    // segment k is the same, cached test): the walk goes on from there.
    std::vector<uint32_t> region_end;
    // By path depth k: the first rule of this rule's region at depth k. A
    // region's jump result is cached under it: a verdict map's elements
    // share their rule, so the jump rule cannot tell its regions apart.
    std::vector<uint32_t> region_start;
    uint32_t region_key = 0;  // jump_stmt: the region it heads; goto_tail: the one it closes
  };
  std::vector<std::vector<FlatInfo>> info_;

 public:
  // A table's set, and where every element has one key component (a set of
  // addresses, ports ...), all elements' values in one interval set: one
  // binary search instead of a scan (kube-proxy's cluster-ips holds every
  // ClusterIP).
  struct SetLookup {
    const ir::Set* set = nullptr;
    std::optional<ir::IntervalSet> single;
  };
  using SetIndex = std::vector<std::unordered_map<std::string, SetLookup>>;  // per table, by name

 private:
  SetIndex sets_;
  // Why a match cannot be decided from a capture, per match (eval_opaque).
  mutable std::unordered_map<const ir::Match*, std::string> why_cache_;
};

}  // namespace nf2bpf::verify
