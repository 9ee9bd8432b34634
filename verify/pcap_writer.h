// Writes captures: classic pcap through libpcap's dumper, and pcapng (which
// libpcap 1.10 cannot write) for captures that must keep interface names,
// directions and this host's addresses, as `diff --synthesize` needs.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "common/result.h"
#include "translator/ir/values.h"
#include "verify/parse.h"

struct pcap;
struct pcap_dumper;

namespace nf2bpf::verify {

class PcapWriter {
 public:
  static Result<PcapWriter> open(const std::string& path, int dlt, int snaplen = 262144);
  PcapWriter(PcapWriter&& o) noexcept;
  PcapWriter& operator=(PcapWriter&&) = delete;
  ~PcapWriter();
  void write(double time, const std::vector<uint8_t>& frame);
  Result<void> close();

 private:
  PcapWriter() = default;
  ::pcap* pcap_ = nullptr;
  ::pcap_dumper* dumper_ = nullptr;
  std::string path_;
};

class PcapngWriter {
 public:
  static Result<PcapngWriter> open(const std::string& path);
  PcapngWriter(PcapngWriter&& o) noexcept;
  PcapngWriter& operator=(PcapngWriter&&) = delete;
  ~PcapngWriter();
  // Adds an interface description; returns its id. `addrs` are recorded as
  // if_IPv4addr/if_IPv6addr (host routes), which the reader treats as local.
  uint32_t add_interface(const std::string& name, int dlt, const std::vector<ir::u128>& addrs = {});
  void write(uint32_t interface, double time, const std::vector<uint8_t>& frame, Direction dir = Direction::Unknown,
             const std::string& comment = {});
  Result<void> close();

 private:
  PcapngWriter() = default;
  void block(uint32_t type, const std::vector<uint8_t>& body);
  std::FILE* f_ = nullptr;
  std::string path_;
  bool failed_ = false;
  uint32_t next_if_ = 0;
};

}  // namespace nf2bpf::verify
