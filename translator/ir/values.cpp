#include "translator/ir/values.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace nf2bpf::ir {

IntervalSet IntervalSet::range(u128 lo, u128 hi) {
  IntervalSet s;
  s.add(lo, hi);
  return s;
}

IntervalSet IntervalSet::prefix(u128 base, unsigned len, unsigned width) {
  unsigned host_bits = width - len;
  u128 span = host_bits >= 128 ? kU128Max : (((u128)1 << host_bits) - 1);
  u128 lo = base & ~span;
  return range(lo, lo + span);
}

void IntervalSet::add(u128 lo, u128 hi) {
  if (lo > hi) std::swap(lo, hi);
  // Find insertion point and merge overlapping/adjacent intervals.
  auto it =
      std::lower_bound(iv_.begin(), iv_.end(), lo, [](const Interval& a, u128 v) { return a.hi < v && a.hi + 1 < v; });
  // `it` is the first interval that could touch [lo, hi].
  auto first = it;
  while (it != iv_.end() && (it->lo <= hi || (hi != kU128Max && it->lo == hi + 1))) {
    lo = std::min(lo, it->lo);
    hi = std::max(hi, it->hi);
    ++it;
  }
  first = iv_.erase(first, it);
  iv_.insert(first, Interval{lo, hi});
}

void IntervalSet::add(const IntervalSet& o) {
  for (const auto& i : o.iv_) add(i.lo, i.hi);
}

IntervalSet IntervalSet::intersect(const IntervalSet& o) const {
  IntervalSet r;
  size_t i = 0, j = 0;
  while (i < iv_.size() && j < o.iv_.size()) {
    u128 lo = std::max(iv_[i].lo, o.iv_[j].lo);
    u128 hi = std::min(iv_[i].hi, o.iv_[j].hi);
    if (lo <= hi) r.iv_.push_back({lo, hi});
    if (iv_[i].hi < o.iv_[j].hi)
      ++i;
    else
      ++j;
  }
  return r;
}

IntervalSet IntervalSet::complement(u128 domain_max) const {
  IntervalSet r;
  u128 next = 0;
  bool done = false;
  for (const auto& i : iv_) {
    if (i.lo > domain_max) break;
    if (i.lo > next) r.iv_.push_back({next, i.lo - 1});
    if (i.hi >= domain_max) {
      done = true;
      break;
    }
    next = i.hi + 1;
  }
  if (!done) r.iv_.push_back({next, domain_max});
  return r;
}

bool IntervalSet::contains(u128 v) const {
  auto it = std::lower_bound(iv_.begin(), iv_.end(), v, [](const Interval& a, u128 x) { return a.hi < x; });
  return it != iv_.end() && it->lo <= v;
}

bool IntervalSet::subset_of(const IntervalSet& o) const { return intersect(o) == *this; }

u128 IntervalSet::size() const {
  u128 n = 0;
  for (const auto& i : iv_) {
    u128 w = i.hi - i.lo;
    if (w == kU128Max || n + w + 1 < n) return kU128Max;
    n += w + 1;
  }
  return n;
}

std::vector<std::pair<u128, unsigned>> IntervalSet::to_prefixes(unsigned width) const {
  std::vector<std::pair<u128, unsigned>> out;
  for (const auto& iv : iv_) {
    u128 lo = iv.lo;
    for (;;) {
      // Largest aligned block of 2^k values starting at lo that stays <= hi.
      // Comparisons use (hi - lo) so nothing overflows at the top of the space.
      unsigned k = 0;
      while (k < width) {
        unsigned k1 = k + 1;
        u128 span1 = k1 >= 128 ? kU128Max : (((u128)1 << k1) - 1);
        bool aligned = (lo & span1) == 0;
        bool fits = iv.hi - lo >= span1;
        if (!aligned || !fits) break;
        k = k1;
      }
      out.emplace_back(lo, width - k);
      u128 span = k >= 128 ? kU128Max : (((u128)1 << k) - 1);
      if (iv.hi - lo == span) break;
      lo = lo + span + 1;
    }
  }
  return out;
}

// Addresses -----------------------------------------------------------------

std::optional<u128> parse_addr(std::string_view s, AddrFamily fam) {
  char buf[INET6_ADDRSTRLEN + 1];
  if (s.empty() || s.size() >= sizeof(buf)) return std::nullopt;
  std::memcpy(buf, s.data(), s.size());
  buf[s.size()] = 0;
  if (fam == AddrFamily::V4) {
    in_addr a{};
    if (inet_pton(AF_INET, buf, &a) != 1) return std::nullopt;
    return v4_to_u128(ntohl(a.s_addr));
  }
  in6_addr a{};
  if (inet_pton(AF_INET6, buf, &a) != 1) return std::nullopt;
  u128 v = 0;
  for (int i = 0; i < 16; ++i) v = (v << 8) | a.s6_addr[i];
  return v;
}

IntervalSet family_space(AddrFamily fam) {
  if (fam == AddrFamily::V4) return IntervalSet::prefix(kV4MappedBase, 96, 128);
  return IntervalSet::range(0, kU128Max);
}

