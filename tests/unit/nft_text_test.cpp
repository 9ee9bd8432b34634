// The nftables text front-end: nft -f scripts (define, include, flush,
// one-line commands), listings (-a handles, -s), diagnostics, robustness.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "tests/unit/nft_support.h"

using namespace nf2bpf;
using namespace nf2bpf::test;
namespace fs = std::filesystem;

namespace {

const ir::Rule& rule(const ir::Ruleset& rs, size_t t, const std::string& chain, size_t r) {
  const ir::Chain* c = rs.tables.at(t).find_chain(chain);
  REQUIRE(c);
  REQUIRE(c->rules.size() > r);
  return c->rules[r];
}

std::string rule_dump(const Parsed& p, const std::string& chain = "c") {
  std::string out;
  for (const auto& t : p.rs.tables)
    if (const ir::Chain* c = t.find_chain(chain))
      for (const auto& r : c->rules) {
        for (const auto& m : r.matches) out += ir::dump(m) + "; ";
        for (const auto& s : r.statements) out += ir::dump(s) + "; ";
        out += ir::to_string(r.verdict) + "\n";
      }
  return out;
}

Parsed one(const std::string& rules, const std::string& family = "inet") {
  return parse_nft("table " + family + " t {\n chain c {\n" + rules + "\n }\n}\n");
}

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() /
           ("nf2bpf-nft-test-" + std::to_string(::getpid()) + "-" + std::to_string(reinterpret_cast<uintptr_t>(this)));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  fs::path write(const std::string& rel, const std::string& text) const {
    fs::path p = path / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p;
  }
};

}  // namespace

TEST_CASE("nft: define holds scalars and sets; set variables nest inside braces") {
  auto p = parse_nft(
      "define NETS = { 10.0.0.0/8, 192.168.0.0/16 }\n"
      "define PORT = 22\n"
      "table inet t {\n chain c {\n"
      "  ip saddr { $NETS, 172.16.0.1 } tcp dport $PORT accept\n"
      "  ip saddr $NETS accept\n"
      " }\n}\n");
  INFO(p.rendered());
  REQUIRE(p.diags.errors() == 0);
  CHECK(rule_dump(p) ==
        "nfproto 2; l4proto 6; saddr 10.0.0.0/8,172.16.0.1,192.168.0.0/16; dport 22; accept\n"
        "nfproto 2; saddr 10.0.0.0/8,192.168.0.0/16; accept\n");
}

TEST_CASE("nft: an undefined variable is one located error") {
  auto p = one("  ip saddr $NOPE accept");
  REQUIRE(p.diags.errors() == 1);
  CHECK(p.diags.all()[0].message == "undefined variable '$NOPE'");
  CHECK(p.diags.all()[0].loc.str() == "rules.nft:3:12");
  CHECK(rule_dump(p).empty());
}

TEST_CASE("nft: include resolves relative to the including file, also from a subdirectory") {
  TempDir d;
  d.write("sub/vars.nft", "include \"more.nft\"\ndefine B = 2.2.2.2\n");
  d.write("sub/more.nft", "define A = 1.1.1.1\n");
  fs::path main = d.write("main.nft",
                          "include \"sub/vars.nft\"\n"
                          "table ip t {\n chain c {\n  ip saddr $A accept\n  ip saddr $B drop\n }\n}\n");
  Parsed p;
  p.rs = frontend::parse_nft_text({main.string(), read_file(main.string())}, p.diags);
  INFO(p.rendered());
  REQUIRE(p.diags.errors() == 0);
  CHECK(rule_dump(p) == "saddr 1.1.1.1; accept\nsaddr 2.2.2.2; drop\n");
}

TEST_CASE("nft: a missing include is located at the file name") {
  TempDir d;
  fs::path main = d.write("main.nft", "table ip t { chain c { accept; }; }\ninclude \"nothere.nft\"\n");
  Parsed p;
  p.rs = frontend::parse_nft_text({main.string(), read_file(main.string())}, p.diags);
  REQUIRE(p.diags.errors() == 1);
  const auto& e = p.diags.all()[0];
  CHECK(e.loc.line == 2);
  CHECK(e.loc.col == 9);
  CHECK(e.message ==
        "cannot read included file '" + (d.path / "nothere.nft").string() + "': No such file or directory");
  CHECK(e.source_line == "include \"nothere.nft\"");
  CHECK(p.rs.rule_count() == 1);  // the rest still parses
}

TEST_CASE("nft: a file including itself stops at the nesting limit") {
  TempDir d;
  fs::path self = d.write("self.nft", "include \"self.nft\"\n");
  Parsed p;
  p.rs = frontend::parse_nft_text({self.string(), read_file(self.string())}, p.diags);
  REQUIRE(p.diags.errors() == 1);
  CHECK(p.diags.all()[0].message == "includes nested more than 16 deep");
}

