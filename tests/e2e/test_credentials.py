"""Credentials added outside the sandbox (issue 10, sections 4-6): a handler
bound by_host sets `Authorization: Bearer {{secret:github_token}}` on
requests egressd intercepted; the value comes from the secrets dir (shared,
or the instance's own), is picked up at once when it changes, never reaches
the sandbox, and never goes where it may not (plain HTTP, a Host other than
the SNI). The last test greps the daemon's log, the audit file and every
egressctl output of the module for every secret value used."""
import json
import os
import subprocess
import time
import uuid

import pytest

from audit_events import wait_events
from bounded import read_line
from conftest import PYTHON
from echo_origin import EchoOrigin, fields, make_multi_name_cert
from handler_helpers import Cli, sandbox_ca, start_agent, write_yaml

TLS_NAMES = ["api.github.test", "side.test", "missing.test"]
PLAIN_NAMES = ["plain.test"]

# Every secret value this module sets: none may show up in a log or output.
VALUES = []  # each is sent to an origin by some test
NEVER_SENT = []  # values egressd must refuse to send


def write_secret_file(env, name, instance, value, mode=0o600):
    """A secret file written by another tool: whole, then renamed into place."""
    d = os.path.join(env.daemon.secrets_dir, "instances", instance)
    os.makedirs(d, mode=0o700, exist_ok=True)
    tmp = os.path.join(env.daemon.workdir, f"{name}.{uuid.uuid4().hex}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    os.chmod(tmp, mode)  # not the umask's
    os.replace(tmp, os.path.join(d, name))


def new_value(label):
    v = f"{label}-{uuid.uuid4().hex}"
    VALUES.append(v)
    return v


POLICY = """name: {name}
allowed_hosts: ["api.github.test", "side.test", "missing.test", "plain.test"]
tls:
  intercept: ["*"]
handlers:
  github-auth:
    - set_header: {{name: Authorization, value: "Bearer {{{{secret:github_token}}}}"}}
  missing-auth:
    - set_header: {{name: X-Api-Key, value: "key {{{{secret:never_set_token}}}}"}}
by_host:
  "api.github.test": github-auth
  "plain.test": github-auth
  "missing.test": missing-auth
{extra}"""


@pytest.fixture(scope="module")
def cred(env, tmp_path_factory):
    d = str(tmp_path_factory.mktemp("cred"))
    crt, key = make_multi_name_cert(d, "echo", env.ca, TLS_NAMES)
    c = type("Cred", (), {})()
    c.env, c.dir = env, d
    c.https = EchoOrigin("echo-https", tls=(crt, key))
    c.http = EchoOrigin("echo-http")
    c.cli = Cli(env.daemon)
    for name in TLS_NAMES + PLAIN_NAMES:
        env.dns.records[name] = ["127.0.0.1"]
    write_yaml(env.daemon.policy_dir, "creds", POLICY.format(name="creds", extra=""))
    write_yaml(env.daemon.policy_dir, "creds-audit",
               POLICY.format(name="creds-audit", extra="mode: audit\n"))
    write_yaml(env.daemon.policy_dir, "creds-plain",
               POLICY.format(name="creds-plain", extra="allow_plaintext_credentials: true\n"))
    c.shared = new_value("shared")
    c.cli.secret_set("github_token", c.shared)
    try:
        yield c
    finally:
        c.https.close()
        c.http.close()


def agent_in(env, cred, policy, instance):
    """A cgroup sandbox under `policy` running the handler agent; (sandbox, agent, its CA)."""
    sb = env.sandbox(policy, instance)
    agent = start_agent(env, sb)
    return sb, agent, sandbox_ca(env, instance, cred.dir)


def sandbox_pids(cgroup):
    pids = []
    for root, _, files in os.walk(cgroup):
        if "cgroup.procs" in files:
            with open(os.path.join(root, "cgroup.procs")) as f:
                pids += [int(p) for p in f.read().split()]
    return pids


def as_nobody_in_mount_ns(pid, argv, input_text, timeout=60):
    """argv as nobody in the sandbox's mount namespace (what the sandbox's
    user can read), run from outside the sandbox's cgroup; `input_text` on stdin."""
    return subprocess.run(["nsenter", "-t", str(pid), "-m", "--", "setpriv", "--reuid=nobody",
                           "--regid=nogroup", "--clear-groups", "--", *argv],
                          input=input_text, capture_output=True, text=True, timeout=timeout)


GREP_DIRS = ["/run", "/tmp", "/etc", "/home", "/root", "/var", "/dev/shm", "/srv", "/opt", "/mnt"]

# Every /proc/*/environ and cmdline the sandbox's user can read, searched
# for the value read from stdin (never given in argv).
PROC_SCAN = r"""
import os, sys
value = sys.stdin.read().encode()
hits, read = [], 0
for pid in os.listdir("/proc"):
    if not pid.isdigit():
        continue
    for what in ("environ", "cmdline"):
        try:
            with open(f"/proc/{pid}/{what}", "rb") as f:
                data = f.read()
        except OSError:
            continue
        read += 1
        if value in data:
            hits.append(f"/proc/{pid}/{what}")
print(read, *hits)
"""

INSIDE = r"""
import json, os, subprocess, sys
port = int(sys.argv[1])
r = subprocess.run(["curl", "-sS", "--max-time", "10", "--noproxy", "*", "--resolve",
                    f"api.github.test:{port}:127.0.0.1", f"https://api.github.test:{port}/from-run"],
                   capture_output=True, text=True)
print(json.dumps({"rc": r.returncode, "out": r.stdout, "err": r.stderr, "env": dict(os.environ),
                  "uid": os.getuid()}), flush=True)
sys.stdin.readline()
"""


def test_request_from_egressctl_run_arrives_with_the_header_and_the_value_is_nowhere_inside(cred):
    env, cli = cred.env, cred.cli
    instance = "cred-run"
    before = len(cred.https.seen("/from-run"))
    p = env.daemon.popen_run("--policy", "creds", "--instance", instance, "--netns", "host",
                             "--user", "nobody", "--", PYTHON, "-c", INSIDE, str(cred.https.port),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        line = read_line(p.stdout, 30, "the sandbox's curl result")
        assert line, p.stderr.read() if p.poll() is not None else "no output"
        inside = json.loads(line)
        assert inside["uid"] == 65534
        assert inside["rc"] == 0, inside["err"]
        assert "authorization_fields=1" in inside["out"], inside["out"]
        got = cred.https.seen("/from-run")[before:]
        assert len(got) == 1 and fields(got[0], "Authorization") == [f"Bearer {cred.shared}"], got
        assert env.daemon.stats(instance)["proxy"]["requests_injected"] == 1
        # Nothing the sandbox has holds the value: its environment,
        assert cred.shared not in json.dumps(inside)
        # its processes' environ and cmdline (read from outside),
        cgroup = env.daemon.instances()[instance]["cgroup"]
        pids = sandbox_pids(cgroup)
        assert pids, cgroup
        for pid in pids:
            for what in ("environ", "cmdline"):
                with open(f"/proc/{pid}/{what}", "rb") as f:
                    assert cred.shared.encode() not in f.read(), (pid, what)
        # /proc as the sandbox's user sees it,
        scan = as_nobody_in_mount_ns(pids[0], [PYTHON, "-c", PROC_SCAN], cred.shared)
        assert scan.returncode == 0, scan.stderr
        count, *hits = scan.stdout.split()
        assert int(count) > 0 and hits == [], scan.stdout
        # and every file it can read where files are kept.
        home = inside["env"].get("HOME")
        dirs = GREP_DIRS + ([home] if home and os.path.isdir(home) else [])
        grep = ["timeout", "50", "grep", "-rlsF", "--binary-files=text", "-f", "-", *dirs]
        r = as_nobody_in_mount_ns(pids[0], grep, cred.shared)
        assert r.returncode in (0, 1, 2), (r.returncode, r.stderr)  # not 124: it finished
        assert r.stdout == "", f"the secret's value is readable in the sandbox: {r.stdout}"
        # The same search finds the value where it is (as root, outside): it can fail.
        r = subprocess.run(grep[2:4] + ["-f", "-", env.daemon.secrets_dir], input=cred.shared,
                           capture_output=True, text=True, timeout=30)
        assert r.stdout.strip() == os.path.join(env.daemon.secrets_dir, "github_token"), r
    finally:
        out, err = p.communicate("\n", timeout=30)
        cli.outputs += [out, err]
    assert p.returncode == 0, err


def test_two_instances_of_one_policy_send_their_own_values(cred):
    env, cli = cred.env, cred.cli
    mine = {i: new_value(i) for i in ("cred-a", "cred-b")}
    for instance, value in mine.items():
        cli.secret_set("github_token", value, instance=instance)
    listed = cli.json("secret", "list", "--json")
    assert {(s["name"], s.get("instance")) for s in listed["secrets"]} >= {
        ("github_token", None), ("github_token", "cred-a"), ("github_token", "cred-b")}, listed
    for instance in ("cred-a", "cred-b", "cred-c"):
        sb = env.sandbox("creds", instance)
        ca = sandbox_ca(env, instance, cred.dir)
        r = cli.keep(sb.curl("--cacert", ca, f"https://api.github.test:{cred.https.port}/per-{instance}"))
        assert r.returncode == 0 and "authorization_fields=1" in r.stdout, r.stderr
    seen = {i: fields(cred.https.seen(f"/per-{i}")[-1], "Authorization") for i in mine}
    assert seen == {i: [f"Bearer {v}"] for i, v in mine.items()}, seen
    # An instance without a value of its own gets the shared one.
    assert fields(cred.https.seen("/per-cred-c")[-1], "Authorization") == [f"Bearer {cred.shared}"]


def test_rotation_applies_to_the_next_request_on_an_open_keep_alive_connection(cred):
    env, cli = cred.env, cred.cli
    instance = "cred-rot"
    first, second = new_value("rot1"), new_value("rot2")
    cli.secret_set("github_token", first, instance=instance)
    sb, agent, ca = agent_in(env, cred, "creds", instance)
    req = dict(conn="k", host="api.github.test", port=cred.https.port, ca=ca)
    r1 = agent("get", path="/rot-1", **req)
    assert r1.get("status") == 200, r1
    cli.secret_set("github_token", second, instance=instance)
    r2 = agent("get", path="/rot-2", **req)
    assert r2.get("status") == 200 and r2["reused"] and r2["local_port"] == r1["local_port"], r2
    assert fields(cred.https.seen("/rot-1")[-1], "Authorization") == [f"Bearer {first}"]
    assert fields(cred.https.seen("/rot-2")[-1], "Authorization") == [f"Bearer {second}"]

    # Another tool replaces the file (a root-only file renamed over it): the
    # value is used within a second, on the same connection.
    third = new_value("rot3")
    write_secret_file(env, "github_token", instance, third)
    replaced = time.monotonic()
    sent_at = None
    i = 0
    while time.monotonic() - replaced < 2.0:  # bounded; the assertion below says 1 s
        i += 1
        sent = time.monotonic() - replaced
        r = agent("get", path=f"/rot-file-{i}", **req)
        assert r.get("status") == 200 and r["reused"], r
        if fields(cred.https.seen(f"/rot-file-{i}")[-1], "Authorization") == [f"Bearer {third}"]:
            sent_at = sent
            break
    assert sent_at is not None and sent_at <= 1.0, f"new value first sent {sent_at} s after the rename"
    st = sb.stats()["proxy"]
    assert st["tls_intercepted"] == 1 and st["requests_injected"] == 2 + i, st


def test_a_client_sent_authorization_is_replaced_not_duplicated(cred):
    env = cred.env
    sb, agent, ca = agent_in(env, cred, "creds", "cred-dup")
    r = agent("get", conn="d", host="api.github.test", port=cred.https.port, ca=ca, path="/dup",
              headers={"Authorization": ["Bearer the-clients-own", "Basic Y2xpZW50OnNlY3JldA=="],
                       "authorization": "token lower-case-too"})
    assert r.get("status") == 200 and "authorization_fields=1" in r["body"], r
    got = cred.https.seen("/dup")
    assert len(got) == 1 and fields(got[0], "Authorization") == [f"Bearer {cred.shared}"], got


def test_a_missing_secret_is_503_naming_it_and_nothing_reaches_the_origin(cred):
    env, cli = cred.env, cred.cli
    instance = "cred-missing"
    sb, agent, ca = agent_in(env, cred, "creds", instance)
    r = agent("get", conn="m", host="missing.test", port=cred.https.port, ca=ca, path="/missing")
    assert r.get("status") == 503, r
    assert "never_set_token" in r["body"] and instance in r["body"], r["body"]
    assert not [v for v in VALUES if v in r["body"]], r["body"]
    assert cred.https.seen("/missing") == []
    assert sb.stats()["proxy"]["requests_injected"] == 0
    events = wait_events(env, instance, 1, predicate=lambda e: "never_set_token" in e.get("reason", ""))
    assert events and events[0].get("handler") == "missing-auth", events
    assert events[0]["host"] == "missing.test", events
    cli.outputs.append(json.dumps(events))


def test_a_host_other_than_the_sni_never_receives_the_credential(cred):
    env = cred.env
    sb, agent, ca = agent_in(env, cred, "creds", "cred-front")
    # The credential's host as Host on a connection made for another, and the other way round.
    r = agent("get", conn="a", host="side.test", port=cred.https.port, ca=ca, path="/fronted-1",
              headers={"Host": "api.github.test"})
    assert r.get("status") == 421, r
    r = agent("get", conn="b", host="api.github.test", port=cred.https.port, ca=ca,
              path="/fronted-2", headers={"Host": "side.test"})
    assert r.get("status") == 421, r
    assert cred.https.seen("/fronted") == []
    assert sb.stats()["proxy"]["requests_injected"] == 0


@pytest.mark.parametrize("policy,allowed", [("creds", False), ("creds-plain", True)])
def test_a_credential_over_plain_http_is_503_unless_the_policy_allows_it(cred, policy, allowed):
    env, cli = cred.env, cred.cli
    instance = f"cred-{policy}"
    sb = env.sandbox(policy, instance)
    path = f"/plain-{policy}"
    r = cli.keep(sb.curl("-w", "\n%{http_code}", f"http://plain.test:{cred.http.port}{path}"))
    got = cred.http.seen(path)
    if allowed:
        assert r.stdout.endswith("\n200"), r.stdout + r.stderr
        assert len(got) == 1 and fields(got[0], "Authorization") == [f"Bearer {cred.shared}"], got
        assert sb.stats()["proxy"]["requests_injected"] == 1
    else:
        assert r.stdout.endswith("\n503"), r.stdout + r.stderr
        assert "plain HTTP" in r.stdout, r.stdout
        assert got == []
        assert sb.stats()["proxy"]["requests_injected"] == 0
        events = wait_events(env, instance, 1, predicate=lambda e: "plain HTTP" in e.get("reason", ""))
        assert events and events[0].get("handler") == "github-auth", events


def test_secret_rm_falls_back_to_the_shared_value_on_the_next_request(cred):
    env, cli = cred.env, cred.cli
    instance = "cred-rm"
    own = new_value("own")
    cli.secret_set("github_token", own, instance=instance)
    sb, agent, ca = agent_in(env, cred, "creds", instance)
    req = dict(conn="k", host="api.github.test", port=cred.https.port, ca=ca)
    assert agent("get", path="/rm-1", **req).get("status") == 200
    cli("secret", "rm", "github_token", "--instance", instance)
    r = agent("get", path="/rm-2", **req)
    assert r.get("status") == 200 and r["reused"], r
    assert fields(cred.https.seen("/rm-1")[-1], "Authorization") == [f"Bearer {own}"]
    assert fields(cred.https.seen("/rm-2")[-1], "Authorization") == [f"Bearer {cred.shared}"]


@pytest.mark.parametrize("label", ["crlf", "group-readable"])
def test_an_unusable_value_is_503_and_never_sent(cred, label):
    env = cred.env
    instance = f"cred-{label}"
    if label == "crlf":  # header injection through the secret's own value
        value = f"v-{uuid.uuid4().hex}\r\nX-Injected: {uuid.uuid4().hex}"
        write_secret_file(env, "github_token", instance, value)
    else:  # a file others may read is not a secret any more
        value = f"v-{uuid.uuid4().hex}"
        write_secret_file(env, "github_token", instance, value, mode=0o644)
    NEVER_SENT.append(value)
    # The store re-reads the dir every 300 ms: wait until it lists the file.
    deadline = time.monotonic() + 3
    while True:
        listed = [e for e in cred.cli.json("secret", "list", "--instance", instance, "--json")["secrets"]
                  if e.get("instance") == instance]
        if listed or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(listed) == 1 and listed[0]["usable"] == (label == "crlf"), listed
    if label != "crlf":
        assert "github_token" in listed[0]["problem"] or "group" in listed[0]["problem"], listed
    sb, agent, ca = agent_in(env, cred, "creds", instance)
    path = f"/unusable-{label}"
    r = agent("get", conn="u", host="api.github.test", port=cred.https.port, ca=ca, path=path)
    assert r.get("status") == 503, r
    if label == "crlf":
        assert "CR, LF or NUL" in r["body"] and "Authorization" in r["body"], r["body"]
    else:
        assert "github_token" in r["body"] and instance in r["body"], r["body"]
    assert value not in r["body"] and value.split("\r")[0] not in r["body"], r["body"]
    assert cred.https.seen(path) == []
    assert sb.stats()["proxy"]["requests_injected"] == 0


def test_a_missing_secret_is_refused_in_audit_mode_too(cred):
    env = cred.env
    sb, agent, ca = agent_in(env, cred, "creds-audit", "cred-audit")
    r = agent("get", conn="m", host="missing.test", port=cred.https.port, ca=ca,
              path="/missing-audit")
    assert r.get("status") == 503 and "never_set_token" in r["body"], r
    assert cred.https.seen("/missing-audit") == []


def test_a_credential_handler_binds_only_to_named_hosts_at_runtime(cred):
    env, cli = cred.env, cred.cli
    instance = "cred-bind"
    sb, agent, ca = agent_in(env, cred, "creds", instance)
    r = cli("handler", "set", instance, "github-auth", check=False)
    assert r.returncode == 1 and "--host" in r.stderr, r.stderr
    assert [b for b in cli.handler_list(instance)["bindings"] if b["level"] == "instance"] == []
    r = agent("get", conn="s", host="side.test", port=cred.https.port, ca=ca, path="/bind-1")
    assert r.get("status") == 200 and "authorization_fields=0" in r["body"], r
    cli("handler", "set", instance, "github-auth", "--host", "side.test")
    r = agent("get", conn="s", host="side.test", port=cred.https.port, ca=ca, path="/bind-2")
    assert r.get("status") == 200 and r["reused"] and "authorization_fields=1" in r["body"], r
    assert fields(cred.https.seen("/bind-2")[-1], "Authorization") == [f"Bearer {cred.shared}"]
    cli("handler", "clear", instance, "--host", "side.test")
    r = agent("get", conn="s", host="side.test", port=cred.https.port, ca=ca, path="/bind-3")
    assert r.get("status") == 200 and "authorization_fields=0" in r["body"], r


def test_no_secret_value_in_the_log_the_audit_file_or_any_cli_output(cred):
    """Runs last: everything the module did is there to search."""
    env, cli = cred.env, cred.cli
    instances = list(env.daemon.instances())
    for instance in instances:
        cli("stats", instance, "--json")
        cli("events", "--json", "--instance", instance)
        cli("handler", "list", instance, "--json")
    cli("secret", "list", "--json")
    cli("secret", "list")
    cli("status")
    cli("list", "--json")
    audit = ""
    for name in sorted(os.listdir(env.daemon.state_dir)):
        if name.startswith("audit.jsonl"):
            with open(os.path.join(env.daemon.state_dir, name), errors="replace") as f:
                audit += f.read()
    assert "never_set_token" in audit  # the audit file has this module's events
    log = "\n".join(env.daemon.history)
    assert "api.github.test" in log or "github_token" in log or "creds" in log
    places = {"daemon log": log, "audit file": audit, "egressctl outputs": "\n".join(cli.outputs)}
    leaks = [(where, v) for where, text in places.items() for v in VALUES + NEVER_SENT
             if v in text or v.split("\r")[0] in text]
    assert leaks == [], leaks
    # The values were really used: each reached an origin (the search is not vacuous).
    assert len(VALUES) >= 2 and cred.shared in VALUES
    sent = json.dumps([r["headers"] for r in cred.https.requests + cred.http.requests])
    assert [v for v in VALUES if v not in sent] == []
    assert [v for v in NEVER_SENT if v.split("\r")[0] in sent] == []
