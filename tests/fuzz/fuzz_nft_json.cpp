// libFuzzer target: arbitrary bytes through the `nft -j list ruleset` JSON
// front-end (as a file, or as libnftables prints the kernel's ruleset), the
// passes, the report writers and, for an accepted ruleset, the compiler and
// the policy YAML round trip (fuzz_support.h). The first byte picks the options.
#include <cstddef>
#include <cstdint>
#include <string>

#include "tests/fuzz/fuzz_support.h"

using namespace nf2bpf;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  uint8_t flags = data[0];
  std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);

  TranslateOptions opt;
  opt.from = (flags & 1) ? "kernel" : "nft-json";  // "kernel" on a source: JSON as libnftables prints it
  opt.allow_partial = flags & 2;
  Translation tr = translate_source({"fuzz.json", std::move(text)}, opt);
  return fuzz::exercise(tr, opt.allow_partial, flags & 4);
}
