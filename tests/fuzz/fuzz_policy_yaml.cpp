// libFuzzer target: arbitrary bytes through the policy YAML reader
// (`apply FILE.yaml`, `diff --policy`): yaml-cpp, the schema checks, the index
// and range checks and the two checksums. A file the reader accepts must be
// written back byte for byte and load again (a broken round trip aborts).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "translator/policy/yaml.h"

using namespace nf2bpf;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  (void)policy::looks_like_policy_yaml(text);
  diag::Diagnostics d;
  auto p = policy::from_yaml(text, "fuzz.yaml", d);
  for (const auto& x : d.all()) (void)diag::render(x);
  if (!p) return 0;
  if (d.has_errors()) std::abort();  // a policy came back with an error beside it
  std::string again = policy::to_yaml(*p);
  diag::Diagnostics d2;
  auto back = policy::from_yaml(again, "fuzz.yaml", d2);
  if (!back || policy::to_yaml(*back) != again) std::abort();
  return 0;
}
