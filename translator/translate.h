// The translator's one entry point: read a ruleset, parse it, run the passes.
#pragma once

#include <string>
#include <vector>

#include "common/result.h"
#include "translator/diag/diagnostics.h"
#include "translator/frontend/source.h"
#include "translator/ir/ir.h"
#include "translator/ir/pipeline.h"
#include "translator/passes/fidelity.h"

namespace nf2bpf {

struct TranslateOptions {
  std::string from = "auto";  // auto | iptables | ip6tables | nft | nft-json | kernel
  bool allow_partial = false;
  std::string ipsets_path;  // `ipset save` output for -m set
};

struct Translation {
  ir::Ruleset ruleset;
  ir::Pipeline pipeline;
  std::vector<passes::RuleFidelity> rules;
  diag::Diagnostics diags;
  std::string input_format;  // what --from resolved to

  size_t count(caps::Fidelity f) const;
  // Exit-status rule: input errors, or unsupported rules without allow_partial.
  bool rejected(bool allow_partial) const;
};

// Reads `path` ("-" for stdin), or with from == "kernel" the running ruleset
// (path unused). Unreadable input is a system error; anything wrong with the
// content is a diagnostic in the Translation.
Result<Translation> translate_file(const std::string& path, const TranslateOptions& opt);
// translate_file with the text of `path` already read (opt.from is not "kernel").
Result<Translation> translate_text(const std::string& path, std::string text, const TranslateOptions& opt);
Translation translate_source(const frontend::Source& src, const TranslateOptions& opt,
                             const std::vector<ir::Set>& ipsets = {});

// Guesses the input format from the text: "iptables", "ip6tables", "nft" or "nft-json"; "policy" for
// a compiled policy file (`translate -o`), which is not a ruleset.
std::string detect_format(std::string_view text);

Result<std::string> read_input(const std::string& path);

}  // namespace nf2bpf
