// What every command shares about talking to the user: how much to say
// (-v, -q) and how an error is printed. Commands print their result line to
// std::cout and everything else through detail(), which -q silences; errors
// go to stderr whatever -q says.
#pragma once

#include <ostream>
#include <string>

namespace nf2bpf::cli {

struct Ui {
  int verbose = 0;     // -v: 1, -vv: 2, -vvv: 3
  bool quiet = false;  // -q: the result line only
};

Ui& ui();

// std::cout, or a stream that discards when -q is given.
std::ostream& detail();

// Prints "nf2bpf: error: MESSAGE" (and "  hint: ...") to stderr.
void print_error(const std::string& message, const std::string& hint = {});
bool stdout_color();
bool stderr_color();

}  // namespace nf2bpf::cli
