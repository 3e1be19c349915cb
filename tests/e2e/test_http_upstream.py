"""Hostile or odd upstreams: what they send never lets request bytes reach a
connection the proxy did not judge, and never poses as another host's answer."""
import subprocess
import threading

import pytest

from bounded import read_line
from conftest import PYTHON
from origins import TcpOrigin


class ScriptedOrigin(TcpOrigin):
    """Reads a request head, sends `reply`, then closes (or, with
    close_after_reply=False, waits for the peer to close). Records the first
    bytes of every connection; `closed` is set when a connection ended."""

    def __init__(self, reply, close_after_reply=True):
        self.reply = reply
        self.close_after_reply = close_after_reply
        self.first_bytes = []
        self.closed = threading.Event()
        super().__init__()

    def serve(self, c):
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = c.recv(4096)
            if not chunk:
                break
            data += chunk
        self.first_bytes.append(data[:200])
        c.sendall(self.reply)
        if not self.close_after_reply:
            while c.recv(4096):
                pass

    def connection_closed(self):
        self.closed.set()


# A client in the sandbox that sends `first`, prints the reply head, waits for
# the test's "go" on stdin, sends `then`, and prints everything it gets until
# the connection ends (EOF or reset): the test decides when, from the origin.
STEPPED_CLIENT = """
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(bytes.fromhex(sys.argv[2]))
data = b""
while b"\\r\\n\\r\\n" not in data:
    c = s.recv(4096)
    if not c: break
    data += c
print(data.split(b"\\r\\n")[0].decode(), flush=True)
sys.stdin.readline()
rest, ended = b"", "eof"
try:
    s.sendall(bytes.fromhex(sys.argv[3]))
    while True:
        c = s.recv(4096)
        if not c: break
        rest += c
except ConnectionResetError:
    ended = "reset"
except BrokenPipeError:
    ended = "broken pipe"
print(ended, rest.hex(), flush=True)
"""


def stepped_exchange(sb, port, first, then, go):
    """Runs STEPPED_CLIENT; `go()` returns when the test may let it continue.
    Returns (status line of the first reply, how the connection ended, the bytes after)."""
    p = sb.popen(PYTHON, "-c", STEPPED_CLIENT, str(port), first.hex(), then.hex(),
                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        status = read_line(p.stdout, 15, "the first reply").strip()
        go()
        p.stdin.write("go\n")
        p.stdin.flush()
        ended, _, rest = read_line(p.stdout, 15, "the end of the connection").rstrip("\n").partition(" ")
        return status, ended, bytes.fromhex(rest)
    finally:
        p.kill()
        p.wait(timeout=10)


def test_body_after_an_early_close_never_reaches_a_new_upstream(env):
    origin = ScriptedOrigin(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    try:
        sb = env.sandbox("open")
        smuggled = b"GET /smuggled HTTP/1.1\r\nHost: denied.test\r\n\r\n"
        body = smuggled + b"x" * (100 - len(smuggled))
        head = (b"POST /first HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 100\r\n"
                b"Expect: 100-continue\r\n\r\n")
        # The rest of the body (a whole request for a denied host) and a second
        # request go only once the origin has closed its side.
        status, ended, rest = stepped_exchange(
            sb, origin.port, head, body + b"GET /second HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
            lambda: origin.closed.wait(10) or pytest.fail("the origin never closed"))
        assert status == "HTTP/1.1 413 Payload Too Large"
        # The upstream answered before the body was complete: egressd closed
        # the client's connection after that answer, and forwarded nothing more.
        assert rest == b"" and ended in ("eof", "reset"), (ended, rest)
        assert [b.split(b"\r\n")[0] for b in origin.first_bytes] == [b"POST /first HTTP/1.1"]
    finally:
        origin.close()


def test_bytes_after_a_response_cannot_answer_the_next_request(env):
    forged = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged"
    origin = ScriptedOrigin(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" + forged, close_after_reply=False)
    try:
        sb = env.sandbox("open")
        # The second request goes once the origin has sent all it will send
        # (its reply and the forged one after it) and egressd has closed the
        # upstream connection (the origin sees its end).
        status, ended, rest = stepped_exchange(
            sb, origin.port, b"GET /a HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
            b"GET /b HTTP/1.1\r\nHost: other.test\r\n\r\n",
            lambda: origin.closed.wait(10) or pytest.fail("the origin never closed"))
        assert status == "HTTP/1.1 200 OK"  # the genuine reply arrived
        # Bytes no request asked for end both connections: the forged answer
        # reaches nobody, and the second request is neither answered nor forwarded.
        assert b"forged" not in rest and b"HTTP/1.1" not in rest, rest
        assert ended in ("eof", "reset", "broken pipe"), ended
        assert [b.split(b"\r\n")[0] for b in origin.first_bytes] == [b"GET /a HTTP/1.1"]
        assert sb.stats()["proxy"]["upstream_errors"] == 1
    finally:
        origin.close()
