#include "verify/builder.h"

namespace nf2bpf::verify {

namespace {

void put16(std::vector<uint8_t>& b, uint16_t v) {
  b.push_back((uint8_t)(v >> 8));
  b.push_back((uint8_t)v);
}
void put32(std::vector<uint8_t>& b, uint32_t v) {
  put16(b, (uint16_t)(v >> 16));
  put16(b, (uint16_t)v);
}
void set16(std::vector<uint8_t>& b, size_t at, uint16_t v) {
  b[at] = (uint8_t)(v >> 8);
  b[at + 1] = (uint8_t)v;
}
void put_addr(std::vector<uint8_t>& b, ir::u128 a, uint8_t family) {
  int n = family == 4 ? 4 : 16;
  for (int i = n - 1; i >= 0; --i) b.push_back((uint8_t)(a >> (8 * i)));
}

uint32_t sum_bytes(const uint8_t* p, size_t n, uint32_t acc = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) acc += (uint32_t)((p[i] << 8) | p[i + 1]);
  if (n & 1) acc += (uint32_t)(p[n - 1] << 8);
  return acc;
}
uint16_t fold(uint32_t acc) {
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return (uint16_t)~acc;
}

uint32_t pseudo_sum(const PacketSpec& s, uint8_t proto, size_t len) {
  std::vector<uint8_t> ph;
  put_addr(ph, s.saddr, s.family);
  put_addr(ph, s.daddr, s.family);
  if (s.family == 4) {
    ph.push_back(0);
    ph.push_back(proto);
    put16(ph, (uint16_t)len);
  } else {
    put32(ph, (uint32_t)len);
    put16(ph, 0);
    ph.push_back(0);
    ph.push_back(proto);
  }
  return sum_bytes(ph.data(), ph.size());
}

std::vector<uint8_t> build_l4(const PacketSpec& s) {
  std::vector<uint8_t> l4;
  switch (s.proto) {
    case 6: {
      std::vector<uint8_t> opts = s.tcp_options;
      while (opts.size() % 4) opts.push_back(0);
      put16(l4, s.sport);
      put16(l4, s.dport);
      put32(l4, s.seq);
      put32(l4, s.ack);
      l4.push_back((uint8_t)(((20 + opts.size()) / 4) << 4));
      l4.push_back(s.tcp_flags);
      put16(l4, 64240);  // window
      put16(l4, 0);      // checksum
      put16(l4, 0);      // urgent pointer
      l4.insert(l4.end(), opts.begin(), opts.end());
      l4.insert(l4.end(), s.payload.begin(), s.payload.end());
      set16(l4, 16, fold(sum_bytes(l4.data(), l4.size(), pseudo_sum(s, 6, l4.size()))));
      break;
    }
    case 17:
    case 136: {
      put16(l4, s.sport);
      put16(l4, s.dport);
      put16(l4, (uint16_t)(8 + s.payload.size()));  // UDPLite: checksum coverage = everything
      put16(l4, 0);
      l4.insert(l4.end(), s.payload.begin(), s.payload.end());
      uint16_t c = fold(sum_bytes(l4.data(), l4.size(), pseudo_sum(s, s.proto, l4.size())));
      set16(l4, 6, c == 0 ? 0xffff : c);
      break;
    }
    case 132: {  // SCTP common header + a minimal INIT-less DATA-free packet (checksum left 0)
      put16(l4, s.sport);
      put16(l4, s.dport);
      put32(l4, 0);  // verification tag
      put32(l4, 0);  // CRC32c (not computed: nothing here validates it)
      l4.insert(l4.end(), s.payload.begin(), s.payload.end());
      break;
    }
    case 33: {  // DCCP generic header, 12 bytes with extended sequence numbers
      put16(l4, s.sport);
      put16(l4, s.dport);
      l4.push_back(3);                        // data offset in 4-byte words
      l4.push_back(0);                        // CCVal/CsCov
      put16(l4, 0);                           // checksum
      l4.push_back((uint8_t)((0 << 1) | 1));  // type request(0), X=1
      l4.push_back(0);
      put16(l4, 0);
      l4.insert(l4.end(), s.payload.begin(), s.payload.end());
      break;
    }
    case 1:
    case 58: {
      l4.push_back(s.icmp_type);
      l4.push_back(s.icmp_code);
      put16(l4, 0);
      bool error = s.proto == 1 ? (s.icmp_type == 3 || s.icmp_type == 4 || s.icmp_type == 5 || s.icmp_type == 11 ||
                                   s.icmp_type == 12)
                                : s.icmp_type < 128;
      if (error) {
        put32(l4, 0);  // unused / MTU / pointer
        l4.insert(l4.end(), s.quote.begin(), s.quote.end());
      } else {
        put16(l4, s.icmp_id);
        put16(l4, s.icmp_seq);
        l4.insert(l4.end(), s.payload.begin(), s.payload.end());
      }
      uint32_t acc = s.proto == 58 ? pseudo_sum(s, 58, l4.size()) : 0;
      set16(l4, 2, fold(sum_bytes(l4.data(), l4.size(), acc)));
      break;
    }
    default: l4 = s.payload;
  }
  size_t at = s.proto == 6 ? 16 : s.proto == 17 ? 6 : (s.proto == 1 || s.proto == 58) ? 2 : 0;
  if (s.bad_checksum && at && l4.size() >= at + 2) {
    uint16_t c = (uint16_t)(l4[at] << 8 | l4[at + 1]);
    set16(l4, at, (uint16_t)(c ^ (c == 0x0100 ? 0x0200 : 0x0100)));
  }
  return l4;
}

}  // namespace

