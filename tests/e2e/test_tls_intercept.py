"""TLS interception (tls.intercept): the sandbox's handshake completes with a
leaf of its own CA, the decrypted requests go through the HTTP pipeline, and
egressd's own TLS connection to the upstream is verified."""
import os
import ssl
import subprocess

import pytest

from audit_events import wait_events
from origins import Origin
from scripted_origin import ScriptedOrigin, header, in_sandbox, websocket_origin
from upstream_certs import make_server_cert


def write_tls_policy(env, name, allowed, intercept=("*",), passthrough=()):
    with open(os.path.join(env.daemon.policy_dir, f"{name}.yaml"), "w") as f:
        f.write(f"name: {name}\nallowed_hosts: {list(allowed)!r}\n".replace("'", '"'))
        f.write(f"tls:\n  intercept: {list(intercept)!r}\n".replace("'", '"'))
        if passthrough:
            f.write(f"  passthrough: {list(passthrough)!r}\n".replace("'", '"'))


@pytest.fixture(scope="module")
def tls_env(env):
    write_tls_policy(env, "intercept", ["allowed.test", "other.test"])
    write_tls_policy(env, "intercept-pass", ["allowed.test"], passthrough=["allowed.test"])
    write_tls_policy(env, "intercept-other-only", ["other.test"])
    return env


def sandbox_ca(env, sb, tmp_path):
    r = env.daemon.ctl("ca", sb.instance)
    path = tmp_path / f"{sb.instance}.pem"
    path.write_text(r.stdout)
    assert "BEGIN CERTIFICATE" in r.stdout and "PRIVATE" not in r.stdout
    return str(path)


def issuer_seen_by(sb, port, name="allowed.test", *args):
    r = sb.run("openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", name,
               *args, input="", timeout=20)
    return r.stdout + r.stderr


def test_intercepted_request_reaches_the_origin_with_a_leaf_of_the_sandbox_ca(tls_env, tmp_path):
    env = tls_env
    sb = env.sandbox("intercept")
    ca = sandbox_ca(env, sb, tmp_path)
    before = len(env.https.requests)
    r = sb.curl("--cacert", ca, f"https://allowed.test:{env.https.port}/intercepted")
    assert r.returncode == 0, r.stderr
    assert "origin-https host=allowed.test" in r.stdout and "path=/intercepted" in r.stdout
    assert [q["path"] for q in env.https.requests[before:]] == ["/intercepted"]
    # The origin's own CA does not verify what the sandbox sees: it is egressd's leaf.
    r = sb.curl("--cacert", env.ca, f"https://allowed.test:{env.https.port}/")
    assert r.returncode != 0 and "certificate" in r.stderr.lower(), r.stderr
    seen = issuer_seen_by(sb, env.https.port)
    assert "egressd sandbox CA" in seen, seen
    st = sb.stats()["proxy"]
    # curl twice and openssl once, each intercepted; one request reached the origin.
    assert st["tls_intercepted"] == 3 and st["tls_passthrough"] == 0 and st["requests_allowed"] == 1, st


def test_python_client_through_interception(tls_env, tmp_path):
    env = tls_env
    sb = env.sandbox("intercept")
    ca = sandbox_ca(env, sb, tmp_path)
    code = f"""
import socket, ssl, urllib.request
_g = socket.getaddrinfo
socket.getaddrinfo = lambda h, *a, **k: _g('127.0.0.1' if h == 'allowed.test' else h, *a, **k)
ctx = ssl.create_default_context(cafile={ca!r})
print(urllib.request.urlopen("https://allowed.test:{env.https.port}/py", context=ctx, timeout=10).read().decode())
"""
    r = sb.python(code)
    assert r.returncode == 0, r.stderr
    assert f"host=allowed.test:{env.https.port} path=/py" in r.stdout


