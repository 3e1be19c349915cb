"""Fixtures for egressd's end-to-end tests: a real daemon, real cgroups, real
BPF, origin servers and a DNS server on loopback, real clients.

They need root, cgroup v2 and BPF. Outside CI a machine without them skips
(the module exits 77, which ctest shows as skipped); under CI (CI=true, 1 or
yes) a missing capability or tool fails the run instead.

Every wait is bounded: sockets get a default timeout, lines from a process
are read with `read_line(stream, timeout)`, pytest-timeout bounds each test.
Cleanup runs each step on its own, so one failure skips no other step.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from fakedns import FakeDns  # noqa: E402
from netns_helpers import OriginNetns  # noqa: E402
from origins import Origin, make_ca  # noqa: E402
from bounded import read_line, run_each  # noqa: E402,F401  (read_line is for the test modules)
from leftovers import cgroup2_mount, kill_cgroup  # noqa: E402,F401

BUILD_DIR = os.environ.get("EGRESSD_BUILD_DIR", os.path.join(os.path.dirname(__file__), "../../build"))
EGRESSD = os.path.join(BUILD_DIR, "userspace", "egressd")
EGRESSCTL = os.path.join(BUILD_DIR, "tools", "egressctl")
PYTHON = "/usr/bin/python3"


def in_ci():
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


# What the end-to-end tests run besides egressd: missing under CI is a failure.
TOOLS = ["curl", "openssl", "ip", "nsenter", "unshare"]
PYTHON_MODULES = ["pytest_timeout", "ssl", "json"]


def _missing_prerequisites():
    problems = []
    if os.geteuid() != 0:
        problems.append("not root")
    if not cgroup2_mount():
        problems.append("no cgroup2 mount")
    if not os.path.exists(EGRESSD):
        problems.append(f"{EGRESSD} not built")
    problems += [f"{t} not installed" for t in TOOLS if not shutil.which(t)]
    for module in PYTHON_MODULES:
        r = subprocess.run([PYTHON, "-c", f"import {module}"], capture_output=True, timeout=30)
        if r.returncode != 0:
            problems.append(f"python module {module} missing for {PYTHON}")
    return problems


def _require_privileges():
    problems = _missing_prerequisites()
    if problems:
        msg = "end-to-end tests need: " + ", ".join(problems)
        if in_ci():
            pytest.fail(msg + " (under CI this is a failure, not a skip)")
        pytest.skip(msg)


# Nothing in a test waits forever on a socket.
socket.setdefaulttimeout(30)

SKIPPED_EXIT = 77  # ctest's SKIP_RETURN_CODE for the e2e modules


def pytest_sessionfinish(session, exitstatus):
    """A module whose tests all skipped is reported to ctest as skipped, never as passed."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or exitstatus != 0:
        return
    ran = sum(len(reporter.stats.get(k, [])) for k in ("passed", "failed", "error", "xfailed", "xpassed"))
    if reporter.stats.get("skipped") and ran == 0:
        session.exitstatus = SKIPPED_EXIT


CGROUP2 = cgroup2_mount()


def free_port(family=socket.AF_INET):
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1" if family == socket.AF_INET else "::1", 0))
        return s.getsockname()[1]


def write_policy(directory, name, **fields):
    """Writes NAME.yaml with the given fields (lists as YAML flow lists)."""
    lines = [f"name: {name}"]
    for key, value in fields.items():
        if isinstance(value, list):
            lines.append(f"{key}: {json.dumps(value)}")
        else:
            lines.append(f"{key}: {value}")
    path = os.path.join(directory, f"{name}.yaml")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


