// Golden tests: every tests/golden/iptables/*.rules parses, flattens and is
// classified to exactly the text in the matching .out file. Regenerate with
// UPDATE_GOLDEN=1 after an intended change, and review the diff.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "tests/helpers.h"
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
  fs::path dir = test::src_path("tests/golden/iptables");
  std::vector<fs::path> inputs;
  for (auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".rules") inputs.push_back(e.path());
  std::sort(inputs.begin(), inputs.end());
  REQUIRE(inputs.size() >= 5);
  bool update = getenv("UPDATE_GOLDEN") != nullptr;
  for (const auto& in : inputs) {
    fs::path expected = in;
    expected.replace_extension(".out");
    std::string got = golden_output(in);
    if (update) {
      std::ofstream(expected) << got;
      continue;
    }
    INFO("golden file " << expected.string() << " (UPDATE_GOLDEN=1 regenerates)");
    REQUIRE(fs::exists(expected));
    CHECK(got == test::read_file(expected.string()));
  }
}
