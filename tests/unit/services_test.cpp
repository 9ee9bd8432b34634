// Kubernetes Services recognised in kube-proxy's rules (translator/services):
// the bundled kube-proxy rulesets of both modes, checked against what their
// chains, maps and comments say.
#include <catch2/catch.hpp>

#include "tests/helpers.h"
#include "translator/services/kube.h"

using namespace nf2bpf;

namespace {

services::Recognition recognise_file(const std::string& rel) {
  TranslateOptions opt;
  opt.allow_partial = true;
  auto tr = translate_file(test::src_path(rel), opt);
  REQUIRE(tr.ok());
  return services::recognise(tr->ruleset);
}

const services::Service& find(const services::Recognition& r, const std::string& name) {
  for (const auto& s : r.services)
    if (s.name == name) return s;
  FAIL("no service " << name);
  static services::Service none;
  return none;
}

std::string frontends(const services::Service& s) {
  std::string out;
  for (const auto& f : s.frontends)
    out += (out.empty() ? "" : " ") + f.kind + ":" + (f.address.empty() ? "*" : f.address) + ":" +
           std::to_string(f.port) + "/" + f.protocol;
  return out;
}

std::string backends(const services::Service& s) {
  std::string out;
  for (const auto& b : s.backends)
    out += (out.empty() ? "" : " ") + b.address + ":" + std::to_string(b.port) + (b.local ? "(local)" : "");
  return out;
}

}  // namespace

TEST_CASE("services: kube-proxy's iptables mode") {
  auto r = recognise_file("testdata/iptables/kube-proxy-node.rules");
  CHECK(r.mode == "iptables");
  CHECK(r.services.size() == 9);
  // "has no endpoints": filter's REJECT rules, ClusterIP and NodePort.
  const auto& graf = find(r, "monitoring/grafana:http");
  CHECK(graf.no_endpoints);
  CHECK(frontends(graf) == "ClusterIP:10.96.77.3:3000/tcp NodePort:*:30300/tcp");
  CHECK(graf.backends.empty());
  const auto& dns = find(r, "kube-system/kube-dns:dns");
  CHECK(frontends(dns) == "ClusterIP:10.96.0.10:53/udp");
  CHECK(backends(dns) == "10.244.0.2:53 10.244.0.3:53");
  CHECK(dns.masquerade == "from outside 10.244.0.0/16");
  CHECK_FALSE(dns.affinity_seconds);
  // ClientIP affinity (-m recent --rcheck --seconds 10800 on the jumps to KUBE-SEP-*).
  const auto& cart = find(r, "shop/cart:grpc");
  REQUIRE(cart.affinity_seconds);
  CHECK(*cart.affinity_seconds == 10800);
  CHECK(backends(cart) == "10.244.1.9:50051 10.244.2.12:50051");
  // ExternalIP and NodePort through KUBE-EXT-*.
  const auto& fe = find(r, "shop/frontend:http");
  CHECK(frontends(fe) == "ClusterIP:10.96.120.15:80/tcp ExternalIP:192.0.2.50:80/tcp NodePort:*:30080/tcp");
  CHECK(backends(fe).find("10.244.2.8:8080") != std::string::npos);
  // LoadBalancer with source ranges, externalTrafficPolicy: Local (KUBE-SVL-*).
  const auto& lb = find(r, "shop/checkout-lb:https");
  CHECK(frontends(lb) == "ClusterIP:10.96.200.7:443/tcp LoadBalancer:203.0.113.10:443/tcp NodePort:*:31443/tcp");
  CHECK(lb.external_local);
  CHECK(lb.source_ranges == std::vector<std::string>{"198.51.100.0/24", "192.0.2.128/25"});
  CHECK(backends(lb).find("(local)") != std::string::npos);
  // Every rule that makes it, with its place.
  CHECK(lb.rules.size() > 8);
  for (const auto& l : lb.rules) CHECK(l.line > 0);
}

TEST_CASE("services: kube-proxy's nftables mode") {
  auto r = recognise_file("testdata/nft/kube-proxy-nftables.nft");
  CHECK(r.mode == "nftables");
  const auto& web = find(r, "default/web:http");
  CHECK(frontends(web) == "ClusterIP:10.96.120.7:80/tcp NodePort:*:30080/tcp");
  CHECK(backends(web) == "10.244.1.5:8080 10.244.1.6:8080 10.244.2.9:8080");
  const auto& api = find(r, "default/kubernetes:https");
  CHECK(backends(api) == "192.168.49.2:8443");
  // A service without endpoints: the no-endpoint-services map, named by the element's comment.
  const auto& empty = find(r, "default/empty:http");
  CHECK(empty.no_endpoints);
  CHECK(frontends(empty) == "ClusterIP:10.96.33.3:80/tcp");
  // loadBalancerSourceRanges: the firewall chain's `ip saddr != { ... } drop`.
  const auto& lb = find(r, "default/lb:http");
  CHECK(lb.source_ranges == std::vector<std::string>{"203.0.113.0/24"});
}

TEST_CASE("services: a ruleset without kube-proxy's rules has none") {
  auto r = recognise_file("testdata/iptables/docker-host.rules");
  CHECK(r.mode.empty());
  CHECK(r.services.empty());
}
