"""Sockets a container opened before `attach` never meet the connect/sendmsg
hooks: attach closes those whose peer is not loopback (TCP connections and
connected UDP sockets) and says how many. The peer lives in a namespace the
test made (OriginNetns); it logs what it receives."""
import json
import os
import socket
import subprocess
import sys
import threading
import uuid

from audit_events import events
from conftest import CGROUP2, PYTHON, kill_cgroup, write_policy
from bounded import read_line

# Listens on TCP and UDP on argv[1]; prints its ports, then one line per
# received word ("tcp WORD", "udp WORD") and how each TCP connection ended.
PEER = r"""
import socket, sys, threading
ip = sys.argv[1]
lock = threading.Lock()
def say(*words):
    with lock:
        print(*words, flush=True)
t = socket.socket(); t.bind((ip, 0)); t.listen()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind((ip, 0))
say(t.getsockname()[1], u.getsockname()[1])
def conn(c):
    try:
        while True:
            data = c.recv(4096)
            if not data:
                say("tcp", "eof"); return
            for w in data.decode().split(): say("tcp", w)
    except ConnectionResetError:
        say("tcp", "reset")
def tcp():
    while True:
        threading.Thread(target=conn, args=(t.accept()[0],), daemon=True).start()
threading.Thread(target=tcp, daemon=True).start()
while True:
    say("udp", u.recv(4096).decode().strip())
"""

# Runs in the cgroup: a TCP connection and a connected UDP socket to the peer,
# a TCP connection to a loopback server; then, per stdin line WORD, sends
# "WORD-NAME" on each and answers "NAME=ok" or "NAME=ERRNO" for each.
CLIENT = r"""
import errno, socket, sys
peer, tport, uport, lport = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
socks = {}
if tport:
    socks["tcp"] = socket.create_connection((peer, tport), timeout=5)
if uport:
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.connect((peer, uport))
    socks["udp"] = u
if lport:
    socks["loop"] = socket.create_connection(("127.0.0.1", lport), timeout=5)
print("ready", flush=True)
for line in sys.stdin:
    out = []
    for name, s in socks.items():
        try:
            s.send(f"{line.strip()}-{name}\n".encode())
            out.append(f"{name}=ok")
        except OSError as e:
            out.append(f"{name}={errno.errorcode.get(e.errno, e.errno)}")
    print(" ".join(out), flush=True)
"""


class Lines:
    """The stdout lines of a process, read by a thread; wait() for one."""

    def __init__(self, proc):
        self.lines = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, args=(proc,), daemon=True).start()

    def _read(self, proc):
        for line in proc.stdout:
            with self.cond:
                self.lines.append(line.strip())
                self.cond.notify_all()

    def wait(self, line, timeout=10):
        with self.cond:
            assert self.cond.wait_for(lambda: line in self.lines, timeout), (line, self.lines)


class LoopbackServer:
    """A TCP server on 127.0.0.1 that keeps what it receives."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.received = b""
        self.cond = threading.Condition()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        try:
            conn, _ = self.sock.accept()
            while data := conn.recv(4096):
                with self.cond:
                    self.received += data
                    self.cond.notify_all()
        except OSError:
            pass

    def wait(self, data, timeout=10):
        with self.cond:
            assert self.cond.wait_for(lambda: data in self.received, timeout), self.received

    def close(self):
        self.sock.close()


class Scene:
    """A cgroup (not attached) with a client in it, connected to a peer in
    an origin namespace and to a loopback server; or, with `inside`, a
    client that is itself in that namespace (no loopback server then)."""

    def __init__(self, env, tcp=True, udp=True, inside=None):
        self.env = env
        self.netns = inside or env.origin_netns()
        self.path = os.path.join(CGROUP2, f"egressd-test-{uuid.uuid4().hex[:8]}")
        self.instance = f"sk-{uuid.uuid4().hex[:8]}"
        self.peer = self.client = self.loop = None
        os.mkdir(self.path)
        try:
            self.peer = subprocess.Popen(["ip", "netns", "exec", self.netns.name, sys.executable, "-c",
                                          PEER, self.netns.ip], stdout=subprocess.PIPE, text=True)
            tport, uport = (int(p) for p in read_line(self.peer.stdout, 20).split())
            self.udp_port = uport
            self.peer_lines = Lines(self.peer)
            self.loop = None if inside else LoopbackServer()
            # nsenter, not `ip netns exec`: that one remounts /sys (and the cgroup tree with it).
            enter = ["nsenter", f"--net=/run/netns/{inside.name}"] if inside else []
            self.client = subprocess.Popen(
                [*enter, "sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', self.path, PYTHON, "-c",
                 CLIENT, self.netns.ip, str(tport if tcp else 0), str(uport if udp else 0),
                 str(self.loop.port if self.loop else 0)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            assert read_line(self.client.stdout, 20) == "ready\n"
        except BaseException:
            self.close()
            raise

    def send(self, word):
        """Sends WORD on every socket of the client: {name: "ok" or errno name}."""
        self.client.stdin.write(word + "\n")
        self.client.stdin.flush()
        return dict(item.split("=") for item in read_line(self.client.stdout, 20).split())

    def sentinel(self, word):
        """A datagram from the host to the peer, waited for: what the client
        sent before it has arrived by then."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(word.encode(), (self.netns.ip, self.udp_port))
        self.peer_lines.wait(f"udp {word}")

    def received_by_peer(self):
        return [line for line in self.peer_lines.lines if line.startswith(("tcp ", "udp "))]

    def attach(self, policy, *extra):
        return self.env.daemon.ctl("attach", self.path, "--policy", policy, "--instance", self.instance,
                                   *extra)

    def close(self):
        kill_cgroup(self.path)
        self.env.daemon.ctl("detach", self.path, check=False)
        for p in (self.client, self.peer):
            if p:
                p.kill()
                p.wait()
        if self.loop:
            self.loop.close()
        try:
            os.rmdir(self.path)
        except OSError:
            pass




