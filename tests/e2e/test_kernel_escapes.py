"""Packets that no connect/sendmsg hook judges: routing headers and source
routes (refused at setsockopt), anything else that would leave for a
non-loopback address (the cgroup_skb egress backstop drops it), and what must
keep working next to that: a server the sandbox exposes, and DNS whatever
address it was aimed at (deny_cidrs does not apply to the redirect).

Escape attempts aim only at the peer of a namespace this test created, and a
sniffer inside that namespace watches what arrives."""
import json
import os
import socket
import struct
import subprocess
import sys
import time
import uuid

import pytest

from audit_events import wait_events
from conftest import PYTHON, write_policy
from bounded import read_line
from netns_helpers import Agent

IP_RETOPTS = 7
IPV6_RTHDR = 57




def backstop_event(e):
    return e["layer"] == "kernel" and "backstop" in e["reason"]


def unprivileged_python(sb, code):
    """Runs code in the sandbox as uid/gid 65534 with no capabilities."""
    r = sb.run("setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "--inh-caps=-all",
               PYTHON, "-c", code)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


# A segment routing header (type 4) with two segments: the kernel puts the
# final destination in segment 0 and sends the packet to segment 1 first.
SRH_CODE = """
import errno, socket
def srh(first_hop):
    segs = socket.inet_pton(socket.AF_INET6, "::") + socket.inet_pton(socket.AF_INET6, first_hop)
    return bytes([0, len(segs) // 8, 4, 1, 1, 0, 0, 0]) + segs
def attempt(fn):
    try:
        fn()
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
t = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
print(attempt(lambda: s.setsockopt(socket.IPPROTO_IPV6, %d, srh("::1"))))
print(attempt(lambda: t.setsockopt(socket.IPPROTO_IPV6, %d, srh("::1"))))
print(attempt(lambda: s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 5)))
print(attempt(lambda: t.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)))
print(attempt(lambda: t.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)))
print(attempt(lambda: t.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)))
print(s.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS))
""" % (IPV6_RTHDR, IPV6_RTHDR)


def test_routing_header_refused_for_an_unprivileged_process(env):
    sb = env.sandbox("open")
    out = unprivileged_python(sb, SRH_CODE)
    assert out[:2] == ["EPERM", "EPERM"], out  # routing headers: refused
    assert out[2:] == ["ok", "ok", "ok", "ok", "5"], out  # other options: untouched
    assert sb.stats()["kernel"]["sockopt_denied"] == 2
    got = wait_events(env, sb.instance, predicate=lambda e: e["layer"] == "kernel" and "routing header" in e["reason"])
    assert got and got[0]["enforced"] is True and "option 57" in got[0]["reason"], got


def test_options_longer_than_a_page_still_reach_the_kernel(env):
    # The program sees a truncated copy of a long option; the kernel must
    # still get the caller's whole buffer (not EFAULT, not EPERM). Kernels
    # before 6.5 need the program's optlen = 0 for this; 6.5+ also ignore a
    # program that leaves optlen alone, so here this guards the program
    # against refusing or breaking long options.
    sb = env.sandbox("open")
    r = sb.python("""
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
# IP_MSFILTER with 1200 sources (> 4096 bytes): an empty include-mode filter
# on a group never joined is EADDRNOTAVAIL from the kernel, not EFAULT.
n = 1200
buf = socket.inet_aton("239.1.2.3") + socket.inet_aton("0.0.0.0") + struct.pack("=II", 1, n) + b"\\0" * (4 * n)
try:
    s.setsockopt(socket.IPPROTO_IP, 41, buf)
    print("ok")
except OSError as e:
    import errno
    print(errno.errorcode[e.errno])
""")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() in ("EADDRNOTAVAIL", "EINVAL", "ENOBUFS", "ok"), r.stdout


SNIFFER = r"""
import select, socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
s.bind((sys.argv[1], 0))
escape, done = sys.argv[2].encode(), sys.argv[3].encode()
print("ready", flush=True)
seen = "nothing"
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    if not select.select([s], [], [], 0.5)[0]:
        continue
    data = s.recv(65535)
    if escape in data:
        seen = "seen"
    if done in data:
        break
else:
    seen = "timeout"
print(seen, flush=True)
"""

# Sends one UDP datagram to 127.0.0.1:53 (redirected to egressd's DNS: the
# sendmsg hook allows it) with an IPv4 loose source route whose first hop is
# argv[1]: without the backstop the kernel sends it to that hop.
RETOPTS_SENDER = r"""
import errno, socket, sys
lsrr = bytes([0x83, 7, 4]) + socket.inet_aton(sys.argv[1]) + bytes([1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.sendmsg([sys.argv[2].encode()], [(socket.IPPROTO_IP, %d, lsrr)], 0, ("127.0.0.1", 53))
    print("sent")
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno))
""" % IP_RETOPTS


