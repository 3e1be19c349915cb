"""DNS with a failing upstream resolver: the sandbox gets SERVFAIL, never
silence. At once when the upstream refuses (its port is closed: ICMP port
unreachable), after `--dns-timeout` when it swallows the query; with an
Extended DNS Error (RFC 8914) for a client that sent an EDNS OPT record;
counted per sandbox and globally; and the next query is answered as soon as
the upstream is back. UDP and TCP.

DNS while the daemon is down (a query goes nowhere, the upstream sees
nothing) is test_contract.py's test_dns_while_the_daemon_is_down_goes_nowhere."""
import json
import os
import socket
import subprocess
import threading
import time

from conftest import PYTHON, Daemon, Sandbox, write_policy
from fakedns import FakeDns

# Runs in the sandbox: one A query to 127.0.0.1:53, printed as JSON (rcode,
# id, answers, the Extended DNS Error's code and text, seconds it took).
QUERY = r'''
import json, socket, struct, sys, time
name, transport, edns, timeout = sys.argv[1], sys.argv[2], sys.argv[3] == "edns", float(sys.argv[4])
qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"
msg = struct.pack("!HHHHHH", 0x5151, 0x0100, 1, 0, 0, 1 if edns else 0) + qname + struct.pack("!HH", 1, 1)
question_end = len(msg)
if edns:  # OPT: root, TYPE 41, payload 1232, no flags, no options
    msg += bytes([0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0])
start = time.monotonic()
try:
    if transport == "tcp":
        with socket.create_connection(("127.0.0.1", 53), timeout=timeout) as s:
            s.sendall(struct.pack("!H", len(msg)) + msg)
            data = b""
            while len(data) < 2 or len(data) < 2 + struct.unpack("!H", data[:2])[0]:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            reply = data[2:]
    else:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            s.sendto(msg, ("127.0.0.1", 53))
            reply = s.recv(4096)
except OSError as e:
    print(json.dumps({"error": type(e).__name__}))
    sys.exit(0)
out = {"elapsed": time.monotonic() - start, "id": struct.unpack("!H", reply[:2])[0],
       "rcode": reply[3] & 0xF, "answers": struct.unpack("!H", reply[6:8])[0],
       "additional": struct.unpack("!H", reply[10:12])[0], "ede": None, "ede_text": None}
if out["answers"] == 0 and out["additional"] == 1:
    off = question_end
    assert reply[off] == 0 and struct.unpack("!H", reply[off + 1:off + 3])[0] == 41, reply[off:]
    rdlen = struct.unpack("!H", reply[off + 9:off + 11])[0]
    rdata = reply[off + 11:off + 11 + rdlen]
    assert off + 11 + rdlen == len(reply), "the OPT record ends the message"
    while rdata:
        code, length = struct.unpack("!HH", rdata[:4])
        if code == 15:
            out["ede"] = struct.unpack("!H", rdata[4:6])[0]
            out["ede_text"] = rdata[6:4 + length].decode()
        rdata = rdata[4 + length:]
print(json.dumps(out))
'''


def ask(sb, name, transport, edns=True, timeout=10):
    r = sb.run(PYTHON, "-c", QUERY, name, transport, "edns" if edns else "plain", str(timeout),
               timeout=timeout + 20)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def closed_udp_port():
    """A loopback UDP port nothing listens on (just released by the kernel)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SilentUpstream:
    """A UDP "resolver" on loopback that reads every query and never answers."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received = []
        self._stop = False
        self._thread = threading.Thread(target=self._swallow, daemon=True)
        self._thread.start()

    def _swallow(self):
        while not self._stop:
            try:
                self.received.append(self.sock.recv(4096))
            except socket.timeout:
                continue
            except OSError:
                return

    def close(self):
        self._stop = True
        self._thread.join(timeout=5)
        self.sock.close()


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class OwnDaemon:
    """A daemon of the test's own, whose upstream is `upstream` (IP:PORT), with
    one host-namespace sandbox under an open policy."""

    def __init__(self, tmp_path, upstream, instance, **flags):
        self.daemon = Daemon(str(tmp_path), upstream, **flags)
        self.sandbox = None
        try:
            self.daemon.start()
            write_policy(self.daemon.policy_dir, "open")
            self.sandbox = Sandbox(self.daemon, "open", instance=instance)
        except BaseException:
            self.close()
            raise

    def close(self):
        if self.sandbox:
            self.sandbox.cleanup()
        self.daemon.cleanup()


