"""Named handlers switched at runtime, per instance (issue 10, sections 1-3
and 6): allow_methods/allow_paths refusals, the hosted-sandbox sequence
(allow-hosts with params, then no-http: open keep-alive connections answered
403, pass-through tunnels cut, DNS NXDOMAIN), `egressctl hosts`, bindings
kept across a daemon restart and gone at detach, `policy check` errors."""
import subprocess

import pytest

from audit_events import wait_events
from conftest import EGRESSCTL
from echo_origin import EchoOrigin, make_multi_name_cert
from handler_helpers import Agent, Cli, sandbox_ca, start_agent, write_yaml
from scripted_origin import ScriptedOrigin, websocket_origin
from upstream_certs import make_server_cert

NAMES = ["github.test", "registry.npmjs.test", "pinned.test", "elsewhere.test", "ro.test",
         "ro405.test"]
LOCKED = "network locked after setup"

JOB = """name: job
tls:
  intercept: ["*"]
  passthrough: ["pinned.test"]
handlers:
  allow-hosts:
    - allow_hosts: "{{params.hostnames}}"
  no-http:
    - deny: {status: 403, body: "network locked after setup"}
  get-only:
    - allow_methods: [GET]
"""

READ_ONLY = """name: ro
tls:
  intercept: ["*"]
handlers:
  read-only:
    - allow_methods: [GET, HEAD]
    - allow_paths: ["/repos/acme/*"]
  own-statuses:
    - allow_methods: {methods: [GET], status: 405}
    - allow_paths: {paths: ["/ok/*"], status: 404}
by_host:
  "ro.test": read-only
  "ro405.test": own-statuses
"""


@pytest.fixture(scope="module")
def hx(env, tmp_path_factory):
    d = str(tmp_path_factory.mktemp("handlers"))
    crt, key = make_multi_name_cert(d, "echo", env.ca, NAMES)
    h = type("Handlers", (), {})()
    h.env, h.dir = env, d
    h.origin = EchoOrigin("echo-https", tls=(crt, key))
    h.http = EchoOrigin("echo-http")
    h.cli = Cli(env.daemon)
    for name in NAMES:
        env.dns.records[name] = ["127.0.0.1"]
    write_yaml(env.daemon.policy_dir, "job", JOB)
    write_yaml(env.daemon.policy_dir, "ro", READ_ONLY)
    try:
        yield h
    finally:
        h.origin.close()
        h.http.close()


def cgroup_agent(hx, policy, instance):
    """A cgroup sandbox running the handler agent; (sandbox, agent, request defaults)."""
    env = hx.env
    sb = env.sandbox(policy, instance)
    agent = start_agent(env, sb)
    ca = sandbox_ca(env, instance, hx.dir)
    return sb, agent, ca


def get(agent, hx, conn, host, path, ca=None, **kw):
    return agent("get", conn=conn, host=host, port=hx.origin.port, path=path, ca=ca, **kw)


def plain(agent, hx, conn, host, path):
    """A plain HTTP request (keep-alive connection `conn`) to the HTTP echo origin."""
    return agent("get", conn=conn, host=host, port=hx.http.port, path=path, tls=False)


def refused_over_tls(r, text):
    """A new intercepted TLS connection to a host denied by a host-level step
    is denied at its SNI; the sandbox trusts its CA, so the handshake completes
    and the request gets the 403 that says why (test_deny_replies.py)."""
    return r.get("status") == 403 and text in r["body"] and not r["reused"], r


def tunnel(agent, hx, conn):
    """A pass-through TLS connection to pinned.test, verified with the origin's own CA."""
    return agent("tunnel", conn=conn, host="pinned.test", port=hx.origin.port, ca=hx.env.ca)


def test_allow_methods_and_allow_paths_refuse_with_their_status(hx):
    sb, agent, ca = cgroup_agent(hx, "ro", "ro-1")
    cases = [  # (host, method, path, status)
        ("ro.test", "GET", "/repos/acme/a", 200),
        ("ro.test", "HEAD", "/repos/acme/b", 200),
        ("ro.test", "GET", "/repos/acme/c?page=/other", 200),  # the query is not the path
        ("ro.test", "POST", "/repos/acme/d", 403),
        ("ro.test", "DELETE", "/repos/acme/e", 403),
        ("ro.test", "GET", "/repos/other/f", 403),
        ("ro.test", "GET", "/repos/acme", 403),
        ("ro405.test", "GET", "/ok/g", 200),
        ("ro405.test", "PUT", "/ok/h", 405),
        ("ro405.test", "GET", "/elsewhere/i", 404),
    ]
    for i, (host, method, path, status) in enumerate(cases):
        r = get(agent, hx, f"c{i}", host, path, ca=ca, method=method)
        assert r.get("status") == status, (host, method, path, r)
    reached = {(q["host"], q["method"], q["path"]) for q in hx.origin.requests}
    for host, method, path, status in cases:
        assert ((host, method, path) in reached) == (status == 200), (host, method, path)
    assert sb.stats()["proxy"]["requests_denied"] == 6
    events = wait_events(hx.env, "ro-1", 6, predicate=lambda e: e.get("handler"))
    assert sorted(e["handler"] for e in events) == ["own-statuses"] * 2 + ["read-only"] * 4, events
    methods = [e for e in events if e["host"] == "ro405.test" and "allow_methods" in e["reason"]]
    assert methods, events


