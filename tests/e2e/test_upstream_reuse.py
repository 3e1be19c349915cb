"""Upstream connections outlive their client's (userspace/proxy/upstream_pool.h):
a clean upstream left by one client connection of a sandbox serves the next
request of that sandbox to the same host, port and address, plain or
intercepted; never another sandbox's, never after it closed, a challenge
for authentication or a second of idleness. Which upstream connection
carried a request is the origin's view: the proxy's source port."""
import os
import socket
import struct
import threading
import time

import pytest

from conftest import Sandbox, write_policy
from netns_helpers import Agent
from origins import Origin
from scripted_origin import ScriptedOrigin, read_head
from test_proxy_capacity import FdLimitedDaemon, fd_count, wait_for
from test_tls_intercept import sandbox_ca, write_tls_policy
from upstream_certs import make_server_cert


@pytest.fixture(scope="module")
def reuse_env(env):
    write_tls_policy(env, "reuse-intercept", ["allowed.test"])
    with open(os.path.join(env.daemon.policy_dir, "reuse-plain.yaml"), "w") as f:
        f.write('name: reuse-plain\nallowed_hosts: ["allowed.test"]\n')
    return env


def proxy_status(env):
    return env.daemon.status()["proxy"]


def wait_pooled(env, predicate, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pooled = proxy_status(env)["pooled_upstreams"]
        if predicate(pooled):
            return pooled
        time.sleep(0.02)
    raise AssertionError(f"pooled_upstreams stayed {pooled}")


def peers(origin, before):
    return [q["peer"] for q in origin.requests[before:]]


def test_an_intercepted_upstream_serves_the_next_client_connection(reuse_env, tmp_path):
    env = reuse_env
    sb = env.sandbox("reuse-intercept")
    ca = sandbox_ca(env, sb, tmp_path)
    url = f"https://allowed.test:{env.https.port}"
    reused = proxy_status(env)["upstream_reused"]
    before, conns = len(env.https.requests), env.https.connections
    for i in range(3):  # three curl processes: three client connections
        r = sb.curl("--cacert", ca, f"{url}/r{i}")
        assert r.returncode == 0 and f"path=/r{i}" in r.stdout, r.stderr
    seen = peers(env.https, before)
    assert len(seen) == 3 and len(set(seen)) == 1, seen
    assert env.https.connections - conns == 1
    assert proxy_status(env)["upstream_reused"] - reused == 2
    st = sb.stats()["proxy"]
    assert st["tls_intercepted"] == 3 and st["requests_allowed"] == 3, st


def test_connection_close_stays_between_client_and_egressd(reuse_env):
    env = reuse_env
    sb = env.sandbox("reuse-plain")
    before = len(env.http.requests)
    for i in range(2):
        r = sb.curl("-i", "-H", "Connection: close", "-w", " %{http_code}",
                    f"http://allowed.test:{env.http.port}/close{i}")
        assert r.returncode == 0 and r.stdout.endswith(" 200"), r.stdout + r.stderr
        # ... and egressd tells the client it closes, in the response head.
        head = r.stdout.split("\n\n")[0].lower()  # text mode: CRLF reads as LF
        assert "\nconnection: close" in head, r.stdout
    got = env.http.requests[before:]
    assert [q["path"] for q in got] == ["/close0", "/close1"]
    # The client's "close" is egressd's to honour; the upstream stays open.
    assert all("Connection" not in q["headers"] for q in got), got
    assert len(set(peers(env.http, before))) == 1


def test_sandboxes_never_share_an_upstream(reuse_env):
    env = reuse_env
    a, b = env.sandbox("reuse-plain"), env.sandbox("reuse-plain")
    before = len(env.http.requests)
    for sb in (a, b, a):
        r = sb.curl(f"http://allowed.test:{env.http.port}/who")
        assert r.returncode == 0, r.stderr
    first_a, first_b, second_a = peers(env.http, before)
    assert first_b not in (first_a, second_a)
    assert second_a == first_a


def test_a_sandbox_in_its_own_namespace_reuses_its_upstream(reuse_env):
    """`egressctl run` (a network namespace of its own): the upstream connection
    of one client connection serves the next, to an origin in another namespace;
    another sandbox's request to it opens its own."""
    env = reuse_env
    ns = env.origin_netns()
    port = env.netns_port
    write_policy(env.daemon.policy_dir, "reuse-ns", allowed_hosts=["origin.test"])
    reused = proxy_status(env)["upstream_reused"]
    agent = Agent(env.daemon.run_prefix("--policy", "reuse-ns", "--instance", "reuse-ns"))
    other = Agent(env.daemon.run_prefix("--policy", "reuse-ns", "--instance", "reuse-ns2"))
    try:
        answers = [agent.ask("http", "origin.test", port, ns.ip, "/peer") for _ in range(3)]
        assert all(a.startswith("200 netns-origin ") for a in answers), answers
        ports = {a.split("peer=")[1] for a in answers}
        assert len(ports) == 1, answers  # one upstream connection, three clients
        assert proxy_status(env)["upstream_reused"] - reused == 2
        theirs = other.ask("http", "origin.test", port, ns.ip, "/peer")
        assert theirs.startswith("200 ") and theirs.split("peer=")[1] not in ports, theirs
    finally:
        assert agent.close() == 0
        assert other.close() == 0


def test_an_idle_pooled_upstream_is_closed_within_two_seconds(reuse_env):
    env = reuse_env
    sb = env.sandbox("reuse-plain")
    before = len(env.http.requests)
    assert sb.curl(f"http://allowed.test:{env.http.port}/idle1").returncode == 0
    wait_pooled(env, lambda n: n == 0, timeout=5)
    assert sb.curl(f"http://allowed.test:{env.http.port}/idle2").returncode == 0
    first, second = peers(env.http, before)
    assert first != second


def keep_alive_origin(status, close_after=None):
    """Answers one request per connection with `status`, keeping the
    connection; closes it once `close_after` (an Event) is set."""

    def script(c):
        read_head(c)
        reason = {200: "OK", 401: "Unauthorized"}[status]
        extra = 'WWW-Authenticate: NTLM\r\n' if status == 401 else ''
        c.send(f"HTTP/1.1 {status} {reason}\r\n{extra}Content-Length: 2\r\n\r\nok".encode())
        if close_after is not None:
            close_after.wait(10)
        else:
            c.recv_until_eof(timeout=10)

    return script


def test_an_upstream_that_closed_while_pooled_is_not_used(reuse_env):
    env = reuse_env
    sb = env.sandbox("reuse-plain")
    closing = threading.Event()
    origin = ScriptedOrigin(keep_alive_origin(200, close_after=closing))
    try:
        url = f"http://allowed.test:{origin.port}/"
        r = sb.curl("-w", " %{http_code}", url)
        assert r.stdout.endswith(" 200"), r.stdout + r.stderr
        wait_pooled(env, lambda n: n >= 1, timeout=2)
        closing.set()  # the origin closes the pooled connection
        assert origin.wait_finished(1)
        r = sb.curl("-w", " %{http_code}", url)
        assert r.stdout.endswith(" 200"), r.stdout + r.stderr
        assert len(origin.conns) == 2 and not origin.errors, origin.errors
    finally:
        closing.set()
        origin.close()


def closes_the_second_request(how):
    """The first connection answers one request, then reads the next one sent
    on it (from the pool) and ends without a word: closed ("close") or reset
    ("reset"), as an origin whose idle timeout struck just then. Any later
    connection answers every request."""
    served = []

    def script(c):
        first = not served
        served.append(c)
        while True:
            head = read_head(c)
            if head is None:
                return
            if "Content-Length: 4" in head:
                c.recv_exactly(4)
            if first and len(c.received().split(b"\r\n\r\n")) > 2:
                if how == "reset":  # RST instead of FIN
                    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                      struct.pack("ii", 1, 0))
                c.sock.close()
                return
            c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    return script


