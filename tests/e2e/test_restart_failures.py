"""A daemon restarted into trouble: a sandbox whose policy file no longer
loads, whose listeners cannot be reopened, or whose DNS port another process
took meanwhile. The README promises fail closed in each case: everything the
sandbox sends is refused in the kernel (its config zeroed, "not configured"),
with a log line and `list` saying why, until it is fixed."""
import json
import socket
import subprocess
import threading
import time

from conftest import write_policy
from netns_helpers import UnsharedProcess

# What a host-namespace sandbox tries after the restart: a TCP connect to the
# test's origin, a UDP datagram to a loopback port, a DNS query. Each prints
# "ok" or the errno it failed with.
PROBE = """
import errno, socket, sys
def attempt(what, f):
    try:
        f()
        print(what, "ok")
    except OSError as e:
        print(what, errno.errorcode.get(e.errno, e.errno))
def tcp():
    socket.create_connection(("127.0.0.1", {http_port}), timeout=5).close()
def udp():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"x", ("127.0.0.1", {udp_port}))
def dns():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.sendto({query!r}, ("127.0.0.1", 53))
        s.recv(512)
attempt("tcp", tcp)
attempt("udp", udp)
attempt("dns", dns)
"""


class UdpSink:
    """A UDP socket on host loopback that counts what reaches it."""

    def __init__(self, port=0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopped.is_set():
            try:
                self.received.append(self.sock.recv(4096))
            except socket.timeout:
                continue
            except OSError:
                return

    def close(self):
        self.stopped.set()
        self.thread.join(timeout=5)
        self.sock.close()


def probe(sb, env, sink):
    from fakedns import build_query
    code = PROBE.format(http_port=env.http.port, udp_port=sink.port,
                        query=build_query(0x4321, "allowed.test"))
    r = sb.python(code)
    assert r.returncode == 0, r.stderr
    return dict(line.split() for line in r.stdout.splitlines())


def not_configured_events(env, after_seq):
    """Kernel events since after_seq of a config that is zero: deny all. The
    socket() call itself is refused, so they carry no destination."""
    events = [json.loads(l) for l in env.daemon.ctl("events", "--json").stdout.splitlines()]
    return [e for e in events if e["seq"] > after_seq and e["layer"] == "kernel" and
            e["reason"] == "sandbox not configured yet" and e["enforced"] is True]


def wait_not_configured_events(env, after_seq, count, timeout=5):
    """Kernel events reach the daemon within ~100 ms; the daemon's log line
    says they arrived, so this polls a bounded while."""
    deadline = time.monotonic() + timeout
    while len(not_configured_events(env, after_seq)) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return len(not_configured_events(env, after_seq)) >= count


def last_seq(env):
    lines = env.daemon.ctl("events", "--json").stdout.splitlines()
    return max([json.loads(l)["seq"] for l in lines] or [0])


def test_a_policy_that_no_longer_loads_at_restart_denies_everything(env):
    """An audit-mode sandbox (whose kernel config lets denies through) is
    the sharp case: after the restart nothing of the old config may remain."""
    d = env.daemon.policy_dir
    path = write_policy(d, "restart-broken", mode="audit", allowed_hosts=["allowed.test"])
    sb = env.sandbox("restart-broken")
    sink = UdpSink()
    requests = len(env.http.requests)
    try:
        # Before: audit mode lets everything through (and records it).
        assert probe(sb, env, sink) == {"tcp": "ok", "udp": "ok", "dns": "ok"}
        env.daemon.stop()
        with open(path, "w") as f:
            f.write("name: restart-broken\nallowed_hosts: [\n")  # no longer YAML
        env.daemon.start()
        # The log says which sandbox and why; `list` shows the problem.
        assert env.daemon.wait_log(lambda l: f"sandbox {sb.instance}: policy" in l and
                                   "failed to load" in l and "refus" in l), \
            "\n".join(env.daemon.log)
        listed = env.daemon.instances()[sb.instance]
        assert "restart-broken" in listed["problem"] and listed["policy"] == "", listed
        row = [l for l in env.daemon.ctl("list").stdout.splitlines() if sb.instance in l]
        assert len(row) == 1 and "  (" + listed["problem"].splitlines()[0] in row[0], row
        seq = last_seq(env)
        sent = len(sink.received)
        requests = len(env.http.requests)
        # Deny all, in the kernel: EPERM for TCP, UDP and DNS alike.
        assert probe(sb, env, sink) == {"tcp": "EPERM", "udp": "EPERM", "dns": "EPERM"}
        assert len(sink.received) == sent and len(env.http.requests) == requests
        # The kernel says why: the sandbox's config is the zeroed "not configured" one.
        assert env.daemon.wait_log(lambda l: "layer=kernel" in l and
                                   'reason="sandbox not configured yet"' in l), \
            "\n".join(env.daemon.log[-20:])
        assert wait_not_configured_events(env, seq, 3)  # tcp, udp, dns
        # Fixed and reloaded: the sandbox is back, under the fixed policy.
        write_policy(d, "restart-broken", allowed_hosts=["allowed.test"])
        env.daemon.ctl("policy", "reload")
        assert env.daemon.instances()[sb.instance]["problem"] == ""
        url = f"http://allowed.test:{env.http.port}/"
        assert sb.curl("-o", "/dev/null", "-w", "%{http_code}", url).stdout == "200"
        assert probe(sb, env, sink)["udp"] == "EPERM"  # enforced now, not audit
    finally:
        sink.close()
        if env.daemon.proc.poll() is not None:
            env.daemon.start()
        write_policy(d, "restart-broken", allowed_hosts=["allowed.test"])


def test_a_dns_port_taken_at_restart_moves_and_the_taker_gets_nothing(env):
    """The README: listeners come back "on the same ports when they are free".
    When another process took the sandbox's DNS port while egressd was down,
    the sandbox gets a new one, and the process that took it hears nothing."""
    from fakedns import build_query
    sb = env.sandbox("open")
    old = env.daemon.instances()[sb.instance]
    env.daemon.stop()
    taker = UdpSink(old["dns_port"])  # egressd's old DNS port, now someone else's
    try:
        env.daemon.start()
        now = env.daemon.instances()[sb.instance]
        assert now["problem"] == "" and now["dns_port"] not in (0, old["dns_port"]), (old, now)
        code = f"""
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto({build_query(0x2222, "allowed.test")!r}, ("127.0.0.1", 53))
print(s.recv(512)[:2].hex())
"""
        r = sb.python(code)
        assert r.stdout.strip() == "2222", r.stdout + r.stderr  # egressd answered
        assert taker.received == []
    finally:
        taker.close()
        if env.daemon.proc.poll() is not None:
            env.daemon.start()



def test_listeners_that_cannot_reopen_at_restart_deny_everything(env):
    """A sandbox in a namespace of its own whose namespace reference is gone
    at restart: egressd cannot reopen its listeners there. It must refuse
    everything (not send it to ports nobody of egressd's holds), say so, and
    stay that way, even through a `policy reload`."""
    ns = env.origin_netns()
    write_policy(env.daemon.policy_dir, "ns-listeners", allowed_hosts=["origin.test"])
    proc = UnsharedProcess()
    try:
        env.daemon.ctl("attach", proc.cgroup, "--policy", "ns-listeners", "--instance", "ns-lost")
        pin = env.daemon.instances()["ns-lost"]["netns"]
        port = env.netns_port
        assert proc.agent.ask("http", "origin.test", port, ns.ip).startswith("200 netns-origin")
        env.daemon.stop()
        subprocess.run(["umount", pin], check=True, timeout=10)  # the reference is gone
        env.daemon.start()
        assert env.daemon.wait_log(lambda l: "sandbox ns-lost: cannot open its listeners, "
                                   "everything it sends is refused" in l), "\n".join(env.daemon.log)
        listed = env.daemon.instances()["ns-lost"]
        assert listed["problem"].startswith("listeners: "), listed
        seq = last_seq(env)
        eperm = "error PermissionError: [Errno 1] Operation not permitted"
        assert proc.agent.ask("http", "origin.test", port, ns.ip) == eperm
        assert proc.agent.ask("dns", "origin.test", "127.0.0.1", "udp") == eperm
        assert wait_not_configured_events(env, seq, 2)
        # A reload re-reads its policy file but cannot give it listeners: still
        # refused, still listed with its problem.
        env.daemon.ctl("policy", "reload")
        assert env.daemon.instances()["ns-lost"]["problem"].startswith("listeners: ")
        assert proc.agent.ask("http", "origin.test", port, ns.ip) == eperm
        assert proc.agent.ask("dns", "origin.test", "127.0.0.1", "udp") == eperm
    finally:
        env.daemon.ctl("detach", "ns-lost", check=False)
        proc.close()
