"""Capacity limits of the proxy (issue 13): a sandbox holds at most
--max-connections-per-sandbox proxied connections, those past it are
refused at once (counted, an event) while other sandboxes are served; and
when egressd runs out of file descriptors new connections are refused
cleanly (closed, or 502), nothing leaves unproxied, and it recovers when
descriptors come back."""
import json
import os
import subprocess
import time

from conftest import PYTHON, Daemon, Sandbox, read_line, write_policy
from scripted_origin import ScriptedOrigin, proxy_events, read_head

LIMIT = 50
EGRESSD_FLAGS = {"max_connections_per_sandbox": LIMIT}


def wait_for(predicate, timeout=10, what="a condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.05)


# Opens N connections through the proxy and holds them. On "check" it
# reports which were closed by the proxy (readable: EOF or reset; nothing is
# ever sent to them), on "close" it closes them all.
HOLD = """
import json, select, socket, sys, time
N, PORT, EXPECT = {n}, {port}, {expect}
conns = [socket.create_connection(("127.0.0.1", PORT), timeout=10) for _ in range(N)]
print(json.dumps({{"opened": len(conns)}}), flush=True)
sys.stdin.readline()
closed = set()
deadline = time.monotonic() + 5
while len(closed) < EXPECT and time.monotonic() < deadline:
    p = select.poll()
    by_fd = {{}}
    for i, c in enumerate(conns):
        if i not in closed:
            p.register(c, select.POLLIN)
            by_fd[c.fileno()] = i
    for fd, _ in p.poll(100):
        i = by_fd[fd]
        try:
            data = conns[i].recv(1)
        except ConnectionResetError:
            data = b""
        if data:
            raise SystemExit("a held connection got bytes")
        closed.add(i)
print(json.dumps({{"closed": sorted(closed)}}), flush=True)
sys.stdin.readline()
for c in conns:
    c.close()
print("done", flush=True)
"""


def ok_origin():
    def script(c):
        c.head = read_head(c)
        if c.head is not None:
            c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

    return ScriptedOrigin(script)


def test_connections_past_the_per_sandbox_limit_are_refused_and_others_served(env):
    flood = env.sandbox("open")
    other = env.sandbox("open")
    n = LIMIT + 30
    proc = flood.popen(PYTHON, "-c", HOLD.format(n=n, port=env.http.port, expect=30),
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
    try:
        opened = json.loads(read_line(proc.stdout, 20, "opened connections"))
        assert opened["opened"] == n
        # The proxy has decided on every one when open + refused adds up.
        def decided():
            p = flood.stats()["proxy"]
            return p["open_connections"] + p["connections_refused_limit"] == n
        wait_for(decided, what="decision on every connection")
        p = flood.stats()["proxy"]
        assert p["open_connections"] == LIMIT and p["connections_refused_limit"] == 30, p
        assert p["connections"] == LIMIT, p
        # Another sandbox is served meanwhile, untouched by the limit.
        r = other.curl(f"http://allowed.test:{env.http.port}/other")
        assert r.returncode == 0 and "path=/other" in r.stdout, r.stderr
        assert other.stats()["proxy"]["connections_refused_limit"] == 0
        # The 30 refused were closed at once, the 50 others are held.
        proc.stdin.write("check\n")
        proc.stdin.flush()
        closed = json.loads(read_line(proc.stdout, 15, "closed connections"))["closed"]
        assert len(closed) == 30, closed
        # One more from the same sandbox is refused too, before any request.
        before = len(env.http.requests)
        r = flood.curl(f"http://allowed.test:{env.http.port}/over")
        assert r.returncode != 0, r.stdout
        assert [q["path"] for q in env.http.requests[before:]] == []
        assert flood.stats()["proxy"]["connections_refused_limit"] == 31
        events = [e for e in proxy_events(env, flood.instance)
                  if "--max-connections-per-sandbox" in e["reason"]]
        assert events and events[0]["enforced"] is True, events
        assert "has 50 connections open" in events[0]["reason"], events
        # At most one event a second: 31 refusals within a few seconds.
        assert len(events) <= 5, events
        # Once the 80 are closed the sandbox is served again.
        proc.stdin.write("close\n")
        proc.stdin.flush()
        assert read_line(proc.stdout, 15, "close").strip() == "done"
        wait_for(lambda: flood.stats()["proxy"]["open_connections"] == 0, what="slots freed")
        r = flood.curl(f"http://allowed.test:{env.http.port}/again")
        assert r.returncode == 0 and "path=/again" in r.stdout, r.stderr
    finally:
        proc.kill()
        proc.wait(timeout=10)


# Fills the sandbox's slots, then opens connection after connection for a
# while (each is refused at once), and reports how many it opened.
FLOOD_LOOP = """
import socket, sys, time
PORT = {port}
held = [socket.create_connection(("127.0.0.1", PORT), timeout=10) for _ in range({limit})]
print("full", flush=True)
sys.stdin.readline()  # egressd has taken them all: go
n = 0
end = time.monotonic() + {seconds}
while time.monotonic() < end:
    try:
        c = socket.create_connection(("127.0.0.1", PORT), timeout=5)
        n += 1
        c.recv(1)
        c.close()
    except OSError:
        pass
print(n, flush=True)
"""


def test_a_flooding_sandbox_costs_others_nothing_and_gets_an_event_a_second(env):
    flood = env.sandbox("open")
    other = env.sandbox("open")
    proc = flood.popen(PYTHON, "-c", FLOOD_LOOP.format(port=env.http.port, limit=LIMIT, seconds=3),
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
    try:
        assert read_line(proc.stdout, 20, "slots full").strip() == "full"
        # Connected is not yet accepted: the flood starts once egressd holds
        # all of them (else its first connection may take the last free slot
        # and, accepted like any other, wait for a request).
        wait_for(lambda: flood.stats()["proxy"]["open_connections"] == LIMIT, what="slots taken")
        proc.stdin.write("go\n")
        proc.stdin.flush()
        # Meanwhile the other sandbox is served, each request promptly.
        for i in range(10):
            t0 = time.monotonic()
            r = other.curl(f"http://allowed.test:{env.http.port}/during-{i}")
            assert r.returncode == 0 and f"path=/during-{i}" in r.stdout, r.stderr
            assert time.monotonic() - t0 < 2
        opened = int(read_line(proc.stdout, 20, "flood count"))
        assert proc.wait(timeout=10) == 0, proc.stderr.read()
        refused = flood.stats()["proxy"]["connections_refused_limit"]
        assert opened > 100 and refused >= opened - 5, (opened, refused)
        events = [e for e in proxy_events(env, flood.instance)
                  if "--max-connections-per-sandbox" in e["reason"]]
        assert 1 <= len(events) <= 5, (len(events), refused)  # 3 s of flood: one a second
        assert other.stats()["proxy"]["connections_refused_limit"] == 0
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_max_connections_flag_range(env, tmp_path):
    for bad in ("0", "1048577", "x"):
        r = subprocess.run(env.daemon.argv(max_connections_per_sandbox=bad,
                                           state_dir=str(tmp_path / "s")),
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 2 and "--max-connections-per-sandbox" in r.stderr, \
            (bad, r.returncode, r.stderr)


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


# Opens N connections through the proxy, then sends a request on each and
# reports what each got: "200", "502", "closed" (refused) or "hung".
FLOOD = """
import json, socket, time
N, PORT = {n}, {port}
conns = []
for _ in range(N):
    c = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    conns.append(c)
req = b"GET /fd HTTP/1.1\\r\\nHost: allowed.test:%d\\r\\nConnection: close\\r\\n\\r\\n" % PORT
outcomes = []
deadline = time.monotonic() + 20
for c in conns:
    got = b""
    try:
        c.sendall(req)
        while True:
            c.settimeout(max(0.01, deadline - time.monotonic()))
            d = c.recv(65536)
            if not d:
                break
            got += d
    except socket.timeout:
        outcomes.append("hung")
        continue
    except OSError:
        pass
    outcomes.append(got.split(b" ")[1].decode() if got.startswith(b"HTTP/1.1 ") else "closed")
for c in conns:
    c.close()
print(json.dumps({{"outcomes": outcomes}}))
"""


class FdLimitedDaemon(Daemon):
    """A daemon started under `prlimit --nofile=N:N`: its soft and hard limit
    are N from its first instruction (the proxy's accepts are armed with the
    limit of that moment, so lowering it under a running daemon would not
    reach them)."""

    def __init__(self, nofile, *args, **kw):
        super().__init__(*args, **kw)
        self.nofile = nofile

    def argv(self, **overrides):
        return (["prlimit", f"--nofile={self.nofile}:{self.nofile}", "--"] + self.sanitizer_env() +
                super().argv(**overrides))

    def sanitizer_env(self):
        """Under UBSan (tools/test.sh --sanitize), its vptr check needs a free
        descriptor: it probes an object's memory through a pipe, and takes a
        failed pipe() for unreadable memory. In a daemon out of descriptors it
        reports valid objects as "invalid vptr ... <memory cannot be
        printed>" (a UBSan suppression cannot match: it needs that memory).
        This daemon goes on after a UBSan report, and check_sanitizers drops
        exactly those reports; every other report still fails the test."""
        options = os.environ.get("UBSAN_OPTIONS")
        return [] if options is None else ["env", f"UBSAN_OPTIONS={options}:halt_on_error=0"]

    def check_sanitizers(self):
        history = self.history
        false_vptr = set()
        for i, line in enumerate(history):
            if ("runtime error:" in line and "does not point to an object of type" in line and
                    any("note: object has invalid vptr" in l for l in history[i + 1:i + 3]) and
                    any("<memory cannot be printed>" in l for l in history[i + 1:i + 4])):
                false_vptr.add(i)
        self.history = [l for i, l in enumerate(history) if i not in false_vptr]
        try:
            super().check_sanitizers()
        finally:
            self.history = history


def test_out_of_fds_connections_are_refused_cleanly_and_the_daemon_recovers(env, tmp_path):
    # About 16 descriptors above what an idle daemon holds (the module's
    # daemon has the same configuration).
    limit = fd_count(env.daemon.proc.pid) + 16
    d = FdLimitedDaemon(limit, str(tmp_path), env.dns.address)
    origin = ok_origin()
    sb = None
    try:
        d.start()
        pid = d.proc.pid
        assert d.wait_log(lambda l: f"file descriptor limit: {limit}" in l)
        write_policy(d.policy_dir, "open")
        sb = Sandbox(d, "open")
        r = sb.curl(f"http://allowed.test:{origin.port}/warm")
        assert r.returncode == 0 and r.stdout == "ok", r.stderr
        wait_for(lambda: sb.stats()["proxy"]["open_connections"] == 0, what="idle proxy")
        baseline = fd_count(pid)
        assert 4 <= limit - baseline <= 40, (limit, baseline)
        seen_before = len(origin.conns)
        allowed_before = sb.stats()["proxy"]["requests_allowed"]
        n = 3 * limit
        r = sb.python(FLOOD.format(n=n, port=origin.port), timeout=90)
        assert r.returncode == 0, r.stderr
        result = json.loads(r.stdout)
        outcomes = result["outcomes"]
        # Every connection was answered or closed; none hung.
        assert len(outcomes) == n and "hung" not in outcomes, outcomes
        assert set(outcomes) <= {"200", "502", "closed"}, outcomes
        assert outcomes.count("closed") > 0, outcomes
        # Nothing reached the origin but what egressd forwarded: every
        # connection it got is a request the proxy allowed and did not
        # answer 502 itself (a connection past the proxy would be one more).
        reached = len(origin.conns) - seen_before
        allowed = sb.stats()["proxy"]["requests_allowed"] - allowed_before
        assert outcomes.count("200") <= reached <= allowed - outcomes.count("502"), \
            (reached, allowed, outcomes)
        # Alive, answering once the flood's connections are closed, and it
        # counted and logged what happened.
        assert d.proc.poll() is None
        wait_for(lambda: sb.stats()["proxy"]["open_connections"] == 0, what="slots freed")
        status = d.status()["proxy"]
        assert status["accept_errors"] > 0 and status["refused_no_fd"] > 0, status
        assert d.wait_log(lambda l: "out of file descriptors or memory" in l)
        # Descriptors are back: served again, and at the baseline.
        r = sb.curl(f"http://allowed.test:{origin.port}/after")
        assert r.returncode == 0 and r.stdout == "ok", r.stderr
        wait_for(lambda: fd_count(pid) <= baseline, what=f"fd count back to {baseline}")
    except BaseException:
        print("DAEMONLOG", "\n".join(d.history[-80:]), "RC", d.proc.poll())
        raise
    finally:
        if sb:
            sb.cleanup()
        d.cleanup()
        origin.close()
