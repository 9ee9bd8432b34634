#include "tests/kernel/difftest/netns.h"

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <set>

namespace nf2bpf::difftest {

namespace {
// Never destroyed: the atexit cleanup may run after static destructors.
std::set<std::string>& live() {
  static auto* s = new std::set<std::string>;
  return *s;
}
int counter = 0;

void on_signal(int sig) {
  cleanup_all();
  signal(sig, SIG_DFL);
  raise(sig);
}

void install_cleanup() {
  static bool done = false;
  if (done) return;
  done = true;
  atexit(cleanup_all);
  // Also a closed output pipe (`difftest ... | head`) and a lost terminal.
  for (int sig : {SIGINT, SIGTERM, SIGPIPE, SIGHUP}) signal(sig, on_signal);
}
}  // namespace

int run(const std::string& cmd, std::string* out) {
  std::string full = cmd + " 2>&1";
  FILE* p = popen(full.c_str(), "r");
  if (!p) return -1;
  char buf[4096];
  std::string acc;
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) acc.append(buf, n);
  int st = pclose(p);
  if (out) *out = acc;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

void cleanup_all() {
  for (const auto& n : live()) run("ip netns del " + n);
  live().clear();
}

Netns::Netns(const std::string& role) {
  install_cleanup();
  name_ = "nf2bpf-dt-" + std::to_string(getpid()) + "-" + std::to_string(counter++) + "-" + role;
  std::string out;
  if (run("ip netns add " + name_, &out) != 0) {
    fprintf(stderr, "difftest: ip netns add %s: %s\n", name_.c_str(), out.c_str());
    exit(2);
  }
  live().insert(name_);
  must("ip link set lo up");
}

Netns::~Netns() {
  run("ip netns del " + name_);
  live().erase(name_);
}

int Netns::sh(const std::string& cmd, std::string* out) const {
  std::string q = cmd;
  std::string esc;
  for (char c : q) {
    if (c == '\'')
      esc += "'\\''";
    else
      esc += c;
  }
  return run("ip netns exec " + name_ + " sh -c '" + esc + "'", out);
}

void Netns::must(const std::string& cmd) const {
  std::string out;
  if (sh(cmd, &out) != 0) {
    fprintf(stderr, "difftest: in %s: `%s` failed:\n%s\n", name_.c_str(), cmd.c_str(), out.c_str());
    exit(2);
  }
}

int Netns::socket(int domain, int type, int protocol) const {
  int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  int target = open(("/var/run/netns/" + name_).c_str(), O_RDONLY | O_CLOEXEC);
  if (self < 0 || target < 0 || setns(target, CLONE_NEWNET) != 0) {
    perror("difftest: setns");
    exit(2);
  }
  int fd = ::socket(domain, type, protocol);
  int err = errno;
  if (setns(self, CLONE_NEWNET) != 0) {
    perror("difftest: setns back");
    exit(2);
  }
  close(self);
  close(target);
  if (fd < 0) {
    errno = err;
    perror("difftest: socket");
    exit(2);
  }
  return fd;
}

unsigned Netns::ifindex(const std::string& dev) const {
  std::string out;
  sh("cat /sys/class/net/" + dev + "/ifindex", &out);
  return (unsigned)std::strtoul(out.c_str(), nullptr, 10);
}

}  // namespace nf2bpf::difftest
