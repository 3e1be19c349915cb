"""What a host name alone cannot judge.

- Under a deny list (denied_hosts, no allowed_hosts), a connection or request
  that names no host (TLS without SNI, an IP literal as SNI or Host) could
  reach a denied host's address: refused unless allow_tcp covers the address
  or the policy says allow_unnamed.
- A body on GET or HEAD is a second request to an upstream that ignores it:
  refused (400) unless allow_get_body lists the host.
- An SNI with a trailing dot is judged without it, like a Host.
- HTTP/1.0 with Transfer-Encoding: 400, nothing forwarded.

The origins log what they receive: that log is the evidence.
"""
import os

import pytest

from audit_events import wait_events
from raw_client import raw_exchange
from conftest import write_policy
from origins import Origin, TcpOrigin






def paths(origin, since=0):
    return [r["path"] for r in origin.requests[since:]]




def tls_get(sb, port, path, servername=None, connect="127.0.0.1"):
    """GET `path` over TLS with openssl s_client, which sends the SNI exactly as
    given (None: no SNI at all). Returns (returncode, stdout)."""
    sni = ["-servername", servername] if servername else ["-noservername"]
    request = f"GET {path} HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n"
    r = sb.run("openssl", "s_client", "-quiet", "-verify_quiet", "-connect", f"{connect}:{port}",
               *sni, input=request)
    return r.returncode, r.stdout


class BodyIgnoringOrigin(TcpOrigin):
    """An HTTP origin that, like some real servers, ignores a body on GET and
    HEAD: whatever follows their head is parsed as the next request. Logs
    every request it parses."""

    def __init__(self):
        self.requests = []
        super().__init__()

    def serve(self, c):
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                chunk = c.recv(4096)
                if not chunk:
                    return
                buf += chunk
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            method, path = lines[0].split(" ")[:2]
            fields = dict((k.strip().lower(), v.strip())
                          for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l))
            self.requests.append({"method": method, "path": path, "host": fields.get("host")})
            if method not in ("GET", "HEAD"):
                length = int(fields.get("content-length", "0"))
                while len(buf) < length:
                    buf += c.recv(4096)
                buf = buf[length:]
            body = f"ignoring-origin path={path}\n".encode()
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)


@pytest.fixture(scope="module")
def setup(env):
    """Policies, and origins on 127.0.0.2 at the ports of env's origins (for
    allow_tcp entries naming an address other than the one connected to)."""
    s = type("Setup", (), {})()
    d = env.daemon.policy_dir
    s.alt_http = Origin("alt-http", host="127.0.0.2", port=env.http.port)
    crt = os.path.join(env.daemon.workdir, "server.crt")
    key = os.path.join(env.daemon.workdir, "server.key")
    s.alt_https = Origin("alt-https", host="127.0.0.2", port=env.https.port, tls=(crt, key))
    s.ignoring = BodyIgnoringOrigin()
    try:
        write_policy(d, "denylist", denied_hosts=["denied.test"])
        write_policy(d, "unnamed", denied_hosts=["denied.test"], allow_unnamed="true")
        write_policy(d, "bytcp", denied_hosts=["denied.test"],
                     allow_tcp=[f"127.0.0.2:{env.http.port}", f"127.0.0.2/32:{env.https.port}"])
        write_policy(d, "getbody", denied_hosts=["denied.test"], allow_get_body=["allowed.test"])
        write_policy(d, "denylist-audit", mode="audit", denied_hosts=["denied.test"])
        yield s
    finally:
        s.alt_http.close()
        s.alt_https.close()
        s.ignoring.close()


# --- connections and requests that name no host --------------------------------

def test_ip_literal_host_is_refused_under_a_deny_list(env, setup):
    sb = env.sandbox("denylist")
    before, before6 = len(env.http.requests), len(env.http6.requests)
    r = sb.curl("-i", f"http://127.0.0.1:{env.http.port}/literal-host")
    assert r.stdout.startswith("HTTP/1.1 403"), r.stdout + r.stderr
    assert "names no host" in r.stdout
    r = sb.curl("-g", "-i", f"http://[::1]:{env.http6.port}/literal-host-v6")
    assert r.stdout.startswith("HTTP/1.1 403"), r.stdout + r.stderr
    assert paths(env.http, before) == [] and paths(env.http6, before6) == []
    assert sb.stats()["proxy"]["requests_denied"] == 2
    got = wait_events(env, sb.instance, 2)
    assert {e["host"] for e in got} == {"127.0.0.1", "::1"}, got
    assert all("names no host" in e["reason"] and e["enforced"] for e in got), got


