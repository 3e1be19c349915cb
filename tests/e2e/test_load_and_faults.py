"""Load and fault tests (issue 13 §2), at sizes a 2-core CI machine runs in a
few seconds each; tools/bench/faults.sh runs the same scenarios at full
size. What the other bullets of §2 are covered by:

- the fd limit lowered and 3x connections opened: test_proxy_capacity.py
  (test_out_of_fds_connections_are_refused_cleanly_and_the_daemon_recovers);
- a second daemon on the same state dir (bpffs, socket): test_daemon_ops.py
  (test_second_daemon_on_the_same_*_is_refused, each checks the first serves).

Here: many idle keep-alive connections of one sandbox (egressd's RSS per
1,000 printed) while another sandbox is served; slowloris; bad upstreams,
with egressd's descriptor count back at its baseline after each; policy
reload and SIGHUP during a keep-alive stream; kill -9 during load."""
import json
import os
import re
import signal
import subprocess
import threading
import time

from conftest import PYTHON, free_port, read_line
from scripted_origin import ScriptedOrigin, read_head

EGRESSD_FLAGS = {"header_timeout": 2, "connect_timeout": 2, "response_timeout": 2}


# Under a sanitizer (tools/test.sh --sanitize or --tsan set ASAN_ or TSAN_OPTIONS) memory
# figures mean nothing (redzones, quarantine): printed, not asserted.
SANITIZED = "ASAN_OPTIONS" in os.environ or "TSAN_OPTIONS" in os.environ


