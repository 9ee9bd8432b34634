#!/usr/bin/python3
"""Generates the golden captures in testdata/pcap/ (python3-scapy).

The scenario is one host, 192.0.2.10 / 2001:db8::10 on eth0 (and 10.0.0.1 on
eth1 for the router capture), talking to clients in 198.51.100.0/24 and
2001:db8:1::/64. Timestamps are fixed so the files are reproducible:

    scripts/make-captures.py [OUTDIR]     # default: testdata/pcap

Each capture's purpose is in the README that sits next to them; the unit
tests in tests/unit/pcap_*_test.cpp and verify_*_test.cpp pin their contents.
"""
import logging
import os
import struct
import sys

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.all import (IP, IPv6, TCP, UDP, ICMP, Ether, Dot1Q, Dot1AD, Raw, wrpcap,
                       IPv6ExtHdrHopByHop, IPv6ExtHdrFragment, IPv6ExtHdrRouting,
                       IPv6ExtHdrDestOpt, ICMPv6EchoRequest, ICMPv6EchoReply,
                       ICMPv6ND_NS, ICMPv6DestUnreach, CookedLinux)
from scapy.layers.l2 import CookedLinuxV2
from scapy.layers.ipsec import AH

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "testdata", "pcap")
BASE = 1714550400.0  # 2024-05-01 08:00:00 UTC

HOST4, HOST6 = "192.0.2.10", "2001:db8::10"
CLIENT4, CLIENT6 = "198.51.100.7", "2001:db8:1::7"
HOST_MAC, PEER_MAC = "02:00:00:00:00:0a", "02:00:00:00:00:07"


def stamp(pkts, start=BASE, step=0.001):
    for i, p in enumerate(pkts):
        p.time = start + i * step
    return pkts


def eth_in(l3):
    return Ether(src=PEER_MAC, dst=HOST_MAC) / l3


def eth_out(l3):
    return Ether(src=HOST_MAC, dst=PEER_MAC) / l3


def tcp_session(cli, srv, sport, dport, v6=False, wrap=(eth_in, eth_out)):
    """A complete TCP session as seen on the server: handshake, data, close."""
    L3 = IPv6 if v6 else IP
    up, down = wrap
    c2s = lambda **kw: up(L3(src=cli, dst=srv) / TCP(sport=sport, dport=dport, **kw))
    s2c = lambda **kw: down(L3(src=srv, dst=cli) / TCP(sport=dport, dport=sport, **kw))
    return [
        c2s(flags="S", seq=1000),
        s2c(flags="SA", seq=5000, ack=1001),
        c2s(flags="A", seq=1001, ack=5001),
        c2s(flags="PA", seq=1001, ack=5001) / Raw(b"hello\n"),
        s2c(flags="A", seq=5001, ack=1007),
        c2s(flags="FA", seq=1007, ack=5001),
        s2c(flags="FA", seq=5001, ack=1008),
        c2s(flags="A", seq=1008, ack=5002),
    ]


def tcp_stateful():
    """Packets 1-8: ssh session (port 22), 9-16: http session (port 80),
    17: SYN to 23 (no service), 18: SYN-ACK from nowhere (INVALID),
    19: bare ACK mid-stream (loose pick-up: NEW), 20: XMAS scan (INVALID flags)."""
    pkts = tcp_session(CLIENT4, HOST4, 40000, 22)
    pkts += tcp_session(CLIENT4, HOST4, 40001, 80)
    pkts.append(eth_in(IP(src=CLIENT4, dst=HOST4) / TCP(sport=40002, dport=23, flags="S", seq=1)))
    pkts.append(eth_in(IP(src="203.0.113.9", dst=HOST4) / TCP(sport=443, dport=40003, flags="SA", seq=1, ack=1)))
    pkts.append(eth_in(IP(src=CLIENT4, dst=HOST4) / TCP(sport=40004, dport=22, flags="A", seq=77, ack=99)))
    pkts.append(eth_in(IP(src=CLIENT4, dst=HOST4) / TCP(sport=40005, dport=22, flags="FPU", seq=5)))
    return stamp(pkts)