def test_a_connection_that_closes_ends_with_close_notify_after_the_whole_answer(tls_env, tmp_path):
    # "Connection: close": egressd's last bytes to the client are the answer
    # and close_notify (sent together); the client sees a clean TLS end,
    # not a truncation.
    env = tls_env
    sb = env.sandbox("intercept")
    ca = sandbox_ca(env, sb, tmp_path)
    code = f"""
import socket, ssl
ctx = ssl.create_default_context(cafile={ca!r})
raw = socket.create_connection(("127.0.0.1", {env.https.port}), timeout=10)
s = ctx.wrap_socket(raw, server_hostname="allowed.test", suppress_ragged_eofs=False)
s.sendall(b"GET /closing HTTP/1.1\\r\\nHost: allowed.test:{env.https.port}\\r\\nConnection: close\\r\\n\\r\\n")
got = b""
while True:
    chunk = s.recv(65536)  # SSLEOFError if the TCP stream ended without close_notify
    if not chunk:
        break
    got += chunk
print(got.decode())
"""
    r = sb.python(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("HTTP/1.1 200") and "path=/closing" in r.stdout, r.stdout


def test_passthrough_host_shows_the_origins_own_certificate(tls_env, tmp_path):
    env = tls_env
    sb = env.sandbox("intercept-pass")
    ca = sandbox_ca(env, sb, tmp_path)
    r = sb.curl("--cacert", env.ca, f"https://allowed.test:{env.https.port}/pass")
    assert r.returncode == 0 and "path=/pass" in r.stdout, r.stderr
    r = sb.curl("--cacert", ca, f"https://allowed.test:{env.https.port}/pass")
    assert r.returncode != 0
    st = sb.stats()["proxy"]
    assert st["tls_passthrough"] == 2 and st["tls_intercepted"] == 0, st


def test_host_other_than_the_sni_is_421(tls_env, tmp_path):
    env = tls_env
    sb = env.sandbox("intercept")
    ca = sandbox_ca(env, sb, tmp_path)
    before = len(env.https.requests)
    r = sb.curl("--cacert", ca, "-H", "Host: other.test", "-w", "%{http_code}",
                f"https://allowed.test:{env.https.port}/fronted")
    assert r.stdout.endswith("421"), r.stdout + r.stderr
    assert 'on a TLS connection made for "allowed.test"' in r.stdout
    assert len(env.https.requests) == before
    events = wait_events(env, sb.instance, 1, predicate=lambda e: "TLS connection made for" in e["reason"])
    assert events and events[0]["host"] == "other.test", events


def test_each_keep_alive_request_is_decided_and_a_switch_applies_to_the_next(tls_env, tmp_path):
    env = tls_env
    sb = env.sandbox("intercept")
    ca = sandbox_ca(env, sb, tmp_path)
    port = env.https.port
    code = f"""
import http.client, socket, ssl, sys
ctx = ssl.create_default_context(cafile={ca!r})
c = http.client.HTTPSConnection("allowed.test", {port}, context=ctx, timeout=10)
c.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", {port}), timeout=10),
                         server_hostname="allowed.test")
for i in range(3):
    c.request("GET", f"/ka{{i}}")
    r = c.getresponse()
    print(i, r.status, r.read().decode().strip())
sys.stdout.flush()
line = sys.stdin.readline()  # the policy switch happens here
c.request("GET", "/after-switch")
r = c.getresponse()
print("after", r.status, r.read().decode().strip())
"""
    p = sb.popen("python3", "-c", code, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                 stderr=subprocess.PIPE, text=True)
    try:
        lines = [p.stdout.readline() for _ in range(3)]
        assert [l.split()[:2] for l in lines] == [["0", "200"], ["1", "200"], ["2", "200"]], lines
        sb.attach("intercept-other-only")
        p.stdin.write("go\n")
        p.stdin.flush()
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)
    assert out.startswith("after 403"), out + err
    paths = [q["path"] for q in env.https.requests]
    assert "/after-switch" not in paths and {"/ka0", "/ka1", "/ka2"} <= set(paths)


def weak_server(ctx):
    """A test origin that loads and offers what OpenSSL's defaults refuse."""
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")


def old_tls_only(ctx):
    weak_server(ctx)
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1


@pytest.mark.parametrize("label,kwargs,setup,reason", [
    ("expired", {"days": (-10, -1)}, None, "expired"),
    ("not-yet-valid", {"days": (1, 10)}, None, "not yet valid"),
    ("wrong-host", {"name": "elsewhere.test"}, None, "hostname mismatch"),
    ("self-signed", {"self_signed": True}, None, "self-signed"),
    ("untrusted-root", {"defect": "untrusted-root"}, None, "unknown issuer"),
    ("incomplete-chain", {"defect": "incomplete-chain"}, None, "unknown issuer"),
    ("leaf-as-ca", {"defect": "leaf-as-ca"}, None, "not a CA"),
    ("client-auth-only", {"defect": "client-auth-only"}, None, "extended key usage"),
    ("rsa-1024", {"defect": "rsa-1024"}, weak_server, "key too small"),
    ("sha1", {"defect": "sha1"}, weak_server, "SHA-1"),
    ("tls1.1-only", {}, old_tls_only, "protocol version"),
])
def test_bad_upstream_certificate_is_502_and_nothing_reaches_the_origin(tls_env, tmp_path, label,
                                                                        kwargs, setup, reason):
    env = tls_env
    crt, key = make_server_cert(str(tmp_path), label, env.ca, **kwargs)
    bad = Origin(f"bad-{label}", tls=(crt, key), tls_setup=setup)
    try:
        sb = env.sandbox("intercept")
        ca = sandbox_ca(env, sb, tmp_path)
        r = sb.curl("--cacert", ca, "-w", "%{http_code}", f"https://allowed.test:{bad.port}/secret")
        assert r.stdout.endswith("502"), r.stdout + r.stderr
        assert reason.lower() in r.stdout.lower(), r.stdout
        assert bad.requests == []
        assert sb.stats()["proxy"]["upstream_tls_errors"] == 1
        events = wait_events(env, sb.instance, 1, predicate=lambda e: "upstream TLS" in e["reason"])
        assert events and reason.lower() in events[0]["reason"].lower(), events
        assert events[0]["address"] == "127.0.0.1" and events[0]["host"] == "allowed.test", events
    finally:
        bad.close()


