"""Decisions the kernel makes alone, and what the redirect looks like from inside."""
import json
import os
import subprocess

from conftest import PYTHON, write_policy


def py_errno(sb, code):
    """Runs code in the sandbox that prints 'ok' or the errno name it failed with."""
    wrapped = f"""
import errno, socket
try:
{chr(10).join('    ' + l for l in code.strip().splitlines())}
    print("ok")
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno))
"""
    r = sb.python(wrapped)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_deny_cidr_is_eperm_without_proxy(env):
    write_policy(env.daemon.policy_dir, "cidr", deny_cidrs=["127.0.0.3/32", "fd00::/8"])
    sb = env.sandbox("cidr")
    accepted = env.daemon.status()["proxy"]["accepted"]
    assert py_errno(sb, "socket.create_connection(('127.0.0.3', 80), timeout=5)") == "EPERM"
    assert py_errno(sb, "s = socket.socket(socket.AF_INET6); s.settimeout(5); s.connect(('fd00::1', 80))") == "EPERM"
    # v4-mapped form of a denied IPv4 address on an IPv6 socket
    assert py_errno(sb, "s = socket.socket(socket.AF_INET6); s.settimeout(5); s.connect(('::ffff:127.0.0.3', 80))") == "EPERM"
    assert env.daemon.status()["proxy"]["accepted"] == accepted  # no proxy connection made
    st = sb.stats()
    assert st["kernel"]["connect_denied"] == 3
    assert st["kernel"]["connect_redirected"] == 0
    assert env.daemon.wait_log(lambda l: "layer=kernel" in l and "127.0.0.3:80" in l and "deny_cidrs" in l)


def test_ipv6_rules_do_not_cover_ipv4(env):
    write_policy(env.daemon.policy_dir, "no-v6", deny_cidrs=["::/0"])
    sb = env.sandbox("no-v6")
    assert py_errno(sb, "s = socket.socket(socket.AF_INET6); s.settimeout(5); s.connect(('::1', 80))") == "EPERM"
    r = sb.curl(f"http://allowed.test:{env.http.port}/")
    assert r.returncode == 0 and "origin-http" in r.stdout, r.stderr


def test_udp_other_than_dns_is_eperm(env):
    sb = env.sandbox("open")
    # QUIC-style: UDP to 443, unconnected and connected
    assert py_errno(sb, "socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'q', ('127.0.0.1', 443))") == "EPERM"
    assert py_errno(sb, "socket.socket(socket.AF_INET, socket.SOCK_DGRAM).connect(('127.0.0.1', 443))") == "EPERM"
    assert py_errno(sb, "socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).sendto(b'q', ('::1', 443))") == "EPERM"
    assert sb.stats()["kernel"]["udp_denied"] == 3


