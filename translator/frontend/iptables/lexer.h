// Splits one iptables-restore line into words the way iptables-restore does:
// whitespace separates, single or double quotes group (the quotes are not
// part of the word), backslash escapes the next character inside quotes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace nf2bpf::frontend::ipt {

struct Token {
  std::string text;
  uint32_t col = 0;  // 1-based column of the first character (quote included)
  uint32_t len = 0;  // width in the source line
  bool quoted = false;
};

struct LexResult {
  std::vector<Token> tokens;
  bool unterminated_quote = false;
  uint32_t quote_col = 0;
};

LexResult lex_line(std::string_view line);

}  // namespace nf2bpf::frontend::ipt
