// sync's state directory (lock, state.json, stored generations) and the
// pure parts of deploy (interface choice, what a generation records).
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "ops/coverage.h"
#include "ops/deploy.h"
#include "ops/state_store.h"
#include "tests/unit/ops_support.h"

using namespace nf2bpf;
using nlohmann::json;
using test::ScratchDir;
namespace fs = std::filesystem;

namespace {

const char* kRules =
    "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n"
    "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n"
    "COMMIT\n";

void write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

}  // namespace

TEST_CASE("ops state store: state.json round trip, and an unreadable one is empty") {
  ScratchDir dir;
  CHECK(ops::read_state(dir.path) == json::object());  // none yet
  json state = {{"live", {{"checksum", "abcd"}, {"generation", 3}}}};
  REQUIRE(ops::write_state(dir.path, state));
  CHECK(ops::read_state(dir.path) == state);
  write(dir / "state.json", "{ not json");
  CHECK(ops::read_state(dir.path) == json::object());
  write(dir / "state.json", "[1, 2]");
  CHECK(ops::read_state(dir.path) == json::object());
}

TEST_CASE("ops state store: one lock holder at a time, and the waiter is told who holds it") {
  ScratchDir dir;
  auto held = ops::StateLock::acquire(dir.path, 0);
  REQUIRE(held);
  auto waiter = ops::StateLock::acquire(dir.path, 0.1);
  REQUIRE_FALSE(waiter);
  CHECK(waiter.error().code == EWOULDBLOCK);
  std::string msg = waiter.error().context;
  CHECK(msg.find("another nf2bpf sync (pid " + std::to_string(getpid()) + ", since ") == 0);
  CHECK(msg.find("still holds " + dir.path + "/lock after 0.1 s") != std::string::npos);
  {
    auto moved = std::move(*held);  // the lock goes with the object
  }
  auto next = ops::StateLock::acquire(dir.path, 0);
  CHECK(next);
}

TEST_CASE("ops state store: generations are stored, loaded by checksum and pruned") {
  ScratchDir dir;
  Translation tr = test::translate_text(kRules);
  policy::Policy pol = test::compile_ok(tr);
  REQUIRE(fs::create_directories(dir / "generations"));
  std::string tmp = dir / "generations/w.pcapng.tmp.1";
  write(tmp, "witness");
  REQUIRE(ops::store_generation(dir.path, pol, tmp));
  CHECK_FALSE(fs::exists(tmp));
  CHECK(fs::exists(ops::generation_witness(dir.path, pol.checksum)));
  CHECK(ops::generation_yaml(dir.path, pol.checksum) == dir / ("generations/" + pol.checksum + ".yaml"));

  auto loaded = ops::load_generation(dir.path, pol.checksum);
  REQUIRE(loaded);
  CHECK(loaded->checksum == pol.checksum);
  CHECK(loaded->rules.size() == pol.rules.size());
  CHECK_FALSE(ops::load_generation(dir.path, ""));
  CHECK_FALSE(ops::load_generation(dir.path, std::string(64, '0')));
  // A stored file whose content no longer has its name's checksum is not used.
  fs::copy_file(ops::generation_yaml(dir.path, pol.checksum), ops::generation_yaml(dir.path, std::string(64, 'f')));
  CHECK_FALSE(ops::load_generation(dir.path, std::string(64, 'f')));

  write(dir / "generations/old.yaml", "x");
  write(dir / "generations/old.pcapng", "x");
  write(dir / "generations/keep.txt", "x");
  write(dir / "generations/new.pcapng.tmp.99", "x");
  ops::prune_generations(dir.path, {pol.checksum});
  CHECK(fs::exists(ops::generation_yaml(dir.path, pol.checksum)));
  CHECK(fs::exists(ops::generation_witness(dir.path, pol.checksum)));
  CHECK_FALSE(fs::exists(dir / "generations/old.yaml"));
  CHECK_FALSE(fs::exists(dir / "generations/old.pcapng"));
  CHECK_FALSE(fs::exists(ops::generation_yaml(dir.path, std::string(64, 'f'))));
  CHECK_FALSE(fs::exists(dir / "generations/new.pcapng.tmp.99"));
  CHECK(fs::exists(dir / "generations/keep.txt"));  // not sync's
}

