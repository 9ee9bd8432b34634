// Network namespaces for kernel tests: created with unique names, removed on
// destruction, at exit and on SIGINT/SIGTERM, so a failed run leaves nothing
// behind. Nothing here touches the caller's own namespace.
#pragma once

#include <string>
#include <vector>

namespace nf2bpf::difftest {

class Netns {
 public:
  explicit Netns(const std::string& role);  // name: nf2bpf-dt-<pid>-<n>-<role>
  ~Netns();
  Netns(const Netns&) = delete;
  Netns& operator=(const Netns&) = delete;

  const std::string& name() const { return name_; }

  // Runs a shell command inside the namespace; returns its exit status.
  // Output is captured into *out when given, else discarded.
  int sh(const std::string& cmd, std::string* out = nullptr) const;
  // Like sh() but aborts the test run (exit 2) on failure, naming the command.
  void must(const std::string& cmd) const;

  // A socket created inside this namespace (the caller's namespace is restored).
  int socket(int domain, int type, int protocol) const;
  unsigned ifindex(const std::string& dev) const;

 private:
  std::string name_;
};

// Runs a command in the caller's namespace; captures stdout+stderr.
int run(const std::string& cmd, std::string* out = nullptr);

// Deletes every namespace this process created (idempotent).
void cleanup_all();

}  // namespace nf2bpf::difftest
