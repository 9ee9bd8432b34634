// The one-shot cut-over: once the eBPF policy is live, remove the netfilter
// objects it replaced in one nftables transaction, after saving them to a
// backup from which `restore` puts them back, again in one transaction.
//
// The backup (JSON, documented in docs/sync.md) keeps every removed chain
// and rule as the exact netlink message the kernel dumped, plus the handles
// of the rules that stayed (to put removed ones back in their places), the
// old chain policies, and a readable `nft list` of the tables for people.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/nft_netlink.h"
#include "cutover/plan.h"
#include "cutover/snapshot.h"

namespace nf2bpf::cutover {

inline constexpr int kBackupVersion = 1;

struct BackupInfo {
  std::string source;           // the ruleset that was translated
  std::string format;           // its input format
  std::string policy_checksum;  // the eBPF policy that replaced the rules
  uint64_t netns = 0;           // network namespace inode
  uint64_t netns_cookie = 0;    // and cookie (SO_NETNS_COOKIE), which is never reused
  std::string boot_id;          // the boot the cookie is from
};

// Problems that make a removed rule impossible to put back exactly.
std::vector<std::string> check_plan_reproducible(const Plan& plan, const Snapshot& snap);

// The backup document for `plan` (everything it removes or changes).
nlohmann::json make_backup(const Plan& plan, const Snapshot& snap, const BackupInfo& info);

// The transaction that carries `plan` out.
Batch cutover_batch(const Plan& plan, const Snapshot& snap);

// The tables a backup covers.
Result<std::vector<TableId>> backup_tables(const nlohmann::json& backup);

// The transaction that puts a backup back, given the tables as they are now.
// Anything that makes an exact restore impossible (a deleted chain exists
// again, a rule that stayed is gone) is added to `problems` and the batch is
// then not to be sent.
Result<Batch> restore_batch(const nlohmann::json& backup, const Snapshot& now, std::vector<std::string>& problems);

// `nft list table ...` of these tables, for the backup's readable part.
std::string list_tables(const std::vector<TableId>& tables);

// iptables-legacy (x_tables) tables that exist in this namespace for a
// family ("ip" or "ip6"): /proc/net/ip_tables_names, ip6_tables_names.
std::vector<std::string> legacy_tables(uint8_t family);

// Reads a backup file; a file that is not an nf2bpf backup is an Error
// (code EINVAL) saying so.
Result<nlohmann::json> read_backup(const std::string& path);

}  // namespace nf2bpf::cutover
