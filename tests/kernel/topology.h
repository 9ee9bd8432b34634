// The private network namespace the kernel packet tests run in: three veth
// devices (peers p-NAME stay in the namespace) with fixed MACs and addresses, forwarding on, and routes that send
// two documentation prefixes out of two different devices. The packet tests
// name devices and addresses from here; the programs' FIB lookups see exactly
// this (and nothing of the host's namespace).
#pragma once

#include <cstdint>
#include <string>

namespace nf2bpf::ktest {

struct Device {
  const char* name;
  uint64_t mac;
  const char* v4;  // address/prefix on the device (with its subnet broadcast)
  const char* v6;
};

//   nfk0  10.0.0.1/24  fd00::1/64   the LAN: clients 10.0.0.2 / fd00::2
//   nfk1  10.1.0.1/24  fd01::1/64   uplink 1: 198.51.100.0/24 and 2001:db8:51::/64 via .2 / ::2
//   nfw0  10.2.0.1/24  fd02::1/64   uplink 2: 203.0.113.0/24 and 2001:db8:203::/64 via .2 / ::2
inline constexpr Device kDevices[] = {
    {"nfk0", 0x0200000000a0ULL, "10.0.0.1/24", "fd00::1/64"},
    {"nfk1", 0x0200000000b0ULL, "10.1.0.1/24", "fd01::1/64"},
    {"nfw0", 0x0200000000c0ULL, "10.2.0.1/24", "fd02::1/64"},
};

// The MAC of the hosts on the other side of every device.
inline constexpr uint64_t kPeerMac = 0x020000000002ULL;

const Device* device(const std::string& name);

// Unshares a new network namespace and builds the topology in it. Returns an
// empty string on success, otherwise what failed.
std::string enter_test_namespace();

}  // namespace nf2bpf::ktest
