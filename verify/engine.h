// The one interface every verdict engine implements, so `diff` can put any
// two side by side: the reference evaluator (IR semantics, verify/reference.h),
// the userspace model of the compiled Policy, and the real BPF programs run
// with BPF_PROG_TEST_RUN (the last two live with the policy compiler and the
// loader; they plug in here).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "translator/ir/pipeline.h"
#include "verify/host.h"
#include "verify/packet.h"

namespace nf2bpf::verify {

enum class Verdict : uint8_t { Accept, Drop, Reject, Queue, Indeterminate };
const char* to_string(Verdict v);  // "ACCEPT", "DROP", "REJECT", "QUEUE", "INDETERMINATE"

// The source rule (or chain policy) behind a decision, self-contained so a
// report needs no access to the engine's ruleset.
struct RuleInfo {
  std::string location;            // "rules.v4:14" (file:line), "" when none
  std::string text;                // the rule as written, or ":INPUT DROP" for a policy
  std::string chain;               // "filter/INPUT"
  bool policy = false;             // decided by the base chain's policy
  std::optional<ir::RuleRef> ref;  // into the engine's ruleset, when it has one
  std::vector<std::string> via;    // jump/goto rules that led to it (file:line)
  bool empty() const { return location.empty() && text.empty(); }
};

// Something a non-terminal statement did (LOG, NFLOG, counter, MARK ...).
struct Event {
  std::string what;      // "LOG prefix=\"ssh: \"", "MARK 0x1", "DNAT to 10.0.0.2:80"
  std::string location;  // file:line of the rule
};

// The addresses and ports a packet leaves the host with after NAT. Each
// field is a closed range: one value when the engine knows it (the model,
// the kernel), a range when the translation was a random choice the engine
// can only bound (the reference evaluator: a port picked at random from a
// range, an address from a range under --random-fully ...). ICMP echo
// packets carry their identifier in sport and dport.
struct NatTuple {
  ir::u128 src_lo = 0, src_hi = 0, dst_lo = 0, dst_hi = 0;
  uint16_t sport_lo = 0, sport_hi = 0, dport_lo = 0, dport_hi = 0;
  bool has_ports = false;
  static NatTuple exact(ir::u128 src, ir::u128 dst, uint16_t sport, uint16_t dport, bool has_ports);
  // Every field of `actual` lies in this tuple's ranges (ports only when both have them).
  bool allows(const NatTuple& actual) const;
  bool operator==(const NatTuple&) const = default;
  // "10.0.0.1:1234 -> 10.0.0.9:[8080-8090]"
  std::string text() const;
};

struct Decision {
  Verdict verdict = Verdict::Accept;
  std::string reject_with;          // REJECT: icmp-port-unreachable, tcp-reset ...
  ir::Hook hook = ir::Hook::Input;  // where the verdict was decided
  std::vector<ir::Hook> path;       // hooks the packet met (after any DNAT re-routing)
  RuleInfo rule;                    // what decided it; empty: no chain on the path
  std::string ct_state;  // connection state the filter saw: NEW, ESTABLISHED, ... "" when untracked by the model
  std::vector<Event> events;
  std::string note;  // indeterminate: why; otherwise extra detail
  // Set when NAT changed the packet's header (a binding was set up or applied,
  // in either direction): the header it leaves with. Unset: unchanged.
  std::optional<NatTuple> nat;
  // Same verdict (and, for REJECT, the same answer sent back).
  bool same_verdict(const Decision& o) const;
  // Same verdict, and `o`'s translation is one this decision allows (both
  // untranslated, or o.nat within nat's ranges). `this` is the expected side.
  bool same_outcome(const Decision& o) const;
  std::string verdict_text() const;  // "REJECT (tcp-reset)"
};

struct RuleHits {
  std::string location;  // file:line
  std::string text;
  std::string chain;    // table/chain
  bool policy = false;  // a base chain's policy
  uint64_t hits = 0;    // packets that matched it (took the policy)
};

class VerdictEngine {
 public:
  virtual ~VerdictEngine() = default;
  // Shown in reports: the ruleset's file name, "compiled policy", "kernel (BPF_PROG_TEST_RUN)".
  virtual std::string name() const = 0;
  // Packets come in capture order; an engine keeps its own state
  // (connection tracking) from one call to the next.
  virtual Decision decide(const pkt::Packet& p, const Traversal& t) = 0;
  // Per-rule hit counts so far, in source order.
  virtual std::vector<RuleHits> hits() const = 0;
};

}  // namespace nf2bpf::verify
