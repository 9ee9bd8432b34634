// nft's text syntax: `nft list ruleset` output and files for `nft -f`.
// Tokens become syntax trees (ast.h); the Builder applies the commands.
#include "translator/frontend/nft/text_parser.h"

namespace nf2bpf::frontend {

namespace nft_text {

namespace {

const char* const kVerdictWords[] = {"accept", "drop", "continue", "return", "jump", "goto"};

}  // namespace

bool is_verdict_word(std::string_view w) {
  for (auto v : kVerdictWords)
    if (w == v) return true;
  return false;
}

ir::Ruleset TextParser::run() {
  rs_.source = files_[0]->name;
  rs_.frontend = ir::Frontend::Nft;
  end_.kind = TK::End;
  load(*files_[0]);
  for (;;) {
    skip_separators();
    const Token& t = peek();
    if (t.kind == TK::End) break;
    if (diag_.errors() > 1000) break;
    if (t.kind == TK::Punct && t.text == "}") {
      error(t, "unexpected '}'", "is there one '}' too many?");
      next();
      continue;
    }
    if (t.kind != TK::Word) {
      error(t, "unexpected " + describe(t), "a ruleset file holds table blocks and commands");
      skip_stmt();
      if (punct("}")) next();
      continue;
    }
    command();
  }
  b_.finish();
  if (rs_.tables.empty() && !diag_.has_errors() && files_[0]->text.find_first_not_of(" \t\r\n") == std::string::npos)
    diag_.error(ir::SourceLoc{files_[0]->name, 1, 1, 0, {}}, "the input is empty",
                "expected `nft list ruleset` output or a file for `nft -f`");
  return std::move(rs_);
}

}  // namespace nft_text

ir::Ruleset parse_nft_text(const Source& src, diag::Diagnostics& diags, const NftTextOptions& opt) {
  nft_text::TextParser p(src, diags, opt);
  return p.run();
}

}  // namespace nf2bpf::frontend
