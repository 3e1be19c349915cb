"""Sandboxes in network namespaces of their own: `egressctl run --netns new`,
attaching to an `unshare -n` process, and a daemon restart keeping them
enforced. Origins live in a namespace the test creates, behind a veth pair."""
import json
import os
import subprocess

from conftest import write_policy
from netns_helpers import Agent, UnsharedProcess


def test_run_in_new_netns_reaches_origins_only_through_the_policy(env):
    ns = env.origin_netns()
    write_policy(env.daemon.policy_dir, "ns-strict", allowed_hosts=["origin.test"])
    agent = Agent(env.daemon.run_prefix("--policy", "ns-strict", "--instance", "ns-run"))
    try:
        listed = env.daemon.instances()["ns-run"]
        assert listed["netns"].startswith(os.path.join(env.daemon.state_dir, "netns"))
        assert listed["transient"] is True
        row = [l for l in env.daemon.ctl("list").stdout.splitlines() if " ns-run " in l]
        assert len(row) == 1 and row[0].split()[2:5] == ["ns-strict", "enforce", "own"], row
        port = env.netns_port
        assert agent.ask("http", "origin.test", port, ns.ip) == \
            f"200 netns-origin host=origin.test:{port} path=/"
        assert agent.ask("http", "origin2.test", port, ns.ip).startswith("403 ")
        # The sandbox's own loopback is its own: not redirected, not proxied.
        before = env.daemon.stats("ns-run")["proxy"]["connections"]
        assert agent.ask("local") == "local-hello"
        assert env.daemon.stats("ns-run")["proxy"]["connections"] == before
    finally:
        assert agent.close() == 0
    assert "ns-run" not in env.daemon.instances()
    assert os.listdir(os.path.join(env.daemon.state_dir, "netns")) == []


def test_netns_host_puts_loopback_under_the_policy(env):
    agent = Agent(env.daemon.run_prefix("--policy", "strict", "--netns", "host", "--instance", "host-run"))
    try:
        assert env.daemon.instances()["host-run"]["netns"] == "host"
        assert agent.ask("http", "allowed.test", env.http.port, "127.0.0.1").startswith("200 ")
        assert agent.ask("http", "other.test", env.http.port, "127.0.0.1").startswith("403 ")
    finally:
        assert agent.close() == 0



def test_attach_detects_the_netns_and_survives_a_restart(env):
    ns = env.origin_netns()
    write_policy(env.daemon.policy_dir, "ns-strict", allowed_hosts=["origin.test"])
    proc = UnsharedProcess()
    try:
        # No --netns: every process of the cgroup shares one namespace, not ours.
        attached = env.daemon.ctl("attach", proc.cgroup, "--policy", "ns-strict", "--instance",
                                  "unshared")
        # It runs as root with every capability: the operator hears about packet sockets.
        assert "egressctl: warning: 1 process(es)" in attached.stderr
        assert "CAP_NET_RAW" in attached.stderr
        info = env.daemon.instances()["unshared"]
        pin = info["netns"]
        assert pin.startswith(os.path.join(env.daemon.state_dir, "netns")) and os.path.ismount(pin)
        assert info["transient"] is False
        port = env.netns_port
        assert agent_ok(proc.agent, port, ns)

        # Restart: the listeners come back inside the namespace (same ports).
        env.daemon.kill9()
        env.daemon.start()
        after = env.daemon.instances()["unshared"]
        assert after["problem"] == ""
        assert (after["proxy_port"], after["dns_port"]) == (info["proxy_port"], info["dns_port"])
        assert agent_ok(proc.agent, port, ns)

        env.daemon.ctl("detach", "unshared")
        assert not os.path.exists(pin)
        # Not transient: the daemon leaves the cgroup and its processes alone.
        assert os.path.isdir(proc.cgroup) and proc.agent.proc.poll() is None
    finally:
        env.daemon.ctl("detach", "unshared", check=False)
        proc.close()


def agent_ok(agent, port, ns):
    allowed = agent.ask("http", "origin.test", port, ns.ip)
    denied = agent.ask("http", "origin2.test", port, ns.ip)
    assert allowed.startswith("200 netns-origin"), allowed
    assert denied.startswith("403 "), denied
    return True


