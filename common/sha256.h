// SHA-256 (FIPS 180-4), for policy checksums.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace nf2bpf {

std::string sha256_hex(std::string_view data);

}  // namespace nf2bpf