TEST_CASE("nft: include with a wildcard takes the files in name order") {
  TempDir d;
  d.write("conf.d/20-b.nft", "add rule ip t c ip saddr 2.2.2.2 accept\n");
  d.write("conf.d/10-a.nft", "add rule ip t c ip saddr 1.1.1.1 accept\n");
  fs::path main =
      d.write("main.nft", "table ip t { chain c { }; }\ninclude \"conf.d/*.nft\"\ninclude \"none/*.nft\"\n");
  Parsed p;
  p.rs = frontend::parse_nft_text({main.string(), read_file(main.string())}, p.diags);
  INFO(p.rendered());
  REQUIRE(p.diags.errors() == 0);
  CHECK(rule_dump(p) == "saddr 1.1.1.1; accept\nsaddr 2.2.2.2; accept\n");
}

TEST_CASE("nft: flush ruleset, delete table, flush chain and delete element act in order") {
  auto p = parse_nft(
      "table ip old { chain c { accept; }; }\n"
      "flush ruleset\n"
      "table ip t {\n"
      " set s { type ipv4_addr; elements = { 1.1.1.1, 2.2.2.2 } }\n"
      " chain c { ip saddr 9.9.9.9 drop; }\n"
      " chain d { accept; }\n"
      "}\n"
      "flush chain ip t c\n"
      "add rule ip t c ip saddr @s accept\n"
      "delete element ip t s { 1.1.1.1 }\n"
      "table ip gone { chain x { drop; }; }\n"
      "delete table ip gone\n"
      "destroy table ip never-existed\n");
  INFO(p.rendered());
  REQUIRE(p.diags.errors() == 0);
  REQUIRE(p.rs.tables.size() == 1);
  CHECK(p.rs.tables[0].name == "t");
  CHECK(rule_dump(p) == "@s(saddr); accept\n");
  REQUIRE(p.rs.tables[0].find_set("s"));
  CHECK(p.rs.tables[0].find_set("s")->elements.size() == 1);
}

// The builder finds chains and sets through per-table indexes: deleting and
// re-adding under other names, and elements added one command at a time,
// must read as they would in a fresh ruleset.
TEST_CASE("nft: chains and sets deleted and added again, elements added one by one") {
  auto p = parse_nft(
      "table ip t {\n"
      " set a { type ipv4_addr; }\n"
      " set b { type ipv4_addr; }\n"
      " chain x { accept; }\n"
      " chain y { accept; }\n"
      "}\n"
      "delete chain ip t x\n"
      "add chain ip t z\n"
      "add rule ip t z drop\n"
      "add chain ip t in { type filter hook input priority 0; }\n"
      "add rule ip t in jump z\n"
      "add rule ip t in jump y\n"
      "delete set ip t a\n"
      "add set ip t c { type ipv4_addr; }\n"
      "add element ip t b { 3.3.3.3 }\n"
      "add element ip t b { 1.1.1.1 }\n"
      "add element ip t b { 2.2.2.2 }\n"
      "add element ip t c { 9.9.9.9 }\n"
      "add rule ip t y ip saddr @b accept\n"
      "add rule ip t y ip saddr @c drop\n");
  INFO(p.rendered());
  REQUIRE(p.diags.errors() == 0);
  const auto& t = p.rs.tables.at(0);
  CHECK_FALSE(t.find_chain("x"));
  REQUIRE(t.find_chain("z"));
  CHECK(t.find_chain("z")->rules.size() == 1);
  CHECK_FALSE(t.find_set("a"));
  REQUIRE(t.find_set("c"));
  CHECK(t.find_set("c")->elements.size() == 1);
  auto once = parse_nft("table ip t { set b { type ipv4_addr; elements = { 2.2.2.2, 3.3.3.3, 1.1.1.1 } } }\n");
  CHECK(dump_sets(p.rs).find(dump_sets(once.rs).substr(dump_sets(once.rs).find('\n'))) != std::string::npos);
  // A jump to the deleted chain is an error, as in nft.
  auto bad = parse_nft("table ip t { chain x { accept; }; chain y { jump x; } }\ndelete chain ip t x\n");
  CHECK(bad.diags.errors() > 0);
}

TEST_CASE("nft: insert and index place rules like nft does") {
  auto p = parse_nft(
      "add table ip t\n"
      "add chain ip t c\n"
      "add rule ip t c ip saddr 1.1.1.1 accept\n"
      "add rule ip t c ip saddr 2.2.2.2 accept\n"
      "insert rule ip t c ip saddr 0.0.0.1 accept\n"
      "add rule ip t c index 0 ip saddr 0.0.0.2 accept\n"
      "insert rule ip t c index 3 ip saddr 0.0.0.3 accept\n");
  INFO(p.rendered());
  REQUIRE(p.diags.errors() == 0);
  CHECK(rule_dump(p) ==
        "saddr 0.0.0.1; accept\nsaddr 0.0.0.2; accept\nsaddr 1.1.1.1; accept\nsaddr 0.0.0.3; accept\n"
        "saddr 2.2.2.2; accept\n");
}

