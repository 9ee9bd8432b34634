// What `sync` keeps between runs, in one directory per network namespace
// (default /var/lib/nf2bpf/netns-cookie-<cookie>, which `ip netns exec`
// leaves shared with the host, unlike /sys/fs/bpf):
//
//   owner.json               the namespace it belongs to: cookie, inode, boot id
//
//   lock                     flock(2) of the running sync; holds its pid
//   state.json               what sync last saw live: checksum, source,
//                            generation, when; written atomically
//   generations/<sum>.yaml   each policy sync made live (policy YAML), and
//   generations/<sum>.pcapng its witness packets: the change guard compares
//                            a new policy with the live one on both sets
//   cutover-backup.json      `apply --cutover`'s backup, read by `restore`
//
// Nothing here is trusted over the kernel: every run compares state.json
// with the live generation's checksum and corrects it.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "translator/policy/policy.h"

namespace nf2bpf::ops {

// This namespace's state directory, created with its owner record
// (owner.json: cookie, inode, boot id). Keyed by the namespace cookie
// (/var/lib/nf2bpf/netns-cookie-<cookie>), which the kernel never gives
// another namespace in the same boot, unlike the inode number; the initial
// namespace keeps /var/lib/nf2bpf/netns-<inode> (its inode is fixed).
// NF2BPF_STATE_ROOT replaces /var/lib/nf2bpf (tests).
Result<std::string> default_state_dir();
// Removes the state directories of namespaces that are gone (see
// namespace_gone in the .cpp); returns them.
std::vector<std::string> prune_gone_state();
// A cut-over backup left under this namespace's inode number by an nf2bpf
// that keyed state that way ("" when none): it may be another, dead
// namespace's, so it is only pointed out, never used unasked.
std::string legacy_backup_path();
std::string default_backup_path(const std::string& state_dir);
// "2026-12-02 13:52:08 UTC": how times are shown (state.json keeps seconds).
std::string utc_time(int64_t t);

// An exclusive flock on <dir>/lock, released when the object goes away (or
// the process dies, SIGKILL included).
class StateLock {
 public:
  // Waits up to `timeout_s` seconds. On timeout the Error has code
  // EWOULDBLOCK and says who holds the lock.
  static Result<StateLock> acquire(const std::string& dir, double timeout_s);
  StateLock(StateLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  StateLock& operator=(StateLock&&) = delete;
  ~StateLock();

 private:
  explicit StateLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

// Removes temporary files a killed run left (call with the lock held).
void remove_leftovers(const std::string& dir);

// state.json; an empty object when there is none (or it is unreadable: it
// is advisory, the kernel is the truth).
nlohmann::json read_state(const std::string& dir);
Result<void> write_state(const std::string& dir, const nlohmann::json& state);

// The generation store.
std::string generation_yaml(const std::string& dir, const std::string& checksum);
std::string generation_witness(const std::string& dir, const std::string& checksum);
Result<void> store_generation(const std::string& dir, const policy::Policy& pol, const std::string& witness_tmp);
// The stored policy with this checksum, when there is one that loads and
// still has that checksum.
std::optional<policy::Policy> load_generation(const std::string& dir, const std::string& checksum);
// Removes stored generations except these checksums.
void prune_generations(const std::string& dir, const std::vector<std::string>& keep);

}  // namespace nf2bpf::ops