@pytest.mark.parametrize("how", ["close", "reset"])
def test_a_get_whose_pooled_upstream_closes_goes_again_on_a_new_one(reuse_env, how):
    env = reuse_env
    sb = env.sandbox("reuse-plain")
    origin = ScriptedOrigin(closes_the_second_request(how))
    try:
        url = f"http://allowed.test:{origin.port}/"
        assert sb.curl("-w", " %{http_code}", url).stdout.endswith(" 200")
        wait_pooled(env, lambda n: n >= 1, timeout=2)
        resent = proxy_status(env)["requests_resent"]
        r = sb.curl("-w", " %{http_code}", url + "again")
        # The client never learns: its one request got its answer.
        assert r.returncode == 0 and r.stdout.endswith("ok 200"), r.stdout + r.stderr
        assert proxy_status(env)["requests_resent"] - resent == 1
        assert len(origin.conns) == 2 and not origin.errors, origin.errors
        # Sent on the pooled connection, then whole again on a new one.
        assert origin.conns[0].received().count(b"GET /again ") == 1
        assert origin.conns[1].received().startswith(b"GET /again HTTP/1.1\r\n")
    finally:
        origin.close()


def test_an_intercepted_get_whose_pooled_upstream_closes_goes_again(reuse_env, tmp_path):
    env = reuse_env
    crt, key = make_server_cert(str(tmp_path), "allowed.test", env.ca)
    origin = ScriptedOrigin(closes_the_second_request("close"), tls=(crt, key))
    try:
        sb = env.sandbox("reuse-intercept")
        ca = sandbox_ca(env, sb, tmp_path)
        url = f"https://allowed.test:{origin.port}/"
        assert sb.curl("--cacert", ca, "-w", " %{http_code}", url).stdout.endswith(" 200")
        wait_pooled(env, lambda n: n >= 1, timeout=2)
        resent = proxy_status(env)["requests_resent"]
        r = sb.curl("--cacert", ca, "-w", " %{http_code}", url + "again")
        assert r.returncode == 0 and r.stdout.endswith("ok 200"), r.stdout + r.stderr
        assert proxy_status(env)["requests_resent"] - resent == 1
        assert len(origin.conns) == 2 and not origin.errors, origin.errors
    finally:
        origin.close()


