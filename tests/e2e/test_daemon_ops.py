"""Operating the daemon: one egressd per state dir, bpffs and socket; signals;
flags refused at start; short runs keep their story (events, final stats);
`events --follow` across a restart."""
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
import uuid

import pytest

from conftest import EGRESSCTL, Daemon, Sandbox, free_port, write_policy


def second_daemon(env, tmp_path, **flags):
    """Starts another egressd with env.daemon's flags, some replaced; returns
    (exit status, stderr). A daemon still running after 20 s is killed and
    reported as None (the old tree's second daemon just kept running)."""
    p = subprocess.Popen(env.daemon.argv(**flags), stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    try:
        _, err = p.communicate(timeout=20)
        return p.returncode, err
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
        return None, err
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def other_flags(tmp_path):
    """A socket, state dir and bpffs of its own: nothing shared with env.daemon."""
    return dict(socket=str(tmp_path / "other.sock"), state_dir=str(tmp_path / "other-state"),
                bpffs=f"/sys/fs/bpf/egressd-test-{uuid.uuid4().hex[:8]}",
                proxy_port=free_port())


def assert_first_daemon_serves(env, sb):
    """A real request through the first daemon's proxy, under its policy."""
    r = sb.curl(f"http://allowed.test:{env.http.port}/still-served")
    assert r.returncode == 0 and "origin-http" in r.stdout, r.stderr
    r = sb.curl("-o", "/dev/null", "-w", "%{http_code}", f"http://denied.test:{env.http.port}/")
    assert r.stdout == "403", r.stdout + r.stderr
    assert env.daemon.proc.poll() is None
    assert sb.instance in env.daemon.instances()


@pytest.fixture
def cleanup_bpffs():
    dirs = []
    yield dirs
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


def test_second_daemon_on_the_same_state_dir_is_refused(env, tmp_path, cleanup_bpffs):
    sb = env.sandbox("open")
    flags = other_flags(tmp_path)
    flags["state_dir"] = env.daemon.state_dir
    cleanup_bpffs.append(flags["bpffs"])
    code, err = second_daemon(env, tmp_path, **flags)
    assert code == 1, err
    assert f"pid {env.daemon.proc.pid}" in err and env.daemon.state_dir in err, err
    assert not os.path.exists(flags["bpffs"]), "the second daemon touched bpffs before refusing"
    assert_first_daemon_serves(env, sb)


def test_second_daemon_on_the_same_bpffs_is_refused(env, tmp_path, cleanup_bpffs):
    sb = env.sandbox("open")
    flags = other_flags(tmp_path)
    flags["bpffs"] = env.daemon.bpffs
    code, err = second_daemon(env, tmp_path, **flags)
    assert code == 1, err
    assert f"pid {env.daemon.proc.pid}" in err and env.daemon.bpffs in err, err
    assert_first_daemon_serves(env, sb)


def test_second_daemon_on_the_same_socket_is_refused(env, tmp_path, cleanup_bpffs):
    sb = env.sandbox("open")
    flags = other_flags(tmp_path)
    flags["socket"] = env.daemon.socket
    cleanup_bpffs.append(flags["bpffs"])
    code, err = second_daemon(env, tmp_path, **flags)
    assert code == 1, err
    assert f"pid {env.daemon.proc.pid}" in err and env.daemon.socket in err, err
    # Refused before anything was touched, and the socket is still the first daemon's.
    assert not os.path.exists(flags["bpffs"]) and not os.path.exists(flags["state_dir"])
    assert env.daemon.status()["pid"] == env.daemon.proc.pid
    assert_first_daemon_serves(env, sb)


def test_sighup_reloads_policies_and_the_daemon_stays(env):
    write_policy(env.daemon.policy_dir, "hup", allowed_hosts=["allowed.test"])
    sb = env.sandbox("hup")
    url = f"http://other.test:{env.http.port}/"
    r = sb.curl("-o", "/dev/null", "-w", "%{http_code}", url)
    assert r.stdout == "403", r.stdout + r.stderr
    write_policy(env.daemon.policy_dir, "hup", allowed_hosts=["allowed.test", "other.test"])
    seen = len(env.daemon.log)
    env.daemon.proc.send_signal(signal.SIGHUP)
    assert env.daemon.wait_log(lambda l: re.search(r"policy reload: \d+ sandbox policies re-read", l)), \
        "\n".join(env.daemon.log[seen:])
    r = sb.curl("-o", "/dev/null", "-w", "%{http_code}", url)
    assert r.stdout == "200", r.stdout + r.stderr
    assert env.daemon.proc.poll() is None
    assert env.daemon.status()["pid"] == env.daemon.proc.pid


def test_sighup_with_a_broken_policy_changes_nothing_and_says_so(env):
    write_policy(env.daemon.policy_dir, "hup2", allowed_hosts=["allowed.test"])
    sb = env.sandbox("hup2")
    with open(os.path.join(env.daemon.policy_dir, "hup2.yaml"), "w") as f:
        f.write("name: hup2\nallowed_hosts: [\n")
    try:
        env.daemon.proc.send_signal(signal.SIGHUP)
        assert env.daemon.wait_log(lambda l: "policy reload failed" in l and "hup2" in l), \
            "\n".join(env.daemon.log[-5:])
        r = sb.curl(f"http://allowed.test:{env.http.port}/")
        assert r.returncode == 0 and "origin-http" in r.stdout
        assert env.daemon.proc.poll() is None
    finally:
        write_policy(env.daemon.policy_dir, "hup2", allowed_hosts=["allowed.test"])


@pytest.fixture
def own_daemon(env, tmp_path):
    """A daemon of the test's own (to stop or restart), with the env's DNS."""
    d = Daemon(str(tmp_path), env.dns.address)
    sandboxes = []
    try:
        d.start()
        write_policy(d.policy_dir, "strict", allowed_hosts=["allowed.test"], deny_cidrs=["127.0.0.3/32"])
        d.sandbox = lambda policy: sandboxes.append(Sandbox(d, policy)) or sandboxes[-1]
        yield d
    finally:
        for sb in sandboxes:
            sb.cleanup()
        d.cleanup()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_stops_cleanly_and_sandboxes_stay_enforced(env, own_daemon, sig):
    d = own_daemon
    sb = d.sandbox("strict")
    r = sb.curl(f"http://allowed.test:{env.http.port}/before")
    assert r.returncode == 0 and "origin-http" in r.stdout, r.stderr
    before = env.http.connections
    d.proc.send_signal(sig)
    assert d.proc.wait(timeout=10) == 0
    assert d.wait_log(lambda l: f"{sig.name} received, stopping" in l), "\n".join(d.log[-10:])
    assert d.wait_log(lambda l: "egressd: stopped" in l)
    assert not os.path.exists(d.socket)
    # Still enforced: the connection is refused, not let through to the origin.
    r = sb.curl(f"http://allowed.test:{env.http.port}/after-stop")
    assert r.returncode == 7, (r.returncode, r.stdout, r.stderr)  # curl: couldn't connect
    assert "Connection refused" in r.stderr or "Couldn't connect" in r.stderr, r.stderr
    assert env.http.connections == before
    d.start()  # so that the fixture detaches the sandbox


BAD_FLAGS = [
    ("--proxy-port", "99999"),
    ("--proxy-port", "65536"),  # 0 is valid: egressd picks a free port (test_daemon_flags)
    ("--proxy-port", "http"),
    ("--workers", "0"),
    ("--workers", "-3"),
    ("--log-level", "verbose"),
    ("--policy-dir", "/nonexistent/egressd-policies"),
    ("--dns-upstream", "not-an-address"),
    ("--cgroup-root", "relative/cgroups"),
    ("--socket", "/tmp/" + "s" * 120),
]


@pytest.mark.parametrize("flag,value", BAD_FLAGS)
def test_bad_flag_is_refused_at_start(env, tmp_path, cleanup_bpffs, flag, value):
    flags = other_flags(tmp_path)
    cleanup_bpffs.append(flags["bpffs"])
    flags[flag[2:].replace("-", "_")] = value
    code, err = second_daemon(env, tmp_path, **flags)
    assert code == 2, (code, err)
    assert flag in err, err
    # Refused before anything started.
    assert not os.path.exists(flags["state_dir"]) and not os.path.exists(flags["bpffs"])


def test_run_policy_errors_name_the_users_file(env, tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: broken\nallowed_hosts: [\"allowed.test\"]\nnot_a_field: 1\n")
    r = env.daemon.run("--policy", str(path), "--", "true")
    assert r.returncode == 125, r.stderr
    assert str(path) in r.stderr, r.stderr
    assert "run-policies" not in r.stderr, r.stderr


def test_short_run_keeps_its_events_and_final_stats(env):
    write_policy(env.daemon.policy_dir, "shortrun", deny_cidrs=["127.0.0.3/32"])
    instance = f"short-{uuid.uuid4().hex[:6]}"
    code = ("import socket\n"
            "try: socket.create_connection(('127.0.0.3', 81), timeout=5)\n"
            "except PermissionError: print('EPERM')\n")
    r = env.daemon.run("--policy", "shortrun", "--netns", "host", "--instance", instance, "--",
                       "/usr/bin/python3", "-c", code)
    assert r.returncode == 0 and r.stdout.strip() == "EPERM", (r.returncode, r.stdout, r.stderr)
    assert instance not in env.daemon.instances()  # it ended
    deadline = time.monotonic() + 5
    got = []
    while time.monotonic() < deadline and not got:
        out = env.daemon.ctl("events", "--json", "--instance", instance).stdout
        got = [json.loads(l) for l in out.splitlines() if l.strip()]
        time.sleep(0.1)
    assert got and got[0]["layer"] == "kernel" and got[0]["address"] == "127.0.0.3", got
    assert got[0]["instance"] == instance
    stats = json.loads(env.daemon.ctl("stats", instance, "--json").stdout)["sandboxes"]
    assert len(stats) == 1 and stats[0]["instance"] == instance, stats
    assert stats[0]["ended"] is True and stats[0]["policy"] == "shortrun"
    assert stats[0]["kernel"]["connect_denied"] == 1, stats
    # Unknown names are still an error.
    r = env.daemon.ctl("stats", "no-such-instance-xyz", check=False)
    assert r.returncode == 1 and "no attached sandbox" in r.stderr


def read_lines(stream):
    q = queue.Queue()

    def pump():
        for line in stream:
            q.put(line)
        q.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return q


def next_event(q, address, timeout=10):
    """The next JSON event line for `address` (other lines skipped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = q.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            return None
        e = json.loads(line)
        if e.get("address") == address:
            return e
    return None


def test_events_follow_survives_a_daemon_restart(env, own_daemon):
    d = own_daemon
    sb = d.sandbox("strict")
    deny = ("import socket,sys\n"
            "try: socket.create_connection(('127.0.0.3', int(sys.argv[1])), timeout=5)\n"
            "except OSError: pass\n")
    p = subprocess.Popen([EGRESSCTL, "--socket", d.socket, "events", "--follow", "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = read_lines(p.stdout)
        errors = read_lines(p.stderr)
        sb.run("/usr/bin/python3", "-c", deny, "81")
        first = next_event(lines, "127.0.0.3")
        assert first and first["port"] == 81, first
        d.stop()
        # egressctl notices and says it waits (the daemon is down until it does).
        said = errors.get(timeout=10)
        assert said and "retrying" in said, said
        assert p.poll() is None
        d.start()
        sb.run("/usr/bin/python3", "-c", deny, "82")
        second = next_event(lines, "127.0.0.3", timeout=20)
        assert second and second["port"] == 82, (second, p.poll())
        assert second["instance"] == sb.instance
        assert p.poll() is None
        said = errors.get(timeout=10)
        assert said and "answers again" in said, said
    finally:
        p.kill()
        p.wait()