def test_tls_without_sni_is_refused_under_a_deny_list(env, setup):
    sb = env.sandbox("denylist")
    before = len(env.https.requests)
    rc, out = tls_get(sb, env.https.port, "/no-sni")
    assert rc != 0 and "HTTP/1.1" not in out
    assert paths(env.https, before) == []
    assert sb.stats()["proxy"]["connections_denied"] == 1
    got = wait_events(env, sb.instance, 1)
    assert len(got) == 1 and got[0]["reason"].startswith("TLS without SNI names no host"), got
    assert got[0]["port"] == env.https.port


def test_ip_literal_sni_is_refused_under_a_deny_list(env, setup):
    sb = env.sandbox("denylist")
    before = len(env.https.requests)
    rc, out = tls_get(sb, env.https.port, "/literal-sni", servername="127.0.0.1")
    assert rc != 0 and "HTTP/1.1" not in out
    assert paths(env.https, before) == []
    assert sb.stats()["proxy"]["connections_denied"] == 1
    got = wait_events(env, sb.instance, 1)
    assert len(got) == 1 and got[0]["host"] == "127.0.0.1", got
    assert "IP literal 127.0.0.1 names no host" in got[0]["reason"], got


def test_allow_unnamed_lets_them_through(env, setup):
    sb = env.sandbox("unnamed")
    before, before_tls = len(env.http.requests), len(env.https.requests)
    r = sb.curl(f"http://127.0.0.1:{env.http.port}/unnamed-host")
    assert r.returncode == 0 and "origin-http" in r.stdout, r.stdout + r.stderr
    rc, out = tls_get(sb, env.https.port, "/unnamed-no-sni")
    assert "HTTP/1.1 200" in out, out
    rc, out = tls_get(sb, env.https.port, "/unnamed-literal-sni", servername="127.0.0.1")
    assert "HTTP/1.1 200" in out, out
    assert paths(env.http, before) == ["/unnamed-host"]
    assert paths(env.https, before_tls) == ["/unnamed-no-sni", "/unnamed-literal-sni"]
    # denied_hosts still applies to names.
    r = sb.curl("-i", f"http://denied.test:{env.http.port}/")
    assert r.stdout.startswith("HTTP/1.1 403"), r.stdout + r.stderr
    got = wait_events(env, sb.instance, 1)
    assert [e["host"] for e in got] == ["denied.test"], got


def test_allow_tcp_covers_the_address_named(env, setup):
    sb = env.sandbox("bytcp")
    before, before_tls = len(setup.alt_http.requests), len(setup.alt_https.requests)
    before_main = len(env.http.requests)
    # Connected to 127.0.0.1, naming 127.0.0.2 (in allow_tcp): goes to 127.0.0.2.
    r = sb.curl("-H", "Host: 127.0.0.2", f"http://127.0.0.1:{env.http.port}/tcp-host")
    assert r.returncode == 0 and "alt-http" in r.stdout, r.stdout + r.stderr
    rc, out = tls_get(sb, env.https.port, "/tcp-sni", servername="127.0.0.2")
    assert "alt-https" in out, out
    # Without SNI, to an address allow_tcp lists: passed through untouched.
    rc, out = tls_get(sb, env.https.port, "/tcp-no-sni", connect="127.0.0.2")
    assert "alt-https" in out, out
    assert paths(setup.alt_http, before) == ["/tcp-host"]
    assert paths(setup.alt_https, before_tls) == ["/tcp-sni", "/tcp-no-sni"]
    # 127.0.0.1 is not in allow_tcp.
    r = sb.curl("-i", f"http://127.0.0.1:{env.http.port}/not-covered")
    assert r.stdout.startswith("HTTP/1.1 403"), r.stdout + r.stderr
    assert paths(env.http, before_main) == []


def test_audit_mode_reports_and_lets_through(env, setup):
    sb = env.sandbox("denylist-audit")
    before = len(env.http.requests)
    r = sb.curl(f"http://127.0.0.1:{env.http.port}/audit-literal")
    assert r.returncode == 0 and "origin-http" in r.stdout, r.stdout + r.stderr
    out = raw_exchange(sb, env.http.port,
                       b"GET /audit-body HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 5\r\n"
                       b"Connection: close\r\n\r\nhello")
    assert out.startswith("HTTP/1.1 200"), out
    assert paths(env.http, before) == ["/audit-literal", "/audit-body"]
    got = wait_events(env, sb.instance, 2)
    assert len(got) == 2 and all(e["enforced"] is False for e in got), got
    assert "names no host" in got[0]["reason"] and "allow_get_body" in got[1]["reason"], got


# --- SNI with a trailing dot ----------------------------------------------------

