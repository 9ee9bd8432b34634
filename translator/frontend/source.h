// A source text handed to a front-end, and its lines.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace nf2bpf::frontend {

struct Source {
  std::string name;  // shown in locations: the path as given, or "<stdin>"
  std::string text;

  // Splits into lines without copying; "\r\n" endings lose the "\r".
  std::vector<std::string_view> lines() const;
};

}  // namespace nf2bpf::frontend
