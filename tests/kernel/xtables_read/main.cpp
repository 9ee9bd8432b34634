// nf2bpf_xtables_read: prints what the iptables-nft reader
// (translator/frontend/iptables/nft_rules) reads from the current network
// namespace, for tests/kernel/xtables_read.sh to compare with
// iptables-nft-save and iptables-nft -S.
//
//   nf2bpf_xtables_read [-6] TABLE          the table, as iptables-nft-save -t TABLE
//   nf2bpf_xtables_read [-6] TABLE CHAIN    the chain's -A lines, as iptables-nft -t TABLE -S CHAIN
//   nf2bpf_xtables_read --nft 4|6 TABLE CHAIN
//                                           an nft table's chain (frontend/nft, read_nft_chain),
//                                           its rules as `nft list chain` prints them
//
// Exit 0 and the text; 3 and the reason when the reader refuses (a rule it
// does not print exactly); 1 on any other error.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "translator/frontend/iptables/nft_rules.h"
#include "translator/frontend/nft/nft.h"

int main(int argc, char** argv) {
  auto fail = [](const nf2bpf::Error& e) {
    std::fprintf(stderr, "%s\n", e.message().c_str());
    return e.code == EOPNOTSUPP ? 3 : 1;
  };
  if (argc == 5 && std::strcmp(argv[1], "--nft") == 0) {
    auto lines = nf2bpf::frontend::read_nft_chain((uint8_t)std::atoi(argv[2]), argv[3], argv[4]);
    if (!lines) return fail(lines.error());
    for (const auto& l : *lines) std::printf("%s\n", l.c_str());
    return 0;
  }
  int i = 1;
  bool v6 = false;
  if (i < argc && std::strcmp(argv[i], "-6") == 0) v6 = true, ++i;
  if (argc - i < 1 || argc - i > 2) {
    std::fprintf(stderr, "usage: nf2bpf_xtables_read [-6] TABLE [CHAIN] | --nft 4|6 TABLE CHAIN\n");
    return 2;
  }
  if (argc - i == 2) {
    auto lines = nf2bpf::frontend::read_xtables_chain_netlink(v6, argv[i], argv[i + 1]);
    if (!lines) return fail(lines.error());
    for (const auto& l : *lines) std::printf("%s\n", l.c_str());
    return 0;
  }
  auto t = nf2bpf::frontend::read_xtables_table_netlink(v6, argv[i]);
  if (!t) return fail(t.error());
  std::fputs(t->text.c_str(), stdout);
  return 0;
}
