// Command-line usage beyond what CLI11 checks: an unknown command or an option
// before the command is named as such (CLI11 only says "A subcommand is
// required"), with the closest known name as a suggestion; CLI11's own parse
// errors are put in plain words; help shows placeholders (FILE, IF, PCT), not
// parser type labels.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <vector>

namespace nf2bpf::cli {

struct UsageProblem {
  std::string message, hint;
};

// The name in `candidates` closest to `word` (edit distance, or a prefix of
// it), or "" when none is close enough to be a plausible typo.
std::string closest(const std::string& word, const std::vector<std::string>& candidates);

// The command named in `args` (argv without the program name), "" if none.
std::string find_command(const CLI::App& app, const std::vector<std::string>& args);

// Looks at `args` the way the parser will: a missing or unknown command, an
// unknown option (before or after the command). Values of options are not
// checked here; CLI11 does that.
std::optional<UsageProblem> check_usage(const CLI::App& app, const std::vector<std::string>& args);

// A CLI11 parse error as a sentence and a hint naming the command's help.
UsageProblem explain(const CLI::ParseError& e, const std::string& command);

// Help without parser type labels: an option shows its placeholder
// (option_text, e.g. FILE), "..." when it repeats, nothing for a flag.
class HelpFormatter : public CLI::Formatter {
 public:
  std::string make_option_opts(const CLI::Option* opt) const override;
};

}  // namespace nf2bpf::cli
