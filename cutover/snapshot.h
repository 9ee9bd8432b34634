// What the kernel holds in the nftables tables a cut-over touches, read over
// netlink: every chain and rule as the kernel dumped it (the exact messages,
// so a restore re-creates them attribute for attribute), plus the anonymous
// sets those rules use. iptables-nft keeps its tables here too (ip filter,
// ip6 filter ...), so the same code serves iptables-nft and nft rulesets.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/nft_netlink.h"
#include "common/result.h"

namespace nf2bpf::cutover {

// The netlink boundary lives in common/ (the iptables front-end reads through it too).
using nfnl::Batch;
using nfnl::Bytes;
using nfnl::family_from_name;
using nfnl::family_name;
using nfnl::from_hex;
using nfnl::NftSocket;
using nfnl::to_hex;

struct KRule {
  uint64_t handle = 0;
  Bytes msg;                           // NFT_MSG_NEWRULE as dumped
  std::vector<std::string> anon_sets;  // anonymous sets (maps) it uses, by their kernel name
};

struct KChain {
  std::string name;
  uint64_t handle = 0;
  bool base = false;
  uint32_t policy = 1;  // NF_ACCEPT; meaningful for base chains
  uint32_t flags = 0;   // NFT_CHAIN_*
  Bytes msg;            // NFT_MSG_NEWCHAIN as dumped
  std::vector<KRule> rules;
};

struct KSet {
  std::string name;
  uint32_t flags = 0;        // NFT_SET_*
  Bytes msg;                 // NFT_MSG_NEWSET
  std::vector<Bytes> elems;  // NFT_MSG_NEWSETELEM messages
};

struct KTable {
  uint8_t family = 0;
  std::string name;
  uint32_t flags = 0;
  std::vector<KChain> chains;
  std::vector<KSet> anon_sets;  // anonymous sets referenced by rules
  const KChain* find_chain(const std::string& n) const;
  const KSet* find_set(const std::string& n) const;
};

struct TableId {
  uint8_t family = 0;
  std::string name;
  bool operator==(const TableId&) const = default;
  auto operator<=>(const TableId&) const = default;
  std::string str() const;  // "ip filter"
};

struct Snapshot {
  uint32_t genid = 0;               // ruleset generation the snapshot is from
  std::vector<TableId> all_tables;  // every table in the namespace
  std::vector<KTable> tables;       // the ones asked for that exist
  const KTable* find(const TableId& t) const;
};

// Reads `tables` (the others are only listed) as of one ruleset generation:
// the dumps are repeated until the generation is the same before and after.
Result<Snapshot> read_snapshot(NftSocket& s, const std::vector<TableId>& tables);

// Why a rule cannot be put back exactly, or "": libnftnl must parse the
// message and rebuild the same expressions byte for byte.
std::string check_reproducible(const KRule& r);

// ---- transaction messages ------------------------------------------------------

void add_delete_rule(Batch& b, const KTable& t, const KChain& c, const KRule& r, const std::string& text);
void add_flush_chain(Batch& b, const KTable& t, const KChain& c);
void add_delete_chain(Batch& b, const KTable& t, const KChain& c);
// Sets a base chain's policy (NF_ACCEPT / NF_DROP), leaving the rest of it.
void add_chain_policy(Batch& b, const KTable& t, const KChain& c, uint32_t policy);

// Re-creates a deleted chain as dumped (hook, priority, policy, counters ...).
Result<void> add_create_chain(Batch& b, const KTable& t, const KChain& c);
// Re-creates an anonymous set and its elements; rules refer to it by `id`.
Result<void> add_create_anon_set(Batch& b, const KTable& t, const KSet& s, uint32_t id);
// Re-creates a rule: before the rule with handle `before` when given, else at
// the end of its chain. `set_ids` maps the anonymous set names it used to the
// ids given to add_create_anon_set.
Result<void> add_create_rule(Batch& b, const KTable& t, const KChain& c, const KRule& r, std::optional<uint64_t> before,
                             const std::vector<std::pair<std::string, uint32_t>>& set_ids);

}  // namespace nf2bpf::cutover