def test_a_post_whose_pooled_upstream_closes_is_not_sent_again(reuse_env):
    env = reuse_env
    sb = env.sandbox("reuse-plain")
    origin = ScriptedOrigin(closes_the_second_request("close"))
    try:
        url = f"http://allowed.test:{origin.port}/"
        assert sb.curl("-w", " %{http_code}", url).stdout.endswith(" 200")
        wait_pooled(env, lambda n: n >= 1, timeout=2)
        resent = proxy_status(env)["requests_resent"]
        r = sb.curl("-w", " %{http_code}", "--data-binary", "body", url + "post")
        # Not safe to send twice: the client sees its connection end, as it
        # would without egressd, and decides for itself.
        assert r.returncode == 52 and r.stdout.endswith(" 000"), r.stdout + r.stderr
        assert proxy_status(env)["requests_resent"] == resent
        assert len(origin.conns) == 1
        assert origin.conns[0].received().count(b"POST /post ") == 1
    finally:
        origin.close()


# In the sandbox: for each body size, a GET to other.test (its upstream is
# pooled when the connection ends), then on a new connection a POST to
# allowed.test with that body pipelined with a GET to other.test. Prints
# how many 200s each pipelined connection got.
PIPELINED_POST_THEN_OTHER_HOST = r"""
import socket, time

def exchange(data):
    s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    s.sendall(data)
    got = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    s.close()
    return got.count(b"HTTP/1.1 200")

for size in range(260_000, 660_000, 10_000):
    exchange(b"GET /pooled HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n")
    time.sleep(0.01)  # best effort: its upstream reaches the pool first
    body = b"a" * (size - 8) + b"SMUGGLED"
    print(exchange(b"POST /big HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: %d\r\n\r\n" % size
                   + body + b"GET /b HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n"))
"""