def test_attach_closes_sockets_opened_before(env):
    scene = Scene(env)
    try:
        assert scene.send("before") == {"tcp": "ok", "udp": "ok", "loop": "ok"}
        scene.peer_lines.wait("tcp before-tcp")
        scene.peer_lines.wait("udp before-udp")

        reply = json.loads(scene.attach("strict", "--json").stdout)
        assert reply["sockets_closed"] == 2, reply
        assert reply["sockets_left_open"] == 0

        after = scene.send("after")
        assert after["tcp"] == "ECONNABORTED", after
        # The UDP socket was unconnected: its send fails (ECONNABORTED once,
        # then "no destination"), and a sendto would meet the sendmsg hook.
        assert after["udp"] in ("ECONNABORTED", "EDESTADDRREQ"), after
        assert scene.send("again")["udp"] == "EDESTADDRREQ"
        # The loopback connection is left alone.
        assert after["loop"] == "ok"
        scene.loop.wait(b"after-loop")

        scene.sentinel("sentinel")
        got = scene.received_by_peer()
        assert not [line for line in got if "after" in line or "again" in line], got

        closed = [e for e in events(env, scene.instance) if "opened before attach" in e["reason"]]
        assert len(closed) == 1, closed
        assert closed[0]["layer"] == "kernel" and closed[0]["enforced"] is True
        assert "closed 2 socket(s)" in closed[0]["reason"] and "TCP 1, UDP 1" in closed[0]["reason"]
    finally:
        scene.close()


def test_audit_mode_leaves_them_open_until_enforced(env):
    write_policy(env.daemon.policy_dir, "learning", mode="audit", allowed_hosts=["allowed.test"])
    scene = Scene(env, tcp=False)
    try:
        reply = json.loads(scene.attach("learning", "--json").stdout)
        assert reply["sockets_closed"] == 0 and reply["sockets_left_open"] == 1, reply
        assert scene.send("audited") == {"udp": "ok", "loop": "ok"}
        scene.peer_lines.wait("udp audited-udp")
        audit = [e for e in events(env, scene.instance) if "opened before attach" in e["reason"]]
        assert len(audit) == 1 and audit[0]["enforced"] is False, audit

        # Switching to enforce closes what audit mode let by; the human output says so.
        out = scene.attach("strict").stdout
        assert "switched" in out and "closed 1 socket(s) opened before attach" in out, out
        assert scene.send("enforced")["udp"] in ("ECONNABORTED", "EDESTADDRREQ")
        scene.sentinel("sentinel")
        assert not [line for line in scene.received_by_peer() if "enforced" in line]

        # A switch between enforcing policies has nothing to close.
        reply = json.loads(scene.attach("open", "--json").stdout)
        assert reply["switched"] is True and reply["sockets_closed"] == 0
    finally:
        scene.close()


def test_sockets_in_the_containers_own_namespace(env):
    """The cgroup's processes are in a namespace of their own: attach detects
    it and closes the sockets there (sock_diag answers per namespace)."""
    from netns_helpers import OriginNetns
    ns = OriginNetns()
    try:
        # Client and peer both in `ns`: the peer's address is not loopback.
        scene = Scene(env, inside=ns)
        try:
            assert scene.send("before") == {"tcp": "ok", "udp": "ok"}
            scene.peer_lines.wait("tcp before-tcp")
            reply = json.loads(scene.attach("strict", "--json").stdout)
            assert reply["netns"] != "host", reply  # detected from the client
            assert reply["sockets_closed"] == 2, reply
            after = scene.send("after")
            assert after["tcp"] == "ECONNABORTED", after
            assert after["udp"] in ("ECONNABORTED", "EDESTADDRREQ"), after
            scene.sentinel("sentinel")
            assert not [line for line in scene.received_by_peer() if "after" in line]
        finally:
            scene.close()
    finally:
        ns.close()
