"""The restart window: the pinned programs keep redirecting a sandbox's
connections to the proxy port while egressd is down and while a new egressd
starts. A connection that reaches the new proxy before the sandboxes are
re-adopted must wait (listen backlog), never be accepted and closed as an
"unknown sandbox": every attempt either fails to connect (nothing listens
yet) or gets the origin's answer.

The same for DNS queries (answered, never dropped), and for `attach` of a
cgroup that is already connecting (its view is published before the kernel
redirects it).

Many attached sandboxes make re-adopting take long enough for a client
connecting back to back to land in the window."""
import json
import os
import subprocess
import time
import uuid

import pytest

from conftest import CGROUP2, PYTHON, Sandbox, kill_cgroup, read_line, run_each, write_policy

FILLER_SANDBOXES = 40

# The sandbox side of every test here, in three parts: PROBE_START, an
# `attempt(t, n)` returning [sent, connected or None, done, outcome] with the
# outcome OK on success, and PROBE_LOOP. It says "waiting" (it runs in its
# cgroup, in its namespace) and waits for "go", then THREADS threads make
# attempts back to back, each outcome with its monotonic times. Prints
# "served" at its first success and "down" at its first failure after that.
# On "ready" it goes on until AFTER more successes, then prints every
# outcome as JSON.
PROBE_START = r"""
import errno, json, socket, sys, threading, time
THREADS, AFTER = {threads}, {after}
results, lock, stop = [], threading.Lock(), threading.Event()
said = set()
ready_at, served_after = [None], [0]
def say(word):
    with lock:
        if word not in said:
            said.add(word)
            print(word, flush=True)
"""
PROBE_LOOP = r"""
def run(t):
    n = 0
    while not stop.is_set():
        n += 1
        r = attempt(t, n)
        with lock:
            results.append(r)
            if ready_at[0] is not None and r[0] > ready_at[0] and r[3] == OK:
                served_after[0] += 1
                if served_after[0] >= AFTER:
                    stop.set()
        if r[3] == OK:
            say("served")
        elif "served" in said:
            say("down")
        if knock_again_soon(r):
            time.sleep(0.001)  # nothing listens: knock again soon, without spinning
print("waiting", flush=True)
assert sys.stdin.readline() == "go\n"
threads = [threading.Thread(target=run, args=(t,)) for t in range(THREADS)]
for t in threads:
    t.start()
if sys.stdin.readline() == "ready\n":
    ready_at[0] = time.monotonic()
    stop.wait(60)
stop.set()
for t in threads:
    t.join(20)
print(json.dumps(results), flush=True)
"""
# One request per connection, to ADDR:PORT with Host HOST.
CLIENT = PROBE_START + r"""
ADDR, PORT, HOST = {addr!r}, {port}, {host!r}
OK = "HTTP/1.1 200 OK"
def name(e):
    return errno.errorcode.get(getattr(e, "errno", None) or 0, type(e).__name__)
def attempt(t, n):
    sent = time.monotonic()
    try:
        c = socket.create_connection((ADDR, PORT), timeout=10)
    except OSError as e:
        return [sent, None, time.monotonic(), "connect failed " + name(e)]
    connected = time.monotonic()
    buf = b""
    try:
        c.sendall(b"GET /window-%d-%d HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                  % (t, n, HOST.encode()))
        while True:
            d = c.recv(65536)
            if not d:
                break
            buf += d
    except OSError as e:
        if not buf:
            return [sent, connected, time.monotonic(), "closed unanswered " + name(e)]
    finally:
        c.close()
    if not buf:
        return [sent, connected, time.monotonic(), "closed unanswered EOF"]
    return [sent, connected, time.monotonic(), buf.split(b"\r\n")[0].decode()]
def knock_again_soon(r):
    return r[1] is None
""" + PROBE_LOOP


@pytest.fixture
def fillers(env):
    """Makes sandboxes that make re-adopting (Registry::Restore) take a while;
    attached after the sandbox under test, they are re-adopted after it."""
    made = []

    def make():
        for _ in range(FILLER_SANDBOXES):
            made.append(Sandbox(env.daemon, "open"))

    try:
        yield make
    finally:
        run_each([(f"filler {sb.instance}", sb.cleanup) for sb in made])