def test_sni_with_trailing_dot_is_judged_without_it(env, setup):
    sb = env.sandbox("denylist")
    before = len(env.https.requests)
    rc, out = tls_get(sb, env.https.port, "/fqdn-sni", servername="allowed.test.")
    assert "HTTP/1.1 200" in out, out
    assert paths(env.https, before) == ["/fqdn-sni"]
    rc, out = tls_get(sb, env.https.port, "/fqdn-denied", servername="denied.test.")
    assert rc != 0 and "HTTP/1.1" not in out
    assert paths(env.https, before) == ["/fqdn-sni"]
    st = sb.stats()["proxy"]
    assert st["tls_passthrough"] == 1 and st["connections_denied"] == 1
    got = wait_events(env, sb.instance, 1)
    assert len(got) == 1 and got[0]["host"] == "denied.test", got
    assert 'denied_hosts entry "denied.test"' in got[0]["reason"], got


# --- bodies on GET and HEAD -----------------------------------------------------

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: denied.test\r\n\r\n"


def test_get_body_smuggle_never_reaches_the_origin(env, setup):
    sb = env.sandbox("denylist")
    origin = setup.ignoring
    before = len(origin.requests)
    out = raw_exchange(sb, origin.port,
                       b"GET /outer HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: %d\r\n\r\n"
                       % len(SMUGGLED) + SMUGGLED)
    # The evidence: what the origin parsed (before the fix: /outer, then
    # /smuggled for denied.test).
    assert origin.requests[before:] == []
    assert out.startswith("HTTP/1.1 400"), out
    assert "allow_get_body" in out
    st = sb.stats()["proxy"]
    assert st["bad_requests"] == 1 and st["requests_allowed"] == 0
    got = wait_events(env, sb.instance, 1)
    assert len(got) == 1 and got[0]["host"] == "allowed.test", got
    assert "GET request with a body" in got[0]["reason"], got


def test_head_and_chunked_get_bodies_are_refused(env, setup):
    sb = env.sandbox("denylist")
    origin = setup.ignoring
    before = len(origin.requests)
    shapes = [
        b"HEAD /h HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: %d\r\n\r\n" % len(SMUGGLED)
        + SMUGGLED,
        b"GET /c HTTP/1.1\r\nHost: allowed.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n" % len(SMUGGLED) + SMUGGLED + b"\r\n0\r\n\r\n",
        b"GET /e HTTP/1.1\r\nHost: allowed.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ]
    for payload in shapes:
        out = raw_exchange(sb, origin.port, payload)
        assert out.startswith("HTTP/1.1 400"), out
    assert origin.requests[before:] == []
    assert sb.stats()["proxy"]["bad_requests"] == len(shapes)


def test_content_length_zero_is_no_body(env, setup):
    sb = env.sandbox("denylist")
    origin = setup.ignoring
    before = len(origin.requests)
    out = raw_exchange(sb, origin.port,
                       b"GET /zero HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 0\r\n"
                       b"Connection: close\r\n\r\n")
    assert out.startswith("HTTP/1.1 200"), out
    assert [r["path"] for r in origin.requests[before:]] == ["/zero"]


def test_allow_get_body_lets_a_listed_host_through(env, setup):
    sb = env.sandbox("getbody")
    before = len(env.http.requests)
    out = raw_exchange(sb, env.http.port,
                       b"GET /with-body HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 5\r\n"
                       b"Connection: close\r\n\r\nhello")
    assert out.startswith("HTTP/1.1 200"), out
    got = env.http.requests[before:]
    assert [(r["method"], r["path"], r["body"]) for r in got] == [("GET", "/with-body", b"hello")]
    # A host the list does not name still gets 400.
    out = raw_exchange(sb, env.http.port,
                       b"GET /other HTTP/1.1\r\nHost: other.test\r\nContent-Length: 5\r\n\r\nhello")
    assert out.startswith("HTTP/1.1 400"), out
    assert paths(env.http, before) == ["/with-body"]


# --- HTTP/1.0 with Transfer-Encoding ----------------------------------------------

def test_http10_with_transfer_encoding_is_refused(env, setup):
    sb = env.sandbox("denylist")
    before = len(env.http.requests)
    out = raw_exchange(sb, env.http.port,
                       b"POST /te10 HTTP/1.0\r\nHost: allowed.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"5\r\nhello\r\n0\r\n\r\n")
    assert out.startswith("HTTP/1.1 400"), out
    assert "Transfer-Encoding in an HTTP/1.0 message" in out
    assert paths(env.http, before) == []
    assert sb.stats()["proxy"]["bad_requests"] == 1
