// The userspace model: evaluates a Policy on a packet exactly as the BPF
// programs in bpf/ do (same classes, same tuple search, same conntrack), so
// `nf2bpf diff` can judge the compiled policy without privileges. Kernel
// tests check it against BPF_PROG_TEST_RUN packet by packet. It checks the
// compiled policy, so it lives in verify/ beside the engines that use it, not
// in the translator that produces the policy.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <unordered_map>
#include <string>
#include <vector>

#include "bpf/include/ct_abi.h"
#include "translator/policy/policy.h"
#include "verify/packet.h"

namespace nf2bpf::model {

// Where a packet is in the host, as the BPF programs see it.
enum class Path : uint8_t {
  Input,        // TC ingress, destined to this host: PREROUTING, INPUT
  Forward,      // TC ingress, routed: PREROUTING, FORWARD (then POSTROUTING at egress)
  Output,       // TC egress, locally generated: OUTPUT, POSTROUTING
  PostForward,  // TC egress of a forwarded packet, or of a local one routed again: POSTROUTING only
  Prerouting,   // TC ingress, the kernel will not route it: PREROUTING only
  Looped,       // TC ingress on lo, a local packet coming back: PREROUTING, INPUT
                // with the connection OUTPUT gave it (as `looped` in bpf/)
};

struct Decision {
  uint8_t action = NF_ACT_ACCEPT;  // NF_ACT_ACCEPT / DROP / REJECT
  uint32_t rule = UINT32_MAX;      // rule index, or a stage's policy counter index
  bool by_policy = false;
  uint32_t stage = UINT32_MAX;
  uint32_t mark = 0;           // skb mark after the hooks
  uint8_t ctstate = 0;         // NF_CT_STATE_* the rules saw
  bool indeterminate = false;  // a random or rate-limited rule took part
  bool translated = false;     // NAT rewrote the packet's header
  bool forwarded = false;      // routed on (FORWARD at ingress, or a local packet routed again after nat
                               // OUTPUT, out.oif "lo" for this host): POSTROUTING is the next egress run's
  bool to_lo = false;          // delivered to this host over lo: INPUT's source NAT made its source local
  pkt::Packet out;             // the packet as it leaves this run (NAT applied, mark set)
};

// Host facts the BPF side gets from the loader: address types.
struct ModelEnv {
  // Address type bit (ir::AddrType) of an address; default: UNICAST.
  std::function<uint32_t(const ir::u128&)> addrtype;
  // Routing of a packet that came in (nf_route): the output interface, ""
  // when it is for this host, nullopt when the kernel will not route it.
  // Unset: the caller's path stands (only NAT can change it).
  std::function<std::optional<std::string>(uint8_t family, const ir::u128& dst)> route;
  // MASQUERADE's address: the source the kernel picks for the route to dst
  // out of oif (bpf_fib_lookup with BPF_FIB_LOOKUP_SRC).
  std::function<std::optional<ir::u128>(uint8_t family, const std::string& oif, const ir::u128& dst)> source_address;
  // REDIRECT's address: an interface's first address (the nf_ifaddr map);
  // ifname "": the first address of the first device other than lo
  // (MASQUERADE's IPv4 address out of lo, nf_ifaddr's ifindex 0).
  std::function<std::optional<ir::u128>(uint8_t family, const std::string& ifname)> iface_address;
  // The kernel's HZ: -m recent's --seconds counts jiffies (the BPF program
  // reads CONFIG_HZ; 250 when the kernel's configuration is not readable).
  uint32_t hz = 250;
  // -m time's clock: the real time in seconds since 1970 (the BPF program's
  // TAI clock less the host's TAI offset); unset: the model's clock (its ns
  // since 1970); and the kernel's timezone for --kerneltz.
  std::function<int64_t()> real_seconds;
  int32_t tz_minuteswest = 0;
};

class Model {
 public:
  explicit Model(const policy::Policy& p, ModelEnv env = {});

  // Judges one packet and, when it is accepted, updates the tracker as the
  // BPF program would. `now_ns` drives conntrack timeouts.
  Decision decide(const pkt::Packet& p, Path path, uint64_t now_ns);

  // Per rule and per stage-policy hit counts so far (same indices as the
  // BPF counters).
  const std::vector<uint64_t>& hits() const { return hits_; }

