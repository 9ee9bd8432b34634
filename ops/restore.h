// `restore`: put back what `apply --cutover` removed, from its backup, in one
// nftables transaction (retried when the ruleset changes under it), then
// unload the eBPF policy unless told to keep it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ops/outcome.h"

namespace nf2bpf::ops {

struct RestoreOptions {
  std::string backup;   // "" = default_backup_path(default_state_dir())
  std::string pin_dir;  // of the dataplane to unload
  bool keep_dataplane = false;
  bool dry_run = false;  // list the transaction, change nothing
};

struct RestoreOutcome {
  // refused: no backup, not one, made in another namespace, or the ruleset
  // no longer fits it. An error after `restored` is about the eBPF side.
  Kind kind = Kind::ok;
  std::string message, hint;
  std::vector<std::string> problems;  // why the ruleset does not fit, one line each, before the message
  std::vector<std::string> planned;   // dry run: the transaction's messages
  bool restored = false;              // the transaction went through
  size_t messages = 0;
  int64_t rules = 0, chains = 0;  // put back (the backup's summary)
  std::string moved_to;           // where the used backup was moved ("" when it could not be)
  enum class Dataplane { untouched, kept, none, unloaded } dataplane = Dataplane::untouched;
  std::string detached;  // the interfaces the unloaded policy was attached to
};

RestoreOutcome run_restore(const RestoreOptions& o);

}  // namespace nf2bpf::ops
