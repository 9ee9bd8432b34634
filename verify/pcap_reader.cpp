#include "verify/pcap_reader.h"

#include <pcap/pcap.h>

#include <cstdio>
#include <cstring>

namespace nf2bpf::verify {

// Walks pcapng blocks in file order. Each packet block libpcap returns is the
// next packet block here, so the two stay in step without sharing state.
class PcapngScanner {
 public:
  explicit PcapngScanner(const std::string& path) : f_(std::fopen(path.c_str(), "rb")) {}
  ~PcapngScanner() {
    if (f_) std::fclose(f_);
  }
  PcapngScanner(const PcapngScanner&) = delete;
  PcapngScanner& operator=(const PcapngScanner&) = delete;

  struct Meta {
    int interface = -1;
    Direction dir = Direction::Unknown;
    std::string comment;
  };

  // Advances to the next packet block. False when the file ends or a block
  // cannot be read (the metadata is then simply unknown).
  bool next_packet(Meta& m) {
    while (f_ && !broken_) {
      uint8_t hdr[8];
      if (std::fread(hdr, 1, 8, f_) != 8) return false;
      uint32_t type = u32(hdr), total = u32(hdr + 4);
      if (type == 0x0A0D0D0A) {
        // Section header: byte order comes from the magic that follows.
        uint8_t magic[4];
        if (std::fread(magic, 1, 4, f_) != 4) return false;
        if (std::memcmp(magic, "\x4d\x3c\x2b\x1a", 4) == 0)
          swapped_ = false;
        else if (std::memcmp(magic, "\x1a\x2b\x3c\x4d", 4) == 0)
          swapped_ = true;
        else
          return fail();
        total = u32(hdr + 4);
        if (total < 28 || total % 4) return fail();
        // Interface ids restart in every section.
        section_base_ = ifaces_.size();
        if (std::fseek(f_, (long)total - 12, SEEK_CUR) != 0) return fail();
        continue;
      }
      if (total < 12 || total % 4 || total > (1u << 28)) return fail();
      std::vector<uint8_t> body(total - 12);
      if (!body.empty() && std::fread(body.data(), 1, body.size(), f_) != body.size()) return false;
      uint8_t trailer[4];
      if (std::fread(trailer, 1, 4, f_) != 4) return false;
      if (type == 1) {
        read_idb(body);
      } else if (type == 6) {  // enhanced packet block
        if (body.size() < 20) return fail();
        m = Meta{};
        m.interface = (int)(section_base_ + u32(body.data()));
        uint32_t caplen = u32(body.data() + 12);
        size_t opt = 20 + ((size_t)caplen + 3) / 4 * 4;
        read_options(body, opt, [&](uint16_t code, const uint8_t* v, uint16_t len) {
          if (code == 2 && len == 4) {  // epb_flags: bits 0-1 inbound/outbound
            uint32_t fl = u32(v);
            if ((fl & 3) == 1)
              m.dir = Direction::Inbound;
            else if ((fl & 3) == 2)
              m.dir = Direction::Outbound;
          } else if (code == 1) {
            m.comment.assign((const char*)v, len);
          }
        });
        return true;
      } else if (type == 3) {  // simple packet block: always interface 0
        m = Meta{};
        m.interface = (int)section_base_;
        return true;
      } else if (type == 2) {  // obsolete packet block
        if (body.size() < 2) return fail();
        m = Meta{};
        m.interface = (int)(section_base_ + u16(body.data()));
        return true;
      }
    }
    return false;
  }

  const std::vector<CaptureInterface>& interfaces() const { return ifaces_; }

 private:
  bool fail() {
    broken_ = true;
    return false;
  }
  uint16_t u16(const uint8_t* p) const {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return swapped_ ? __builtin_bswap16(v) : v;
  }
  uint32_t u32(const uint8_t* p) const {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return swapped_ ? __builtin_bswap32(v) : v;
  }

  template <typename Fn>
  void read_options(const std::vector<uint8_t>& b, size_t off, Fn&& fn) {
    while (off + 4 <= b.size()) {
      uint16_t code = u16(b.data() + off), len = u16(b.data() + off + 2);
      if (code == 0) break;
      if (off + 4 + len > b.size()) break;
      fn(code, b.data() + off + 4, len);
      off += 4 + ((size_t)len + 3) / 4 * 4;
    }
  }

  void read_idb(const std::vector<uint8_t>& b) {
    CaptureInterface ci;
    if (b.size() >= 8) ci.linktype = u16(b.data());
    read_options(b, 8, [&](uint16_t code, const uint8_t* v, uint16_t len) {
      if (code == 2) {
        ci.name.assign((const char*)v, len);
        while (!ci.name.empty() && ci.name.back() == 0) ci.name.pop_back();
      } else if (code == 4 && len == 8) {
        uint32_t a = ((uint32_t)v[0] << 24) | ((uint32_t)v[1] << 16) | ((uint32_t)v[2] << 8) | v[3];
        ci.addrs.push_back(ir::v4_to_u128(a));
        uint32_t mask = ((uint32_t)v[4] << 24) | ((uint32_t)v[5] << 16) | ((uint32_t)v[6] << 8) | v[7];
        ci.prefix_lens.push_back(96 + (unsigned)__builtin_popcount(mask));
      } else if (code == 5 && len == 17) {
        ir::u128 a = 0;
        for (int i = 0; i < 16; ++i) a = (a << 8) | v[i];
        ci.addrs.push_back(a);
        ci.prefix_lens.push_back(v[16] > 128 ? 128 : v[16]);
      }
    });
    ifaces_.push_back(std::move(ci));
  }

