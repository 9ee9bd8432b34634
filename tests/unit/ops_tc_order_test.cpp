// The warning status and unload give when someone else's TC filter runs
// before nf2bpf's on the same hook.
#include <catch2/catch.hpp>

#include "ops/tc_order.h"

using namespace nf2bpf;

TEST_CASE("ops tc order: a foreign filter before nf2bpf's is named, one after it is not") {
  std::vector<loader::TcFilter> fl = {{1, 1, "matchall", ""}, {ops::kNf2bpfTcPref, 0x2bf, "bpf", "nf_tc_ingress"}};
  CHECK(ops::filters_before("s0", true, fl) ==
        "s0 ingress: matchall (pref 1) runs before nf2bpf's filter (pref 703) and sees packets first");
  fl.push_back({49152, 1, "bpf", "cilium"});  // after ours: no warning about it
  CHECK(ops::filters_before("s0", false, fl).find("cilium") == std::string::npos);
  CHECK(ops::filters_before("s0", true, {{ops::kNf2bpfTcPref, 0x2bf, "bpf", "nf_tc_ingress"}}).empty());
  CHECK(ops::filters_before("eth0", false, {{5, 1, "bpf", "other"}, {7, 2, "u32", ""}}) ==
        "eth0 egress: bpf other (pref 5), u32 (pref 7) runs before nf2bpf's filter (pref 703) and sees packets first");
}