class OwnNetnsCgroup:
    """A test-named cgroup whose process runs in a network namespace of its own."""

    def __init__(self, argv, **kw):
        self.path = os.path.join(CGROUP2, f"egressd-test-{uuid.uuid4().hex[:8]}")
        os.mkdir(self.path)
        self.proc = subprocess.Popen(["unshare", "-n", "sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"',
                                      self.path, *argv], **kw)

    def close(self):
        kill_cgroup(self.path)
        self.proc.kill()
        self.proc.wait(timeout=10)
        if os.path.isdir(self.path):
            os.rmdir(self.path)


def wait_started(proc):
    assert read_line(proc.stdout, 20, "the client in its cgroup") == "waiting\n"


def restart_under_client(env, proc, instance):
    """kill -9 and a new egressd while `proc` (CLIENT, waiting, attached as
    `instance`) connects; returns (its outcomes, killed_at, restart_at, ready_at)."""
    proc.stdin.write("go\n")
    proc.stdin.flush()
    assert read_line(proc.stdout, 20, "a first answer through the proxy") == "served\n"
    env.daemon.kill9()
    killed_at = time.monotonic()
    restarted = False
    try:
        assert read_line(proc.stdout, 20, "a refused connect while egressd is down") == "down\n"
        restart_at = time.monotonic()
        env.daemon.start()
        restarted = True
        ready_at = time.monotonic()
        assert instance in env.daemon.instances()  # re-adopted, not attached again
        proc.stdin.write("ready\n")
        proc.stdin.flush()
        results = json.loads(read_line(proc.stdout, 90, "the client's outcomes"))
        assert proc.wait(timeout=10) == 0
    finally:
        if not restarted:
            env.daemon.start()
    return results, killed_at, restart_at, ready_at


def assert_nothing_refused_in_the_window(env, results, killed_at, restart_at, ready_at):
    # Attempts begun once the old daemon's listeners were gone: the first
    # refused connect after the kill. (A killed daemon's io_uring is torn
    # down after its exit, so its listeners may still queue a connection for
    # a moment, then reset it: the kill's doing, not the new daemon's.)
    gone_at = min(r[2] for r in results if r[0] > killed_at and r[1] is None)
    attempts = [r for r in results if r[0] > gone_at]
    refused = [r for r in attempts if r[3] != "HTTP/1.1 200 OK" and not r[3].startswith("connect failed")]
    down = [r for r in attempts if r[3].startswith("connect failed")]
    # Connected while the new daemon was starting: the window was exercised.
    early = [r for r in attempts if r[1] is not None and restart_at < r[1] < ready_at]
    served_after = [r for r in attempts if r[0] > ready_at and r[3] == "HTTP/1.1 200 OK"]
    print(f"restart window: {len(attempts)} attempts once the old listeners were gone, {len(down)} could not connect, "
          f"{len(early)} connected before ready, {len(refused)} closed unanswered; "
          f"restart to ready {ready_at - restart_at:.3f} s")
    assert not refused, f"{len(refused)} connection(s) accepted and closed unanswered: {refused[:5]}"
    assert early, "no connection reached the new daemon before it was ready: the window was not exercised"
    assert all(r[3] == "HTTP/1.1 200 OK" for r in early), early[:5]
    assert served_after
    status = env.daemon.status()
    assert status["proxy"]["unknown_sandbox"] == 0, status["proxy"]
    logged = [l for l in env.daemon.log if "unknown sandbox" in l]
    assert not logged, logged


