"""Clients are told why they are refused, in their own protocol (README,
"What a denied client sees"):

- every HTTP reply egressd makes itself carries X-Egressd-Reason (a stable
  code) and X-Egressd-Event (the seq of the audit event `egressctl events
  --json` shows for it); its body is one line a person reads, or JSON for a
  client whose Accept prefers application/json; a policy's deny_response sets
  the status and body of its denies (not of upstream failures);
- a denied DNS name is NXDOMAIN with the Extended DNS Error 15 (Blocked)
  naming the policy and the event, for a query with EDNS;
- a denied SNI gets the TLS alert access_denied (49) before the close.

Real clients: curl, openssl s_client, python in the sandbox."""
import json
import re
import subprocess

from audit_events import events
from conftest import EGRESSCTL, write_policy
from origins import Origin
from test_dns_failing_upstream import ask
from upstream_certs import make_server_cert

DENY_RESPONSE = ("{status: 451, content_type: application/json, "
                 "body: '{\"blocked\": \"{{host}}\", \"why\": \"{{reason}}\", \"event\": {{event}}, "
                 "\"policy\": \"{{policy}}\"}'}")


def head_and_body(out):
    """curl -i's output (read as text: CRLF is LF here): status, headers, body."""
    head, _, body = out.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def event_by_seq(env, instance, seq):
    found = [e for e in events(env, instance) if e["seq"] == seq]
    assert len(found) == 1, (seq, events(env, instance))
    return found[0]


def test_denied_host_says_why_with_the_event_id(env):
    sb = env.sandbox("strict")
    r = sb.curl("-i", f"http://other.test:{env.http.port}/x")
    assert r.returncode == 0, r.stderr
    status, headers, body = head_and_body(r.stdout)
    assert status == 403, r.stdout
    assert headers["x-egressd-reason"] == "denied_host", headers
    assert headers["x-egressd-policy"] == "strict"
    assert headers["content-type"].startswith("text/plain")
    seq = int(headers["x-egressd-event"])
    event = event_by_seq(env, sb.instance, seq)
    assert event["host"] == "other.test" and event["layer"] == "proxy", event
    # One line: what happened, which policy and rule, and the event.
    assert body.count("\n") == 1 and body.startswith("egressd: "), body
    assert 'policy "strict"' in body and "not in allowed_hosts" in body, body
    assert f"(event {seq})" in body, body


def test_json_body_for_a_client_that_prefers_json(env):
    sb = env.sandbox("strict")
    r = sb.curl("-i", "-H", "Accept: application/json, text/plain, */*",
                f"http://other.test:{env.http.port}/x")
    status, headers, body = head_and_body(r.stdout)
    assert status == 403 and headers["content-type"] == "application/json", r.stdout
    reply = json.loads(body)
    assert reply["reason"] == "denied_host" and reply["host"] == "other.test", reply
    assert reply["policy"] == "strict" and reply["status"] == 403, reply
    assert "allowed_hosts" in reply["rule"], reply
    assert reply["event"] == int(headers["x-egressd-event"]) > 0, (reply, headers)
    event_by_seq(env, sb.instance, reply["event"])
    # A browser-like Accept keeps the text.
    r = sb.curl("-i", "-H", "Accept: text/html,*/*;q=0.8", f"http://other.test:{env.http.port}/x")
    assert head_and_body(r.stdout)[1]["content-type"].startswith("text/plain"), r.stdout


