// The nftables netlink boundary: dumps of the kernel's tables, chains, rules
// and sets (libmnl + libnftnl), read by the cut-over and by the iptables
// front-end's reader of iptables-nft tables, and transactions — one batch
// (NFNL_MSG_BATCH_BEGIN ... END) the kernel applies completely or not at all,
// sent by the cut-over. Requests and dumps go through here; `sync --watch`
// only listens (ops/watch.cpp).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

struct nlmsghdr;
struct mnl_socket;
struct nftnl_expr;

namespace nf2bpf::nfnl {

using Bytes = std::vector<uint8_t>;

// Messages of one transaction, built back to back. Sequence numbers and the
// batch begin/end envelope are added when it is sent.
class Batch {
 public:
  // Appends one message of `type` (NFT_MSG_*) for `family`; `build` adds the
  // payload after the nfgenmsg header (with nftnl_*_nlmsg_build_payload) into
  // a buffer of `room` bytes. `what` names the message in errors:
  // "delete rule ip filter INPUT handle 7".
  void add(uint16_t type, uint8_t family, uint16_t flags, std::string what, const std::function<void(nlmsghdr*)>& build,
           size_t room = 0);
  size_t count() const { return msgs_.size(); }
  size_t bytes() const { return buf_.size(); }
  bool empty() const { return msgs_.empty(); }
  // Descriptions of the messages, in order (for --dry-run style reports).
  std::vector<std::string> descriptions() const;

 private:
  friend class NftSocket;
  std::vector<uint8_t> buf_;
  struct Msg {
    size_t offset;
    std::string what;
  };
  std::vector<Msg> msgs_;
};

class NftSocket {
 public:
  static Result<std::unique_ptr<NftSocket>> open();
  ~NftSocket();
  NftSocket(const NftSocket&) = delete;
  NftSocket& operator=(const NftSocket&) = delete;

  // The ruleset generation: every committed transaction increments it.
  Result<uint32_t> generation();

  // A dump (NFT_MSG_GETTABLE, GETCHAIN, GETRULE, GETSET, GETSETELEM, GETOBJ,
  // GETFLOWTABLE) for `family` (0: all), restricted to `table` (and, for set
  // elements, `set`; for rules, `chain`) where the kernel supports it. Each
  // element is one whole netlink message as the kernel sent it. A dump the
  // kernel marks interrupted (the ruleset changed meanwhile) is retried.
  Result<std::vector<Bytes>> dump(uint16_t type, uint8_t family, const std::string& table = {},
                                  const std::string& set = {}, const std::string& chain = {});

  // Whether chain `chain` of table `table` exists (a dump of a chain's rules
  // cannot tell an empty chain from a missing one).
  Result<bool> chain_exists(uint8_t family, const std::string& table, const std::string& chain);

  // Sends `b` as one transaction. With `genid`, the kernel refuses it
  // (ERESTART, reported as code ERESTART) when the ruleset generation is no
  // longer `genid`, so nothing changes if anyone touched the ruleset since it
  // was read. On any failure nothing was applied; the error names the
  // message the kernel refused.
  Result<void> commit(Batch& b, std::optional<uint32_t> genid);

 private:
  NftSocket() = default;
  Result<void> send(const std::vector<uint8_t>& data);
  std::vector<char>& recv_buffer();  // one per socket: a dump per chain must not allocate 1 MiB each
  std::vector<char> rb_;
  mnl_socket* nl_ = nullptr;
  uint32_t portid_ = 0;
  uint32_t seq_ = 0;
};

// Reading dumped messages: one as its header; an expression attribute's
// bytes (empty when unset) or string ("" when unset); the prefix length of a
// mask of ones then zeros (nullopt for another mask).
inline const nlmsghdr* header(const Bytes& m) { return reinterpret_cast<const nlmsghdr*>(m.data()); }
Bytes expr_bytes(const nftnl_expr* e, uint16_t attr);
std::string expr_string(const nftnl_expr* e, uint16_t attr);
std::optional<int> prefix_length(const Bytes& mask);

// "ip", "ip6", "inet", "arp", "bridge", "netdev" for an NFPROTO_* value.
const char* family_name(uint8_t family);
std::optional<uint8_t> family_from_name(const std::string& name);

// Hex encoding of message bytes, for the backup file.
std::string to_hex(const Bytes& b);
std::optional<Bytes> from_hex(const std::string& s);

}  // namespace nf2bpf::nfnl
