"""Origin servers for tests, on loopback only: HTTP and HTTPS (certificates
from a CA the test makes with the openssl CLI). Every request is recorded, so
tests can assert what reached an origin and what never did."""
import http.server
import os
import socket
import ssl
import subprocess
import threading


def make_ca(directory, names):
    """A test CA and one server certificate for `names` (DNS and IP SANs)."""
    ca_key = os.path.join(directory, "ca.key")
    ca_crt = os.path.join(directory, "ca.crt")
    key = os.path.join(directory, "server.key")
    csr = os.path.join(directory, "server.csr")
    crt = os.path.join(directory, "server.crt")
    ext = os.path.join(directory, "san.ext")
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", ca_key, "-out", ca_crt, "-days", "2", "-subj", "/CN=egressd test CA")
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", key, "-out", csr, "-subj", "/CN=" + names[0])
    sans = ",".join(("IP:" if n.replace(".", "").isdigit() or ":" in n else "DNS:") + n for n in names)
    with open(ext, "w") as f:
        f.write(f"subjectAltName={sans}\nextendedKeyUsage=serverAuth\n")
    run("openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
        "-out", crt, "-days", "2", "-extfile", ext)
    return ca_crt, crt, key


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _read_chunked(self):
        """The decoded body, or None when the chunked framing is broken or cut short."""
        body = b""
        while True:
            size_line = self.rfile.readline(1024).split(b";")[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                self.close_connection = True
                return None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return body
            chunk = self.rfile.read(size + 2)
            if len(chunk) != size + 2:
                self.close_connection = True
                return None
            body += chunk[:size]

    def _reply(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            body_in = self._read_chunked()
        else:
            length = int(self.headers.get("Content-Length") or 0)
            body_in = self.rfile.read(length) if length else b""
        self.server.origin.requests.append(
            {"method": self.command, "path": self.path, "host": self.headers.get("Host"),
             "headers": dict(self.headers), "body": body_in,
             "peer": self.client_address[1]})  # the proxy's upstream connection (its port)
        if self.path.startswith("/bytes/"):
            body = b"x" * int(self.path.split("/")[2])
        else:
            body = f"{self.server.origin.name} host={self.headers.get('Host')} path={self.path}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _reply


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog is 5: with hundreds of connections at
    # once the origin, not the proxy, would drop handshakes and stall them.
    request_queue_size = 1024

    def __init__(self, addr, family):
        self.address_family = family
        super().__init__(addr, _Handler)


class Origin:
    """An HTTP(S) origin on (host, port); port 0 picks a free one."""

    def __init__(self, name, host="127.0.0.1", port=0, tls=None, tls_setup=None):
        self.name = name
        self.requests = []
        self.connections = 0
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.server = _Server((host, port), family)
        self.server.origin = self
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            if tls_setup:
                tls_setup(ctx)  # e.g. a server that only speaks old TLS, or weak keys
            ctx.load_cert_chain(tls[0], tls[1])
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.host = host
        self.port = self.server.server_address[1]
        orig_get_request = self.server.get_request

        def counting_get_request():
            conn = orig_get_request()
            self.connections += 1
            return conn

        self.server.get_request = counting_get_request
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class RawListener:
    """Counts TCP connections (an 'attacker' address that must never be reached)."""

    def __init__(self, host, port):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.connections = 0
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self._stop:
            try:
                c, _ = self.sock.accept()
                self.connections += 1
                c.close()
            except socket.timeout:
                continue
            except OSError:
                return

    def close(self):
        self._stop = True
        self.thread.join(timeout=2)
        self.sock.close()


class TcpOrigin:
    """A raw TCP origin on 127.0.0.1 for origins that misbehave on purpose:
    each accepted connection is served by `serve(conn)` on a thread of its
    own, and closed after it."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def serve(self, conn):
        raise NotImplementedError

    def _run(self):
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve_then_close, args=(c,), daemon=True).start()

    def _serve_then_close(self, c):
        c.settimeout(5)
        try:
            self.serve(c)
        except OSError:
            pass
        finally:
            c.close()
            self.connection_closed()

    def connection_closed(self):
        """Called after each connection is closed (a signal for tests)."""

    def close(self):
        self._stop = True
        self.thread.join(timeout=2)
        self.sock.close()

