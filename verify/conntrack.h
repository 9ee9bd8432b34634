// A model of Linux connection tracking (nf_conntrack), carried across a
// capture in packet order, so --ctstate/--state rules see what the kernel's
// would. What is modelled and what is approximated:
//
// Modelled (after net/netfilter/nf_conntrack_core.c and nf_conntrack_proto_*.c):
//  - tuples in both directions; ORIGINAL packets are NEW until a reply has been
//    seen, the reply and everything after it ESTABLISHED;
//  - an entry is created by the first packet and confirmed only when that
//    packet is accepted (a dropped SYN leaves no state); updates to confirmed
//    entries stick even when the packet is dropped afterwards, as in the kernel;
//  - TCP: the kernel's state table (nf_conntrack_tcp tcp_conntracks), invalid
//    flag combinations, tcp_loose=1 mid-stream pick-up (a bare ACK starts a
//    connection), SYN/ACK/FIN without a connection INVALID, re-opening a closed
//    connection by SYN, a RST before any reply deleting the entry, ASSURED;
//  - ICMP/ICMPv6: echo/timestamp/info/address-mask (v6: echo, node info) start
//    connections, replies match them, other types are INVALID; errors quoting
//    a tracked flow are RELATED (and INVALID when they quote nothing tracked or
//    the outer destination does not match, as nf_conntrack_inet_error checks);
//    neighbour discovery and MLD are UNTRACKED;
//  - NAT: an entry's reply tuple holds its binding (set by the reference's
//    NAT, verify/reference.cpp); where the binding was a choice the kernel
//    makes by hash or at random (CtChoice), the first reply inside the range
//    shows the choice and pins it (find_reply);
//  - UDP (30 s unreplied, 120 s once a stream, ASSURED), ICMP 30 s, TCP per
//    state (SYN_SENT 120 s ... ESTABLISHED 5 days), other protocols 600 s,
//    against the capture's timestamps.
// Approximated:
//  - TCP sequence/window tracking (tcp_in_window) is not modelled: every
//    segment is taken as in-window, as with nf_conntrack_tcp_be_liberal=1;
//  - SCTP and DCCP use the generic tracker (their own state machines, which can
//    declare packets INVALID, are not modelled);
//  - checksums: a TCP, UDP, ICMP or ICMPv6 packet arriving (PREROUTING) with a
//    wrong transport checksum is INVALID (nf_conntrack_checksum=1), its bytes
//    taken as the wire carried them (a device that did not check them);
//  - no helpers (expectations / RELATED data connections), no zones, no
//    table-full drops, no early drop.
#pragma once

#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "translator/ir/values.h"
#include "verify/packet.h"

namespace nf2bpf::verify {

struct CtTuple {
  ir::u128 src = 0, dst = 0;
  uint8_t proto = 0;
  uint16_t sport = 0, dport = 0;  // ICMP: sport = identifier, dport = type << 8 | code
  bool operator==(const CtTuple&) const = default;
};

struct CtTupleHash {
  size_t operator()(const CtTuple& t) const;
};

// ct status bits as nftables numbers them (ir::Field::CtStatus).
enum CtStatusBit : uint32_t {
  kStExpected = 1,
  kStSeenReply = 2,
  kStAssured = 4,
  kStConfirmed = 8,
  kStSnat = 16,         // the source was changed (IPS_SRC_NAT: set only when the tuple changed)
  kStDnat = 32,         // the destination was changed (IPS_DST_NAT)
  kStSrcNatDone = 128,  // a source binding (a rule's or the null binding) is set up
  kStDstNatDone = 256,  // likewise for the destination
};

// A NAT choice the kernel makes by a hash or at random, which the reference
// does not reproduce: the range the chosen address / port lies in. The
// entry's reply tuple holds one stand-in value from it.
struct CtChoice {
  bool addr = false, port = false;
  ir::u128 addr_lo = 0, addr_hi = 0;
  uint16_t port_lo = 0, port_hi = 0;
  bool operator==(const CtChoice&) const = default;
};

enum class TcpState : uint8_t {
  None,
  SynSent,
  SynRecv,
  Established,
  FinWait,
  CloseWait,
  LastAck,
  TimeWait,
  Close,
  SynSent2,
};
const char* to_string(TcpState s);

struct CtEntry {
  uint64_t id = 0;
  CtTuple orig, reply;  // reply differs from the inverted orig when NAT applies
  uint32_t status = 0;
  uint32_t mark = 0;
  double created = 0, expires = 0;
  TcpState tcp = TcpState::None;
  uint8_t last_index = 5, last_dir = 0;
  bool close_init[2] = {false, false};
  CtChoice choice[2];  // per NAT manip type: [0] source, [1] destination
  const CtTuple& tuple(int dir) const { return dir ? reply : orig; }
};

// What the tracker says about one packet, and the entry as this packet
// leaves it (a working copy: rules may still change its mark or NAT it).
struct CtView {
  uint8_t state = 1;             // one ir::CtStateBit
  int dir = -1;                  // 0 original, 1 reply; -1 without an entry
  bool is_new = false;           // created by this packet: kept only if the packet is accepted
  bool related = false;          // an ICMP error about `entry`
  CtEntry entry;                 // valid when dir >= 0
  std::vector<uint64_t> remove;  // entries this packet ends (closed, replaced, expired)
  bool kill_after = false;       // the entry dies once this packet is through (RST before any reply)
  std::string why;               // INVALID / UNTRACKED: the reason, for reports
  const char* state_name() const;
};

class Conntrack {
 public:
  // Classifies `p` seen at `now` (seconds), at PREROUTING (its checksum
  // checked) or OUTPUT. Pure: the table changes only in commit().
  CtView classify(const pkt::Packet& p, double now, bool at_prerouting) const;
  // Applies the outcome: writes back the working copy of an existing entry,
  // inserts a new one when `accepted` (confirmation), removes ended ones.
  void commit(const CtView& v, bool accepted, double now);
  size_t size() const { return entries_.size(); }
  const CtEntry* find(const CtTuple& t, double now, int* dir = nullptr) const;
  // find(), and else a reply to a connection whose NAT binding was a choice
  // the reference only bounds (CtChoice) with the fields the choice covers
  // inside its ranges: the reply shows what the kernel chose. `*pinned` is
  // then the entry with that choice made.
  const CtEntry* find_reply(const CtTuple& t, double now, int* dir, std::optional<CtEntry>& pinned) const;
  // Whether a live entry other than those in `ignore` has `t` as either of
  // its tuples (nf_conntrack_tuple_taken).
  bool taken(const CtTuple& t, double now, const std::vector<uint64_t>& ignore) const;
  // Live entries with a source binding whose original tuple has the same
  // source address, port and protocol as `t` (the kernel's bysource hash).
  std::vector<const CtEntry*> by_source(const CtTuple& t, double now) const;