def test_policy_deny_response_shapes_denies_not_upstream_failures(env):
    write_policy(env.daemon.policy_dir, "shaped", allowed_hosts=["allowed.test", "nowhere.test"],
                 deny_response=DENY_RESPONSE)
    sb = env.sandbox("shaped")
    r = sb.curl("-i", f"http://other.test:{env.http.port}/x")
    status, headers, body = head_and_body(r.stdout)
    assert status == 451 and headers["content-type"] == "application/json", r.stdout
    assert headers["x-egressd-reason"] == "denied_host"
    reply = json.loads(body)
    assert reply == {"blocked": "other.test", "why": "denied_host",
                     "event": int(headers["x-egressd-event"]), "policy": "shaped"}, reply
    event_by_seq(env, sb.instance, reply["event"])
    # An allowed name that does not resolve is egressd's own 502, not the policy's body.
    r = sb.curl("-i", f"http://nowhere.test:{env.http.port}/x")
    status, headers, body = head_and_body(r.stdout)
    assert status == 502 and headers["x-egressd-reason"] == "upstream_unresolved", r.stdout
    assert body.startswith("egressd: name nowhere.test does not resolve"), body


def test_policy_check_refuses_a_bad_deny_response(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\n"
                   "deny_response:\n"
                   "  status: 200\n"
                   "  body: 'blocked {{hots}}'\n"
                   "  colour: red\n")
    r = subprocess.run([EGRESSCTL, "policy", "check", str(bad)], capture_output=True, text=True)
    assert r.returncode == 1, r
    assert f"{bad}:3:" in r.stderr and "400 to 599" in r.stderr, r.stderr
    assert f"{bad}:4:" in r.stderr and "unknown placeholder {{hots}}" in r.stderr, r.stderr
    assert f"{bad}:5:" in r.stderr and "unknown key" in r.stderr, r.stderr
    big = tmp_path / "big.yaml"
    big.write_text("name: big\ndeny_response: {body: '" + "x" * 5000 + "'}\n")
    r = subprocess.run([EGRESSCTL, "policy", "check", str(big)], capture_output=True, text=True)
    assert r.returncode == 1 and "at most 4096" in r.stderr, r.stderr
    good = tmp_path / "good.yaml"
    good.write_text("name: good\ndeny_response: " + DENY_RESPONSE + "\n")
    r = subprocess.run([EGRESSCTL, "policy", "check", str(good)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_denied_name_gets_nxdomain_with_extended_error_blocked(env):
    sb = env.sandbox("strict")
    for transport in ("udp", "tcp"):
        a = ask(sb, "other.test", transport)
        assert a["rcode"] == 3 and a["ede"] == 15, (transport, a)  # NXDOMAIN, Blocked
        assert 'policy "strict"' in a["ede_text"] and "allowed_hosts" in a["ede_text"], a
        seq = int(re.search(r"\(event (\d+)\)", a["ede_text"]).group(1))
        event = event_by_seq(env, sb.instance, seq)
        assert event["layer"] == "dns" and event["host"] == "other.test", event
    # Without EDNS: a plain NXDOMAIN, no OPT record.
    a = ask(sb, "other.test", "udp", edns=False)
    assert a["rcode"] == 3 and a["additional"] == 0 and a["ede"] is None, a
    # An allowed name still resolves.
    assert ask(sb, "allowed.test", "udp")["rcode"] == 0


def test_denied_sni_gets_tls_alert_access_denied(env):
    sb = env.sandbox("strict")
    r = sb.curl("--cacert", env.ca, f"https://other.test:{env.https.port}/")
    assert r.returncode == 35, (r.returncode, r.stderr)  # CURLE_SSL_CONNECT_ERROR
    assert "access denied" in r.stderr, r.stderr
    r = sb.run("openssl", "s_client", "-connect", f"127.0.0.1:{env.https.port}",
               "-servername", "other.test", stdin=subprocess.DEVNULL)
    assert "alert access denied" in r.stderr and "alert number 49" in r.stderr, r.stderr
    assert any(e["host"] == "other.test" and e["layer"] == "proxy"
               for e in events(env, sb.instance))
    # TLS without SNI under deny by default: the same alert.
    r = sb.run("openssl", "s_client", "-connect", f"127.0.0.1:{env.https.port}", "-noservername",
               stdin=subprocess.DEVNULL)
    assert "alert number 49" in r.stderr, r.stderr
    # An allowed SNI still completes its handshake.
    r = sb.curl("--cacert", env.ca, f"https://allowed.test:{env.https.port}/")
    assert r.returncode == 0, r.stderr


def test_denied_sni_under_interception_gets_a_403_over_tls(env, tmp_path):
    write_policy(env.daemon.policy_dir, "seeing", allowed_hosts=["allowed.test"],
                 tls='{intercept: ["*"]}')
    sb = env.sandbox("seeing")
    ca = tmp_path / "sandbox-ca.pem"
    ca.write_text(env.daemon.ctl("ca", sb.instance).stdout)
    r = sb.curl("-i", "--cacert", str(ca), "-H", "Accept: application/json",
                f"https://other.test:{env.https.port}/x")
    assert r.returncode == 0, r.stderr  # the handshake completed
    status, headers, body = head_and_body(r.stdout)
    assert status == 403 and headers["x-egressd-reason"] == "denied_host", r.stdout
    reply = json.loads(body)
    assert reply["host"] == "other.test" and reply["policy"] == "seeing", reply
    event = event_by_seq(env, sb.instance, int(headers["x-egressd-event"]))
    assert event["host"] == "other.test", event
    # An allowed host is intercepted and answered by the origin.
    r = sb.curl("--cacert", str(ca), f"https://allowed.test:{env.https.port}/")
    assert r.returncode == 0, r.stderr


HANDLED = """name: handled
allow_plaintext_credentials: true
handlers:
  read-only:
    - allow_methods: [GET]
  auth:
    - set_header: {name: Authorization, value: "Bearer {{secret:absent_token}}"}
by_host:
  "allowed.test": read-only
  "other.test": auth
"""


def test_handler_refusals_name_their_reason(env):
    with open(f"{env.daemon.policy_dir}/handled.yaml", "w") as f:
        f.write(HANDLED)
    sb = env.sandbox("handled")
    before = len(env.http.requests)
    r = sb.curl("-i", "-X", "POST", "-d", "x", f"http://allowed.test:{env.http.port}/x")
    status, headers, body = head_and_body(r.stdout)
    assert status == 403 and headers["x-egressd-reason"] == "denied_method", r.stdout
    assert 'handler "read-only"' in body and "method POST is not allowed" in body, body
    event_by_seq(env, sb.instance, int(headers["x-egressd-event"]))
    r = sb.curl("-i", "-H", "Accept: application/json", f"http://other.test:{env.http.port}/x")
    status, headers, body = head_and_body(r.stdout)
    assert status == 503 and headers["x-egressd-reason"] == "missing_secret", r.stdout
    reply = json.loads(body)
    assert reply["reason"] == "missing_secret" and "absent_token" in reply["message"], reply
    assert reply["rule"].startswith('handler "auth"'), reply
    assert event_by_seq(env, sb.instance, reply["event"])["handler"] == "auth"
    assert len(env.http.requests) == before  # neither request left


def test_bad_upstream_certificate_is_502_upstream_certificate(env, tmp_path):
    write_policy(env.daemon.policy_dir, "seeing", allowed_hosts=["allowed.test"],
                 tls='{intercept: ["*"]}')
    crt, key = make_server_cert(str(tmp_path), "expired", env.ca, days=(-10, -1))
    bad = Origin("bad-expired", tls=(crt, key))
    try:
        sb = env.sandbox("seeing")
        ca = tmp_path / "sandbox-ca.pem"
        ca.write_text(env.daemon.ctl("ca", sb.instance).stdout)
        r = sb.curl("-i", "--cacert", str(ca), f"https://allowed.test:{bad.port}/secret")
        status, headers, body = head_and_body(r.stdout)
        assert status == 502 and headers["x-egressd-reason"] == "upstream_certificate", r.stdout
        assert "expired" in body, body
        event = event_by_seq(env, sb.instance, int(headers["x-egressd-event"]))
        assert "upstream TLS" in event["reason"] and event["host"] == "allowed.test", event
        assert bad.requests == []
    finally:
        bad.close()