TEST_CASE("nft: positions by handle refer to a running ruleset") {
  auto p = parse_nft("add table ip t\nadd chain ip t c\nadd rule ip t c position 7 accept\n");
  REQUIRE(p.diags.errors() == 1);
  CHECK(p.diags.all()[0].message == "no rule with handle 7 in chain 'c'");
}

TEST_CASE("nft: priorities by name and arithmetic, per family") {
  auto p = parse_nft(
      "table inet t {\n"
      " chain a { type filter hook prerouting priority raw; }\n"
      " chain b { type filter hook prerouting priority mangle + 3; }\n"
      " chain c { type nat hook prerouting priority dstnat - 5; }\n"
      " chain d { type filter hook input priority filter+1; }\n"
      " chain e { type filter hook input priority security; }\n"
      " chain f { type nat hook postrouting priority srcnat; }\n"
      " chain g { type filter hook input priority -200; }\n"
      "}\n"
      "table bridge br { chain a { type filter hook forward priority filter; } }\n");
  INFO(p.rendered());
  REQUIRE(p.diags.errors() == 0);
  std::vector<int> prios;
  for (const auto& t : p.rs.tables)
    for (const auto& c : t.chains) prios.push_back(c.base->priority);
  CHECK(prios == std::vector<int>{-300, -147, -105, 1, 50, 100, -200, -200});
}

TEST_CASE("nft: base chain specs are checked") {
  auto p = parse_nft(
      "table ip t {\n"
      " chain a { type nat hook forward priority 0; }\n"
      " chain b { type filter hook ingress priority 0; }\n"
      " chain c { type route hook input priority 0; }\n"
      " chain d { policy drop; }\n"
      "}\n");
  REQUIRE(p.diags.errors() == 4);
  CHECK(p.diags.all()[0].message == "nat chains do not exist on this hook/family");
  CHECK(p.diags.all()[1].message == "hook 'ingress' does not exist in family ip");
  CHECK(p.diags.all()[2].message == "route chains hook output only");
  CHECK(p.diags.all()[3].message == "chain 'd' has a policy but no hook");
}

TEST_CASE("nft: listings with -a handles and -s stateless parse") {
  auto p = parse_nft(
      "table inet filter { # handle 7\n"
      "\tset s { # handle 3\n"
      "\t\ttype ipv4_addr\n"
      "\t\tflags interval,timeout\n"
      "\t\ttimeout 1h\n"
      "\t\telements = { 1.2.3.0/24 expires 59m59s992ms, 5.5.5.5 timeout 2h expires 1h59m }\n"
      "\t}\n"
      "\tchain c { # handle 1\n"
      "\t\ttype filter hook input priority filter; policy accept;\n"
      "\t\tip saddr @s counter drop # handle 8\n"
      "\t\ttcp dport 22 counter packets 4 bytes 240 accept # handle 9\n"
      "\t}\n"
      "}\n");
  INFO(p.rendered());
  REQUIRE(p.diags.errors() == 0);
  CHECK(rule(p.rs, 0, "c", 0).handle == 8u);
  CHECK(rule(p.rs, 0, "c", 1).handle == 9u);
  CHECK(rule(p.rs, 0, "c", 1).counters->packets == 4);
  CHECK(rule(p.rs, 0, "c", 1).counters->bytes == 240);
  const ir::Set* s = p.rs.tables[0].find_set("s");
  REQUIRE(s);
  CHECK(s->has_timeout);
  REQUIRE(s->elements.size() == 2);
  CHECK(s->elements[1].timeout_ms == 7200000u);
}

TEST_CASE("nft: rule text is the line as written, locations point at tokens") {
  auto p = parse_nft("table ip t {\n chain c {\n  ip saddr 10.0.0.1   tcp dport 22 accept\n }\n}\n");
  const ir::Rule& r = rule(p.rs, 0, "c", 0);
  CHECK(r.text == "  ip saddr 10.0.0.1   tcp dport 22 accept");
  CHECK(r.loc.str() == "rules.nft:3:3");
  REQUIRE(r.matches.size() == 3);
  CHECK(r.matches[1].loc.str() == "rules.nft:3:3");   // ip saddr
  CHECK(r.matches[2].loc.str() == "rules.nft:3:23");  // tcp dport
  CHECK(r.verdict.loc.str() == "rules.nft:3:36");
}

TEST_CASE("nft: syntax errors are located and rendered like a compiler's") {
  auto p = one("  tcp dport 22 acept");
  REQUIRE(p.diags.errors() == 1);
  CHECK(diag::render(p.diags.all()[0]) ==
        "rules.nft:3:16: error: unknown expression 'acept'\n"
        "      tcp dport 22 acept\n"
        "                   ^~~~~\n"
        "  hint: expected a match such as ip saddr, tcp dport, meta iifname, ct state, or a statement\n");
  auto q = one("  ip saddr 10.1.2.300 drop");
  REQUIRE(q.diags.errors() == 1);
  CHECK(diag::render(q.diags.all()[0]) ==
        "rules.nft:3:12: error: invalid IPv4 address '10.1.2.300'\n"
        "      ip saddr 10.1.2.300 drop\n"
        "               ^~~~~~~~~~\n"
        "  hint: use an IPv4 address, prefix (10.0.0.0/8) or range (10.0.0.1-10.0.0.9)\n");
}

