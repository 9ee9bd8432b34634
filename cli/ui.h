// What every command shares about talking to the user: how much to say
// (-v, -q), text or one JSON document (--format json), and how an error is
// printed. A command prints its result line to text(), everything else to
// detail() (which -q silences); in JSON mode both are silent and the command
// prints one document with emit_json(). Errors go to stderr whatever -q says,
// and in JSON mode also as the document on stdout.
#pragma once

#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

namespace nf2bpf::cli {

struct Ui {
  int verbose = 0;             // -v: 1, -vv: 2, -vvv: 3
  bool quiet = false;          // -q: the result line only
  bool json = false;           // --format json: one document on stdout
  bool emitted = false;        // that document was printed
  std::string color = "auto";  // --color auto|always|never
  std::string command;         // the command being run (for hints)
};

Ui& ui();

// The result line(s): std::cout, silent in JSON mode.
std::ostream& text();
// Everything else: std::cout, silent with -q or in JSON mode.
std::ostream& detail();

// Prints `doc` with "exit": status added, as the command's one JSON document.
void emit_json(nlohmann::json doc, int status);
// Prints a report document (translate, diff) as it is. Both print every
// string as UTF-8: input bytes that are not UTF-8 are read as Latin-1
// (common/strings.h utf8_or_latin1), never an error.
void print_json(const nlohmann::json& doc);

// Prints "nf2bpf: error: MESSAGE" (and "  hint: ...") to stderr.
void print_error(const std::string& message, const std::string& hint = {});
// print_error, and in JSON mode (unless a document was already printed)
// {"result": "error", "message", "hint", "exit": status, ...extra} on
// stdout. Returns `status`. A permission error without the capabilities gets
// the hint that the command needs root.
int fail(int status, const std::string& message, const std::string& hint = {},
         const nlohmann::json& extra = nlohmann::json::object());

// Colour on stdout / stderr: --color always or never; auto: when it is a
// terminal, NO_COLOR is not set and TERM is not dumb.
bool stdout_color();
bool stderr_color();

// Progress of long work (common/progress.h) as one line on stderr, redrawn in
// place: only when stderr is a terminal (not TERM=dumb), never with -q or in
// JSON mode, nothing for work that takes less than half a second.
// end_progress() takes the line off the screen; whatever prints calls it
// first (text(), detail(), errors and the log do).
void start_progress();
void end_progress();

// spdlog's default logger writes to stdout; nf2bpf's log goes to stderr,
// after end_progress().
void log_to_stderr();

// "-" is standard input wherever a file is read, and it can be read once:
// given (what, value) pairs such as {"FILE", "-"}, {"--pcap", "-"}, prints
// the usage error and returns false when more than one is "-".
bool one_stdin(const std::vector<std::pair<std::string, std::string>>& inputs);

}  // namespace nf2bpf::cli
