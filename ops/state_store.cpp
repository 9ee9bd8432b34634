#include "ops/state_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <thread>

#include "common/atomic_file.h"
#include "common/json_text.h"
#include "loader/host.h"
#include "translator/policy/yaml.h"

namespace nf2bpf::ops {

namespace fs = std::filesystem;

namespace {

std::string state_root() {
  const char* r = getenv("NF2BPF_STATE_ROOT");  // tests: a scratch root instead of /var/lib/nf2bpf
  return r && *r ? r : "/var/lib/nf2bpf";
}

nlohmann::json read_json(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return nullptr;
  std::string text;
  char buf[8192];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) text.append(buf, (size_t)n);
  ::close(fd);
  auto j = nlohmann::json::parse(text, nullptr, false);
  return j.is_discarded() ? nlohmann::json(nullptr) : j;
}

// Paths through which a network namespace with this inode can be entered:
// processes in it, open descriptors of it, `ip netns` bind mounts.
std::vector<std::string> netns_paths(uint64_t inode) {
  std::vector<std::string> out;
  auto is_it = [&](const std::string& p) {
    struct stat st {};
    return stat(p.c_str(), &st) == 0 && (uint64_t)st.st_ino == inode;
  };
  std::error_code ec;
  for (const char* d : {"/run/netns", "/var/run/netns"})
    for (const auto& e : fs::directory_iterator(d, ec))
      if (is_it(e.path().string())) out.push_back(e.path().string());
  std::string link = "net:[" + std::to_string(inode) + "]";
  for (const auto& pe : fs::directory_iterator("/proc", ec)) {
    std::string pid = pe.path().filename().string();
    if (pid.empty() || !std::isdigit((unsigned char)pid[0])) continue;
    std::string ns = pe.path().string() + "/ns/net";
    if (is_it(ns)) out.push_back(ns);
    std::error_code fe;
    for (const auto& f : fs::directory_iterator(pe.path() / "fd", fe)) {
      std::error_code le;
      if (fs::read_symlink(f.path(), le).string() == link) out.push_back(f.path().string());
    }
    if (!out.empty()) break;  // one way in is enough
  }
  return out;
}

// Is the namespace a state directory was made for still there? Directories
// keyed by cookie record it (owner.json): gone after a reboot, or when no
// namespace with its inode can be entered, or the one that can has another
// cookie (the inode was reused). Old inode-keyed directories: gone when no
// namespace with that inode can be entered.
bool namespace_gone(const fs::path& dir, const std::string& boot) {
  std::string name = dir.filename().string();
  if (name.rfind("netns-cookie-", 0) == 0) {
    auto owner = read_json((dir / "owner.json").string());
    if (!owner.is_object()) return false;  // being created, or not ours to judge
    if (owner.value("boot_id", "") != boot) return true;
    auto paths = netns_paths(owner.value("inode", (uint64_t)0));
    if (paths.empty()) return true;
    auto cookie = loader::netns_cookie_of(paths.front());
    return cookie && *cookie != owner.value("cookie", (uint64_t)0);
  }
  if (name.rfind("netns-", 0) == 0) {
    std::string num = name.substr(6);
    if (num.empty() || num.find_first_not_of("0123456789") != std::string::npos) return false;
    uint64_t inode = std::stoull(num);
    return inode != loader::kInitNetnsInode && netns_paths(inode).empty();
  }
  return false;
}

}  // namespace

Result<std::string> default_state_dir() {
  auto id = loader::netns_id();
  if (!id) return id.error();
  std::string root = state_root();
  // The initial namespace's inode is fixed and never given to another one;
  // keeping it there keeps the host's state across reboots.
  if (*id == loader::kInitNetnsInode) return root + "/netns-" + std::to_string(*id);
  auto cookie = loader::netns_cookie();
  if (!cookie) return root + "/netns-" + std::to_string(*id);  // before Linux 5.14: the inode, as before
  std::string dir = root + "/netns-cookie-" + std::to_string(*cookie);
  std::string boot = loader::boot_id();
  auto owner = read_json(dir + "/owner.json");
  if (owner.is_object() && owner.value("boot_id", "") != boot) {
    // The same cookie in an earlier boot: that namespace is gone.
    std::error_code ec;
    fs::remove_all(dir, ec);
    owner = nullptr;
  }
  if (!owner.is_object()) {
    if (auto r = make_dirs(dir); !r) return r.error();
    nlohmann::json o = {{"cookie", *cookie}, {"inode", *id}, {"boot_id", boot}, {"created", utc_time(time(nullptr))}};
    if (auto r = write_file_atomic(dir + "/owner.json", dump_utf8(o, 2) + "\n", 0644); !r) return r.error();
  }
  return dir;
}

std::vector<std::string> prune_gone_state() {
  std::vector<std::string> removed;
  std::string boot = loader::boot_id();
  std::error_code ec;
  auto here = default_state_dir();
  for (const auto& e : fs::directory_iterator(state_root(), ec)) {
    if (!e.is_directory() || (here && e.path().string() == *here)) continue;
    if (!namespace_gone(e.path(), boot)) continue;
    std::error_code re;
    fs::remove_all(e.path(), re);
    if (!re) removed.push_back(e.path().string());
  }
  return removed;
}

