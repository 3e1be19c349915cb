#!/usr/bin/env python3
"""Opens N plain HTTP keep-alive connections, sends one GET on each and reads
its answer, then holds them all open. Writes "ready N SECONDS" to READY_FILE
once all are open and answered; on removal of that file sends a second GET on
each (they must still work after being idle), prints how many answered 200,
and exits (or after HOLD seconds).

    idle_http_conns.py HOST PORT HOSTNAME N READY_FILE [HOLD]
"""
import os
import re
import socket
import sys
import time


def response(c: socket.socket) -> bytes:
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = c.recv(65536)
        if not d:
            raise EOFError("closed before a response")
        buf += d
    head, _, body = buf.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(body) < length:
        d = c.recv(65536)
        if not d:
            raise EOFError("closed in a body")
        body += d
    return head.split(b"\r\n")[0]


def main() -> None:
    host, port, name, n, ready = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
    hold = float(sys.argv[6]) if len(sys.argv) > 6 else 120
    request = f"GET /small.txt HTTP/1.1\r\nHost: {name}:{port}\r\n\r\n".encode()
    start = time.monotonic()
    conns = []
    for _ in range(n):  # the request at once: a proxy may time out a silent connection
        conns.append(socket.create_connection((host, port), timeout=30))
        conns[-1].sendall(request)
    bad = [i for i, c in enumerate(conns) if response(c) != b"HTTP/1.1 200 OK"]
    if bad:
        sys.exit(f"{len(bad)} connections got no 200")
    with open(ready + ".tmp", "w") as f:
        f.write(f"ready {len(conns)} {time.monotonic() - start:.1f}\n")
    os.rename(ready + ".tmp", ready)
    deadline = time.monotonic() + hold
    while os.path.exists(ready) and time.monotonic() < deadline:
        time.sleep(0.05)
    for c in conns:
        c.sendall(request)
    ok = sum(response(c) == b"HTTP/1.1 200 OK" for c in conns)
    print(f"again {ok}", flush=True)


if __name__ == "__main__":
    main()