TEST_CASE("nft: a rule with an error is not kept; the next rule is") {
  auto p = one("  tcp dport 22 accept\n  tcp dport 99999 accept\n  udp dport 53 accept");
  CHECK(p.diags.errors() == 1);
  CHECK(rule_dump(p) == "l4proto 6; dport 22; accept\nl4proto 17; dport 53; accept\n");
}

TEST_CASE("nft: rules close with newline, semicolon or brace") {
  auto p = parse_nft("table ip t { chain c { ip saddr 1.1.1.1 accept; ip saddr 2.2.2.2 drop } }");
  INFO(p.rendered());
  REQUIRE(p.diags.errors() == 0);
  CHECK(rule_dump(p) == "saddr 1.1.1.1; accept\nsaddr 2.2.2.2; drop\n");
}

TEST_CASE("nft: multi-line sets and map elements written '22: accept'") {
  auto p = parse_nft(
      "table inet t {\n chain c {\n  tcp dport vmap {\n    22: accept,\n    80 : drop,\n"
      "    * : continue\n  }\n }\n}\n");
  INFO(p.rendered());
  REQUIRE(p.diags.errors() == 0);
  const ir::Set* m = p.rs.tables[0].find_set("__map0");
  REQUIRE(m);
  REQUIRE(m->elements.size() == 3);
  CHECK(m->elements[2].key[0] == ir::IntervalSet::range(0, 65535));  // the catch-all stays last
  CHECK(m->elements[2].verdict->kind == ir::VerdictKind::Continue);
}

TEST_CASE("nft: a statement after the verdict is warned about, not dropped silently") {
  auto p = one("  accept counter");
  CHECK(p.diags.errors() == 0);
  REQUIRE(p.diags.warnings() == 1);
  CHECK(p.diags.all()[0].message == "'counter' follows the rule's verdict and never runs");
  auto q = one("  accept drop");
  CHECK(q.diags.errors() == 1);
}

TEST_CASE("nft: a tcp port match implies its protocol, once") {
  CHECK(rule_dump(one("  tcp dport 22 accept")) == "l4proto 6; dport 22; accept\n");
  CHECK(rule_dump(one("  meta l4proto tcp tcp dport 22 accept")) == "l4proto 6; dport 22; accept\n");
  CHECK(rule_dump(one("  tcp dport 22 meta l4proto tcp accept")) == "l4proto 6; dport 22; accept\n");
  // A different protocol test is a second condition (it never matches here).
  CHECK(rule_dump(one("  meta l4proto udp tcp dport 22 accept")) == "l4proto 17; l4proto 6; dport 22; accept\n");
}

TEST_CASE("nft: family tests only where the table is dual-stack") {
  CHECK(rule_dump(one("  ip saddr 1.1.1.1 accept", "ip")) == "saddr 1.1.1.1; accept\n");
  CHECK(rule_dump(one("  ip6 saddr ::1 accept", "ip6")) == "saddr ::1; accept\n");
  CHECK(rule_dump(one("  ip saddr 1.1.1.1 accept", "inet")) == "nfproto 2; saddr 1.1.1.1; accept\n");
  CHECK(rule_dump(one("  ip6 saddr ::1 accept", "inet")) == "nfproto 10; saddr ::1; accept\n");
  auto p = one("  ip saddr 1.1.1.1 accept", "ip6");
  REQUIRE(p.diags.errors() == 1);
  CHECK(p.diags.all()[0].message == "'ip saddr' cannot match in a table of family ip6");
}

TEST_CASE("nft: limit statements keep their place among the matches") {
  // Tokens are only taken by packets that reach the limit: its position matters.
  CHECK(rule_dump(one("  limit rate 5/second tcp dport 22 accept")) ==
        "opaque[limit rate rate 5/second burst 5 packets]; l4proto 6; dport 22; accept\n");
  CHECK(rule_dump(one("  tcp dport 22 limit rate 5/second accept")) ==
        "l4proto 6; dport 22; opaque[limit rate rate 5/second burst 5 packets]; accept\n");
}

