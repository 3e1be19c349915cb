"""What a sandbox could slip past the proxy's per-request decision: a request
hidden in a body the upstream no longer reads, and upgrades that turn the
connection into an uninspected tunnel. Raw-socket origins record every byte
they receive, in order: that log is the evidence."""
import socket
import zlib

from conftest import write_policy
from scripted_origin import (ScriptedOrigin, header, in_sandbox, proxy_events, read_head,
                             websocket_origin, ws_accept, ws_frame)

def test_body_after_the_final_response_is_not_forwarded(env):
    """The upstream answers (413) before the body is complete; the rest of
    the 'body' is a request for a denied host. It must never reach the
    upstream, which would read it as its next request."""

    def script(c):
        c.head = read_head(c)
        c.send(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n")
        c.recv_until_eof(5)

    origin = ScriptedOrigin(script)
    try:
        sb = env.sandbox("open")
        smuggled = f"GET /smuggled HTTP/1.1\r\nHost: denied.test:{origin.port}\r\n\r\n"
        first = "x" * 10
        r = in_sandbox(sb, origin.port, f'''
            s.sendall(b"POST /upload HTTP/1.1\\r\\nHost: allowed.test:{origin.port}\\r\\n"
                      b"Content-Length: {len(first) + len(smuggled)}\\r\\n\\r\\n{first}")
            head = read_until(b"\\r\\n\\r\\n")
            s.sendall({smuggled!r}.encode())
            rest, closed = read_until_close(5)
            result = {{"head": head.decode(), "rest": rest.decode("latin-1"), "closed": closed}}
        ''')
        assert r["head"].startswith("HTTP/1.1 413"), r
        assert r["rest"] == "" and r["closed"], r  # the answer, then the end
        assert origin.wait_finished(1)
        conn = origin.conns[0]
        assert conn.head.startswith("POST /upload")
        assert b"smuggled" not in conn.received()
        assert conn.eof  # the upstream connection was closed
        assert origin.errors == []
    finally:
        origin.close()


def test_early_response_ended_by_close_reaches_the_client(env):
    """Same with a response that ends when the upstream closes: the client
    still gets all of it, then the end of the connection."""

    def script(c):
        c.head = read_head(c)
        c.send(b"HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\n\r\ntoo large")
        c.sock.shutdown(socket.SHUT_WR)
        c.recv_until_eof(5)

    origin = ScriptedOrigin(script)
    try:
        sb = env.sandbox("open")
        r = in_sandbox(sb, origin.port, f'''
            s.sendall(b"POST /upload HTTP/1.1\\r\\nHost: allowed.test:{origin.port}\\r\\n"
                      b"Content-Length: 1000\\r\\n\\r\\nxxxxxxxxxx")
            got, closed = read_until_close(5)
            result = {{"got": got.decode("latin-1"), "closed": closed}}
        ''')
        assert r["got"].startswith("HTTP/1.1 413"), r
        assert r["got"].endswith("\r\n\r\ntoo large"), r
        assert r["closed"], r
        assert origin.wait_finished(1)
        assert origin.conns[0].eof
    finally:
        origin.close()


def test_h2c_upgrade_never_reaches_the_upstream(env):
    """Only WebSocket may become a tunnel: Upgrade: h2c is removed from the
    request (with the upgrade option of Connection), which then goes on as
    plain HTTP/1.1; an h2c-capable upstream answers it normally."""

    def script(c):
        c.head = read_head(c)
        if header(c.head, "Upgrade"):
            c.send(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
        else:
            c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        c.recv_until_eof(5)

    origin = ScriptedOrigin(script)
    try:
        sb = env.sandbox("open")
        r = in_sandbox(sb, origin.port, '''
            s.sendall(f"GET / HTTP/1.1\\r\\nHost: allowed.test:{PORT}\\r\\n"
                      "Connection: Upgrade, HTTP2-Settings\\r\\nUpgrade: h2c\\r\\n"
                      "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\\r\\n\\r\\n".encode())
            head = read_until(b"\\r\\n\\r\\n")
            result = {"head": head.decode(), "body": read_exactly(2).decode()}
        ''')
        assert r["head"].startswith("HTTP/1.1 200"), r
        assert r["body"] == "ok"
        assert origin.wait_finished(1)
        head = origin.conns[0].head
        assert header(head, "Upgrade") is None, head
        assert header(head, "Connection") == "HTTP2-Settings", head
        assert header(head, "Host") == f"allowed.test:{origin.port}"
    finally:
        origin.close()


def test_upgrade_with_other_protocols_keeps_only_websocket(env):
    origin = ScriptedOrigin(websocket_origin())
    try:
        sb = env.sandbox("open")
        r = in_sandbox(sb, origin.port, '''
            s.sendall(upgrade_request().replace(b"Upgrade: websocket", b"Upgrade: h2c, websocket"))
            head = read_until(b"\\r\\n\\r\\n")
            s.sendall(ws_frame(1, b"hello"))
            fin, rsv1, opcode, payload = ws_read_frame(read_exactly)
            result = {"head": head.decode(), "echo": payload.decode()}
        ''')
        assert r["head"].startswith("HTTP/1.1 101"), r
        assert r["echo"] == "hello"
        assert origin.wait_finished(1)
        assert header(origin.conns[0].head, "Upgrade") == "websocket"
    finally:
        origin.close()


def test_bytes_before_the_101_wait_and_must_be_frames(env):
    """Nothing the client sends after its upgrade request reaches the upstream
    before the 101; after it those bytes must be WebSocket frames: a request
    for a denied host is not, so the tunnel closes and it never arrives."""
    origin = ScriptedOrigin(websocket_origin(watch_before_101=0.5))
    try:
        sb = env.sandbox("open")
        r = in_sandbox(sb, origin.port, f'''
            s.sendall(upgrade_request() + ws_frame(1, b"early") +
                      b"GET /smuggled HTTP/1.1\\r\\nHost: denied.test:{origin.port}\\r\\n\\r\\n")
            got, closed = read_until_close(5)
            result = {{"got": got.decode("latin-1"), "closed": closed}}
        ''')
        assert r["closed"], r
        assert origin.wait_finished(1)
        conn = origin.conns[0]
        assert conn.before_101 == b""
        assert b"smuggled" not in conn.received()
        assert conn.eof
        assert sb.stats()["proxy"]["websocket_violations"] == 1
        events = proxy_events(env, sb.instance)
        assert any(e["layer"] == "proxy" and "WebSocket" in e["reason"] for e in events), events
    finally:
        origin.close()


def test_unmasked_client_bytes_close_the_tunnel(env):
    origin = ScriptedOrigin(websocket_origin())
    try:
        sb = env.sandbox("open")
        r = in_sandbox(sb, origin.port, '''
            s.sendall(upgrade_request())
            head = read_until(b"\\r\\n\\r\\n")
            s.sendall(ws_frame(1, b"hello"))
            fin, rsv1, opcode, payload = ws_read_frame(read_exactly)
            s.sendall(ws_frame(1, b"UNMASKED-SECRET", mask=False))
            rest, closed = read_until_close(5)
            result = {"head": head.decode(), "echo": payload.decode(), "closed": closed}
        ''')
        assert r["head"].startswith("HTTP/1.1 101"), r
        assert r["echo"] == "hello"
        assert r["closed"]
        assert origin.wait_finished(1)
        assert b"UNMASKED-SECRET" not in origin.conns[0].received()
        assert origin.conns[0].eof
        assert sb.stats()["proxy"]["websocket_violations"] == 1
        events = proxy_events(env, sb.instance)
        assert any("unmasked frame from the client" in e["reason"] for e in events), events
    finally:
        origin.close()


def test_real_websocket_keeps_working(env):
    """Masked frames of every length form, a fragmented message with a ping
    in the middle, a frame sent along with the upgrade request (held until
    the 101), and the close handshake."""
    origin = ScriptedOrigin(websocket_origin(watch_before_101=0.3))
    try:
        sb = env.sandbox("open")
        r = in_sandbox(sb, origin.port, '''
            s.sendall(upgrade_request() + ws_frame(1, b"early"))
            head = read_until(b"\\r\\n\\r\\n")
            echoes = [ws_read_frame(read_exactly)[3].decode()]
            for n in (5, 300, 70000):
                s.sendall(ws_frame(2, b"b" * n))
                echoes.append(len(ws_read_frame(read_exactly)[3]))
            s.sendall(ws_frame(1, b"frag", fin=False) + ws_frame(9, b"ping") +
                      ws_frame(0, b"mented", fin=True))
            frames = [ws_read_frame(read_exactly) for _ in range(3)]
            s.sendall(ws_frame(8, b"\\x03\\xe8"))
            close = ws_read_frame(read_exactly)
            rest, closed = read_until_close(5)
            result = {"head": head.decode(), "echoes": echoes,
                      "frames": [[f[2], f[3].decode()] for f in frames],
                      "close": [close[2], close[3].hex()], "closed": closed}
        ''')
        assert r["head"].startswith("HTTP/1.1 101"), r
        assert r["echoes"] == ["early", 5, 300, 70000]
        assert r["frames"] == [[1, "frag"], [10, "ping"], [0, "mented"]]
        assert r["close"] == [8, "03e8"]
        assert r["closed"]
        assert origin.wait_finished(1)
        assert origin.conns[0].before_101 == b""
        assert sb.stats()["proxy"]["websocket_violations"] == 0
    finally:
        origin.close()


def test_permessage_deflate_allows_rsv1_only_when_negotiated(env):
    compressor = zlib.compressobj(wbits=-15)
    deflated = compressor.compress(b"hello hello hello") + compressor.flush(zlib.Z_SYNC_FLUSH)
    deflated = deflated[:-4]  # RFC 7692: without the trailing 00 00 ff ff
    for negotiated in (True, False):
        origin = ScriptedOrigin(websocket_origin(
            extensions="permessage-deflate" if negotiated else None))
        try:
            sb = env.sandbox("open")
            r = in_sandbox(sb, origin.port, f'''
                s.sendall(upgrade_request(extensions="permessage-deflate"))
                head = read_until(b"\\r\\n\\r\\n")
                s.sendall(ws_frame(1, {deflated!r}, rsv1=True))
                try:
                    fin, rsv1, opcode, payload = ws_read_frame(read_exactly)
                    result = {{"rsv1": rsv1, "payload": payload.hex()}}
                except EOFError:
                    result = {{"closed": True}}
            ''')
            if negotiated:
                assert r == {"rsv1": True, "payload": deflated.hex()}
                assert sb.stats()["proxy"]["websocket_violations"] == 0
            else:
                assert r == {"closed": True}
                assert sb.stats()["proxy"]["websocket_violations"] == 1
                assert deflated not in origin.conns[0].received()
        finally:
            origin.close()


def test_masked_frame_from_the_upstream_closes_the_tunnel(env):
    """Server frames are checked too: a masked one is not a server's."""

    def script(c):
        c.head = read_head(c)
        c.send((f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {ws_accept(header(c.head, 'Sec-WebSocket-Key'))}\r\n\r\n"
                ).encode() + ws_frame(1, b"MASKED-BY-SERVER", mask=True))
        c.recv_until_eof(5)

    origin = ScriptedOrigin(script)
    try:
        sb = env.sandbox("open")
        r = in_sandbox(sb, origin.port, '''
            s.sendall(upgrade_request())
            got, closed = read_until_close(5)
            result = {"got": got.decode("latin-1"), "closed": closed}
        ''')
        assert r["closed"], r
        assert "MASKED-BY-SERVER" not in r["got"]
        assert origin.wait_finished(1)
        assert sb.stats()["proxy"]["websocket_violations"] == 1
        events = proxy_events(env, sb.instance)
        assert any("from the upstream" in e["reason"] for e in events), events
    finally:
        origin.close()


def test_audit_mode_reports_a_bad_frame_and_lets_the_tunnel_go_on(env):
    write_policy(env.daemon.policy_dir, "audit-open", mode="audit", denied_hosts=["denied.test"])
    origin = ScriptedOrigin(websocket_origin())
    try:
        sb = env.sandbox("audit-open")
        r = in_sandbox(sb, origin.port, '''
            s.sendall(upgrade_request())
            read_until(b"\\r\\n\\r\\n")
            s.sendall(ws_frame(1, b"unmasked", mask=False))
            fin, rsv1, opcode, payload = ws_read_frame(read_exactly)
            result = {"echo": payload.decode()}
        ''')
        assert r == {"echo": "unmasked"}
        assert sb.stats()["proxy"]["websocket_violations"] == 1
        events = proxy_events(env, sb.instance)
        assert any("unmasked frame" in e["reason"] and e["enforced"] is False for e in events), events
    finally:
        origin.close()
