#include "common/nft_netlink.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/gen.h>
#include <libnftnl/set.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

namespace nf2bpf::nfnl {

namespace {

// Room for one reply datagram: the kernel sends dumps in chunks of at most
// this much, and a single rule message never comes close.
constexpr size_t kRecvBuf = 1 << 20;

size_t align4(size_t n) { return (n + 3) & ~(size_t)3; }

std::string msg_type_name(uint16_t type) {
  switch (type) {
    case NFT_MSG_GETTABLE: return "tables";
    case NFT_MSG_GETCHAIN: return "chains";
    case NFT_MSG_GETRULE: return "rules";
    case NFT_MSG_GETSET: return "sets";
    case NFT_MSG_GETSETELEM: return "set elements";
    case NFT_MSG_GETOBJ: return "objects";
    case NFT_MSG_GETFLOWTABLE: return "flowtables";
    default: return "objects of type " + std::to_string(type);
  }
}

}  // namespace

const char* family_name(uint8_t family) {
  switch (family) {
    case NFPROTO_IPV4: return "ip";
    case NFPROTO_IPV6: return "ip6";
    case NFPROTO_INET: return "inet";
    case NFPROTO_ARP: return "arp";
    case NFPROTO_BRIDGE: return "bridge";
    case NFPROTO_NETDEV: return "netdev";
    default: return "unknown";
  }
}

std::optional<uint8_t> family_from_name(const std::string& n) {
  for (uint8_t f : {NFPROTO_IPV4, NFPROTO_IPV6, NFPROTO_INET, NFPROTO_ARP, NFPROTO_BRIDGE, NFPROTO_NETDEV})
    if (n == family_name(f)) return f;
  return std::nullopt;
}

std::string to_hex(const Bytes& b) {
  static const char* d = "0123456789abcdef";
  std::string s;
  s.reserve(b.size() * 2);
  for (uint8_t c : b) s.push_back(d[c >> 4]), s.push_back(d[c & 15]);
  return s;
}

std::optional<Bytes> from_hex(const std::string& s) {
  if (s.size() % 2) return std::nullopt;
  auto nib = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  Bytes b(s.size() / 2);
  for (size_t i = 0; i < b.size(); ++i) {
    int hi = nib(s[2 * i]), lo = nib(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    b[i] = (uint8_t)(hi << 4 | lo);
  }
  return b;
}

// ---- Batch -------------------------------------------------------------------

void Batch::add(uint16_t type, uint8_t family, uint16_t flags, std::string what,
                const std::function<void(nlmsghdr*)>& build, size_t room) {
  // mnl_attr_put does not check bounds: give the builder a buffer larger
  // than anything it can write (callers pass the size of the message the
  // object was parsed from).
  std::vector<char> scratch(std::max<size_t>(room * 2 + 4096, 65536), 0);
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(scratch.data(), type, family, flags, 0);
  if (build) build(nlh);
  size_t off = buf_.size();
  buf_.resize(off + align4(nlh->nlmsg_len), 0);
  std::memcpy(buf_.data() + off, nlh, nlh->nlmsg_len);
  msgs_.push_back({off, std::move(what)});
}

std::vector<std::string> Batch::descriptions() const {
  std::vector<std::string> v;
  for (const auto& m : msgs_) v.push_back(m.what);
  return v;
}

// ---- NftSocket ---------------------------------------------------------------

Result<std::unique_ptr<NftSocket>> NftSocket::open() {
  std::unique_ptr<NftSocket> s(new NftSocket);
  s->nl_ = mnl_socket_open(NETLINK_NETFILTER);
  if (!s->nl_) return sys_error("open a netfilter netlink socket");
  if (mnl_socket_bind(s->nl_, 0, MNL_SOCKET_AUTOPID) < 0) return sys_error("bind the netfilter netlink socket");
  s->portid_ = mnl_socket_get_portid(s->nl_);
  s->seq_ = (uint32_t)time(nullptr);
  // Errors name the message; the kernel need not echo the whole request.
  int one = 1;
  setsockopt(mnl_socket_get_fd(s->nl_), SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  setsockopt(mnl_socket_get_fd(s->nl_), SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  return s;
}

NftSocket::~NftSocket() {
  if (nl_) mnl_socket_close(nl_);
}

Result<void> NftSocket::send(const std::vector<uint8_t>& data) {
  // A transaction must reach the kernel in one datagram; raise the send
  // buffer to its size (root may exceed net.core.wmem_max).
  int fd = mnl_socket_get_fd(nl_);
  int want = (int)std::min<size_t>(data.size() + 65536, (size_t)INT32_MAX / 2);
  int cur = 0;
  socklen_t len = sizeof cur;
  getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &cur, &len);
  if (cur < want && setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof want) != 0)
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof want);
  if (mnl_socket_sendto(nl_, data.data(), data.size()) < 0)
    return sys_error("send " + std::to_string(data.size()) + " bytes to nftables");
  return {};
}

std::vector<char>& NftSocket::recv_buffer() {
  if (rb_.empty()) rb_.resize(kRecvBuf);
  return rb_;
}

Result<uint32_t> NftSocket::generation() {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  uint32_t seq = ++seq_;
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETGEN, AF_UNSPEC, NLM_F_ACK, seq);
  if (mnl_socket_sendto(nl_, nlh, nlh->nlmsg_len) < 0) return sys_error("ask nftables for the ruleset generation");
  std::vector<char>& rb = recv_buffer();
  struct Ctx {
    uint32_t id = 0;
    bool got = false;
  } ctx;
  auto cb = [](const nlmsghdr* n, void* data) -> int {
    auto* c = static_cast<Ctx*>(data);
    nftnl_gen* g = nftnl_gen_alloc();
    if (g && nftnl_gen_nlmsg_parse(n, g) == 0) {
      c->id = nftnl_gen_get_u32(g, NFTNL_GEN_ID);
      c->got = true;
    }
    if (g) nftnl_gen_free(g);
    return MNL_CB_OK;
  };
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(nl_, rb.data(), rb.size());
    if (n < 0) return sys_error("read the ruleset generation");
    int rc = mnl_cb_run(rb.data(), (size_t)n, seq, portid_, cb, &ctx);
    if (rc < 0) return sys_error("read the ruleset generation");
    if (rc == MNL_CB_STOP) break;
  }
  if (!ctx.got) return Error{EPROTO, "read the ruleset generation: no answer"};
  return ctx.id;
}

