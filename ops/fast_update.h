// `sync --watch --from kernel`, kube-proxy in iptables or nftables mode: a
// change of Services' endpoints applied from the chains the change
// notifications name, without reading and translating the whole ruleset
// again (at 10,000 Services, iptables-nft-save alone takes minutes, and nft
// lists a table of that size in 15 s).
//
// kube-proxy's partial update of one Service rewrites its load-balancing
// chain and adds or deletes endpoint chains. iptables mode: KUBE-SVC-* ends
// in a uniform cascade of `-m statistic` jumps to KUBE-SEP-* chains ([-s EP
// -j KUBE-MARK-MASQ,] DNAT to EP:PORT). nftables mode: service-* (local-*
// for traffic policy Local) ends in `numgen random mod N vmap { 0 : goto
// endpoint-..., ... }`, each endpoint-* chain [ip saddr EP jump
// mark-for-masquerade,] dnat to EP:PORT. Such a change is taken here only
// when it can be proved to be what a full translation would make of it:
// every chain it touches is the load-balancing chain of a live service
// (policy::Service) or an endpoint chain only such chains reach; each changed
// load-balancing chain keeps its rules before the endpoint choice word for
// word, the choice keeps its form with the draws uniform; every endpoint
// chain, old and new, is the same text but for its endpoint's address and
// port. What the compiler recognised in the old chains then holds in the new
// ones, and the new backends are the new endpoints in draw order. Anything
// else is left to a full run.
//
// The watch loop runs a full sync a while after such updates (a reconcile):
// its policy then has the same backends, and it records it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

#include "common/result.h"
#include "translator/ir/ir.h"
#include "translator/policy/policy.h"

namespace nf2bpf::ops {

// The tables a full read found that kube-proxy's chains can live in, per
// (address family 4/6, table name): the nat tables iptables-nft wrote, and
// every nft table of family ip or ip6.
struct NatChains {
  struct Table {
    // Rules as `nft list chain` prints them; else as `iptables -S` prints
    // them ("-A CHAIN ...").
    bool nft = false;
    std::map<std::string, std::vector<std::string>> chains;
    // Chain -> the chains that jump or go to it.
    std::map<std::string, std::set<std::string>> referrers;
  };
  std::map<std::pair<uint8_t, std::string>, Table> tables;
  // The live policy's service ids by (family, "table/chain" of the
  // load-balancing chain), built by plan_fast_update for the policy with
  // checksum `indexed` (an update in place keeps the checksum and the
  // services' names and ids): 10,000 Services take milliseconds to index,
  // more than the rest of the plan.
  mutable std::string indexed;
  mutable std::map<std::pair<uint8_t, std::string>, uint32_t> service_of;
};
// From a translation of the kernel's ruleset (its tables read over netlink,
// from iptables-nft-save or from libnftables); nullptr when it has no such
// table.
std::shared_ptr<NatChains> nat_chains_of(const ir::Ruleset& rs);

// Builds nc.service_of for `live` unless it is already built for its
// checksum. plan_fast_update calls it; the watch calls it right after a full
// read, so the first update after one does not pay for it.
void index_services(const NatChains& nc, const policy::Policy& live);

// What change notifications named: (family 4/6 or 0 for another family,
// table, chain) -> the chain is gone after the change.
using ChainChanges = std::map<std::tuple<uint8_t, std::string, std::string>, bool>;

// Reads a chain of a table from the kernel, printed as the table's rules are
// (NatChains::Table::nft).
using ChainReader = std::function<Result<std::vector<std::string>>(uint8_t family, const std::string& table,
                                                                   const std::string& chain, bool nft)>;

struct FastUpdate {
  // Service id -> its new backends (only services whose backends change).
  std::vector<std::pair<uint32_t, std::vector<policy::ServiceBackend>>> services;
  // The chains after the change (nullopt: deleted), per (family, table).
  std::map<std::pair<uint8_t, std::string>, std::map<std::string, std::optional<std::vector<std::string>>>> chains;
  size_t chains_read = 0;
};

// The update `changes` makes to `live`'s services, or why it is not one this
// can prove (the reason, for the log).
std::variant<FastUpdate, std::string> plan_fast_update(const NatChains& before, const ChainChanges& changes,
                                                       const policy::Policy& live, const ChainReader& read);

// `nc` after the update's chains.
void apply_chains(NatChains& nc, const FastUpdate& u);

}  // namespace nf2bpf::ops
