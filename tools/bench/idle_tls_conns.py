#!/usr/bin/env python3
"""Opens N TLS connections (no certificate check, like wrk), sends one
keep-alive GET on each and reads its answer, then holds them all open.
Writes "ready N" to READY_FILE once all are open and exits when that file is
removed (or after HOLD seconds).

    idle_tls_conns.py HOST PORT SNI N READY_FILE [HOLD]
"""
import os
import socket
import ssl
import sys
import time


def main() -> None:
    host, port, sni, n, ready = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
    hold = float(sys.argv[6]) if len(sys.argv) > 6 else 60
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    conns = []
    request = f"GET /small.txt HTTP/1.1\r\nHost: {sni}:{port}\r\n\r\n".encode()  # squid forwards to the Host port
    for _ in range(n):
        raw = socket.create_connection((host, port), timeout=10)
        # Without it a first request waits ~40 ms on egressd (Nagle against a
        # delayed ACK: egressd sends no session ticket after the handshake,
        # see docs/benchmarks.md), and opening 1000 takes ~50 s.
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tls = ctx.wrap_socket(raw, server_hostname=sni)
        tls.sendall(request)
        got = b""
        while b"\r\n\r\n" not in got or len(got.split(b"\r\n\r\n", 1)[1]) < 100:
            chunk = tls.recv(4096)
            if not chunk:
                sys.exit(f"connection {len(conns)} closed before its answer: {got[:200]!r}")
            got += chunk
        if not got.startswith(b"HTTP/1.1 200"):
            sys.exit(f"connection {len(conns)}: {got[:200]!r}")
        conns.append(tls)
    with open(ready, "w") as f:
        f.write(f"ready {len(conns)}\n")
    deadline = time.monotonic() + hold
    while os.path.exists(ready) and time.monotonic() < deadline:
        time.sleep(0.05)


if __name__ == "__main__":
    main()
