#include <catch2/catch.hpp>

#include "translator/ir/values.h"

using namespace nf2bpf::ir;

TEST_CASE("interval sets merge, intersect and complement") {
  IntervalSet s;
  s.add(10, 20);
  s.add(21, 30);  // adjacent: merges
  s.add(40, 50);
  REQUIRE(s.intervals().size() == 2);
  CHECK(s.intervals()[0] == Interval{10, 30});
  CHECK(s.contains(30));
  CHECK_FALSE(s.contains(31));
  auto c = s.complement(65535);
  REQUIRE(c.intervals().size() == 3);
  CHECK(c.intervals()[0] == Interval{0, 9});
  CHECK(c.intervals()[2] == Interval{51, 65535});
  CHECK(s.intersect(IntervalSet::range(25, 45)) == [] {
    IntervalSet e;
    e.add(25, 30);
    e.add(40, 45);
    return e;
  }());
  CHECK(IntervalSet::range(0, kU128Max).complement(kU128Max).empty());
}

TEST_CASE("port ranges decompose into minimal prefixes") {
  auto p = IntervalSet::range(1024, 65535).to_prefixes(16);
  REQUIRE(p.size() == 6);
  CHECK(p[0] == std::pair<u128, unsigned>{1024, 6});
  CHECK(p[5] == std::pair<u128, unsigned>{32768, 1});
  CHECK(IntervalSet::single(22).to_prefixes(16).size() == 1);
  CHECK(IntervalSet::range(0, 65535).to_prefixes(16).size() == 1);
}

TEST_CASE("CIDRs parse into the mapped 128-bit space") {
  std::string err;
  auto v4 = parse_cidr("10.0.0.0/8", AddrFamily::V4, err);
  REQUIRE(v4);
  CHECK(format_addr_set(*v4) == "10.0.0.0/8");
  CHECK(v4->contains(*parse_addr("10.255.255.255", AddrFamily::V4)));
  CHECK_FALSE(v4->contains(*parse_addr("11.0.0.0", AddrFamily::V4)));
  auto masked = parse_cidr("192.168.1.7/255.255.255.0", AddrFamily::V4, err);
  REQUIRE(masked);
  CHECK(format_addr_set(*masked) == "192.168.1.0/24");
  auto v6 = parse_cidr("2001:db8::/32", AddrFamily::V6, err);
  REQUIRE(v6);
  CHECK(format_addr_set(*v6) == "2001:db8::/32");
  CHECK_FALSE(parse_cidr("10.0.0.0/33", AddrFamily::V4, err));
  CHECK(err == "prefix length larger than 32");
  CHECK_FALSE(parse_cidr("example.com", AddrFamily::V4, err));
  CHECK(err == "host names are not resolved; use an address");
  CHECK_FALSE(parse_cidr("::1", AddrFamily::V4, err));
  CHECK(err == "IPv6 address in an IPv4 ruleset");
  auto any = parse_cidr("0.0.0.0/0", AddrFamily::V4, err);
  CHECK(*any == family_space(AddrFamily::V4));
}