def test_hosted_sandbox_sequence_allow_hosts_then_no_http(hx):
    env, cli = hx.env, hx.cli
    instance = "job-42"
    agent = Agent(env.daemon.run_prefix("--policy", "job", "--instance", instance, "--netns", "host"))
    try:
        # Nothing bound yet: the policy allows every host.
        assert get(agent, hx, "pre", "elsewhere.test", "/before-any-handler")["status"] == 200
        cli("handler", "set", instance, "allow-hosts", "--params",
            '{"hostnames":["github.test","registry.npmjs.test","pinned.test"]}')
        listed = cli.handler_list(instance)
        assert [(b["level"], b["kind"], b["handler"], b["params"]) for b in listed["bindings"]] == [
            ("instance", "catch_all", "allow-hosts",
             {"hostnames": ["github.test", "registry.npmjs.test", "pinned.test"]})], listed
        # The install: listed hosts answer, on the connection open before the set too.
        r = get(agent, hx, "pre", "elsewhere.test", "/pre-after-set")
        assert r["status"] == 403, r
        r = get(agent, hx, "gh", "github.test", "/install-1")
        assert r["status"] == 200, r
        r = get(agent, hx, "npm", "registry.npmjs.test", "/left-pad")
        assert r["status"] == 200, r
        r = get(agent, hx, "gh", "github.test", "/install-2")
        assert r["status"] == 200 and r["reused"], r
        r = get(agent, hx, "other", "elsewhere.test", "/not-listed")
        assert refused_over_tls(r, "allow-hosts"), r
        r = plain(agent, hx, "plain", "elsewhere.test", "/not-listed-plain")
        assert r.get("status") == 403 and "allow-hosts" in r["body"], r
        r = plain(agent, hx, "plain", "github.test", "/install-plain")
        assert r.get("status") == 200, r
        assert agent("dns", name="github.test")["rcode"] == 0
        assert agent("dns", name="elsewhere.test")["rcode"] == 3
        r = tunnel(agent, hx, "tun")
        assert r.get("status") == 200 and "host=pinned.test" in r["body"], r
        assert env.daemon.stats(instance)["proxy"]["tls_passthrough"] == 1

        # Lock down after setup.
        cli("handler", "set", instance, "no-http")
        closed = agent("wait_closed", conn="tun", timeout=3)
        assert closed["closed"] and closed["seconds"] < 1.0, closed
        r = get(agent, hx, "gh", "github.test", "/after-lock")
        assert r.get("status") == 403 and r["reused"] and LOCKED in r["body"], r
        r = plain(agent, hx, "plain", "github.test", "/after-lock-plain")
        assert r.get("status") == 403 and r["reused"] and LOCKED in r["body"], r
        r = plain(agent, hx, "plain-new", "registry.npmjs.test", "/after-lock-plain-new")
        assert r.get("status") == 403 and not r["reused"] and LOCKED in r["body"], r
        r = get(agent, hx, "gh-new", "registry.npmjs.test", "/after-lock-new")
        assert refused_over_tls(r, LOCKED), r
        r = tunnel(agent, hx, "tun2")
        assert "error" in r or r.get("status") == 0, r
        for name in ("github.test", "registry.npmjs.test", "pinned.test", "elsewhere.test"):
            assert agent("dns", name=name)["rcode"] == 3, name
    finally:
        status = agent.close()
    assert status == 0
    reached = [q["path"] for q in hx.origin.requests + hx.http.requests]
    assert {"/before-any-handler", "/install-1", "/install-2", "/left-pad",
            "/install-plain"} <= set(reached)
    for path in ("/pre-after-set", "/not-listed", "/not-listed-plain", "/after-lock",
                 "/after-lock-new", "/after-lock-plain", "/after-lock-plain-new"):
        assert path not in reached, path
    assert reached.count("/tunnel") == 1  # the second tunnel never reached the origin
    events = cli.events(instance)
    assert any(e.get("handler") == "allow-hosts" and e["host"] == "elsewhere.test"
               for e in events), events
    assert any(e.get("handler") == "no-http" and e["host"] == "github.test" for e in events), events
    cut = [e for e in cli.events(instance) if "pinned.test" == e.get("host")]
    assert cut and any("closed" in e["reason"] for e in cut), cut


