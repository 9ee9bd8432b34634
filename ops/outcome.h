// How an operation of ops/ ended. ops functions print nothing: they return
// what happened, and cli/ renders it and maps the kind to an exit status
// (ok 0, refused 1, error 2).
#pragma once

namespace nf2bpf::ops {

enum class Kind {
  ok,
  refused,  // the input or the situation does not allow it; nothing was changed
  error,    // a system failure
};

}  // namespace nf2bpf::ops
