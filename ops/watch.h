// `sync --watch`: keep running and sync whenever the source of truth
// changes. With --from kernel it listens to nf_tables change notifications
// (NFNLGRP_NFTABLES on a NETLINK_NETFILTER socket: iptables-nft, nft and
// kube-proxy's restores all commit through nf_tables and are heard);
// with a ruleset file, to inotify events on the file's directory (an editor's
// write or an atomic rename). Notifications are debounced (a restore is one
// burst of messages), then one ordinary sync runs: the same lock,
// verification, change guard and output as `nf2bpf sync`.
//
// Every run reads the source after the notifications it answers were
// received, so a change made during a run is answered by the next one; a
// run that finds the checksum unchanged does nothing (never applied twice).
//
// With --from kernel, a change that only rewrites kube-proxy's (iptables or
// nftables mode) load-balancing and endpoint chains is read from those
// chains alone and applied to the service maps in place
// (ops/fast_update.h); a full run follows once changes pause (reconcile_ms),
// and records the policy. Its read, translation and compile run in the
// background while the watch goes on answering changes; what it read is
// used only when no notification came after it began.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>

#include "common/result.h"
#include "ops/sync.h"

namespace nf2bpf::ops {

struct WatchOptions {
  SyncOptions sync;
  // Quiet time after the last notification before a run starts, and the
  // longest a run waits while notifications keep coming.
  double debounce_ms = 20, max_delay_ms = 1000;
  // --from kernel: apply a change of kube-proxy's service chains from those
  // chains alone (ops/fast_update.h), and run a full sync (a reconcile) once
  // no change came for reconcile_ms after one.
  bool fast = true;
  double reconcile_ms = 30000;
  const std::atomic<bool>* stop = nullptr;  // set (by a signal handler) to end
};

// What started a run: the first one (at start) or notifications.
struct WatchRun {
  uint64_t run = 0;            // 1, 2, ...
  uint64_t notifications = 0;  // messages (or file events) answered; 0 for the first run
  bool overflow = false;       // the socket lost notifications (ENOBUFS): a run reads everything anyway
  double since_change_ms = 0;  // from the first answered notification to the run's end
  // The run read only the changed chains ("chains"), or everything ("all");
  // why not only the chains, when notifications named some; a reconcile
  // run after updates made from the chains alone.
  std::string read = "all";
  std::string full_read_reason;
  bool reconcile = false;
};

// Runs a sync at start and after every (debounced) change, until `stop` is
// set; each outcome goes to `report`. Fails only when it cannot listen (or
// the source cannot be watched, e.g. "-").
Result<void> watch(const WatchOptions& o, const std::function<void(const SyncOutcome&, const WatchRun&)>& report);

}  // namespace nf2bpf::ops