def test_two_sandboxes_have_different_cas(tls_env, tmp_path):
    env = tls_env
    a = env.sandbox("intercept")
    b = env.sandbox("intercept")
    ca_a, ca_b = sandbox_ca(env, a, tmp_path), sandbox_ca(env, b, tmp_path)
    assert open(ca_a).read() != open(ca_b).read()
    r = b.curl("--cacert", ca_a, f"https://allowed.test:{env.https.port}/")
    assert r.returncode != 0, r.stdout
    r = b.curl("--cacert", ca_b, f"https://allowed.test:{env.https.port}/")
    assert r.returncode == 0, r.stderr


def test_h2_only_client_is_refused_with_an_alert_and_an_event(tls_env):
    env = tls_env
    sb = env.sandbox("intercept")
    seen = issuer_seen_by(sb, env.https.port, "allowed.test", "-alpn", "h2")
    assert "no application protocol" in seen, seen
    events = wait_events(env, sb.instance, 1, predicate=lambda e: "HTTP/2" in e["reason"])
    assert events and events[0]["host"] == "allowed.test", events


def tls_websocket_origin(env, tmp_path):
    crt, key = make_server_cert(str(tmp_path), "ws", env.ca)
    return ScriptedOrigin(websocket_origin(), tls=(crt, key))


def intercepted_upgrade(env, sb, tmp_path):
    """Sandbox code (for in_sandbox): TLS through interception with the
    sandbox's CA, then a WebSocket upgrade; the answer's head in result."""
    ca = sandbox_ca(env, sb, tmp_path)
    return f"""
        import ssl
        s = ssl.create_default_context(cafile={ca!r}).wrap_socket(s, server_hostname="allowed.test")
        s.sendall(upgrade_request())
        result["head"] = read_until(b"\\r\\n\\r\\n").decode()
    """


def test_websocket_inside_intercepted_tls_after_a_real_101(tls_env, tmp_path):
    env = tls_env
    origin = tls_websocket_origin(env, tmp_path)
    try:
        sb = env.sandbox("intercept")
        result = in_sandbox(sb, origin.port, intercepted_upgrade(env, sb, tmp_path), """
            s.sendall(ws_frame(1, b"hello through TLS"))
            fin, rsv1, opcode, payload = ws_read_frame(read_exactly)
            result["echo"] = payload.decode()
            s.sendall(ws_frame(1, b"x", mask=False))  # unmasked from a client: refused
            result["after_bad_frame"] = read_until_close()[1]
        """)
        assert result["head"].startswith("HTTP/1.1 101"), result
        assert result["echo"] == "hello through TLS", result
        assert result["after_bad_frame"] is True, result
        assert header(origin.conns[0].head, "Host") == f"allowed.test:{origin.port}"
        st = sb.stats()["proxy"]
        assert st["tls_intercepted"] == 1 and st["websocket_violations"] == 1, st
    finally:
        origin.close()


def test_a_broken_tls_record_in_an_intercepted_websocket_ends_the_connection(tls_env, tmp_path):
    # After the 101, bytes from the sandbox that are not a valid TLS record
    # (here: one under the TLS layer, a bad MAC): egressd sends its alert and
    # closes at once, not at the idle timeout.
    env = tls_env
    origin = tls_websocket_origin(env, tmp_path)
    try:
        sb = env.sandbox("intercept")
        result = in_sandbox(sb, origin.port, intercepted_upgrade(env, sb, tmp_path), """
            import os, time
            s.sendall(ws_frame(1, b"still fine"))
            result["echo"] = ws_read_frame(read_exactly)[3].decode()
            s = socket.socket(fileno=os.dup(s.fileno()))  # under the TLS layer
            s.sendall(bytes([23, 3, 3, 0, 32]) + bytes(32))  # application data, bad MAC
            t0 = time.monotonic()
            result["closed"] = read_until_close(timeout=10)[1]
            result["took"] = time.monotonic() - t0
        """)
        assert result["head"].startswith("HTTP/1.1 101"), result
        assert result["echo"] == "still fine", result
        assert result["closed"] is True and result["took"] < 3, result  # before: ~5 s, the idle timeout
    finally:
        origin.close()


def test_restarted_daemon_intercepts_with_the_same_ca(tls_env, tmp_path):
    env = tls_env
    sb = env.sandbox("intercept")
    ca = sandbox_ca(env, sb, tmp_path)
    env.daemon.stop()
    env.daemon.start()
    r = sb.curl("--cacert", ca, f"https://allowed.test:{env.https.port}/after-restart")
    assert r.returncode == 0 and "path=/after-restart" in r.stdout, r.stderr
    assert env.daemon.ctl("ca", sb.instance).stdout == open(ca).read()
