"""Flags whose promise needs a real daemon: `--proxy-port 0` (a free port,
picked by egressd itself, reported, kept across restarts when passed back) and
the audit log's rotation (`--audit-log-max-bytes`, one old file kept)."""
import json
import os
import re
import socket
import stat
import subprocess
import time

from conftest import Daemon, Sandbox, write_policy


def test_proxy_port_zero_is_picked_reported_and_kept_across_a_restart(env):
    d = env.daemon  # the fixture starts every daemon with --proxy-port 0
    ready = [l for l in d.log if "egressd ready" in l]
    assert len(ready) == 1 and re.search(rf" proxy port {d.proxy_port} ", ready[0]), ready
    assert d.proxy_port != 0 and d.status()["proxy_port"] == d.proxy_port
    # Really egressd's, on both loopbacks: binding it again fails.
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, d.proxy_port))
                taken = False
            except OSError:
                taken = True
            assert taken, f"{host}:{d.proxy_port} is not egressd's"
    # A host-namespace sandbox's kernel config points at that port: a restart
    # given the reported port keeps serving it.
    sb = env.sandbox("open")
    url = f"http://allowed.test:{env.http.port}/"
    assert sb.curl("-o", "/dev/null", "-w", "%{http_code}", url).stdout == "200"
    port = d.proxy_port
    d.stop()
    d.start()  # passes --proxy-port with the reported port
    assert d.argv()[d.argv().index("--proxy-port") + 1] == str(port)
    assert d.status()["proxy_port"] == port
    assert sb.curl("-o", "/dev/null", "-w", "%{http_code}", url).stdout == "200"


def test_proxy_port_flag_range(env, tmp_path):
    for bad in ("65536", "x", "1.5"):
        r = subprocess.run(env.daemon.argv(proxy_port=bad, state_dir=str(tmp_path / "s")),
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 2 and "--proxy-port" in r.stderr and "0 to 65535" in r.stderr, \
            (bad, r.returncode, r.stderr)


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


UDP_FLOOD = """
import socket
for i in range({n}):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.sendto(b"x", ("127.0.0.1", 9))
    except PermissionError:
        pass
    s.close()
print("sent")
"""


def test_audit_log_rotates_at_the_limit_keeping_one_old_file(env, tmp_path):
    limit = 4096
    d = Daemon(str(tmp_path), env.dns.address, audit_log_max_bytes=limit)
    sb = None
    try:
        d.start()
        write_policy(d.policy_dir, "open")
        sb = Sandbox(d, "open", instance="rotate")
        log = os.path.join(d.state_dir, "audit.jsonl")
        # Each denied UDP send is one event of ~250 bytes: ~100 of them fill
        # the file several times over, so it rotates more than once.
        n = 100
        r = sb.python(UDP_FLOOD.format(n=n))
        assert r.stdout.strip() == "sent", r.stderr
        # Kernel events reach the daemon within ~100 ms: poll its count, bounded.
        deadline = time.monotonic() + 10
        while d.status()["audit"]["events"] < n and time.monotonic() < deadline:
            time.sleep(0.1)
        # The file is written by a thread of its own: wait until it caught up.
        while d.status()["audit"]["pending"] > 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        status = d.status()["audit"]
        assert status["events"] >= n and status["write_errors"] == 0, status
        current, old = read_jsonl(log), read_jsonl(log + ".1")
        # One old file, both within the limit and private to root.
        assert sorted(f for f in os.listdir(d.state_dir) if f.startswith("audit.jsonl")) == \
            ["audit.jsonl", "audit.jsonl.1"]
        for path in (log, log + ".1"):
            st = os.stat(path)
            assert 0 < st.st_size <= limit, (path, st.st_size)
            assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
        # The two files are the newest events, in order, nothing missing
        # between them; the oldest went with the earlier rotations.
        seqs = [e["seq"] for e in old + current]
        assert seqs == list(range(seqs[0], seqs[-1] + 1)), seqs
        assert seqs[-1] == status["events"]
        assert seqs[0] > 1, "more than one rotation should have dropped the first events"
        assert all(e["instance"] == "rotate" and e["layer"] == "kernel" for e in old + current)
    finally:
        if sb:
            sb.cleanup()
        d.cleanup()
