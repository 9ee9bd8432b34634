// Facts about this network namespace the dataplane needs: its interfaces and
// the type of its addresses (what `-m addrtype` and `fib ... type` test).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"
#include "translator/ir/values.h"

namespace nf2bpf::loader {

struct Interface {
  std::string name;
  uint32_t ifindex = 0;
  bool up = false;  // IFF_UP when listed
};

// Every interface in the current network namespace.
Result<std::vector<Interface>> list_interfaces();

struct AddrTypeEntry {
  ir::u128 addr;      // IR address space (IPv4 mapped)
  uint8_t prefixlen;  // over the 128-bit address
  uint32_t type;      // ir::AddrType bit
};

// Address types as the kernel's local table classifies them: this host's
// addresses (LOCAL; all of 127/8), subnet and limited broadcasts (BROADCAST),
// multicast ranges, the unspecified addresses.
Result<std::vector<AddrTypeEntry>> address_types();

// Each interface's first address per family, as the kernel lists them (its
// primary IPv4 address; the first IPv6 address that is not link-local):
// where REDIRECT sends a packet that came in on it.
struct InterfaceAddress {
  uint32_t ifindex = 0;
  uint8_t family = 4;  // 4 or 6
  ir::u128 addr = 0;   // IR address space (IPv4 mapped)
};
Result<std::vector<InterfaceAddress>> interface_addresses();

// Looks an address up in `entries` (longest prefix), UNICAST when none.
uint32_t addrtype_of(const std::vector<AddrTypeEntry>& entries, const ir::u128& a);

// The network namespace's inode number. The kernel reuses these once a
// namespace is gone, except the initial namespace's (kInitNetnsInode).
Result<uint64_t> netns_id();
inline constexpr uint64_t kInitNetnsInode = 0xEFFFFFF9;  // PROC_NET_INIT_INO

// The network namespace's cookie (SO_NETNS_COOKIE, Linux 5.14): never given
// to another namespace until the machine reboots.
Result<uint64_t> netns_cookie();
// The cookie of the namespace a /proc/PID/ns/net or bind mount names (root).
Result<uint64_t> netns_cookie_of(const std::string& path);
// A TC filter on an interface's clsact hook, in the order the kernel runs
// them (lower pref first).
struct TcFilter {
  uint32_t pref = 0, handle = 0;
  std::string kind;  // "bpf", "matchall", "u32" ...
  std::string name;  // bpf: the program's name
};
Result<std::vector<TcFilter>> tc_filters(uint32_t ifindex, bool ingress);

// /proc/sys/kernel/random/boot_id: tells one boot's cookies from another's.
std::string boot_id();

}  // namespace nf2bpf::loader