std::string legacy_backup_path() {
  auto id = loader::netns_id();
  if (!id || *id == loader::kInitNetnsInode) return {};
  std::string p = default_backup_path(state_root() + "/netns-" + std::to_string(*id));
  return fs::exists(p) ? p : std::string();
}

std::string utc_time(int64_t t) {
  char buf[64];
  time_t tt = (time_t)t;
  struct tm tm {};
  gmtime_r(&tt, &tm);
  strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

std::string default_backup_path(const std::string& state_dir) { return state_dir + "/cutover-backup.json"; }

Result<StateLock> StateLock::acquire(const std::string& dir, double timeout_s) {
  if (auto r = make_dirs(dir); !r) return r.error();
  std::string path = dir + "/lock";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return sys_error("open " + path);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  for (;;) {
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) break;
    if (errno != EWOULDBLOCK && errno != EINTR) {
      int e = errno;
      ::close(fd);
      return Error{e, "lock " + path};
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      char buf[128] = {};
      ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
      std::string holder = n > 0 ? std::string(buf, (size_t)n) : "";
      while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
      ::close(fd);
      char secs[32];
      std::snprintf(secs, sizeof secs, "%g", timeout_s);
      return Error{EWOULDBLOCK, "another nf2bpf sync" + (holder.empty() ? "" : " (" + holder + ")") + " still holds " +
                                    path + " after " + secs + " s"};
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  // Who holds it, for the message a waiting run gives up with.
  std::string me = "pid " + std::to_string(getpid()) + ", since " + utc_time(time(nullptr)) + "\n";
  if (ftruncate(fd, 0) == 0) (void)!pwrite(fd, me.data(), me.size(), 0);
  return StateLock(fd);
}

StateLock::~StateLock() {
  if (fd_ < 0) return;
  // The holder's pid is only meaningful while it holds the lock (a killed
  // holder leaves it, and a waiter's message then says "last held by").
  (void)!ftruncate(fd_, 0);
  ::close(fd_);  // releases the flock
}

void remove_leftovers(const std::string& dir) {
  // Temporary files of a run that was killed while writing; with the lock
  // held no other sync is writing them.
  std::error_code ec;
  for (const std::string& d : {dir, dir + "/generations"})
    for (const auto& e : fs::directory_iterator(d, ec)) {
      std::string name = e.path().filename().string();
      bool state_tmp = d == dir && name.rfind("state.json.tmp.", 0) == 0;
      bool gen_tmp = d != dir && name.find(".tmp.") != std::string::npos;
      if (state_tmp || gen_tmp) fs::remove(e.path(), ec);
    }
}

nlohmann::json read_state(const std::string& dir) {
  std::string path = dir + "/state.json";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return nlohmann::json::object();
  std::string text;
  char buf[8192];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) text.append(buf, (size_t)n);
  ::close(fd);
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return nlohmann::json::object();
  return j;
}

Result<void> write_state(const std::string& dir, const nlohmann::json& state) {
  if (auto r = make_dirs(dir); !r) return r;
  return write_file_atomic(dir + "/state.json", dump_utf8(state, 2) + "\n", 0644);
}

std::string generation_yaml(const std::string& dir, const std::string& checksum) {
  return dir + "/generations/" + checksum + ".yaml";
}

std::string generation_witness(const std::string& dir, const std::string& checksum) {
  return dir + "/generations/" + checksum + ".pcapng";
}

Result<void> store_generation(const std::string& dir, const policy::Policy& pol, const std::string& witness_tmp) {
  if (auto r = make_dirs(dir + "/generations"); !r) return r;
  // The witness first: a policy file without one would be guarded by half
  // the packets.
  std::string w = generation_witness(dir, pol.checksum);
  if (::rename(witness_tmp.c_str(), w.c_str()) != 0) return sys_error("rename " + witness_tmp + " to " + w);
  return policy::write_yaml_file(pol, generation_yaml(dir, pol.checksum));
}

std::optional<policy::Policy> load_generation(const std::string& dir, const std::string& checksum) {
  if (checksum.empty()) return std::nullopt;
  std::string path = generation_yaml(dir, checksum);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string text;
  char buf[65536];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) text.append(buf, (size_t)n);
  ::close(fd);
  diag::Diagnostics d;
  auto p = policy::from_yaml(text, path, d);
  if (!p || d.has_errors() || p->checksum != checksum) return std::nullopt;
  return p;
}

void prune_generations(const std::string& dir, const std::vector<std::string>& keep) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir + "/generations", ec)) {
    std::string name = e.path().filename().string();
    if (name.find(".tmp.") != std::string::npos) {  // left by a run that was killed while writing
      fs::remove(e.path(), ec);
      continue;
    }
    std::string stem = e.path().stem().string();
    std::string ext = e.path().extension().string();
    if (ext != ".yaml" && ext != ".pcapng") continue;
    if (std::find(keep.begin(), keep.end(), stem) != keep.end()) continue;
    fs::remove(e.path(), ec);
  }
}

}  // namespace nf2bpf::ops
