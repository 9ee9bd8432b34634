#include "loader/privileges.h"

#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

namespace nf2bpf::loader {

bool can_load_bpf() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3]{};
  if (syscall(SYS_capget, &header, data) != 0) return true;
  auto has = [&](int cap) { return (data[cap / 32].effective & (1u << (cap % 32))) != 0; };
  return (has(CAP_BPF) || has(CAP_SYS_ADMIN)) && has(CAP_NET_ADMIN);
}

std::string privilege_hint(const std::string& command, const std::string& error) {
  // The errors carry strerror's text (common/result.h).
  bool denied =
      error.find(std::strerror(EPERM)) != std::string::npos || error.find(std::strerror(EACCES)) != std::string::npos;
  if (!denied || can_load_bpf()) return {};
  return "nf2bpf " + command + " needs root or CAP_BPF+CAP_NET_ADMIN";
}

}  // namespace nf2bpf::loader
