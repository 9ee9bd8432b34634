// User-input problems are diagnostics: accumulated, located, printed like a
// compiler's. They are never exceptions; system failures use Result<T>.
#pragma once

#include <string>
#include <vector>

#include "translator/ir/ir.h"

namespace nf2bpf::diag {

enum class Severity { Note, Warning, Error };
const char* to_string(Severity s);

struct Diagnostic {
  Severity severity = Severity::Error;
  ir::SourceLoc loc;
  std::string message;
  std::string hint;
  std::string source_line;  // the line the location points into, for the caret display
};

class Diagnostics {
 public:
  void error(const ir::SourceLoc& loc, std::string msg, std::string hint = {}, std::string line = {});
  void warning(const ir::SourceLoc& loc, std::string msg, std::string hint = {}, std::string line = {});
  void note(const ir::SourceLoc& loc, std::string msg, std::string hint = {}, std::string line = {});
  void add(Diagnostic d);

  size_t errors() const { return errors_; }
  size_t warnings() const { return warnings_; }
  bool has_errors() const { return errors_ > 0; }
  const std::vector<Diagnostic>& all() const { return list_; }
  // Caps runaway inputs (binary garbage) at a readable number of messages.
  static constexpr size_t kMaxStored = 200;
  size_t suppressed() const { return suppressed_; }

 private:
  std::vector<Diagnostic> list_;
  size_t errors_ = 0, warnings_ = 0, suppressed_ = 0;
};

// file:line:col: error: message
//     <source line>
//     ^~~~
//   hint: ...
std::string render(const Diagnostic& d, bool color = false);

// Renders `ds` in the given order, folding repeats: of the diagnostics with
// the same severity, message and hint, the first kShownRepeats are shown,
// then one line "  ... and N more like this (the last at LOC)"; the rest are
// left out. One ruleset can hold a hundred identical problems (every rule of
// a nat table) and the reader needs to see the first few and the count.
constexpr size_t kShownRepeats = 3;
std::string render_folded(const std::vector<const Diagnostic*>& ds, bool color = false);
std::string render_folded(const Diagnostics& ds, bool color = false);
// The errors only, folded (what -q and refusals print on stderr).
std::string render_errors(const Diagnostics& ds, bool color = false);

}  // namespace nf2bpf::diag
