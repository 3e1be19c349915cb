"""Runs inside a sandbox and keeps connections open across the test's steps
(a runtime switch, a secret rotation, a daemon restart): one JSON command per
stdin line, one JSON answer per stdout line. Every connection goes to
127.0.0.1 (egressd's proxy takes it from there); the name is the SNI and Host.

  {"op": "get", "conn": ID, "host": H, "port": P, "path": "/x", "tls": true,
   "ca": PATH|null, "method": "GET", "headers": {...}}
      a request on keep-alive connection ID (opened on first use; ca null:
      the default trust, which `egressctl run` points at the sandbox CA)
      -> {"status", "body", "reused", "local_port"} or {"error"}
  {"op": "tunnel", "conn": ID, "host": H, "port": P, "ca": PATH}
      a TLS connection verified with the origin's own CA (pass-through), one
      request on it; it stays open -> {"status", "body"} or {"error"}
  {"op": "ws", "conn": ID, "host": H, "port": P, "ca": PATH|null}
      a WebSocket over intercepted TLS: the upgrade, then one text frame
      echoed -> {"status", "echo"}; it stays open
  {"op": "wait_closed", "conn": ID, "timeout": S}
      -> {"closed": true, "seconds": ...} when the peer ends it (EOF, reset)
      within S seconds, else {"closed": false}
  {"op": "close", "conn": ID}
  {"op": "dns", "name": N}  an A query to 127.0.0.1:53 (the sandbox's DNS) -> {"rcode"}
"""
import http.client
import json
import os
import socket
import ssl
import struct
import sys
import time

conns = {}


def tls_context(ca):
    return ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()


def connect(cmd):
    raw = socket.create_connection(("127.0.0.1", cmd["port"]), timeout=10)
    if cmd.get("tls", True):
        return tls_context(cmd.get("ca")).wrap_socket(raw, server_hostname=cmd["host"])
    return raw


def get(cmd):
    conn = conns.get(cmd["conn"])
    reused = conn is not None
    if conn is None:
        conn = http.client.HTTPConnection(cmd["host"], cmd["port"], timeout=10)
        conn.sock = connect(cmd)
        conns[cmd["conn"]] = conn
    headers = {"Host": cmd["host"]}
    headers.update(cmd.get("headers") or {})
    conn.putrequest(cmd.get("method", "GET"), cmd["path"], skip_host=True,
                    skip_accept_encoding=True)
    for k, v in headers.items():
        for value in (v if isinstance(v, list) else [v]):
            conn.putheader(k, value)
    conn.endheaders()
    r = conn.getresponse()
    body = r.read().decode(errors="replace")
    local_port = conn.sock.getsockname()[1] if conn.sock else None
    if r.will_close:
        conns.pop(cmd["conn"], None)
        conn.close()
    return {"status": r.status, "body": body, "reused": reused, "local_port": local_port}


def tunnel(cmd):
    s = connect(cmd)
    conns[cmd["conn"]] = s
    s.sendall(f"GET /tunnel HTTP/1.1\r\nHost: {cmd['host']}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(rest) < length:
        chunk = s.recv(4096)
        if not chunk:
            break
        rest += chunk
    status = int(head.split(b" ")[1]) if head.startswith(b"HTTP/") else 0
    return {"status": status, "body": rest.decode(errors="replace")}


def read_exactly(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise EOFError(f"closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def ws(cmd):
    s = connect(cmd)
    conns[cmd["conn"]] = s
    s.sendall((f"GET /ws HTTP/1.1\r\nHost: {cmd['host']}\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += read_exactly(s, 1)
    status = int(head.split(b" ")[1])
    if status != 101:
        return {"status": status}
    payload, key = b"hello over the tunnel", os.urandom(4)
    s.sendall(bytes([0x81, 0x80 | len(payload)]) + key +
              bytes(c ^ key[i % 4] for i, c in enumerate(payload)))
    b0, b1 = read_exactly(s, 2)
    return {"status": status, "echo": read_exactly(s, b1 & 0x7F).decode()}


def wait_closed(cmd):
    s = conns.pop(cmd["conn"])
    if isinstance(s, http.client.HTTPConnection):
        s = s.sock
    start = time.monotonic()
    s.settimeout(cmd["timeout"])
    try:
        data = s.recv(4096)
        closed = data == b""
        extra = {} if closed else {"data": data.decode(errors="replace")}
    except socket.timeout:
        return {"closed": False}
    except (ssl.SSLError, OSError) as e:  # a reset, or TLS cut short
        closed, extra = True, {"how": type(e).__name__}
    s.close()
    return {"closed": closed, "seconds": time.monotonic() - start, **extra}


def dns(cmd):
    q = b"".join(bytes([len(p)]) + p.encode() for p in cmd["name"].split(".")) + b"\x00"
    msg = struct.pack("!HHHHHH", 0x4243, 0x0100, 1, 0, 0, 0) + q + struct.pack("!HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.sendto(msg, ("127.0.0.1", 53))
        reply = s.recv(4096)
    return {"rcode": reply[3] & 0xF, "answers": struct.unpack("!H", reply[6:8])[0]}


def close(cmd):
    c = conns.pop(cmd["conn"], None)
    if c is not None:
        c.close()
    return {"closed": True}


OPS = {"get": get, "tunnel": tunnel, "ws": ws, "wait_closed": wait_closed, "dns": dns, "close": close}

print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    if not line.strip():
        continue
    cmd = json.loads(line)
    try:
        out = OPS[cmd["op"]](cmd)
    except Exception as e:  # the test reads the error
        if cmd.get("conn") in conns and cmd["op"] == "get":
            conns.pop(cmd["conn"]).close()
        out = {"error": f"{type(e).__name__}: {e}"}
    print(json.dumps(out), flush=True)
