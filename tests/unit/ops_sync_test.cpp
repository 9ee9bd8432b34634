// sync's decisions without a kernel: the state file reconciled with what is
// live, in sync or why not, and the change guard.
#include <catch2/catch.hpp>

#include "ops/sync.h"

using namespace nf2bpf;
using nlohmann::json;

namespace {

// A live generation's metadata as loader::Dataplane::status reports it.
json live_meta(const std::string& checksum, uint64_t generation) {
  return {{"valid", true},        {"checksum", checksum}, {"generation", generation}, {"source", "/etc/rules.v4"},
          {"format", "iptables"}, {"applied", 1700000000}};
}

json attach(const std::string& name, uint32_t ifindex, bool xdp) {
  return json::array({{{"name", name}, {"ifindex", ifindex}, {"xdp", xdp}}});
}

}  // namespace

TEST_CASE("ops reconcile: a pending mark whose policy is live was swapped in before the run was killed") {
  json state = {{"live", {{"checksum", "aaaa"}, {"by", "sync"}}},
                {"pending", {{"checksum", "bbbb"}, {"pid", 4242}, {"source", "/etc/rules.v4"}, {"rules", 3}}}};
  auto notes = ops::reconcile(state, live_meta("bbbb", 7));
  REQUIRE(notes.size() == 1);
  CHECK(notes[0] == "an earlier sync (pid 4242) was interrupted after its swap; the state file now says so");
  CHECK_FALSE(state.contains("pending"));
  CHECK(state["live"]["checksum"] == "bbbb");
  CHECK(state["live"]["by"] == "sync");
  CHECK(state["live"]["rules"] == 3);  // the pending record, not the kernel's metadata
}

TEST_CASE("ops reconcile: a pending mark whose policy is not live never went live") {
  json state = {{"live", {{"checksum", "aaaa"}, {"by", "sync"}}}, {"pending", {{"checksum", "bbbb"}, {"pid", 17}}}};
  auto notes = ops::reconcile(state, live_meta("aaaa", 3));
  REQUIRE(notes.size() == 1);
  CHECK(notes[0] == "an earlier sync (pid 17) was interrupted before its swap; its policy never went live");
  CHECK_FALSE(state.contains("pending"));
  CHECK(state["live"]["checksum"] == "aaaa");
  CHECK(state["live"]["by"] == "sync");

  // Killed before the swap of the very first sync: nothing is live at all.
  json first = {{"pending", {{"checksum", "bbbb"}, {"pid", 18}}}};
  notes = ops::reconcile(first, nullptr);
  REQUIRE(notes.size() == 1);
  CHECK(notes[0] == "an earlier sync (pid 18) was interrupted before its swap; its policy never went live");
  CHECK(first == json::object());
}

TEST_CASE("ops reconcile: a generation made live outside sync is recorded as such") {
  json state = {{"live", {{"checksum", "aaaa0000aaaa0000ffff"}, {"by", "sync"}}}};
  std::string sum = "cccc1111cccc1111dddd";
  auto notes = ops::reconcile(state, live_meta(sum, 9));
  REQUIRE(notes.size() == 1);
  CHECK(notes[0] ==
        "the live generation changed outside sync (apply, rollback or restore): generation 9, "
        "checksum cccc1111cccc1111");
  CHECK(state["live"] == json{{"checksum", sum},
                              {"generation", 9},
                              {"source", "/etc/rules.v4"},
                              {"format", "iptables"},
                              {"since", 1700000000},
                              {"by", "outside sync"}});

  // A first run finds something live: recorded, nothing to note.
  json empty = json::object();
  CHECK(ops::reconcile(empty, live_meta(sum, 9)).empty());
  CHECK(empty["live"]["by"] == "outside sync");
  CHECK(empty["live"]["generation"] == 9);
}

TEST_CASE("ops reconcile: nothing live any more (unloaded since the last sync)") {
  json state = {{"live", {{"checksum", "aaaa"}, {"by", "sync"}}}, {"previous", {{"checksum", "9999"}}}};
  auto notes = ops::reconcile(state, nullptr);
  REQUIRE(notes.size() == 1);
  CHECK(notes[0] == "no generation is live any more (unloaded since the last sync)");
  CHECK_FALSE(state.contains("live"));
  CHECK(state.contains("previous"));
}

TEST_CASE("ops reconcile: a state file that agrees with the kernel is left alone") {
  json state = {{"live", {{"checksum", "aaaa"}, {"by", "sync"}, {"generation", 2}}}};
  json before = state;
  CHECK(ops::reconcile(state, live_meta("aaaa", 2)).empty());
  CHECK(state == before);
  json empty = json::object();
  CHECK(ops::reconcile(empty, nullptr).empty());
  CHECK(empty == json::object());
}