def test_refusing_upstream_gets_servfail_at_once_and_answers_when_it_is_back(env, tmp_path):
    port = closed_udp_port()
    # A 30 s timeout: an answer within the client's 10 s can only come from the refusal.
    own = OwnDaemon(tmp_path, f"127.0.0.1:{port}", "refused-upstream", dns_timeout=30)
    upstream = None
    try:
        sb, d = own.sandbox, own.daemon
        for transport in ("udp", "tcp"):
            a = ask(sb, "allowed.test", transport)
            assert "error" not in a, (transport, a)  # the old tree: TimeoutError
            assert (a["rcode"], a["id"], a["answers"]) == (2, 0x5151, 0), (transport, a)
            assert a["ede"] == 23 and "refused" in a["ede_text"], (transport, a)  # Network Error
        assert sb.stats()["dns"] == {"queries": 2, "refused": 0, "servfail": 2}
        assert d.status()["dns"]["servfail"] == 2
        assert d.wait_log(lambda l: "sandboxes get SERVFAIL" in l and f"127.0.0.1:{port}" in l), \
            d.log[-10:]
        # The upstream is back on that port: the next query is relayed and answered.
        upstream = FakeDns({"allowed.test": ["127.0.0.1"]}, port=port)
        for transport in ("udp", "tcp"):
            a = ask(sb, "allowed.test", transport)
            assert (a["rcode"], a["answers"]) == (0, 1), (transport, a)
        assert upstream.queries == [("allowed.test", 1)] * 2
        assert sb.stats()["dns"]["servfail"] == 2
        assert d.wait_log(lambda l: "answers again" in l), d.log[-10:]
    finally:
        own.close()
        if upstream:
            upstream.close()


def test_silent_upstream_gets_servfail_after_the_dns_timeout(env, tmp_path):
    silent = SilentUpstream()
    own = None
    upstream = None
    try:
        own = OwnDaemon(tmp_path, f"127.0.0.1:{silent.port}", "silent-upstream", dns_timeout=1)
        sb, d = own.sandbox, own.daemon
        a = ask(sb, "allowed.test", "udp", edns=True)
        assert "error" not in a, a  # the old tree: TimeoutError (it waited 10 s, then dropped it)
        assert (a["rcode"], a["id"]) == (2, 0x5151), a
        assert a["ede"] == 22 and "did not answer within 1 s" in a["ede_text"], a  # No Reachable Authority
        assert a["elapsed"] >= 0.9, a  # not before the timeout
        a = ask(sb, "allowed.test", "tcp", edns=False)
        assert (a["rcode"], a["additional"]) == (2, 0), a  # no OPT for a client without EDNS
        assert a["elapsed"] >= 0.9, a
        # Both queries reached the upstream: the SERVFAILs are the timeout's.
        assert len(silent.received) == 2, silent.received
        assert sb.stats()["dns"] == {"queries": 2, "refused": 0, "servfail": 2}
        # The upstream answers again: so does the daemon.
        port = silent.port
        silent.close()
        upstream = FakeDns({"allowed.test": ["127.0.0.1"]}, port=port)
        a = ask(sb, "allowed.test", "udp")
        assert (a["rcode"], a["answers"]) == (0, 1), a
        assert sb.stats()["dns"]["servfail"] == 2
    finally:
        if own:
            own.close()
        silent.close()
        if upstream:
            upstream.close()