 private:
  struct CtKeyLess {
    bool operator()(const nf_ct_key& x, const nf_ct_key& y) const { return std::memcmp(&x, &y, sizeof x) < 0; }
  };
  struct CtRes {
    nf_ct_key key{};
    uint8_t state = NF_CT_STATE_INVALID, dir = 2;
    bool exists = false, track = false;
    uint8_t new_tcp = 0;
    bool orig_is_a = false;
    bool kill = false;
    uint8_t proto = 0;
    uint32_t ctmark = 0;
  };
  // As struct nf_nat_work in bpf/lib/maps.h.
  struct NatWork {
    nf_ct_tuple orig{}, reply{}, cand{}, before{}, old_reply{};
    uint32_t rule = UINT32_MAX;
    bool active = false, binding = false;
    uint8_t flags = 0, dir = 0;
    bool manip_dst = false;
    uint8_t icmp_req = 0, passed = 0;
    uint8_t changed = 0;  // 1 the destination was rewritten, 2 the source (bits)
    bool had_alias = false;
    uint64_t now = 0;
    bool hint = false;  // conntrack: the connection is hint_key's (a forwarded packet's egress run)
    nf_ct_key hint_key{};
  };
  struct Work {
    pkt::Packet p;
    NatWork nat;
    uint8_t ctstate = 0, ctdir = 2;
    std::array<uint32_t, 32> cls{};
    uint32_t ctmark = 0;
    bool notrack = false;
    bool has_ct = false;  // the packet has a connection (s->has_ct)
    bool indeterminate = false;
    uint32_t iif_class = 0, oif_class = 0;
    std::array<uint32_t, NF_DRAW_CACHE> draw_slot{}, draw_val{};  // s->draw_*
    uint32_t draw_valid = 0;
    int hook = -1;       // the hook whose stages run (s->hook)
    nf_ct_key ct_key{};  // the packet's connection key (s->ct.key; zero before the lookup)
  };

  void classify(Work& w, uint32_t used, uint8_t ctstate, uint8_t ctdir) const;
  uint32_t lpm_class(int slot, const ir::u128& a) const;
  uint32_t small_class(uint32_t idx) const { return idx < pol_.small.size() ? pol_.small[idx] : 0u; }  // nf_small_class
  uint32_t addr_type(uint8_t family, const ir::u128& a) const;
  uint8_t run_hook(Work& w, int hook, int phase, Decision& d);
  bool nat_point(Work& w, int hook);
  bool nat_bind(Work& w, bool output);
  bool svc_pick(Work& w, uint32_t id, nf2bpf_nat& range);
  bool nat_unique(Work& w, const nf2bpf_nat* n, bool ports);
  bool nat_used(const NatWork& nw, uint8_t proto) const;
  int nat_apply(Work& w);
  void nat_begin(Work& w, const CtRes& ct, uint64_t now, bool looped, bool forwarded_egress) const;
  void write_alias(const CtRes& r, const NatWork& nw, const nf_ct_tuple& t, bool reply_dir);
  uint8_t run_stage(Work& w, uint32_t si, Decision& d);
  uint32_t search(const Work& w, const nf2bpf_stage& st, uint32_t from) const;
  bool residual_ok(Work& w, const nf2bpf_rule& r, uint32_t idx);
  bool limit_match(uint32_t i, const Work& w);
  bool connlimit_match(const nf2bpf_limit_cfg& c, const Work& w, uint32_t idx);
  bool time_match(const nf2bpf_limit_cfg& c) const;
  nf2bpf_hashlimit_key hl_key(const nf2bpf_limit_cfg& c, const pkt::Packet& p) const;
  bool hashlimit_match(const nf2bpf_limit_cfg& c, const pkt::Packet& p);
  bool set_match(const nf2bpf_limit_cfg& c, const pkt::Packet& p);
  bool recent_match(const Work& w, const nf2bpf_rule& r);
  void statements(Work& w, const nf2bpf_rule& r);
  void ct_lookup(const pkt::Packet& p, uint64_t now, CtRes& r, bool looped, NatWork& nw) const;
  int nat_dir(CtRes& r, const nf_ct_val*& v, const ir::u128& sa, const ir::u128& da, uint16_t sp, uint16_t dp,
              uint64_t now, int how) const;
  static constexpr int kMatchExact = 0, kMatchQuoted = 1, kMatchAny = 2;  // NF_CT_MATCH_*
  static uint64_t ct_timeout(const CtRes& r, bool seen_reply);
  void ct_update(const CtRes& r, uint64_t now);
  bool ct_finish(const CtRes& r, uint64_t now, bool accepted, uint32_t ctmark, const NatWork& nw, bool src_pending);
  void ct_by_source(const CtRes& r, const NatWork& nw);
  bool nat_in_range(const NatWork& nw, const nf2bpf_nat& n, const nf_ct_tuple& t, const uint8_t* fixed,
                    bool ports) const;
  bool nat_src_keep(Work& w, const nf2bpf_nat& n, const uint8_t* fixed, bool ports);

