#!/usr/bin/env python3
"""Helpers of kube.sh (the kube-proxy differential test).

  kube_probe.py serve NAME             a pod's responder: TCP 8080 and UDP 5353 answer
                                       "NAME PEER-ADDRESS" (which backend, and the
                                       source address it saw: masqueraded or not)
  kube_probe.py hold IP PORT SECONDS   one TCP connection kept open, a message
                                       every 50 ms; prints the backends that
                                       answered and the failed exchanges
  kube_probe.py probe TARGETS.json     connect to each target COUNT times; prints
                                       {"id": ["NAME PEER" | "refused" | "timeout", ...]}
  kube_probe.py targets SERVICES.json NODE_IP ALLOWED_SRC CLIENT_SRC
                                       the targets of `nf2bpf services --format json`
  kube_probe.py compare KERNEL.json NF2BPF.json TARGETS.json
                                       the verdict, one line per target; exit 1 on a
                                       difference
  kube_probe.py drop-endpoint RULES SERVICE ADDR
                                       RULES (iptables-save of kube-proxy's iptables
                                       mode) with SERVICE's ("ns/name:port") endpoint
                                       at ADDR removed, as kube-proxy rewrites them:
                                       its KUBE-SEP chain gone, the draws of the others
                                       1/n, 1/(n-1) ...
"""
import ipaddress
import json
import re
import socket
import sys
import threading


def family(ip):
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def peer_text(peer):
    """The peer's address; an IPv4 one as such, not ::ffff:a.b.c.d."""
    a = peer[0]
    return a[7:] if a.startswith("::ffff:") else a


def pod_of(addr):
    """The responders call themselves podK for 10.244.K.2 and fd00:10:244:K::2."""
    a = ipaddress.ip_address(addr)
    return "pod%d" % (int(a.exploded.split(":")[3], 16) if a.version == 6 else int(addr.split(".")[2]))


# The node's address on a pod's link (10.244.K.1, fd00:10:244:K::1): where
# masqueraded traffic to pod K comes from.
NODE_SIDE = re.compile(r"^(10\.244\.\d+\.1|fd00:10:244:([0-9a-f]+:)?:1)$")


def serve(name):
    def conn(c, peer):
        # The answer, then again for every message, until the client closes.
        try:
            c.sendall(("%s %s" % (name, peer_text(peer))).encode())
            while c.recv(100):
                c.sendall(("%s %s" % (name, peer_text(peer))).encode())
        except OSError:
            pass
        finally:
            c.close()

    # Both families on one socket each (an IPv6 socket that takes IPv4 too).
    def tcp():
        s = socket.socket(socket.AF_INET6)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(("::", 8080))
        s.listen(64)
        while True:
            c, peer = s.accept()
            threading.Thread(target=conn, args=(c, peer), daemon=True).start()

    threading.Thread(target=tcp, daemon=True).start()
    u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    u.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    u.bind(("::", 5353))
    while True:
        _, peer = u.recvfrom(100)
        u.sendto(("%s %s" % (name, peer_text(peer))).encode(), peer)


def failure(e):
    """What a failed attempt met: an answer that refuses, an ICMP error that
    says unreachable, or nothing."""
    import errno
    if isinstance(e, ConnectionRefusedError):
        return "refused"
    if getattr(e, "errno", None) in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "unreachable"
    return "timeout"


NO_ANSWER = ("refused", "unreachable", "timeout")


def one(t):
    src = (t["src"], 0) if t.get("src") else None
    wait = 0.5 if t["count"] > 5 else 0.2
    if t["proto"] == "udp":
        s = socket.socket(family(t["ip"]), socket.SOCK_DGRAM)
        s.settimeout(wait)
        try:
            if src:
                s.bind(src)
            s.sendto(b"x", (t["ip"], t["port"]))
            return s.recv(100).decode()
        except OSError as e:
            return failure(e)
        finally:
            s.close()
    s = socket.socket(family(t["ip"]))
    s.settimeout(wait)
    try:
        if src:
            s.bind(src)
        s.connect((t["ip"], t["port"]))
        return s.recv(100).decode() or "closed"
    except OSError as e:
        return failure(e)
    finally:
        s.close()


