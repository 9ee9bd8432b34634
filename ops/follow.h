// Interface following: covers interfaces as they appear. Listens to
// rtnetlink link notifications (RTMGRP_LINK on a NETLINK_ROUTE socket) and,
// after each one, attaches the dataplane of this namespace to every up
// interface it does not cover yet (ops/coverage.h). Behind
// `nf2bpf attach --follow`.
#pragma once

#include <atomic>
#include <functional>
#include <string>

#include "common/result.h"
#include "ops/coverage.h"

namespace nf2bpf::ops {

struct FollowOptions {
  std::string pin_dir;                          // --pin-dir, "" for the default
  const std::atomic<bool>* stop = nullptr;      // set (by a signal handler) to end
  std::function<void(const std::string&)> log;  // one line per interface covered, or per failure
};

// One coverage pass: attaches to the up interfaces not covered yet. Returns
// their names ("" list when there were none).
Result<std::vector<std::string>> cover_uncovered(const std::string& pin_dir);

// Runs until `stop` is set; a failure to cover an interface is logged and
// tried again at the next notification. Fails when the netlink socket
// cannot be had, or when there is no dataplane to follow with.
Result<void> follow(const FollowOptions& o);

}  // namespace nf2bpf::ops