  const policy::Policy& pol_;
  ModelEnv env_;
  struct U128Hash {
    size_t operator()(const ir::u128& v) const { return std::hash<uint64_t>()((uint64_t)v ^ (uint64_t)(v >> 64) * 31); }
  };
  // Per slot and prefix length: base address -> class (longest match first).
  std::array<std::map<uint8_t, std::unordered_map<ir::u128, uint32_t, U128Hash>, std::greater<uint8_t>>, 2> lpm_;
  std::unordered_map<nf2bpf_entry_key, nf2bpf_entry_val, policy::EntryKeyHash, policy::EntryKeyEq> entries_;
  std::map<nf_ct_key, nf_ct_val, CtKeyLess> ct_;
  struct SrcKeyLess {
    bool operator()(const nf_nat_src_key& x, const nf_nat_src_key& y) const {
      return std::memcmp(&x, &y, sizeof x) < 0;
    }
  };
  std::map<nf_nat_src_key, nf_ct_key, SrcKeyLess> nat_src_;  // nf_nat_src
  // A forwarded packet's connection created at ingress, until its egress run
  // (nf_scratch.pending / pending_key).
  bool pending_ = false, pending_alias_ = false;
  nf_ct_key pending_key_{}, pending_alias_key_{};
  // A forwarded packet's connection and the tuple it left the ingress run
  // with (nf_scratch.fwd, fwd_key, fwd_tuple).
  bool fwd_ = false;
  // As bpf/lib/frag.h's nf_frag: a first fragment's outcome for its later
  // ones, by run (0 ingress, 1 egress), family, protocol, identification
  // and addresses as it came: passed (and its addresses as it left) or not,
  // until when (ns).
  struct FragOutcome {
    bool pass = false;
    ir::u128 saddr = 0, daddr = 0;
    uint64_t expires_ns = 0;
  };
  std::map<std::tuple<int, uint8_t, uint8_t, uint32_t, ir::u128, ir::u128>, FragOutcome> frags_;
  nf_ct_key fwd_key_{};
  nf_ct_tuple fwd_tuple_{};
  std::vector<uint64_t> hits_;
  std::vector<uint64_t> limit_tokens_, limit_last_;
  std::vector<uint64_t> nth_count_;  // nf_nth: per -m statistic nth counter slot
  // nf_recent / nf_recent_tab: -m recent tables, keyed as in bpf/.
  struct RecentKeyLess {
    bool operator()(const nf2bpf_recent_key& x, const nf2bpf_recent_key& y) const {
      return std::memcmp(&x, &y, sizeof x) < 0;
    }
  };
  std::map<nf2bpf_recent_key, nf2bpf_recent_val, RecentKeyLess> recent_;
  std::map<uint32_t, nf2bpf_recent_tab> recent_tab_;
  // nf_hashlimit: -m hashlimit buckets, keyed as in bpf/.
  struct HashlimitKeyLess {
    bool operator()(const nf2bpf_hashlimit_key& x, const nf2bpf_hashlimit_key& y) const {
      return std::memcmp(&x, &y, sizeof x) < 0;
    }
  };
  std::map<nf2bpf_hashlimit_key, nf2bpf_hashlimit_val, HashlimitKeyLess> hashlimit_;
  // nf_connlimit: -m connlimit lists by (limit index, family, masked address); one CPU (0).
  std::map<std::tuple<uint32_t, uint8_t, std::array<uint8_t, 16>>, nf2bpf_connlimit_val> connlimit_;
  uint64_t now_ = 0;
  uint64_t rng_ = 0x243f6a8885a308d3ULL;
};

}  // namespace nf2bpf::model
