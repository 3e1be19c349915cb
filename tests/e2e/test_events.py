"""Audit events: every deny, kernel and proxy, with who, where and why."""
import json
import os
import time

from audit_events import wait_events
from conftest import read_line, write_policy






def test_events_of_kernel_and_proxy_denies(env):
    write_policy(env.daemon.policy_dir, "audited", denied_hosts=["denied.test"], deny_cidrs=["127.0.0.3/32"])
    sb = env.sandbox("audited")
    other = env.sandbox("open")  # its events must not show under sb's instance
    other.curl(f"http://denied.test:{env.http.port}/")
    sb.python("import socket\ntry: socket.create_connection(('127.0.0.3', 81), timeout=5)\nexcept OSError: pass")
    sb.python("import socket\ntry: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', 443))\nexcept OSError: pass")
    sb.curl(f"http://denied.test:{env.http.port}/x")
    sb.curl("--cacert", env.ca, f"https://denied.test:{env.https.port}/")
    got = wait_events(env, sb.instance, 4)
    assert len(got) == 4, got
    assert all(e["instance"] == sb.instance and e["cgroup"] == sb.path for e in got)
    by = {(e["layer"], e["address"], e["port"]): e for e in got}
    cidr = by[("kernel", "127.0.0.3", 81)]
    assert cidr["reason"] == "deny_cidrs" and cidr["enforced"] is True
    assert by[("kernel", "127.0.0.1", 443)]["reason"] == "UDP other than DNS"
    http = by[("proxy", "127.0.0.1", env.http.port)]
    assert http["host"] == "denied.test" and "denied_hosts" in http["reason"]
    tls = by[("proxy", "127.0.0.1", env.https.port)]
    assert tls["host"] == "denied.test" and "SNI" in tls["reason"]
    assert [e["seq"] for e in got] == sorted(e["seq"] for e in got)
    # The same events are in the audit log file, one JSON object per line
    # (written by a thread of its own: once it caught up).
    deadline = time.monotonic() + 5
    while env.daemon.status()["audit"]["pending"] > 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    with open(os.path.join(env.daemon.state_dir, "audit.jsonl")) as f:
        logged = [json.loads(line) for line in f]
    assert {e["seq"] for e in got} <= {e["seq"] for e in logged}
    assert oct(os.stat(os.path.join(env.daemon.state_dir, "audit.jsonl")).st_mode & 0o777) == "0o600"
    # The human table names the layer and the reason.
    table = env.daemon.ctl("events", "--instance", sb.instance).stdout
    assert "kernel" in table and "deny_cidrs" in table and "denied.test" in table


def test_events_follow_streams_new_denies(env):
    import subprocess
    from conftest import EGRESSCTL
    sb = env.sandbox("open")
    p = subprocess.Popen([EGRESSCTL, "--socket", env.daemon.socket, "events", "--follow", "--json",
                          "--instance", sb.instance], stdout=subprocess.PIPE, text=True)
    try:
        sb.curl(f"http://denied.test:{env.http.port}/followed")
        line = read_line(p.stdout, 10, "the followed event")
        event = json.loads(line)
        assert event["layer"] == "proxy" and event["host"] == "denied.test"
    finally:
        p.kill()
        p.wait(timeout=10)
