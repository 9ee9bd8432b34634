// The not-root hint: given only for a permission error, and only when the
// capabilities are really missing (checked here both ways by dropping them in
// a child process).
#include <linux/capability.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "loader/privileges.h"

using namespace nf2bpf;

namespace {

// Runs `f` in a child whose effective capabilities are cleared; its return
// value is the child's exit status (0 = true).
int in_child_without_caps(bool (*f)()) {
  pid_t pid = fork();
  if (pid == 0) {
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3]{};
    if (syscall(SYS_capget, &header, data) != 0) _exit(3);
    for (auto& d : data) d.effective = 0;
    if (syscall(SYS_capset, &header, data) != 0) _exit(4);
    _exit(f() ? 0 : 1);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 5;
}

}  // namespace

TEST_CASE("privilege hint: only for permission errors, only without the capabilities") {
  CHECK(loader::privilege_hint("apply", "open x.rules: No such file or directory").empty());
  if (loader::can_load_bpf())
    CHECK(loader::privilege_hint("apply", "mount bpffs on /sys/fs/bpf: Operation not permitted").empty());
  CHECK(in_child_without_caps([] { return !loader::can_load_bpf(); }) == 0);
  CHECK(in_child_without_caps([] {
          return loader::privilege_hint("apply", "mount bpffs on /sys/fs/bpf: Operation not permitted") ==
                     "nf2bpf apply needs root or CAP_BPF+CAP_NET_ADMIN" &&
                 loader::privilege_hint("status", "open /sys/fs/bpf/nf2bpf: Permission denied") ==
                     "nf2bpf status needs root or CAP_BPF+CAP_NET_ADMIN" &&
                 loader::privilege_hint("apply", "open x: No such file or directory").empty();
        }) == 0);
}
