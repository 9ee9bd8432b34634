// Golden tests for the nftables front-end: every tests/golden/nft/*.nft is
// parsed, flattened and classified to exactly the text in the matching .out
// file (IR, set elements, decision lists, report). UPDATE_GOLDEN=1
// regenerates them; read the diff before committing it.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "tests/unit/nft_support.h"
#include "translator/report/report.h"

using namespace nf2bpf;
namespace fs = std::filesystem;

static std::string nft_golden_output(const fs::path& in) {
  TranslateOptions opt;
  opt.from = "nft";
  frontend::Source src{in.filename().string(), test::read_file(in.string())};
  // Includes resolve relative to the file: run from its directory.
  auto cwd = fs::current_path();
  fs::current_path(in.parent_path());
  Translation tr = translate_source(src, opt);
  fs::current_path(cwd);
  return "== IR\n" + ir::dump(tr.ruleset) + "== sets\n" + test::dump_sets(tr.ruleset) + "== decision lists\n" +
         ir::dump(tr.pipeline, tr.ruleset) + "== report\n" + report::text(tr);
}

TEST_CASE("nft golden: parse -> IR -> decision lists -> report") {
  fs::path dir = test::src_path("tests/golden/nft");
  std::vector<fs::path> inputs;
  for (auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".nft") inputs.push_back(e.path());
  std::sort(inputs.begin(), inputs.end());
  REQUIRE(inputs.size() >= 14);
  bool update = getenv("UPDATE_GOLDEN") != nullptr;
  for (const auto& in : inputs) {
    fs::path expected = in;
    expected.replace_extension(".out");
    std::string got = nft_golden_output(in);
    if (update) {
      std::ofstream(expected) << got;
      continue;
    }
    INFO("golden file " << expected.string() << " (UPDATE_GOLDEN=1 regenerates)");
    REQUIRE(fs::exists(expected));
    CHECK(got == test::read_file(expected.string()));
  }
}
