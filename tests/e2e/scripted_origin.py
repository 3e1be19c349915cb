"""A raw TCP origin on loopback that runs a test's script on each connection
and records, in order, every byte it receives and sends: the evidence of
what got through the proxy, and when. Plus a raw client run inside a
sandbox, a WebSocket echo origin and a minimal RFC 6455 frame codec shared
by both sides."""
import base64
import hashlib
import json
import socket
import ssl
import struct
import textwrap
import threading
import time

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC11B65"

# Frame helpers, also pasted into the sandbox's python client (see WS_CLIENT).
WS_CODE = r'''
import os, struct

def ws_frame(opcode, payload=b"", fin=True, mask=True, rsv1=False):
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head = bytes([b0, mbit | n])
    elif n <= 0xffff:
        head = bytes([b0, mbit | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, mbit | 127]) + struct.pack(">Q", n)
    if mask:
        key = os.urandom(4)
        payload = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
        head += key
    return head + payload

def ws_read_frame(read_exactly):
    """(fin, rsv1, opcode, payload) of the next frame, unmasked."""
    b0, b1 = read_exactly(2)
    n = b1 & 0x7f
    if n == 126:
        n = struct.unpack(">H", read_exactly(2))[0]
    elif n == 127:
        n = struct.unpack(">Q", read_exactly(8))[0]
    key = read_exactly(4) if b1 & 0x80 else None
    payload = read_exactly(n)
    if key:
        payload = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
    return bool(b0 & 0x80), bool(b0 & 0x40), b0 & 0x0f, payload
'''
exec(WS_CODE)


def ws_accept(key):
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


class Conn:
    """One accepted connection; `log` lists ("recv", bytes), ("send", bytes)
    and ("eof",) in the order they happened."""

    def __init__(self, sock):
        self.sock = sock
        self.log = []
        self.buf = b""
        self.eof = False

    def _fill(self, timeout):
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        except OSError:
            data = b""
        if not data:
            self.eof = True
            self.log.append(("eof",))
            return False
        self.log.append(("recv", data))
        self.buf += data
        return True

    def recv_until(self, marker, timeout=5):
        """Bytes up to and including marker (None on EOF/timeout first)."""
        deadline = time.monotonic() + timeout
        while marker not in self.buf:
            left = deadline - time.monotonic()
            if self.eof or left <= 0 or not self._fill(left):
                return None
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def recv_exactly(self, n, timeout=5):
        deadline = time.monotonic() + timeout
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if self.eof or left <= 0 or not self._fill(left):
                raise EOFError(f"wanted {n} bytes, have {len(self.buf)}")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_for(self, seconds):
        """Whatever arrives within `seconds` (stops early at EOF)."""
        deadline = time.monotonic() + seconds
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._fill(left)
        out, self.buf = self.buf, b""
        return out

    def recv_until_eof(self, timeout=10):
        return self.recv_for(timeout)

    def send(self, data):
        self.log.append(("send", data))
        self.sock.sendall(data)

    def received(self):
        return b"".join(e[1] for e in self.log if e[0] == "recv")


class ScriptedOrigin:
    """Listens on 127.0.0.1; each connection runs script(conn) in a thread
    (over TLS with tls=(cert, key): the handshake happens in that thread)."""

    def __init__(self, script, tls=None):
        self.script = script
        self.tls = None
        if tls:
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls.load_cert_chain(*tls)
        self.conns = []
        self.errors = []
        self._done = threading.Condition()
        self._finished = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                s, _ = self.sock.accept()
            except OSError:
                return
            c = Conn(s)
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            if self.tls:
                c.sock.settimeout(10)
                c.sock = self.tls.wrap_socket(c.sock, server_side=True)
            self.script(c)
        except Exception as e:  # the test reads errors, a thread cannot raise to it
            self.errors.append(repr(e))
        finally:
            c.sock.close()
            with self._done:
                self._finished += 1
                self._done.notify_all()

    def wait_finished(self, count=1, timeout=15):
        """Waits until `count` connections' scripts returned."""
        with self._done:
            return self._done.wait_for(lambda: self._finished >= count, timeout)

    def close(self):
        self.sock.close()


def read_head(conn, timeout=5):
    """The request or response head as text (None on EOF/timeout)."""
    head = conn.recv_until(b"\r\n\r\n", timeout)
    return head.decode("latin-1") if head is not None else None


def header(head, name):
    for line in head.split("\r\n")[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == name.lower():
            return v.strip()
    return None


CLIENT_PRELUDE = r'''
import json, socket, sys, time, zlib
s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
buf = b""
def fill():
    global buf
    d = s.recv(65536)
    if not d:
        raise EOFError("closed")
    buf += d
def read_until(marker):
    global buf
    while marker not in buf:
        fill()
    i = buf.index(marker) + len(marker)
    out, buf = buf[:i], buf[i:]
    return out
def read_exactly(n):
    global buf
    while len(buf) < n:
        fill()
    out, buf = buf[:n], buf[n:]
    return out
def read_until_close(timeout=5):
    """(bytes, closed): what arrives until the proxy closes, or the timeout."""
    global buf
    s.settimeout(timeout)
    out, buf = buf, b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                return out, True
            out += d
    except socket.timeout:
        return out, False
    except ConnectionResetError:
        return out, True
def upgrade_request(path="/ws", extensions=None):
    ext = f"Sec-WebSocket-Extensions: {extensions}\r\n" if extensions else ""
    return (f"GET {path} HTTP/1.1\r\nHost: allowed.test:{PORT}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            f"Sec-WebSocket-Version: 13\r\n{ext}\r\n").encode()
result = {}
'''


def in_sandbox(sb, port, *bodies):
    """Runs the `bodies` (python, each dedented) in the sandbox, connected to
    127.0.0.1:port (so through the proxy); they fill `result`, returned."""
    code = f"PORT = {port}\n" + WS_CODE + CLIENT_PRELUDE + \
        "".join(textwrap.dedent(b) for b in bodies) + "\nprint(json.dumps(result))\n"
    r = sb.python(code)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def proxy_events(env, instance, count=1, timeout=5):
    deadline = time.monotonic() + timeout
    while True:
        out = env.daemon.ctl("events", "--json", "--instance", instance).stdout
        got = [json.loads(line) for line in out.splitlines() if line.strip()]
        if len(got) >= count or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def websocket_origin(extensions=None, watch_before_101=0.0):
    """An echo WebSocket server. watch_before_101: seconds to record what
    arrives after the upgrade request before answering 101."""

    def script(c):
        c.head = read_head(c)
        if c.head is None:
            return
        c.before_101 = c.recv_for(watch_before_101) if watch_before_101 else b""
        ext = f"Sec-WebSocket-Extensions: {extensions}\r\n" if extensions else ""
        c.send((f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {ws_accept(header(c.head, 'Sec-WebSocket-Key'))}\r\n"
                f"{ext}\r\n").encode())
        # Frames that arrived with the upgrade request are served too.
        c.buf = c.before_101 + c.buf
        while True:
            try:
                fin, rsv1, opcode, payload = ws_read_frame(c.recv_exactly)
            except EOFError:
                return
            if opcode == 8:
                c.send(ws_frame(8, payload, mask=False))
                return  # the server closes the TCP connection first (RFC 6455 7.1.1)
            if opcode == 9:
                c.send(ws_frame(10, payload, mask=False))
                continue
            c.send(ws_frame(opcode, payload, fin=fin, mask=False, rsv1=rsv1))

    return script
