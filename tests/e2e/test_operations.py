"""Operating egressd as a service (issue 13 §3): sd_notify readiness, reload
and stop; `cmake --install` (binaries, systemd unit, example policies that
never overwrite an operator's, bash completion); --version; per-command
--help; EGRESSD_SOCKET; --json on every egressctl command that prints; the
debug access log; no source paths in log lines; a build without GoogleTest."""
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import time
import uuid

import pytest

from conftest import (BUILD_DIR, CGROUP2, EGRESSCTL, EGRESSD, Daemon, Sandbox, kill_cgroup,
                      write_policy)

SOURCE_DIR = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", ".."))


def project_version():
    with open(os.path.join(SOURCE_DIR, "CMakeLists.txt")) as f:
        m = re.search(r"project\(egressd\s+VERSION\s+(\d+\.\d+\.\d+)", f.read())
    assert m, "CMakeLists.txt names no project VERSION"
    return m.group(1)


# ---- sd_notify ---------------------------------------------------------------


class NotifySocket:
    """The service manager's side of sd_notify: a datagram socket the daemon
    is pointed at with NOTIFY_SOCKET; every message is KEY=VALUE lines."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)

    def next(self, timeout):
        self.sock.settimeout(timeout)
        data = self.sock.recv(4096).decode()
        return dict(line.split("=", 1) for line in data.splitlines() if "=" in line)

    def wait_for(self, key, timeout=20):
        """Messages until one with `key`; returns (that message, those before it)."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {key} from egressd within {timeout} s; got {seen}")
            try:
                msg = self.next(left)
            except socket.timeout:
                raise AssertionError(f"no {key} from egressd within {timeout} s; got {seen}")
            if key in msg:
                return msg, seen
            seen.append(msg)

    def close(self):
        self.sock.close()
        if os.path.exists(self.path):
            os.unlink(self.path)


