"""Network namespaces for end-to-end tests: an origin namespace joined to the
host by a veth pair (198.18.0.0/15, the benchmarking range: never a real
outside address), HTTP origins inside it, and helpers to run commands in a
namespace. Everything made here is removed by close(), even after a failure."""
import os
import random
import subprocess
import sys
import uuid

from bounded import read_line
from leftovers import cgroup2_mount, kill_cgroup

SERVER = r"""
import http.server, socket, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        body = f"{sys.argv[3]} host={self.headers.get('Host')} path={self.path}"
        if self.path == "/peer":  # which connection carried it: the client's port
            body += f" peer={self.client_address[1]}"
        body = (body + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
class S(http.server.ThreadingHTTPServer):
    daemon_threads = True
    address_family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = S((sys.argv[1], int(sys.argv[2])), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"""


def run(*args, check=True):
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {r.stderr}")
    return r


class OriginNetns:
    """A namespace with `ip` on a veth whose host end is `host_ip`."""

    def __init__(self):
        tag = uuid.uuid4().hex[:8]
        self.name = f"egressd-test-{tag}"
        self.host_if, self.ns_if = f"egh{tag}", f"ego{tag}"
        # A /30 no other namespace of this run uses: two on one subnet would
        # route the host's packets for one of them to the other.
        in_use = run("ip", "-4", "-o", "addr", "show").stdout
        n = random.choice([i for i in range(1, 251) if f" 198.18.{i}.1/" not in in_use])
        self.host_ip, self.ip = f"198.18.{n}.1", f"198.18.{n}.2"
        self.servers = []
        self._made_ns = self._made_link = False
        try:
            run("ip", "netns", "add", self.name)
            self._made_ns = True
            run("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if,
                "netns", self.name)
            self._made_link = True
            run("ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
            run("ip", "link", "set", self.host_if, "up")
            self.exec("ip", "addr", "add", f"{self.ip}/30", "dev", self.ns_if)
            self.exec("ip", "link", "set", self.ns_if, "up")
            self.exec("ip", "link", "set", "lo", "up")
        except Exception:
            self.close()
            raise

    def exec(self, *args, check=True):
        return run("ip", "netns", "exec", self.name, *args, check=check)

    def http_server(self, name):
        """Starts an HTTP origin on the namespace's address; returns its port."""
        proc = subprocess.Popen(["ip", "netns", "exec", self.name, sys.executable, "-c", SERVER,
                                 self.ip, "0", name], stdout=subprocess.PIPE, text=True)
        self.servers.append(proc)
        line = read_line(proc.stdout, 20, f"port of origin {name}")  # printed once it listens
        if not line.strip():
            raise RuntimeError(f"origin {name} did not start in {self.name}")
        return int(line)

    def close(self):
        for p in self.servers:
            p.kill()
            p.wait(timeout=10)
        if self._made_link:
            run("ip", "link", "del", self.host_if, check=False)
        if self._made_ns:
            run("ip", "netns", "del", self.name, check=False)


AGENT = os.path.join(os.path.dirname(__file__), "sandbox_agent.py")


class Agent:
    """sandbox_agent.py started by `argv_prefix` (egressctl run ..., unshare ...)."""

    def __init__(self, argv_prefix):
        self.proc = subprocess.Popen([*argv_prefix, "/usr/bin/python3", "-u", AGENT],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = read_line(self.proc.stdout, 20, "ready from the sandbox agent")
        if line != "ready\n":
            self.close()
            raise RuntimeError(f"sandbox agent did not start: {line!r}")

    @property
    def pid(self):
        return self.proc.pid

    def ask(self, *words):
        self.proc.stdin.write(" ".join(str(w) for w in words) + "\n")
        self.proc.stdin.flush()
        return read_line(self.proc.stdout, 30, f"an answer to {words}").strip()

    def close(self):
        """Ends the agent; returns its exit status (egressctl's when it ran through run)."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=10)


class UnsharedProcess:
    """A sandbox agent in `unshare -n`, in a test-named cgroup of its own: a
    container as egressd finds it (its own network namespace, not attached)."""

    def __init__(self):
        self.cgroup = os.path.join(cgroup2_mount(), f"egressd-test-{uuid.uuid4().hex[:8]}")
        os.mkdir(self.cgroup)
        try:
            self.agent = Agent(["unshare", "-n", "sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"',
                                self.cgroup])
        except BaseException:
            kill_cgroup(self.cgroup)
            os.rmdir(self.cgroup)
            raise

    def close(self):
        kill_cgroup(self.cgroup)
        self.agent.close()
        os.rmdir(self.cgroup)

