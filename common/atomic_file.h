// Files that are either the old content or the new one, never a mix: written
// to a temporary file in the same directory, fsynced, renamed over the target,
// and the directory fsynced so the rename itself survives a crash.
#pragma once

#include <string>

#include "common/result.h"

namespace nf2bpf {

Result<void> write_file_atomic(const std::string& path, const std::string& content, unsigned mode = 0600);

// Creates `dir` and its parents (mode 0700 for the ones it creates).
Result<void> make_dirs(const std::string& dir);

}  // namespace nf2bpf
