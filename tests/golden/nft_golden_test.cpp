// Golden tests for the nftables front-end: every tests/golden/nft/*.nft is
// parsed, flattened and classified to exactly the text in the matching .out
// file (IR, set elements, decision lists, report). UPDATE_GOLDEN=1
// regenerates them; read the diff before committing it.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "tests/golden/golden.h"
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
  auto inputs = test::source_files("tests/golden/nft", ".nft");
  REQUIRE(inputs.size() >= 14);
  for (const auto& in : inputs) test::check_golden(in, nft_golden_output(in));
}