Result<std::vector<Bytes>> NftSocket::dump(uint16_t type, uint8_t family, const std::string& table,
                                           const std::string& set, const std::string& chain) {
  std::vector<char>& rb = recv_buffer();
  for (int attempt = 0; attempt < 20; ++attempt) {
    char buf[MNL_SOCKET_BUFFER_SIZE];
    uint32_t seq = ++seq_;
    nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf, type, family, NLM_F_DUMP, seq);
    if (type == NFT_MSG_GETSETELEM || type == NFT_MSG_GETSET) {
      nftnl_set* s = nftnl_set_alloc();
      if (!table.empty()) nftnl_set_set_str(s, NFTNL_SET_TABLE, table.c_str());
      if (!set.empty()) nftnl_set_set_str(s, NFTNL_SET_NAME, set.c_str());
      if (type == NFT_MSG_GETSET)
        nftnl_set_nlmsg_build_payload(nlh, s);
      else
        nftnl_set_elems_nlmsg_build_payload(nlh, s);
      nftnl_set_free(s);
    } else if (type == NFT_MSG_GETRULE && !table.empty()) {
      mnl_attr_put_strz(nlh, NFTA_RULE_TABLE, table.c_str());
      if (!chain.empty()) mnl_attr_put_strz(nlh, NFTA_RULE_CHAIN, chain.c_str());
    }
    if (mnl_socket_sendto(nl_, nlh, nlh->nlmsg_len) < 0) return sys_error("dump nftables " + msg_type_name(type));
    std::vector<Bytes> out;
    auto cb = [](const nlmsghdr* n, void* data) -> int {
      auto* v = static_cast<std::vector<Bytes>*>(data);
      const auto* p = reinterpret_cast<const uint8_t*>(n);
      v->emplace_back(p, p + n->nlmsg_len);
      return MNL_CB_OK;
    };
    // Whether a read holds the dump's end. mnl_cb_run stops at the first
    // message marked NLM_F_DUMP_INTR, so after one the end is looked for
    // here: a DONE in the same read would otherwise go unseen, and the next
    // read wait forever.
    auto has_end = [&](ssize_t n) {
      int len = (int)n;
      for (auto* h = (const nlmsghdr*)rb.data(); mnl_nlmsg_ok(h, len); h = mnl_nlmsg_next(h, &len))
        if (h->nlmsg_seq == seq && (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR)) return true;
      return false;
    };
    bool interrupted = false;
    for (;;) {
      ssize_t n = mnl_socket_recvfrom(nl_, rb.data(), rb.size());
      if (n < 0) return sys_error("dump nftables " + msg_type_name(type));
      if (interrupted) {  // draining: the content is read again
        if (has_end(n)) break;
        continue;
      }
      int rc = mnl_cb_run(rb.data(), (size_t)n, seq, portid_, cb, &out);
      if (rc == MNL_CB_STOP) break;
      if (rc < 0) {
        if (errno == EINTR) {  // NLM_F_DUMP_INTR: drain and start again
          interrupted = true;
          if (has_end(n)) break;
          continue;
        }
        if (errno == ENOENT && !table.empty()) return out;  // the table (or set) is not there
        return sys_error("dump nftables " + msg_type_name(type));
      }
    }
    if (!interrupted) return out;
  }
  return Error{EAGAIN, "dump nftables " + msg_type_name(type) + ": the ruleset kept changing while it was read"};
}