def hold(ip, port, seconds):
    """One TCP connection kept for `seconds`, a message every 50 ms: prints
    the backends that answered and how many exchanges failed."""
    import time
    s = socket.create_connection((ip, port), timeout=2)
    first = s.recv(100).decode().split()[0]
    seen, failed, n = {first}, 0, 0
    end = time.time() + seconds
    while time.time() < end:
        n += 1
        try:
            s.sendall(b"x")
            seen.add(s.recv(100).decode().split()[0])
        except (OSError, IndexError):
            failed += 1
            break
        time.sleep(0.05)
    print(json.dumps({"backends": sorted(seen), "exchanges": n, "failed": failed}))


def drop_endpoint(path, service, addr):
    lines = open(path).read().splitlines()
    jump = re.compile(r'^-A (KUBE-SVC-\S+) .*--comment "%s -> %s:\d+".* -j (KUBE-SEP-\S+)$'
                      % (re.escape(service), re.escape(addr)))
    hit = [m for m in map(jump.match, lines) if m]
    if len(hit) != 1:
        sys.exit("drop-endpoint: %s has no endpoint %s" % (service, addr))
    svc, sep = hit[0].group(1), hit[0].group(2)
    out = [l for l in lines if l != hit[0].group(0) and l != ":%s - [0:0]" % sep
           and not l.startswith("-A %s " % sep)]
    rest = [i for i, l in enumerate(out) if l.startswith("-A %s " % svc) and " -j KUBE-SEP-" in l]
    for k, i in enumerate(rest):
        l = re.sub(r" -m statistic --mode random --probability \S+", "", out[i])
        if k + 1 < len(rest):
            l = l.replace(" -j KUBE-SEP-", " -m statistic --mode random --probability %.11f -j KUBE-SEP-"
                          % (1.0 / (len(rest) - k)))
        out[i] = l
    print("\n".join(out))


def probe(path):
    targets = json.load(open(path))
    print(json.dumps({t["id"]: [one(t) for _ in range(t["count"])] for t in targets}))


def targets(path, node_ip, allowed_src, client_src):
    out = []
    for s in json.load(open(path))["services"]:
        for f in s["frontends"]:
            ip = f["address"] or node_ip
            srcs = [None]
            if f["kind"] == "LoadBalancer" and s["source_ranges"]:
                # The client's own address is outside the ranges (given: IPv6
                # would pick the allowed one for the LoadBalancer's prefix).
                srcs = [client_src, allowed_src]
            for src in srcs:
                # Few attempts where no connection is expected: each waits for a timeout.
                blocked = s["no_endpoints"] or (len(srcs) > 1 and src == client_src)
                out.append({"id": "%s %s %s:%d/%s%s" % (s["name"], f["kind"], ip, f["port"], f["protocol"],
                                                       " from " + src if src else ""),
                            "proto": f["protocol"], "ip": ip, "port": f["port"], "src": src,
                            "count": 3 if blocked else 30,
                            "affinity": bool(s["affinity_seconds"]),
                            "pods": sorted(pod_of(b["address"]) for b in s["backends"]),
                            "reject": s["no_endpoints"]})
    print(json.dumps(out))


