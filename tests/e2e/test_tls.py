"""TLS: the SNI decides; bytes pass through untouched (no interception yet)."""
from origins import RawListener
from audit_events import wait_events


def test_allowed_sni_passes_through_with_origin_certificate(env):
    sb = env.sandbox("open")
    r = sb.curl("--cacert", env.ca, f"https://allowed.test:{env.https.port}/tls")
    assert r.returncode == 0, r.stderr
    assert "origin-https host=allowed.test" in r.stdout
    st = sb.stats()
    assert st["proxy"]["tls_passthrough"] == 1
    assert st["proxy"]["connections_denied"] == 0


def test_denied_sni_is_closed_before_origin(env):
    sb = env.sandbox("open")
    before = env.https.connections
    r = sb.curl("--cacert", env.ca, f"https://denied.test:{env.https.port}/")
    assert r.returncode != 0
    assert env.https.connections == before
    assert sb.stats()["proxy"]["connections_denied"] == 1


def test_no_sni_under_deny_by_default_is_closed(env):
    sb = env.sandbox("strict")
    # Positive control: the same origin, the same policy, with an allowed SNI.
    r = sb.curl("--cacert", env.ca, f"https://allowed.test:{env.https.port}/control")
    assert r.returncode == 0 and "origin-https host=allowed.test" in r.stdout, r.stderr
    before = env.https.connections
    # An IP-literal URL sends no SNI: refused for that reason, before the origin.
    r = sb.curl("-k", f"https://127.0.0.1:{env.https.port}/")
    assert r.returncode != 0
    assert env.https.connections == before
    st = sb.stats()["proxy"]
    assert st["tls_passthrough"] == 1 and st["connections_denied"] == 1, st
    events = wait_events(env, sb.instance, 1)
    assert [(e["layer"], e["port"]) for e in events] == [("proxy", env.https.port)], events
    assert "without SNI" in events[0]["reason"], events[0]


def test_spoofed_sni_goes_to_resolved_address(env):
    attacker = RawListener("127.0.0.2", env.https.port)
    try:
        sb = env.sandbox("open")
        r = sb.curl("--cacert", env.ca, "--resolve", f"allowed.test:{env.https.port}:127.0.0.2",
                    f"https://allowed.test:{env.https.port}/")
        assert r.returncode == 0, r.stderr
        assert "origin-https" in r.stdout
        assert attacker.connections == 0
    finally:
        attacker.close()


def test_python_client(env):
    sb = env.sandbox("strict")
    code = f"""
import ssl, urllib.request
ctx = ssl.create_default_context(cafile={env.ca!r})
print(urllib.request.urlopen("https://allowed.test:{env.https.port}/py", context=ctx, timeout=10).read().decode())
"""
    # urllib resolves allowed.test itself: give it the answer through /etc/hosts-free means.
    code = "import socket\n_g = socket.getaddrinfo\nsocket.getaddrinfo = lambda h, *a, **k: _g('127.0.0.1' if h == 'allowed.test' else h, *a, **k)\n" + code
    r = sb.python(code)
    assert r.returncode == 0, r.stderr
    assert "host=allowed.test" in r.stdout
