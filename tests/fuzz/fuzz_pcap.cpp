// libFuzzer target: arbitrary bytes as a capture file through the pcap/pcapng
// reader (libpcap plus nf2bpf's own pcapng block scanner for interfaces,
// addresses, directions and comments) and the packet decoder. Every record is
// read and decoded; a malformed file must end with an error, not a crash.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "verify/pcap_reader.h"

using namespace nf2bpf;

namespace {

// The input as a file libpcap can open: an anonymous memory file, by its /proc path.
int memory_file(const uint8_t* data, size_t size) {
  int fd = memfd_create("fuzz.pcap", MFD_CLOEXEC);
  if (fd < 0) std::abort();
  for (size_t done = 0; done < size;) {
    ssize_t n = write(fd, data + done, size - done);
    if (n <= 0) std::abort();
    done += (size_t)n;
  }
  return fd;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  int fd = memory_file(data, size);
  auto r = verify::CaptureReader::open("/proc/self/fd/" + std::to_string(fd));
  if (r) {
    verify::Frame f;
    size_t bytes = 0;
    while ((*r)->next(f)) {
      bytes += f.caplen;
      verify::Captured c;
      std::string why = verify::decode(**r, f, c);
      (void)why;
    }
    (void)(*r)->error();
    for (const auto& i : (*r)->interfaces()) bytes += i.name.size() + i.addrs.size();
    volatile size_t sink = bytes;  // keep the reads
    (void)sink;
  }
  close(fd);
  return 0;
}
