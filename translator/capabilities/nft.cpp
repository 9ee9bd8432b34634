// The nftables rows of the capability table (filled by the nftables front-end).
#include "translator/capabilities/capabilities.h"

namespace nf2bpf::caps {

const std::vector<Capability>& nft_capabilities() {
  static const std::vector<Capability> kRows = {};
  return kRows;
}

}  // namespace nf2bpf::caps
