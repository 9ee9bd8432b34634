// What every command shares about talking to the user: how much to say
// (-v, -q) and how an error is printed. Commands print their result line to
// std::cout and everything else through detail(), which -q silences; errors
// go to stderr whatever -q says.
#pragma once

#include <ostream>
#include <string>
#include <utility>
#include <vector>

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

// "-" is standard input wherever a file is read, and it can be read once:
// given (what, value) pairs such as {"FILE", "-"}, {"--pcap", "-"}, prints
// the usage error and returns false when more than one is "-".
bool one_stdin(const std::vector<std::pair<std::string, std::string>>& inputs);

}  // namespace nf2bpf::cli
