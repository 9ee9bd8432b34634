#include "cli/ui.h"

#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <mutex>

#include "cli/command.h"
#include "common/json_text.h"
#include "common/progress.h"
#include "common/strings.h"
#include "loader/privileges.h"

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

std::ostream& text() {
  end_progress();
  return ui().json ? discard() : std::cout;
}

std::ostream& detail() {
  end_progress();
  return ui().quiet || ui().json ? discard() : std::cout;
}

namespace {

std::string thousands(uint64_t n) {
  std::string s = std::to_string(n);
  for (int i = (int)s.size() - 3; i > 0; i -= 3) s.insert((size_t)i, ",");
  return s;
}

class TerminalProgress : public progress::Sink {
 public:
  void show(std::string_view what, uint64_t done, uint64_t total) override {
    if (ui().quiet || ui().json) return;
    auto now = Clock::now();
    // Work that ends quickly shows nothing; a line is redrawn 10 times a
    // second at most, or when the step changes.
    if (now - start_ < std::chrono::milliseconds(500)) return;
    if (shown_ && what == what_ && now - drawn_ < std::chrono::milliseconds(100)) return;
    what_ = what;
    drawn_ = now;
    std::string line = "nf2bpf: " + what_;
    if (done && total)
      line += ": " + thousands(done) + " of " + thousands(total);
    else if (done)
      line += ": " + thousands(done);
    line += " (" + std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now - start_).count()) + " s)";
    winsize ws{};
    size_t width = ioctl(2, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 ? ws.ws_col - 1 : 79;
    if (line.size() > width) line.resize(width);
    size_t pad = shown_ > line.size() ? shown_ - line.size() : 0;
    std::fprintf(stderr, "\r%s%*s", line.c_str(), (int)pad, "");
    std::fflush(stderr);
    shown_ = line.size();
  }
  void clear() {
    if (!shown_) return;
    std::fprintf(stderr, "\r%*s\r", (int)shown_, "");
    std::fflush(stderr);
    shown_ = 0;
  }

 private:
  using Clock = std::chrono::steady_clock;
  Clock::time_point start_ = Clock::now(), drawn_;
  std::string what_;
  size_t shown_ = 0;  // characters of the line on screen, 0 when none is
};

TerminalProgress* g_progress = nullptr;

class StderrSink : public spdlog::sinks::base_sink<std::mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    end_progress();
    spdlog::memory_buf_t buf;
    formatter_->format(msg, buf);
    std::fwrite(buf.data(), 1, buf.size(), stderr);
  }
  void flush_() override { std::fflush(stderr); }
};

}  // namespace

void start_progress() {
  const char* term = getenv("TERM");
  if (!isatty(2) || (term && std::strcmp(term, "dumb") == 0)) return;
  static TerminalProgress p;
  g_progress = &p;
  progress::set_sink(&p);
}

void end_progress() {
  if (g_progress) g_progress->clear();
}

void log_to_stderr() {
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("nf2bpf", std::make_shared<StderrSink>()));
}

void print_json(const nlohmann::json& doc) {
  end_progress();
  std::cout << dump_utf8(doc, 2) << "\n";
  std::cout.flush();
  ui().emitted = true;
}

void emit_json(nlohmann::json doc, int status) {
  doc["exit"] = status;
  print_json(doc);
}

namespace {
bool color_on(int fd) {
  if (ui().color != "auto") return ui().color == "always";
  const char* term = getenv("TERM");
  return isatty(fd) && !getenv("NO_COLOR") && !(term && std::strcmp(term, "dumb") == 0);
}
}  // namespace

bool stdout_color() { return color_on(1); }
bool stderr_color() { return color_on(2); }

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
  end_progress();
  bool color = stderr_color();
  // Messages quote input (chain names, file names): its control bytes are escaped.
  std::fprintf(stderr, "%snf2bpf: error:%s %s\n", color ? "\033[1;31m" : "", color ? "\033[0m" : "",
               escape_controls(message).c_str());
  if (!hint.empty()) std::fprintf(stderr, "  hint: %s\n", escape_controls(hint).c_str());
}

int fail(int status, const std::string& message, const std::string& given_hint, const nlohmann::json& extra) {
  std::string hint = given_hint;
  if (status == kSystem)
    if (std::string h = loader::privilege_hint(ui().command, message); !h.empty()) hint = h;
  print_error(message, hint);
  if (ui().json && !ui().emitted) {
    nlohmann::json doc = {
        {"result", "error"}, {"message", message}, {"hint", hint.empty() ? nlohmann::json() : nlohmann::json(hint)}};
    for (const auto& [k, v] : extra.items()) doc[k] = v;
    emit_json(std::move(doc), status);
  }
  return status;
}

}  // namespace nf2bpf::cli