def udp():
    """1-2: DNS query and answer, 3: NTP query, 4: query to 5000 (closed),
    5: the host's own DNS query out, 6: its answer."""
    pkts = [
        eth_in(IP(src=CLIENT4, dst=HOST4) / UDP(sport=5353, dport=53) / Raw(b"q")),
        eth_out(IP(src=HOST4, dst=CLIENT4) / UDP(sport=53, dport=5353) / Raw(b"a")),
        eth_in(IP(src=CLIENT4, dst=HOST4) / UDP(sport=123, dport=123) / Raw(b"n" * 48)),
        eth_in(IP(src=CLIENT4, dst=HOST4) / UDP(sport=6000, dport=5000)),
        eth_out(IP(src=HOST4, dst="9.9.9.9") / UDP(sport=41000, dport=53) / Raw(b"q")),
        eth_in(IP(src="9.9.9.9", dst=HOST4) / UDP(sport=53, dport=41000) / Raw(b"a")),
    ]
    return stamp(pkts)


def icmp():
    """1-2: echo request/reply, 3: host's UDP probe out, 4: port-unreachable
    quoting it (RELATED), 5: port-unreachable quoting nothing we sent (INVALID),
    6: echo reply nobody asked for (INVALID)."""
    probe = IP(src=HOST4, dst="203.0.113.5", ttl=1) / UDP(sport=33000, dport=33434)
    stray = IP(src=HOST4, dst="203.0.113.77") / UDP(sport=33999, dport=9)
    pkts = [
        eth_in(IP(src=CLIENT4, dst=HOST4) / ICMP(type=8, id=0x77, seq=1)),
        eth_out(IP(src=HOST4, dst=CLIENT4) / ICMP(type=0, id=0x77, seq=1)),
        eth_out(probe),
        eth_in(IP(src="203.0.113.5", dst=HOST4) / ICMP(type=3, code=3) / bytes(probe)[:28]),
        eth_in(IP(src="203.0.113.77", dst=HOST4) / ICMP(type=3, code=3) / bytes(stray)[:28]),
        eth_in(IP(src=CLIENT4, dst=HOST4) / ICMP(type=0, id=0x99, seq=4)),
    ]
    return stamp(pkts)


def ipv6():
    """1-8: TCP session to [2001:db8::10]:443 whose SYN carries a hop-by-hop
    header, 9-10: ICMPv6 echo with a destination-options header, 11: neighbour
    solicitation (untracked), 12: routing header + UDP, 13: AH + TCP,
    14-15: UDP datagram in two fragments, 16: ICMPv6 port unreachable quoting
    packet 12's flow."""
    sess = tcp_session(CLIENT6, HOST6, 50000, 443, v6=True)
    syn = sess[0]
    sess[0] = Ether(src=PEER_MAC, dst=HOST_MAC) / IPv6(src=CLIENT6, dst=HOST6) / IPv6ExtHdrHopByHop() / syn[TCP]
    pkts = sess
    pkts.append(eth_in(IPv6(src=CLIENT6, dst=HOST6) / IPv6ExtHdrDestOpt() / ICMPv6EchoRequest(id=5, seq=1)))
    pkts.append(eth_out(IPv6(src=HOST6, dst=CLIENT6) / ICMPv6EchoReply(id=5, seq=1)))
    pkts.append(Ether(src=PEER_MAC, dst="33:33:ff:00:00:10") /
                IPv6(src=CLIENT6, dst="ff02::1:ff00:10", hlim=255) / ICMPv6ND_NS(tgt=HOST6))
    routed = IPv6(src=HOST6, dst="2001:db8:2::9") / IPv6ExtHdrRouting(addresses=[]) / UDP(sport=47000, dport=4789)
    pkts.append(eth_out(routed))
    pkts.append(eth_in(IPv6(src=CLIENT6, dst=HOST6) / AH(nh=6, payloadlen=4, spi=1, seq=1, icv=b"\0" * 12) /
                       TCP(sport=50001, dport=22, flags="S")))
    payload = UDP(sport=50002, dport=5001) / Raw(b"x" * 64)
    frag = IPv6(src=CLIENT6, dst=HOST6) / IPv6ExtHdrFragment(id=0x1234, nh=17, m=1, offset=0) / bytes(payload)[:32]
    pkts.append(eth_in(frag))
    frag2 = IPv6(src=CLIENT6, dst=HOST6) / IPv6ExtHdrFragment(id=0x1234, nh=17, m=0, offset=4) / bytes(payload)[32:]
    pkts.append(eth_in(frag2))
    quoted = bytes(IPv6(src=HOST6, dst="2001:db8:2::9") / UDP(sport=47000, dport=4789))
    pkts.append(eth_in(IPv6(src="2001:db8:2::9", dst=HOST6) / ICMPv6DestUnreach(code=4) / quoted))
    return stamp(pkts)