TEST_CASE("nft: mark arithmetic normalises to (old & ~mask) ^ value") {
  struct Case {
    const char* stmt;
    uint64_t value, mask;
  };
  for (auto c :
       {Case{"meta mark set 0x10", 0x10, 0xffffffff}, Case{"meta mark set mark or 0x4000", 0x4000, 0x4000},
        Case{"meta mark set mark and 0xffff00ff", 0, 0xff00}, Case{"meta mark set mark xor 0x3", 3, 0},
        Case{"meta mark set meta mark & 0xff | 0x100", 0x100, 0xffffff00}, Case{"ct mark set ct mark | 0x2", 2, 2}}) {
    INFO(c.stmt);
    auto p = one(std::string("  ") + c.stmt);
    REQUIRE(p.diags.errors() == 0);
    const auto& s = rule(p.rs, 0, "c", 0).statements.at(0);
    CHECK(s.value == c.value);
    CHECK(s.mask == c.mask);
    // The normal form computes what nft computes, for a few marks.
    for (uint64_t old : {0ull, 0xffffffffull, 0x12345678ull, 0x4000ull}) {
      uint64_t expect = 0;
      std::string t = c.stmt;
      if (t == "meta mark set 0x10") expect = 0x10;
      if (t == "meta mark set mark or 0x4000") expect = old | 0x4000;
      if (t == "meta mark set mark and 0xffff00ff") expect = old & 0xffff00ff;
      if (t == "meta mark set mark xor 0x3") expect = old ^ 3;
      if (t == "meta mark set meta mark & 0xff | 0x100") expect = (old & 0xff) | 0x100;
      if (t == "ct mark set ct mark | 0x2") expect = old | 2;
      CHECK(((old & ~s.mask) ^ s.value) == expect);
    }
  }
}

TEST_CASE("nft: NAT statements accept, as the kernel's nat expression does") {
  auto p = parse_nft(
      "table ip nat { chain p { type nat hook prerouting priority dstnat; "
      "tcp dport 80 dnat to 10.0.0.1:8080-8090 persistent; } }");
  INFO(p.rendered());
  REQUIRE(p.diags.errors() == 0);
  const ir::Rule& r = rule(p.rs, 0, "p", 0);
  REQUIRE(r.statements.size() == 1);
  CHECK(r.statements[0].kind == ir::StmtKind::Dnat);
  CHECK(r.statements[0].nat.addrs == ir::IntervalSet::single(*ir::parse_addr("10.0.0.1", ir::AddrFamily::V4)));
  CHECK(r.statements[0].nat.ports == std::make_pair<uint16_t, uint16_t>(8080, 8090));
  CHECK(r.statements[0].nat.persistent);
  CHECK(r.verdict.kind == ir::VerdictKind::Accept);
  CHECK(r.verdict.cap == "dnat");
}

TEST_CASE("nft: every capability the front-end names has a row in the table") {
  std::vector<fs::path> inputs;
  for (const char* dir : {"tests/golden/nft", "testdata/nft"})
    for (auto& e : fs::directory_iterator(src_path(dir)))
      if (e.path().extension() == ".nft") inputs.push_back(e.path());
  REQUIRE(inputs.size() >= 20);
  size_t caps_seen = 0;
  for (const auto& in : inputs) {
    auto cwd = fs::current_path();
    fs::current_path(in.parent_path());
    auto p = parse_nft(read_file(in.string()), in.filename().string());
    fs::current_path(cwd);
    auto check = [&](const std::string& cap) {
      if (cap.empty()) return;
      ++caps_seen;
      INFO(in.filename().string() << ": capability '" << cap << "'");
      CHECK(caps::find("nft", cap) != nullptr);
    };
    for (const auto& t : p.rs.tables) {
      CHECK(caps::find("nft", std::string("table ") + ir::to_string(t.family)) != nullptr);
      for (const auto& c : t.chains)
        for (const auto& r : c.rules) {
          for (const auto& m : r.matches) check(m.cap);
          for (const auto& s : r.statements) check(s.cap);
          check(r.verdict.cap);
        }
      for (const auto& s : t.sets)
        for (const auto& e : s.elements)
          if (e.verdict) check(e.verdict->cap);
    }
  }
  CHECK(caps_seen > 300);
}

TEST_CASE("nft: hostile input gives diagnostics, never a crash") {
  std::vector<std::string> inputs = {
      std::string("\x00\x01\x02table\xff\xfe", 10),
      "table",
      "table inet",
      "table inet t {",
      "table inet t { chain c {",
      "table inet t { chain c { ip saddr",
      "table inet t { chain c { ip saddr {",
      "table inet t { chain c { ip saddr { 1.1.1.1,",
      "table inet t { chain c { tcp dport vmap { 22 :",
      "table inet t { chain c { type filter hook",
      "}}}}}",
      "{{{{{{{{{{",
      "table inet t { chain c { ip saddr . . . accept; } }",
      "table inet t { chain c { tcp flags & ((((syn == syn; } }",
      "define X = $X\ntable ip t { chain c { ip saddr $X; } }",
      "table ip t { chain c { iifname \"unterminated; } }",
      "add rule",
      "add element inet t s { 1.1.1.1 }",
      "table ip t { set s { type ipv4_addr; elements = { 1.1.1.1 : accept } } }",
      "table ip t { map m { type ipv4_addr : verdict; elements = { 1.1.1.1 } } }",
      "table ip t { chain c { ip saddr 1.1.1.1 ip saddr 2.2.2.2 ip saddr 3.3.3.3 } }",
      "table ip t { chain c { jump c; } }",
      std::string(1 << 20, 'x'),
      "table ip t { chain c { ip saddr " + std::string(100000, '1') + " } }",
  };
  // Every prefix of a realistic ruleset, too.
  std::string fw4 = read_file(src_path("testdata/nft/openwrt-fw4.nft"));
  for (size_t n = 0; n < fw4.size(); n += 97) inputs.push_back(fw4.substr(0, n));
  for (const auto& in : inputs) {
    INFO("input: " << in.substr(0, 80));
    Parsed p;
    CHECK_NOTHROW(p = parse_nft(in));
    TranslateOptions opt;
    opt.from = "nft";
    CHECK_NOTHROW(translate_source({"x.nft", in}, opt));
  }
}