def source_route_escape(env, sb, ns):
    """Tries the escape from the sandbox; returns (sender result, sniffer verdict)."""
    tag = uuid.uuid4().hex
    escape, done = f"escape-{tag}", f"done-{tag}"
    sniffer = subprocess.Popen(["ip", "netns", "exec", ns.name, PYTHON, "-c", SNIFFER, ns.ns_if, escape, done],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert read_line(sniffer.stdout, 20) == "ready\n"
        # Both senders on CPU 0: the veth delivers through that CPU's backlog
        # in order, so the end marker arrives after any escaped packet.
        r = sb.run("taskset", "-c", "0", PYTHON, "-c", RETOPTS_SENDER, ns.ip, escape)
        assert r.returncode == 0, r.stderr
        subprocess.run(["taskset", "-c", "0", PYTHON, "-c",
                        "import socket,sys; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
                        ".sendto(sys.argv[2].encode(), (sys.argv[1], 9))", ns.ip, done],
                       check=True, timeout=10)
        verdict = read_line(sniffer.stdout, 20).strip()
        return r.stdout.strip(), verdict
    finally:
        sniffer.kill()
        sniffer.wait()


def test_backstop_drops_a_source_routed_datagram(env):
    ns = env.origin_netns()
    sb = env.sandbox("open")
    sent, verdict = source_route_escape(env, sb, ns)
    assert verdict == "nothing", "the source-routed datagram reached the namespace"
    assert sent == "EPERM"
    assert sb.stats()["kernel"]["egress_dropped"] >= 1
    got = wait_events(env, sb.instance, predicate=backstop_event)
    assert got, "no backstop event"
    assert got[0]["address"] == ns.ip and got[0]["enforced"] is True, got


def test_backstop_in_audit_mode_records_and_lets_through(env):
    ns = env.origin_netns()
    write_policy(env.daemon.policy_dir, "escape-audit", mode="audit")
    sb = env.sandbox("escape-audit")
    sent, verdict = source_route_escape(env, sb, ns)
    assert sent == "sent" and verdict == "seen"
    assert sb.stats()["kernel"]["egress_dropped"] == 0
    got = wait_events(env, sb.instance, predicate=backstop_event)
    assert got and got[0]["address"] == ns.ip and got[0]["enforced"] is False, got
    # A routing header option, likewise: recorded, then set.
    assert unprivileged_python(sb, SRH_CODE)[:2] == ["ok", "ok"]
    assert sb.stats()["kernel"]["sockopt_denied"] == 0
    got = wait_events(env, sb.instance, predicate=lambda e: e["layer"] == "kernel" and "routing header" in e["reason"])
    assert got and got[0]["enforced"] is False, got


# A server inside the sandbox on every address: it answers one line per
# connection. Its port is printed once it listens.
SERVER = r"""
import socket, sys
srv = socket.socket(socket.AF_INET6 if sys.argv[1] == "6" else socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("::" if sys.argv[1] == "6" else "0.0.0.0", 0))
srv.listen(8)
print(srv.getsockname()[1], flush=True)
while True:
    c, peer = srv.accept()
    c.recv(100)
    c.sendall(b"served " + peer[0].encode() + b" " + b"x" * 200000)
    c.close()
"""

CLIENT = r"""
import socket, sys
addr = (sys.argv[1], int(sys.argv[2]), 0, int(sys.argv[3])) if ":" in sys.argv[1] else (sys.argv[1], int(sys.argv[2]))
c = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET, socket.SOCK_STREAM)
c.settimeout(10)
c.connect(addr)
c.sendall(b"hello\n")
data = b""
while True:
    chunk = c.recv(65536)
    if not chunk:
        break
    data += chunk
print(data[:40].decode().split()[0], len(data), flush=True)
"""


def link_local(netns, ifname):
    """The IPv6 link-local address of an interface, once DAD is done."""
    argv = ["ip", "-6", "-o", "addr", "show", "dev", ifname, "scope", "link"]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        out = subprocess.run(argv, capture_output=True, text=True).stdout
        if "inet6" in out and "tentative" not in out:
            return out.split("inet6")[1].split()[0].split("/")[0]
        time.sleep(0.1)
    pytest.fail(f"no link-local address on {ifname}")


@pytest.mark.parametrize("family", ["4", "6"])
def test_a_server_the_sandbox_exposes_answers_outside_clients(env, family):
    ns = env.origin_netns()
    sb = env.sandbox("open")
    server = sb.popen(PYTHON, "-u", "-c", SERVER, family, stdout=subprocess.PIPE, text=True)
    try:
        port = int(read_line(server.stdout, 20))
        if family == "4":
            target, scope = ns.host_ip, "0"
        else:
            # Link-local on the veth: the only IPv6 the test's namespace has.
            link_local(ns.name, ns.ns_if)
            target = link_local(None, ns.host_if)
            scope = ns.exec("cat", f"/sys/class/net/{ns.ns_if}/ifindex").stdout.strip()
        r = ns.exec(PYTHON, "-c", CLIENT, target, str(port), scope, check=False)
        assert r.returncode == 0, r.stderr
        word, size = r.stdout.split()
        assert word == "served" and int(size) > 200000, r.stdout
        # The sandbox's own loopback still works next to it.
        r = subprocess.run([PYTHON, "-c", CLIENT, "127.0.0.1", str(port), "0"], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0 and r.stdout.startswith("served"), r.stderr
        assert sb.stats()["kernel"]["egress_dropped"] == 0
    finally:
        server.kill()
        server.wait()


def test_dns_works_when_deny_cidrs_covers_the_resolver(env):
    ns = env.origin_netns()
    # The upstream resolver (the test's DNS) is on 127.0.0.1, and the sandbox
    # aims its queries at 127.0.0.1 and at the host end of the veth: all in
    # deny_cidrs, all still DNS through egressd's forwarder.
    write_policy(env.daemon.policy_dir, "dns-cidr", allowed_hosts=["origin.test"],
                 deny_cidrs=["127.0.0.0/8", f"{ns.host_ip}/32", "10.0.0.0/8"])
    agent = Agent(env.daemon.run_prefix("--policy", "dns-cidr", "--netns", "host", "--instance", "dns-cidr"))
    try:
        for server in ("127.0.0.1", ns.host_ip):
            for transport in ("udp", "tcp"):
                assert agent.ask("dns", "origin.test", server, transport) == f"rcode=0 {ns.ip}"
        assert agent.ask("dns", "origin2.test", "127.0.0.1", "udp") == "rcode=3"  # the name decides
        assert agent.ask("http", "origin.test", env.netns_port, ns.ip).startswith("200 netns-origin")
        # deny_cidrs still denies a connection to a covered address.
        assert agent.ask("tcp", ns.host_ip, 80).startswith("error")
        stats = env.daemon.stats("dns-cidr")
        assert stats["kernel"]["dns_redirected"] == 5 and stats["kernel"]["connect_denied"] == 1
    finally:
        assert agent.close() == 0


ECHO_SERVER = r"""
import socket
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.bind(("0.0.0.0", 0))
srv.listen(1)
print(srv.getsockname()[1], flush=True)
c, _ = srv.accept()
f = c.makefile("rb")
for line in f:
    c.sendall(b"echo " + line)
"""

ECHO_CLIENT = r"""
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
f = c.makefile("rb")
for line in sys.stdin:
    c.sendall(line.encode())
    print(f.readline().decode().strip(), flush=True)
"""


def test_restart_keeps_accepted_connections_and_attaches_missing_programs(env):
    ns = env.origin_netns()
    sb = env.sandbox("open")
    server = sb.popen(PYTHON, "-u", "-c", ECHO_SERVER, stdout=subprocess.PIPE, text=True)
    client = None
    try:
        port = int(read_line(server.stdout, 20))
        client = subprocess.Popen(["ip", "netns", "exec", ns.name, PYTHON, "-u", "-c", ECHO_CLIENT, ns.host_ip,
                                   str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

        def ask(word):
            client.stdin.write(word + "\n")
            client.stdin.flush()
            return read_line(client.stdout, 20).strip()

        assert ask("before") == "echo before"
        # As if an older build had attached this sandbox without the backstop.
        sandbox_id = env.daemon.instances()[sb.instance]["id"]
        os.unlink(os.path.join(env.daemon.bpffs, "links", str(sandbox_id), "egress"))
        env.daemon.kill9()
        env.daemon.start()
        assert env.daemon.wait_log(lambda l: "pinned links missing" in l and sb.instance in l)
        # The restarted daemon's backstop reads the marks the old sockops made
        # (the pinned map is reused): the accepted connection still answers.
        assert ask("after") == "echo after"
        sent, verdict = source_route_escape(env, sb, ns)
        assert (sent, verdict) == ("EPERM", "nothing")
    finally:
        for p in (client, server):
            if p:
                p.kill()
                p.wait()


def test_maps_pinned_by_another_layout_are_refused_with_a_clear_error(env, tmp_path):
    from conftest import Daemon
    d = Daemon(str(tmp_path), env.dns.address)
    os.makedirs(os.path.join(d.bpffs, "maps"))
    try:
        # kernel_counters as an older build made it (40-byte values).
        subprocess.run(["/usr/sbin/bpftool", "map", "create", os.path.join(d.bpffs, "maps", "kernel_counters"),
                        "type", "percpu_array", "key", "4", "value", "40", "entries", "4096",
                        "name", "kernel_counters"], check=True, capture_output=True, timeout=10)
        with pytest.raises(RuntimeError):
            d.start()
        assert d.proc.wait(timeout=10) != 0
        assert any("kernel_counters" in l and "another kernel layout" in l and "remove" in l for l in d.log), d.log
    finally:
        d.cleanup()
