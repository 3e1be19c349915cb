"""Fixtures for egressd's end-to-end tests: a real daemon, real cgroups, real
BPF, origin servers and a DNS server on loopback, real clients.

They need root, cgroup v2 and BPF. Outside CI a machine without them skips;
under CI=true a missing capability fails the run instead.
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

BUILD_DIR = os.environ.get("EGRESSD_BUILD_DIR", os.path.join(os.path.dirname(__file__), "../../build"))
EGRESSD = os.path.join(BUILD_DIR, "userspace", "egressd")
EGRESSCTL = os.path.join(BUILD_DIR, "tools", "egressctl")
PYTHON = "/usr/bin/python3"


def _cgroup2_mount():
    with open("/proc/self/mounts") as f:
        for line in f:
            dev, path, fstype = line.split()[:3]
            if fstype == "cgroup2":
                return path
    return None


def _require_privileges():
    problems = []
    if os.geteuid() != 0:
        problems.append("not root")
    if not _cgroup2_mount():
        problems.append("no cgroup2 mount")
    if not os.path.exists(EGRESSD):
        problems.append(f"{EGRESSD} not built")
    if problems:
        msg = "end-to-end tests need: " + ", ".join(problems)
        if os.environ.get("CI") == "true":
            pytest.fail(msg + " (CI=true: this is a failure, not a skip)")
        pytest.skip(msg)


CGROUP2 = _cgroup2_mount()


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
    def __init__(self, workdir, dns_upstream, extra_args=()):
        self.workdir = workdir
        self.extra_args = list(extra_args)
        self.socket = os.path.join(workdir, "egressd.sock")
        self.state_dir = os.path.join(workdir, "state")
        self.policy_dir = os.path.join(workdir, "policies")
        os.makedirs(self.policy_dir, exist_ok=True)
        self.bpffs = f"/sys/fs/bpf/egressd-test-{uuid.uuid4().hex[:8]}"
        self.proxy_port = free_port()
        self.cgroup_root = os.path.join(CGROUP2, f"egressd-test-root-{uuid.uuid4().hex[:8]}")
        self.dns_upstream = dns_upstream
        self.proc = None
        self.log = []
        self._ready = threading.Event()

    def start(self, timeout=20):
        # An event of this start's own: the reader of a previous (killed)
        # process sets its own when it reaches EOF, never this one.
        ready = self._ready = threading.Event()
        self.proc = subprocess.Popen(
            [EGRESSD, "--socket", self.socket, "--state-dir", self.state_dir, "--bpffs", self.bpffs,
             "--policy-dir", self.policy_dir, "--proxy-port", str(self.proxy_port),
             "--dns-upstream", self.dns_upstream, "--cgroup-root", self.cgroup_root,
             "--log-level", "debug", *self.extra_args],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        proc = self.proc

        def read():
            for line in proc.stderr:
                self.log.append(line.rstrip())
                if "egressd ready" in line:
                    ready.set()
            ready.set()  # exited: unblock the waiter

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(timeout) or proc.poll() is not None:
            raise RuntimeError("egressd did not become ready:\n" + "\n".join(self.log[-30:]))

    def wait_log(self, predicate, timeout=5):
        """Waits for a daemon log line matching predicate (events are drained every 100 ms)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(predicate(l) for l in list(self.log)):
                return True
            time.sleep(0.05)
        return False

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

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
        self.stop()
        # Unpinning the links detaches the programs; then the maps go.
        shutil.rmtree(self.bpffs, ignore_errors=True)
        # Transient sandboxes a failed test left: kill, then remove their cgroups.
        if os.path.isdir(self.cgroup_root):
            for name in os.listdir(self.cgroup_root):
                path = os.path.join(self.cgroup_root, name)
                if os.path.isdir(path):
                    kill_cgroup(path)
                    try:
                        os.rmdir(path)
                    except OSError:
                        pass
            try:
                os.rmdir(self.cgroup_root)
            except OSError:
                pass
        netns_dir = os.path.join(self.state_dir, "netns")
        if os.path.isdir(netns_dir):
            for name in os.listdir(netns_dir):
                subprocess.run(["umount", "-l", os.path.join(netns_dir, name)], capture_output=True)


def kill_cgroup(path, timeout=5):
    """Kills every process of a cgroup and waits until it is empty."""
    try:
        with open(os.path.join(path, "cgroup.kill"), "w") as f:
            f.write("1")
    except OSError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(os.path.join(path, "cgroup.events")) as f:
            if "populated 0" in f.read():
                return
        time.sleep(0.05)  # cgroup.kill is asynchronous


class Sandbox:
    """A real cgroup under a policy; commands run inside it from their first instruction."""

    def __init__(self, daemon, policy, instance=None):
        self.daemon = daemon
        self.instance = instance or f"sb-{uuid.uuid4().hex[:8]}"
        self.path = os.path.join(CGROUP2, f"egressd-test-{uuid.uuid4().hex[:8]}")
        os.mkdir(self.path)
        self.attach(policy)

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
        kill_cgroup(self.path)
        self.daemon.ctl("detach", self.path, check=False)
        try:
            os.rmdir(self.path)
        except OSError:
            pass


@pytest.fixture(scope="module")
def env(tmp_path_factory, request):
    """Origins, DNS and a running daemon shared by the tests of one module
    (which may set EGRESSD_EXTRA_ARGS, a list of daemon flags)."""
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
    e.daemon = Daemon(work, e.dns.address, getattr(request.module, "EGRESSD_EXTRA_ARGS", ()))
    cleanups = [e.http.close, e.https.close, e.http6.close, e.dns.close, e.daemon.cleanup]
    e.sandboxes = []
    e.dns_dir = os.path.dirname(__file__)
    e.daemon_egressctl = EGRESSCTL
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
        for sb in e.sandboxes:
            sb.cleanup()
        for c in reversed(cleanups):
            try:
                c()
            except Exception:
                pass