def test_attach_with_explicit_netns_and_refusals(env):
    ns = env.origin_netns()
    write_policy(env.daemon.policy_dir, "ns-strict", allowed_hosts=["origin.test"])
    proc = UnsharedProcess()
    try:
        r = env.daemon.ctl("attach", proc.cgroup, "--policy", "ns-strict", "--netns", "/etc/hostname",
                           check=False)
        assert r.returncode != 0 and "is not a network namespace" in r.stderr
        assert "explicit" not in env.daemon.instances()
        env.daemon.ctl("attach", proc.cgroup, "--policy", "ns-strict", "--instance", "explicit",
                       "--netns", f"/proc/{proc.agent.pid}/ns/net")
        assert agent_ok(proc.agent, env.netns_port, ns)
        # A policy switch may name the same namespace again, not another one.
        env.daemon.ctl("attach", proc.cgroup, "--policy", "ns-strict", "--netns",
                       f"/proc/{proc.agent.pid}/ns/net")
        r = env.daemon.ctl("attach", proc.cgroup, "--policy", "ns-strict", "--netns", "host",
                           check=False)
        assert r.returncode == 1 and "detach it first" in r.stderr
        # The state file records the pin, so a restart finds the namespace again.
        with open(os.path.join(env.daemon.state_dir, "state.json")) as f:
            state = json.load(f)
        assert [s["netns"] for s in state["sandboxes"] if s["instance"] == "explicit"] == \
            [env.daemon.instances()["explicit"]["netns"]]
    finally:
        env.daemon.ctl("detach", "explicit", check=False)
        proc.close()


def test_own_netns_never_reaches_the_hosts_loopback(env):
    ns = env.origin_netns()
    before = len(env.http.requests)
    agent = Agent(env.daemon.run_prefix("--policy", "open", "--instance", "ns-loopback"))
    try:
        # allowed.test resolves to 127.0.0.1: the host's loopback, not the sandbox's.
        refused = agent.ask("http", "allowed.test", env.http.port, ns.ip)
        assert refused.startswith("403 ") and "is the host's loopback" in refused, refused
        # Nor any other address of the host (here the host's end of the veth).
        env.dns.records["hostside.test"] = [ns.host_ip]
        hostside = agent.ask("http", "hostside.test", env.netns_port, ns.ip)
        assert hostside.startswith("403 ") and "is the host's own" in hostside, hostside
        # 0.0.0.0 means this host to the kernel: the sandbox's own, so it stays local.
        own = agent.ask("http", "allowed.test", env.http.port, "0.0.0.0")
        assert own == "error ConnectionRefusedError: [Errno 111] Connection refused", own  # nothing listens there
        # Docker's embedded resolver address is never the sandbox's own business.
        assert agent.ask("udp", "127.0.0.11", 5353).startswith("error PermissionError")
        assert agent.ask("udp", "127.0.0.12", 5353) == "sent"  # the rest of 127/8 is
        # DNS to its own loopback still goes to egressd, under the policy.
        assert agent.ask("dns", "denied.test", "127.0.0.1", "udp") == "rcode=3"
        assert agent.ask("dns", "allowed.test", "127.0.0.1", "tcp") == "rcode=0 127.0.0.1"
    finally:
        assert agent.close() == 0
    assert len(env.http.requests) == before  # the host's origin saw nothing


def test_loopback_pass_is_only_for_the_sandboxes_namespace(env):
    """A process of the cgroup in the host's namespace gets no loopback pass."""
    write_policy(env.daemon.policy_dir, "ns-open", denied_hosts=["denied.test"])
    proc = UnsharedProcess()
    before = len(env.http.requests)
    try:
        env.daemon.ctl("attach", proc.cgroup, "--policy", "ns-open", "--instance", "mixed")
        assert env.daemon.instances()["mixed"]["netns"] != "host"
        r = subprocess.run(["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', proc.cgroup,
                            "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
                            f"http://127.0.0.1:{env.http.port}/", "-H", "Host: denied.test"],
                           capture_output=True, text=True, timeout=30)
        # Redirected like any destination, to listeners that live in the
        # sandbox's namespace: refused, and the origin never sees it.
        assert r.stdout == "000" and "Couldn't connect" in r.stderr, (r.stdout, r.stderr)
        assert len(env.http.requests) == before
    finally:
        env.daemon.ctl("detach", "mixed", check=False)
        proc.close()