// ---- NAT (issue 12) -----------------------------------------------------------

namespace {

// "table/chain: statement" for every NAT statement, in order.
std::string nat_stmts(const ir::Ruleset& rs) {
  std::string out;
  for (const auto& t : rs.tables)
    for (const auto& c : t.chains)
      for (const auto& r : c.rules)
        for (const auto& st : r.statements) out += t.name + "/" + c.name + ": " + ir::dump(st) + "\n";
  return out;
}

std::string nft_errors(const std::string& text) {
  auto p = parse_nft(text);
  std::string s;
  for (const auto& d : p.diags.all())
    if (d.severity == diag::Severity::Error) s += d.loc.str() + ": " + d.message + "\n";
  return s;
}

}  // namespace

// tests/unit/data/nat-forms.nft is `nft list ruleset` of a ruleset loaded into
// a fresh netns with nft 1.0.6; nat-forms.json is `nft -j list ruleset` of it.
const char* const kNatFormsIr =
    "t/pre: dnat to 10.0.0.1 ports 80-80 (dnat)\n"
    "t/pre: dnat to 10.0.0.2 (dnat)\n"
    "t/pre: netmap to 192.168.2.0/24 (dnat prefix)\n"
    "t/pre: netmap (dnat prefix address map)\n"
    "t/pre: redirect ports 8080-8080 (redirect)\n"
    "t/pre: dnat (dnat address map)\n"
    "t/pre: dnat (dnat address map)\n"
    "t/pre: dnat to 10.0.0.6 persistent (dnat persistent)\n"
    "t/post: snat to 10.0.0.1-10.0.0.5 ports 1000-2000 (snat)\n"
    "t/post: masquerade ports 1024-65535 random (masquerade random)\n"
    "t/post: masquerade fully-random persistent (masquerade fully-random)\n"
    "t/post: snat to 10.0.0.7 random persistent (snat random)\n"
    "t6/pre: dnat to fd00::1 ports 80-80 (dnat)\n"
    "t6/pre: dnat to fd00::2 (dnat)\n"
    "ti/pre: dnat to 10.0.0.1 ports 80-80 (dnat)\n"
    "ti/pre: dnat to fd00::1 ports 80-80 (dnat)\n";

TEST_CASE("nft: the NAT forms nft lists lower to the right NatSpec") {
  auto p = parse_nft(read_file(src_path("tests/unit/data/nat-forms.nft")));
  INFO(p.rendered());
  REQUIRE(p.diags.errors() == 0);
  CHECK(nat_stmts(p.rs) == kNatFormsIr);
  // nft prints `dnat ip to` in an ip table as `dnat to`; both are read.
  auto q = parse_nft(
      "table ip t { chain pre { type nat hook prerouting priority dstnat; tcp dport 81 dnat ip to 10.0.0.2; } }");
  INFO(q.rendered());
  REQUIRE(q.diags.errors() == 0);
  CHECK(nat_stmts(q.rs) == "t/pre: dnat to 10.0.0.2 (dnat)\n");
}

