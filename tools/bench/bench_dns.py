#!/usr/bin/env python3
"""A tiny DNS server for the benchmark: answers A queries for every name
under a suffix (default origin.test) with 127.0.0.1, NXDOMAIN for the rest,
an empty answer for other types. Loopback only.

    bench_dns.py PORT [SUFFIX]      prints "ready" once bound
"""
import socket
import struct
import sys


def answer(query: bytes, suffix: bytes) -> bytes | None:
    if len(query) < 12:
        return None
    qid, flags, qdcount = struct.unpack("!HHH", query[:6])
    if flags & 0x8000 or qdcount != 1:
        return None
    pos, labels = 12, []
    while pos < len(query) and query[pos] != 0:
        n = query[pos]
        labels.append(query[pos + 1 : pos + 1 + n])
        pos += 1 + n
    pos += 1
    if pos + 4 > len(query):
        return None
    qtype, _qclass = struct.unpack("!HH", query[pos : pos + 4])
    question = query[12 : pos + 4]
    name = b".".join(labels).lower()
    ours = name == suffix or name.endswith(b"." + suffix)
    rcode = 0 if ours else 3
    ancount = 1 if ours and qtype == 1 else 0
    head = struct.pack("!HHHHHH", qid, 0x8180 | rcode, 1, ancount, 0, 0)
    body = question
    if ancount:
        body += struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton("127.0.0.1")
    return head + body


def main() -> None:
    port = int(sys.argv[1])
    suffix = (sys.argv[2] if len(sys.argv) > 2 else "origin.test").encode().lower()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", port))
    print("ready", flush=True)
    while True:
        data, peer = s.recvfrom(512)
        reply = answer(data, suffix)
        if reply:
            s.sendto(reply, peer)


if __name__ == "__main__":
    main()