  std::FILE* f_ = nullptr;
  bool swapped_ = false, broken_ = false;
  size_t section_base_ = 0;
  std::vector<CaptureInterface> ifaces_;
};

namespace {

// libpcap and the pcapng scanner each read a capture from its start, which a
// pipe cannot give twice: standard input is copied to an unlinked temporary
// file first, and both open it through /proc/self/fd.
Result<std::FILE*> spool_stdin() {
  std::FILE* f = std::tmpfile();
  if (!f) return sys_error("create a temporary file for the capture on standard input");
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, stdin)) > 0)
    if (std::fwrite(buf, 1, n, f) != n) {
      int e = errno;
      std::fclose(f);
      return sys_error("copy the capture on standard input to a temporary file", e);
    }
  if (std::ferror(stdin) || std::fflush(f) != 0) {
    int e = errno;
    std::fclose(f);
    return sys_error("read the capture on standard input", e);
  }
  return f;
}

}  // namespace

Result<std::unique_ptr<CaptureReader>> CaptureReader::open(const std::string& name) {
  std::FILE* spool = nullptr;
  std::string path = name;
  if (name == "-") {
    auto s = spool_stdin();
    if (!s) return s.error();
    spool = *s;
    path = "/proc/self/fd/" + std::to_string(fileno(spool));
  }
  auto r = open_file(path, name == "-" ? "<stdin>" : name);
  if (r)
    (*r)->spool_ = spool;
  else if (spool)
    std::fclose(spool);
  return r;
}

// `path` is what is opened, `name` what messages say.
Result<std::unique_ptr<CaptureReader>> CaptureReader::open_file(const std::string& file, const std::string& path) {
  std::FILE* probe = std::fopen(file.c_str(), "rb");
  if (!probe) return sys_error("open " + path);
  uint8_t magic[4] = {};
  size_t got = std::fread(magic, 1, 4, probe);
  std::fclose(probe);
  if (got < 4) return Error{0, path + ": not a pcap or pcapng capture (file is " + std::to_string(got) + " bytes)"};

  char errbuf[PCAP_ERRBUF_SIZE] = {};
  pcap_t* p = pcap_open_offline_with_tstamp_precision(file.c_str(), PCAP_TSTAMP_PRECISION_NANO, errbuf);
  if (!p) return Error{0, path + ": " + errbuf};
  std::unique_ptr<CaptureReader> r(new CaptureReader);
  r->pcap_ = p;
  r->path_ = path;
  r->dlt_ = pcap_datalink(p);
  r->pcapng_ = std::memcmp(magic, "\x0a\x0d\x0d\x0a", 4) == 0;
  if (r->pcapng_) r->scanner_ = std::make_unique<PcapngScanner>(file);
  if (!link_type_supported(r->dlt_)) {
    const char* name = pcap_datalink_val_to_name(r->dlt_);
    return Error{0, path + ": link type " + std::to_string(r->dlt_) + (name ? std::string(" (") + name + ")" : "") +
                        " is not supported; captures must be Ethernet, Linux cooked (SLL/SLL2) or raw IP"};
  }
  return r;
}

CaptureReader::~CaptureReader() {
  if (pcap_) pcap_close(pcap_);
  scanner_.reset();
  if (spool_) std::fclose(spool_);
}

const std::vector<CaptureInterface>& CaptureReader::interfaces() const {
  static const std::vector<CaptureInterface> kNone;
  return scanner_ ? scanner_->interfaces() : kNone;
}

bool CaptureReader::next(Frame& f) {
  if (!pcap_ || !error_.empty()) return false;
  pcap_pkthdr* h = nullptr;
  const u_char* data = nullptr;
  int rc = pcap_next_ex(pcap_, &h, &data);
  if (rc == PCAP_ERROR_BREAK) return false;  // end of file
  if (rc != 1) {
    error_ = path_ + ": packet " + std::to_string(count_ + 1) + ": " + pcap_geterr(pcap_);
    return false;
  }
  ++count_;
  f = Frame{};
  f.number = count_;
  f.time = (double)h->ts.tv_sec + (double)h->ts.tv_usec / 1e9;  // nanosecond precision
  f.data = data;
  f.caplen = h->caplen;
  f.wirelen = h->len;
  if (scanner_) {
    PcapngScanner::Meta m;
    if (scanner_->next_packet(m)) {
      f.interface = m.interface;
      f.dir = m.dir;
      f.comment = std::move(m.comment);
    }
  }
  return true;
}

std::string decode(const CaptureReader& r, const Frame& f, Captured& out) {
  out = Captured{};
  out.packet.number = f.number;
  out.packet.time = f.time;
  std::string err = decode_frame(r.dlt(), f.data, f.caplen, out);
  if (f.interface >= 0 && (size_t)f.interface < r.interfaces().size())
    out.ifname = r.interfaces()[(size_t)f.interface].name;
  if (f.dir != Direction::Unknown) out.dir = f.dir;
  out.comment = f.comment;
  if (!err.empty() && f.caplen < f.wirelen && err.find("cut off") != std::string::npos)
    err += " (the capture kept " + std::to_string(f.caplen) + " of " + std::to_string(f.wirelen) +
           " bytes: record with a larger snap length, e.g. tcpdump -s 0)";
  return err;
}

}  // namespace nf2bpf::verify
