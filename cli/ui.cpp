#include "cli/ui.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>

namespace nf2bpf::cli {

Ui& ui() {
  static Ui u;
  return u;
}

std::ostream& detail() {
  static std::ostream discard(nullptr);
  return ui().quiet ? discard : std::cout;
}

bool stdout_color() { return isatty(1) && !getenv("NO_COLOR"); }
bool stderr_color() { return isatty(2) && !getenv("NO_COLOR"); }

bool one_stdin(const std::vector<std::pair<std::string, std::string>>& inputs) {
  std::string first;
  for (const auto& [what, value] : inputs) {
    if (value != "-") continue;
    if (first.empty()) {
      first = what;
      continue;
    }
    print_error(first + " and " + what + " both read standard input ('-')", "give one of them as a file");
    return false;
  }
  return true;
}

void print_error(const std::string& message, const std::string& hint) {
  bool color = stderr_color();
  std::fprintf(stderr, "%snf2bpf: error:%s %s\n", color ? "\033[1;31m" : "", color ? "\033[0m" : "", message.c_str());
  if (!hint.empty()) std::fprintf(stderr, "  hint: %s\n", hint.c_str());
}

}  // namespace nf2bpf::cli