def test_bindings_survive_a_daemon_restart_and_end_at_detach(hx):
    env, cli = hx.env, hx.cli
    instance = "keep-1"
    sb, agent, ca = cgroup_agent(hx, "job", instance)
    cli("handler", "set", instance, "allow-hosts", "--params",
        '{"hostnames":["github.test","registry.npmjs.test"]}')
    cli("handler", "set", instance, "no-http", "--host", "registry.npmjs.test")
    cli("hosts", "deny", instance, "ro.test")

    def behaviour(tag, ca=ca):
        """What each host answers now: over plain HTTP, (status, locked body);
        and whether github.test answers over intercepted TLS."""
        out = {}
        for host in ("github.test", "registry.npmjs.test", "elsewhere.test", "ro.test"):
            r = plain(agent, hx, f"{tag}-{host}", host, f"/{tag}")
            out[host] = (r.get("status"), LOCKED in r.get("body", ""))
        out["tls"] = get(agent, hx, f"{tag}-tls", "github.test", f"/{tag}-tls", ca=ca).get("status")
        return out

    expected = {"github.test": (200, False), "registry.npmjs.test": (403, True),
                "elsewhere.test": (403, False), "ro.test": (403, False), "tls": 200}
    assert behaviour("before-restart") == expected
    bindings = cli.handler_list(instance)
    hosts = cli.json("hosts", "list", instance, "--json")
    assert len(bindings["bindings"]) == 2 and hosts["denied_hosts"] == ["ro.test"], (bindings, hosts)
    env.daemon.stop()
    env.daemon.start()
    assert cli.handler_list(instance) == bindings
    assert cli.json("hosts", "list", instance, "--json") == hosts
    assert behaviour("after-restart") == expected
    # Detach ends them: attached again, the instance has none.
    env.daemon.ctl("detach", sb.path)
    sb.attach("job")
    assert cli.handler_list(instance)["bindings"] == []
    assert cli.json("hosts", "list", instance, "--json")["denied_hosts"] == []
    # (the CA ended with the detach too: the new one is the instance's now)
    assert behaviour("reattached", sandbox_ca(env, instance, hx.dir)) == {
        "github.test": (200, False), "registry.npmjs.test": (200, False),
        "elsewhere.test": (200, False), "ro.test": (200, False), "tls": 200}


def test_hosts_commands_change_the_next_request_and_deny_cuts_a_tunnel(hx):
    env, cli = hx.env, hx.cli
    instance = "hosts-1"
    sb, agent, ca = cgroup_agent(hx, "job", instance)
    assert get(agent, hx, "a", "github.test", "/h-1", ca=ca)["status"] == 200
    assert agent("dns", name="github.test")["rcode"] == 0
    cli("hosts", "deny", instance, "github.test")
    r = get(agent, hx, "a", "github.test", "/h-2", ca=ca)
    assert r["status"] == 403 and r["reused"], r
    assert agent("dns", name="github.test")["rcode"] == 3  # DNS follows the lists
    cli("hosts", "remove", instance, "github.test")
    assert agent("dns", name="github.test")["rcode"] == 0
    assert get(agent, hx, "a", "github.test", "/h-3", ca=ca)["status"] == 200
    assert get(agent, hx, "b", "registry.npmjs.test", "/h-4", ca=ca)["status"] == 200
    # An instance that allows a list is deny by default from then on.
    cli("hosts", "allow", instance, "registry.npmjs.test")
    listed = cli.json("hosts", "list", instance, "--json")
    assert listed["allowed_hosts"] == ["registry.npmjs.test"] and listed["deny_by_default"], listed
    r = get(agent, hx, "b", "registry.npmjs.test", "/h-5", ca=ca)
    assert r["status"] == 200 and r["reused"], r
    assert get(agent, hx, "a", "github.test", "/h-6", ca=ca)["status"] == 403
    cli("hosts", "clear", instance)
    assert get(agent, hx, "a", "github.test", "/h-7", ca=ca)["status"] == 200
    reached = {q["path"] for q in hx.origin.requests}
    assert {"/h-1", "/h-3", "/h-4", "/h-5", "/h-7"} <= reached and not {"/h-2", "/h-6"} & reached

    # A deny cuts an open pass-through tunnel to that host, and refuses the next one.
    r = tunnel(agent, hx, "t")
    assert r.get("status") == 200, r
    cli("hosts", "deny", instance, "pinned.test")
    closed = agent("wait_closed", conn="t", timeout=3)
    assert closed["closed"] and closed["seconds"] < 1.0, closed
    r = tunnel(agent, hx, "t2")
    assert "error" in r or r.get("status") == 0, r
    st = sb.stats()["proxy"]
    assert st["tls_passthrough"] >= 1, st