def wait_for(predicate, timeout=10, what="a condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.05)


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def quiet_baseline(env, *sandboxes):
    """egressd's descriptor count once the sandboxes have no proxied
    connection open (their closes are processed asynchronously) and no idle
    upstream is kept for them (the pool's, gone within two seconds)."""
    for sb in sandboxes:
        wait_for(lambda: sb.stats()["proxy"]["open_connections"] == 0, what="no open connection")
    wait_for(lambda: env.daemon.status()["proxy"]["pooled_upstreams"] == 0, what="no pooled upstream")
    return fd_count(env.daemon.proc.pid)


def assert_fds_back(env, baseline, what):
    pid = env.daemon.proc.pid
    deadline = time.monotonic() + 10
    while fd_count(pid) > baseline:
        assert time.monotonic() < deadline, \
            f"after {what}: egressd holds {fd_count(pid)} descriptors, {baseline} before"
        time.sleep(0.05)


def served_promptly(env, sb, path, bound=2.0):
    t0 = time.monotonic()
    r = sb.curl(f"http://allowed.test:{env.http.port}{path}")
    took = time.monotonic() - t0
    assert r.returncode == 0 and f"path={path}" in r.stdout, r.stderr
    assert took < bound, f"{path} took {took:.2f} s"


# Opens N keep-alive connections through the proxy, one request each, and
# holds them; on "again" sends a second request on each (still usable after
# being idle), on "close" closes them.
KEEPALIVE_HOLD = r"""
import json, socket, sys
sys.path.insert(0, {e2e_dir!r})
from http_wire import status_line as response
N, PORT = {n}, {port}
def request(c, path):
    c.sendall(("GET " + path + " HTTP/1.1\r\nHost: allowed.test\r\n\r\n").encode())
conns = [socket.create_connection(("127.0.0.1", PORT), timeout=20) for _ in range(N)]
for i, c in enumerate(conns):
    request(c, "/ka-first-%d" % i)
ok = sum(response(c) == "HTTP/1.1 200 OK" for c in conns)
print(json.dumps({{"opened": len(conns), "ok": ok}}), flush=True)
sys.stdin.readline()
for i, c in enumerate(conns):
    request(c, "/ka-again-%d" % i)
ok = sum(response(c) == "HTTP/1.1 200 OK" for c in conns)
print(json.dumps({{"ok": ok}}), flush=True)
sys.stdin.readline()
for c in conns:
    c.close()
print("closed", flush=True)
"""

KEEPALIVE_CONNECTIONS = 500  # tools/bench/faults.sh: 2,000


def test_idle_keepalive_connections_cost_little_and_another_sandbox_is_served(env):
    holder = env.sandbox("open")
    other = env.sandbox("open")
    pid = env.daemon.proc.pid
    served_promptly(env, other, "/warm")  # the worker's first allocations are not the connections'
    baseline_fds = quiet_baseline(env, other)
    rss_before = rss_kib(pid)
    n = KEEPALIVE_CONNECTIONS
    proc = holder.popen(PYTHON, "-c", KEEPALIVE_HOLD.format(n=n, port=env.http.port, e2e_dir=env.dns_dir),
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        text=True)
    try:
        first = json.loads(read_line(proc.stdout, 60, "the connections opened"))
        assert first == {"opened": n, "ok": n}, first
        wait_for(lambda: holder.stats()["proxy"]["open_connections"] == n, what=f"{n} open")
        # Quiet for a second, each gives its relay buffers back (test_idle_parking.py),
        # and the workers unmap what they keep beyond 16 each within two more.
        wait_for(lambda: env.daemon.status()["proxy"]["parked_connections"] == n,
                 what=f"{n} parked")
        wait_for(lambda: env.daemon.status()["proxy"]["relay_buffers"] <= 16 * os.cpu_count(),
                 what="the kept relay buffers unmapped")
        rss_held = rss_kib(pid)
        per_1000 = (rss_held - rss_before) * 1000 / n / 1024
        print(f"egressd RSS: {rss_before} KiB idle, {rss_held} KiB with {n} idle keep-alive "
              f"connections: {per_1000:.1f} MiB per 1,000")
        # Loose (the figure is the benchmark's, tools/bench/faults.sh): ~1.3
        # MiB measured; a page of each relay buffer still held would be ~8.
        assert SANITIZED or per_1000 < 6, per_1000
        assert fd_count(pid) >= baseline_fds + 2 * n  # a client and an upstream socket each
        # Another sandbox is served promptly meanwhile.
        for i in range(5):
            served_promptly(env, other, f"/other-{i}")
        # Every held connection still works.
        proc.stdin.write("again\n")
        proc.stdin.flush()
        again = json.loads(read_line(proc.stdout, 60, "the second requests"))
        assert again == {"ok": n}, again
        proc.stdin.write("close\n")
        proc.stdin.flush()
        assert read_line(proc.stdout, 30, "closed").strip() == "closed"
        assert proc.wait(timeout=10) == 0, proc.stderr.read()
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert holder.stats()["proxy"]["requests_allowed"] == 2 * n
    wait_for(lambda: holder.stats()["proxy"]["open_connections"] == 0, what="all closed")
    assert_fds_back(env, baseline_fds, f"{n} keep-alive connections")


# N connections that each send a partial request head, then one byte a
# second; each reports when the proxy closed it and what it answered.
SLOWLORIS = r"""
import json, select, socket, time
N, PORT = {n}, {port}
conns = [socket.create_connection(("127.0.0.1", PORT), timeout=10) for _ in range(N)]
t0 = time.monotonic()
for c in conns:
    c.sendall(b"GET /slow HTTP/1.1\r\nHost: allowed.test\r\nX-Slow: ")
print("sent", flush=True)
replies = {{}}
closed_at = {{}}
open_ = set(range(N))
next_byte = t0 + 1
deadline = t0 + 10
while open_ and time.monotonic() < deadline:
    if time.monotonic() >= next_byte:
        for i in list(open_):
            try:
                conns[i].send(b"a")
            except OSError:
                pass
        next_byte += 1
    p = select.poll()
    for i in open_:
        p.register(conns[i], select.POLLIN)
    by_fd = {{conns[i].fileno(): i for i in open_}}
    for fd, _ in p.poll(100):
        i = by_fd[fd]
        try:
            d = conns[i].recv(65536)
        except OSError:
            d = b""
        if d:
            replies[i] = replies.get(i, b"") + d
        else:
            closed_at[i] = time.monotonic() - t0
            open_.discard(i)
statuses = sorted(set(replies.get(i, b"").split(b"\r\n")[0].decode() for i in range(N)))
print(json.dumps({{"closed": len(closed_at), "latest": max(closed_at.values(), default=None),
                   "earliest": min(closed_at.values(), default=None), "statuses": statuses}}),
      flush=True)
"""

SLOWLORIS_CONNECTIONS = 100  # tools/bench/faults.sh: 500


def test_slowloris_connections_are_closed_at_the_header_timeout(env):
    slow = env.sandbox("open")
    other = env.sandbox("open")
    served_promptly(env, other, "/warm")
    baseline = quiet_baseline(env, other)
    before = [q["path"] for q in env.http.requests]
    n = SLOWLORIS_CONNECTIONS
    proc = slow.popen(PYTHON, "-c", SLOWLORIS.format(n=n, port=env.http.port),
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert read_line(proc.stdout, 20, "heads sent").strip() == "sent"
        # Served meanwhile, each request promptly.
        for i in range(4):
            served_promptly(env, other, f"/during-slowloris-{i}")
        result = json.loads(read_line(proc.stdout, 20, "the slowloris outcome"))
        assert proc.wait(timeout=10) == 0, proc.stderr.read()
    finally:
        proc.kill()
        proc.wait(timeout=10)
    # --header-timeout 2: every one closed with a 408 between 2 and ~3 s
    # (the timer's resolution is a second), although bytes kept coming.
    assert result["closed"] == n, result
    assert result["statuses"] == ["HTTP/1.1 408 Request Timeout"], result
    assert 1.9 <= result["earliest"] and result["latest"] <= 5, result
    assert slow.stats()["proxy"]["header_timeouts"] == n
    assert not any(p == "/slow" for p in env.http.requests[len(before):])
    assert_fds_back(env, baseline, f"{n} slowloris connections")


# --- bad upstreams ---------------------------------------------------------

def exchange(sb, port, path, timeout_s=8):
    """One request from the sandbox; (status line, body, seconds until the
    proxy closed the connection or None if it did not within timeout_s)."""
    code = rf"""
import json, socket, time
s = socket.create_connection(("127.0.0.1", {port}), timeout={timeout_s})
t0 = time.monotonic()
s.sendall(b"GET {path} HTTP/1.1\r\nHost: allowed.test:{port}\r\n\r\n")
got, closed = b"", None
try:
    while True:
        d = s.recv(65536)
        if not d:
            closed = time.monotonic() - t0
            break
        got += d
except socket.timeout:
    pass
except ConnectionResetError:
    closed = time.monotonic() - t0
head, _, body = got.partition(b"\r\n\r\n")
print(json.dumps({{"status": head.split(b"\r\n")[0].decode("latin-1"),
                   "body": body.decode("latin-1")[:300], "closed": closed, "bytes": len(got)}}))
"""
    r = sb.python(code)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_bad_upstreams_are_answered_and_leave_no_descriptor_behind(env):
    sb = env.sandbox("open")
    served_promptly(env, sb, "/warm")
    baseline = quiet_baseline(env, sb)

    # Refuses (RST to the SYN: nothing listens on the port): 502 at once.
    closed_port = free_port()
    t0 = time.monotonic()
    r = exchange(sb, closed_port, "/refused")
    assert r["status"] == "HTTP/1.1 502 Bad Gateway", r
    assert f"connect to 127.0.0.1:{closed_port} failed: Connection refused" in r["body"], r
    assert time.monotonic() - t0 < 2
    assert_fds_back(env, baseline, "an upstream that refuses")

    # Accepts and never answers: 504 at --response-timeout (2 s).
    silent = ScriptedOrigin(lambda c: (read_head(c), c.recv_for(6)))
    try:
        r = exchange(sb, silent.port, "/silent")
        assert r["status"] == "HTTP/1.1 504 Gateway Timeout", r
        assert "sent no response within 2 s" in r["body"], r
        assert silent.wait_finished(1)
        assert silent.conns[0].eof  # egressd closed its side too
    finally:
        silent.close()
    assert_fds_back(env, baseline, "an upstream that never answers")

    # Closes in the middle of a response: the client's connection is closed
    # at once (not left waiting for the 990 missing bytes until the idle
    # timeout, 300 s).
    def cut(c):
        read_head(c)
        c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"y" * 10)

    cutter = ScriptedOrigin(cut)
    try:
        r = exchange(sb, cutter.port, "/cut")
        assert r["status"] == "HTTP/1.1 200 OK" and r["body"] == "y" * 10, r
        assert r["closed"] is not None and r["closed"] < 2, r
    finally:
        cutter.close()
    assert_fds_back(env, baseline, "an upstream that closes mid-response")
    assert env.daemon.proc.poll() is None


# Reads an endless response: slowly (16 KiB every 20 ms) for SLOW seconds,
# then as fast as it can for FAST seconds; prints what it got.
ENDLESS_READER = r"""
import json, socket, sys, time
PORT, SLOW, FAST = {port}, {slow}, {fast}
s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
s.sendall(b"GET /endless HTTP/1.1\r\nHost: allowed.test:%d\r\n\r\n" % PORT)
head = b""
while b"\r\n\r\n" not in head:
    head += s.recv(4096)
print("streaming", flush=True)
got = {{"slow": 0, "fast": 0}}
end = time.monotonic() + SLOW
while time.monotonic() < end:
    got["slow"] += len(s.recv(16384))
    time.sleep(0.02)
end = time.monotonic() + FAST
while time.monotonic() < end:
    got["fast"] += len(s.recv(1 << 20))
s.close()
print(json.dumps(got), flush=True)
"""


def test_an_endless_body_is_streamed_with_bounded_memory(env):
    sb = env.sandbox("open")
    served_promptly(env, sb, "/warm")
    baseline = quiet_baseline(env, sb)
    pid = env.daemon.proc.pid
    sent = {"bytes": 0}

    def endless(c):
        read_head(c)
        c.sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                       b"Connection: close\r\n\r\n")
        chunk = b"z" * (256 * 1024)
        c.sock.settimeout(10)
        while True:  # until egressd closes: the client went away
            c.sock.sendall(chunk)
            sent["bytes"] += len(chunk)

    origin = ScriptedOrigin(endless)
    samples = []
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            samples.append(rss_kib(pid))
            time.sleep(0.05)

    rss_before = rss_kib(pid)
    sampler = threading.Thread(target=sample, daemon=True)
    proc = sb.popen(PYTHON, "-c", ENDLESS_READER.format(port=origin.port, slow=2, fast=2),
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert read_line(proc.stdout, 20, "the response head").strip() == "streaming"
        sampler.start()
        got = json.loads(read_line(proc.stdout, 20, "the bytes read"))
        assert proc.wait(timeout=10) == 0, proc.stderr.read()
        # The origin's send fails once egressd closes the upstream after the client left.
        assert origin.wait_finished(1, timeout=10), "the upstream was left open"
    finally:
        stop.set()
        proc.kill()
        proc.wait(timeout=10)
        origin.close()
    sampler.join(timeout=5)
    growth_mib = (max(samples) - rss_before) / 1024
    print(f"endless body: {got['slow']} B read slowly, {got['fast']} B fast, origin sent "
          f"{sent['bytes']} B; egressd RSS {rss_before} KiB before, at most +{growth_mib:.1f} MiB")
    assert got["slow"] > 0 and got["fast"] > 50 * 1024 * 1024, got  # streamed, not stalled
    # The slow reader held the origin back (unheld, it sends GBs in these 4 s):
    # what was sent and not read fits in the sockets' buffers (loopback
    # autotuning: up to tcp_rmem's 32 MiB on the upstream's receive side).
    assert sent["bytes"] < got["slow"] + got["fast"] + 64 * 1024 * 1024, (sent, got)
    assert SANITIZED or growth_mib < 32, growth_mib
    assert_fds_back(env, baseline, "an endless body")


# --- policy changes during a keep-alive stream -----------------------------

# THREADS keep-alive connections, each sending requests to allowed.test and
# other.test in turn until told to stop (a 403 closes a connection: it opens
# another). Every request's outcome, with the monotonic times it was sent and
# answered (CLOCK_MONOTONIC: the test's clock too).
STREAM = r"""
import json, re, socket, sys, threading, time
PORT, THREADS = {port}, {threads}
results, stop = [], threading.Event()
def response(c):
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = c.recv(4096)
        if not d:
            raise EOFError("closed before a response")
        buf += d
    head, _, body = buf.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(body) < length:
        d = c.recv(4096)
        if not d:
            raise EOFError("closed in a body")
        body += d
    return head.split(b"\r\n")[0].decode(), head.decode("latin-1"), body.decode("latin-1")
def run(t):
    c, n = None, 0
    while not stop.is_set():
        host = ("allowed.test", "other.test")[n % 2]
        path = "/s-%d-%d" % (t, n)
        n += 1
        sent = time.monotonic()
        try:
            if c is None:
                c = socket.create_connection(("127.0.0.1", PORT), timeout=10)
            c.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path, host)).encode())
            status, head, body = response(c)
            results.append({{"path": path, "host": host, "sent": sent, "done": time.monotonic(),
                            "status": status, "body": body[:200]}})
            if "connection: close" in head.lower():
                c.close()
                c = None
        except Exception as e:
            results.append({{"path": path, "host": host, "sent": sent, "done": time.monotonic(),
                            "error": repr(e)}})
            if c is not None:
                c.close()
            c = None
threads = [threading.Thread(target=run, args=(t,)) for t in range(THREADS)]
for t in threads:
    t.start()
print("streaming", flush=True)
sys.stdin.readline()
stop.set()
for t in threads:
    t.join(15)
print(json.dumps(results), flush=True)
"""


def flip_policy(path, generation):
    """Policy `flip` of one generation: "old" allows allowed.test and denies
    other.test, "new" the reverse; each tags the requests it lets through
    with two headers saying which it is."""
    host = {"old": "allowed.test", "new": "other.test"}[generation]
    with open(path, "w") as f:
        f.write(f"""name: flip
allowed_hosts: ["{host}"]
handlers:
  tag:
    - set_header: {{name: X-Policy-A, value: "{generation}"}}
    - set_header: {{name: X-Policy-B, value: "{generation}"}}
catch_all: {{handler: tag}}
""")


def decided_by(result, origin_requests):
    """Which policy decided a request: "old", "new", or a string saying why
    neither wholly did."""
    if "error" in result:
        return f"failed: {result['error']}"
    if result["status"] == "HTTP/1.1 403 Forbidden":
        # Denied by the generation that does not allow this host.
        return "new" if result["host"] == "allowed.test" else "old"
    if result["status"] != "HTTP/1.1 200 OK":
        return f"status {result['status']}"
    seen = origin_requests.get(result["path"])
    if seen is None:
        return "answered 200 but never reached the origin"
    headers = {k.lower(): v for k, v in seen["headers"].items()}
    tags = (headers.get("x-policy-a"), headers.get("x-policy-b"))
    allowed_by = "old" if result["host"] == "allowed.test" else "new"
    if tags != (allowed_by, allowed_by):
        return f"mixed: host allowed by {allowed_by}, tags {tags}"
    return allowed_by


def test_policy_reload_and_sighup_during_a_keepalive_stream(env):
    path = os.path.join(env.daemon.policy_dir, "flip.yaml")
    flip_policy(path, "old")
    sb = env.sandbox("flip")
    proc = sb.popen(PYTHON, "-c", STREAM.format(port=env.http.port, threads=4),
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # (generation, when its change began, when it was certainly in force)
    changes = [("old", 0.0, 0.0)]

    def reloads_logged():
        return sum(bool(re.search(r"policy reload: \d+ sandbox policies re-read", line))
                   for line in list(env.daemon.log))

    reloads_before = reloads_logged()
    try:
        assert read_line(proc.stdout, 20, "the stream").strip() == "streaming"
        for generation, how in [("new", "reload"), ("old", "sighup"), ("new", "sighup"),
                                ("old", "reload"), ("new", "reload")]:
            time.sleep(0.3)  # requests under the policy in force (the pacing under test)
            began = time.monotonic()
            flip_policy(path, generation)
            if how == "reload":
                env.daemon.ctl("policy", "reload")
            else:
                env.daemon.proc.send_signal(signal.SIGHUP)
            # Every re-read logs one line once its policies are in force. Count
            # them all: the line of an earlier `policy reload` may reach the
            # test's log reader late, and must not pass for this SIGHUP's.
            wait_for(lambda: reloads_logged() == reloads_before + len(changes),
                     what=f"the {how} logged (re-read {len(changes)})")
            changes.append((generation, began, time.monotonic()))
        time.sleep(0.3)
        proc.stdin.write("stop\n")
        proc.stdin.flush()
        results = json.loads(read_line(proc.stdout, 30, "the stream's results"))
        assert proc.wait(timeout=10) == 0, proc.stderr.read()
    finally:
        proc.kill()
        proc.wait(timeout=10)
        flip_policy(path, "old")
    origin = {q["path"]: q for q in list(env.http.requests) if q["path"].startswith("/s-")}
    decisions = [(r, decided_by(r, origin)) for r in results]
    bad = [(r, d) for r, d in decisions if d not in ("old", "new")]
    assert not bad, bad[:5]
    # A request sent after a change was in force (and before the next one
    # began) is decided by that policy, not the one before.
    stale = []
    for k, (generation, _, in_force) in enumerate(changes):
        next_began = changes[k + 1][1] if k + 1 < len(changes) else float("inf")
        stale += [(r, d) for r, d in decisions if in_force < r["sent"] < next_began and d != generation]
    assert not stale, stale[:5]
    counts = {g: sum(d == g for _, d in decisions) for g in ("old", "new")}
    print(f"policy stream: {len(results)} requests, {counts}")
    assert counts["old"] > 20 and counts["new"] > 20, counts


# --- kill -9 during load ---------------------------------------------------

# THREADS clients send keep-alive requests in a loop; on any failure they
# reconnect and go on. Every outcome with its monotonic time.
LOAD = r"""
import errno, json, re, socket, sys, threading, time
PORT, THREADS = {port}, {threads}
results, stop = [], threading.Event()
def run(t):
    c, n = None, 0
    while not stop.is_set():
        n += 1
        sent = time.monotonic()
        try:
            if c is None:
                c = socket.create_connection(("127.0.0.1", PORT), timeout=5)
            c.sendall(b"GET /load-%d-%d HTTP/1.1\r\nHost: allowed.test\r\n\r\n" % (t, n))
            buf = b""
            while b"\r\n\r\n" not in buf:
                d = c.recv(4096)
                if not d:
                    raise EOFError("closed")
                buf += d
            head, _, body = buf.partition(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
            while len(body) < length:
                d = c.recv(4096)
                if not d:
                    raise EOFError("closed")
                body += d
            results.append((sent, time.monotonic(), head.split(b"\r\n")[0].decode()))
        except Exception as e:
            kind = errno.errorcode.get(getattr(e, "errno", None) or 0, type(e).__name__)
            results.append((sent, time.monotonic(), "error " + kind))
            if c is not None:
                c.close()
            c = None
            time.sleep(0.01)
threads = [threading.Thread(target=run, args=(t,)) for t in range(THREADS)]
for t in threads:
    t.start()
print("loading", flush=True)
sys.stdin.readline()
stop.set()
for t in threads:
    t.join(15)
print(json.dumps(results), flush=True)
"""


def test_kill9_during_load_fails_closed_and_a_restart_serves_within_a_second(env):
    sb = env.sandbox("open")
    cgroup_id_before = os.stat(sb.path).st_ino
    listed_before = env.daemon.instances()[sb.instance]
    proc = sb.popen(PYTHON, "-c", LOAD.format(port=env.http.port, threads=4),
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    restarted = False
    try:
        assert read_line(proc.stdout, 20, "the load").strip() == "loading"
        wait_for(lambda: sb.stats()["proxy"]["requests_allowed"] > 50, what="requests under load")
        env.daemon.kill9()
        killed_at = time.monotonic()
        # Down: a connection attempt from the sandbox fails, and nothing
        # reaches the origin while the load keeps trying.
        r = sb.python(f"""
import errno, socket
try:
    socket.create_connection(("127.0.0.1", {env.http.port}), timeout=5)
    print("connected")
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno))
""")
        assert r.stdout.strip() == "ECONNREFUSED", r.stdout + r.stderr
        connections_down = env.http.connections
        requests_down = len(env.http.requests)
        time.sleep(0.5)  # the load keeps knocking for half a second (the window under test)
        assert env.http.connections == connections_down
        assert len(env.http.requests) == requests_down
        restart_at = time.monotonic()
        env.daemon.start()
        restarted = True
        ready_at = time.monotonic()
        # The same sandbox, not attached again: same instance, cgroup, the
        # load's processes still in it.
        listed = env.daemon.instances()[sb.instance]
        assert listed["cgroup"] == listed_before["cgroup"] == sb.path, listed
        assert os.stat(sb.path).st_ino == cgroup_id_before
        assert str(proc.pid) in open(os.path.join(sb.path, "cgroup.procs")).read().split()
        wait_for(lambda: sb.stats()["proxy"]["requests_allowed"] > 0, timeout=5,
                 what="requests served after the restart")
        proc.stdin.write("stop\n")
        proc.stdin.flush()
        results = json.loads(read_line(proc.stdout, 30, "the load's results"))
        assert proc.wait(timeout=10) == 0, proc.stderr.read()
    finally:
        proc.kill()
        proc.wait(timeout=10)
        if not restarted:
            env.daemon.start()
    # Nothing sent while the daemon was down was answered.
    down = [x for x in results if killed_at < x[0] and x[1] < restart_at]
    assert down and all(x[2].startswith("error") for x in down), down[:5]
    served_after = [x for x in results if x[0] > restart_at and x[2] == "HTTP/1.1 200 OK"]
    assert served_after, results[-5:]
    first = min(x[1] for x in served_after)
    print(f"kill -9: down {restart_at - killed_at:.2f} s; restart to ready {ready_at - restart_at:.2f} s, "
          f"ready to first 200 {first - ready_at:.2f} s")
    assert first - ready_at < 1.0, (first - ready_at)
    assert not [x for x in results if x[0] > ready_at and x[2] not in ("HTTP/1.1 200 OK",)
                and x[0] > first], "requests failed after the restart served"
