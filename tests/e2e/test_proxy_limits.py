"""Limits of the proxy (issue 13): a request head must arrive whole within
--header-timeout (408), an upstream connect must finish within
--connect-timeout (504), a response must begin within --response-timeout
(504), and a head over 64 KiB or 100 fields is 431 (a target over 8 KiB:
414). Each one is counted and recorded as an event; another sandbox is
served meanwhile."""
import socket
import time

from raw_client import raw_exchange
from scripted_origin import ScriptedOrigin, in_sandbox, proxy_events, read_head

EGRESSD_FLAGS = {"header_timeout": 1, "connect_timeout": 1, "response_timeout": 1}


def status_of(response):
    return response.splitlines()[0] if response else ""


def test_slow_request_head_gets_408_and_another_sandbox_is_served(env):
    slow = env.sandbox("open")
    other = env.sandbox("open")
    before = len(env.http.requests)
    result = in_sandbox(slow, env.http.port, """
        t0 = time.monotonic()
        s.sendall(b"GET /slow HTTP/1.1\\r\\nHost: allowed.test\\r\\nX-A: 1\\r\\n")
        # Meanwhile the other sandbox is served (the test runs it below).
        rest, closed = read_until_close(8)
        result.update({"reply": rest.decode("latin-1"), "closed": closed,
                       "after": time.monotonic() - t0})
    """)
    r = other.curl(f"http://allowed.test:{env.http.port}/other")
    assert r.returncode == 0 and "path=/other" in r.stdout, r.stderr
    assert status_of(result["reply"]) == "HTTP/1.1 408 Request Timeout", result
    assert "request head not complete within 1 s" in result["reply"]
    assert result["closed"] and 0.9 <= result["after"] <= 5, result
    assert [q["path"] for q in env.http.requests[before:]] == ["/other"]
    assert slow.stats()["proxy"]["header_timeouts"] == 1
    events = proxy_events(env, slow.instance)
    assert any("request head not complete" in e["reason"] for e in events), events


def test_first_bytes_that_never_complete_are_closed_at_the_header_timeout(env):
    sb = env.sandbox("open")
    result = in_sandbox(sb, env.http.port, """
        t0 = time.monotonic()
        s.sendall(bytes([0x16, 0x03, 0x01]))  # the start of a ClientHello, then nothing
        rest, closed = read_until_close(8)
        result.update({"closed": closed, "after": time.monotonic() - t0})
    """)
    assert result["closed"] and 0.9 <= result["after"] <= 5, result
    events = proxy_events(env, sb.instance)
    assert any("no TLS ClientHello or HTTP request in time" in e["reason"] for e in events), events


def test_an_upstream_that_never_accepts_is_504_at_the_connect_timeout(env):
    # A listener whose accept queue is full: the kernel drops further SYNs,
    # so a connect to it hangs (loopback, no address outside the test).
    full = socket.socket()
    full.bind(("127.0.0.1", 0))
    full.listen(0)
    port = full.getsockname()[1]
    fillers = []
    try:
        for _ in range(3):
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", port))
            fillers.append(c)
        time.sleep(0.2)  # let the handshakes of the fillers land in the queue (no signal exists)
        sb = env.sandbox("open")
        t0 = time.monotonic()
        r = sb.curl("-w", "%{http_code}", f"http://allowed.test:{port}/")
        took = time.monotonic() - t0
        assert r.stdout.endswith("504"), r.stdout + r.stderr
        assert "took longer than 1 s" in r.stdout
        assert took < 5, took
        assert sb.stats()["proxy"]["connect_timeouts"] == 1
        events = proxy_events(env, sb.instance)
        assert any("took longer than 1 s" in e["reason"] for e in events), events
    finally:
        for c in fillers:
            c.close()
        full.close()


def test_an_upstream_that_never_answers_is_504_at_the_response_timeout(env):
    def script(c):
        c.head = read_head(c)
        c.recv_for(4)  # holds the request, answers nothing

    origin = ScriptedOrigin(script)
    try:
        sb = env.sandbox("open")
        r = sb.curl("-w", "%{http_code}", f"http://allowed.test:{origin.port}/wait")
        assert r.stdout.endswith("504"), r.stdout + r.stderr
        assert "sent no response within 1 s" in r.stdout
        assert origin.conns and origin.conns[0].head.startswith("GET /wait ")
        assert sb.stats()["proxy"]["response_timeouts"] == 1
        events = proxy_events(env, sb.instance)
        assert any("sent no response" in e["reason"] for e in events), events
    finally:
        origin.close()


def test_a_response_that_begins_in_time_is_not_cut(env):
    def script(c):
        read_head(c)
        c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nab")
        time.sleep(1.5)  # past the response timeout: the response has begun
        c.send(b"cdef")

    origin = ScriptedOrigin(script)
    try:
        sb = env.sandbox("open")
        r = sb.curl(f"http://allowed.test:{origin.port}/slow-body")
        assert r.returncode == 0 and r.stdout == "abcdef", r.stdout + r.stderr
        assert sb.stats()["proxy"]["response_timeouts"] == 0
    finally:
        origin.close()


def test_head_with_too_many_fields_or_too_large_is_431(env):
    sb = env.sandbox("open")
    before = len(env.http.requests)
    many = "".join(f"X-F{i}: v\r\n" for i in range(101))
    reply = raw_exchange(sb, env.http.port,
                         f"GET / HTTP/1.1\r\nHost: allowed.test\r\n{many}\r\n".encode())
    assert status_of(reply) == "HTTP/1.1 431 Request Header Fields Too Large", reply
    big = "X-Big: " + "v" * (65 * 1024) + "\r\n"
    reply = raw_exchange(sb, env.http.port,
                         f"GET / HTTP/1.1\r\nHost: allowed.test\r\n{big}\r\n".encode())
    assert status_of(reply) == "HTTP/1.1 431 Request Header Fields Too Large", reply
    reply = raw_exchange(sb, env.http.port,
                         f"GET /{'a' * 9000} HTTP/1.1\r\nHost: allowed.test\r\n\r\n".encode())
    assert status_of(reply) == "HTTP/1.1 414 URI Too Long", reply
    # 99 fields and a 60 KiB head are within the limits (the origin, Python's
    # http.server, refuses 100: it counts the empty line).
    fine = "".join(f"X-F{i}: v\r\n" for i in range(96)) + "X-Big: " + "v" * (60 * 1024) + "\r\n"
    reply = raw_exchange(sb, env.http.port,
                         f"GET /fine HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n{fine}\r\n".encode())
    assert status_of(reply) == "HTTP/1.1 200 OK", reply[:200]
    assert [q["path"] for q in env.http.requests[before:]] == ["/fine"]
    assert sb.stats()["proxy"]["heads_too_large"] == 3