static std::optional<unsigned> mask_len_from_dotted(u128 mask_v4) {
  uint32_t m = (uint32_t)mask_v4;
  unsigned len = 0;
  while (len < 32 && (m & (0x80000000u >> len))) ++len;
  if (len < 32 && (uint32_t)(m << len) != 0) return std::nullopt;
  return len;
}

std::optional<IntervalSet> parse_cidr(std::string_view s, AddrFamily fam, std::string& err) {
  auto slash = s.find('/');
  std::string_view addr = s.substr(0, slash);
  auto a = parse_addr(addr, fam);
  if (!a) {
    err = fam == AddrFamily::V4 ? "not an IPv4 address" : "not an IPv6 address";
    bool looks_v6 = addr.find(':') != std::string_view::npos;
    if (fam == AddrFamily::V4 && looks_v6) err = "IPv6 address in an IPv4 ruleset";
    if (fam == AddrFamily::V6 && !looks_v6 && parse_addr(addr, AddrFamily::V4)) err = "IPv4 address in an IPv6 ruleset";
    bool has_alpha = false;
    for (char c : addr)
      if ((c >= 'g' && c <= 'z') || (c >= 'G' && c <= 'Z')) has_alpha = true;
    if (has_alpha && !looks_v6) err = "host names are not resolved; use an address";
    return std::nullopt;
  }
  unsigned width = fam == AddrFamily::V4 ? 32 : 128;
  unsigned len = width;
  if (slash != std::string_view::npos) {
    std::string_view m = s.substr(slash + 1);
    if (m.empty()) {
      err = "empty prefix length";
      return std::nullopt;
    }
    bool digits = std::all_of(m.begin(), m.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (digits && m.size() <= 3) {
      len = 0;
      for (char c : m) len = len * 10 + (c - '0');
      if (len > width) {
        err = "prefix length larger than " + std::to_string(width);
        return std::nullopt;
      }
    } else if (fam == AddrFamily::V4) {
      auto mv = parse_addr(m, fam);
      auto l = mv ? mask_len_from_dotted(*mv) : std::nullopt;
      if (!l) {
        err = "invalid netmask";
        return std::nullopt;
      }
      len = *l;
    } else {
      err = "invalid prefix length";
      return std::nullopt;
    }
  }
  unsigned full = fam == AddrFamily::V4 ? len + 96 : len;
  return IntervalSet::prefix(*a, full, 128);
}

std::string to_string_u128(u128 v) {
  if (v == 0) return "0";
  std::string s;
  while (v) {
    s.push_back(char('0' + (int)(v % 10)));
    v /= 10;
  }
  std::reverse(s.begin(), s.end());
  return s;
}

std::string format_addr(u128 a) {
  char buf[INET6_ADDRSTRLEN];
  if (is_v4_mapped(a)) {
    in_addr x{};
    x.s_addr = htonl((uint32_t)a);
    inet_ntop(AF_INET, &x, buf, sizeof buf);
    return buf;
  }
  in6_addr x{};
  for (int i = 15; i >= 0; --i) {
    x.s6_addr[i] = (uint8_t)(a & 0xff);
    a >>= 8;
  }
  inet_ntop(AF_INET6, &x, buf, sizeof buf);
  return buf;
}

std::string format_addr_set(const IntervalSet& s) {
  std::string out;
  for (const auto& iv : s.intervals()) {
    IntervalSet one = IntervalSet::range(iv.lo, iv.hi);
    auto prefixes = one.to_prefixes(128);
    bool v4 = is_v4_mapped(iv.lo) && is_v4_mapped(iv.hi);
    auto emit = [&](const std::string& t) {
      if (!out.empty()) out += ",";
      out += t;
    };
    if (prefixes.size() <= 2) {
      for (auto& [base, len] : prefixes) {
        unsigned l = v4 ? len - 96 : len;
        unsigned full = v4 ? 32 : 128;
        emit(l == full ? format_addr(base) : format_addr(base) + "/" + std::to_string(l));
      }
    } else {
      emit(format_addr(iv.lo) + "-" + format_addr(iv.hi));
    }
  }
  return out;
}

std::string format_int_set(const IntervalSet& s) {
  std::string out;
  for (const auto& iv : s.intervals()) {
    if (!out.empty()) out += ",";
    out += to_string_u128(iv.lo);
    if (iv.hi != iv.lo) out += "-" + to_string_u128(iv.hi);
  }
  return out;
}

std::string format_hex_set(const IntervalSet& s) {
  auto hex = [](u128 v) {
    char b[40];
    std::snprintf(b, sizeof b, "0x%llx", (unsigned long long)v);
    return std::string(b);
  };
  std::string out;
  for (const auto& iv : s.intervals()) {
    if (!out.empty()) out += ",";
    out += hex(iv.lo);
    if (iv.hi != iv.lo) out += "-" + hex(iv.hi);
  }
  return out;
}

}  // namespace nf2bpf::ir
