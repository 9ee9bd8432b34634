// common/strings.h: input bytes made safe for JSON and for a terminal.
#include <catch2/catch.hpp>

#include "common/strings.h"
#include "translator/diag/diagnostics.h"

using namespace nf2bpf;

TEST_CASE("utf8_or_latin1: valid UTF-8 kept, other bytes read as Latin-1") {
  CHECK(utf8_or_latin1("caf\xc3\xa9") == "caf\xc3\xa9");
  CHECK(utf8_or_latin1("caf\xe9") == "caf\xc3\xa9");
  CHECK(utf8_or_latin1("\xff") == "\xc3\xbf");
  CHECK(utf8_or_latin1("\xc3") == "\xc3\x83");                          // a truncated sequence: its byte alone
  CHECK(utf8_or_latin1("\xed\xa0\x80") == "\xc3\xad\xc2\xa0\xc2\x80");  // a surrogate is not UTF-8
}

TEST_CASE("escape_controls: control characters as \\xNN, the rest kept") {
  CHECK(escape_controls("EVIL\x1b]0;owned\x07") == "EVIL\\x1b]0;owned\\x07");
  CHECK(escape_controls("tab\tand\nnewline") == "tab\tand\nnewline");
  CHECK(escape_controls("del\x7f") == "del\\x7f");
  CHECK(escape_controls("c1 \xc2\x9b") == "c1 \\x9b");  // U+009B, CSI
  CHECK(escape_controls("raw \x9b") == "raw \\x9b");    // the byte on an 8-bit terminal
  CHECK(escape_controls("caf\xe9 caf\xc3\xa9") == "caf\xe9 caf\xc3\xa9");
}

TEST_CASE("render_folded: identical diagnostics after the third are counted, not shown") {
  diag::Diagnostics d;
  for (uint32_t i = 1; i <= 10; ++i) d.error(ir::SourceLoc{"f", i, 1, 0, {}}, "unsupported table nat", "NAT");
  d.warning(ir::SourceLoc{"f", 11, 1, 0, {}}, "something else");
  std::string out = diag::render_folded(d);
  CHECK(out.find("f:3:1: error") != std::string::npos);
  CHECK(out.find("f:4:1: error") == std::string::npos);
  CHECK(out.find("... and 7 more like this (the last at f:10:1)") != std::string::npos);
  CHECK(out.find("f:11:1: warning: something else") != std::string::npos);
}
