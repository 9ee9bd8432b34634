#include "verify/pcap_writer.h"

#include <pcap/pcap.h>

#include <cerrno>
#include <cmath>
#include <cstring>

namespace nf2bpf::verify {

// ---- pcap via libpcap --------------------------------------------------------

Result<PcapWriter> PcapWriter::open(const std::string& path, int dlt, int snaplen) {
  PcapWriter w;
  w.path_ = path;
  w.pcap_ = pcap_open_dead_with_tstamp_precision(dlt, snaplen, PCAP_TSTAMP_PRECISION_NANO);
  if (!w.pcap_) return Error{0, "pcap_open_dead for " + path};
  w.dumper_ = pcap_dump_open(w.pcap_, path.c_str());
  if (!w.dumper_) return Error{0, "create " + path + ": " + pcap_geterr(w.pcap_)};
  return w;
}

PcapWriter::PcapWriter(PcapWriter&& o) noexcept : pcap_(o.pcap_), dumper_(o.dumper_), path_(std::move(o.path_)) {
  o.pcap_ = nullptr;
  o.dumper_ = nullptr;
}

PcapWriter::~PcapWriter() { (void)close(); }

void PcapWriter::write(double time, const std::vector<uint8_t>& frame) {
  if (!dumper_) return;
  pcap_pkthdr h{};
  double sec = std::floor(time);
  h.ts.tv_sec = (time_t)sec;
  h.ts.tv_usec = (suseconds_t)std::llround((time - sec) * 1e9);  // nanoseconds: the dumper is nano-precision
  if (h.ts.tv_usec >= 1000000000) h.ts.tv_sec += 1, h.ts.tv_usec -= 1000000000;
  h.caplen = h.len = (bpf_u_int32)frame.size();
  pcap_dump((u_char*)dumper_, &h, frame.data());
}

Result<void> PcapWriter::close() {
  Result<void> r;
  if (dumper_) {
    if (pcap_dump_flush(dumper_) != 0) r = sys_error("write " + path_);
    pcap_dump_close(dumper_);
    dumper_ = nullptr;
  }
  if (pcap_) {
    pcap_close(pcap_);
    pcap_ = nullptr;
  }
  return r;
}

// ---- pcapng --------------------------------------------------------------------

namespace {

void put16(std::vector<uint8_t>& b, uint16_t v) {
  uint8_t x[2];
  std::memcpy(x, &v, 2);
  b.insert(b.end(), x, x + 2);
}
void put32(std::vector<uint8_t>& b, uint32_t v) {
  uint8_t x[4];
  std::memcpy(x, &v, 4);
  b.insert(b.end(), x, x + 4);
}
void pad4(std::vector<uint8_t>& b) {
  while (b.size() % 4) b.push_back(0);
}
void option(std::vector<uint8_t>& b, uint16_t code, const void* v, size_t len) {
  put16(b, code);
  put16(b, (uint16_t)len);
  const uint8_t* p = (const uint8_t*)v;
  b.insert(b.end(), p, p + len);
  pad4(b);
}
void end_options(std::vector<uint8_t>& b) {
  put16(b, 0);
  put16(b, 0);
}

}  // namespace

Result<PcapngWriter> PcapngWriter::open(const std::string& path) {
  PcapngWriter w;
  w.path_ = path;
  w.f_ = std::fopen(path.c_str(), "wb");
  if (!w.f_) return sys_error("create " + path);
  std::vector<uint8_t> shb;
  put32(shb, 0x1A2B3C4D);  // byte-order magic, written in host order
  put16(shb, 1);
  put16(shb, 0);
  put32(shb, 0xffffffff);  // section length unknown
  put32(shb, 0xffffffff);
  const char app[] = "nf2bpf diff --synthesize";
  option(shb, 4, app, sizeof app - 1);  // shb_userappl
  end_options(shb);
  w.block(0x0A0D0D0A, shb);
  return w;
}

PcapngWriter::PcapngWriter(PcapngWriter&& o) noexcept
    : f_(o.f_), path_(std::move(o.path_)), failed_(o.failed_), next_if_(o.next_if_) {
  o.f_ = nullptr;
}

PcapngWriter::~PcapngWriter() { (void)close(); }

void PcapngWriter::block(uint32_t type, const std::vector<uint8_t>& body) {
  if (!f_) return;
  std::vector<uint8_t> b;
  uint32_t total = (uint32_t)(12 + body.size());
  put32(b, type);
  put32(b, total);
  b.insert(b.end(), body.begin(), body.end());
  put32(b, total);
  if (std::fwrite(b.data(), 1, b.size(), f_) != b.size()) failed_ = true;
}

uint32_t PcapngWriter::add_interface(const std::string& name, int dlt, const std::vector<ir::u128>& addrs) {
  std::vector<uint8_t> idb;
  put16(idb, (uint16_t)dlt);
  put16(idb, 0);
  put32(idb, 262144);
  if (!name.empty()) option(idb, 2, name.data(), name.size());
  uint8_t tsresol = 9;  // nanoseconds
  option(idb, 9, &tsresol, 1);
  for (ir::u128 a : addrs) {
    if (ir::is_v4_mapped(a)) {
      uint8_t v[8] = {(uint8_t)(a >> 24), (uint8_t)(a >> 16), (uint8_t)(a >> 8), (uint8_t)a, 255, 255, 255, 255};
      option(idb, 4, v, 8);
    } else {
      uint8_t v[17];
      for (int i = 0; i < 16; ++i) v[i] = (uint8_t)(a >> (8 * (15 - i)));
      v[16] = 128;
      option(idb, 5, v, 17);
    }
  }
  end_options(idb);
  block(1, idb);
  return next_if_++;
}

void PcapngWriter::write(uint32_t interface, double time, const std::vector<uint8_t>& frame, Direction dir,
                         const std::string& comment) {
  std::vector<uint8_t> epb;
  uint64_t ts = (uint64_t)std::llround(time * 1e9);
  put32(epb, interface);
  put32(epb, (uint32_t)(ts >> 32));
  put32(epb, (uint32_t)ts);
  put32(epb, (uint32_t)frame.size());
  put32(epb, (uint32_t)frame.size());
  epb.insert(epb.end(), frame.begin(), frame.end());
  pad4(epb);
  bool opts = false;
  if (!comment.empty()) {
    option(epb, 1, comment.data(), comment.size());
    opts = true;
  }
  if (dir != Direction::Unknown) {
    uint32_t flags = dir == Direction::Inbound ? 1 : 2;
    option(epb, 2, &flags, 4);
    opts = true;
  }
  if (opts) end_options(epb);
  block(6, epb);
}

Result<void> PcapngWriter::close() {
  if (!f_) return {};
  bool bad = failed_ || std::fflush(f_) != 0;
  int e = errno;
  std::fclose(f_);
  f_ = nullptr;
  if (bad) return Error{e, "write " + path_};
  return {};
}

}  // namespace nf2bpf::verify
