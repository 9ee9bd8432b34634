// Golden tests: every tests/golden/iptables/*.rules parses, flattens and is
// classified to exactly the text in the matching .out file. Regenerate with
// UPDATE_GOLDEN=1 after an intended change, and review the diff.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "tests/golden/golden.h"
#include "translator/report/report.h"

using namespace nf2bpf;
namespace fs = std::filesystem;

static std::string golden_output(const fs::path& in) {
  TranslateOptions opt;
  auto text = test::read_file(in.string());
  frontend::Source src{in.filename().string(), text};
  Translation tr = translate_source(src, opt);
  std::string out = "== IR\n" + ir::dump(tr.ruleset) + "== decision lists\n" + ir::dump(tr.pipeline, tr.ruleset) +
                    "== report\n" + report::text(tr);
  return out;
}

TEST_CASE("golden: parse -> IR -> decision lists -> report") {
  auto inputs = test::source_files("tests/golden/iptables", ".rules");
  REQUIRE(inputs.size() >= 5);
  for (const auto& in : inputs) test::check_golden(in, golden_output(in));
}
