"""Hostile or odd upstreams: what they send never lets request bytes reach a
connection the proxy did not judge, and never poses as another host's answer."""
import socket
import threading


class ScriptedOrigin:
    """A raw TCP origin on loopback: reads a request head, sends `reply`, then
    closes (or not). Records the first bytes of every connection."""

    def __init__(self, reply, close_after_reply=True):
        self.reply = reply
        self.close_after_reply = close_after_reply
        self.first_bytes = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        c.settimeout(5)
        data = b""
        try:
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
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self._stop = True
        self.thread.join(timeout=2)
        self.sock.close()


def run_client(sb, code):
    r = sb.python(code)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_body_after_an_early_close_never_reaches_a_new_upstream(env):
    origin = ScriptedOrigin(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    try:
        sb = env.sandbox("open")
        smuggled = b"GET /smuggled HTTP/1.1\r\nHost: denied.test\r\n\r\n"
        body = smuggled + b"x" * (100 - len(smuggled))
        out = run_client(sb, f"""
import socket, time
s = socket.create_connection(("127.0.0.1", {origin.port}), timeout=10)
s.sendall(b"POST /first HTTP/1.1\\r\\nHost: allowed.test\\r\\nContent-Length: 100\\r\\nExpect: 100-continue\\r\\n\\r\\n")
data = b""
while b"\\r\\n\\r\\n" not in data:
    c = s.recv(4096)
    if not c: break
    data += c
time.sleep(0.3)  # let the upstream's close reach the proxy (nothing to wait on)
try:
    s.sendall({body!r} + b"GET /second HTTP/1.1\\r\\nHost: allowed.test\\r\\n\\r\\n")
    while True:
        c = s.recv(4096)
        if not c: break
        data += c
except OSError:
    pass
print(data.decode("latin-1"))
""")
        assert "413" in out
        # Every upstream connection began with a head egressd judged.
        assert origin.first_bytes, "the origin saw no connection"
        for first in origin.first_bytes:
            assert first.startswith(b"POST /first") or first.startswith(b"GET /second"), first
    finally:
        origin.close()


def test_bytes_after_a_response_cannot_answer_the_next_request(env):
    forged = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged"
    origin = ScriptedOrigin(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" + forged, close_after_reply=False)
    try:
        sb = env.sandbox("open")
        out = run_client(sb, f"""
import socket
s = socket.create_connection(("127.0.0.1", {origin.port}), timeout=10)
s.sendall(b"GET /a HTTP/1.1\\r\\nHost: allowed.test\\r\\n\\r\\n")
data = b""
try:
    while True:
        c = s.recv(4096)
        if not c: break
        data += c
        if data.endswith(b"ok"):
            s.sendall(b"GET /b HTTP/1.1\\r\\nHost: other.test\\r\\n\\r\\n")
except OSError:
    pass
print(data.decode("latin-1"))
""")
        assert "forged" not in out
    finally:
        origin.close()
