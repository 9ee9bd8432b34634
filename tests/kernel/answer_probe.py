#!/usr/bin/env python3
"""REJECT answers as their receiver sees them (tests/kernel/reject_nat.sh).

  answer_probe.py udp|tcp DEV FAMILY DST PORT SPORT
      From SPORT, a connected UDP datagram (or a TCP connect) to DST:PORT;
      prints what the socket saw (refused, unreachable, timeout, ...) and
      every ICMP error or TCP RST that came in on DEV, normalised.
  answer_probe.py capture DEV SECONDS
      Prints the ICMP errors and TCP RSTs that came in on DEV meanwhile.

Normalised: the fields the sender or the kernel fill at random (IPv4 IDs,
IPv6 flow labels, a RST's acknowledgement as an offset from the SYN's
sequence) are cleared and each checksum is replaced by whether it is right
(a TCP checksum the device completes counts as right)."""
import errno
import select
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003


def csum(b):
    if len(b) & 1:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def pseudo(ip, v4, length, proto):
    if v4:
        return ip[12:20] + struct.pack("!BBH", 0, proto, length)
    return ip[8:40] + struct.pack("!IxxxB", length, proto)


def l4_ok(ip, v4, hl, proto):
    seg = ip[hl:]
    ph = pseudo(ip, v4, len(seg), proto)
    if csum(ph + seg) == 0xFFFF:
        return "ok"
    if proto == 6 and len(seg) >= 18:  # left to the device: the pseudo-header's sum
        field = struct.unpack("!H", seg[16:18])[0]
        if field == csum(ph):
            return "ok"
    return "bad"


def clear_quote(q, v4):
    """The quoted packet with its IPv4 ID / header checksum or IPv6 flow label cleared."""
    q = bytearray(q)
    if v4 and len(q) >= 20:
        q[4:6] = b"\0\0"
        q[10:12] = b"\0\0"
    elif not v4 and len(q) >= 4:
        q[1] &= 0xF0
        q[2:4] = b"\0\0"
    return bytes(q)


def describe(ip, isn):
    v4 = ip[0] >> 4 == 4
    hl = (ip[0] & 15) * 4 if v4 else 40
    proto = ip[9] if v4 else ip[6]
    out = bytearray(ip)
    notes = []
    if v4:
        notes.append("ip " + ("ok" if csum(ip[:hl]) == 0xFFFF else "bad"))
        out[4:6] = b"\0\0"
        out[10:12] = b"\0\0"
    else:
        out[1] &= 0xF0
        out[2:4] = b"\0\0"
    if proto in (1, 58):
        seg = ip[hl:]
        ok = csum(seg) == 0xFFFF if v4 else l4_ok(ip, False, hl, 58) == "ok"
        notes.append("icmp " + ("ok" if ok else "bad"))
        out[hl + 2 : hl + 4] = b"\0\0"
        out[hl + 8 :] = clear_quote(ip[hl + 8 :], v4)
        if v4 and len(ip) >= hl + 28:
            qhl = (ip[hl + 8] & 15) * 4
            notes.append("quoted ip " + ("ok" if csum(ip[hl + 8 : hl + 8 + qhl]) == 0xFFFF else "bad"))
    elif proto == 6:
        notes.append("tcp " + l4_ok(ip, v4, hl, 6))
        out[hl + 16 : hl + 18] = b"\0\0"
        ack = struct.unpack("!I", ip[hl + 8 : hl + 12])[0]
        if isn is not None and ack:
            out[hl + 8 : hl + 12] = struct.pack("!I", (ack - isn) & 0xFFFFFFFF)
    return out.hex() + " (" + ", ".join(notes) + ")"


def wanted(ip):
    if len(ip) < 28:
        return False
    v = ip[0] >> 4
    if v == 4:
        hl = (ip[0] & 15) * 4
        return (ip[9] == 1 and ip[hl] in (3, 11, 12)) or (ip[9] == 6 and ip[hl + 13] & 0x04)
    if v == 6 and len(ip) >= 48:
        return (ip[6] == 58 and ip[40] < 128) or (ip[6] == 6 and ip[40 + 13] & 0x04)
    return False


class Tap:
    def __init__(self, dev):
        self.s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(ETH_P_ALL))
        self.s.bind((dev, 0))
        self.isn = None
        self.got = []

    def drain(self, seconds):
        end = time.time() + seconds
        while True:
            left = end - time.time()
            if left <= 0:
                return
            if not select.select([self.s], [], [], left)[0]:
                continue
            f, addr = self.s.recvfrom(4096)
            et = struct.unpack("!H", f[12:14])[0]
            if et not in (0x0800, 0x86DD):
                continue
            ip = f[14:]
            if addr[2] == socket.PACKET_OUTGOING:
                v4 = ip[0] >> 4 == 4
                hl = (ip[0] & 15) * 4 if v4 else 40
                if (ip[9] if v4 else ip[6]) == 6 and ip[hl + 13] & 0x02:
                    self.isn = struct.unpack("!I", ip[hl + 4 : hl + 8])[0]
                continue
            if wanted(ip):
                self.got.append(describe(ip, self.isn))


def outcome(e):
    return {errno.ECONNREFUSED: "refused", errno.EHOSTUNREACH: "host-unreachable",
            errno.ENETUNREACH: "net-unreachable", errno.EACCES: "prohibited",
            errno.ECONNRESET: "reset"}.get(e.errno, "errno %d" % e.errno)


def main():
    kind = sys.argv[1]
    if kind == "capture":
        tap = Tap(sys.argv[2])
        tap.drain(float(sys.argv[3]))
        print("\n".join(tap.got) if tap.got else "(nothing)")
        return
    dev, fam, dst, port, sport = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
    af = socket.AF_INET if fam == "4" else socket.AF_INET6
    tap = Tap(dev) if dev != "-" else None
    s = socket.socket(af, socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0" if fam == "4" else "::", sport))
    s.settimeout(1.0)
    try:
        s.connect((dst, port))
        if kind == "udp":
            try:
                s.send(b"probe")
            except OSError:
                pass  # netfilter's drop at OUTPUT fails the send itself (EPERM); a TC program's cannot
            s.recv(100)
        what = "answered" if kind == "udp" else "connected"
    except socket.timeout:
        what = "timeout"
    except OSError as e:
        what = outcome(e)
    if tap:
        tap.drain(0.3)
    print(what)
    if tap:
        print("\n".join(tap.got) if tap.got else "(no answer)")


main()
