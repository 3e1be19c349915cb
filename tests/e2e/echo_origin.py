"""An HTTP(S) origin on loopback that records every header of every request
as a list (a header sent twice is seen twice), for tests of what handlers
add to requests. Its answers never echo a header's value: a credential
egressd adds must not come back into the sandbox through a test's own origin.

One certificate, signed by the env fixture's test CA, holds every name the
test gives: one origin serves many hosts (all resolve to 127.0.0.1)."""
import datetime
import http.server
import os
import socket
import ssl
import threading

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from upstream_certs import _load_ca


def make_multi_name_cert(directory, label, ca_crt, names):
    """(cert path, key path) for every name in `names`, signed by the test CA."""
    ca_cert, ca_key = _load_ca(ca_crt)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    crt_path = os.path.join(directory, f"{label}.crt")
    key_path = os.path.join(directory, f"{label}.key")
    with open(crt_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return crt_path, key_path


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _reply(self):
        length = int(self.headers.get("Content-Length") or 0)
        body_in = self.rfile.read(length) if length else b""
        origin = self.server.origin
        with origin.lock:
            origin.requests.append({
                "method": self.command, "path": self.path, "host": self.headers.get("Host"),
                "headers": list(self.headers.items()), "body": body_in,
                "peer": self.client_address[1]})
        auth = len(self.headers.get_all("Authorization") or [])
        body = (f"{origin.name} host={self.headers.get('Host')} path={self.path} "
                f"authorization_fields={auth}\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = do_PATCH = _reply


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class EchoOrigin:
    """Records requests; `tls`: (cert, key) for HTTPS."""

    def __init__(self, name, tls=None):
        self.name = name
        self.requests = []
        self.lock = threading.Lock()
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.origin = self
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def seen(self, path_prefix):
        """The requests whose path starts with `path_prefix`."""
        with self.lock:
            return [r for r in self.requests if r["path"].startswith(path_prefix)]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def fields(request, name):
    """Every value of header `name` (any case) the origin received, in order."""
    return [v for k, v in request["headers"] if k.lower() == name.lower()]