class Daemon:
    def __init__(self, workdir, dns_upstream, **flags):
        """`flags`: more daemon flags for every start, by name with underscores
        (`idle_timeout=1` is `--idle-timeout 1`); also in `self.flags`."""
        self.workdir = workdir
        self.socket = os.path.join(workdir, "egressd.sock")
        self.state_dir = os.path.join(workdir, "state")
        self.policy_dir = os.path.join(workdir, "policies")
        os.makedirs(self.policy_dir, exist_ok=True)
        self.secrets_dir = os.path.join(workdir, "secrets")  # created by egressd, 0700
        self.bpffs = f"/sys/fs/bpf/egressd-test-{uuid.uuid4().hex[:8]}"
        # 0: egressd picks a free port itself (no window for another process
        # to take it) and reports it; restarts pass that port, since pinned
        # sandbox configs point at it.
        self.proxy_port = 0
        self.cgroup_root = os.path.join(CGROUP2, f"egressd-test-root-{uuid.uuid4().hex[:8]}")
        self.dns_upstream = dns_upstream
        self.flags = dict(flags)  # more flags for every start: {"audit_log_max_bytes": 4096}
        self.proc = None
        self.log = []        # this start's lines only: wait_log never matches an earlier daemon
        self.history = []    # every start's lines, for failure messages and sanitizer reports
        self._reader = None
        self._ready = threading.Event()

    def argv(self, **overrides):
        """egressd's command line: the fixture's flags, then `self.flags`, then
        `overrides` (socket=..., proxy_port=...) for this command line only.
        A value of None leaves the flag out."""
        values = {"socket": self.socket, "state-dir": self.state_dir, "bpffs": self.bpffs,
                  "policy-dir": self.policy_dir, "proxy-port": self.proxy_port,
                  "dns-upstream": self.dns_upstream, "cgroup-root": self.cgroup_root,
                  "secrets-dir": self.secrets_dir, "log-level": "debug"}
        for flags in (self.flags, overrides):
            values.update({k.replace("_", "-"): v for k, v in flags.items()})
        return [EGRESSD] + [a for k, v in values.items() if v is not None for a in (f"--{k}", str(v))]

    def start(self, timeout=20):
        # An event and a log of this start's own: the reader of a previous
        # (killed) process sets its own when it reaches EOF, never this one's.
        ready = self._ready = threading.Event()
        log = self.log = []
        self.proc = subprocess.Popen(self.argv(), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     text=True)
        proc = self.proc

        def read():
            for line in proc.stderr:
                log.append(line.rstrip())
                self.history.append(line.rstrip())
                if "egressd ready" in line:
                    ready.set()
            ready.set()  # exited: unblock the waiter

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        if not ready.wait(timeout) or proc.poll() is not None:
            raise RuntimeError("egressd did not become ready:\n" + "\n".join(log[-30:]))
        self.proxy_port = self.reported_proxy_port()

    READY = re.compile(r"egressd ready: .* proxy port (\d+) ")

    def reported_proxy_port(self):
        """The proxy port this start's `egressd ready` line names."""
        ports = [int(m.group(1)) for m in map(self.READY.search, list(self.log)) if m]
        if len(ports) != 1 or ports[0] == 0 or (self.proxy_port and ports[0] != self.proxy_port):
            raise RuntimeError(f"egressd reported proxy port(s) {ports}, expected one, "
                               f"{self.proxy_port or 'any but 0'}")
        return ports[0]

    def wait_log(self, predicate, timeout=5):
        """Waits for a line of the running daemon's log matching predicate
        (events are drained every 100 ms); polling the log is the signal."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(predicate(l) for l in list(self.log)):
                return True
            time.sleep(0.05)
        return False

    def _wait_exit(self, timeout=10):
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self._reader:
            self._reader.join(timeout=10)  # the whole log, sanitizer reports included

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self._wait_exit()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        if self.proc:
            self._wait_exit()

    def check_sanitizers(self):
        """Fails when an instrumented daemon (tools/test.sh --sanitize) reported anything."""
        reports = [l for l in self.history if any(m in l for m in SANITIZER_MARKERS)]
        if reports:
            start = self.history.index(reports[0])
            raise AssertionError("sanitizer report from egressd:\n" + "\n".join(self.history[start:start + 60]))

    def ctl_argv(self):
        """argv of `egressctl --socket SOCKET`, to put a command after."""
        return [EGRESSCTL, "--socket", self.socket]

    def ctl(self, *args, check=True):
        r = subprocess.run([EGRESSCTL, "--socket", self.socket, *args], capture_output=True, text=True,
                           timeout=30)
        if check and r.returncode != 0:
            raise AssertionError(f"egressctl {' '.join(args)} failed ({r.returncode}): {r.stderr}")
        return r

    def run(self, *args, **kw):
        """`egressctl run ARGS`: returns the CompletedProcess (no check)."""
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("timeout", 60)
        return subprocess.run([EGRESSCTL, "--socket", self.socket, "run", *args], **kw)

    def run_prefix(self, *args):
        """argv of `egressctl run ARGS --`, to put a command after."""
        return [EGRESSCTL, "--socket", self.socket, "run", *args, "--"]

    def popen_run(self, *args, **kw):
        return subprocess.Popen([EGRESSCTL, "--socket", self.socket, "run", *args], **kw)

    def instances(self):
        return {s["instance"]: s for s in json.loads(self.ctl("list", "--json").stdout)["sandboxes"]}

    def status(self):
        return json.loads(self.ctl("status").stdout)

    def stats(self, instance):
        data = json.loads(self.ctl("stats", instance, "--json").stdout)
        assert len(data["sandboxes"]) == 1
        return data["sandboxes"][0]

    def cleanup(self):
        run_each([
            ("stop egressd", self.stop),
            # Unpinning the links detaches the programs; then the maps go.
            ("remove bpffs pins", lambda: shutil.rmtree(self.bpffs, ignore_errors=True)),
            ("remove transient cgroups", self._remove_cgroup_root),
            ("unmount netns references", self._unmount_netns),
            ("sanitizer reports", self.check_sanitizers),
        ])

    def _remove_cgroup_root(self):
        # Transient sandboxes a failed test left: kill, then remove their cgroups.
        if not os.path.isdir(self.cgroup_root):
            return
        for name in os.listdir(self.cgroup_root):
            path = os.path.join(self.cgroup_root, name)
            if os.path.isdir(path):
                kill_cgroup(path)
                if os.path.isdir(path):
                    os.rmdir(path)
        os.rmdir(self.cgroup_root)

    def _unmount_netns(self):
        netns_dir = os.path.join(self.state_dir, "netns")
        if os.path.isdir(netns_dir):
            for name in os.listdir(netns_dir):
                subprocess.run(["umount", "-l", os.path.join(netns_dir, name)], capture_output=True,
                               timeout=10)


SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "ERROR: ThreadSanitizer", "WARNING: ThreadSanitizer")


class Sandbox:
    """A real cgroup under a policy; commands run inside it from their first instruction."""

    def __init__(self, daemon, policy, instance=None):
        self.daemon = daemon
        self.instance = instance or f"sb-{uuid.uuid4().hex[:8]}"
        self.path = os.path.join(CGROUP2, f"egressd-test-{uuid.uuid4().hex[:8]}")
        os.mkdir(self.path)
        try:
            self.attach(policy)
        except BaseException:
            self.cleanup()  # a sandbox whose attach failed leaves nothing behind either
            raise

    def attach(self, policy, check=True):
        return self.daemon.ctl("attach", self.path, "--policy", policy, "--instance", self.instance,
                               check=check)

    def _argv(self, args):
        # The shell joins the cgroup, then execs: nothing of the command predates it.
        return ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', self.path, *args]

    def run(self, *args, timeout=30, **kw):
        return subprocess.run(self._argv(args), capture_output=True, text=True, timeout=timeout, **kw)

    def popen(self, *args, **kw):
        return subprocess.Popen(self._argv(args), **kw)

    def python(self, code, timeout=60):
        return self.run(PYTHON, "-c", code, timeout=timeout)

    def curl(self, *args, timeout=30):
        # Test names (*.test) are pinned to loopback with --resolve, so the
        # sandbox never sends a DNS query towards the host's real resolver.
        # egressd still resolves the name itself, through the test's DNS server.
        extra = []
        explicit = " ".join(a for a in args if ":" in a and not a.startswith("http"))
        for a in args:
            m = re.match(r"https?://([a-z0-9.-]+\.test):(\d+)", a)
            if m and f"{m.group(1)}:{m.group(2)}:" not in explicit:
                extra += ["--resolve", f"{m.group(1)}:{m.group(2)}:127.0.0.1"]
        return self.run("curl", "-sS", "--max-time", "10", "--noproxy", "*", *extra, *args, timeout=timeout)

    def stats(self):
        return self.daemon.stats(self.instance)

    def cleanup(self):
        run_each([
            ("kill the sandbox's processes", lambda: kill_cgroup(self.path)),
            ("detach", lambda: self.daemon.ctl("detach", self.path, check=False)),
            ("remove the cgroup", lambda: os.path.isdir(self.path) and os.rmdir(self.path)),
        ])


@pytest.fixture(scope="module")
def env(tmp_path_factory, request):
    """Origins, DNS and a running daemon shared by the tests of one module
    (which may set EGRESSD_FLAGS, a dict of daemon flags: {"idle_timeout": 1})."""
    _require_privileges()
    work = str(tmp_path_factory.mktemp("egressd"))
    names = ["allowed.test", "denied.test", "other.test", "v6.test", "127.0.0.1", "::1"]
    ca, crt, key = make_ca(work, names)
    e = type("Env", (), {})()
    e.ca = ca
    e.http = Origin("origin-http")
    e.https = Origin("origin-https", tls=(crt, key))
    e.http6 = Origin("origin-http6", host="::1")
    e.dns = FakeDns({
        "allowed.test": ["127.0.0.1"], "denied.test": ["127.0.0.1"], "other.test": ["127.0.0.1"],
        "v6.test": ["::1"], "nowhere.test": [],
    })
    e.daemon = Daemon(work, e.dns.address, **getattr(request.module, "EGRESSD_FLAGS", {}))
    cleanups = [e.http.close, e.https.close, e.http6.close, e.dns.close, e.daemon.cleanup]
    e.sandboxes = []
    e.dns_dir = os.path.dirname(__file__)
    e.daemon_egressctl = EGRESSCTL
    # The origins' CA is trusted for intercepted upstreams (never the sandbox's).
    e.daemon.flags["upstream_ca"] = ca
    try:
        e.daemon.start()
        write_policy(e.daemon.policy_dir, "open", denied_hosts=["denied.test"])
        write_policy(e.daemon.policy_dir, "strict", allowed_hosts=["allowed.test", "v6.test"])

        def sandbox(policy, instance=None):
            sb = Sandbox(e.daemon, policy, instance)
            e.sandboxes.append(sb)
            return sb

        e.sandbox = sandbox

        def origin_netns():
            """An origin namespace (veth to the host) with one HTTP origin, named
            origin.test / origin2.test / origin3.test in the test's DNS."""
            if not hasattr(e, "netns"):
                e.netns = OriginNetns()
                cleanups.append(e.netns.close)
                e.netns_port = e.netns.http_server("netns-origin")
                e.netns_raw_port = e.netns.http_server("netns-raw")  # for non-HTTP TCP
                for name in ("origin.test", "origin2.test", "origin3.test"):
                    e.dns.records[name] = [e.netns.ip]
            return e.netns

        e.origin_netns = origin_netns
        yield e
    finally:
        run_each([(f"sandbox {sb.instance}", sb.cleanup) for sb in e.sandboxes] +
                 [(getattr(c, "__qualname__", str(c)), c) for c in reversed(cleanups)])
