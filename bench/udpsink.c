/* udpsink: the end-to-end benchmark's receiver. Binds UDP PORT on all
 * addresses with a large receive buffer and drains it with recvmmsg() until
 * killed, pinned to CPU (default: the last one). The benchmark counts what
 * reached UDP from the namespace's /proc/net/snmp (InDatagrams +
 * RcvbufErrors), so a sink that falls behind does not change the count.
 *
 *   udpsink PORT [CPU] */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s PORT [CPU]\n", argv[0]);
    return 2;
  }
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  int cpu = argc > 2 ? atoi(argv[2]) : (int)(ncpu > 0 ? ncpu - 1 : 0);
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  sched_setaffinity(0, sizeof set, &set);
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) {
    perror("udpsink: socket");
    return 2;
  }
  int buf = 32 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof buf);
  struct sockaddr_in sa = {0};
  sa.sin_family = AF_INET;
  sa.sin_port = htons((unsigned short)atoi(argv[1]));
  if (bind(fd, (struct sockaddr*)&sa, sizeof sa) < 0) {
    perror("udpsink: bind");
    return 2;
  }
  static char bufs[BATCH][2048];
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  memset(msgs, 0, sizeof msgs);
  for (int i = 0; i < BATCH; i++) {
    iov[i].iov_base = bufs[i];
    iov[i].iov_len = sizeof bufs[i];
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  printf("ready\n");
  fflush(stdout);
  for (;;) recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
  return 0;
}
