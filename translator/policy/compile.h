// Lowering: decision lists -> Policy (map contents). Pure C++, no libbpf.
#pragma once

#include "translator/diag/diagnostics.h"
#include "translator/policy/policy.h"
#include "translator/translate.h"

namespace nf2bpf::policy {

struct CompileOptions {
  // Refuse policies whose rule-entry table would exceed this many entries
  // (memory guard: rules whose ranges overlap many others multiply entries).
  size_t max_entries = 4'000'000;
  size_t max_classes_per_slot = 1'000'000;
};

// Compiles every supported rule of `tr` (rules marked unsupported are left
// out: they stay in netfilter). Problems the compiler finds (limits
// exceeded) are located diagnostics added to `diags`; the returned policy is
// then not usable (check diags.has_errors()).
Policy compile(const Translation& tr, diag::Diagnostics& diags, const CompileOptions& opt = {});

// Which classifier slot an IR field lands in, or -1 for fields handled as
// residual checks or not at all.
int slot_of(ir::Field f);

}  // namespace nf2bpf::policy
