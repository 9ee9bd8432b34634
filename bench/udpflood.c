/* udpflood: the end-to-end benchmark's sender. Prebuilt Ethernet/IPv4/UDP
 * frames go out of one interface through AF_PACKET with PACKET_QDISC_BYPASS,
 * 64 frames per sendmmsg() call, for a fixed time; the count sent and the
 * exact elapsed time are printed as "sent=N elapsed_ns=T".
 *
 *   udpflood IFNAME DST_MAC SRC_IP DST_IP DPORT SECONDS [THREADS] [FLOWS] [NEW_FROM NEW_COUNT]
 *
 * Thread t is pinned to CPU t. FLOWS source ports (40000, 40001 ...) are
 * cycled so each thread sends a fixed set of flows. With NEW_FROM and
 * NEW_COUNT (one thread only) every frame is a new flow instead: source
 * port 1024 + NEW_FROM, 1024 + NEW_FROM + 1 ... (NEW_FROM + NEW_COUNT <=
 * 64512), and the sender stops after NEW_COUNT frames or SECONDS, whichever
 * comes first; the frames are rebuilt before each sendmmsg (a port and
 * checksum rewrite per frame, included in the sender's time). Runs in the
 * caller's network namespace (start it with `ip netns exec`). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define PAYLOAD 18 /* 14 + 20 + 8 + 18 = 60 bytes: a minimum Ethernet frame without FCS */
#define FRAME_LEN (14 + 20 + 8 + PAYLOAD)
#define MAX_FLOWS 64

static char ifname[IFNAMSIZ];
static uint8_t dst_mac[6], src_mac[6];
static uint32_t src_ip, dst_ip;
static uint16_t dport;
static double seconds;
static int nflows = 1;
static long new_from = -1, new_count = 0; /* new-flow mode when new_from >= 0 */
static int ifindex;

