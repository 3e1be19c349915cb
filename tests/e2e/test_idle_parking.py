"""Idle connections give their relay buffers back (connection_parking.cc):
a keep-alive connection between requests, or a tunnel, quiet for a second
holds no buffer until its next byte from either side (status:
proxy.parked_connections); an intercepted one also gives back its TLS
sides' buffers. Each test checks that parked connections then behave
exactly as busy ones: the next request, bytes the upstream sends first, the
upstream closing, a request for another host, the idle timeout."""
import json
import os
import subprocess
import threading
import time

from bounded import read_line
from conftest import PYTHON, write_policy
from scripted_origin import ScriptedOrigin, read_head
from upstream_certs import make_server_cert

# The idle timeout closes parked connections too (the last test); long
# enough for the others to park and go on.
EGRESSD_FLAGS = {"idle_timeout": 6}

# A client in the sandbox driven line by line from stdin; each command
# prints one JSON line.
#   open N PORT          N connections to 127.0.0.1:PORT
#   topen N PORT CA SNI  the same over TLS, verified with CA, for SNI
#   get I|all HOST PATH  a GET on connection I (or each), its status line(s)
#   send I TEXT          TEXT and "\n" on connection I
#   recv I TEXT          waits for TEXT on connection I
#   eof I                waits for the end of connection I, prints how long it took
CLIENT = r"""
import json, socket, sys, time
sys.path.insert(0, E2E_DIR)
from http_wire import status_line
conns = []
def status(c):
    return status_line(c) or "closed"
for line in sys.stdin:
    cmd = line.split()
    if cmd[0] == "open":
        conns = [socket.create_connection(("127.0.0.1", int(cmd[2])), timeout=15)
                 for _ in range(int(cmd[1]))]
        out = len(conns)
    elif cmd[0] == "topen":
        import ssl
        ctx = ssl.create_default_context(cafile=cmd[3])
        conns = [ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(cmd[2])), timeout=15),
                                 server_hostname=cmd[4]) for _ in range(int(cmd[1]))]
        out = len(conns)
    elif cmd[0] == "get":
        which = conns if cmd[1] == "all" else [conns[int(cmd[1])]]
        for c in which:
            c.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (cmd[3], cmd[2])).encode())
        out = [status(c) for c in which]
    elif cmd[0] == "send":
        conns[int(cmd[1])].sendall((cmd[2] + "\n").encode())
        out = "sent"
    elif cmd[0] == "recv":
        c, want, got = conns[int(cmd[1])], cmd[2].encode(), b""
        while want not in got:
            d = c.recv(4096)
            if not d:
                break
            got += d
        out = got.decode()
    elif cmd[0] == "eof":
        t0 = time.monotonic()
        try:
            d = conns[int(cmd[1])].recv(4096)
        except OSError as e:
            d = repr(e).encode()
        out = {"after": round(time.monotonic() - t0, 2), "data": d.decode()}
    print(json.dumps(out), flush=True)
"""


