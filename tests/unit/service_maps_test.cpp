// Load-balancing chains compiled to the service maps (translator/policy/services.h):
// kube-proxy's chains in both modes become services with their backends in
// order; a chain whose draw is not uniform, or whose DNAT could fail to
// match after the draw, stays a chain of rules.
#include <catch2/catch.hpp>

#include <string>

#include "tests/helpers.h"
#include "translator/ir/values.h"
#include "translator/policy/compile.h"

using namespace nf2bpf;

namespace {

policy::Policy compile(const std::string& name, const std::string& text) {
  TranslateOptions opt;
  opt.allow_partial = true;
  Translation tr = translate_source({name, text}, opt, {});
  diag::Diagnostics d;
  policy::Policy p = policy::compile(tr, d);
  REQUIRE_FALSE(d.has_errors());
  return p;
}

policy::Policy compile_file(const std::string& path) {
  TranslateOptions opt;
  opt.allow_partial = true;
  auto tr = translate_file(test::src_path(path), opt);
  REQUIRE(tr.ok());
  diag::Diagnostics d;
  policy::Policy p = policy::compile(*tr, d);
  REQUIRE_FALSE(d.has_errors());
  return p;
}

std::string backends(const policy::Service& s) {
  std::string out;
  for (const auto& b : s.backends)
    out += (out.empty() ? "" : " ") + ir::format_addr(b.addr) + ":" + std::to_string(b.port);
  return out;
}

size_t service_ranges(const policy::Policy& p) {
  size_t n = 0;
  for (const auto& x : p.nats) n += x.kind == NF_NAT_SERVICE;
  return n;
}

// One Service, three endpoints, as kube-proxy's iptables mode writes it;
// PROBS and JUMP are replaced per case.
const std::string kOneService = R"(*nat
:PREROUTING ACCEPT [0:0]
:KUBE-MARK-MASQ - [0:0]
:SVC - [0:0]
:SEP-A - [0:0]
:SEP-B - [0:0]
:SEP-C - [0:0]
-A PREROUTING JUMP -j SVC
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A SVC -m statistic --mode random --probability P1 -j SEP-A
-A SVC -m statistic --mode random --probability P2 -j SEP-B
-A SVC -j SEP-C
-A SEP-A -s 10.1.0.1/32 -j KUBE-MARK-MASQ
-A SEP-A -p tcp -j DNAT --to-destination 10.1.0.1:8080
-A SEP-B -s 10.1.0.2/32 -j KUBE-MARK-MASQ
-A SEP-B -p tcp -j DNAT --to-destination 10.1.0.2:8080
-A SEP-C -s 10.1.0.3/32 -j KUBE-MARK-MASQ
-A SEP-C -p tcp -j DNAT --to-destination 10.1.0.3:8080
COMMIT
)";

std::string one_service(const std::string& jump, const std::string& p1, const std::string& p2) {
  std::string s = kOneService;
  s.replace(s.find("JUMP"), 4, jump);
  s.replace(s.find("P1"), 2, p1);
  s.replace(s.find("P2"), 2, p2);
  return s;
}

}  // namespace

TEST_CASE("kube-proxy's Services compile to services in both modes") {
  for (const char* file : {"testdata/kube-proxy/mix-8x3.rules", "testdata/kube-proxy/mix-8x3.nft"}) {
    DYNAMIC_SECTION(file) {
      policy::Policy p = compile_file(file);
      // 6 Services with endpoints, one Local choice (KUBE-SVL / local-);
      // the affinity Service keeps its recent rules and stays a chain.
      REQUIRE(p.services.size() == 7);
      const policy::Service& s = p.services[0];
      CHECK(backends(s) == "10.244.0.2:8080 10.244.1.2:8080 10.244.2.2:8080");
      CHECK(s.family == 4);
      CHECK(s.mark_mask == 0x4000);
      CHECK(s.mark_value == 0x4000);
      CHECK(backends(p.services[6]) == "10.244.0.7:8080");
      // One range per service however many frontends reach it.
      CHECK(service_ranges(p) == 7);
      size_t dnat = 0;
      for (const auto& x : p.nats) dnat += x.kind == NF_NAT_DNAT;
      CHECK(dnat == 3);  // the affinity Service's three endpoints
    }
  }
}

TEST_CASE("a uniform load-balancing chain is one service") {
  policy::Policy p = compile("lb.rules", one_service("-d 10.96.0.1/32 -p tcp --dport 80", "0.33333333349", "0.5"));
  REQUIRE(p.services.size() == 1);
  CHECK(p.services[0].name == "nat/SVC");
  CHECK(backends(p.services[0]) == "10.1.0.1:8080 10.1.0.2:8080 10.1.0.3:8080");
  CHECK(service_ranges(p) == 1);
  CHECK(p.nats.size() == 1);
}

TEST_CASE("a chain that is not a uniform draw of DNATs that always match stays rules") {
  SECTION("not uniform: 1/2, then 1/2 of the rest") {
    policy::Policy p = compile("lb.rules", one_service("-d 10.96.0.1/32 -p tcp --dport 80", "0.5", "0.5"));
    CHECK(p.services.empty());
    CHECK(p.nats.size() == 3);
  }
  SECTION("the DNAT tests the protocol, the way in does not") {
    policy::Policy p = compile("lb.rules", one_service("-d 10.96.0.1/32", "0.33333333349", "0.5"));
    CHECK(p.services.empty());
  }
  SECTION("an endpoint chain that does more (affinity)") {
    std::string s = one_service("-d 10.96.0.1/32 -p tcp --dport 80", "0.33333333349", "0.5");
    s.insert(s.find("-A SEP-C -p tcp"), "-A SEP-C -m recent --set --name SEP-C --mask 255.255.255.255 --rsource\n");
    policy::Policy p = compile("lb.rules", s);
    CHECK(p.services.empty());
  }
}