Result<bool> NftSocket::chain_exists(uint8_t family, const std::string& table, const std::string& chain) {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  uint32_t seq = ++seq_;
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETCHAIN, family, NLM_F_ACK, seq);
  mnl_attr_put_strz(nlh, NFTA_CHAIN_TABLE, table.c_str());
  mnl_attr_put_strz(nlh, NFTA_CHAIN_NAME, chain.c_str());
  std::string what = "look up chain " + chain + " of table " + family_name(family) + " " + table;
  if (mnl_socket_sendto(nl_, nlh, nlh->nlmsg_len) < 0) return sys_error(what);
  std::vector<char>& rb = recv_buffer();
  auto ignore = [](const nlmsghdr*, void*) -> int { return MNL_CB_OK; };
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(nl_, rb.data(), rb.size());
    if (n < 0) return sys_error(what);
    int rc = mnl_cb_run(rb.data(), (size_t)n, seq, portid_, ignore, nullptr);
    if (rc < 0) {
      if (errno == ENOENT) return false;
      return sys_error(what);
    }
    if (rc == MNL_CB_STOP) return true;
  }
}

Result<void> NftSocket::commit(Batch& b, std::optional<uint32_t> genid) {
  if (b.empty()) return {};
  std::vector<uint8_t> data;
  data.reserve(b.buf_.size() + 2 * MNL_SOCKET_BUFFER_SIZE);
  char hb[MNL_SOCKET_BUFFER_SIZE];
  uint32_t begin_seq = ++seq_;
  nlmsghdr* begin = nftnl_batch_begin(hb, begin_seq);
  // Refuse the whole transaction when the ruleset is not the one we read.
  if (genid) mnl_attr_put_u32(begin, NFNL_BATCH_GENID, htonl(*genid));
  data.insert(data.end(), (uint8_t*)begin, (uint8_t*)begin + align4(begin->nlmsg_len));
  size_t first = data.size();
  data.insert(data.end(), b.buf_.begin(), b.buf_.end());
  std::vector<uint32_t> seqs;
  for (size_t i = 0; i < b.msgs_.size(); ++i) {
    auto* nlh = reinterpret_cast<nlmsghdr*>(data.data() + first + b.msgs_[i].offset);
    nlh->nlmsg_seq = ++seq_;
    // Errors are always reported; one acknowledgement (the last message's)
    // says the batch was processed, without one reply per message.
    if (i + 1 == b.msgs_.size()) nlh->nlmsg_flags |= NLM_F_ACK;
    seqs.push_back(nlh->nlmsg_seq);
  }
  uint32_t last_seq = seqs.back();
  nlmsghdr* end = nftnl_batch_end(hb, ++seq_);
  data.insert(data.end(), (uint8_t*)end, (uint8_t*)end + align4(end->nlmsg_len));
  if (auto r = send(data); !r) return r;

  auto what_of = [&](uint32_t seq) -> std::string {
    if (seq == begin_seq) return "the transaction";
    auto it = std::lower_bound(seqs.begin(), seqs.end(), seq);
    if (it != seqs.end() && *it == seq) return b.msgs_[it - seqs.begin()].what;
    return "message " + std::to_string(seq);
  };
  std::vector<char>& rb = recv_buffer();
  std::optional<Error> first_error;
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(nl_, rb.data(), rb.size());
    if (n < 0) return sys_error("read the nftables transaction result");
    bool done = false;
    int left = (int)n;
    for (auto* nlh = reinterpret_cast<nlmsghdr*>(rb.data()); mnl_nlmsg_ok(nlh, left);
         nlh = mnl_nlmsg_next(nlh, &left)) {
      if (nlh->nlmsg_type != NLMSG_ERROR) continue;
      const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
      uint32_t seq = err->msg.nlmsg_seq;
      if (err->error != 0 && !first_error) {
        int code = -err->error;
        std::string ctx = what_of(seq);
        if (code == ERESTART && seq == begin_seq) ctx = "the transaction: the ruleset changed since it was read";
        first_error = Error{code, ctx};
      }
      // The begin message fails alone (ERESTART) or reports a failed commit;
      // otherwise the last message's acknowledgement ends the replies.
      if (seq == begin_seq && err->error != 0) done = true;
      if (seq == last_seq) done = true;
    }
    if (done) break;
  }
  if (first_error) return *first_error;
  return {};
}

Bytes expr_bytes(const nftnl_expr* e, uint16_t attr) {
  uint32_t len = 0;
  const auto* p = static_cast<const uint8_t*>(nftnl_expr_get(e, attr, &len));
  return p ? Bytes(p, p + len) : Bytes{};
}

std::string expr_string(const nftnl_expr* e, uint16_t attr) {
  const char* s = nftnl_expr_get_str(e, attr);
  return s ? s : "";
}

std::optional<int> prefix_length(const Bytes& mask) {
  int n = 0;
  bool zeros = false;
  for (uint8_t b : mask)
    for (int bit = 7; bit >= 0; --bit) {
      bool one = b & (1u << bit);
      if (one && zeros) return std::nullopt;
      if (one) ++n;
      zeros |= !one;
    }
  return n;
}

}  // namespace nf2bpf::nfnl