def test_an_unsent_body_never_reaches_the_next_hosts_pooled_upstream(reuse_env):
    """A response came while its request's body was still going out (the
    origin answered without reading it); the client's next request, for
    another host, takes a pooled upstream: the rest of that body is dropped,
    never sent ahead of the next head. Which of the retired upstream's
    operations completes last decides whether the pooled upstream is taken
    before or after that drop: many bodies of several sizes vary it."""
    env = reuse_env
    write_policy(env.daemon.policy_dir, "reuse-two", allowed_hosts=["allowed.test", "other.test"])
    sb = env.sandbox("reuse-two")

    def script(c):
        while True:
            head = read_head(c)
            if head is None:
                return
            if head.startswith("POST"):
                # Answered at once, the body unread: a server that does so
                # closes the connection (here once the proxy has).
                c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                c.recv_until_eof(timeout=10)
                return
            c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    origin = ScriptedOrigin(script)
    try:
        r = sb.python(PIPELINED_POST_THEN_OTHER_HOST.replace("PORT", str(origin.port)), timeout=120)
        assert r.returncode == 0, r.stderr
        # The POST's answer, then the GET's, or (the answer came before the
        # whole body did) the POST's alone and the end of the connection.
        counts = r.stdout.split()
        assert len(counts) == 40 and set(counts) <= {"1", "2"}, (r.stdout, r.stderr)
        assert "2" in counts  # the GET after a POST was forwarded at least once
        gets = [c.received() for c in origin.conns if c.received().startswith(b"GET ")]
        for got in gets:
            assert b"SMUGGLED" not in got and b"aaaa" not in got, got[:300]
    finally:
        origin.close()


def test_an_authentication_challenge_keeps_the_upstream_to_its_client(reuse_env):
    env = reuse_env
    sb = env.sandbox("reuse-plain")
    origin = ScriptedOrigin(keep_alive_origin(401))
    try:
        url = f"http://allowed.test:{origin.port}/"
        for _ in range(2):
            r = sb.curl("-w", " %{http_code}", url)
            assert r.stdout.endswith(" 401"), r.stdout + r.stderr
        assert origin.wait_finished(2)  # each upstream closed with its client
        assert len(origin.conns) == 2
    finally:
        origin.close()


def challenge_then_ok(c):
    """401 (NTLM) to a connection's first request, 200 to the next ones."""
    first = True
    while read_head(c) is not None:
        if first:
            c.send(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: NTLM\r\n"
                   b"Content-Length: 2\r\n\r\nno")
            first = False
        else:
            c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


def closed_or_pooled(env, origin, timeout=5):
    """What became of the upstream of a client connection that just ended:
    "closed" (the origin's script saw the end) or "pooled"."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if origin.wait_finished(1, timeout=0.02):
            return "closed"
        if proxy_status(env)["pooled_upstreams"] > 0:
            return "pooled"
    raise AssertionError("the upstream was neither closed nor pooled")


def test_an_upstream_that_authenticated_its_client_is_never_pooled(reuse_env):
    """401 then 200 on one connection (an NTLM handshake completing): that
    upstream carries the client's identity; the next client connection of
    the sandbox does not get it."""
    env = reuse_env
    sb = env.sandbox("reuse-plain")
    origin = ScriptedOrigin(challenge_then_ok)
    try:
        url = f"http://allowed.test:{origin.port}/"
        # One curl, two requests on its one connection: 401, then 200.
        r = sb.curl("-w", " %{http_code}\n", url + "a", url + "b")
        assert r.stdout == "no 401\nok 200\n", r.stdout
        assert len(origin.conns) == 1
        assert closed_or_pooled(env, origin) == "closed"  # with its client
        r = sb.curl("-w", " %{http_code}", url + "c")
        assert r.stdout.endswith(" 401"), r.stdout  # a new connection's first request
        assert len(origin.conns) == 2
    finally:
        origin.close()


def test_a_request_authenticating_the_connection_keeps_its_upstream(reuse_env):
    """Authorization: NTLM (or Negotiate) on a request: its upstream serves
    no other client connection, whatever it answers."""
    env = reuse_env
    sb = env.sandbox("reuse-plain")
    origin = ScriptedOrigin(keep_alive_origin(200))
    try:
        url = f"http://allowed.test:{origin.port}/"
        r = sb.curl("-w", " %{http_code}", "-H", "Authorization: NTLM TlRMTVNTUAABAAAA", url)
        assert r.stdout.endswith(" 200"), r.stdout
        assert closed_or_pooled(env, origin) == "closed"
    finally:
        origin.close()


IDLE_INTERCEPTED_CLIENT = r"""
import socket, ssl, time
ctx = ssl.create_default_context(cafile=CA)
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", PORT), timeout=10),
                    server_hostname="allowed.test")
