// Policy YAML: what `nf2bpf translate -o` writes and `apply FILE.yaml` reads.
// A written policy loads back field for field; a damaged or edited one is
// refused with a located error, never loaded half-way and never a crash.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <random>
#include <set>

#include "tests/helpers.h"
#include "translator/frontend/ipset/ipset_save.h"
#include "translator/policy/compile.h"
#include "translator/policy/yaml.h"

using namespace nf2bpf;
namespace fs = std::filesystem;

namespace {

policy::Policy compile_text(const std::string& name, const std::string& text, const std::vector<ir::Set>& sets = {}) {
  TranslateOptions opt;
  opt.allow_partial = true;
  Translation tr = translate_source({name, text}, opt, sets);
  diag::Diagnostics d;
  policy::Policy p = policy::compile(tr, d);
  std::string errs;
  for (const auto& x : d.all()) errs += diag::render(x);
  INFO(errs);
  REQUIRE_FALSE(d.has_errors());
  return p;
}

policy::Policy compile_file(const fs::path& rules) {
  TranslateOptions opt;
  opt.allow_partial = true;
  fs::path sets = fs::path(test::src_path("testdata/ipset")) / rules.filename();
  sets.replace_extension(".save");
  if (fs::exists(sets)) opt.ipsets_path = sets.string();
  auto tr = translate_file(rules.string(), opt);
  REQUIRE(tr.ok());
  diag::Diagnostics d;
  policy::Policy p = policy::compile(*tr, d);
  REQUIRE_FALSE(d.has_errors());
  return p;
}

template <typename T>
bool same_bytes(const T& a, const T& b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

// The first field where two policies differ, "" when they are equal.
std::string first_difference(const policy::Policy& a, const policy::Policy& b) {
  auto vec = [](const char* what, const auto& x, const auto& y, auto eq) -> std::string {
    if (x.size() != y.size())
      return std::string(what) + ": " + std::to_string(x.size()) + " vs " + std::to_string(y.size()) + " items";
    for (size_t i = 0; i < x.size(); ++i)
      if (!eq(x[i], y[i])) return std::string(what) + "[" + std::to_string(i) + "] differs";
    return {};
  };
  auto bytes = [](const auto& x, const auto& y) { return same_bytes(x, y); };
  auto origin = [](const policy::Origin& x, const policy::Origin& y) {
    return x.location == y.location && x.table == y.table && x.chain == y.chain && x.text == y.text &&
           x.source_line == y.source_line;
  };
  if (a.source != b.source) return "source";
  if (a.checksum != b.checksum) return "checksum";
  if (a.input_format != b.input_format) return "input_format";
  if (!same_bytes(a.cfg, b.cfg)) return "cfg";
  if (!same_bytes(a.hooks, b.hooks)) return "hooks";
  for (auto d :
       {vec("stages", a.stages, b.stages, bytes), vec("tuples", a.tuples, b.tuples, bytes),
        vec("rules", a.rules, b.rules, bytes), vec("stmts", a.stmts, b.stmts, bytes),
        vec("limits", a.limits, b.limits, bytes), vec("nats", a.nats, b.nats, bytes),
        vec("entries", a.entries, b.entries,
            [](const auto&x, const auto&y) { return same_bytes(x.first, y.first) && same_bytes(x.second, y.second); }),
        vec("lpm", a.lpm, b.lpm,
            [](const auto&x, const auto&y) {
              return x.slot == y.slot && x.addr == y.addr && x.prefixlen == y.prefixlen && x.cls == y.cls;
            }),
        vec("small", a.small, b.small, std::equal_to<>()), vec("origins", a.origins, b.origins, origin),
        vec("stage_origins", a.stage_origins, b.stage_origins, origin),
        vec("log_prefixes", a.log_prefixes, b.log_prefixes, std::equal_to<>()),
        vec("chain_names", a.chain_names, b.chain_names, std::equal_to<>())})
    if (!d.empty()) return d;
  if (a.iface_predicates != b.iface_predicates) return "iface_predicates";
  if (a.iface_classes != b.iface_classes) return "iface_classes";
  if (a.rule_count_source != b.rule_count_source) return "rule_count_source";
  return {};
}

std::string rendered(const diag::Diagnostics& d) {
  std::string s;
  for (const auto& x : d.all()) s += diag::render(x);
  return s;
}

void require_round_trip(const policy::Policy& p) {
  std::string y = policy::to_yaml(p);
  diag::Diagnostics d;
  auto back = policy::from_yaml(y, "policy.yaml", d);
  INFO(rendered(d));
  REQUIRE(back);
  CHECK_FALSE(d.has_errors());
  CHECK(policy::compute_checksum(*back) == p.checksum);
  CHECK(first_difference(p, *back) == "");
  CHECK(policy::to_yaml(*back) == y);  // and it writes the same file again
}

// Loads `text`; expects exactly one located error and returns it.
diag::Diagnostic refused(const std::string& text) {
  diag::Diagnostics d;
  auto p = policy::from_yaml(text, "edited.yaml", d);
  INFO(text.substr(0, 400));
  REQUIRE_FALSE(p);
  REQUIRE(d.errors() == 1);
  const auto& e = d.all().front();
  CHECK(e.loc.file == "edited.yaml");
  return e;
}

size_t line_no(const std::string& text, const std::string& needle) {
  size_t at = text.find(needle);
  REQUIRE(at != std::string::npos);
  return (size_t)std::count(text.begin(), text.begin() + (ptrdiff_t)at, '\n') + 1;
}

std::string replaced(std::string text, const std::string& from, const std::string& to) {
  size_t at = text.find(from);
  REQUIRE(at != std::string::npos);
  return text.replace(at, from.size(), to);
}

// Most features the dataplane compiles, in one ruleset (line numbers matter
// for the assertions on the written file).
const std::string kFeatures =
    "*raw\n"                                                                                           // 1
    ":PREROUTING ACCEPT [0:0]\n"                                                                       // 2
    ":OUTPUT ACCEPT [0:0]\n"                                                                           // 3
    "-A PREROUTING -p udp --dport 123 -j CT --notrack\n"                                               // 4
    "COMMIT\n"                                                                                         // 5
    "*mangle\n"                                                                                        // 6
    ":PREROUTING ACCEPT [0:0]\n"                                                                       // 7
    ":INPUT ACCEPT [0:0]\n"                                                                            // 8
    ":FORWARD ACCEPT [0:0]\n"                                                                          // 9
    ":OUTPUT ACCEPT [0:0]\n"                                                                           // 10
    ":POSTROUTING ACCEPT [0:0]\n"                                                                      // 11
    "-A PREROUTING -j CONNMARK --restore-mark --nfmask 0xff --ctmask 0xff\n"                           // 12
    "-A PREROUTING -i wg+ -j MARK --set-xmark 0x10/0xff\n"                                             // 13
    "-A PREROUTING -j CONNMARK --save-mark --nfmask 0xff --ctmask 0xff\n"                              // 14
    "COMMIT\n"                                                                                         // 15
    "*filter\n"                                                                                        // 16
    ":INPUT DROP [0:0]\n"                                                                              // 17
    ":FORWARD DROP [0:0]\n"                                                                            // 18
    ":OUTPUT ACCEPT [0:0]\n"                                                                           // 19
    ":LOGDROP - [0:0]\n"                                                                               // 20
    ":SSH - [0:0]\n"                                                                                   // 21
    "-A INPUT -i lo -j ACCEPT\n"                                                                       // 22
    "-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"                                  // 23
    "-A INPUT -m conntrack --ctstate INVALID -j DROP\n"                                                // 24
    "-A INPUT -s 10.0.0.0/8 -p tcp -m tcp --dport 22 -j SSH\n"                                         // 25
    "-A INPUT -p tcp -m multiport --dports 80,443,8000:8080 -j ACCEPT\n"                               // 26
    "-A INPUT -m mark --mark 0x10/0xff -m connmark ! --mark 0x1/0xf -j ACCEPT\n"                       // 27
    "-A INPUT -p icmp -m icmp --icmp-type 8 -m limit --limit 5/sec --limit-burst 10 -j ACCEPT\n"       // 28
    "-A INPUT -m statistic --mode random --probability 0.25 -j LOGDROP\n"                              // 29
    "-A INPUT -m mac --mac-source 00:11:22:aa:bb:cc -j DROP\n"                                         // 30
    "-A INPUT ! -i eth+ -p udp --sport 67 --dport 68 -j REJECT --reject-with icmp-port-unreachable\n"  // 31
    "-A INPUT -p tcp -j REJECT --reject-with tcp-reset\n"                                              // 32
    "-A SSH -s 10.9.0.0/16 -j RETURN\n"                                                                // 33
    "-A SSH -j LOG --log-prefix \"ssh \\\"in\\\": \" --log-level 6\n"                                  // 34
    "-A SSH -j ACCEPT\n"                                                                               // 35
    "-A LOGDROP -j NFLOG --nflog-group 3 --nflog-prefix \"dropped\"\n"                                 // 36
    "-A LOGDROP -j DROP\n"                                                                             // 37
    "-A FORWARD -i eth0 -o eth1 -d 192.168.10.0/24 -j ACCEPT\n"                                        // 38
    "-A OUTPUT -o eth+ -p tcp --dport 25 -j DROP\n"                                                    // 39
    "COMMIT\n";                                                                                        // 40

const std::string kIpv6 =
    "# Generated by ip6tables-save\n*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n"
    "-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 135 -j ACCEPT\n"
    "-A INPUT -s 2001:db8::/32 -d ::ffff:10.0.0.0/104 -p tcp --dport 443 -j ACCEPT\n"
    "-A INPUT -s fe80::/10 -p udp --dport 546 -j ACCEPT\nCOMMIT\n";

// NAT ranges built byte by byte (not through the YAML code under test).
void set_addr(uint8_t out[16], const char* text) {
  std::memset(out, 0, 16);
  if (inet_pton(AF_INET6, text, out) == 1) return;
  out[10] = out[11] = 0xff;  // IPv4-mapped
  REQUIRE(inet_pton(AF_INET, text, out + 12) == 1);
}

nf2bpf_nat nat_range(uint8_t kind, const char* lo, const char* hi, int port_lo, int port_hi, uint8_t flags = 0) {
  nf2bpf_nat n{};
  n.kind = kind;
  n.flags = flags;
  if (lo) set_addr(n.addr_min, lo), set_addr(n.addr_max, hi ? hi : lo), n.flags |= NF_NAT_F_ADDR;
  if (port_lo >= 0) n.port_min = (uint16_t)port_lo, n.port_max = (uint16_t)port_hi, n.flags |= NF_NAT_F_PORTS;
  return n;
}

// kFeatures with NAT of every kind and shape: the capability table still
// marks NAT unsupported on this branch, so compile skips nat rules and the
// NAT parts are added by hand, as the compiler lays them out: rule i binds
// range i, the nat-chain and after-NAT stage flags, the families.
policy::Policy nat_policy() {
  policy::Policy p = compile_text("rules.v4", kFeatures);
  p.nats = {
      nat_range(NF_NAT_DNAT, "10.0.0.2", "10.0.0.5", 8080, 8090, NF_NAT_F_RANDOM | NF_NAT_F_PERSISTENT),
      nat_range(NF_NAT_DNAT, "fd00::1", nullptr, 80, 80),
      nat_range(NF_NAT_DNAT, nullptr, nullptr, 8080, 8080),  // port only: nft `dnat to :8080`
      nat_range(NF_NAT_SNAT, "192.0.2.1", nullptr, -1, -1, NF_NAT_F_RANDOM_FULLY),
      nat_range(NF_NAT_SNAT, "2001:db8::1", "2001:db8::ff", 1024, 65535),
      nat_range(NF_NAT_MASQUERADE, nullptr, nullptr, -1, -1),  // no address, no ports
      nat_range(NF_NAT_MASQUERADE, nullptr, nullptr, 1024, 2047, NF_NAT_F_RANDOM),
      nat_range(NF_NAT_REDIRECT, nullptr, nullptr, -1, -1),
      nat_range(NF_NAT_REDIRECT, nullptr, nullptr, 3128, 3128),
  };
  REQUIRE(p.rules.size() > p.nats.size());
  for (uint32_t i = 0; i < p.nats.size(); ++i) {
    nf2bpf_rule& r = p.rules[i];
    r.action = NF_ACT_NAT, r.nat = i, r.reject_type = 0, r.skip_to = 0;
  }
  REQUIRE(p.stages.size() >= 3);
  p.stages[1].flags = NF_STAGE_NAT;
  p.stages[2].flags = NF_STAGE_AFTER_NAT;
  p.cfg.nat_fams = NF_FAM_V4 | NF_FAM_V6;
  p.checksum = policy::compute_checksum(p);
  return p;
}

}  // namespace

TEST_CASE("every testdata ruleset round-trips through YAML exactly") {
  size_t files = 0;
  for (const char* dir : {"testdata/iptables", "testdata/nft", "testdata/kube-proxy"})
    for (const auto& e : fs::directory_iterator(test::src_path(dir))) {
      if (e.path().extension() != ".rules" && e.path().extension() != ".nft") continue;
      DYNAMIC_SECTION(e.path().filename().string()) {
        policy::Policy p = compile_file(e.path());
        if (e.path().extension() == ".rules") REQUIRE_FALSE(p.rules.empty());
        require_round_trip(p);
      }
      ++files;
    }
  CHECK(files >= 15);
}

TEST_CASE("a ruleset with every compiled feature round-trips, and reads as the rules") {
  policy::Policy p = compile_text("rules.v4", kFeatures);
  // The ruleset exercises what it claims to.
  std::set<int> kinds;
  for (const auto& s : p.stmts) kinds.insert(s.kind);
  CHECK(kinds ==
        std::set<int>{NF_STMT_LOG, NF_STMT_SET_MARK, NF_STMT_SAVE_MARK, NF_STMT_RESTORE_MARK, NF_STMT_NOTRACK});
  uint32_t residual = 0;
  std::set<int> actions;
  for (const auto& r : p.rules) residual |= r.residual, actions.insert(r.action);
  CHECK(residual == (NF_RES_MARK | NF_RES_CTMARK | NF_RES_CTMARK_NEG | NF_RES_LIMIT | NF_RES_RANDOM | NF_RES_MAC));
  CHECK(actions == std::set<int>{NF_ACT_ACCEPT, NF_ACT_DROP, NF_ACT_REJECT, NF_ACT_CONTINUE, NF_ACT_SKIP});
  REQUIRE(p.limits.size() == 2);

  require_round_trip(p);

  std::string y = policy::to_yaml(p);
  INFO(y.substr(0, 6000));
  CHECK(y.starts_with("# nf2bpf compiled policy"));
  CHECK(y.find("\nnf2bpf-policy: 2\nsource: rules.v4\nformat: iptables\nchecksum: '" + p.checksum + "'\n") !=
        std::string::npos);
  // The rules read as what they do.
  CHECK(y.find("    at: 'rules.v4:27'\n    chain: filter/INPUT\n"
               "    rule: '-A INPUT -m mark --mark 0x10/0xff -m connmark ! --mark 0x1/0xf -j ACCEPT'\n"
               "    action: accept\n"
               "    checks: ['mark & 0xff == 0x10', 'ctmark & 0xf != 0x1']\n") != std::string::npos);
  CHECK(y.find("checks: ['limit 5/second burst 10 (#1)']") != std::string::npos);
  CHECK(y.find("checks: ['random 0.25 (below 0x20000000, draw #0)']") != std::string::npos);
  CHECK(y.find("checks: ['mac == 00:11:22:aa:bb:cc']") != std::string::npos);
  CHECK(y.find("    action: reject with tcp-reset\n") != std::string::npos);
  CHECK(y.find("    action: continue\n    checks: ['random 0.25 (below 0x20000000, draw #0)']\n"
               "    do: ['log level 0 group 3 prefix \"dropped\"']\n") != std::string::npos);
  CHECK(y.find("do: ['mark = (mark & ~0xff) ^ 0x10']") != std::string::npos);
  CHECK(y.find("do: ['ctmark = (ctmark & ~0xff) | (mark & 0xff)']") != std::string::npos);
  CHECK(y.find("do: ['mark = (mark & ~0xff) | (ctmark & 0xff)']") != std::string::npos);
  CHECK(y.find("do: [notrack]") != std::string::npos);
  CHECK(y.find("do: ['log level 6 prefix \"ssh \\\"in\\\": \"']") != std::string::npos);
  CHECK(y.find("    rule: '-A SSH -s 10.9.0.0/16 -j RETURN'\n    action: skip to ") != std::string::npos);
  // Stages and the machine part.
  CHECK(y.find("    hook: input\n    family: ipv4\n    policy: drop\n") != std::string::npos);
  CHECK(y.find("    flags: 1    # before conntrack (raw table)\n") != std::string::npos);
  CHECK(y.find("  - \"saddr 10.0.0.0/8 -> ") != std::string::npos);
  CHECK(y.find("  - \"daddr 192.168.10.0/24 -> ") != std::string::npos);
  CHECK(y.find("  dport: [[0, 21, 0], [22, 22, ") != std::string::npos);
  CHECK(y.find("      - [[eth+]]\n") != std::string::npos);
  CHECK(y.find("      - [{not: [eth+]}]\n") != std::string::npos);
  CHECK(y.find("      - [[wg+]]\n") != std::string::npos);
  CHECK(y.find("\nentries:    # tTUPLE sSEQ [class of each slot] -> RULE") != std::string::npos);
}

TEST_CASE("IPv6, ipsets and small rulesets round-trip") {
  policy::Policy v6 = compile_text("rules.v6", kIpv6);
  require_round_trip(v6);
  std::string y = policy::to_yaml(v6);
  CHECK(y.find("\"saddr 2001:db8::/32 -> ") != std::string::npos);
  CHECK(y.find("\"daddr 10.0.0.0/8 -> ") != std::string::npos);  // ::ffff:10.0.0.0/104, dotted
  CHECK(y.find("\"saddr fe80::/10 -> ") != std::string::npos);

  diag::Diagnostics d;
  auto sets = frontend::parse_ipset_save({"sets",
                                          "create bad hash:net family inet\nadd bad 203.0.113.0/24\n"
                                          "create svc hash:ip,port family inet\nadd svc 192.0.2.10,tcp:443\n"},
                                         d);
  REQUIRE_FALSE(d.has_errors());
  require_round_trip(compile_text("rules.v4",
                                  "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
                                  "-A INPUT -m set --match-set bad src -j DROP\n"
                                  "-A INPUT -m set --match-set svc dst,dst -j ACCEPT\nCOMMIT\n",
                                  sets));
  // No rules at all: empty lists still load.
  require_round_trip(compile_text("empty.v4", "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n"));
}

TEST_CASE("shapes the compiler does not produce still round-trip exactly") {
  policy::Policy p = compile_text("rules.v4", kFeatures);
  SECTION("raw rule fields, shared statements, awkward strings") {
    p.rules[0].nat = 7;                      // not spelled out: written under raw:
    p.rules[1].src_line = 4242;              // differs from its origin's line
    p.rules[2].residual |= NF_RES_MARK_NEG;  // a NEG bit without its test
    p.origins[3].table = "we/ird";           // a table name with the separator in it
    p.origins[3].source_line = 9;            // a location without that line
    p.origins[4].text = std::string("bad utf-8 \xff\xfe and \x01 control") + std::string(1, '\0') + "nul";
    p.origins[5].text = "quotes ' and \" and tab\t and é";
    p.log_prefixes.push_back("ssh \"in\": ");  // a duplicate prefix: the second is named by index
    for (auto& s : p.stmts)
      if (s.kind == NF_STMT_LOG) s.prefix_id = (uint32_t)p.log_prefixes.size() - 1;
    p.stmts.push_back({NF_STMT_SET_MARK, 3, 0, 1, 2, 0});  // not spelled out: a field map
    p.rules.back().stmt_first = (uint32_t)p.stmts.size() - 1;
    p.rules.back().stmt_count = 1;
  }
  SECTION("statements that do not follow their rules in order") {
    REQUIRE(p.stmts.size() >= 2);
    std::swap(p.rules[0].stmt_first, p.rules[1].stmt_first);
    std::swap(p.rules[0].stmt_count, p.rules[1].stmt_count);
  }
  SECTION("NAT ranges with fields their spelling leaves out") {
    nf2bpf_nat n = nat_range(NF_NAT_MASQUERADE, nullptr, nullptr, -1, -1);
    n.port_max = 9, n.pad = 3;         // no NF_NAT_F_PORTS, yet a port
    set_addr(n.addr_min, "10.1.2.3");  // no NF_NAT_F_ADDR, yet an address
    p.nats.push_back(n);
    p.nats.push_back(nat_range(NF_NAT_SNAT, "10.0.0.1", "fd00::1", -1, -1));  // a range across families
    p.nats.push_back(nat_range(NF_NAT_DNAT, "::", nullptr, 0, 0));            // all zero, but given
    p.rules[0].action = NF_ACT_NAT, p.rules[0].nat = 1;
    p.cfg.nat_fams = NF_FAM_V6;
  }
  SECTION("interface names the spelling could confuse") {
    p.iface_predicates[0].push_back({{{{{"a+", false}, {"b+", true}, {"", false}}, true}}});
    std::map<std::vector<bool>, uint32_t> classes;
    for (const auto& [sig, cls] : p.iface_classes[0]) {
      auto longer = sig;
      longer.push_back(false);
      classes[longer] = cls;
    }
    classes[std::vector<bool>(p.iface_predicates[0].size(), true)] = 77;
    p.iface_classes[0] = classes;
  }
  p.checksum = policy::compute_checksum(p);
  require_round_trip(p);
  std::string y = policy::to_yaml(p);
  CHECK((y.find("    raw: {") != std::string::npos || y.find("\nstatements:\n") != std::string::npos ||
         y.find("{exact: a+}") != std::string::npos || y.find("nat_fams: ipv6") != std::string::npos));
  if (p.cfg.nat_fams) {
    INFO(y.substr(y.find("\nnat:")));
    CHECK(y.find("  - {kind: masquerade, raw: {port_max: 9, pad: 3, addr_min: '10.1.2.3'}}    # #0\n") !=
          std::string::npos);
    CHECK(y.find("  - {kind: snat, to: '10.0.0.1-[fd00::1]'}    # #1\n") != std::string::npos);
    CHECK(y.find("  - {kind: dnat, to: '[::]:0'}    # #2\n") != std::string::npos);
    CHECK(y.find("    action: 'snat #1 to 10.0.0.1-[fd00::1]'\n") != std::string::npos);
  }
}

TEST_CASE("NAT ranges of every kind round-trip, and read as the rules") {
  // Without NAT: an empty table and no families, and nothing else changes.
  std::string plain = policy::to_yaml(compile_text("rules.v4", kFeatures));
  CHECK(plain.find(", xdp_stage: 0, nat_fams: none}\n") != std::string::npos);
  CHECK(plain.find("\nnat: []\n") != std::string::npos);
  CHECK(plain.find(", limits: 2, nat: 0, services: 0, tuples: ") != std::string::npos);

  policy::Policy p = nat_policy();
  require_round_trip(p);
  std::string y = policy::to_yaml(p);
  INFO(y.substr(0, 3000) << "\n...\n" << y.substr(y.find("\nlimits:"), 1200));
  CHECK(y.find(", limits: 2, nat: 9, services: 0, tuples: ") != std::string::npos);
  CHECK(y.find(", nat_fams: inet}\n") != std::string::npos);
  // The table: one readable entry per range, its index after it.
  CHECK(y.find("\nnat:    # ") != std::string::npos);
  for (const char* entry : {
           "  - {kind: dnat, to: '10.0.0.2-10.0.0.5:8080-8090', flags: [random, persistent]}    # #0\n",
           "  - {kind: dnat, to: '[fd00::1]:80'}    # #1\n",
           "  - {kind: dnat, to: ':8080'}    # #2\n",
           "  - {kind: snat, to: '192.0.2.1', flags: [random-fully]}    # #3\n",
           "  - {kind: snat, to: '[2001:db8::1]-[2001:db8::ff]:1024-65535'}    # #4\n",
           "  - {kind: masquerade}    # #5\n",
           "  - {kind: masquerade, to: ':1024-2047', flags: [random]}    # #6\n",
           "  - {kind: redirect}    # #7\n",
           "  - {kind: redirect, to: ':3128'}    # #8\n",
       })
    CHECK(y.find(entry) != std::string::npos);
  // The rules say which range they bind, spelled out.
  for (const char* action : {
           "    action: 'dnat #0 to 10.0.0.2-10.0.0.5:8080-8090 random persistent'\n",
           "    action: 'dnat #1 to [fd00::1]:80'\n",
           "    action: 'dnat #2 to :8080'\n",
           "    action: 'snat #3 to 192.0.2.1 random-fully'\n",
           "    action: 'snat #4 to [2001:db8::1]-[2001:db8::ff]:1024-65535'\n",
           "    action: 'masquerade #5'\n",
           "    action: 'masquerade #6 to :1024-2047 random'\n",
           "    action: 'redirect #7'\n",
           "    action: 'redirect #8 to :3128'\n",
       })
    CHECK(y.find(action) != std::string::npos);
  CHECK(y.find("raw: {") == std::string::npos);  // the spelling says it all
  CHECK(y.find("    flags: 2    # nat chain: a new connection's first packet, at the hook's NAT point\n") !=
        std::string::npos);
  CHECK(y.find("    flags: 4    # after the hook's NAT point: sees the translated packet\n") != std::string::npos);
  CHECK(y.find("    flags: 1    # before conntrack (raw table)\n") != std::string::npos);

  // IPv4 alone, and one range: the smallest NAT policy.
  p.nats.resize(1);
  for (auto& r : p.rules)
    if (r.action == NF_ACT_NAT) r.nat = 0;
  p.cfg.nat_fams = NF_FAM_V4;
  p.checksum = policy::compute_checksum(p);
  require_round_trip(p);
  CHECK(policy::to_yaml(p).find(", nat_fams: ipv4}\n") != std::string::npos);
}

TEST_CASE("a bad nat: entry or NAT action is refused with a located error") {
  const std::string y = policy::to_yaml(nat_policy());
  // Column of `needle`'s offset `at` in its line (1-based).
  auto col = [&](const std::string& needle, size_t at) {
    size_t pos = y.find(needle);
    REQUIRE(pos != std::string::npos);
    return pos - (y.rfind('\n', pos) + 1) + at + 1;
  };
  const std::string range0 = "'10.0.0.2-10.0.0.5:8080-8090'";

  SECTION("an unknown kind") {
    auto e = refused(replaced(y, "{kind: dnat, to: '[fd00::1]:80'}", "{kind: dnatt, to: '[fd00::1]:80'}"));
    CHECK(e.message == "unknown NAT kind 'dnatt'");
    CHECK(e.hint == "kinds are dnat, snat, masquerade, redirect, service");
    CHECK(e.loc.line == line_no(y, "{kind: dnat, to: '[fd00::1]:80'}"));
    CHECK(e.loc.col == col("{kind: dnat, to: '[fd00::1]:80'}", 7));
  }
  SECTION("a bad address") {
    auto e = refused(replaced(y, range0, "'10.0.0.2-10.0.0.256:8080-8090'"));
    CHECK(e.message == "'10.0.0.256' is not an IPv4 or IPv6 address");
    CHECK(e.loc.line == line_no(y, range0));
    CHECK(e.loc.col == col(range0, 10));  // past the quote, at the second address
  }
  SECTION("an IPv6 address without brackets") {
    auto e = refused(replaced(y, "to: '[fd00::1]:80'}", "to: 'fd00::1'}"));
    CHECK(e.message.starts_with("an IPv6 address is written in brackets"));
  }
  SECTION("an IPv4-mapped address spelled as IPv6") {
    auto e = refused(replaced(y, "to: '192.0.2.1',", "to: '[::ffff:192.0.2.1]',"));
    CHECK(e.message == "an IPv4-mapped address is written dotted: 192.0.2.1");
  }
  SECTION("an address range whose first is above its last") {
    auto e = refused(replaced(y, range0, "'10.0.0.5-10.0.0.2:8080-8090'"));
    CHECK(e.message == "the address range 10.0.0.5-10.0.0.2 is empty (first > last)");
    CHECK(e.loc.col == col(range0, 1));
  }
  SECTION("a port range whose first is above its last") {
    auto e = refused(replaced(y, "to: ':1024-2047'", "to: ':2047-1024'"));
    CHECK(e.message == "the port range 2047-1024 is empty (first > last)");
    CHECK(e.loc.col == col("':1024-2047'", 2));
  }
  SECTION("a port out of range") {
    auto e = refused(replaced(y, "to: ':3128'", "to: ':65536'"));
    CHECK(e.message == "expected a port 0..65535");
  }
  SECTION("text after the range") {
    auto e = refused(replaced(y, "to: ':3128'", "to: ':3128 tcp'"));
    CHECK(e.message == "expected ADDR[-ADDR][:PORT[-PORT]] or :PORT[-PORT]");
    CHECK(e.loc.col == col("':3128'", 6));
  }
  SECTION("an unknown flag") {
    auto e = refused(replaced(y, "flags: [random, persistent]", "flags: [random, persistant]"));
    CHECK(e.message == "unknown NAT flag 'persistant'");
    CHECK(e.hint == "flags are random, random-fully, persistent");
    CHECK(e.loc.col == col("persistent]", 0));
  }
  SECTION("an unknown key in an entry") {
    auto e = refused(replaced(y, "{kind: masquerade}", "{kind: masquerade, via: eth0}"));
    CHECK(e.message == "unknown key 'via' in NAT range #5");
  }
  SECTION("an entry removed") {
    auto e = refused(replaced(y, "  - {kind: redirect}    # #7\n", ""));
    CHECK(e.message == "'nat' lists 8 items but 'counts' says 9");
  }
  SECTION("an unknown family in nat_fams") {
    auto e = refused(replaced(y, "nat_fams: inet}", "nat_fams: ipx}"));
    CHECK(e.message == "unknown family 'ipx' in 'nat_fams'");
    CHECK(e.loc.line == line_no(y, "nat_fams: inet}"));
  }
  SECTION("a NAT action naming a range that is not there") {
    auto e = refused(replaced(y, "action: 'masquerade #5'", "action: 'masquerade #12'"));
    CHECK(e.message == "nat #12 is not in 'nat' (0..8)");
    CHECK(e.loc.line == line_no(y, "action: 'masquerade #5'"));
    CHECK(e.loc.col == col("'masquerade #5'", 13));
  }
  SECTION("a raw override that binds a range that is not there") {
    auto e = refused(replaced(y, "    action: accept\n", "    action: accept\n    raw: {action: 5, nat: 99}\n"));
    CHECK(e.message.ends_with(": its NAT range #99 is not in 'nat'"));
  }
  SECTION("a NAT action whose text is not its range") {
    auto e = refused(replaced(y, "action: 'dnat #1 to [fd00::1]:80'", "action: 'dnat #1 to [fd00::2]:80'"));
    CHECK(e.message == "says 'dnat #1 to [fd00::2]:80' but nat #1 is dnat to [fd00::1]:80");
    auto kind = refused(replaced(y, "action: 'redirect #7'", "action: 'masquerade #7'"));
    CHECK(kind.message == "says 'masquerade #7' but nat #7 is redirect");
    auto bare = refused(replaced(y, "action: 'redirect #7'", "action: 'nat #7'"));
    CHECK(bare.message == "says 'nat #7' but nat #7 is redirect");
    auto flags =
        refused(replaced(y, "action: 'masquerade #6 to :1024-2047 random'", "action: 'masquerade #6 to :1024-2047'"));
    CHECK(flags.message.starts_with("says 'masquerade #6 to :1024-2047' but nat #6 is"));
  }
  SECTION("a range and its action edited together") {
    auto e =
        refused(replaced(replaced(y, "{kind: snat, to: '192.0.2.1',", "{kind: snat, to: '192.0.2.2',"),
                         "action: 'snat #3 to 192.0.2.1 random-fully'", "action: 'snat #3 to 192.0.2.2 random-fully'"));
    CHECK(e.message.starts_with("policy was edited: checksum mismatch"));
  }
  SECTION("an unknown action still lists the actions") {
    auto e = refused(replaced(y, "    action: accept\n", "    action: acept\n"));
    CHECK(e.message == "unknown action 'acept'");
    CHECK(e.hint.find("skip to N") != std::string::npos);
    CHECK(e.hint.find("'nat'") != std::string::npos);
  }
}

TEST_CASE("a damaged or edited policy is refused with a located error") {
  policy::Policy p = compile_text("rules.v4", kFeatures);
  const std::string y = policy::to_yaml(p);

  SECTION("a changed port in the classifier") {
    // Port 22's class moves to port 23: well-formed, but not what was compiled.
    size_t at = y.find("  dport: [[0, 21, 0], [22, 22, ");
    REQUIRE(at != std::string::npos);
    std::string cls = y.substr(at + 31, y.find(']', at + 31) - (at + 31));
    auto e = refused(replaced(y, "[[0, 21, 0], [22, 22, " + cls + "], [23, 24, 0]",
                              "[[0, 22, 0], [23, 23, " + cls + "], [24, 24, 0]"));
    CHECK(e.message.starts_with("policy was edited: checksum mismatch"));
    CHECK(e.loc.line == line_no(y, "\nchecksum: ") + 1);
    CHECK(e.loc.col == 12);
    CHECK(e.hint.find("nf2bpf translate") != std::string::npos);
  }
  SECTION("a changed port in the rule text") {
    auto e = refused(replaced(y, "'-A OUTPUT -o eth+ -p tcp --dport 25 -j DROP'",
                              "'-A OUTPUT -o eth+ -p tcp --dport 2525 -j DROP'"));
    CHECK(e.message.find("policy was edited") != std::string::npos);
    CHECK(e.loc.line == line_no(y, "\nnotes-checksum: ") + 1);
  }
  SECTION("a changed action") {
    std::string at = "rule: '-A INPUT -m mac --mac-source 00:11:22:aa:bb:cc -j DROP'\n    action: drop";
    auto e =
        refused(replaced(y, at, "rule: '-A INPUT -m mac --mac-source 00:11:22:aa:bb:cc -j DROP'\n    action: accept"));
    CHECK(e.message.starts_with("policy was edited: checksum mismatch"));
  }
  SECTION("an unknown slot") {
    size_t at = y.find("  - {slots: [");
    while (at != std::string::npos && y[at + 13] == ']') at = y.find("  - {slots: [", at + 1);
    REQUIRE(at != std::string::npos);
    size_t tline = (size_t)std::count(y.begin(), y.begin() + (ptrdiff_t)at, '\n') + 1;
    std::string t = y.substr(at, y.find(']', at) - at);  // "  - {slots: [a, b"
    auto e = refused(replaced(y, t + "]", t + ", portz]"));
    CHECK(e.message == "unknown slot 'portz'");
    CHECK(e.hint.find("dport") != std::string::npos);
    CHECK(e.loc.line == tline);
    CHECK(e.loc.col == t.size() + 3);
    CHECK(diag::render(e).find("edited.yaml:" + std::to_string(tline) + ":" + std::to_string(t.size() + 3) +
                               ": error: unknown slot 'portz'") == 0);
  }
  SECTION("an unknown slot in an LPM entry") {
    auto e = refused(replaced(y, "  - \"saddr 10.0.0.0/8 -> ", "  - \"srcaddr 10.0.0.0/8 -> "));
    CHECK(e.message == "unknown slot 'srcaddr'");
    CHECK(e.loc.line == line_no(y, "  - \"saddr 10.0.0.0/8 -> "));
  }
  SECTION("an entry pointing at a tuple that does not exist") {
    size_t at = y.find("\nentries:");
    at = y.find("  - \"t0 s0 [", at);
    auto e = refused(y.substr(0, at) + "  - \"t999 s0 [1] -> 0\"\n" + y.substr(at));
    CHECK(e.message == "tuple t999 is not in 'tuples'");
    CHECK(e.loc.col == 7);
  }
  SECTION("a rule whose check is misspelled") {
    auto e = refused(replaced(y, "'mark & 0xff == 0x10'", "'mark & 0xff = 0x10'"));
    CHECK(e.message == "expected ' == ' or ' != '");
    CHECK(e.loc.line == line_no(y, "'mark & 0xff == 0x10'"));
  }
  SECTION("a limit whose rate was edited") {
    auto e = refused(replaced(y, "'limit 5/second burst 10 (#1)'", "'limit 50/second burst 10 (#1)'"));
    CHECK(e.message.find("but limit #1 is 5/second burst 10") != std::string::npos);
  }
  SECTION("a duplicated key") {
    auto e = refused(replaced(y, "\nformat: iptables\n", "\nformat: iptables\nformat: nft\n"));
    CHECK(e.message == "'format' appears twice in the policy");
    CHECK(e.loc.line == line_no(y, "\nformat: ") + 2);
  }
  SECTION("an unknown key") {
    auto e = refused(replaced(y, "    action: accept\n", "    action: accept\n    verdict: accept\n"));
    CHECK(e.message.starts_with("unknown key 'verdict' in rule "));
  }
  SECTION("a rule removed from the middle") {
    size_t a = y.find("  - index: 3\n"), b = y.find("  - index: 4\n");
    auto e = refused(y.substr(0, a) + y.substr(b));
    CHECK(e.message.find("out of order; expected 3") != std::string::npos);
    CHECK(e.loc.line == line_no(y, "  - index: 3\n"));
  }
  SECTION("a newer format version") {
    auto e = refused(replaced(y, "nf2bpf-policy: 2\n", "nf2bpf-policy: 3\n"));
    CHECK(e.message == "unsupported policy format version '3'");
  }
}

TEST_CASE("a truncated policy is refused wherever it was cut") {
  policy::Policy p = compile_text("rules.v4", kFeatures);
  const std::string y = policy::to_yaml(p);
  SECTION("at the end of a list of entries") {
    size_t cut = y.find("\nlpm:");
    auto e = refused(y.substr(0, cut + 1));
    CHECK(e.message == "the policy has no 'lpm'");
  }
  SECTION("in the middle of the entries") {
    size_t from = y.find("\nentries:"), to = y.find("\nlpm:");
    size_t cut = y.rfind("\n  - \"t", (from + to) / 2);
    REQUIRE(cut > from);
    auto e = refused(y.substr(0, cut + 1) + y.substr(to + 1));
    CHECK(e.message.starts_with("'entries' lists "));
    CHECK(e.message.find(" items but 'counts' says " + std::to_string(p.entries.size())) != std::string::npos);
    CHECK(e.hint.find("truncated") != std::string::npos);
  }
  SECTION("at every line and in the middle of lines") {
    // No cut is accepted, none crashes, every refusal has a location in the file.
    size_t lines = (size_t)std::count(y.begin(), y.end(), '\n');
    size_t last_data = y.find_last_of(']');  // a trailing comment may be cut harmlessly
    for (size_t cut = 0; cut < last_data; cut += std::max<size_t>(1, y.size() / 150)) {
      diag::Diagnostics d;
      auto back = policy::from_yaml(y.substr(0, cut), "cut.yaml", d);
      INFO("cut at byte " << cut << "\n" << rendered(d));
      REQUIRE_FALSE(back);
      REQUIRE(d.errors() >= 1);
      CHECK(d.all().front().loc.line >= 1);
      CHECK(d.all().front().loc.line <= lines + 1);
    }
  }
}

TEST_CASE("input that is not a policy at all is refused, not crashed on") {
  std::string ipt = test::read_file(test::src_path("testdata/iptables/host-firewall.rules"));
  auto e = refused(ipt);
  CHECK(e.message.starts_with("not valid YAML: "));
  CHECK(e.loc.line >= 1);
  CHECK(e.hint.find("nf2bpf translate") != std::string::npos);

  auto empty = refused("");
  CHECK(empty.message.starts_with("not an nf2bpf policy"));
  CHECK(empty.loc.line == 1);
  CHECK(refused("# nothing but a comment\n").message.starts_with("not an nf2bpf policy"));
  CHECK(refused("- a\n- b\n").message.starts_with("not an nf2bpf policy"));
  CHECK(refused("rules: []\n").message.starts_with("not an nf2bpf policy: no 'nf2bpf-policy:'"));
  CHECK(refused("a: 1\n---\nb: 2\n").message == "a policy file holds one YAML document");
  CHECK(refused(std::string(100000, '[')).message.starts_with("not valid YAML"));
  CHECK(refused("nf2bpf-policy: 2\nsource: [unclosed\n").loc.line >= 1);
  CHECK(refused("nf2bpf-policy: 2\nsource: 'x'\n").message == "the policy has no 'format'");
  CHECK(refused(std::string("\x00\x01\x02\xff\xfe", 5)).loc.file == "edited.yaml");
}

TEST_CASE("random byte edits never crash the loader or load a different policy") {
  policy::Policy p = compile_text("rules.v4",
                                  "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n"
                                  "-A INPUT -s 10.0.0.0/8 -p tcp --dport 22 -m limit --limit 3/min -j ACCEPT\n"
                                  "-A INPUT -i eth+ -j LOG --log-prefix \"x\"\nCOMMIT\n");
  const std::string y = policy::to_yaml(p);
  std::mt19937 rng(20240611);
  const char alphabet[] = "0123456789abcdefx[]{},:'\" -+#\n\t/.";
  size_t refused_count = 0;
  for (int i = 0; i < 200; ++i) {
    std::string m = y;
    size_t at = rng() % m.size();
    if (rng() % 3 == 0)
      m.erase(at, 1 + rng() % 8);
    else
      m[at] = alphabet[rng() % (sizeof alphabet - 1)];
    diag::Diagnostics d;
    auto back = policy::from_yaml(m, "fuzz.yaml", d);
    INFO("edit at byte " << at << "\n" << rendered(d));
    if (back) {
      // Only edits that change nothing the policy holds (comments, quoting) load.
      CHECK(first_difference(p, *back) == "");
    } else {
      ++refused_count;
      REQUIRE(d.errors() >= 1);
      CHECK(d.all().front().loc.file == "fuzz.yaml");
    }
  }
  CHECK(refused_count > 120);
}

TEST_CASE("write_yaml_file replaces the file atomically and leaves no temporaries") {
  policy::Policy p = compile_text("rules.v4", kIpv6);
  fs::path dir = fs::temp_directory_path() / ("nf2bpf-yaml-test-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::path out = dir / "policy.yaml";
  {
    std::ofstream old(out);
    old << "old contents\n";
  }
  REQUIRE(policy::write_yaml_file(p, out.string()).ok());
  CHECK(test::read_file(out.string()) == policy::to_yaml(p));
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++n;
  CHECK(n == 1);
  CHECK(policy::looks_like_policy_yaml(test::read_file(out.string())));
  CHECK_FALSE(policy::looks_like_policy_yaml("*filter\n:INPUT ACCEPT [0:0]\n"));

  auto r = policy::write_yaml_file(p, (dir / "missing" / "policy.yaml").string());
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ENOENT);
  CHECK(r.error().message().find("missing") != std::string::npos);
  fs::remove_all(dir);
}

namespace {

struct Run {
  int status = -1;
  std::string out;
};

Run run(const std::string& cmd) {
  Run r;
  FILE* f = popen((cmd + " 2>&1").c_str(), "r");
  REQUIRE(f);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) r.out.append(buf, n);
  int st = pclose(f);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

}  // namespace

TEST_CASE("nf2bpf translate -o writes the policy YAML") {
  REQUIRE(fs::exists(NF2BPF_BINARY));
  fs::path dir = fs::temp_directory_path() / ("nf2bpf-yaml-cli-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::string bin = NF2BPF_BINARY;
  std::string rules = test::src_path("testdata/iptables/host-firewall.rules");
  fs::path out = dir / "policy.yaml";

  // host-firewall.rules has one unsupported rule (-m owner): it stays in netfilter.
  Run plain = run(bin + " translate --allow-partial " + rules);
  Run with_o = run(bin + " translate --allow-partial " + rules + " -o " + out.string());
  CHECK(with_o.status == plain.status);
  CHECK(with_o.out == plain.out);  // the report is unchanged
  REQUIRE(with_o.status == 0);
  diag::Diagnostics d;
  auto loaded = policy::from_yaml(test::read_file(out.string()), out.string(), d);
  INFO(rendered(d));
  REQUIRE(loaded);
  CHECK(first_difference(*loaded, compile_file(rules)) == "");

  // A rejected ruleset writes nothing; --allow-partial writes what compiles.
  fs::path bad_rules = dir / "bad.rules";
  {
    std::ofstream f(bad_rules);
    f << "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 22 -j ACCEPT\n"
         "-A INPUT -m u32 --u32 \"0>>22&0x3C@ 12>>26&0x3C@ 0&0xFFFF=0x1\" -j DROP\nCOMMIT\n";
  }
  fs::path bad_out = dir / "bad.yaml";
  Run rejected = run(bin + " translate " + bad_rules.string() + " -o " + bad_out.string());
  CHECK(rejected.status == 1);
  CHECK_FALSE(fs::exists(bad_out));
  CHECK(rejected.out.find(bad_out.string() + " was not written") != std::string::npos);
  Run partial = run(bin + " translate --allow-partial " + bad_rules.string() + " -o " + bad_out.string());
  CHECK(partial.status == 0);
  REQUIRE(fs::exists(bad_out));
  diag::Diagnostics d2;
  auto part = policy::from_yaml(test::read_file(bad_out.string()), bad_out.string(), d2);
  REQUIRE(part);
  CHECK(part->rules.size() == 1);

  // A directory that does not exist is a system error.
  Run sys = run(bin + " translate --allow-partial " + rules + " -o " + (dir / "nope" / "p.yaml").string());
  CHECK(sys.status == 2);
  CHECK(sys.out.find("No such file or directory") != std::string::npos);

  Run help = run(bin + " translate --help");
  CHECK(help.out.find("-o,--output") != std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("statistic nth rules round-trip through YAML and read as iptables' options") {
  policy::Policy p = compile_text("rules.v4",
                                  "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
                                  "-A INPUT -p udp -m statistic --mode nth --every 3 --packet 1 -j DROP\n"
                                  "-A INPUT -p tcp -m statistic --mode nth ! --every 2 --packet 0 -j DROP\n"
                                  "COMMIT\n");
  require_round_trip(p);
  std::string y = policy::to_yaml(p);
  INFO(y.substr(0, 4000));
  CHECK(y.find("checks: ['nth every 3 packet 1 (#0)']") != std::string::npos);
  CHECK(y.find("checks: ['not nth every 2 packet 0 (#1)']") != std::string::npos);
  CHECK(y.find("raw:") == std::string::npos);  // the check text determines every nth field
}

TEST_CASE("recent rules round-trip through YAML and read as xt_recent's options") {
  policy::Policy p = compile_text("rules.v4",
                                  "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
                                  "-A INPUT -p tcp -m recent --set --name SSH --rsource\n"
                                  "-A INPUT -p tcp -m recent ! --update --seconds 60 --hitcount 4 --reap --rttl "
                                  "--name SSH -j DROP\n"
                                  "-A INPUT -p udp -m recent --remove --name D --mask 255.255.255.0 --rdest -j DROP\n"
                                  "COMMIT\n");
  require_round_trip(p);
  std::string y = policy::to_yaml(p);
  INFO(y.substr(0, 4000));
  CHECK(y.find("checks: [recent set table 0x41197b31 ring 31]") != std::string::npos);
  CHECK(y.find("checks: [not recent update table 0x41197b31 ring 31 seconds 60 hitcount 4 reap rttl]") !=
        std::string::npos);
  CHECK(y.find("rdest mask 0xffffffffffffffff 0xffffffffffffff00]") != std::string::npos);
  CHECK(y.find("raw:") == std::string::npos);  // the check text determines every recent field
}

TEST_CASE("policy YAML: limits as the kernel configures them and TCPMSS statements, written and read back") {
  auto p = compile_text("rules.nft",
                        "table inet f {\n"
                        "  chain input { type filter hook input priority 0; policy accept;\n"
                        "    udp dport 1 limit rate 10/second burst 3 packets accept\n"
                        "    udp dport 2 limit rate over 2/minute drop\n"
                        "    udp dport 3 limit rate 1 mbytes/second burst 10 kbytes accept\n"
                        "  }\n"
                        "  chain fwd { type filter hook forward priority -150; policy accept;\n"
                        "    tcp flags syn tcp option maxseg size set rt mtu\n"
                        "    oifname \"ppp0\" tcp flags syn tcp option maxseg size set 1400\n"
                        "    udp dport 4 ip6 dscp set ef\n"
                        "  }\n"
                        "}\n");
  REQUIRE(p.limits.size() == 4);
  // nft_limit_init: cost = unit_ns / rate, tokens_max = cost * burst; bytes:
  // unit_ns * (rate + burst) / rate.
  CHECK(p.limits[1].cost == 100000000);
  CHECK(p.limits[1].cap == 300000000);
  CHECK(p.limits[1].flags == 0);
  CHECK(p.limits[2].cost == 30000000000ULL);
  CHECK(p.limits[2].cap == 150000000000ULL);  // burst 5 by default
  CHECK(p.limits[2].flags == NF_LIMIT_INV);
  CHECK(p.limits[3].rate == 1048576);
  CHECK(p.limits[3].cap == 1009765625);  // 1e9 * (1048576 + 10240) / 1048576
  CHECK(p.limits[3].flags == NF_LIMIT_BYTES);
  std::set<std::pair<uint8_t, uint32_t>> mss;
  for (const auto& s : p.stmts)
    if (s.kind == NF_STMT_TCPMSS) mss.insert({s.kind, s.value});
  CHECK(mss == std::set<std::pair<uint8_t, uint32_t>>{{NF_STMT_TCPMSS, 0}, {NF_STMT_TCPMSS, 1400}});
  std::string y = policy::to_yaml(p);
  CHECK(y.find("do: [tcpmss path-mtu]") != std::string::npos);
  CHECK(y.find("do: [tcpmss 1400]") != std::string::npos);
  CHECK(y.find("do: ['tos = (tos & ~0xfc) ^ 0xb8']") != std::string::npos);  // ip6 dscp set ef
  CHECK(y.find("checks: ['limit over 2/minute burst 5 (#2)']") != std::string::npos);
  require_round_trip(p);
}

TEST_CASE("policy YAML: iptables TCPMSS adds a missing option (insert), nft's does not; DSCP and TOS") {
  auto p = compile_text("rules.v4",
                        "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n"
                        ":OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
                        "-A FORWARD -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1400\n"
                        "-A FORWARD -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu\n"
                        "-A POSTROUTING -p udp -j DSCP --set-dscp-class EF\n"
                        "-A POSTROUTING -p udp -j TOS --and-tos 0x0f\nCOMMIT\n");
  std::string y = policy::to_yaml(p);
  CHECK(y.find("do: [tcpmss 1400 insert]") != std::string::npos);
  CHECK(y.find("do: [tcpmss path-mtu insert]") != std::string::npos);
  CHECK(y.find("do: ['tos = (tos & ~0xfc) ^ 0xb8']") != std::string::npos);
  CHECK(y.find("do: ['tos = (tos & ~0xf0) ^ 0x0']") != std::string::npos);
  require_round_trip(p);
}

TEST_CASE("policy YAML: -m hashlimit tables written and read back, and a hashlimit row checked") {
  auto p = compile_text("rules.v6",
                        "# Generated by ip6tables-save v1.8.9 (nf_tables)\n*filter\n:INPUT ACCEPT [0:0]\n"
                        "-A INPUT -p tcp -m hashlimit --hashlimit-above 3/min --hashlimit-burst 4 --hashlimit-mode "
                        "srcip,dstport --hashlimit-srcmask 64 --hashlimit-name ssh6 --hashlimit-htable-expire 60000 "
                        "-j DROP\nCOMMIT\n");
  REQUIRE(p.limits.size() == 2);
  const auto& l = p.limits[1];
  CHECK(l.cost == 20000000);  // 1000000 * 60 / 3, libxt_hashlimit's avg
  CHECK(l.cap == 4);
  CHECK(l.flags == (NF_LIMIT_HASH | NF_LIMIT_INV));
  CHECK(l.mode == (NF_HL_SIP | NF_HL_DPT));
  CHECK(l.srcmask == 64);
  CHECK(l.dstmask == 128);
  CHECK(l.expire == 60000);
  std::string y = policy::to_yaml(p);
  CHECK(y.find("limit hashlimit above 3/minute burst 4 table ") != std::string::npos);
  CHECK(y.find(" mode srcip,dstport srcmask 64 expire 60000ms") != std::string::npos);
  require_round_trip(p);
  // A hashlimit row has its table, expire, mode and masks; a plain limit's does not.
  auto at = y.find("  - [20000000, 4, 0, 12, ");
  REQUIRE(at != std::string::npos);
  std::string bad = y;
  bad.replace(at, 25, "  - [20000000, 4, 0, 4, ");
  CHECK_THAT(
      refused(bad).message,
      Catch::Contains(
          "a hashlimit (flags 8), connlimit (16), time (32) or set operation (64), none with 1 or 2, has 9 values"));
}

TEST_CASE("policy YAML: nft set operations, chained in one rule, written and read back") {
  // A port knock's second step: a lookup, then an add (flags 128 chains the
  // first to the second).
  auto p = compile_text("rules.nft",
                        "table inet t {\n"
                        "  set k1 { type ipv4_addr; flags dynamic, timeout; timeout 10s; }\n"
                        "  set k2 { type ipv4_addr; flags dynamic, timeout; timeout 10s; }\n"
                        "  chain input { type filter hook input priority 0; policy accept;\n"
                        "    tcp dport 1111 add @k1 { ip saddr }\n"
                        "    ip saddr @k1 tcp dport 2222 add @k2 { ip saddr timeout 5s }\n"
                        "    ip saddr @k2 tcp dport 22 accept\n  }\n}\n");
  REQUIRE(p.limits.size() == 5);
  CHECK(p.limits[1].rate == NF_SET_ADD);
  CHECK(p.limits[1].expire == 10000);  // the set's timeout
  CHECK(p.limits[2].flags == (NF_LIMIT_SET | NF_LIMIT_MORE));
  CHECK(p.limits[2].rate == NF_SET_LOOKUP);
  CHECK(p.limits[3].flags == NF_LIMIT_SET);
  CHECK(p.limits[3].rate == (NF_SET_ADD | NF_SET_TIMEOUT));
  CHECK(p.limits[3].expire == 5000);
  CHECK(p.limits[2].table == p.limits[1].table);
  CHECK(p.limits[3].table != p.limits[1].table);
  std::string y = policy::to_yaml(p);
  CHECK(y.find("'limit set lookup table ") != std::string::npos);
  CHECK(y.find(" key saddr srcmask 32 (#2)', 'limit set add table ") != std::string::npos);
  CHECK(y.find(" timeout 5000ms (#3)'") != std::string::npos);
  require_round_trip(p);
  // The last entry of a rule's chain marked as chained to one beyond the
  // limits is refused.
  auto last = y.rfind("  - [", y.find("\nnat:"));
  REQUIRE(last != std::string::npos);
  auto flags = y.find(", 64, ", last);
  REQUIRE(flags != std::string::npos);
  std::string bad = y;
  bad.replace(flags, 6, ", 192, ");
  CHECK_THAT(refused(bad).message, Catch::Contains("its limits are not in 'limits'"));
}
