"""HTTP/1.x through the proxy: each request's Host decides."""

from raw_client import raw_exchange




def test_allowed_host_reaches_origin(env):
    sb = env.sandbox("open")
    before = len(env.http.requests)
    r = sb.curl(f"http://allowed.test:{env.http.port}/hello")
    assert r.returncode == 0, r.stderr
    assert "origin-http host=allowed.test" in r.stdout
    assert len(env.http.requests) == before + 1
    st = sb.stats()
    assert st["proxy"]["requests_allowed"] == 1
    assert st["kernel"]["connect_redirected"] == 1


def test_denied_host_gets_403_and_never_reaches_origin(env):
    sb = env.sandbox("open")
    before = len(env.http.requests)
    r = sb.curl("-i", f"http://denied.test:{env.http.port}/secret")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("HTTP/1.1 403")
    assert 'denied.test' in r.stdout and '"open"' in r.stdout
    assert len(env.http.requests) == before
    assert sb.stats()["proxy"]["requests_denied"] == 1


def test_deny_by_default(env):
    sb = env.sandbox("strict")
    r = sb.curl("-i", f"http://other.test:{env.http.port}/")
    assert r.stdout.startswith("HTTP/1.1 403"), r.stdout + r.stderr
    assert "not in allowed_hosts" in r.stdout
    r = sb.curl(f"http://allowed.test:{env.http.port}/")
    assert r.returncode == 0 and "host=allowed.test" in r.stdout


def test_second_keepalive_request_to_denied_host(env):
    sb = env.sandbox("open")
    before = len(env.http.requests)
    out = raw_exchange(sb, env.http.port,
                       b"GET /one HTTP/1.1\r\nHost: allowed.test\r\n\r\n"
                       b"GET /two HTTP/1.1\r\nHost: denied.test\r\n\r\n"
                       b"GET /three HTTP/1.1\r\nHost: allowed.test\r\n\r\n")
    assert out.count("HTTP/1.1 200") == 1
    assert "HTTP/1.1 403" in out
    assert "path=/three" not in out
    paths = [r["path"] for r in env.http.requests[before:]]
    assert paths == ["/one"]  # nothing after the deny was forwarded


def test_requests_for_several_hosts_on_one_connection(env):
    sb = env.sandbox("open")
    out = raw_exchange(sb, env.http.port,
                       b"GET /a HTTP/1.1\r\nHost: allowed.test\r\n\r\n"
                       b"GET /b HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n")
    assert "host=allowed.test path=/a" in out
    assert "host=other.test path=/b" in out


def test_allowed_name_aimed_at_another_address_goes_to_resolved_address(env):
    from origins import RawListener
    attacker = RawListener("127.0.0.2", env.http.port)
    try:
        sb = env.sandbox("open")
        r = sb.curl("--resolve", f"allowed.test:{env.http.port}:127.0.0.2",
                    f"http://allowed.test:{env.http.port}/x")
        assert r.returncode == 0, r.stderr
        assert "origin-http host=allowed.test" in r.stdout  # the real origin answered
        assert attacker.connections == 0
    finally:
        attacker.close()


def test_name_that_does_not_resolve_is_502(env):
    sb = env.sandbox("open")
    before = len(env.http.requests)
    r = sb.curl("-i", f"http://unknown.test:{env.http.port}/")
    assert r.stdout.startswith("HTTP/1.1 502"), r.stdout + r.stderr
    assert len(env.http.requests) == before


# Each shape asks for its own path, so the origin's log says which one got through.
SMUGGLING = {
    "cl_and_te": b"POST /cl_and_te HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 4\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "duplicate_cl": b"POST /duplicate_cl HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 1\r\n"
                    b"Content-Length: 2\r\n\r\nab",
    "obs_fold": b"GET /obs_fold HTTP/1.1\r\nHost: allowed.test\r\nX-A: a\r\n b\r\n\r\n",
    "connect": b"CONNECT allowed.test:443 HTTP/1.1\r\nHost: allowed.test:443\r\n\r\n",
    "absolute_form_mismatch": b"GET http://denied.test/absolute_form_mismatch HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
    "nul_in_header": b"GET /nul_in_header HTTP/1.1\r\nHost: allowed.test\r\nX-A: a\x00b\r\n\r\n",
    "bare_lf": b"GET /bare_lf HTTP/1.1\nHost: allowed.test\n\n",
    "bad_chunk_size": b"POST /bad_chunk_size HTTP/1.1\r\nHost: allowed.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
}


def test_smuggling_shapes_are_refused(env):
    sb = env.sandbox("open")
    before = len(env.http.requests)
    for name, payload in SMUGGLING.items():
        out = raw_exchange(sb, env.http.port, payload)
        if name == "bad_chunk_size":
            # The head was fine and may have gone upstream; the broken body closes the connection.
            assert "HTTP/1.1 200" not in out, name
            continue
        assert out.startswith("HTTP/1.1 400"), f"{name}: {out!r}"
    forwarded = env.http.requests[before:]
    # Only the head of bad_chunk_size may have reached the origin, never a whole body.
    assert all(r["path"] == "/bad_chunk_size" and r["body"] is None for r in forwarded), forwarded
    assert sb.stats()["proxy"]["bad_requests"] == len(SMUGGLING)


def test_post_body_and_chunked_are_forwarded(env):
    sb = env.sandbox("open")
    before = len(env.http.requests)
    r = sb.curl("-d", "payload=1", f"http://allowed.test:{env.http.port}/post")
    assert r.returncode == 0 and "path=/post" in r.stdout, r.stderr
    assert env.http.requests[before]["body"] == b"payload=1"
    # A chunked body (curl sends one when told the encoding), decoded by the origin.
    r = sb.curl("-H", "Transfer-Encoding: chunked", "--data-binary", "chunked-payload",
                f"http://allowed.test:{env.http.port}/chunked")
    assert r.returncode == 0 and "path=/chunked" in r.stdout, r.stderr
    got = env.http.requests[before + 1]
    assert got["headers"].get("Transfer-Encoding") == "chunked" and "Content-Length" not in got["headers"]
    assert got["body"] == b"chunked-payload"


def test_large_download(env):
    sb = env.sandbox("open")
    r = sb.run("sh", "-c", f"curl -sS --noproxy '*' http://allowed.test:{env.http.port}/bytes/10485760 | wc -c")
    assert r.stdout.strip() == "10485760", r.stderr
    assert sb.stats()["proxy"]["bytes_down"] >= 10485760
