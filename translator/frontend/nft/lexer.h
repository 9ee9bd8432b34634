// Tokens of nft's text syntax.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace nf2bpf::frontend::nft {

struct Token {
  enum class Kind : uint8_t {
    Word,    // names, numbers, addresses, "10.0.0.0/8", "@set", "-", ".", ":"
    String,  // "quoted" (text without the quotes)
    Punct,   // { } ( ) ; , = == != < > <= >= << >> & | ^ !
    Newline,
    Handle,  // "# handle N" comment from `nft -a`: text = N
    Var,     // $name: text = name
    End,
  };
  Kind kind = Kind::End;
  std::string text;
  uint32_t file = 0;  // index in the parser's file table
  uint32_t line = 0, col = 0, len = 0;
  std::string via;  // the variable this token was expanded from
};

struct LexError {
  uint32_t line, col, len;
  std::string message, hint;
};

// Splits one file into tokens (ending with End). Comments disappear except
// "# handle N"; "\" at the end of a line joins it with the next.
std::vector<Token> lex(std::string_view text, uint32_t file, std::vector<LexError>& errors);

}  // namespace nf2bpf::frontend::nft