def fragments():
    """1-2: a UDP datagram to port 53 in two IPv4 fragments, 3: a lone
    non-first fragment whose first fragment never came."""
    payload = bytes(UDP(sport=5353, dport=53) / Raw(b"y" * 40))
    f1 = IP(src=CLIENT4, dst=HOST4, id=0x4242, flags="MF", frag=0, proto=17) / payload[:24]
    f2 = IP(src=CLIENT4, dst=HOST4, id=0x4242, flags=0, frag=3, proto=17) / payload[24:]
    f3 = IP(src=CLIENT4, dst=HOST4, id=0x9999, flags=0, frag=5, proto=17) / (b"z" * 16)
    return stamp([eth_in(f1), eth_in(f2), eth_in(f3)])


def vlan():
    """802.1Q VLAN 100: a SYN to 22 and its SYN-ACK; QinQ (outer 200, inner 300):
    a UDP datagram to 53; untagged ARP that must be skipped."""
    from scapy.all import ARP
    pkts = [
        Ether(src=PEER_MAC, dst=HOST_MAC) / Dot1Q(vlan=100) / IP(src=CLIENT4, dst=HOST4) / TCP(sport=40100, dport=22, flags="S"),
        Ether(src=HOST_MAC, dst=PEER_MAC) / Dot1Q(vlan=100) / IP(src=HOST4, dst=CLIENT4) / TCP(sport=22, dport=40100, flags="SA", ack=1),
        Ether(src=PEER_MAC, dst=HOST_MAC, type=0x88a8) / Dot1AD(vlan=200) / Dot1Q(vlan=300) /
        IP(src=CLIENT4, dst=HOST4) / UDP(sport=5353, dport=53),
        Ether(src=PEER_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc=CLIENT4, pdst=HOST4),
    ]
    return stamp(pkts)


def sll():
    """Linux cooked capture (tcpdump -i any): in SYN to 22 (HOST), out SYN-ACK
    (OUTGOING), in broadcast UDP to 67, and a frame for another host."""
    pkts = [
        CookedLinux(pkttype=0, lladdrtype=1, lladdrlen=6, src=bytes.fromhex("020000000007") + b"\0\0", proto=0x0800) /
        IP(src=CLIENT4, dst=HOST4) / TCP(sport=40200, dport=22, flags="S"),
        CookedLinux(pkttype=4, lladdrtype=1, lladdrlen=6, src=bytes.fromhex("02000000000a") + b"\0\0", proto=0x0800) /
        IP(src=HOST4, dst=CLIENT4) / TCP(sport=22, dport=40200, flags="SA", ack=1),
        CookedLinux(pkttype=1, lladdrtype=1, lladdrlen=6, src=bytes.fromhex("020000000007") + b"\0\0", proto=0x0800) /
        IP(src="0.0.0.0", dst="255.255.255.255") / UDP(sport=68, dport=67),
        CookedLinux(pkttype=3, lladdrtype=1, lladdrlen=6, src=bytes.fromhex("020000000007") + b"\0\0", proto=0x0800) /
        IP(src=CLIENT4, dst="192.0.2.99") / TCP(sport=40201, dport=22, flags="S"),
    ]
    return stamp(pkts)


def sll2():
    """Linux cooked v2: ifindex 2 in (SYN to 80), ifindex 2 out (SYN-ACK),
    ifindex 3 in (IPv6 SYN to 22)."""
    pkts = [
        CookedLinuxV2(proto=0x0800, ifindex=2, lladdrtype=1, pkttype=0, lladdrlen=6, src=bytes.fromhex("020000000007") + b"\0\0") /
        IP(src=CLIENT4, dst=HOST4) / TCP(sport=40300, dport=80, flags="S"),
        CookedLinuxV2(proto=0x0800, ifindex=2, lladdrtype=1, pkttype=4, lladdrlen=6, src=bytes.fromhex("02000000000a") + b"\0\0") /
        IP(src=HOST4, dst=CLIENT4) / TCP(sport=80, dport=40300, flags="SA", ack=1),
        CookedLinuxV2(proto=0x86dd, ifindex=3, lladdrtype=1, pkttype=0, lladdrlen=6, src=bytes.fromhex("020000000007") + b"\0\0") /
        IPv6(src=CLIENT6, dst=HOST6) / TCP(sport=40301, dport=22, flags="S"),
    ]
    return stamp(pkts)


def raw_ip():
    """DLT_RAW: an IPv4 SYN to 22 and an IPv6 SYN to 443."""
    return stamp([IP(src=CLIENT4, dst=HOST4) / TCP(sport=40400, dport=22, flags="S"),
                  IPv6(src=CLIENT6, dst=HOST6) / TCP(sport=40401, dport=443, flags="S")])


