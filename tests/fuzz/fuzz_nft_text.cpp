// libFuzzer target: arbitrary bytes through the `nft list ruleset` text
// front-end (lexer, parser, variables, includes, lowering), the passes, the
// report writers and, for an accepted ruleset, the compiler and the policy
// YAML round trip (fuzz_support.h).
//
// The first byte picks the options. A line "--include--" splits the rest into
// the ruleset and the text every `include` reads (any name), so includes are
// explored without touching the file system.
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "tests/fuzz/fuzz_support.h"
#include "translator/frontend/nft/nft.h"

using namespace nf2bpf;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  uint8_t flags = data[0];
  std::string_view all(reinterpret_cast<const char*>(data) + 1, size - 1);

  std::string_view rules = all, included;
  bool has_include = false;
  constexpr std::string_view kSplit = "\n--include--\n";
  if (auto at = all.find(kSplit); at != std::string_view::npos) {
    rules = all.substr(0, at);
    included = all.substr(at + kSplit.size());
    has_include = true;
  }

  frontend::NftTextOptions nopt;
  nopt.read_file = [&](const std::string&) -> Result<std::string> {
    if (!has_include) return Error{ENOENT, "open"};
    return std::string(included);
  };
  bool allow_partial = flags & 2;
  Translation tr;
  tr.input_format = "nft";
  tr.ruleset = frontend::parse_nft_text({"fuzz.nft", std::string(rules)}, tr.diags, nopt);
  fuzz::run_passes(tr, allow_partial);
  return fuzz::exercise(tr, allow_partial, flags & 4);
}
