// Progress of long work (a 100,000-rule ruleset, a capture of a million
// packets) for a person watching a terminal. Libraries say what they are
// doing and how far they are; whether and how that is shown is the command
// line's business (cli/ui.cpp: one line on stderr, on a terminal only, never
// with -q or --format json). Without a sink, a report costs one load and a
// branch; loops still call it only every few hundred items.
#pragma once

#include <cstdint>
#include <string_view>

namespace nf2bpf::progress {

class Sink {
 public:
  virtual ~Sink() = default;
  // `done` of `total` items of `what` (total 0: not known; done 0: no count).
  virtual void show(std::string_view what, uint64_t done, uint64_t total) = 0;
};

extern Sink* g_sink;

inline void set_sink(Sink* s) { g_sink = s; }

inline void report(std::string_view what, uint64_t done = 0, uint64_t total = 0) {
  if (g_sink) g_sink->show(what, done, total);
}

// For loops: a report every 1024 items.
inline void tick(std::string_view what, uint64_t done, uint64_t total = 0) {
  if ((done & 1023) == 0) report(what, done, total);
}

}  // namespace nf2bpf::progress