def test_egressds_own_lookups_end_at_the_dns_timeout(env, tmp_path):
    # The proxy resolves a request's Host itself: with a silent upstream the
    # client gets 502 once --dns-timeout is over (two attempts in it).
    silent = SilentUpstream()
    own = None
    try:
        own = OwnDaemon(tmp_path, f"127.0.0.1:{silent.port}", "silent-lookup", dns_timeout=1)
        fds_before = open_fds(own.daemon.proc.pid)
        code = f"""
import time, urllib.request, urllib.error
req = urllib.request.Request("http://127.0.0.1:{env.http.port}/", headers={{"Host": "slow.test"}})
t0 = time.monotonic()
try:
    urllib.request.urlopen(req, timeout=20)
except urllib.error.HTTPError as e:
    print(e.code, time.monotonic() - t0, e.read().decode().strip())
"""
        r = own.sandbox.run(PYTHON, "-c", code, timeout=40)
        assert r.returncode == 0, r.stderr
        code, elapsed, body = r.stdout.split(" ", 2)
        assert code == "502" and "slow.test does not resolve (timeout)" in body, r.stdout
        assert 0.9 <= float(elapsed) < 3.5, r.stdout  # the default would be 4 s
        assert len(silent.received) >= 2  # A and AAAA (an attempt each at least)
        # Every query socket is closed, the first attempt's too (the worker
        # waited on it; the retry shut it down, the worker's wait ended).
        deadline = time.monotonic() + 10
        while open_fds(own.daemon.proc.pid) > fds_before:
            assert time.monotonic() < deadline, \
                f"{open_fds(own.daemon.proc.pid)} fds open, {fds_before} before the lookup"
            time.sleep(0.05)
    finally:
        if own:
            own.close()
        silent.close()


def test_dns_timeout_flag_is_checked(env, tmp_path):
    for bad in ("0", "61", "x", "1.5", ""):
        r = subprocess.run(env.daemon.argv(dns_timeout=bad, state_dir=str(tmp_path / "s")),
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 2 and "--dns-timeout" in r.stderr and "1 to 60" in r.stderr, \
            (bad, r.returncode, r.stderr)


def test_egressds_own_lookups_fail_at_once_when_the_upstream_refuses_and_are_not_cached(env, tmp_path):
    # A refusing upstream (ICMP port unreachable) ends the proxy's own lookup
    # at once: 502 well inside the 30 s --dns-timeout. The refusal says nothing
    # about the name, so it is not in the negative cache: once the upstream
    # is back, the next request to that name resolves.
    port = closed_udp_port()
    own = OwnDaemon(tmp_path, f"127.0.0.1:{port}", "refused-lookup", dns_timeout=30)
    upstream = None
    code = f"""
import sys, time, urllib.request, urllib.error
req = urllib.request.Request("http://127.0.0.1:{env.http.port}/again",
                             headers={{"Host": "allowed.test:{env.http.port}"}})
t0 = time.monotonic()
try:
    r = urllib.request.urlopen(req, timeout=20)
    print(r.status, time.monotonic() - t0, r.read().decode().strip().replace(chr(10), " "))
except urllib.error.HTTPError as e:
    print(e.code, time.monotonic() - t0, e.read().decode().strip())
"""
    try:
        r = own.sandbox.run(PYTHON, "-c", code, timeout=40)
        assert r.returncode == 0, r.stderr
        status, elapsed, body = r.stdout.split(" ", 2)
        assert status == "502" and "refused the query" in body, r.stdout  # the old tree: after 30 s
        assert float(elapsed) < 5, r.stdout
        upstream = FakeDns({"allowed.test": ["127.0.0.1"]}, port=port)
        r = own.sandbox.run(PYTHON, "-c", code, timeout=40)
        assert r.returncode == 0, r.stderr
        status, _, body = r.stdout.split(" ", 2)
        assert status == "200" and "path=/again" in body, r.stdout
    finally:
        own.close()
        if upstream:
            upstream.close()