 private:
  CtView classify_tcp(const pkt::Packet& p, const CtTuple& t, double now) const;
  CtView classify_icmp(const pkt::Packet& p, double now) const;
  CtView classify_generic(const pkt::Packet& p, const CtTuple& t, double now, double timeout) const;
  CtView start(const CtTuple& t, double now) const;
  void index(const CtEntry& e);
  void unindex(const CtEntry& e);
  void erase(uint64_t id);
  void gc(double now);

  std::unordered_map<CtTuple, std::pair<uint64_t, int>, CtTupleHash> index_;  // tuple -> (entry, dir)
  // Entry ids in the order they were indexed (with that order's number,
  // comparable across lists), each removed in O(1): a kube-proxy node's
  // witness packets put thousands of connections under one key, and removing
  // them from a vector one by one was quadratic.
  struct Indexed {
    uint64_t id, seq;
  };
  class IdList {
   public:
    // Moved, never copied: pos_ points into order_.
    IdList() = default;
    IdList(const IdList&) = delete;
    IdList& operator=(const IdList&) = delete;
    IdList(IdList&&) noexcept = default;
    IdList& operator=(IdList&&) noexcept = default;
    void push_back(uint64_t id, uint64_t seq) {
      if (!pos_.count(id)) pos_[id] = order_.insert(order_.end(), Indexed{id, seq});
    }
    void erase(uint64_t id) {
      if (auto it = pos_.find(id); it != pos_.end()) order_.erase(it->second), pos_.erase(it);
    }
    bool empty() const { return order_.empty(); }
    std::list<Indexed>::const_iterator begin() const { return order_.begin(); }
    std::list<Indexed>::const_iterator end() const { return order_.end(); }

   private:
    std::list<Indexed> order_;
    std::unordered_map<uint64_t, std::list<Indexed>::iterator> pos_;
  };
  // The ranges of an entry's NAT choices ([0] source, [1] destination).
  struct Choices {
    CtChoice c[2];
    bool operator==(const Choices&) const = default;
  };
  struct ChoicesHash {
    size_t operator()(const Choices& k) const;
  };
  // The entries under one key, grouped by their choices' ranges. The ranges
  // lie in one array, so a reply tests them in one pass over memory.
  class ChoiceGroups {
   public:
    IdList& operator[](const Choices& k) {
      auto [it, fresh] = pos_.try_emplace(k, keys_.size());
      if (fresh) keys_.push_back(k), ids_.emplace_back();
      return ids_[it->second];
    }
    void erase(const Choices& k, uint64_t id) {
      auto it = pos_.find(k);
      if (it == pos_.end()) return;
      size_t i = it->second;
      ids_[i].erase(id);
      if (!ids_[i].empty()) return;
      pos_.erase(it);
      if (i + 1 != keys_.size()) {  // the last group takes the freed place
        keys_[i] = keys_.back(), ids_[i] = std::move(ids_.back());
        pos_[keys_[i]] = i;
      }
      keys_.pop_back(), ids_.pop_back();
    }
    bool empty() const { return keys_.empty(); }
    size_t size() const { return keys_.size(); }
    const Choices& key(size_t i) const { return keys_[i]; }
    const IdList& ids(size_t i) const { return ids_[i]; }

   private:
    std::vector<Choices> keys_;
    std::vector<IdList> ids_;
    std::unordered_map<Choices, size_t, ChoicesHash> pos_;
  };
  // Entries with a NAT choice, by their reply tuple with the chosen fields
  // zeroed (wild_mask: 1 src, 2 dst, 4 sport, 8 dport), per mask in use, and
  // under it by their choices' ranges: a reply tests each set of ranges once,
  // not every connection (a kube-proxy node's masqueraded connections to one
  // backend port share one key, thousands of them over hundreds of Services).
  std::unordered_map<CtTuple, ChoiceGroups, CtTupleHash> chosen_;
  uint32_t masks_in_use_ = 0;  // bit m: some entry has wild mask m
  // Entries with a source binding by original source address, port and protocol (by_source).
  std::unordered_map<CtTuple, IdList, CtTupleHash> bysource_;
  uint64_t indexed_ = 0;  // the number of the last index()
  std::unordered_map<uint64_t, CtEntry> entries_;
  mutable uint64_t next_id_ = 1;
  uint64_t commits_ = 0;
};

CtTuple tuple_of(const pkt::Packet& p);
// Which reply-tuple fields an entry's NAT choices leave open (1 src, 2 dst, 4 sport, 8 dport).
unsigned wild_mask(const CtEntry& e);
CtTuple invert(const CtTuple& t);  // ICMP types are mapped to their replies

}  // namespace nf2bpf::verify
