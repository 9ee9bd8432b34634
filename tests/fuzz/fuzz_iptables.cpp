// libFuzzer target: arbitrary bytes through the iptables-save front-end, the
// passes (flatten, classify) and the report writers. Anything but a clean
// return (a crash, a sanitizer report, an exception, a hang) is a bug.
//
// The first byte picks the options so one corpus explores them all; a line
// "--ipsets--" splits the rest into a ruleset and an `ipset save` file.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "translator/frontend/ipset/ipset_save.h"
#include "translator/ir/dump.h"
#include "translator/report/report.h"
#include "translator/translate.h"

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

  // Every writer must cope with whatever the front-end accepted. Input bytes
  // need not be UTF-8: the JSON writer replaces what it cannot encode.
  std::string text = report::text(tr, flags & 4);
  std::string json = report::json(tr).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::string ir = ir::dump(tr.ruleset);
  std::string flat = ir::dump(tr.pipeline, tr.ruleset);
  for (const auto& d : ipset_diags.all()) text += diag::render(d);
  (void)tr.rejected(opt.allow_partial);
  return text.empty() || json.empty() ? 1 : 0;  // both always have at least a summary
}
