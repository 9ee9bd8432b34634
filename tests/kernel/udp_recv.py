# The receiving side of the kernel shell tests' datagram sequences (see
# lib.sh's arrivals): binds PORT..., then records the index each datagram
# starts with ("17" or "17 padding...") until a datagram "end" arrives or 15 s
# pass without one, and writes the sorted indexes to OUT. UDP_RECV_IPV6=1:
# IPv6 sockets (IPv4 too, mapped).
#   udp_recv.py OUT PORT...
import os
import select
import socket
import sys

out, ports = sys.argv[1], [int(p) for p in sys.argv[2:]]
six = os.environ.get("UDP_RECV_IPV6") == "1"  # IPv6 (and IPv4 mapped) instead
socks = []
for port in ports:
    s = socket.socket(socket.AF_INET6 if six else socket.AF_INET, socket.SOCK_DGRAM)
    if six:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::" if six else "0.0.0.0", port))
    socks.append(s)
got = set()
done = False
while not done:
    ready, _, _ = select.select(socks, [], [], 15)
    if not ready:
        break
    for s in ready:
        d, _ = s.recvfrom(2000)
        if d == b"end":
            done = True
        else:
            got.add(int(d.split(b" ")[0]))
open(out, "w").write(" ".join(map(str, sorted(got))) + "\n")