def control_request(socket_path, cmd):
    """One request on the control socket, answered at once or not at all."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(socket_path)
        s.sendall(json.dumps({"cmd": cmd}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data)


def start_notified(d, notify, log_path):
    """Starts egressd by hand (not Daemon.start, which waits for its log line)
    with NOTIFY_SOCKET set: READY=1 is the readiness signal here. Returns the
    READY message and the messages before it."""
    with open(log_path, "a") as log:
        d.proc = subprocess.Popen(d.argv(), stdout=subprocess.DEVNULL, stderr=log,
                                  env={**os.environ, "NOTIFY_SOCKET": notify.path})
    return notify.wait_for("READY")


def test_sd_notify_ready_reload_stopping(env, tmp_path):
    notify = NotifySocket(str(tmp_path / "notify.sock"))
    d = Daemon(str(tmp_path / "d"), env.dns.address)
    write_policy(d.policy_dir, "open", denied_hosts=["denied.test"])
    log_path = tmp_path / "egressd.log"
    sb = None
    try:
        ready, before = start_notified(d, notify, log_path)
        # At READY the control socket already answers, at once.
        status = control_request(d.socket, "status")
        assert status["ok"] is True and status["pid"] == d.proc.pid, status
        assert ready["READY"] == "1" and "ready" in ready.get("STATUS", ""), ready
        assert not any("STOPPING" in m for m in before), before

        sb = Sandbox(d, "open")
        d.proc.send_signal(signal.SIGHUP)
        reloading, _ = notify.wait_for("RELOADING")
        assert reloading["RELOADING"] == "1", reloading
        again, _ = notify.wait_for("READY")
        assert again["READY"] == "1", again
        assert control_request(d.socket, "status")["ok"] is True

        d.proc.send_signal(signal.SIGTERM)
        stopping, _ = notify.wait_for("STOPPING")
        assert stopping["STOPPING"] == "1", stopping
        assert d.proc.wait(timeout=20) == 0

        # Restarted: READY comes once the recorded sandbox is re-adopted.
        d.proxy_port = status["proxy_port"]  # pinned sandbox configs point at it
        start_notified(d, notify, log_path)
        listed = control_request(d.socket, "list")
        adopted = {s["instance"]: s for s in listed["sandboxes"]}
        assert sb.instance in adopted and not adopted[sb.instance]["problem"], adopted
    finally:
        if sb:
            sb.cleanup()
        d.cleanup()
        notify.close()
        with open(log_path) as f:
            d.history = f.read().splitlines()
        d.check_sanitizers()


# ---- cmake --install -----------------------------------------------------------


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_cmake_install_stages_everything_and_keeps_existing_policies(tmp_path):
    destdir = tmp_path / "stage"
    prefix = "/opt/egressd-test"
    policies = destdir / "etc" / "egressd" / "policies"
    policies.mkdir(parents=True)
    mine = "name: agent\nallowed_hosts: [\"mine.example\"]\n"
    (policies / "agent.yaml").write_text(mine)
    r = subprocess.run(["cmake", "--install", BUILD_DIR, "--prefix", prefix],
                       env={**os.environ, "DESTDIR": str(destdir)}, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    root = f"{destdir}{prefix}"
    for binary in ("egressd", "egressctl"):
        path = os.path.join(root, "bin", binary)
        assert os.path.isfile(path) and mode(path) == 0o755, path
    unit = os.path.join(root, "lib", "systemd", "system", "egressd.service")
    completion = os.path.join(root, "share", "bash-completion", "completions", "egressctl")
    for path in (unit, completion):
        assert os.path.isfile(path) and mode(path) == 0o644, path

    text = open(unit).read()
    assert re.search(r"^Type=notify$", text, re.M), text
    assert re.search(r"^Restart=on-failure$", text, re.M), text
    assert re.search(r"^ExecReload=/bin/kill -HUP \$MAINPID$", text, re.M), text
    assert re.search(rf"^ExecStart={re.escape(prefix)}/bin/egressd( |$)", text, re.M), text

    # The operator's policy is kept; the other examples are installed, 0644, and valid.
    assert (policies / "agent.yaml").read_text() == mine
    assert "Kept (exists)" in r.stdout, r.stdout
    examples = sorted(os.listdir(os.path.join(SOURCE_DIR, "packaging", "policies")))
    assert examples and "agent.yaml" in examples
    for name in examples:
        path = policies / name
        assert path.is_file(), name
        if name != "agent.yaml":
            assert mode(path) == 0o644, name
            check = subprocess.run([EGRESSCTL, "policy", "check", str(path)], capture_output=True,
                                   text=True, timeout=30)
            assert check.returncode == 0, check.stderr

    # Installing again changes no policy file (the examples are now all "existing").
    (policies / "learn.yaml").write_text("name: learn\n")
    r = subprocess.run(["cmake", "--install", BUILD_DIR, "--prefix", prefix],
                       env={**os.environ, "DESTDIR": str(destdir)}, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert (policies / "learn.yaml").read_text() == "name: learn\n"
    assert (policies / "agent.yaml").read_text() == mine

    # The completion script is valid bash and completes egressctl's commands.
    r = subprocess.run(["bash", "-c", f'source "{completion}"; COMP_WORDS=(egressctl li); '
                        'COMP_CWORD=1; _egressctl; echo "${COMPREPLY[@]}"'],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.split() == ["list"], r.stdout + r.stderr

    analyze = shutil.which("systemd-analyze")
    if analyze:
        # verify checks that ExecStart's binary exists: a copy of the unit
        # pointed at the staged binary is verified against the host's units.
        staged = tmp_path / "verify" / "egressd.service"
        staged.parent.mkdir()
        staged.write_text(text.replace(f"ExecStart={prefix}/bin/egressd",
                                       f"ExecStart={root}/bin/egressd"))
        r = subprocess.run([analyze, "verify", str(staged)], capture_output=True, text=True,
                           timeout=60)
        problems = [l for l in (r.stdout + r.stderr).splitlines() if "egressd.service" in l]
        assert r.returncode == 0 and not problems, r.stdout + r.stderr


def test_configure_without_tests_needs_no_googletest(tmp_path):
    build = tmp_path / "build-no-tests"
    r = subprocess.run(["cmake", "-S", SOURCE_DIR, "-B", str(build), "-DEGRESSD_BUILD_TESTS=OFF"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    cache = (build / "CMakeCache.txt").read_text()
    assert "GTest_DIR" not in cache and "gtest" not in cache.lower(), "GoogleTest was looked up"
    targets = subprocess.run(["cmake", "--build", str(build), "--target", "help"],
                             capture_output=True, text=True, timeout=120)
    assert "egressd" in targets.stdout and "egressctl" in targets.stdout, targets.stdout
    assert "_test" not in targets.stdout, targets.stdout


# ---- the command lines ---------------------------------------------------------


def test_version_of_both_binaries():
    version = project_version()
    for binary, name in ((EGRESSD, "egressd"), (EGRESSCTL, "egressctl")):
        r = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and r.stdout == f"{name} {version}\n", r.stdout + r.stderr


COMMANDS = ["status", "run", "attach", "detach", "list", "stats", "events", "policy", "ca",
            "handler", "hosts", "secret"]


def test_command_help_prints_that_command_usage_only():
    full = subprocess.run([EGRESSCTL, "--help"], capture_output=True, text=True, timeout=30)
    assert full.returncode == 0 and "commands:" in full.stdout
    for cmd in COMMANDS:
        r = subprocess.run([EGRESSCTL, cmd, "--help"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, (cmd, r.stderr)
        assert r.stdout.startswith(f"usage: egressctl {cmd}"), (cmd, r.stdout)
        assert "commands:" not in r.stdout, (cmd, r.stdout)
        others = [c for c in COMMANDS if c != cmd and re.search(rf"^usage: egressctl {c}\b", r.stdout, re.M)]
        assert not others, (cmd, r.stdout)
    r = subprocess.run([EGRESSCTL, "list", "--help"], capture_output=True, text=True, timeout=30)
    assert "egressctl attach" not in r.stdout and "secret" not in r.stdout, r.stdout


def test_egressd_socket_variable_and_the_flag_wins(env, tmp_path):
    plain = {k: v for k, v in os.environ.items() if k != "EGRESSD_SOCKET"}
    nowhere = str(tmp_path / "nowhere.sock")

    def status(*args, socket_env=None):
        e = dict(plain, **({"EGRESSD_SOCKET": socket_env} if socket_env else {}))
        return subprocess.run([EGRESSCTL, *args, "status", "--json"], capture_output=True,
                              text=True, timeout=30, env=e)

    r = status(socket_env=env.daemon.socket)
    assert r.returncode == 0 and json.loads(r.stdout)["pid"] == env.daemon.proc.pid, r.stderr
    r = status("--socket", env.daemon.socket, socket_env=nowhere)
    assert r.returncode == 0, r.stderr
    r = status(socket_env=nowhere)
    assert r.returncode == 1 and nowhere in r.stderr, r.stderr
    r = status("--socket", nowhere, socket_env=env.daemon.socket)
    assert r.returncode == 1 and nowhere in r.stderr, r.stderr


def test_json_on_every_printing_command_or_a_usage_error(env, tmp_path):
    d = env.daemon
    write_policy(d.policy_dir, "learnjson", mode="audit", allowed_hosts=["allowed.test"])
    sb = env.sandbox("open")
    audit_sb = env.sandbox("learnjson")
    good = write_policy(str(tmp_path), "good", allowed_hosts=["a.test"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nallowed_hosts: 3\n")
    spare = os.path.join(CGROUP2, f"egressd-test-{uuid.uuid4().hex[:8]}")
    os.mkdir(spare)
    try:
        parsed = [
            ["status"], ["list"], ["stats"], ["stats", sb.instance], ["ca", sb.instance],
            ["attach", spare, "--policy", "open", "--instance", f"j-{uuid.uuid4().hex[:6]}"],
            ["policy", "check", good], ["policy", "reload"],
            ["policy", "suggest", "--instance", audit_sb.instance],
            ["handler", "list", sb.instance], ["hosts", "list", sb.instance],
            ["hosts", "allow", sb.instance, "extra.test"], ["hosts", "clear", sb.instance],
            ["secret", "list"], ["detach", spare],
        ]
        for args in parsed:
            r = d.ctl(*args, "--json", check=False)
            assert r.returncode == 0, (args, r.stderr)
            json.loads(r.stdout)  # one JSON document, nothing else
        r = d.ctl("policy", "check", str(bad), "--json", check=False)
        assert r.returncode == 1, r.stderr
        out = json.loads(r.stdout)
        assert out["ok"] is False and out["errors"] and out["errors"][0]["line"] == 2, out
        r = d.ctl("events", "--json", check=False)
        assert r.returncode == 0, r.stderr
        for line in r.stdout.splitlines():
            json.loads(line)  # one event per line
        refused = [["run", "--policy", "open", "--json", "--", "true"],
                   ["secret", "set", "x", "--json"], ["secret", "rm", "x", "--json"]]
        for args in refused:
            r = subprocess.run([*d.ctl_argv(), *args], capture_output=True, text=True, timeout=30,
                               input="")
            assert r.returncode == 2 and "--json" in r.stderr and not r.stdout, (args, r.stderr)
    finally:
        d.ctl("detach", spare, check=False)
        kill_cgroup(spare)
        if os.path.isdir(spare):
            os.rmdir(spare)


# ---- logs ------------------------------------------------------------------------


def access_lines(daemon, kind, instance):
    return [l for l in list(daemon.log) if f"access: {kind} " in l and f"instance={instance} " in l]


def field(line, name):
    m = re.search(rf"\b{name}=(\S+)", line)
    return m.group(1) if m else None


def test_debug_log_has_one_line_per_connection_and_per_request(env):
    sb = env.sandbox("open")
    port = env.http.port
    # One connection, two requests (curl keeps the connection for the same host).
    r = sb.curl(f"http://allowed.test:{port}/one", f"http://allowed.test:{port}/two")
    assert r.returncode == 0 and r.stdout.count("origin-http") == 2, r.stdout + r.stderr
    # One connection, one denied request.
    r = sb.curl("-o", "/dev/null", "-w", "%{http_code}", f"http://denied.test:{port}/")
    assert r.stdout == "403", r.stdout + r.stderr

    d = env.daemon
    assert d.wait_log(lambda l: "access: connection" in l and f"instance={sb.instance} " in l
                      and "host=denied.test" in l, timeout=10), "\n".join(d.log[-30:])
    assert d.wait_log(lambda l: len(access_lines(d, "connection", sb.instance)) >= 2, timeout=10)
    requests = access_lines(d, "request", sb.instance)
    connections = access_lines(d, "connection", sb.instance)
    assert len(requests) == 3, "\n".join(requests)
    assert len(connections) == 2, "\n".join(connections)
    for line in requests + connections:
        for name in ("instance", "host", "address", "decision", "bytes_up", "bytes_down",
                     "duration_ms"):
            assert field(line, name) is not None, (name, line)
        assert re.fullmatch(r"\d+", field(line, "duration_ms")), line
    allowed = [l for l in requests if field(l, "host") == "allowed.test"]
    assert len(allowed) == 2, requests
    for line in allowed:
        assert field(line, "decision") == "allowed" and field(line, "status") == "200", line
        assert field(line, "address") == f"127.0.0.1:{port}", line
        assert int(field(line, "bytes_up")) > 0 and int(field(line, "bytes_down")) > 0, line
    denied = [l for l in requests if field(l, "host") == "denied.test"]
    assert len(denied) == 1 and field(denied[0], "decision") == "denied", requests
    assert field(denied[0], "status") == "403" and field(denied[0], "bytes_down") == "0", denied
    by_host = {field(l, "host"): l for l in connections}
    assert field(by_host["allowed.test"], "decision") == "allowed", connections
    assert int(field(by_host["allowed.test"], "bytes_down")) > 0, connections
    # An HTTP connection's host and decision are its last request's.
    assert field(by_host["denied.test"], "decision") == "denied", connections


SOURCE_PATH = re.compile(r"[\w/.-]+\.(cc|h|cpp|c):\d+")


def test_no_source_paths_in_log_lines(env, tmp_path):
    # Refused control requests and failed attaches log the daemon's error: its
    # message only, never the file:line of the code that made it.
    d = env.daemon
    d.ctl("detach", str(tmp_path / "no-such-cgroup"), check=False)
    d.ctl("attach", str(tmp_path / "no-such-cgroup"), "--policy", "open", check=False)
    d.ctl("ca", "no-such-instance", check=False)
    assert d.wait_log(lambda l: "control: refused" in l, timeout=10), "\n".join(d.log[-20:])
    found = [l for l in list(d.history) if SOURCE_PATH.search(l)]
    assert not found, "\n".join(found[:10])