def compare(kpath, bpath, tpath):
    K, B = json.load(open(kpath)), json.load(open(bpath))
    bad = 0
    refused = [0, 0]  # REJECT frontends the kernel, nf2bpf refused at least once
    for t in json.load(open(tpath)):
        tid, k, b = t["id"], K[t["id"]], B[t["id"]]
        kok = [r for r in k if r not in NO_ANSWER]
        bok = [r for r in b if r not in NO_ANSWER]
        msg = []
        if kok and len(bok) != len(b):
            msg.append("%d of %d connections failed with nf2bpf" % (len(b) - len(bok), len(b)))
        if not kok:
            kf, bf = sorted(set(k)), sorted(set(b))
            if bok:
                msg.append("nf2bpf connected (%s), the kernel did not (%s)" % (bok[0], kf))
            elif kf != bf and not (t["reject"] and set(kf) | set(bf) <= {"refused", "timeout"}):
                # (REJECT's answers are rate limited per client: past the
                # limit an attempt times out, when each side's bucket says;
                # kernel-reject-ratelimit compares the buckets exactly)
                msg.append("the kernel's %s, nf2bpf's %s" % (kf, bf))
            if t["reject"]:
                refused[0] += "refused" in kf
                refused[1] += "refused" in bf
            print("%s %s: no connection, kernel %s, nf2bpf %s" % ("FAIL" if msg else "ok", tid, kf, bf))
            bad += bool(msg)
            continue
        kpods = sorted({r.split()[0] for r in kok})
        bpods = sorted({r.split()[0] for r in bok})
        kpeers = sorted({r.split()[1] for r in kok})
        bpeers = sorted({r.split()[1] for r in bok})
        if "pods" in t and set(bpods) - set(t["pods"]):
            msg.append("backends %s that are not the Service's" % sorted(set(bpods) - set(t["pods"])))
        if t["affinity"]:
            # Both stick to one backend, each its own first pick: compare
            # whether the source was masqueraded (to the node's address on
            # the pod's link), not the address.
            if len(bpods) != 1 or len(kpods) != 1:
                msg.append("affinity not held: kernel %s, nf2bpf %s" % (kpods, bpods))
            node = lambda ps: sorted("node" if NODE_SIDE.match(p) else p for p in ps)
            kpeers, bpeers = node(kpeers), node(bpeers)
        else:
            if set(bpods) - set(kpods):
                msg.append("backends %s the kernel never chose" % sorted(set(bpods) - set(kpods)))
            if set(kpods) - set(bpods):
                msg.append("backends %s never reached" % sorted(set(kpods) - set(bpods)))
        if kpeers != bpeers:
            msg.append("the backends saw source %s, with the kernel %s (masquerade differs)" % (bpeers, kpeers))
        chi = ""
        if not t["affinity"] and len(kpods) > 1 and bok:
            n, e = len(bok), len(bok) / len(kpods)
            x2 = sum(((sum(1 for r in bok if r.split()[0] == p) - e) ** 2) / e for p in kpods)
            # p = 0.00001 critical values for 1..5 degrees of freedom: some
            # 30 frontends are tested per run, and a fair spread must not
            # fail one run in a thousand.
            crit = [19.51, 23.03, 25.90, 28.47, 30.86][min(len(kpods) - 2, 4)]
            chi = ", chi-square %.1f (limit %.1f)" % (x2, crit)
            if x2 > crit:
                msg.append("distribution off: chi-square %.1f > %.1f" % (x2, crit))
        print("%s %s: backends %s, source seen %s%s%s" % ("FAIL" if msg else "ok", tid, bpods, bpeers, chi,
                                                          "; " + "; ".join(msg) if msg else ""))
        bad += bool(msg)
    if refused[0] and not refused[1]:
        print("FAIL the kernel's REJECT refused %d frontends' attempts, nf2bpf's none" % refused[0])
        bad += 1
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "drop-endpoint":
        drop_endpoint(sys.argv[2], sys.argv[3], sys.argv[4])
    if cmd == "serve":
        serve(sys.argv[2])
    elif cmd == "hold":
        hold(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    elif cmd == "probe":
        probe(sys.argv[2])
    elif cmd == "targets":
        targets(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5])
    elif cmd == "compare":
        compare(sys.argv[2], sys.argv[3], sys.argv[4])
