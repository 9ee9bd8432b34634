// libFuzzer target: arbitrary bytes through the iptables-save front-end, the
// passes (flatten, classify), the report writers and, for an accepted ruleset,
// the compiler and the policy YAML round trip (fuzz_support.h). Anything but a
// clean return (a crash, a sanitizer report, an exception, a hang) is a bug.
//
// The first byte picks the options so one corpus explores them all; a line
// "--ipsets--" splits the rest into a ruleset and an `ipset save` file.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "tests/fuzz/fuzz_support.h"
#include "translator/frontend/ipset/ipset_save.h"

using namespace nf2bpf;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  uint8_t flags = data[0];
  std::string_view all(reinterpret_cast<const char*>(data) + 1, size - 1);

  std::string_view rules = all, ipsets;
  constexpr std::string_view kSplit = "\n--ipsets--\n";
  if (auto at = all.find(kSplit); at != std::string_view::npos) {
    rules = all.substr(0, at);
    ipsets = all.substr(at + kSplit.size());
  }

  TranslateOptions opt;
  opt.from = (flags & 1) ? "ip6tables" : "iptables";
  opt.allow_partial = flags & 2;
  diag::Diagnostics ipset_diags;
  std::vector<ir::Set> sets;
  if (!ipsets.empty()) sets = frontend::parse_ipset_save({"fuzz.save", std::string(ipsets)}, ipset_diags);

  Translation tr = translate_source({"fuzz.rules", std::string(rules)}, opt, sets);

  for (const auto& d : ipset_diags.all()) (void)diag::render(d);
  return fuzz::exercise(tr, opt.allow_partial, flags & 4);
}
