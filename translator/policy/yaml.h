// The compiled Policy as YAML: reviewable by a person first (header, one entry
// per compiled rule with its source text, action, residual checks and
// statements spelled out, the stages), then the map contents in a compact
// machine part. Loading it back gives the same Policy, field for field.
//
// The file is protected against hand edits: `checksum` is the policy's own
// checksum (what `nf2bpf status` shows) over everything the dataplane uses,
// and `notes-checksum` covers what only explains it (rule texts, locations,
// chain names). A file that does not match either is refused.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "translator/diag/diagnostics.h"
#include "translator/policy/policy.h"

namespace nf2bpf::policy {

std::string to_yaml(const Policy& p);

// Parses and validates a policy YAML. Anything wrong with it (not YAML, not a
// policy, truncated, edited, out-of-range indices) is a located error in `d`
// (`name:line:col`) and the result is empty; nothing is loaded half-way.
std::optional<Policy> from_yaml(const std::string& text, const std::string& name, diag::Diagnostics& d);

// True when `text` starts like a file to_yaml wrote (after comments).
bool looks_like_policy_yaml(std::string_view text);

// Writes to_yaml(p) to `path` atomically: a temporary file in the same
// directory, fsync, rename over `path`. On failure `path` is untouched.
Result<void> write_yaml_file(const Policy& p, const std::string& path);

// sha256 over the explanatory fields the policy checksum leaves out (source,
// format, origins, chain names, source rule count).
std::string notes_checksum(const Policy& p);

}  // namespace nf2bpf::policy