TEST_CASE("ops decide: in sync only when policy, interfaces and XDP all match") {
  std::vector<loader::Interface> s0 = {{"s0", 3}};
  auto live = ops::live_view(live_meta("abcd", 5), attach("s0", 3, false), 5);
  CHECK(live.checksum == "abcd");
  CHECK(live.generation == 5);
  CHECK_FALSE(live.xdp);

  auto d = ops::decide(live, "abcd", s0, false);
  CHECK(d.in_sync);
  CHECK(d.reason.empty());

  d = ops::decide(live, "ef01", s0, false);
  CHECK_FALSE(d.in_sync);
  CHECK(d.reason == "the policy changed");

  d = ops::decide(live, "abcd", s0, true);
  CHECK_FALSE(d.in_sync);
  CHECK(d.reason == "the interfaces changed");

  d = ops::decide(live, "abcd", {{"s0", 4}}, false);  // the same name, another interface
  CHECK(d.reason == "the interfaces changed");

  d = ops::decide(live, "abcd", {{"s0", 3}, {"s1", 4}}, false);
  CHECK(d.reason == "the interfaces changed");

  auto with_xdp = ops::live_view(live_meta("abcd", 5), attach("s0", 3, true), 5);
  CHECK(with_xdp.xdp);
  CHECK(ops::decide(with_xdp, "abcd", s0, true).in_sync);
}

TEST_CASE("ops decide: nothing live is never in sync") {
  auto none = ops::live_view(nullptr, json::array(), 0);
  CHECK(none.checksum.empty());
  CHECK(none.attached.empty());
  auto d = ops::decide(none, "abcd", {{"s0", 3}}, false);
  CHECK_FALSE(d.in_sync);
  CHECK(d.reason == "nothing is live yet");
  // Not even for an empty checksum.
  CHECK_FALSE(ops::decide(none, "", {}, false).in_sync);
}

TEST_CASE("ops change guard: before comparing") {
  using ops::Guard;
  // The guard is on by default (--max-change 10): a stored live policy is compared with.
  CHECK(ops::SyncOptions{}.max_change == 10.0);
  CHECK(ops::guard_before(false, false, true, true) == Guard::compare);
  CHECK(ops::guard_before(true, false, true, true) == Guard::compare);
  CHECK(ops::guard_before(false, false, false, false) == Guard::off);  // nothing live
  CHECK(ops::guard_before(true, false, false, false) == Guard::off);
  // No stored copy of the live policy: a limit the user gave refuses, the default one is skipped (noted).
  CHECK(ops::guard_before(true, false, true, false) == Guard::refuse);
  CHECK(ops::guard_before(false, false, true, false) == Guard::skip);
  CHECK(ops::guard_before(true, true, true, false) == Guard::force);
  CHECK(ops::guard_before(false, true, true, false) == Guard::force);
}

TEST_CASE("ops change guard: a policy that accepts none of what the live one accepted") {
  using ops::Guard;
  CHECK(ops::guard_cutoff({"INPUT"}, false) == Guard::refuse);
  CHECK(ops::guard_cutoff({"INPUT"}, true) == Guard::force);
  CHECK(ops::guard_cutoff({}, false) == Guard::pass);
}

TEST_CASE("ops sync: shares and counts are shown with enough digits") {
  CHECK(ops::percent_text(0) == "0%");
  CHECK(ops::percent_text(100.0 * 8 / 1600018) == "0.0005%");  // not "0.0%"
  CHECK(ops::percent_text(0.5) == "0.5%");
  CHECK(ops::percent_text(0.123) == "0.12%");
  CHECK(ops::percent_text(10) == "10.0%");
  CHECK(ops::percent_text(45.83) == "45.8%");
  CHECK(ops::percent_text(100) == "100%");
  CHECK(ops::count_text(1600018) == "1,600,018");
  CHECK(ops::count_text(999) == "999");
  CHECK(ops::count_text(1000) == "1,000");
}

TEST_CASE("ops change guard: after comparing") {
  using ops::Guard;
  CHECK(ops::guard_after(45.8, 10, false) == Guard::refuse);
  CHECK(ops::guard_after(45.8, 10, true) == Guard::force);
  CHECK(ops::guard_after(10.0, 10, false) == Guard::pass);  // at the limit is within it
  CHECK(ops::guard_after(10.01, 10, false) == Guard::refuse);
  CHECK(ops::guard_after(0, 0, false) == Guard::pass);
  CHECK(ops::guard_after(0.5, 0, false) == Guard::refuse);
  CHECK(ops::guard_after(100, 100, false) == Guard::pass);
}