def write_pcapng(path, interfaces, packets):
    """pcapng by hand: scapy 2.5 cannot name interfaces. interfaces:
    [(name, [ipv4 addr, ...])]; packets: [(ifid, time, bytes, flags)] with
    flags 1 inbound, 2 outbound."""
    def opt(code, data):
        pad = (4 - len(data) % 4) % 4
        return struct.pack("<HH", code, len(data)) + data + b"\0" * pad

    def block(btype, body):
        total = 12 + len(body)
        return struct.pack("<II", btype, total) + body + struct.pack("<I", total)

    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + opt(4, b"nf2bpf make-captures.py") + opt(0, b""))
    for name, addrs in interfaces:
        body = struct.pack("<HHI", 1, 0, 262144) + opt(2, name.encode())
        for a in addrs:
            body += opt(4, bytes(int(x) for x in a.split(".")) + b"\xff\xff\xff\x00")
        body += opt(9, b"\x06") + opt(0, b"")
        out += block(1, body)
    for ifid, t, data, flags in packets:
        us = int(round(t * 1e6))
        body = struct.pack("<IIIII", ifid, us >> 32, us & 0xffffffff, len(data), len(data))
        body += data + b"\0" * ((4 - len(data) % 4) % 4)
        body += opt(2, struct.pack("<I", flags)) + opt(0, b"")
        out += block(6, body)
    with open(path, "wb") as f:
        f.write(out)


def two_interfaces():
    """A router: eth0 (192.0.2.10, upstream) and eth1 (10.0.0.1, LAN).
    1: LAN client 10.0.0.5 -> 198.51.100.7:443 SYN in on eth1, 2: the same SYN
    out on eth0, 3: SYN-ACK in on eth0, 4: out on eth1, 5: SSH to the router
    from the LAN (in eth1), 6: telnet from outside to a LAN host (in eth0)."""
    lan, peer = "10.0.0.5", CLIENT4
    syn = IP(src=lan, dst=peer, ttl=64) / TCP(sport=51000, dport=443, flags="S", seq=10)
    syn_fwd = IP(src=lan, dst=peer, ttl=63) / TCP(sport=51000, dport=443, flags="S", seq=10)
    sa = IP(src=peer, dst=lan, ttl=60) / TCP(sport=443, dport=51000, flags="SA", seq=90, ack=11)
    sa_fwd = IP(src=peer, dst=lan, ttl=59) / TCP(sport=443, dport=51000, flags="SA", seq=90, ack=11)
    ssh = IP(src=lan, dst="10.0.0.1") / TCP(sport=51001, dport=22, flags="S")
    telnet = IP(src=peer, dst=lan) / TCP(sport=51002, dport=23, flags="S")
    e = lambda l3, fl: bytes(Ether(src=PEER_MAC, dst=HOST_MAC) / l3 if fl == 1 else Ether(src=HOST_MAC, dst=PEER_MAC) / l3)
    pk = [(1, syn, 1), (0, syn_fwd, 2), (0, sa, 1), (1, sa_fwd, 2), (1, ssh, 1), (0, telnet, 1)]
    packets = [(ifid, BASE + i * 0.001, e(l3, fl), fl) for i, (ifid, l3, fl) in enumerate(pk)]
    write_pcapng(os.path.join(OUT, "two-interfaces.pcapng"), [("eth0", [HOST4]), ("eth1", ["10.0.0.1"])], packets)


def main():
    os.makedirs(OUT, exist_ok=True)
    j = lambda n: os.path.join(OUT, n)
    wrpcap(j("tcp-stateful.pcap"), tcp_stateful())
    wrpcap(j("udp.pcap"), udp())
    wrpcap(j("icmp.pcap"), icmp())
    wrpcap(j("ipv6.pcap"), ipv6())
    wrpcap(j("fragments.pcap"), fragments())
    wrpcap(j("vlan.pcap"), vlan())
    wrpcap(j("sll.pcap"), sll(), linktype=113)
    wrpcap(j("sll2.pcap"), sll2(), linktype=276)
    wrpcap(j("raw-ip.pcap"), raw_ip(), linktype=101)
    two_interfaces()
    # The stateful capture cut in the middle of packet 6's record: packets
    # 1-5 are whole, the reader must name packet 6.
    with open(j("tcp-stateful.pcap"), "rb") as f:
        data = f.read()
    off, n = 24, 0
    while n < 5:
        caplen = struct.unpack("<I", data[off + 8:off + 12])[0]
        off += 16 + caplen
        n += 1
    with open(j("truncated.pcap"), "wb") as f:
        f.write(data[:off + 16 + 10])


if __name__ == "__main__":
    main()