// Each case was loaded with `nft -f` (1.0.6, kernel 6.18) into a fresh netns;
// the comment says what nft answered.
TEST_CASE("nft: bad NAT input gets a located error, as nft refuses it") {
  auto nat = [](const std::string& hook, const std::string& stmt, const std::string& type = "nat") {
    return "table ip t {\n  chain c {\n    type " + type + " hook " + hook + " priority 0;\n    " + stmt + "\n  }\n}\n";
  };
  // Error: Could not process rule: Operation not supported
  CHECK(nft_errors(nat("prerouting", "dnat to 10.0.0.1", "filter")) ==
        "rules.nft:4:5: dnat is only valid in a nat chain\n");
  CHECK(nft_errors(nat("postrouting", "dnat to 10.0.0.1")) == "rules.nft:4:5: dnat is not valid at hook postrouting\n");
  CHECK(nft_errors(nat("prerouting", "snat to 10.0.0.1")) == "rules.nft:4:5: snat is not valid at hook prerouting\n");
  CHECK(nft_errors(nat("output", "masquerade")) == "rules.nft:4:5: masquerade is not valid at hook output\n");
  CHECK(nft_errors(nat("input", "masquerade")) == "rules.nft:4:5: masquerade is not valid at hook input\n");
  CHECK(nft_errors(nat("postrouting", "redirect")) == "rules.nft:4:5: redirect is not valid at hook postrouting\n");
  CHECK(nft_errors(nat("input", "snat to 10.0.0.1")).empty());  // loads
  CHECK(nft_errors(nat("output", "meta l4proto tcp redirect to :8080")).empty());
  // Through a jump: refused when any base chain reaching it is wrong; an
  // unreferenced regular chain loads.
  CHECK(nft_errors("table ip t {\n chain x {\n  dnat to 10.0.0.1\n }\n chain c {\n  type nat hook postrouting "
                   "priority 0; jump x\n }\n}\n") ==
        "rules.nft:3:3: dnat in chain 'x' is reached from postrouting nat chain 'c' (c -> x)\n");
  CHECK(nft_errors("table ip t {\n chain x {\n  dnat to 10.0.0.1\n }\n chain c {\n  type filter hook prerouting "
                   "priority 0; jump x\n }\n}\n") ==
        "rules.nft:3:3: dnat in chain 'x' is reached from prerouting filter chain 'c' (c -> x)\n");
  CHECK(nft_errors("table ip t {\n chain x {\n  dnat to 10.0.0.1\n }\n}\n").empty());
  // Error: Range has zero or negative size
  CHECK(nft_errors(nat("prerouting", "dnat to 10.0.0.9-10.0.0.1")) ==
        "rules.nft:4:13: range '10.0.0.9-10.0.0.1' ends before it starts\n");
  CHECK(nft_errors(nat("prerouting", "meta l4proto tcp dnat to 10.0.0.1:90-80")) ==
        "rules.nft:4:30: range '90-80' ends before it starts\n");
  // Error: transport protocol mapping is only valid after transport protocol
  // match (also after `th dport` and `meta l4proto != tcp`; a set of
  // protocols and `ip protocol tcp` are enough).
  CHECK(nft_errors(nat("prerouting", "dnat to 10.0.0.1:80")) ==
        "rules.nft:4:13: NAT ports need a transport protocol match before dnat\n");
  CHECK(nft_errors(nat("prerouting", "meta l4proto != tcp dnat to 10.0.0.1:80")) ==
        "rules.nft:4:33: NAT ports need a transport protocol match before dnat\n");
  CHECK(nft_errors(nat("prerouting", "redirect to :8080")) ==
        "rules.nft:4:17: NAT ports need a transport protocol match before redirect\n");
  CHECK(nft_errors(nat("prerouting", "meta l4proto { tcp, udp } dnat to 10.0.0.1:80")).empty());
  CHECK(nft_errors(nat("prerouting", "ip protocol tcp dnat to 10.0.0.1:80")).empty());
  // Error: ip or ip6 must be specified with address for inet tables.
  CHECK(nft_errors("table inet t {\n chain c {\n  type nat hook prerouting priority 0; dnat to 10.0.0.1\n }\n}\n") ==
        "rules.nft:3:48: dnat to an address in an inet table needs 'ip' or 'ip6'\n");
  // Error: NAT is only supported for IPv4/IPv6
  for (std::string fam : {"bridge", "arp"})
    CHECK(nft_errors("table " + fam +
                     " t {\n chain c {\n  type filter hook input priority 0; dnat to 10.0.0.1\n }\n}\n") ==
          "rules.nft:3:38: dnat in a table of family " + fam + "\n");
  CHECK(nft_errors(
            "table netdev t {\n chain c {\n  type filter hook ingress device lo priority 0; masquerade\n }\n}\n") ==
        "rules.nft:3:50: masquerade in a table of family netdev\n");
  // bridge nat chain: Error: Could not process rule: No such file or directory
  CHECK(nft_errors("table bridge t {\n chain c {\n  type nat hook prerouting priority 0;\n }\n}\n") ==
        "rules.nft:3:8: nat chains do not exist on this hook/family\n");
}

TEST_CASE("nft: ct status snat/dnat is the NAT capability, other status bits are not") {
  auto p = parse_nft(
      "table inet t { chain c { type filter hook forward priority 0; ct status dnat accept; ct status snat,dnat "
      "accept; ct status assured accept; ct status dnat,assured accept; } }");
  INFO(p.rendered());
  REQUIRE(p.diags.errors() == 0);
  CHECK(dump_caps(p.rs) ==
        "t/c: ct status snat,dnat; accept\n"
        "t/c: ct status snat,dnat; accept\n"
        "t/c: ct status; accept\n"
        "t/c: ct status; accept\n");
  CHECK(ir::dump(rule(p.rs, 0, "c", 0).matches[0]) == "ct-status & 0x20 in 0x1-0x20");
}