s.sendall(b"GET /idle HTTP/1.1\r\nHost: allowed.test\r\n\r\n")
got = b""
while b"\r\n\r\n" not in got:
    got += s.recv(4096)
print(got.split(b"\r\n")[0].decode())
time.sleep(1.5)  # what is tested: the upstream's idle time before the client leaves
s.close()
"""


def test_an_upstream_idle_too_long_before_its_client_left_is_not_pooled(reuse_env, tmp_path):
    """Intercepted connections are not parked: one quiet for more than the
    pool's second before its client closes gives its upstream no second
    life in the pool (the origin's keep-alive timeout may be near)."""
    env = reuse_env
    sb = env.sandbox("reuse-intercept")
    ca = sandbox_ca(env, sb, tmp_path)
    before = env.https.connections
    code = IDLE_INTERCEPTED_CLIENT.replace("CA", repr(ca)).replace("PORT", str(env.https.port))
    r = sb.python(code)
    assert r.returncode == 0 and r.stdout.strip() == "HTTP/1.1 200 OK", (r.stdout, r.stderr)
    r = sb.curl("--cacert", ca, "-w", " %{http_code}", f"https://allowed.test:{env.https.port}/next")
    assert r.stdout.endswith(" 200"), r.stdout + r.stderr
    assert env.https.connections - before == 2


KEEP_ALIVE_CLIENTS = """
import socket, sys
socks = []
for i in range({n}):
    s = socket.create_connection(("127.0.0.1", {port}), timeout=10)
    s.sendall(b"GET /k%d HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n\\r\\n" % i)
    head = b""
    while b"\\r\\n\\r\\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            break
        head += chunk
    print(head.split(b" ")[1].decode() if head else "closed", flush=True)
    socks.append(s)  # held open: its upstream stays in use
for s in socks:
    s.close()
"""


def test_idle_pooled_upstreams_give_their_descriptors_up_first(env, tmp_path):
    limit = fd_count(env.daemon.proc.pid) + 24
    d = FdLimitedDaemon(limit, str(tmp_path), env.dns.address)
    first, second = Origin("first"), Origin("second")
    sb = None
    try:
        d.start()
        pid = d.proc.pid
        write_policy(d.policy_dir, "open")
        sb = Sandbox(d, "open")
        # Six upstreams to the first origin, left idle in the pool as their
        # clients close together.
        r = sb.python(KEEP_ALIVE_CLIENTS.format(n=6, port=first.port))
        assert r.stdout.split() == ["200"] * 6, (r.stdout, r.stderr)
        wait_for(lambda: d.status()["proxy"]["pooled_upstreams"] >= 6, timeout=2, what="6 pooled")
        free = limit - fd_count(pid)
        # More connections to the second origin than the free descriptors
        # allow (2 each), fewer than they allow once the pool's are given up.
        k = free // 2 + 1
        assert 2 * k <= free + 6 - 2, (free, k)
        r = sb.python(KEEP_ALIVE_CLIENTS.format(n=k, port=second.port))
        assert r.stdout.split() == ["200"] * k, (free, r.stdout, r.stderr)
        assert d.status()["proxy"]["refused_no_fd"] == 0
    except BaseException:
        print("DAEMONLOG", "\n".join(d.history[-60:]), "RC", d.proc.poll())
        raise
    finally:
        if sb:
            sb.cleanup()
        d.cleanup()
        first.close()
        second.close()
