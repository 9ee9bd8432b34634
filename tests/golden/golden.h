// The golden-file check the golden tests share: `got` must equal the .out
// file next to the input; UPDATE_GOLDEN=1 rewrites it instead (review the diff).
#pragma once

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "tests/helpers.h"

namespace nf2bpf::test {

inline void check_golden(const std::filesystem::path& in, const std::string& got) {
  std::filesystem::path expected = in;
  expected.replace_extension(".out");
  if (std::getenv("UPDATE_GOLDEN")) {
    std::ofstream(expected) << got;
    return;
  }
  INFO("golden file " << expected.string() << " (UPDATE_GOLDEN=1 regenerates)");
  REQUIRE(std::filesystem::exists(expected));
  CHECK(got == read_file(expected.string()));
}

}  // namespace nf2bpf::test
