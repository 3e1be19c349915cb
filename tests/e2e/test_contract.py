"""Corners of the documented contract that no other module exercises: allow_tcp
by name for a protocol whose server speaks first, DNS over IPv6 and while the
daemon is down, connections to egressd's own ports, and `policy reload` being
all or nothing across sandboxes."""
import os
import socket
import threading

from conftest import write_policy
from fakedns import build_query
from netns_helpers import Agent


class BannerServer:
    """A server that speaks first (like SMTP or SSH): a banner on accept, then
    an echo of one line. Records what it received, per connection."""

    def __init__(self, host="127.0.0.1"):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.received = []
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with c:
                c.settimeout(10)
                try:
                    c.sendall(b"220 banner.test ready\r\n")
                    line = c.recv(1024)
                    self.received.append(line)
                    c.sendall(b"echo " + line)
                except OSError:
                    pass

    def close(self):
        self.sock.close()
        self.thread.join(timeout=5)


SPEAKS_SECOND = """
import socket
s = socket.create_connection(("127.0.0.1", {port}), timeout=5)
banner = s.recv(1024)     # the server speaks first: nothing sent yet
s.sendall(b"hello\\r\\n")
print(banner.decode().strip(), "|", s.recv(1024).decode().strip())
"""


def test_allow_tcp_by_name_with_a_server_that_speaks_first(env):
    server = BannerServer()
    try:
        env.dns.records["banner.test"] = ["127.0.0.1"]
        write_policy(env.daemon.policy_dir, "tcp-by-name", allowed_hosts=["allowed.test"],
                     allow_tcp=[f"banner.test:{server.port}"])
        sb = env.sandbox("tcp-by-name")
        r = sb.python(SPEAKS_SECOND.format(port=server.port))
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "220 banner.test ready | echo hello", r.stdout
        assert server.received == [b"hello\r\n"]
        assert server.connections == 1
        # The same port under a policy without that allow_tcp entry: egressd
        # waits for the client's first bytes to classify them, the client waits
        # for the banner and gives up; the server never hears from the sandbox.
        write_policy(env.daemon.policy_dir, "tcp-none", allowed_hosts=["allowed.test"])
        other = env.sandbox("tcp-none")
        r = other.python(SPEAKS_SECOND.format(port=server.port))
        assert r.returncode != 0 and "timed out" in r.stderr, r.stderr
        assert server.connections == 1 and server.received == [b"hello\r\n"]
    finally:
        server.close()
        env.dns.records.pop("banner.test", None)


def test_connection_to_the_proxy_port_from_outside_any_sandbox_is_refused(env):
    before = len(env.http.requests)
    with socket.create_connection(("127.0.0.1", env.daemon.proxy_port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n")
        try:
            data = s.recv(4096)
        except ConnectionResetError:
            data = b""
    assert data == b""  # no original destination: closed, never forwarded anywhere
    assert len(env.http.requests) == before


def test_egressds_own_ports_are_never_upstreams(env):
    sb = env.sandbox("open")
    dns_port = env.daemon.instances()[sb.instance]["dns_port"]
    for port in (env.daemon.proxy_port, dns_port):
        r = sb.curl("-i", f"http://allowed.test:{port}/loop")
        assert r.stdout.startswith("HTTP/1.1 403"), (port, r.stdout, r.stderr)
        assert "egressd" in r.stdout
    # The host is allowed; the address it resolves to is egressd's own.
    assert sb.stats()["proxy"]["requests_denied"] == 2


def test_dns_over_ipv6_udp_and_tcp(env):
    agent = Agent(env.daemon.run_prefix("--policy", "open", "--instance", "dns6", "--netns", "host"))
    try:
        assert agent.ask("dns", "allowed.test", "::1", "udp") == "rcode=0 127.0.0.1"
        assert agent.ask("dns", "allowed.test", "::1", "tcp") == "rcode=0 127.0.0.1"
        assert agent.ask("dns", "denied.test", "::1", "udp") == "rcode=3"
    finally:
        assert agent.close() == 0


def test_dns_while_the_daemon_is_down_goes_nowhere(env):
    sb = env.sandbox("open")
    query = build_query(0x1234, "allowed.test")
    code = f"""
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.connect(("127.0.0.1", 53))
try:
    s.send({query!r})
    print("answer", s.recv(4096)[:2].hex())
except OSError as e:
    print(type(e).__name__)
"""
    assert sb.python(code).stdout.strip() == "answer 1234"
    seen = len(env.dns.queries)
    env.daemon.kill9()
    try:
        out = sb.python(code).stdout.strip()
        # Redirected to egressd's closed DNS port: refused or unanswered, never relayed.
        assert out in ("ConnectionRefusedError", "TimeoutError"), out
        assert len(env.dns.queries) == seen
    finally:
        env.daemon.start()
    assert sb.python(code).stdout.strip() == "answer 1234"


def test_policy_reload_is_all_or_nothing_across_sandboxes(env):
    d = env.daemon.policy_dir
    write_policy(d, "reload-a", allowed_hosts=["allowed.test"])
    write_policy(d, "reload-b", allowed_hosts=["other.test"])
    a, b = env.sandbox("reload-a"), env.sandbox("reload-b")
    url = f"http://allowed.test:{env.http.port}/"
    try:
        assert a.curl("-o", "/dev/null", "-w", "%{http_code}", url).stdout == "200"
        # A's file now denies allowed.test, B's file is broken: nothing changes.
        write_policy(d, "reload-a", allowed_hosts=["other.test"])
        with open(os.path.join(d, "reload-b.yaml"), "w") as f:
            f.write("name: reload-b\nallowed_hosts: [\n")
        r = env.daemon.ctl("policy", "reload", check=False)
        assert r.returncode != 0 and "reload-b" in r.stderr, r.stderr
        assert a.curl("-o", "/dev/null", "-w", "%{http_code}", url).stdout == "200"
        assert env.daemon.instances()[b.instance]["policy"] == "reload-b"
        # Fixed: both change together.
        write_policy(d, "reload-b", allowed_hosts=["allowed.test"])
        env.daemon.ctl("policy", "reload")
        assert a.curl("-o", "/dev/null", "-w", "%{http_code}", url).stdout == "403"
        assert b.curl("-o", "/dev/null", "-w", "%{http_code}", url).stdout == "200"
    finally:
        for name in ("reload-a", "reload-b"):  # a broken file would break later reloads
            os.remove(os.path.join(d, f"{name}.yaml"))
