#include "common/strings.h"

#include <cstdint>
#include <cstdio>

namespace nf2bpf {

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    size_t p = s.find(sep, start);
    out.push_back(s.substr(start, p == std::string_view::npos ? std::string_view::npos : p - start));
    if (p == std::string_view::npos) break;
    start = p + 1;
  }
  return out;
}

size_t utf8_seq(std::string_view s, size_t i, uint32_t& cp) {
  auto c = (unsigned char)s[i];
  size_t n = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  cp = n == 1 ? c : n == 2 ? c & 0x1f : n == 3 ? c & 0x0f : c & 0x07;
  for (size_t k = 1; k < n; ++k) {
    auto x = (unsigned char)s[i + k];
    if ((x & 0xc0) != 0x80) return 0;
    cp = cp << 6 | (x & 0x3f);
  }
  static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return n;
}

namespace {

void hex_escape(std::string& out, unsigned char b) {
  char buf[5];
  std::snprintf(buf, sizeof buf, "\\x%02x", b);
  out += buf;
}

}  // namespace

std::string utf8_or_latin1(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0;
    size_t n = utf8_seq(s, i, cp);
    if (n) {
      out.append(s.substr(i, n));
      i += n;
      continue;
    }
    auto b = (unsigned char)s[i++];  // >= 0x80: ASCII is always valid
    out += (char)(0xc0 | b >> 6);
    out += (char)(0x80 | (b & 0x3f));
  }
  return out;
}

std::string escape_controls(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0;
    size_t n = utf8_seq(s, i, cp);
    auto b = (unsigned char)s[i];
    if (n == 0) {  // a stray byte: a C1 control on an 8-bit terminal
      if (b <= 0x9f)
        hex_escape(out, b);
      else
        out += (char)b;
      ++i;
      continue;
    }
    if ((cp < 0x20 && cp != '\t' && cp != '\n') || cp == 0x7f)
      hex_escape(out, (unsigned char)cp);
    else if (cp >= 0x80 && cp <= 0x9f)
      hex_escape(out, (unsigned char)cp);  // U+0080-U+009F: shown as the C1 code
    else
      out.append(s.substr(i, n));
    i += n;
  }
  return out;
}

}  // namespace nf2bpf
