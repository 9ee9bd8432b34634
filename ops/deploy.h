// Making a compiled policy live, the one path `apply` and `sync` share:
// choosing interfaces, finding or creating this namespace's dataplane,
// recording where a generation came from, installing it as the next
// generation and attaching, and saying what is live when that fails.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/result.h"
#include "loader/dataplane.h"
#include "loader/host.h"
#include "ops/outcome.h"
#include "translator/policy/policy.h"
#include "translator/translate.h"

namespace nf2bpf::ops {

struct InterfaceChoice {
  std::vector<loader::Interface> ifaces;
  std::string refused;  // why the names do not fit the namespace; "" when they do
};

// The interfaces to attach to, out of `all`: the ones named (each must
// exist) and lo, or every one; never one in `exclude`.
InterfaceChoice choose_interfaces(const std::vector<loader::Interface>& all, const std::vector<std::string>& names,
                                  const std::vector<std::string>& exclude = {});
// The same over this network namespace's interfaces.
Result<InterfaceChoice> pick_interfaces(const std::vector<std::string>& names,
                                        const std::vector<std::string>& exclude = {});
std::string join_ifaces(const std::vector<loader::Interface>& v);

// --pin-dir when given, else the default per-namespace directory.
Result<std::string> resolve_pin_dir(const std::string& option);

// The dataplane of this network namespace, or nullptr when none is loaded.
// `any_version`: also one another nf2bpf version loaded (to unload it).
Result<std::unique_ptr<loader::Dataplane>> find_dataplane(const std::string& pin_dir_option, bool any_version = false);

struct OpenedDataplane {
  std::unique_ptr<loader::Dataplane> dp;
  bool fresh = false;  // created by this run: undone entirely on failure
};

// This namespace's dataplane, created and pinned when there is none.
// `create_failed` tells a failure to create from a failure to look.
Result<OpenedDataplane> open_dataplane(const std::string& pin_dir, bool* create_failed = nullptr);

// What a generation records about its origin (shown by `status`).
nlohmann::json generation_meta(const Translation& tr, const policy::Policy& pol, const std::string& source);

// The absolute path of a ruleset file as recorded ("<stdin>" for "-",
// "kernel" for the live ruleset).
std::string source_name(const std::string& file, const std::string& from);

enum class LiveAfterFailure {
  Unchanged,   // install failed: the previously live generation is still live
  RolledBack,  // attach failed: the previous generation is live again
  Unloaded,    // attach failed on a dataplane this run created: removed again
  Unknown,     // attach failed and rolling back failed too
};

// "the previously live generation is still live", ...
const char* describe(LiveAfterFailure after);

struct Deployment {
  Kind kind = Kind::ok;  // ok or error
  std::string message;   // the system error
  std::string hint;      // set when creating the dataplane failed (permissions, kernel)
  // Whether the install was reached: failures before it (address types, pin
  // directory, opening the dataplane) changed nothing and leave `after` alone.
  bool installing = false;
  LiveAfterFailure after = LiveAfterFailure::Unchanged;
  uint64_t generation = 0;
  OpenedDataplane opened;  // for take_back
  double prepare_ms = 0, install_ms = 0, attach_ms = 0;
};

// Installs `pol` as the next generation of this namespace's dataplane
// (created when there is none) and attaches it to `ifaces`. On failure
// `after` says what is live now.
Deployment deploy(const std::string& pin_dir_option, const policy::Policy& pol,
                  const std::vector<loader::Interface>& ifaces, const nlohmann::json& meta, bool xdp);

enum class TakenBack { Unloaded, UnloadFailed, RolledBack, RollbackFailed };

// Undoes a deployment that went live (a cut-over after it failed): a
// dataplane the deployment created is unloaded, otherwise the previous
// generation is made live again.
TakenBack take_back(OpenedDataplane& d);

}  // namespace nf2bpf::ops
