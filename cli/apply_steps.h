// The steps `apply` and `sync` share: choosing interfaces, opening (or
// creating) this namespace's dataplane, recording where a generation came
// from, and making a compiled policy live and attached.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/result.h"
#include "loader/dataplane.h"
#include "loader/host.h"
#include "translator/policy/policy.h"
#include "translator/translate.h"

namespace nf2bpf::cli {

// The interfaces to attach to: the ones named (each must exist), or every
// interface of the namespace except lo. A bad name sets `bad_input` and `why`.
Result<std::vector<loader::Interface>> pick_interfaces(const std::vector<std::string>& names, bool& bad_input,
                                                       std::string& why);
std::string join_ifaces(const std::vector<loader::Interface>& v);

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
  Unchanged,     // install failed: the previously live generation is still live
  RolledBack,    // attach failed: the previous generation is live again
  Unloaded,      // attach failed on a dataplane this run created: removed again
  Unknown,       // attach failed and rolling back failed too
};

// Installs `pol` as the next generation and attaches to `ifaces`. On failure
// `after` says what is live now.
Result<uint64_t> install_and_attach(OpenedDataplane& d, const policy::Policy& pol,
                                    const std::vector<loader::Interface>& ifaces,
                                    const std::vector<loader::AddrTypeEntry>& addrtypes, const nlohmann::json& meta,
                                    bool xdp, LiveAfterFailure& after);

}  // namespace nf2bpf::cli
