// Reads pcap and pcapng captures with libpcap, one record at a time.
//
// libpcap (1.10) reads pcapng packets but does not tell which interface a
// packet came from, nor the interfaces' names, addresses or the per-packet
// direction flags. A small block scanner walks the same file alongside it to
// recover those from the Interface Description and Enhanced Packet blocks.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "translator/ir/values.h"
#include "verify/parse.h"

struct pcap;

namespace nf2bpf::verify {

// One pcapng Interface Description Block.
struct CaptureInterface {
  std::string name;  // if_name, may be empty
  int linktype = 0;
  std::vector<ir::u128> addrs;        // if_IPv4addr / if_IPv6addr (128-bit IR space)
  std::vector<unsigned> prefix_lens;  // the network of each address, as a 128-bit prefix length
};

// One record as stored in the file.
struct Frame {
  uint64_t number = 0;            // 1-based position in the capture
  double time = 0;                // seconds since the epoch
  const uint8_t* data = nullptr;  // valid until the next call to next()
  size_t caplen = 0;
  uint32_t wirelen = 0;
  int interface = -1;                  // pcapng interface id, -1 for pcap
  Direction dir = Direction::Unknown;  // pcapng epb_flags
  std::string comment;                 // pcapng opt_comment
};

class PcapngScanner;

class CaptureReader {
 public:
  // Opening problems (missing file, not a capture, unsupported link type)
  // are Errors; the message names the file. "-" is standard input.
  static Result<std::unique_ptr<CaptureReader>> open(const std::string& path);
  ~CaptureReader();
  CaptureReader(const CaptureReader&) = delete;
  CaptureReader& operator=(const CaptureReader&) = delete;

  // The next record. False at the end of the capture or when the file is
  // malformed or truncated; then error() names the packet and the problem.
  bool next(Frame& f);
  const std::string& error() const { return error_; }

  int dlt() const { return dlt_; }
  bool pcapng() const { return pcapng_; }
  const std::string& path() const { return path_; }
  // Interfaces seen so far (pcapng); the entry for a packet's interface is
  // known by the time next() returns it.
  const std::vector<CaptureInterface>& interfaces() const;
  uint64_t count() const { return count_; }

 private:
  CaptureReader() = default;
  static Result<std::unique_ptr<CaptureReader>> open_file(const std::string& file, const std::string& path);
  ::pcap* pcap_ = nullptr;
  std::unique_ptr<PcapngScanner> scanner_;
  std::FILE* spool_ = nullptr;  // standard input's copy, for "-"
  std::string path_, error_;
  int dlt_ = 0;
  bool pcapng_ = false;
  uint64_t count_ = 0;
};

// Decodes a frame from `r` into `out`, attaching what the capture knows about
// the interface and direction. Returns "" or why the packet is skipped.
std::string decode(const CaptureReader& r, const Frame& f, Captured& out);

}  // namespace nf2bpf::verify
