#include "translator/frontend/nft/lexer.h"

#include <cctype>
#include <cstring>

namespace nf2bpf::frontend::nft {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }

bool ends_word(char c) {
  return is_space(c) || c == '\n' || std::strchr("{}();,\"'#=!<>&|^$", c) != nullptr || c == '\0';
}

}  // namespace

std::vector<Token> lex(std::string_view text, uint32_t file, std::vector<LexError>& errors) {
  std::vector<Token> out;
  size_t pos = 0, n = text.size();
  uint32_t line = 1, col = 1;
  auto emit = [&](Token::Kind k, std::string t, uint32_t c, uint32_t len) {
    Token tok;
    tok.kind = k;
    tok.text = std::move(t);
    tok.file = file;
    tok.line = line;
    tok.col = c;
    tok.len = len;
    out.push_back(std::move(tok));
  };
  auto advance = [&](size_t k) {
    pos += k;
    col += (uint32_t)k;
  };
  auto error = [&](uint32_t c, uint32_t len, std::string msg, std::string hint = {}) {
    if (errors.size() < 50) errors.push_back({line, c, len, std::move(msg), std::move(hint)});
  };

  while (pos < n) {
    char c = text[pos];
    if (c == '\n') {
      if (!out.empty() && out.back().kind != Token::Kind::Newline) emit(Token::Kind::Newline, "", col, 0);
      ++pos;
      ++line;
      col = 1;
      continue;
    }
    if (is_space(c)) {
      advance(1);
      continue;
    }
    if (c == '\\' && pos + 1 < n && (text[pos + 1] == '\n' || (text[pos + 1] == '\r' && pos + 2 < n && text[pos + 2] == '\n'))) {
      pos += text[pos + 1] == '\n' ? 2 : 3;
      ++line;
      col = 1;
      continue;
    }
    if (c == '#') {
      size_t end = text.find('\n', pos);
      if (end == std::string_view::npos) end = n;
      std::string_view comment = text.substr(pos, end - pos);
      // "# handle 12" (nft -a): keep the handle.
      std::string_view rest = comment.substr(1);
      while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
      if (rest.starts_with("handle ")) {
        std::string_view num = rest.substr(7);
        size_t d = 0;
        while (d < num.size() && std::isdigit((unsigned char)num[d])) ++d;
        if (d > 0 && d <= 19) emit(Token::Kind::Handle, std::string(num.substr(0, d)), col, (uint32_t)comment.size());
      }
      advance(end - pos);
      continue;
    }
    if (c == '"' || c == '\'') {
      uint32_t start = col;
      std::string s;
      size_t i = pos + 1;
      bool closed = false;
      for (; i < n && text[i] != '\n'; ++i) {
        if (text[i] == '\\' && i + 1 < n && (text[i + 1] == c || text[i + 1] == '\\')) {
          s += text[++i];
          continue;
        }
        if (text[i] == c) {
          closed = true;
          break;
        }
        s += text[i];
      }
      if (!closed) {
        error(start, 1, "unterminated string", "close the quote before the end of the line");
        advance(i - pos);
        continue;
      }
      emit(Token::Kind::String, std::move(s), start, (uint32_t)(i + 1 - pos));
      advance(i + 1 - pos);
      continue;
    }
    if (c == '$') {
      size_t i = pos + 1;
      while (i < n && (std::isalnum((unsigned char)text[i]) || text[i] == '_' || text[i] == '-')) ++i;
      if (i == pos + 1) {
        error(col, 1, "'$' without a variable name", "variables are written $NAME after 'define NAME = ...'");
        advance(1);
        continue;
      }
      emit(Token::Kind::Var, std::string(text.substr(pos + 1, i - pos - 1)), col, (uint32_t)(i - pos));
      advance(i - pos);
      continue;
    }
    if (std::strchr("{}();,&|^", c)) {
      emit(Token::Kind::Punct, std::string(1, c), col, 1);
      advance(1);
      continue;
    }
    if (std::strchr("=!<>", c)) {
      std::string op(1, c);
      char d = pos + 1 < n ? text[pos + 1] : '\0';
      if (d == '=' || ((c == '<' || c == '>') && d == c)) op += d;
      emit(Token::Kind::Punct, op, col, (uint32_t)op.size());
      advance(op.size());
      continue;
    }
    if ((unsigned char)c < 0x20 || c == 0x7f) {
      error(col, 1, "binary data in the input", "is this an nftables ruleset?");
      advance(1);
      continue;
    }
    size_t i = pos;
    while (i < n && !ends_word(text[i])) {
      if (text[i] == '\\' && i + 1 < n && text[i + 1] == '\n') break;
      if ((unsigned char)text[i] < 0x20) break;
      ++i;
    }
    emit(Token::Kind::Word, std::string(text.substr(pos, i - pos)), col, (uint32_t)(i - pos));
    advance(i - pos);
  }
  Token end;
  end.kind = Token::Kind::End;
  end.file = file;
  end.line = line;
  end.col = col;
  out.push_back(end);
  return out;
}

}  // namespace nf2bpf::frontend::nft
