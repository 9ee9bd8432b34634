#include "cli/ui.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>

namespace nf2bpf::cli {

namespace {
std::ostream& discard() {
  static std::ostream s(nullptr);
  return s;
}
}  // namespace

Ui& ui() {
  static Ui u;
  return u;
}

std::ostream& text() { return ui().json ? discard() : std::cout; }

std::ostream& detail() { return ui().quiet || ui().json ? discard() : std::cout; }

void emit_json(nlohmann::json doc, int status) {
  doc["exit"] = status;
  // Input bytes that are not UTF-8 (a Latin-1 comment) are replaced, never fatal.
  std::cout << doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  std::cout.flush();
  ui().emitted = true;
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

int fail(int status, const std::string& message, const std::string& hint, const nlohmann::json& extra) {
  print_error(message, hint);
  if (ui().json && !ui().emitted) {
    nlohmann::json doc = {{"result", "error"}, {"message", message}, {"hint", hint.empty() ? nlohmann::json() : nlohmann::json(hint)}};
    for (const auto& [k, v] : extra.items()) doc[k] = v;
    emit_json(std::move(doc), status);
  }
  return status;
}

}  // namespace nf2bpf::cli
