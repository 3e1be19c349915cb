"""DNS by policy: allowed names are answered by the upstream resolver (the
test's FakeDns), denied names get NXDOMAIN from egressd and never reach it.
UDP and TCP, in the host namespace and in a namespace of the sandbox's own;
counted per sandbox and recorded as `dns` events."""
import json

from netns_helpers import Agent


def dns_events(env, instance):
    out = env.daemon.ctl("events", "--json", "--instance", instance).stdout
    return [e for e in map(json.loads, out.splitlines()) if e["layer"] == "dns"]


def test_dns_answers_by_policy_in_the_host_namespace(env):
    agent = Agent(env.daemon.run_prefix("--policy", "strict", "--netns", "host", "--instance", "dns-host"))
    try:
        seen_before = list(env.dns.queries)
        for transport in ("udp", "tcp"):
            # Port 53 of any address goes to the sandbox's own DNS listener.
            assert agent.ask("dns", "allowed.test", "127.0.0.1", transport) == "rcode=0 127.0.0.1"
            assert agent.ask("dns", "denied.test", "127.0.0.1", transport) == "rcode=3"
            # strict is deny by default: a name it does not list is refused too.
            assert agent.ask("dns", "exfil-4142.other.test", "127.0.0.1", transport) == "rcode=3"
        asked = [name for name, _ in env.dns.queries[len(seen_before):]]
        assert asked == ["allowed.test", "allowed.test"]  # nothing denied left the host
        stats = env.daemon.stats("dns-host")
        assert stats["dns"] == {"queries": 6, "refused": 4, "servfail": 0}
        events = dns_events(env, "dns-host")
        assert sorted(e["host"] for e in events) == sorted(["denied.test", "exfil-4142.other.test"] * 2)
        for e in events:
            assert e["port"] == 53 and e["enforced"] is True and e["reason"]
            assert e["cgroup"].endswith("/dns-host")
    finally:
        assert agent.close() == 0


def test_dns_in_a_namespace_of_its_own(env):
    ns = env.origin_netns()
    agent = Agent(env.daemon.run_prefix("--policy", "strict", "--instance", "dns-ns"))
    try:
        # The sandbox has no route anywhere: its queries reach egressd only
        # because the kernel redirects them to its listener in the namespace.
        assert agent.ask("dns", "allowed.test", ns.ip, "udp") == "rcode=0 127.0.0.1"
        assert agent.ask("dns", "allowed.test", ns.ip, "tcp") == "rcode=0 127.0.0.1"
        assert agent.ask("dns", "origin.test", ns.ip, "udp") == "rcode=3"
        assert env.daemon.stats("dns-ns")["dns"] == {"queries": 3, "refused": 1, "servfail": 0}
    finally:
        assert agent.close() == 0


def test_malformed_dns_is_dropped_and_counted(env):
    before = env.daemon.status()["dns"]
    r = env.daemon.run("--policy", "strict", "--netns", "host", "--", "/usr/bin/python3", "-c", """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1)
s.sendto(b'\\x00\\x01garbage', ('127.0.0.1', 53))
try:
    s.recv(512)
    print('answered')
except socket.timeout:
    print('dropped')
t = socket.create_connection(('127.0.0.1', 53), timeout=5)
t.sendall(b'\\x00\\x05abcde')
print('closed' if t.recv(10) == b'' else 'answered')
""")
    assert r.stdout.split() == ["dropped", "closed"], r.stderr
    after = env.daemon.status()["dns"]
    assert after["malformed"] == before["malformed"] + 2


def test_tcp_client_that_half_closes_still_gets_its_answers(env):
    r = env.daemon.run("--policy", "strict", "--netns", "host", "--", "/usr/bin/python3", "-c", f"""
import socket, struct, sys
sys.path.insert(0, {env.dns_dir!r})
from fakedns import build_query
t = socket.create_connection(('127.0.0.1', 53), timeout=5)
for i, name in enumerate(['allowed.test', 'denied.test']):
    q = build_query(100 + i, name)
    t.sendall(struct.pack('!H', len(q)) + q)
t.shutdown(socket.SHUT_WR)  # done sending: the answers must still come
data = b''
while True:
    chunk = t.recv(4096)
    if not chunk:
        break
    data += chunk
codes = {{}}
while data:
    n = struct.unpack('!H', data[:2])[0]
    msg, data = data[2:2 + n], data[2 + n:]
    codes[struct.unpack('!H', msg[:2])[0]] = msg[3] & 0xF
print(codes[100], codes[101])
""")
    assert r.stdout.split() == ["0", "3"], r.stderr


def test_only_the_question_leaves_and_edns_is_egressds(env):
    # A query for an allowed name with data riding along in an EDNS option.
    r = env.daemon.run("--policy", "strict", "--netns", "host", "--", "/usr/bin/python3", "-c", f"""
import socket, struct, sys
sys.path.insert(0, {env.dns_dir!r})
from fakedns import build_query
q = bytearray(build_query(9, 'allowed.test'))
q[10:12] = b'\\x00\\x01'  # ARCOUNT 1
secret = b'SECRET-PAYLOAD-0123456789'
q += b'\\x00' + struct.pack('!HHIH', 41, 4096, 0, 4 + len(secret)) + struct.pack('!HH', 65001, len(secret)) + secret
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(bytes(q), ('127.0.0.1', 53))
print(s.recv(4096)[3] & 15)
""")
    assert r.stdout.strip() == "0", r.stderr
    relayed = [q for q in env.dns.raw_queries if b"allowed" in q][-1]
    assert b"SECRET" not in relayed
    # Header, the question, and egressd's own OPT record (payload 1232, no options).
    assert relayed[10:12] == b"\x00\x01"
    assert relayed.endswith(b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00")
