"""What a device receives for a while, one word per packet, sorted, into OUT
(for the kernel shell tests that compare the kernel's bytes with nf2bpf's):

  frames.py DEV OUT SECONDS tos    "port:0xTOS" of each UDP datagram (its
                                   destination port; the IPv4 TOS or the IPv6
                                   traffic class byte)
  frames.py DEV OUT SECONDS syns   "port:mss" of each SYN and SYN-ACK (the
                                   server's port; 0 without the option): "r"
                                   before a raw SYN's (source port 40001-40009)
                                   and "=" its options in hex, "+N" after one
                                   with N bytes of data, "!badsum" after a raw
                                   SYN whose TCP checksum is wrong (a local
                                   socket's crosses veth with a partial one)
"""
import select
import socket
import struct
import sys
import time


def l4_of(f, proto):
    """The IP packet's transport header onwards, its length, and the
    pseudo-header addresses, when it is IPv4 or IPv6 of `proto`."""
    if len(f) >= 34 and f[12:14] == b"\x08\x00" and f[23] == proto:
        ip = f[14:]
        ihl = (ip[0] & 15) * 4
        return ip, ip[ihl:], (ip[2] << 8 | ip[3]) - ihl, bytes(ip[12:20])
    if len(f) >= 54 and f[12:14] == b"\x86\xdd" and f[20] == proto:
        ip = f[14:]
        return ip, ip[40:], ip[4] << 8 | ip[5], bytes(ip[8:40])
    return None


def tos_word(f):
    got = l4_of(f, 17)
    if not got:
        return None
    ip, l4, _, _ = got
    tos = ip[1] if ip[0] >> 4 == 4 else (ip[0] & 15) << 4 | ip[1] >> 4
    return "%d:0x%02x" % (struct.unpack("!H", l4[2:4])[0], tos)


def syn_word(f):
    got = l4_of(f, 6)
    if not got:
        return None
    _, t, tl, addrs = got
    if len(t) < 20 or not (t[13] & 0x02):
        return None
    sport, dport = struct.unpack("!HH", t[:4])
    doff = (t[12] >> 4) * 4
    mss, i = 0, 20
    while i + 4 <= doff:
        if t[i] == 2 and t[i + 1] == 4:
            mss = t[i + 2] << 8 | t[i + 3]
            break
        i += 1 if t[i] <= 1 or t[i + 1] == 0 else t[i + 1]  # xt_TCPMSS's optlen()
    raw = 40000 < sport < 40010
    bad = ""
    if raw:
        seg = bytes(t[:tl]) + (b"\0" if tl % 2 else b"")
        sm = sum(struct.unpack("!%dH" % (len(seg) // 2), seg)) + sum(struct.unpack("!%dH" % (len(addrs) // 2), addrs))
        sm += 6 + tl
        while sm >> 16:
            sm = (sm & 0xffff) + (sm >> 16)
        bad = "" if sm == 0xffff else "!badsum"
    opts = "=" + bytes(t[20:doff]).hex() if raw and doff > 20 else ""
    data = "+%d" % (tl - doff) if tl > doff else ""
    return "%s%d:%d%s%s%s" % ("r" if raw else "", dport if dport < 10000 else sport, mss, opts, data, bad)


def main():
    dev, out, seconds, mode = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
    word = {"tos": tos_word, "syns": syn_word}[mode]
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
    s.bind((dev, 0))
    seen = []
    end = time.time() + seconds
    while time.time() < end:
        r, _, _ = select.select([s], [], [], 0.1)
        if not r:
            continue
        f, addr = s.recvfrom(2000)
        if addr[2] == socket.PACKET_OUTGOING:
            continue
        w = word(f)
        if w:
            seen.append(w)
    open(out, "w").write(" ".join(sorted(seen)) + "\n")


main()
