// A FILE argument of apply and diff --against: a ruleset (translated) or a
// policy file written by `nf2bpf translate -o` (loaded and checked). The file
// is read once, so "-" works for either; the policy's own header tells them
// apart, whatever --from says.
#pragma once

#include <optional>
#include <string>

#include "common/result.h"
#include "translator/diag/diagnostics.h"
#include "translator/policy/policy.h"
#include "translator/translate.h"

namespace nf2bpf::policy {

struct Input {
  std::string name;                        // as shown: "<stdin>" for "-"
  std::optional<Translation> translation;  // a ruleset
  bool is_policy = false;                  // a policy file ...
  std::optional<Policy> policy;            // ... that loaded; else its errors:
  diag::Diagnostics policy_diags;
};

// Unreadable input is a system error; a ruleset's problems are in
// translation->diags, a policy file's in policy_diags.
Result<Input> read_ruleset_or_policy(const std::string& path, const TranslateOptions& opt);

}  // namespace nf2bpf::policy
