"""Learning mode: a `mode: audit` policy decides as usual but lets denied
traffic through, recording `"enforced": false` events in every layer; then
`egressctl policy suggest` writes the policy that, enforced, allows the same
run and nothing more."""

from audit_events import wait_events
from conftest import write_policy
from netns_helpers import Agent




def denies(got):
    return {(e["layer"], e.get("host") or "", e.get("address") or "", e.get("port") or 0) for e in got}


def run_agent(env, policy, instance, *more):
    return Agent(env.daemon.run_prefix("--policy", policy, "--instance", instance, *more))


def the_run(agent, env, ns):
    """What the 'agent' under study does; returns its observable results."""
    port = env.netns_port
    return [
        agent.ask("http", "origin.test", port, ns.ip),   # allowed by the base policy
        agent.ask("http", "origin2.test", port, ns.ip),  # denied by it
        agent.ask("dns", "origin3.test", ns.ip, "udp"),  # denied by it
        agent.ask("tcp", ns.ip, env.netns_raw_port),     # not HTTP: decided by address
    ]


def test_audit_lets_through_records_and_suggest_round_trips(env, tmp_path):
    ns = env.origin_netns()
    port = env.netns_port
    write_policy(env.daemon.policy_dir, "learner", mode="audit", allowed_hosts=["origin.test"],
                 deny_cidrs=["192.0.2.0/24"])
    agent = run_agent(env, "learner", "learn-1")
    try:
        results = the_run(agent, env, ns)
    finally:
        assert agent.close() == 0
    assert results[0].startswith("200 netns-origin host=origin.test")
    assert results[1].startswith("200 netns-origin host=origin2.test"), results  # let through
    assert results[2] == f"rcode=0 {ns.ip}"  # relayed, not NXDOMAIN
    assert results[3] == "answered <!DOCTYPE HTML>", results  # the origin's error page
    got = wait_events(env, "learn-1", 3)
    # The three denies of the base policy, each let through: a host not allowed,
    # a name not allowed, non-HTTP TCP no allow_tcp covers.
    assert denies(got) == {("proxy", "origin2.test", ns.ip, port), ("dns", "origin3.test", "", 53),
                           ("proxy", "", ns.ip, env.netns_raw_port)}, got
    assert all(e["enforced"] is False for e in got), got
    table = env.daemon.ctl("events", "--instance", "learn-1").stdout.splitlines()[1:]
    assert table and all(line.endswith("[audit mode: let through]") for line in table), table

    # The instance ended; the daemon still has what it did, even after a restart.
    suggested = env.daemon.ctl("policy", "suggest", "--instance", "learn-1").stdout
    env.daemon.kill9()
    env.daemon.start()
    assert env.daemon.ctl("policy", "suggest", "--instance", "learn-1").stdout == suggested
    assert "name: learner-learned" in suggested
    assert not [l for l in suggested.splitlines() if l.startswith("mode:")]  # enforce: the default
    path = tmp_path / "learned.yaml"
    path.write_text(suggested)
    checked = env.daemon.ctl("policy", "check", str(path)).stdout
    assert "deny by default" in checked
    for host in ("origin.test", "origin2.test", "origin3.test"):
        assert f'"{host}"' in suggested
    assert f'"{ns.ip}:{env.netns_raw_port}"' in suggested
    assert '"192.0.2.0/24"' in suggested  # deny_cidrs kept

    # Enforced, it allows the same run...
    agent = run_agent(env, str(path), "learn-2")
    try:
        again = the_run(agent, env, ns)
        # ... and nothing more.
        unseen_host = agent.ask("http", "unseen.test", port, ns.ip)
        unseen_name = agent.ask("dns", "allowed.test", ns.ip, "udp")
        unseen_port = agent.ask("tcp", ns.ip, port)  # HTTP's port: only by name
    finally:
        assert agent.close() == 0
    assert [r.split(" path")[0] for r in again] == [r.split(" path")[0] for r in results]
    assert unseen_host.startswith("403 ")
    assert unseen_name == "rcode=3"
    assert unseen_port == "closed", unseen_port  # closed by egressd, not a timeout or a dead daemon
    # Those three were denied, enforced, and nothing else was.
    got = wait_events(env, "learn-2", 3)
    assert denies(got) == {("proxy", "unseen.test", ns.ip, port), ("dns", "allowed.test", "", 53),
                           ("proxy", "", ns.ip, port)}, got
    assert all(e["enforced"] is True for e in got), got


def test_audit_kernel_layer_and_unexpressible_traffic(env):
    # The host namespace: traffic the kernel lets through has somewhere to go.
    write_policy(env.daemon.policy_dir, "learner-cidr", mode="audit", deny_cidrs=["127.0.0.1/32"])
    agent = run_agent(env, "learner-cidr", "learn-k", "--netns", "host")
    try:
        # deny_cidrs in the kernel: reported, then on to the proxy, which lets it through too.
        assert agent.ask("http", "allowed.test", env.http.port, "127.0.0.1").startswith("200 ")
        assert agent.ask("udp", "127.0.0.1", 9) == "sent"  # UDP other than DNS: let through
        got = wait_events(env, "learn-k", 4)
        suggested = env.daemon.ctl("policy", "suggest", "--instance", "learn-k").stdout
    finally:
        assert agent.close() == 0
    kernel = {(e["reason"], e["address"], e["port"]) for e in got if e["layer"] == "kernel"}
    # Every decision that would have denied is reported: the datagram hits deny_cidrs and the UDP rule.
    assert kernel == {("deny_cidrs", "127.0.0.1", env.http.port), ("deny_cidrs", "127.0.0.1", 9),
                      ("UDP other than DNS", "127.0.0.1", 9)}
    proxy = [e for e in got if e["layer"] == "proxy"]
    assert [e["host"] for e in proxy] == ["allowed.test"]  # its address is in deny_cidrs
    assert all(e["enforced"] is False for e in got)
    assert "# Seen, and no policy can allow it: UDP to 127.0.0.1:9" in suggested


def test_suggest_refuses_what_it_cannot_know(env):
    r = env.daemon.ctl("policy", "suggest", "--instance", "never-ran", check=False)
    assert r.returncode == 1 and "never-ran" in r.stderr
    agent = run_agent(env, "open", "enforcing")
    try:
        r = env.daemon.ctl("policy", "suggest", "--instance", "enforcing", check=False)
        assert r.returncode == 1 and "enforce mode" in r.stderr
    finally:
        assert agent.close() == 0


def test_a_running_instance_keeps_its_observations_across_a_restart(env):
    write_policy(env.daemon.policy_dir, "learner-live", mode="audit", allowed_hosts=["nothing.test"])
    agent = run_agent(env, "learner-live", "learn-live", "--netns", "host")
    try:
        assert agent.ask("http", "allowed.test", env.http.port, "127.0.0.1").startswith("200 ")
        env.daemon.stop()  # a graceful stop writes what it saw
        env.daemon.start()
        assert agent.ask("http", "other.test", env.http.port, "127.0.0.1").startswith("200 ")
        suggested = env.daemon.ctl("policy", "suggest", "--instance", "learn-live").stdout
        assert '"allowed.test"' in suggested and '"other.test"' in suggested, suggested
    finally:
        assert agent.close() == 0
