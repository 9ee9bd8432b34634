// Finding this namespace's dataplane, shared by apply/status/rollback/unload.
#pragma once

#include <memory>
#include <string>

#include "common/result.h"
#include "loader/dataplane.h"

namespace nf2bpf::cli {

// --pin-dir when given, else the default per-namespace directory.
Result<std::string> resolve_pin_dir(const std::string& option);

// The dataplane of this network namespace, or nullptr when none is loaded.
Result<std::unique_ptr<loader::Dataplane>> find_dataplane(const std::string& pin_dir_option);

}  // namespace nf2bpf::cli
