#include "translator/frontend/iptables/lexer.h"

namespace nf2bpf::frontend::ipt {

LexResult lex_line(std::string_view line) {
  LexResult r;
  r.tokens.reserve(24);
  size_t i = 0, n = line.size();
  while (i < n) {
    while (i < n && (line[i] == ' ' || line[i] == '\t')) ++i;
    if (i >= n) break;
    Token t;
    t.col = (uint32_t)i + 1;
    size_t start = i;
    char quote = 0;
    while (i < n) {
      char c = line[i];
      if (quote) {
        if (c == '\\' && i + 1 < n) {
          t.text.push_back(line[i + 1]);
          i += 2;
          continue;
        }
        if (c == quote) {
          quote = 0;
          ++i;
          continue;
        }
        t.text.push_back(c);
        ++i;
        continue;
      }
      if (c == ' ' || c == '\t') break;
      if (c != '"' && c != '\'') {  // a run of plain characters, appended at once
        size_t end = i + 1;
        while (end < n && line[end] != ' ' && line[end] != '\t' && line[end] != '"' && line[end] != '\'') ++end;
        t.text.append(line.data() + i, end - i);
        i = end;
        continue;
      }
      quote = c;  // an opening quote
      t.quoted = true;
      r.quote_col = (uint32_t)i + 1;
      ++i;
    }
    if (quote) r.unterminated_quote = true;
    t.len = (uint32_t)(i - start);
    r.tokens.push_back(std::move(t));
  }
  return r;
}

}  // namespace nf2bpf::frontend::ipt