struct worker {
  pthread_t th;
  int cpu;
  unsigned long long sent;
  int error;
};

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint16_t csum(const void* data, size_t len, uint32_t sum) {
  const uint8_t* p = data;
  for (size_t i = 0; i + 1 < len; i += 2) sum += (uint32_t)p[i] << 8 | p[i + 1];
  if (len & 1) sum += (uint32_t)p[len - 1] << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

static void build(uint8_t* f, uint16_t sport) {
  memset(f, 0, FRAME_LEN);
  memcpy(f, dst_mac, 6);
  memcpy(f + 6, src_mac, 6);
  f[12] = 0x08, f[13] = 0x00;
  uint8_t* ip = f + 14;
  ip[0] = 0x45;
  uint16_t tot = 20 + 8 + PAYLOAD;
  ip[2] = tot >> 8, ip[3] = tot & 255;
  ip[6] = 0x40; /* DF */
  ip[8] = 64;
  ip[9] = 17;
  uint32_t s = htonl(src_ip), d = htonl(dst_ip);
  memcpy(ip + 12, &s, 4);
  memcpy(ip + 16, &d, 4);
  uint16_t c = csum(ip, 20, 0);
  ip[10] = c >> 8, ip[11] = c & 255;
  uint8_t* udp = ip + 20;
  udp[0] = sport >> 8, udp[1] = sport & 255;
  udp[2] = dport >> 8, udp[3] = dport & 255;
  uint16_t ulen = 8 + PAYLOAD;
  udp[4] = ulen >> 8, udp[5] = ulen & 255;
  memcpy(udp + 8, "nf2bpf-bench-flood", PAYLOAD);
  /* pseudo header */
  uint32_t sum = 0;
  sum += (src_ip >> 16) + (src_ip & 0xffff) + (dst_ip >> 16) + (dst_ip & 0xffff) + 17 + ulen;
  c = csum(udp, ulen, sum);
  if (c == 0) c = 0xffff;
  udp[6] = c >> 8, udp[7] = c & 255;
}

static void* run(void* arg) {
  struct worker* w = arg;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(w->cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);

  int fd = socket(AF_PACKET, SOCK_RAW, 0);
  if (fd < 0) {
    w->error = errno;
    return NULL;
  }
  int one = 1;
  setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
  int sndbuf = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf);
  struct sockaddr_ll sll = {0};
  sll.sll_family = AF_PACKET;
  sll.sll_ifindex = ifindex;
  sll.sll_halen = 6;
  memcpy(sll.sll_addr, dst_mac, 6);
  if (bind(fd, (struct sockaddr*)&sll, sizeof sll) < 0) {
    w->error = errno;
    close(fd);
    return NULL;
  }

  static __thread uint8_t frames[BATCH][FRAME_LEN];
  int nbuf = new_from >= 0 ? BATCH : nflows;
  for (int i = 0; i < nflows && new_from < 0; i++) build(frames[i], (uint16_t)(40000 + w->cpu * MAX_FLOWS + i));
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  memset(msgs, 0, sizeof msgs);
  for (int i = 0; i < BATCH; i++) {
    iov[i].iov_base = frames[i % nbuf];
    iov[i].iov_len = FRAME_LEN;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  uint64_t end = now_ns() + (uint64_t)(seconds * 1e9);
  unsigned long long sent = 0;
  unsigned iter = 0;
  for (;;) {
    if ((iter++ & 15) == 0 && now_ns() >= end) break;
    int want = BATCH;
    if (new_from >= 0) {
      if ((long)sent >= new_count) break;
      if (new_count - (long)sent < want) want = (int)(new_count - (long)sent);
      for (int i = 0; i < want; i++) build(frames[i], (uint16_t)(1024 + new_from + (long)sent + i));
    }
    int r = sendmmsg(fd, msgs, (unsigned)want, 0);
    if (r > 0)
      sent += (unsigned)r;
    else if (r < 0 && errno != ENOBUFS && errno != EAGAIN && errno != EINTR) {
      w->error = errno;
      break;
    }
  }
  w->sent = sent;
  close(fd);
  return NULL;
}

static int parse_mac(const char* s, uint8_t* m) {
  return sscanf(s, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) == 6 ? 0 : -1;
}

int main(int argc, char** argv) {
  if (argc < 7) {
    fprintf(stderr, "usage: %s IFNAME DST_MAC SRC_IP DST_IP DPORT SECONDS [THREADS] [FLOWS]\n", argv[0]);
    return 2;
  }
  snprintf(ifname, sizeof ifname, "%s", argv[1]);
  struct in_addr a;
  if (parse_mac(argv[2], dst_mac) || inet_pton(AF_INET, argv[3], &a) != 1) {
    fprintf(stderr, "udpflood: bad MAC or source address\n");
    return 2;
  }
  src_ip = ntohl(a.s_addr);
  if (inet_pton(AF_INET, argv[4], &a) != 1) {
    fprintf(stderr, "udpflood: bad destination address\n");
    return 2;
  }
  dst_ip = ntohl(a.s_addr);
  dport = (uint16_t)atoi(argv[5]);
  seconds = atof(argv[6]);
  int threads = argc > 7 ? atoi(argv[7]) : 1;
  if (argc > 8) nflows = atoi(argv[8]);
  if (threads < 1 || threads > 64 || nflows < 1 || nflows > MAX_FLOWS) {
    fprintf(stderr, "udpflood: 1..64 threads, 1..%d flows\n", MAX_FLOWS);
    return 2;
  }
  if (argc > 10) {
    new_from = atol(argv[9]);
    new_count = atol(argv[10]);
    if (threads != 1 || new_from < 0 || new_count < 1 || new_from + new_count > 64512) {
      fprintf(stderr,
              "udpflood: new flows: one thread, NEW_FROM >= 0, NEW_COUNT >= 1, NEW_FROM + NEW_COUNT <= 64512\n");
      return 2;
    }
  }
  ifindex = (int)if_nametoindex(ifname);
  if (!ifindex) {
    fprintf(stderr, "udpflood: no interface %s\n", ifname);
    return 2;
  }
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct ifreq ifr = {0};
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
  if (fd < 0 || ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) {
    perror("udpflood: SIOCGIFHWADDR");
    return 2;
  }
  memcpy(src_mac, ifr.ifr_hwaddr.sa_data, 6);
  close(fd);

  struct worker w[64];
  memset(w, 0, sizeof w);
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  uint64_t t0 = now_ns();
  for (int i = 0; i < threads; i++) {
    w[i].cpu = (int)(i % (ncpu > 0 ? ncpu : 1));
    pthread_create(&w[i].th, NULL, run, &w[i]);
  }
  unsigned long long total = 0;
  int err = 0;
  for (int i = 0; i < threads; i++) {
    pthread_join(w[i].th, NULL);
    total += w[i].sent;
    if (w[i].error) err = w[i].error;
  }
  uint64_t t1 = now_ns();
  if (err) {
    fprintf(stderr, "udpflood: %s\n", strerror(err));
    return 1;
  }
  printf("sent=%llu elapsed_ns=%llu\n", total, (unsigned long long)(t1 - t0));
  return 0;
}
