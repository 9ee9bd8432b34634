// Small string helpers shared by the front-ends and the reference evaluator.
#pragma once

#include <string_view>
#include <vector>

namespace nf2bpf {

// The parts of `s` between `sep`s, empty ones included: "a,,b" is
// {"a", "", "b"} and "" is {""}. The views point into `s`.
std::vector<std::string_view> split(std::string_view s, char sep);

}  // namespace nf2bpf
