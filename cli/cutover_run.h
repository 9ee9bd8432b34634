// `apply --cutover`: with the eBPF policy live, prove the live netfilter
// ruleset is the one that was translated, save what will be removed, and
// remove it in one nftables transaction (cutover/).
#pragma once

#include <string>

#include "translator/policy/policy.h"
#include "translator/translate.h"

namespace nf2bpf::cli {

struct CutoverOptions {
  std::string backup;   // "" = default_backup_path(default_state_dir())
  bool dry_run = false;  // report the plan, change nothing
  bool check_only = false;  // the checks alone, quietly (before the eBPF policy is loaded)
  std::string source;   // as recorded in the backup
};

// Returns the exit status: 0 done, 1 refused (the live ruleset is not the
// source, iptables-legacy, a backup already there ...), 2 system error.
int run_cutover(const Translation& tr, const policy::Policy& pol, const CutoverOptions& o);

}  // namespace nf2bpf::cli