class Client:
    def __init__(self, sandbox):
        code = f"E2E_DIR = {os.path.dirname(os.path.abspath(__file__))!r}\n" + CLIENT
        self.proc = sandbox.popen(PYTHON, "-c", code, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def do(self, command, timeout=30):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        line = read_line(self.proc.stdout, timeout, f"an answer to {command!r}")
        assert line, f"the client ended: {self.proc.stderr.read()}"
        return json.loads(line)

    def close(self):
        self.proc.kill()
        self.proc.wait(timeout=10)


def parked(env):
    return env.daemon.status()["proxy"]["parked_connections"]


def wait_parked(env, n, timeout=10):
    deadline = time.monotonic() + timeout
    while parked(env) != n:
        assert time.monotonic() < deadline, f"{parked(env)} parked connections, not {n}, after {timeout} s"
        time.sleep(0.1)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(next(l for l in f if l.startswith("VmRSS:")).split()[1])


def test_idle_keepalive_connections_park_and_serve_their_next_requests(env):
    sb = env.sandbox("open")
    client = Client(sb)
    n = 200
    try:
        assert client.do(f"open {n} {env.http.port}") == n
        rss_open = rss_kib(env.daemon.proc.pid)
        assert client.do("get all allowed.test /park-first") == ["HTTP/1.1 200 OK"] * n
        rss_busy = rss_kib(env.daemon.proc.pid)
        wait_parked(env, n)
        # What the workers keep for their next connections is unmapped once
        # not needed for a second (RelayBufferPool::Trim): at most 16 each remain.
        deadline = time.monotonic() + 10
        while env.daemon.status()["proxy"]["relay_buffers"] > 16 * os.cpu_count():
            assert time.monotonic() < deadline, env.daemon.status()["proxy"]
            time.sleep(0.1)
        rss_parked = rss_kib(env.daemon.proc.pid)
        print(f"egressd RSS with {n} connections: {rss_open} KiB opened, {rss_busy} KiB after a "
              f"request each, {rss_parked} KiB parked")
        # Each parked connection gave back both relay buffers: it was woken by
        # its next request, served, and parks again once quiet.
        assert client.do("get all allowed.test /park-again") == ["HTTP/1.1 200 OK"] * n
        assert sb.stats()["proxy"]["requests_allowed"] == 2 * n
        wait_parked(env, n)
        assert client.do("get 0 allowed.test /park-third") == ["HTTP/1.1 200 OK"]
    finally:
        client.close()
    wait_parked(env, 0)  # closed connections are not counted
    assert sum("/park-" in p["path"] for p in env.http.requests) == 2 * n + 1


def intercepting_sandbox(env, tmp_path):
    """A sandbox whose HTTPS is intercepted, and its CA's file."""
    write_policy(env.daemon.policy_dir, "park-intercept", allowed_hosts=["allowed.test"],
                 tls='{"intercept": ["*"]}')
    sb = env.sandbox("park-intercept")
    ca = tmp_path / "sandbox-ca.pem"
    ca.write_text(env.daemon.ctl("ca", sb.instance).stdout)
    return sb, str(ca)


def test_idle_intercepted_connections_park_and_serve_their_next_requests(env, tmp_path):
    sb, ca = intercepting_sandbox(env, tmp_path)
    client = Client(sb)
    n = 50
    before = env.https.connections
    try:
        assert client.do(f"topen {n} {env.https.port} {ca} allowed.test") == n
        assert client.do("get all allowed.test /tls-park-first") == ["HTTP/1.1 200 OK"] * n
        wait_parked(env, n)
        # Woken by the next request on the same TLS connection: no new
        # handshake on either side, and quiet again afterwards.
        assert client.do("get all allowed.test /tls-park-again") == ["HTTP/1.1 200 OK"] * n
        st = sb.stats()["proxy"]
        assert st["tls_intercepted"] == n and st["requests_allowed"] == 2 * n, st
        assert env.https.connections - before == n
        wait_parked(env, n)
        assert client.do("get 0 allowed.test /tls-park-third") == ["HTTP/1.1 200 OK"]
    finally:
        client.close()
    wait_parked(env, 0)
    assert sum("/tls-park-" in p["path"] for p in env.https.requests) == 2 * n + 1


class ClosingOrigin(ScriptedOrigin):
    """Answers each request; after the one for /first, closes that
    connection once `close_now` is set (while egressd's side is parked)."""

    def __init__(self, tls=None):
        self.close_now = threading.Event()

        def script(conn):
            head = read_head(conn)
            assert head is not None
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            if "/first" in head:
                self.close_now.wait(20)

        super().__init__(script, tls=tls)


def check_the_upstream_closing_while_parked(env, client, origin, open_command, host):
    """The parked upstream side wakes on the close: the next request on the
    same client connection goes to a new upstream connection."""
    try:
        assert client.do(open_command) == 1
        assert client.do(f"get 0 {host} /first") == ["HTTP/1.1 200 OK"]
        wait_parked(env, 1)
        origin.close_now.set()
        assert origin.wait_finished(1)
        assert client.do(f"get 0 {host} /second") == ["HTTP/1.1 200 OK"]
    finally:
        client.close()
    assert len(origin.conns) == 2
    assert origin.wait_finished(2)
    assert origin.errors == []


def test_a_parked_intercepted_connection_notices_its_upstream_closing(env, tmp_path):
    origin = ClosingOrigin(tls=make_server_cert(str(tmp_path), "closing", env.ca))
    try:
        sb, ca = intercepting_sandbox(env, tmp_path)
        check_the_upstream_closing_while_parked(
            env, Client(sb), origin, f"topen 1 {origin.port} {ca} allowed.test", "allowed.test")
        assert sb.stats()["proxy"]["tls_intercepted"] == 1
    finally:
        origin.close()
    wait_parked(env, 0)


def test_the_idle_timeout_closes_a_parked_intercepted_connection(env, tmp_path):
    sb, ca = intercepting_sandbox(env, tmp_path)
    client = Client(sb)
    try:
        assert client.do(f"topen 1 {env.https.port} {ca} allowed.test") == 1
        assert client.do("get 0 allowed.test /tls-idle") == ["HTTP/1.1 200 OK"]
        wait_parked(env, 1)
        ended = client.do("eof 0", timeout=20)
        # Closed without a byte of data (with or without close_notify).
        assert ended["data"] == "" or "EOF" in ended["data"], ended
        assert ended["after"] < 10, ended  # --idle-timeout 6, counted from the last byte
    finally:
        client.close()
    assert sb.stats()["proxy"]["idle_timeouts"] == 1
    wait_parked(env, 0)


def test_a_parked_tunnel_relays_what_either_side_sends_first(env):
    push = threading.Event()

    def script(conn):
        assert conn.recv_until(b"hello\n") is not None
        conn.send(b"world\n")
        push.wait(20)
        conn.send(b"pushed-while-parked\n")  # the upstream side wakes first
        assert conn.recv_until(b"again\n", timeout=10) is not None
        conn.send(b"bye\n")

    origin = ScriptedOrigin(script)
    try:
        write_policy(env.daemon.policy_dir, "park-tcp", allowed_hosts=["allowed.test"],
                     allow_tcp=[f"127.0.0.1:{origin.port}"])
        client = Client(env.sandbox("park-tcp"))
        try:
            assert client.do(f"open 1 {origin.port}") == 1
            assert client.do("send 0 hello") == "sent"
            assert client.do("recv 0 world") == "world\n"
            wait_parked(env, 1)
            push.set()
            assert client.do("recv 0 pushed-while-parked") == "pushed-while-parked\n"
            wait_parked(env, 1)  # quiet again: parked again
            assert client.do("send 0 again") == "sent"  # now the client side wakes first
            assert client.do("recv 0 bye") == "bye\n"
            assert client.do("eof 0")["data"] == ""  # the origin closed: so does the tunnel
        finally:
            client.close()
        assert origin.wait_finished(1)
        assert origin.errors == []
    finally:
        origin.close()
    wait_parked(env, 0)


def test_an_upstream_closing_a_parked_connection_is_noticed_and_the_next_request_served(env):
    origin = ClosingOrigin()
    try:
        env.dns.records["closing.test"] = ["127.0.0.1"]
        check_the_upstream_closing_while_parked(
            env, Client(env.sandbox("open")), origin, f"open 1 {origin.port}", "closing.test")
    finally:
        origin.close()
        env.dns.records.pop("closing.test", None)
    wait_parked(env, 0)


def test_a_parked_connection_asking_for_another_host_is_routed_there(env):
    sb = env.sandbox("open")
    client = Client(sb)
    before = env.http.connections
    try:
        assert client.do(f"open 1 {env.http.port}") == 1
        assert client.do("get 0 allowed.test /host-one") == ["HTTP/1.1 200 OK"]
        wait_parked(env, 1)
        # The upstream of the parked connection is retired for the new host's.
        assert client.do("get 0 other.test /host-two") == ["HTTP/1.1 200 OK"]
        assert client.do("get 0 denied.test /host-three") == ["HTTP/1.1 403 Forbidden"]
    finally:
        client.close()
    hosts = {p["path"]: p["host"] for p in env.http.requests if p["path"].startswith("/host-")}
    assert hosts == {"/host-one": "allowed.test", "/host-two": "other.test"}, hosts
    assert env.http.connections - before == 2
    wait_parked(env, 0)


def test_the_idle_timeout_closes_a_parked_connection(env):
    sb = env.sandbox("open")
    client = Client(sb)
    try:
        assert client.do(f"open 1 {env.http.port}") == 1
        assert client.do("get 0 allowed.test /idle") == ["HTTP/1.1 200 OK"]
        wait_parked(env, 1)
        ended = client.do("eof 0", timeout=20)
        assert ended["data"] == "", ended  # closed without a byte
        assert ended["after"] < 10, ended  # --idle-timeout 6, counted from the last byte
    finally:
        client.close()
    assert sb.stats()["proxy"]["idle_timeouts"] == 1
    wait_parked(env, 0)
