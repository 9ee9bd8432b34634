// The `ipset save` front-end: sets that iptables rules name with -m set.
#pragma once

#include <vector>

#include "translator/diag/diagnostics.h"
#include "translator/frontend/source.h"
#include "translator/ir/ir.h"

namespace nf2bpf::frontend {

// Parses create/add lines for hash:ip, hash:net, hash:ip,port, hash:net,port,
// hash:ip,port,ip, hash:ip,port,net, hash:net,net, hash:ip,mark, hash:mac,
// bitmap:port and bitmap:ip. Anything else gets a located diagnostic.
std::vector<ir::Set> parse_ipset_save(const Source& src, diag::Diagnostics& diags);

}  // namespace nf2bpf::frontend
