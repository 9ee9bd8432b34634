// Small string helpers shared by the front-ends and the reference evaluator.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace nf2bpf {

// The parts of `s` between `sep`s, empty ones included: "a,,b" is
// {"a", "", "b"} and "" is {""}. The views point into `s`.
std::vector<std::string_view> split(std::string_view s, char sep);

// `s` as valid UTF-8 (what JSON must be): valid sequences are kept, and each
// byte that is not part of one is read as Latin-1, the byte 0xE9 becoming
// U+00E9 "é" (a Latin-1 comment in iptables-save output reads right).
std::string utf8_or_latin1(std::string_view s);

// Length of the valid UTF-8 sequence at s[i] (1-4), its code point in `cp`;
// 0 when the bytes there are not one (overlong, surrogate, beyond U+10FFFF).
size_t utf8_seq(std::string_view s, size_t i, uint32_t& cp);

// `s` safe to print on a terminal: control characters (C0 but tab and
// newline, DEL, C1 whether UTF-8-encoded or raw bytes 0x80-0x9f) become
// "\xNN" (ESC is "\x1b"), so input bytes cannot move the cursor, recolour
// or retitle the terminal. Everything else is kept as it is.
std::string escape_controls(std::string_view s);

}  // namespace nf2bpf
