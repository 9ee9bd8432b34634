#include "translator/frontend/nft/lexer.h"

#include <cctype>
#include <cstring>

namespace nf2bpf::frontend::nft {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }

bool ends_word(char c) {
  return is_space(c) || c == '\n' || std::strchr("{}();,\"'#=!<>&|^$", c) != nullptr || c == '\0';
}

class Lexer {
 public:
  Lexer(std::string_view text, uint32_t file, std::vector<LexError>& errors)
      : text_(text), n_(text.size()), file_(file), errors_(errors) {}
  std::vector<Token> run();

 private:
  void emit(Token::Kind k, std::string t, uint32_t c, uint32_t len) {
    Token tok;
    tok.kind = k;
    tok.text = std::move(t);
    tok.file = file_;
    tok.line = line_;
    tok.col = c;
    tok.len = len;
    out_.push_back(std::move(tok));
  }
  void advance(size_t k) {
    pos_ += k;
    col_ += (uint32_t)k;
  }
  void error(uint32_t c, uint32_t len, std::string msg, std::string hint = {}) {
    if (errors_.size() < 50) errors_.push_back({line_, c, len, std::move(msg), std::move(hint)});
  }
  void comment();
  void quoted(char q);
  void variable();
  void word();

  std::string_view text_;
  size_t pos_ = 0, n_;
  uint32_t file_;
  std::vector<LexError>& errors_;
  std::vector<Token> out_;
  uint32_t line_ = 1, col_ = 1;
};

std::vector<Token> Lexer::run() {
  while (pos_ < n_) {
    char c = text_[pos_];
    if (c == '\n') {
      if (!out_.empty() && out_.back().kind != Token::Kind::Newline) emit(Token::Kind::Newline, "", col_, 0);
      ++pos_;
      ++line_;
      col_ = 1;
    } else if (is_space(c)) {
      advance(1);
    } else if (c == '\\' && pos_ + 1 < n_ &&
               (text_[pos_ + 1] == '\n' || (text_[pos_ + 1] == '\r' && pos_ + 2 < n_ && text_[pos_ + 2] == '\n'))) {
      pos_ += text_[pos_ + 1] == '\n' ? 2 : 3;
      ++line_;
      col_ = 1;
    } else if (c == '#') {
      comment();
    } else if (c == '"' || c == '\'') {
      quoted(c);
    } else if (c == '$') {
      variable();
    } else if (std::strchr("{}();,&|^", c)) {
      emit(Token::Kind::Punct, std::string(1, c), col_, 1);
      advance(1);
    } else if (std::strchr("=!<>", c)) {
      std::string op(1, c);
      char d = pos_ + 1 < n_ ? text_[pos_ + 1] : '\0';
      if (d == '=' || ((c == '<' || c == '>') && d == c)) op += d;
      emit(Token::Kind::Punct, op, col_, (uint32_t)op.size());
      advance(op.size());
    } else if ((unsigned char)c < 0x20 || c == 0x7f) {
      error(col_, 1, "binary data in the input", "is this an nftables ruleset?");
      advance(1);
    } else {
      word();
    }
  }
  Token end;
  end.kind = Token::Kind::End;
  end.file = file_;
  end.line = line_;
  end.col = col_;
  out_.push_back(end);
  return std::move(out_);
}

void Lexer::comment() {
  size_t end = text_.find('\n', pos_);
  if (end == std::string_view::npos) end = n_;
  std::string_view comment = text_.substr(pos_, end - pos_);
  // "# handle 12" (nft -a): keep the handle.
  std::string_view rest = comment.substr(1);
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  if (rest.starts_with("handle ")) {
    std::string_view num = rest.substr(7);
    size_t d = 0;
    while (d < num.size() && std::isdigit((unsigned char)num[d])) ++d;
    if (d > 0 && d <= 19) emit(Token::Kind::Handle, std::string(num.substr(0, d)), col_, (uint32_t)comment.size());
  }
  advance(end - pos_);
}

void Lexer::quoted(char q) {
  uint32_t start = col_;
  std::string s;
  size_t i = pos_ + 1;
  bool closed = false;
  for (; i < n_ && text_[i] != '\n'; ++i) {
    if (text_[i] == '\\' && i + 1 < n_ && (text_[i + 1] == q || text_[i + 1] == '\\')) {
      s += text_[++i];
      continue;
    }
    if (text_[i] == q) {
      closed = true;
      break;
    }
    s += text_[i];
  }
  if (!closed) {
    error(start, 1, "unterminated string", "close the quote before the end of the line");
    advance(i - pos_);
    return;
  }
  emit(Token::Kind::String, std::move(s), start, (uint32_t)(i + 1 - pos_));
  advance(i + 1 - pos_);
}

void Lexer::variable() {
  size_t i = pos_ + 1;
  while (i < n_ && (std::isalnum((unsigned char)text_[i]) || text_[i] == '_' || text_[i] == '-')) ++i;
  if (i == pos_ + 1) {
    error(col_, 1, "'$' without a variable name", "variables are written $NAME after 'define NAME = ...'");
    advance(1);
    return;
  }
  emit(Token::Kind::Var, std::string(text_.substr(pos_ + 1, i - pos_ - 1)), col_, (uint32_t)(i - pos_));
  advance(i - pos_);
}

void Lexer::word() {
  size_t i = pos_;
  while (i < n_ && !ends_word(text_[i])) {
    if (text_[i] == '\\' && i + 1 < n_ && text_[i + 1] == '\n') break;
    if ((unsigned char)text_[i] < 0x20) break;
    ++i;
  }
  emit(Token::Kind::Word, std::string(text_.substr(pos_, i - pos_)), col_, (uint32_t)(i - pos_));
  advance(i - pos_);
}

}  // namespace

std::vector<Token> lex(std::string_view text, uint32_t file, std::vector<LexError>& errors) {
  return Lexer(text, file, errors).run();
}

}  // namespace nf2bpf::frontend::nft