def test_no_http_closes_an_open_websocket_at_once(hx):
    env, cli = hx.env, hx.cli
    crt, key = make_server_cert(hx.dir, "ws", env.ca)  # allowed.test
    origin = ScriptedOrigin(websocket_origin(), tls=(crt, key))
    try:
        instance = "ws-1"
        sb, agent, ca = cgroup_agent(hx, "job", instance)
        r = agent("ws", conn="w", host="allowed.test", port=origin.port, ca=ca)
        assert r == {"status": 101, "echo": "hello over the tunnel"}, r
        cli("handler", "set", instance, "no-http")
        closed = agent("wait_closed", conn="w", timeout=3)
        assert closed["closed"] and closed["seconds"] < 1.0, closed
        assert origin.wait_finished(1, timeout=5)
        events = cli.events(instance)
        assert any(e.get("handler") == "no-http" and e["host"] == "allowed.test"
                   and "closed" in e["reason"] for e in events), events
    finally:
        origin.close()



def test_a_request_level_handler_bound_to_a_pass_through_host_refuses_its_tls(hx):
    """egressd cannot apply allow_methods to requests it cannot read: an open
    tunnel to the host ends, a new one is refused, with an event saying why."""
    env, cli = hx.env, hx.cli
    instance = "pt-1"
    sb, agent, ca = cgroup_agent(hx, "job", instance)
    r = tunnel(agent, hx, "t")
    assert r.get("status") == 200, r
    r = cli("handler", "set", instance, "get-only", "--host", "pinned.test")
    assert "TLS connections to it will be refused" in r.stderr, r.stderr  # the warning
    r = tunnel(agent, hx, "t2")
    assert "error" in r or r.get("status") == 0, r
    events = cli.events(instance)
    assert any(e["host"] == "pinned.test" and "requests" in e["reason"] for e in events), events
    closed = agent("wait_closed", conn="t", timeout=2)
    assert closed["closed"] and closed["seconds"] < 1.0, closed


def test_handler_set_refuses_what_it_cannot_bind(hx):
    env, cli = hx.env, hx.cli
    instance = "bad-set"
    env.sandbox("job", instance)
    r = cli("handler", "set", instance, "no-such-handler", check=False)
    assert r.returncode == 1 and "no-such-handler" in r.stderr, r.stderr
    r = cli("handler", "set", instance, "allow-hosts", check=False)  # its params missing
    assert r.returncode == 1 and "hostnames" in r.stderr, r.stderr
    r = cli("handler", "set", instance, "allow-hosts", "--params", "not json", check=False)
    assert r.returncode == 2 and "--params" in r.stderr, r.stderr
    r = cli("handler", "set", instance, "allow-hosts", "--params", '{"hostnames": 5}', check=False)
    assert r.returncode == 1, r.stderr
    r = cli("handler", "set", "no-such-instance", "no-http", check=False)
    assert r.returncode == 1 and "no-such-instance" in r.stderr, r.stderr
    assert cli.handler_list(instance)["bindings"] == []



def test_a_policy_switch_keeps_the_bindings_and_fails_closed_on_a_missing_handler(hx):
    env, cli = hx.env, hx.cli
    instance = "switch-1"
    sb, agent, ca = cgroup_agent(hx, "job", instance)
    cli("handler", "set", instance, "no-http", "--host", "github.test")
    cli("hosts", "deny", instance, "elsewhere.test")
    r = plain(agent, hx, "g", "github.test", "/switch-1")
    assert r.get("status") == 403 and LOCKED in r["body"], r
    # "ro" has no handler no-http: the binding stays, and what it covers is refused.
    r = cli("attach", sb.path, "--policy", "ro", "--instance", instance)
    assert "no-http" in r.stderr, r.stderr  # the switch warns
    listed = cli.handler_list(instance)
    mine = [b for b in listed["bindings"] if b["level"] == "instance"]
    assert len(mine) == 1 and mine[0]["handler"] == "no-http" and "problem" in mine[0], listed
    assert cli.json("hosts", "list", instance, "--json")["denied_hosts"] == ["elsewhere.test"]
    r = plain(agent, hx, "g2", "github.test", "/switch-2")
    assert r.get("status", 0) >= 400 and "no-http" in r.get("body", ""), r
    r = plain(agent, hx, "e", "elsewhere.test", "/switch-3")
    assert r.get("status") == 403, r
    r = plain(agent, hx, "o", "registry.npmjs.test", "/switch-4")
    assert r.get("status") == 200, r
    reached = {q["path"] for q in hx.http.requests}
    assert "/switch-4" in reached and not {"/switch-1", "/switch-2", "/switch-3"} & reached


