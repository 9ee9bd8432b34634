// The Policy: a compiled ruleset as plain data — the exact contents of every
// per-generation BPF map, plus what userspace needs to explain it (rule
// origins, log prefixes, interface predicates). Independent of the kernel:
// the loader writes it into maps; the userspace model evaluates it directly.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bpf/include/abi.h"
#include "translator/ir/ir.h"

namespace nf2bpf::policy {

// Where a compiled rule came from, for counters and reports.
struct Origin {
  std::string location;  // file:line (or file#pointer)
  std::string table, chain;
  std::string text;  // the source rule as written
  uint32_t source_line = 0;
};

// An interface predicate of one slot: a conjunction of clauses, each "the
// name matches one of these patterns" (or, negated, none of them).
struct IfaceClause {
  std::vector<ir::IfacePattern> patterns;
  bool negated = false;
  bool operator==(const IfaceClause&) const = default;
};
struct IfacePredicate {
  std::vector<IfaceClause> clauses;
  bool matches(std::string_view name) const;
  bool operator==(const IfacePredicate&) const = default;
};

struct LpmEntry {
  uint8_t slot;
  ir::u128 addr;
  uint8_t prefixlen;  // address bits (0..128)
  uint32_t cls;
};

// A load-balancing chain compiled to one NAT rule (NF_NAT_SERVICE): its
// backends, one drawn uniformly at random per new connection. Their map
// entries (nf_svc, nf_svc_be) can change without a new generation.
struct ServiceBackend {
  ir::u128 addr = 0;  // IPv4-mapped for IPv4
  uint16_t port = 0;
  bool operator==(const ServiceBackend&) const = default;
};
struct Service {
  std::string name;  // "table/chain" of the load-balancing chain
  uint8_t family = 4;
  uint32_t mark_mask = 0, mark_value = 0;  // hairpin mark of the endpoint chains; mask 0: none
  std::vector<ServiceBackend> backends;
  bool operator==(const Service&) const = default;
};

struct Policy {
  // Identity.
  std::string source;    // input file as named
  std::string checksum;  // sha256 of the canonical serialisation
  std::string input_format;

  nf2bpf_gen_cfg cfg{};
  std::array<nf2bpf_hook_desc, NF_HOOK_MAX> hooks{};
  std::vector<nf2bpf_stage> stages;
  std::vector<nf2bpf_tuple> tuples;
  std::vector<nf2bpf_rule> rules;
  std::vector<nf2bpf_stmt> stmts;
  std::vector<nf2bpf_limit_cfg> limits;  // index 0 unused
  std::vector<nf2bpf_nat> nats;          // NAT rules' ranges (nf2bpf_rule.nat)
  std::vector<Service> services;         // nf2bpf_nat.service of NF_NAT_SERVICE ranges
  std::vector<std::pair<nf2bpf_entry_key, nf2bpf_entry_val>> entries;
  std::vector<LpmEntry> lpm;
  std::vector<uint32_t> small;  // NF_SMALL_TOTAL class ids

  // Interfaces are resolved by the loader: for each interface name, evaluate
  // every predicate of the slot; the signature (which predicates hold) names
  // the class in iface_classes. Class 0 = no predicate holds.
  std::array<std::vector<IfacePredicate>, 2> iface_predicates;  // [0] iif, [1] oif
  std::array<std::map<std::vector<bool>, uint32_t>, 2> iface_classes;
  uint32_t iface_class(int which, std::string_view name) const;

  std::vector<Origin> origins;        // per rule
  std::vector<Origin> stage_origins;  // per stage (the base chain; for policy hits)
  std::vector<std::string> log_prefixes;
  std::vector<std::string> chain_names;  // "table/chain", indexed by nf2bpf_rule::src_chain
  // The nft sets the packet path writes, by their table (nf2bpf_limit_cfg.table
  // of NF_LIMIT_SET): names for `nf2bpf sets`. Not in the policy file (a
  // policy read from one lists its sets by table number).
  std::map<uint32_t, std::string> set_names;

  // Counter indices: rules use [0, rules.size()), stage policies follow.
  uint32_t counter_count() const { return (uint32_t)(rules.size() + stages.size()); }
  // Entries of the nf_nth map: one per source rule with -m statistic --mode nth.
  uint32_t nth_slots() const {
    uint32_t n = 0;
    for (const auto& r : rules)
      if (r.residual & NF_RES_NTH) n = std::max(n, r.nth_slot + 1);
    return n;
  }
  size_t rule_count_source = 0;  // source rules translated
};

// Hashing of entry keys, for userspace tables keyed like the BPF hash.
struct EntryKeyHash {
  size_t operator()(const nf2bpf_entry_key& k) const;
};
struct EntryKeyEq {
  bool operator()(const nf2bpf_entry_key& a, const nf2bpf_entry_key& b) const;
};

// Canonical serialisation (stable across runs); checksum is its sha256.
// REJECT answers (nf2bpf_rule.reject_type), one code per answer whatever
// the spelling: iptables' (icmp-host-prohibited, host-prohib, tcp-reset),
// ip6tables' (icmp6-adm-prohibited) and nft's (icmp host-prohibited, icmpx
// admin-prohibited, tcp reset). 0 is the default, port unreachable. A code
// names the answer, not the family: no-route is IPv6's net unreachable,
// addr-unreachable its host unreachable, as nft's icmpx maps them.
inline constexpr uint8_t kRejectUnknown = 255;

// xt_limit's avg (1/10000 s per packet, nonzero) as a whole number of packets
// per unit, the unit as libxt_limit's print_rate and iptables-nft's
// add_nft_limit pick it: {packets, seconds in the unit}.
std::pair<uint64_t, uint64_t> xt_rate(uint32_t avg);
uint8_t reject_code(std::string_view with);
const char* reject_name(uint8_t code);  // "port-unreachable", "tcp-reset", "host-prohibited" ...

std::string serialize(const Policy& p);
std::string compute_checksum(const Policy& p);

// When `b` is `a` with other backends for some services (and rules moved to
// other source lines or chain numbers, which only userspace reads): the
// indices of those services, in order. nullopt when anything else differs.
std::optional<std::vector<uint32_t>> backend_changes(const Policy& a, const Policy& b);

}  // namespace nf2bpf::policy