TEST_CASE("ops state store: a killed run's temporary files are removed") {
  ScratchDir dir;
  REQUIRE(fs::create_directories(dir / "generations"));
  write(dir / "state.json", "{}");
  write(dir / "state.json.tmp.123", "{");
  write(dir / "generations/abc.pcapng.tmp.5", "x");
  write(dir / "generations/abc.pcapng", "x");
  ops::remove_leftovers(dir.path);
  CHECK(fs::exists(dir / "state.json"));
  CHECK_FALSE(fs::exists(dir / "state.json.tmp.123"));
  CHECK_FALSE(fs::exists(dir / "generations/abc.pcapng.tmp.5"));
  CHECK(fs::exists(dir / "generations/abc.pcapng"));
  CHECK(ops::default_backup_path("/var/lib/nf2bpf/netns-1") == "/var/lib/nf2bpf/netns-1/cutover-backup.json");
}

TEST_CASE("ops deploy: interfaces named and lo, or every one, never an excluded one") {
  std::vector<loader::Interface> all = {{"lo", 1}, {"eth0", 2}, {"eth1", 3}};
  auto c = ops::choose_interfaces(all, {});
  CHECK(c.refused.empty());
  REQUIRE(c.ifaces.size() == 3);
  CHECK(ops::join_ifaces(c.ifaces) == "lo, eth0, eth1");
  CHECK(c.ifaces[2].ifindex == 3);

  // lo carries this host's traffic to itself: always covered.
  c = ops::choose_interfaces(all, {"eth1"});
  CHECK(c.refused.empty());
  CHECK(ops::join_ifaces(c.ifaces) == "lo, eth1");

  c = ops::choose_interfaces(all, {"eth1", "wg0"});
  CHECK(c.refused == "interface 'wg0' does not exist in this network namespace");

  c = ops::choose_interfaces(all, {}, {"eth0"});
  CHECK(ops::join_ifaces(c.ifaces) == "lo, eth1");
  c = ops::choose_interfaces(all, {"eth1"}, {"lo"});
  CHECK(ops::join_ifaces(c.ifaces) == "eth1");
  c = ops::choose_interfaces(all, {"eth1"}, {"eth1"});
  CHECK(c.refused == "interface 'eth1' is both named and excluded");

  c = ops::choose_interfaces({{"lo", 1}}, {});
  CHECK(c.refused.empty());
  CHECK(ops::join_ifaces(c.ifaces) == "lo");
  c = ops::choose_interfaces({{"lo", 1}}, {}, {"lo"});
  CHECK(c.refused == "no interface of this network namespace is left to attach to");
}

TEST_CASE("ops deploy: what a generation records, and what is live after a failure") {
  Translation tr = test::translate_text(kRules);
  policy::Policy pol = test::compile_ok(tr);
  json meta = ops::generation_meta(tr, pol, "/etc/rules.v4");
  CHECK(meta["source"] == "/etc/rules.v4");
  CHECK(meta["format"] == "iptables");
  CHECK(meta["rules"] == 1);
  CHECK(meta["unsupported"] == 0);
  CHECK(meta["compiled_rules"] == pol.rules.size());
  CHECK(meta["entries"] == pol.entries.size());
  CHECK(meta["tuples"] == pol.tuples.size());

  CHECK(ops::source_name("-", "auto") == "<stdin>");
  CHECK(ops::source_name("", "kernel") == "kernel");
  CHECK(ops::source_name("/etc/rules.v4", "iptables") == "/etc/rules.v4");
  CHECK(ops::source_name("rules.v4", "auto") == (fs::current_path() / "rules.v4").string());

  using ops::LiveAfterFailure;
  CHECK(std::string(ops::describe(LiveAfterFailure::Unchanged)) == "the previously live generation is still live");
  CHECK(std::string(ops::describe(LiveAfterFailure::RolledBack)) == "the previous generation is live again");
  CHECK(std::string(ops::describe(LiveAfterFailure::Unloaded)) == "nothing was loaded");
  CHECK(std::string(ops::describe(LiveAfterFailure::Unknown)) == "rolling back failed too: check `nf2bpf status`");
}

TEST_CASE("ops coverage: up interfaces neither attached (same name and ifindex) nor excluded") {
  std::vector<loader::Interface> all = {{"lo", 1, true},     {"eth0", 2, true}, {"veth9", 7, true},
                                        {"down0", 8, false}, {"wg0", 9, true},  {"eth1", 12, true}};
  nlohmann::json attached = nlohmann::json::array(
      {{{"name", "lo"}, {"ifindex", 1}}, {{"name", "eth0"}, {"ifindex", 2}}, {{"name", "eth1"}, {"ifindex", 3}}});
  // veth9 is new, down0 is down, wg0 excluded, eth1 was recreated (new ifindex).
  auto left = ops::uncovered(all, attached, {"wg0"});
  CHECK(ops::names(left) == "veth9, eth1");
  CHECK(ops::uncovered(all, attached, {"wg0", "veth9", "eth1"}).empty());
}