TEST_CASE("nft: sets the packet path writes become nftset operations (kube-proxy's ClientIP affinity, meters)") {
  using Args = std::vector<std::pair<std::string, std::string>>;
  const std::string head =
      "table ip t {\n set aff { type ipv4_addr; flags dynamic,timeout; timeout 3h; }\n"
      " chain svc { ip saddr @aff goto ep }\n";
  auto p = parse_nft(head + " chain ep { update @aff { ip saddr }\n meta l4proto tcp dnat to 10.0.0.1:80 }\n}\n");
  REQUIRE(p.diags.errors() == 0);
  const ir::Match& look = rule(p.rs, 0, "svc", 0).matches.at(0);
  CHECK(look.module == "nftset");
  CHECK(look.args ==
        Args{{"op", "lookup"}, {"set", "nft ip t aff"}, {"key", "saddr"}, {"family", "4"}, {"timeout", "10800000"}});
  const ir::Match& upd = rule(p.rs, 0, "ep", 0).matches.at(0);
  CHECK(upd.module == "nftset");
  CHECK(upd.args ==
        Args{{"op", "update"}, {"set", "nft ip t aff"}, {"key", "saddr"}, {"family", "4"}, {"timeout", "10800000"}});

  SECTION("one set written with two keys stays unsupported, its lookups too") {
    auto q = parse_nft(head + " chain ep { update @aff { ip saddr }\n add @aff { ip daddr } }\n}\n");
    CHECK(rule(q.rs, 0, "svc", 0).matches.at(0).module != "nftset");
    CHECK(rule(q.rs, 0, "ep", 0).matches.at(0).module == "dynset");
  }
  SECTION("a meter is an update of the set it names, with the element's timeout and limit") {
    for (const std::string& src :
         {std::string("table ip t {\n chain c { udp dport 53 meter dns size 1024 { ip saddr . udp dport timeout 30s "
                      "limit rate over 10/second burst 4 packets } drop }\n}\n")}) {
      auto q = parse_nft(src);
      REQUIRE(q.diags.errors() == 0);
      const ir::Match& m = rule(q.rs, 0, "c", 0).matches.back();
      CHECK(m.module == "nftset");
      CHECK(m.args == Args{{"op", "update"},
                           {"set", "nft ip t dns"},
                           {"key", "saddr . dport"},
                           {"family", "4"},
                           {"timeout", "30000"},
                           {"own timeout", ""},
                           {"limit over", ""},
                           {"limit rate", "10/second"},
                           {"limit burst", "4 packets"}});
    }
    auto j = parse_nft_json(
        R"({"nftables": [{"table": {"family": "ip", "name": "t"}},)"
        R"({"chain": {"family": "ip", "table": "t", "name": "c"}},)"
        R"({"rule": {"family": "ip", "table": "t", "chain": "c", "expr": [)"
        R"({"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 53}},)"
        R"({"meter": {"name": "dns", "size": 1024, "key": {"elem": {"val": {"concat": [)"
        R"({"payload": {"protocol": "ip", "field": "saddr"}}, {"payload": {"protocol": "udp", "field": "dport"}}]},)"
        R"("timeout": 30}}, "stmt": {"limit": {"rate": 10, "burst": 4, "per": "second", "inv": true}}}},)"
        R"({"drop": null}]}}]})",
        "meter.json");
    REQUIRE(j.diags.errors() == 0);
    CHECK(rule(j.rs, 0, "c", 0).matches.back().args == rule(parse_nft("table ip t {\n chain c { udp dport 53 meter "
                                                                      "dns size 1024 { ip saddr . udp dport timeout "
                                                                      "30s limit rate over 10/second burst 4 packets "
                                                                      "} drop }\n}\n")
                                                                .rs,
                                                            0, "c", 0)
                                                           .matches.back()
                                                           .args);
  }
}

TEST_CASE("nft: an interface-name verdict map is unsupported with its reason, not an error") {
  // (Its names are no numbers: they were parsed as such, an error that
  // dropped the rule.) The map keeps its verdicts and the chains they reach.
  auto p = parse_nft(
      "table inet t {\n chain x { accept }\n chain input {\n type filter hook input priority 0; policy drop;\n"
      " iifname vmap { \"lo\" : accept, \"eth1\" : jump x }\n"
      " iifname . tcp dport vmap { \"eth0\" . 22 : accept }\n }\n}\n");
  REQUIRE(p.diags.errors() == 0);
  const auto& rules = p.rs.tables.at(0).chains.at(1).rules;
  REQUIRE(rules.size() == 2);
  CHECK(rules[0].vmap.has_value());
  CHECK(rules[0].matches.at(0).field == ir::Field::Opaque);
  CHECK(rules[0].matches.at(0).cap == "interface-name keys");
  CHECK(rules[1].matches.at(0).cap == "interface-name keys");
}