def outside_errno(code):
    """The same check as py_errno, outside any sandbox: what the kernel itself says."""
    r = subprocess.run([PYTHON, "-c", "import errno, socket\ntry:\n    " + code +
                        "\n    print('ok')\nexcept OSError as e:\n    print(errno.errorcode.get(e.errno, e.errno))"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


# Sockets the hooks do not fully cover: (what, code). Each is refused with EPERM
# inside a sandbox where the host can create it; where this kernel cannot
# create it at all (no SCTP module), the sandbox gets the kernel's own error.
OTHER_SOCKETS = [
    ("raw ICMP", "socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)"),
    ("raw ICMPv6", "socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)"),
    ("SCTP stream", "socket.socket(socket.AF_INET, socket.SOCK_STREAM, 132)"),
    ("SCTP seqpacket", "socket.socket(socket.AF_INET6, socket.SOCK_SEQPACKET, 132)"),
    ("UDP-Lite", "socket.socket(socket.AF_INET, socket.SOCK_DGRAM, 136)"),
    ("UDP-Lite v6", "socket.socket(socket.AF_INET6, socket.SOCK_DGRAM, 136)"),
    ("MPTCP", "socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)"),
]


def test_raw_ping_sctp_udplite_sockets_refused(env):
    sb = env.sandbox("open")
    refused = 0
    for what, code in OTHER_SOCKETS:
        host = outside_errno(code)
        inside = py_errno(sb, code)
        if host == "ok":
            assert inside == "EPERM", (what, inside)
            refused += 1
        else:
            assert inside == host, (what, inside, host)  # the kernel's refusal, not a hook's
    assert refused >= 4  # raw, raw v6, UDP-Lite, UDP-Lite v6 at least
    # Ping sockets: let every group create them, so the refusal is egressd's.
    with open("/proc/sys/net/ipv4/ping_group_range") as f:
        saved = f.read().strip()
    try:
        with open("/proc/sys/net/ipv4/ping_group_range", "w") as f:
            f.write("0 2147483647")
        ping = "socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)"
        assert outside_errno(ping) == "ok"
        assert py_errno(sb, ping) == "EPERM"
        refused += 1
    finally:
        with open("/proc/sys/net/ipv4/ping_group_range", "w") as f:
            f.write(saved.replace("\t", " "))
    # Plain TCP and UDP are not refused.
    assert py_errno(sb, "socket.socket(socket.AF_INET, socket.SOCK_STREAM)") == "ok"
    assert py_errno(sb, "socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)") == "ok"
    assert sb.stats()["kernel"]["socket_denied"] == refused


def test_ipv6_destination(env):
    sb = env.sandbox("strict")
    r = sb.curl("-g", "-H", "Host: v6.test", f"http://[::1]:{env.http6.port}/six")
    assert r.returncode == 0, r.stderr
    assert "origin-http6 host=v6.test" in r.stdout


def test_ipv4_mapped_destination(env):
    sb = env.sandbox("open")
    code = f"""
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(("::ffff:127.0.0.1", {env.http.port}))
print(s.getpeername()[:2])
s.sendall(b"GET /mapped HTTP/1.1\\r\\nHost: allowed.test\\r\\nConnection: close\\r\\n\\r\\n")
data = b""
while True:
    c = s.recv(4096)
    if not c: break
    data += c
print(data.decode())
"""
    r = sb.python(code)
    assert r.returncode == 0, r.stderr
    assert f"('::ffff:127.0.0.1', {env.http.port})" in r.stdout
    assert "path=/mapped" in r.stdout


def test_getpeername_shows_original_peer(env):
    sb = env.sandbox("open")
    code = f"""
import socket
s = socket.create_connection(("127.0.0.1", {env.http.port}), timeout=10)
print(s.getpeername())
s6 = socket.create_connection(("::1", {env.http6.port}), timeout=10)
print(s6.getpeername()[:2])
"""
    r = sb.python(code)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"('127.0.0.1', {env.http.port})"
    assert lines[1] == f"('::1', {env.http6.port})"


def test_dns_goes_to_egressd_forwarder(env):
    sb = env.sandbox("open")
    before = len(env.dns.queries)
    code = """
import socket, struct, sys
sys.path.insert(0, %r)
from fakedns import build_query
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(build_query(0x1234, "allowed.test"), ("127.0.0.1", 53))
data, peer = s.recvfrom(4096)
qid, flags, qd, an = struct.unpack("!HHHH", data[:8])
print(hex(qid), an, peer)
""" % (env.dns_dir,)
    r = sb.python(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "0x1234 1 ('127.0.0.1', 53)"  # the reply seems to come from :53
    assert ("allowed.test", 1) in env.dns.queries[before:]
    assert sb.stats()["kernel"]["dns_redirected"] == 1


def documented_stats_schema():
    """The `stats --json` example in the README, as parsed JSON."""
    with open(os.path.join(os.path.dirname(__file__), "../../README.md")) as f:
        readme = f.read()
    block = readme.split("`stats --json` schema (stable):", 1)[1].split("```json", 1)[1].split("```", 1)[0]
    return json.loads(block)


def keys(tree, prefix=""):
    """Every key path of a JSON object ("proxy.bytes_up"); lists by their first element."""
    out = set()
    for k, v in tree.items():
        out.add(prefix + k)
        if isinstance(v, dict):
            out |= keys(v, prefix + k + ".")
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            out |= keys(v[0], prefix + k + "[].")
    return out


def test_stats_json_schema(env):
    sb = env.sandbox("open")
    sb.curl(f"http://allowed.test:{env.http.port}/")
    data = json.loads(env.daemon.ctl("stats", "--json").stdout)
    mine = [s for s in data["sandboxes"] if s["instance"] == sb.instance]
    assert len(mine) == 1
    s = mine[0]
    # Exactly the documented fields: a field added without documentation fails, so does one removed.
    documented = documented_stats_schema()
    assert keys({**data, "sandboxes": [s]}) == keys(documented)
    assert s["cgroup"] == sb.path and s["policy"] == "open"
    assert s["proxy"]["connections"] == 1 and s["proxy"]["bytes_up"] > 0
    assert s["proxy"]["requests_allowed"] == 1 and s["proxy"]["requests_denied"] == 0
    assert s["kernel"]["connect_redirected"] == 1 and s["kernel"]["connect_denied"] == 0
    assert data["kernel_events_dropped"] == 0
