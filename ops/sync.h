// `sync`: keep the live eBPF policy in step with a source of truth. One run:
// take the state directory's lock, translate and compile the source,
// reconcile the state file with what the kernel has live, and when the policy
// (or its interfaces) changed, verify it on witness packets, apply the change
// guard, and swap it in behind a pending mark that the next run understands
// if this one is killed.
//
// The decisions (reconcile, in sync or not, the change guard) are pure
// functions of their inputs, so they are tested without a kernel; run_sync
// strings them together with the kernel calls.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "loader/host.h"
#include "ops/fast_update.h"
#include "ops/outcome.h"
#include "translator/diag/diagnostics.h"
#include "translator/policy/policy.h"
#include "translator/translate.h"

namespace nf2bpf::ops {

// The default of --max-change (percent of the witness packets).
inline constexpr double kDefaultMaxChange = 10.0;

struct SyncOptions {
  std::string source;  // ruleset file, "-", or unused with from == "kernel"
  TranslateOptions opt;
  std::vector<std::string> ifaces;
  // The change guard: refuse a policy that changes the verdict of more than
  // this share (percent) of the witness packets. `max_change_given`: set by
  // the user (then a live policy sync cannot compare with is refused too).
  double max_change = kDefaultMaxChange;
  bool max_change_given = false;
  bool force = false, self_test = false, dry_run = false, xdp = false;
  std::string state_dir, pin_dir, capture;
  double lock_timeout = 30;
  // sync --watch: the policy the previous run left live, so a change of
  // service backends need not read the stored copy back.
  std::shared_ptr<const policy::Policy> last;
  // sync --watch --from kernel: hand back the nat chains iptables-nft wrote
  // (SyncOutcome::nat_chains), which later changes are read against.
  bool keep_nat_chains = false;
  // The source already read, translated and compiled (prepare_source): the
  // run skips those steps. sync --watch reads for a reconcile in the
  // background.
  std::shared_ptr<struct PreparedSource> prepared;
};

// A source read, translated and compiled ahead of the run that uses it
// (SyncOptions::prepared). Touches no state: safe on another thread while
// the watch applies updates.
struct PreparedSource {
  Result<Translation> tr = Error{0, "not read"};
  policy::Policy pol;  // compiled when the source translated (not rejected)
  diag::Diagnostics compile_diags;
  double ms = 0;  // read, translate and compile
};
std::shared_ptr<PreparedSource> prepare_source(const SyncOptions& o);

struct SyncOutcome {
  Kind kind = Kind::error;
  // in-sync, swapped, updated (service backends in place), would-swap,
  // would-update, refused, error
  std::string result = "error";
  std::string message;  // the run's one log line
  std::string hint;
  std::vector<std::string> notes;
  // The JSON document's fields (result, message, notes, hint, timings_ms,
  // source, checksum, verification, change ...), all but the exit status.
  nlohmann::json doc;
  double total_ms = 0;
  // For the text output, when the run was refused on them:
  std::optional<Translation> rejected;  // the source did not translate (its report)
  diag::Diagnostics compile_diags;      // the source did not compile
  std::vector<std::string> differs;     // verification: compiled policy vs source, the first 10
  std::vector<std::string> changes;     // change guard: live vs new policy, the first 10
  // The policy live after the run (in-sync, swapped, updated), for the next.
  std::shared_ptr<const policy::Policy> live_policy;
  // With keep_nat_chains: the source's nat chains, when live_policy is the
  // policy made of them.
  std::shared_ptr<NatChains> nat_chains;
};

SyncOutcome run_sync(const SyncOptions& o);

// sync --watch --from kernel: applies the service backends a change of
// kube-proxy's chains makes (ops/fast_update.h) to the live generation,
// under the state lock, and clears the UDP entries to the endpoints that
// left. `live` must still be live (its checksum is checked). When the update
// is applied, `live` becomes the policy with the new backends (changed in
// place when the caller holds its only reference: copying a 320,000-rule
// policy costs more than the rest of the update), and so does the outcome's
// live_policy; it keeps live's checksum, and the state file its record,
// until a full run records the policy the source makes (the watch loop runs
// one a while after). Otherwise `live` is as it was.
SyncOutcome run_service_update(const SyncOptions& o, std::shared_ptr<const policy::Policy>& live, const FastUpdate& u);

// ---- the decisions, without a kernel -------------------------------------------------

// The state file against the live generation's metadata (null when nothing
// is live): the kernel is right. Settles a pending mark an interrupted run
// left and records a generation made live outside sync. Returns the notes
// for the run's output.
std::vector<std::string> reconcile(nlohmann::json& state, const nlohmann::json& live_meta);

// What is live, as far as sync compares it.
struct LiveView {
  std::string checksum;  // "" when no valid generation is live
  uint64_t generation = 0;
  std::set<std::pair<std::string, uint32_t>> attached;  // (name, ifindex)
  bool xdp = false;
};
// From a dataplane's status (`live` metadata and `attach` list).
LiveView live_view(const nlohmann::json& live_meta, const nlohmann::json& attach, uint64_t generation);

struct SyncDecision {
  bool in_sync = false;
  std::string reason;  // why a swap is needed: "nothing is live yet", "the policy changed", "the interfaces changed"
};
// In sync when the live policy is the compiled one and it is attached to
// exactly the wanted interfaces, XDP included (the interface classes are
// part of a generation).
SyncDecision decide(const LiveView& live, const std::string& checksum, const std::vector<loader::Interface>& want,
                    bool xdp);

enum class Guard {
  off,      // nothing live to compare with
  compare,  // compare the new policy with the stored live one
  skip,     // the default guard, and the live policy is not one sync stored (a note says so)
  pass,     // within the limit
  refuse,
  force,  // --force overrides a refusal (a note says so)
};
// Before comparing: is there something to compare with? Without a stored
// copy of the live policy, a limit the user gave refuses (unless --force);
// the default one is skipped.
Guard guard_before(bool max_change_given, bool force, bool live, bool stored);
// After comparing: the share of witness packets that change verdict.
Guard guard_after(double percent_changed, double max_change, bool force);
// After comparing: does the new policy accept, on some filter hook, none of
// the witness packets the live one accepted there (a source truncated to
// `:INPUT DROP`)? `cut_off` lists those hooks (Comparison::cut_off). Refused
// whatever --max-change says, unless --force.
Guard guard_cutoff(const std::vector<std::string>& cut_off, bool force);

// Shares and counts in messages: "12.5%", "0.0005%" (8 of 1,600,018: two
// significant digits, never a 0.0% that hides a change), "1,600,018".
std::string percent_text(double percent);
std::string count_text(uint64_t n);

}  // namespace nf2bpf::ops
