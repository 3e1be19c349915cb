"""DNS over TCP as the forwarder cuts it (DnsTcpFramer): pipelined queries,
one of them arriving a byte at a time, are each answered, in order; a length
prefix the framer refuses (0, or more than 4096 bytes) closes the connection,
is counted as malformed and sends nothing upstream."""
import json


def run_in_sandbox(env, code):
    r = env.daemon.run("--policy", "strict", "--netns", "host", "--", "/usr/bin/python3", "-c",
                       f"import sys\nsys.path.insert(0, {env.dns_dir!r})\n" + code)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


PIPELINED = """
import json, socket, struct
from fakedns import build_query
framed = [struct.pack('!H', len(q)) + q for q in
          (build_query(201, 'allowed.test'), build_query(202, 'denied.test'), build_query(203, 'v6.test', 28))]
t = socket.create_connection(('127.0.0.1', 53), timeout=5)
t.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
t.sendall(framed[0] + framed[1])  # two queries in one segment
for i in range(len(framed[2])):   # the third a byte at a time
    t.sendall(framed[2][i:i + 1])
t.shutdown(socket.SHUT_WR)
data = b''
while chunk := t.recv(4096):
    data += chunk
answers = []
while data:
    n = struct.unpack('!H', data[:2])[0]
    msg, data = data[2:2 + n], data[2 + n:]
    answers.append([struct.unpack('!H', msg[:2])[0], msg[3] & 0xF])
print(json.dumps(answers))
"""


def test_pipelined_and_byte_by_byte_queries_are_each_answered(env):
    answers = run_in_sandbox(env, PIPELINED)
    # The denied name is answered by egressd at once, the others after the upstream.
    assert sorted(answers) == [[201, 0], [202, 3], [203, 0]], answers


REFUSED_PREFIX = """
import json, socket, struct
from fakedns import build_query
q = build_query(301, 'allowed.test')
out = []
for prefix in (b'\\x00\\x00', b'\\x10\\x01'):  # length 0; 4097 bytes
    t = socket.create_connection(('127.0.0.1', 53), timeout=5)
    t.sendall(prefix + b'x' * 64 + struct.pack('!H', len(q)) + q)
    try:
        out.append('closed' if t.recv(4096) == b'' else 'answered')
    except ConnectionResetError:
        out.append('closed')
print(json.dumps(out))
"""


def test_a_refused_length_prefix_closes_the_connection_and_is_counted(env):
    before = env.daemon.status()["dns"]
    seen = len(env.dns.queries)
    assert run_in_sandbox(env, REFUSED_PREFIX) == ["closed", "closed"]
    after = env.daemon.status()["dns"]
    assert after["malformed"] == before["malformed"] + 2
    # Nothing after the bad prefix was read as a query: the upstream saw nothing.
    assert len(env.dns.queries) == seen
