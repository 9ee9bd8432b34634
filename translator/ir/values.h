// Value domains shared by every front-end, the passes and the policy compiler.
//
// Every integer-valued packet field (addresses, ports, protocol numbers, ICMP
// types, lengths ...) is a set of closed intervals over an unsigned domain.
// Addresses are 128 bits wide: IPv4 lives in the IPv4-mapped range
// ::ffff:0:0/96, so one key width and one LPM trie serve both families.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nf2bpf::ir {

using u128 = unsigned __int128;

struct Interval {
  u128 lo = 0;
  u128 hi = 0;  // inclusive
  bool operator==(const Interval&) const = default;
};

// A normalised (sorted, disjoint, non-adjacent) set of intervals.
class IntervalSet {
 public:
  IntervalSet() = default;
  static IntervalSet single(u128 v) { return range(v, v); }
  static IntervalSet range(u128 lo, u128 hi);
  static IntervalSet prefix(u128 base, unsigned len, unsigned width);

  void add(u128 lo, u128 hi);
  void add(const IntervalSet& o);
  IntervalSet intersect(const IntervalSet& o) const;
  IntervalSet complement(u128 domain_max) const;
  bool contains(u128 v) const;
  bool subset_of(const IntervalSet& o) const;
  bool empty() const { return iv_.empty(); }
  u128 size() const;  // number of values (saturating)
  const std::vector<Interval>& intervals() const { return iv_; }
  bool operator==(const IntervalSet&) const = default;

  // Minimal list of (base, prefix_len) covering exactly this set.
  std::vector<std::pair<u128, unsigned>> to_prefixes(unsigned width) const;

 private:
  std::vector<Interval> iv_;
};

// Address helpers -----------------------------------------------------------

enum class AddrFamily : uint8_t { V4, V6 };

constexpr u128 kV4MappedBase = (u128)0xffff << 32;
constexpr u128 kU128Max = ~(u128)0;

inline u128 v4_to_u128(uint32_t host_order) { return kV4MappedBase | host_order; }
inline bool is_v4_mapped(u128 a) { return (a >> 32) == 0xffff; }

// Parses "10.0.0.1" / "2001:db8::1" into the 128-bit address space.
std::optional<u128> parse_addr(std::string_view s, AddrFamily fam);
// Parses "a", "a/len", "a/dotted-mask" into an interval set. On failure returns
// nullopt and sets `err` to a short human reason.
std::optional<IntervalSet> parse_cidr(std::string_view s, AddrFamily fam, std::string& err);
// Prefix of the whole family: ::ffff:0:0/96 for V4, ::/0 for V6.
IntervalSet family_space(AddrFamily fam);

std::string format_addr(u128 a);                    // v4-mapped printed as dotted quad
std::string format_addr_set(const IntervalSet& s);  // CIDRs / ranges, comma separated
std::string format_int_set(const IntervalSet& s);   // 22,80-90
std::string format_hex_set(const IntervalSet& s);
std::string to_string_u128(u128 v);

}  // namespace nf2bpf::ir
