#include "translator/diag/diagnostics.h"

#include <algorithm>
#include <map>
#include <tuple>

#include "common/strings.h"

namespace nf2bpf::diag {

const char* to_string(Severity s) {
  switch (s) {
    case Severity::Note: return "note";
    case Severity::Warning: return "warning";
    case Severity::Error: return "error";
  }
  return "?";
}

void Diagnostics::add(Diagnostic d) {
  if (d.severity == Severity::Error) ++errors_;
  if (d.severity == Severity::Warning) ++warnings_;
  if (list_.size() >= kMaxStored) {
    ++suppressed_;
    return;
  }
  list_.push_back(std::move(d));
}

void Diagnostics::error(const ir::SourceLoc& loc, std::string msg, std::string hint, std::string line) {
  add({Severity::Error, loc, std::move(msg), std::move(hint), std::move(line)});
}
void Diagnostics::warning(const ir::SourceLoc& loc, std::string msg, std::string hint, std::string line) {
  add({Severity::Warning, loc, std::move(msg), std::move(hint), std::move(line)});
}
void Diagnostics::note(const ir::SourceLoc& loc, std::string msg, std::string hint, std::string line) {
  add({Severity::Note, loc, std::move(msg), std::move(hint), std::move(line)});
}

// Source lines can be arbitrarily long (1 MB lines are a test case) or hold
// control bytes: show a window around the column and make bytes printable.
static std::string printable_window(const std::string& line, uint32_t col, uint32_t& caret_col) {
  constexpr size_t kWidth = 120;
  size_t c = col ? col - 1 : 0;
  size_t start = 0;
  if (line.size() > kWidth && c > kWidth / 2) start = std::min(c - kWidth / 2, line.size());
  size_t end = std::min(line.size(), start + kWidth);
  std::string out;
  if (start > 0) out += "...";
  size_t prefix = out.size();
  for (size_t i = start; i < end; ++i) {
    unsigned char ch = (unsigned char)line[i];
    out.push_back(ch >= 0x20 && ch < 0x7f ? (char)ch : (ch == '\t' ? ' ' : '?'));
  }
  if (end < line.size()) out += "...";
  caret_col = (uint32_t)(c - start + prefix);
  return out;
}

std::string render(const Diagnostic& d, bool color) {
  const char* sev_color = d.severity == Severity::Error     ? "\033[1;31m"
                          : d.severity == Severity::Warning ? "\033[1;35m"
                                                            : "\033[1;36m";
  std::string out;
  if (color) out += "\033[1m";
  // Messages quote the input: its control bytes are escaped (escape_controls).
  out += escape_controls(d.loc.str());
  out += ": ";
  if (color) out += sev_color;
  out += to_string(d.severity);
  out += ": ";
  if (color) out += "\033[0;1m";
  out += escape_controls(d.message);
  if (color) out += "\033[0m";
  out += "\n";
  if (!d.source_line.empty() && d.loc.col == 0) {  // a whole rule (nft JSON, kernel): no caret
    uint32_t caret = 0;
    out += "    " + printable_window(d.source_line, 1, caret) + "\n";
  } else if (!d.source_line.empty() && d.loc.col > 0) {
    uint32_t caret = 0;
    std::string shown = printable_window(d.source_line, d.loc.col, caret);
    out += "    " + shown + "\n";
    out += "    " + std::string(caret, ' ');
    if (color) out += "\033[1;32m";
    out += "^";
    uint32_t len = d.loc.len > 1 ? d.loc.len - 1 : 0;
    len = std::min<uint32_t>(len, (uint32_t)(shown.size() > caret + 1 ? shown.size() - caret - 1 : 0));
    out += std::string(len, '~');
    if (color) out += "\033[0m";
    out += "\n";
  }
  if (!d.hint.empty()) out += "  hint: " + escape_controls(d.hint) + "\n";
  return out;
}

std::string render_folded(const std::vector<const Diagnostic*>& ds, bool color) {
  using Key = std::tuple<Severity, std::string_view, std::string_view>;
  struct Group {
    size_t total = 0, seen = 0;
    const Diagnostic* last = nullptr;
  };
  std::map<Key, Group> groups;
  for (const auto* d : ds) {
    Group& g = groups[Key{d->severity, d->message, d->hint}];
    ++g.total;
    g.last = d;
  }
  std::string out;
  for (const auto* d : ds) {
    Group& g = groups[Key{d->severity, d->message, d->hint}];
    ++g.seen;
    if (g.seen <= kShownRepeats) out += render(*d, color);
    if (g.seen == kShownRepeats && g.total > kShownRepeats)
      out += "  ... and " + std::to_string(g.total - kShownRepeats) + " more like this (the last at " +
             escape_controls(g.last->loc.str()) + ")\n";
  }
  return out;
}

std::string render_folded(const Diagnostics& ds, bool color) {
  std::vector<const Diagnostic*> v;
  for (const auto& d : ds.all()) v.push_back(&d);
  return render_folded(v, color);
}

std::string render_errors(const Diagnostics& ds, bool color) {
  std::vector<const Diagnostic*> v;
  for (const auto& d : ds.all())
    if (d.severity == Severity::Error) v.push_back(&d);
  return render_folded(v, color);
}

}  // namespace nf2bpf::diag
