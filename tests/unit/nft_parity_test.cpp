// Text/JSON parity: every golden nft input has a hand-written JSON twin
// (tests/golden/nft/NAME.json, the libnftables schema); both must give the
// same IR, set elements, decision lists and capability names.
#include <catch2/catch.hpp>
#include <filesystem>

#include "tests/unit/nft_support.h"

using namespace nf2bpf;
namespace fs = std::filesystem;

TEST_CASE("nft parity: text and JSON of every golden input give the same IR") {
  auto inputs = test::source_files("tests/golden/nft", ".nft");
  REQUIRE(inputs.size() >= 14);
  size_t compared = 0;
  for (const auto& in : inputs) {
    fs::path js = in;
    js.replace_extension(".json");
    std::string text = test::read_file(in.string());
    if (text.find("nft-roundtrip: skip") != std::string::npos) continue;  // inputs nft refuses on purpose
    INFO("golden input " << in.filename().string() << " and " << js.filename().string());
    REQUIRE(fs::exists(js));
    auto cwd = fs::current_path();
    fs::current_path(in.parent_path());  // includes are relative to the file
    auto t = test::parse_nft(text, in.filename().string());
    fs::current_path(cwd);
    auto j = test::parse_nft_json(test::read_file(js.string()), js.filename().string());
    INFO("text diagnostics:\n" << t.rendered() << "JSON diagnostics:\n" << j.rendered());
    CHECK(t.diags.errors() == 0);
    CHECK(j.diags.errors() == 0);
    CHECK(test::deep_dump(t.rs) == test::deep_dump(j.rs));
    CHECK(test::dump_caps(t.rs) == test::dump_caps(j.rs));
    ++compared;
  }
  CHECK(compared >= 14);
}
