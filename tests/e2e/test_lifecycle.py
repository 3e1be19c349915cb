"""Fail closed when the daemon dies; re-adopt on restart; many connections at once."""
import json
import subprocess


def test_concurrent_connections_all_succeed_and_leave_nothing_behind(env):
    sb = env.sandbox("open")
    code = f"""
import socket, threading
N = 1000
ok = []
errors = []
lock = threading.Lock()
barrier = threading.Barrier(100)
def worker(i):
    try:
        barrier.wait() if i < 100 else None
        s = socket.create_connection(("127.0.0.1", {env.http.port}), timeout=30)
        s.sendall(b"GET /c HTTP/1.1\\r\\nHost: allowed.test\\r\\nConnection: close\\r\\n\\r\\n")
        data = b""
        while True:
            c = s.recv(4096)
            if not c: break
            data += c
        s.close()
        with lock:
            (ok if data.startswith(b"HTTP/1.1 200") else errors).append(i)
    except Exception as e:
        with lock:
            errors.append(repr(e))
threads = []
for i in range(N):
    t = threading.Thread(target=worker, args=(i,))
    t.start()
    threads.append(t)
    if len(threads) >= 250:
        for t in threads: t.join()
        threads = []
for t in threads: t.join()
print(len(ok), errors[:5])
"""
    r = sb.python(code, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("1000 []"), r.stdout
    st = sb.stats()
    assert st["proxy"]["connections"] == 1000
    assert st["proxy"]["requests_allowed"] == 1000
    assert env.daemon.status()["orig_dst_entries"] == 0


def test_fail_closed_after_kill9_and_recovery_after_restart(env):
    sb = env.sandbox("open")
    assert sb.curl(f"http://allowed.test:{env.http.port}/", "-o", "/dev/null", "-w", "%{http_code}").stdout == "200"
    env.daemon.kill9()
    try:
        before = len(env.http.requests)
        connections_before = env.http.connections
        r = sb.python(f"""
import errno, socket
try:
    socket.create_connection(("127.0.0.1", {env.http.port}), timeout=5)
    print("connected")
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno))
""")
        assert r.stdout.strip() == "ECONNREFUSED", r.stdout + r.stderr
        r = sb.curl(f"http://allowed.test:{env.http.port}/")
        assert r.returncode != 0
        # UDP stays refused too: the kernel programs need no daemon
        r = sb.python("import socket\ntry:\n socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', 9)); print('sent')\nexcept PermissionError: print('EPERM')")
        assert r.stdout.strip() == "EPERM"
        assert len(env.http.requests) == before
        assert env.http.connections == connections_before
    finally:
        env.daemon.start()
    # Re-adopted without attaching again.
    lst = json.loads(env.daemon.ctl("list", "--json").stdout)
    assert sb.instance in [s["instance"] for s in lst["sandboxes"]]
    assert sb.curl(f"http://allowed.test:{env.http.port}/", "-o", "/dev/null", "-w", "%{http_code}").stdout == "200"
    assert sb.curl(f"http://denied.test:{env.http.port}/", "-o", "/dev/null", "-w", "%{http_code}").stdout == "403"


def test_stats_match_what_happened(env):
    sb = env.sandbox("open")
    for _ in range(3):
        sb.curl(f"http://allowed.test:{env.http.port}/")
    for _ in range(2):
        sb.curl(f"http://denied.test:{env.http.port}/")
    sb.curl("--cacert", env.ca, f"https://allowed.test:{env.https.port}/")
    sb.curl("--cacert", env.ca, f"https://denied.test:{env.https.port}/")
    sb.python("import socket\ntry: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', 9))\nexcept OSError: pass")
    st = sb.stats()
    assert st["kernel"]["connect_redirected"] == 7
    assert st["kernel"]["udp_denied"] == 1
    assert st["proxy"]["connections"] == 7
    assert st["proxy"]["requests_allowed"] == 3
    assert st["proxy"]["requests_denied"] == 2
    assert st["proxy"]["tls_passthrough"] == 1
    assert st["proxy"]["connections_denied"] == 1