std::vector<uint8_t> build_ip(const PacketSpec& s) {
  bool later = s.frag_offset != 0;
  std::vector<uint8_t> l4 = later ? s.payload : build_l4(s);
  std::vector<uint8_t> ip;
  if (s.family == 4) {
    ip.push_back(0x45);
    ip.push_back((uint8_t)(s.dscp << 2 | (s.ecn & 3)));
    put16(ip, (uint16_t)(20 + l4.size()));
    put16(ip, s.ip_id);
    put16(ip, (uint16_t)((s.more_fragments ? 0x2000 : 0) | (s.frag_offset & 0x1fff)));
    ip.push_back(s.ttl);
    ip.push_back(s.proto);
    put16(ip, 0);
    put_addr(ip, s.saddr, 4);
    put_addr(ip, s.daddr, 4);
    set16(ip, 10, fold(sum_bytes(ip.data(), 20)));
  } else {
    std::vector<uint8_t> ext;
    uint8_t first = s.proto;
    // Built back to front: the fragment header is innermost.
    if (s.ipv6_fragment_header) {
      std::vector<uint8_t> fh;
      fh.push_back(first);
      fh.push_back(0);
      put16(fh, (uint16_t)((s.frag_offset << 3) | (s.more_fragments ? 1 : 0)));
      put32(fh, s.ip_id);
      ext.insert(ext.begin(), fh.begin(), fh.end());
      first = 44;
    }
    if (s.ipv6_hop_by_hop) {
      std::vector<uint8_t> hbh = {first, 0, 1, 4, 0, 0, 0, 0};  // PadN option filling 8 bytes
      ext.insert(ext.begin(), hbh.begin(), hbh.end());
      first = 0;
    }
    uint32_t vtc = (6u << 28) | ((uint32_t)(s.dscp << 2 | (s.ecn & 3)) << 20);
    put32(ip, vtc);
    put16(ip, (uint16_t)(ext.size() + l4.size()));
    ip.push_back(first);
    ip.push_back(s.ttl);
    put_addr(ip, s.saddr, 6);
    put_addr(ip, s.daddr, 6);
    ip.insert(ip.end(), ext.begin(), ext.end());
  }
  ip.insert(ip.end(), l4.begin(), l4.end());
  return ip;
}

std::vector<uint8_t> wrap_ethernet(const std::vector<uint8_t>& ip, uint64_t src, uint64_t dst,
                                   const std::vector<uint16_t>& vlans) {
  std::vector<uint8_t> f;
  for (int i = 5; i >= 0; --i) f.push_back((uint8_t)(dst >> (8 * i)));
  for (int i = 5; i >= 0; --i) f.push_back((uint8_t)(src >> (8 * i)));
  for (size_t i = 0; i < vlans.size(); ++i) {
    put16(f, i == 0 && vlans.size() > 1 ? 0x88a8 : 0x8100);
    put16(f, vlans[i]);
  }
  put16(f, !ip.empty() && (ip[0] >> 4) == 6 ? 0x86dd : 0x0800);
  f.insert(f.end(), ip.begin(), ip.end());
  return f;
}

std::vector<uint8_t> wrap_sll(const std::vector<uint8_t>& ip, uint16_t pkttype, uint64_t src_mac) {
  std::vector<uint8_t> f;
  put16(f, pkttype);
  put16(f, 1);  // ARPHRD_ETHER
  put16(f, 6);
  for (int i = 5; i >= 0; --i) f.push_back((uint8_t)(src_mac >> (8 * i)));
  put16(f, 0);
  put16(f, !ip.empty() && (ip[0] >> 4) == 6 ? 0x86dd : 0x0800);
  f.insert(f.end(), ip.begin(), ip.end());
  return f;
}

std::vector<uint8_t> wrap_sll2(const std::vector<uint8_t>& ip, uint8_t pkttype, uint32_t ifindex, uint64_t src_mac) {
  std::vector<uint8_t> f;
  put16(f, !ip.empty() && (ip[0] >> 4) == 6 ? 0x86dd : 0x0800);
  put16(f, 0);
  put32(f, ifindex);
  put16(f, 1);
  f.push_back(pkttype);
  f.push_back(6);
  for (int i = 5; i >= 0; --i) f.push_back((uint8_t)(src_mac >> (8 * i)));
  put16(f, 0);
  f.insert(f.end(), ip.begin(), ip.end());
  return f;
}

}  // namespace nf2bpf::verify