def test_own_netns_listeners_accept_only_once_their_sandbox_is_known(env, fillers):
    """A sandbox in its own network namespace: its proxy listener is opened
    again during the re-adoption itself. Re-adopted before the fillers, its
    listener exists while they are re-adopted."""
    ns = env.origin_netns()
    write_policy(env.daemon.policy_dir, "window-ns", allowed_hosts=["origin.test"])
    client = OwnNetnsCgroup([PYTHON, "-c", CLIENT.format(addr=ns.ip, port=env.netns_port, host="origin.test",
                                                          threads=2, after=20)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    instance = f"window-ns-{uuid.uuid4().hex[:6]}"
    try:
        wait_started(client.proc)
        env.daemon.ctl("attach", client.path, "--policy", "window-ns", "--instance", instance)
        assert env.daemon.instances()[instance]["netns"] != "host"
        fillers()
        outcome = restart_under_client(env, client.proc, instance)
    finally:
        env.daemon.ctl("detach", client.path, check=False)
        client.close()
    assert_nothing_refused_in_the_window(env, *outcome)


def test_connections_during_a_restart_wait_for_their_sandbox_instead_of_being_refused(env, fillers):
    sb = env.sandbox("open")
    fillers()
    proc = sb.popen(PYTHON, "-c", CLIENT.format(addr="127.0.0.1", port=env.http.port, host="allowed.test",
                                                threads=2, after=20),
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_started(proc)
        outcome = restart_under_client(env, proc, sb.instance)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert_nothing_refused_in_the_window(env, *outcome)


ATTACH_ROUNDS = 20


def test_attach_while_the_cgroup_connects_refuses_nothing_as_an_unknown_sandbox(env, fillers):
    """`egressctl attach` of a cgroup whose process is connecting: once the
    kernel redirects it, its sandbox is known to the proxy."""
    fillers()  # a longer Publish
    before = env.daemon.status()["proxy"]["unknown_sandbox"]
    for _ in range(ATTACH_ROUNDS):
        path = os.path.join(CGROUP2, f"egressd-test-{uuid.uuid4().hex[:8]}")
        os.mkdir(path)
        proc = subprocess.Popen(["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', path, PYTHON, "-c",
                                 CLIENT.format(addr="127.0.0.1", port=env.http.port, host="allowed.test",
                                               threads=2, after=20)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_started(proc)
            proc.stdin.write("go\n")
            proc.stdin.flush()
            # Served directly by the origin: not attached yet.
            assert read_line(proc.stdout, 20, "a first answer") == "served\n"
            env.daemon.ctl("attach", path, "--policy", "open", "--instance", f"attach-{uuid.uuid4().hex[:6]}")
            proc.stdin.write("ready\n")
            proc.stdin.flush()
            line = read_line(proc.stdout, 60, "the client's outcomes")
            if line == "down\n":  # the attach closed a socket opened before it
                line = read_line(proc.stdout, 60, "the client's outcomes")
            results = json.loads(line)
            assert proc.wait(timeout=10) == 0
        finally:
            proc.kill()
            proc.wait(timeout=10)
            env.daemon.ctl("detach", path, check=False)
            kill_cgroup(path)
            if os.path.isdir(path):
                os.rmdir(path)
        assert results[-1][3] == "HTTP/1.1 200 OK"
    refused = env.daemon.status()["proxy"]["unknown_sandbox"] - before
    assert refused == 0, f"{refused} connection(s) refused as an unknown sandbox during attach"


# The same with DNS over UDP: a connected socket per query, so that a query
# to a closed port fails at once (ECONNREFUSED) instead of timing out.
DNS_CLIENT = PROBE_START + r"""
sys.path.insert(0, {dns_dir!r})
from fakedns import build_query
OK = "rcode=0"
def attempt(t, n):
    sent = time.monotonic()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    try:
        s.connect(("127.0.0.1", 53))
        s.send(build_query(n % 65536, "allowed.test"))
        answer = s.recv(4096)
        outcome = "rcode=%d" % (answer[3] & 15)
    except socket.timeout:
        outcome = "unanswered"
    except OSError as e:
        outcome = "failed " + errno.errorcode.get(e.errno, str(e.errno))
    finally:
        s.close()
    return [sent, None, time.monotonic(), outcome]
def knock_again_soon(r):
    return r[3].startswith("failed")
""" + PROBE_LOOP


def test_dns_queries_during_a_restart_are_answered_once_their_sandbox_is_known(env, fillers):
    """The sandbox's DNS listener is opened again during the re-adoption: a
    query that reaches it before the sandbox is known waits for its answer."""
    sb = env.sandbox("open")
    fillers()
    proc = sb.popen(PYTHON, "-c", DNS_CLIENT.format(dns_dir=env.dns_dir, threads=2, after=20),
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_started(proc)
        results, killed_at, restart_at, ready_at = restart_under_client(env, proc, sb.instance)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    gone_at = min(r[2] for r in results if r[0] > killed_at and r[3].startswith("failed"))
    attempts = [r for r in results if r[0] > gone_at]
    unanswered = [r for r in attempts if r[3] != "rcode=0" and not r[3].startswith("failed")]
    print(f"dns restart window: {len(attempts)} queries, "
          f"{sum(r[3].startswith('failed') for r in attempts)} refused, {len(unanswered)} unanswered")
    assert not unanswered, f"{len(unanswered)} query(ies) went unanswered: {unanswered[:5]}"
    assert [r for r in attempts if r[0] > ready_at and r[3] == "rcode=0"]
