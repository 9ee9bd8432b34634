// libFuzzer target: arbitrary bytes through the `ipset save` reader, then the
// sets it accepted through an iptables ruleset that names each of them (as
// `-m set` does with --ipsets), the passes and the writers (fuzz_support.h).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "tests/fuzz/fuzz_support.h"
#include "translator/frontend/ipset/ipset_save.h"

using namespace nf2bpf;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  uint8_t flags = data[0];
  std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);

  diag::Diagnostics d;
  std::vector<ir::Set> sets = frontend::parse_ipset_save({"fuzz.save", std::move(text)}, d);
  for (const auto& x : d.all()) (void)diag::render(x);

  // One rule per set, with as many directions as the set has dimensions (all
  // src, or with flag 8 all dst), so accepted sets reach the compiler. Names
  // the iptables lexer would split are left out: a rule cannot name them.
  bool v6 = flags & 1;
  std::string rules = "*filter\n:INPUT DROP [0:0]\n";
  for (const auto& s : sets) {
    if (s.name.empty() || s.name.find_first_of(" \t\r\n\"'\\") != std::string::npos) continue;
    std::string dirs;
    for (size_t i = 0; i < std::max<size_t>(1, s.key.size()); ++i)
      dirs += i ? ((flags & 8) ? ",dst" : ",src") : ((flags & 8) ? "dst" : "src");
    rules += "-A INPUT -m set --match-set " + s.name + " " + dirs + " -j ACCEPT\n";
  }
  rules += "COMMIT\n";
  TranslateOptions opt;
  opt.from = v6 ? "ip6tables" : "iptables";
  opt.allow_partial = flags & 2;
  Translation tr = translate_source({"fuzz.rules", rules}, opt, sets);
  return fuzz::exercise(tr, opt.allow_partial, flags & 4);
}
