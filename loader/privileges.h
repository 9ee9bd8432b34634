// Whether this process may do what the dataplane commands do, for the hint
// that follows a refused operation ("mount bpffs: Operation not permitted").
#pragma once

#include <string>

namespace nf2bpf::loader {

// CAP_BPF (or CAP_SYS_ADMIN, which implies it) and CAP_NET_ADMIN in the
// effective set. True when the capabilities cannot be read: a hint is only
// given when they are known to be missing.
bool can_load_bpf();

// "nf2bpf COMMAND needs root or CAP_BPF+CAP_NET_ADMIN" when `error` is a
// permission error (EPERM, EACCES) and the capabilities are missing, else "".
std::string privilege_hint(const std::string& command, const std::string& error);

}  // namespace nf2bpf::loader
