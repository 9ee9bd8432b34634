#include "common/progress.h"

namespace nf2bpf::progress {

Sink* g_sink = nullptr;

}  // namespace nf2bpf::progress