BAD_POLICIES = [
    # (label, policy text, [every error line after "FILE:"])
    ("unknown step", """name: bad
handlers:
  h:
    - allow_hosts: ["a.test"]
    - set_haeder: {name: X-A, value: b}
""", ['5:7: error: handler "h" step 2: unknown step the string "set_haeder"; '
      'did you mean "set_header"?']),
    ("unknown handler", """name: bad
handlers:
  h:
    - deny: {status: 403}
by_host:
  "a.test": h
  "b.test": nope
catch_all: {handler: nope2}
""", ['7:13: error: by_host "b.test": handler "nope" is not defined; known handlers: h',
      '8:12: error: catch_all: handler "nope2" is not defined; known handlers: h']),
    ("bad status", """name: bad
handlers:
  h:
    - deny: {status: 99}
    - allow_methods: {methods: [GET], status: 302}
""", ['4:22: error: handler "h" step 1 (deny): status must be a refusal status, 400 to 599, '
      'not a number "99"',
      '5:47: error: handler "h" step 2 (allow_methods): status must be a refusal status, '
      '400 to 599, not a number "302"']),
    ("set_header on Host", """name: bad
handlers:
  h:
    - set_header: {name: Host, value: evil.test}
""", ['4:26: error: handler "h" step 1 (set_header): header "Host" is managed by egressd '
      '(framing, routing, hop-by-hop); a handler cannot set or remove it']),
    ("header name not a token", """name: bad
handlers:
  h:
    - set_header: {name: "X Bad", value: b}
""", ['4:26: error: handler "h" step 1 (set_header): header name "X Bad" is not a token '
      "(RFC 9110: letters, digits and !#$%&'*+-.^_`|~)"]),
    ("templates", """name: bad
handlers:
  h:
    - set_header: {name: X-Key, value: "{{secret:tok"}
    - set_query: {name: key, value: "{{sekret:tok}}"}
""", ['4:40: error: handler "h" step 1 (set_header): value: unclosed "{{" at column 1 '
      '(a placeholder ends with "}}")',
      '5:37: error: handler "h" step 2 (set_query): value: unknown placeholder "{{sekret:tok}}" '
      'at column 1; use {{secret:NAME}}, {{params.NAME}} or {{instance}}']),
]


@pytest.mark.parametrize("label,text,errors", BAD_POLICIES, ids=[b[0] for b in BAD_POLICIES])
def test_policy_check_names_the_line_of_a_bad_handler(hx, tmp_path, label, text, errors):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    r = subprocess.run([EGRESSCTL, "policy", "check", str(path)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.splitlines() == [f"{path}:{e}" for e in errors], r.stderr


LAZY = """name: lazy
handlers:
  get-only:
    - allow_methods: [GET]
"""


def test_a_tunnel_to_a_host_bound_since_to_a_request_level_handler_is_cut_and_then_intercepted(hx):
    """No tls section: TLS passes through until a handler that must see
    requests is bound to the host; then the open tunnel ends at once (its
    requests would go around the handler) and the next connection is
    intercepted and decided request by request."""
    env, cli = hx.env, hx.cli
    write_yaml(env.daemon.policy_dir, "lazy", LAZY)
    instance = "lazy-1"
    sb, agent, ca = cgroup_agent(hx, "lazy", instance)
    r = agent("tunnel", conn="t", host="github.test", port=hx.origin.port, ca=hx.env.ca)
    assert r.get("status") == 200, r
    assert sb.stats()["proxy"]["tls_passthrough"] == 1
    cli("handler", "set", instance, "get-only", "--host", "github.test")
    closed = agent("wait_closed", conn="t", timeout=2)
    assert closed["closed"] and closed["seconds"] < 1.0, closed
    events = cli.events(instance)
    assert any(e["host"] == "github.test" and "get-only" in e["reason"] for e in events), events
    assert get(agent, hx, "g", "github.test", "/lazy-get", ca=ca)["status"] == 200
    assert get(agent, hx, "p", "github.test", "/lazy-post", ca=ca, method="POST")["status"] == 403
    assert sb.stats()["proxy"]["tls_intercepted"] == 2
