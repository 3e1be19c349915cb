"""--idle-timeout: a proxied connection on which no byte moves either way for
that long is closed in any phase (between keep-alive requests, inside a
request or response body, in a tunnel), counted and recorded as an event; a
transfer that keeps moving is never cut."""
import subprocess
import time

from conftest import EGRESSD
from scripted_origin import ScriptedOrigin, in_sandbox, proxy_events, read_head, websocket_origin

EGRESSD_FLAGS = {"idle_timeout": 1}

# The timer runs from the last byte and fires within a second after the
# timeout: closed between 1 and ~2 s of silence (3.5 s leaves room for a
# loaded machine; the old keep-alive timeout was 60 s).
MIN_IDLE, MAX_IDLE = 0.9, 3.5


def assert_idle_closed(env, sb, origin, r):
    assert r["closed"], r
    assert MIN_IDLE <= r["quiet"] <= MAX_IDLE, r
    assert origin.wait_finished(1)
    assert origin.conns[0].eof  # the upstream side was closed too
    assert sb.stats()["proxy"]["idle_timeouts"] == 1
    events = proxy_events(env, sb.instance)
    assert any(e["layer"] == "proxy" and e["reason"].startswith("idle timeout") for e in events), \
        events


# Client side: after `start` bytes, how long the silence lasted until the
# proxy closed the connection.
WAIT_FOR_CLOSE = '''
quiet_from = time.monotonic()
rest, closed = read_until_close(8)
result.update({"closed": closed, "quiet": time.monotonic() - quiet_from, "rest": len(rest)})
'''


def test_idle_keepalive_connection_is_closed(env):
    def script(c):
        read_head(c)
        c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        c.recv_until_eof(10)

    origin = ScriptedOrigin(script)
    try:
        sb = env.sandbox("open")
        r = in_sandbox(sb, origin.port, '''
            s.sendall(f"GET / HTTP/1.1\\r\\nHost: allowed.test:{PORT}\\r\\n\\r\\n".encode())
            read_until(b"\\r\\n\\r\\n")
            result["body"] = read_exactly(2).decode()
        ''', WAIT_FOR_CLOSE)
        assert r["body"] == "ok"
        assert_idle_closed(env, sb, origin, r)
    finally:
        origin.close()


def test_stalled_request_body_is_closed(env):
    def script(c):
        read_head(c)
        c.recv_until_eof(10)  # waits for a body that never completes

    origin = ScriptedOrigin(script)
    try:
        sb = env.sandbox("open")
        r = in_sandbox(sb, origin.port, '''
            s.sendall(f"POST / HTTP/1.1\\r\\nHost: allowed.test:{PORT}\\r\\n"
                      "Content-Length: 1000\\r\\n\\r\\n".encode() + b"x" * 10)
        ''', WAIT_FOR_CLOSE)
        assert_idle_closed(env, sb, origin, r)
        assert origin.conns[0].received().endswith(b"x" * 10)
    finally:
        origin.close()


def test_stalled_response_body_is_closed(env):
    def script(c):
        read_head(c)
        c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"y" * 10)
        c.recv_until_eof(10)

    origin = ScriptedOrigin(script)
    try:
        sb = env.sandbox("open")
        r = in_sandbox(sb, origin.port, '''
            s.sendall(f"GET / HTTP/1.1\\r\\nHost: allowed.test:{PORT}\\r\\n\\r\\n".encode())
            read_until(b"\\r\\n\\r\\n")
            read_exactly(10)
        ''', WAIT_FOR_CLOSE)
        assert_idle_closed(env, sb, origin, r)
    finally:
        origin.close()


def test_idle_websocket_tunnel_is_closed(env):
    origin = ScriptedOrigin(websocket_origin())
    try:
        sb = env.sandbox("open")
        r = in_sandbox(sb, origin.port, '''
            s.sendall(upgrade_request())
            result["head"] = read_until(b"\\r\\n\\r\\n").decode()
        ''', WAIT_FOR_CLOSE)
        assert r["head"].startswith("HTTP/1.1 101"), r
        assert_idle_closed(env, sb, origin, r)
    finally:
        origin.close()


def test_transfer_that_keeps_moving_is_not_cut(env):
    """A 3.2 s download in pieces 0.4 s apart, with --idle-timeout 1."""
    pieces, gap = 8, 0.4

    def script(c):
        read_head(c)
        c.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (pieces * 100))
        for _ in range(pieces):
            time.sleep(gap)  # the pacing under test, not synchronisation
            c.send(b"z" * 100)
        c.recv_until_eof(10)

    origin = ScriptedOrigin(script)
    try:
        sb = env.sandbox("open")
        r = in_sandbox(sb, origin.port, '''
            started = time.monotonic()
            s.sendall(f"GET / HTTP/1.1\\r\\nHost: allowed.test:{PORT}\\r\\n\\r\\n".encode())
            read_until(b"\\r\\n\\r\\n")
            result["body"] = len(read_exactly(800))
            result["took"] = time.monotonic() - started
        ''')
        assert r["body"] == 800
        assert r["took"] > 2.5, r
        assert sb.stats()["proxy"]["idle_timeouts"] == 0
    finally:
        origin.close()


def test_idle_timeout_must_be_a_positive_number_of_seconds():
    # Checked before the daemon touches anything: no root, BPF or cgroup needed.
    for bad in ("0", "-5", "abc", "1.5", "604801"):
        r = subprocess.run([EGRESSD, "--idle-timeout", bad], capture_output=True, text=True,
                           timeout=10)
        assert r.returncode == 2, (bad, r.stderr)
        assert "--idle-timeout must be a whole number of seconds" in r.stderr, (bad, r.stderr)
