"""Raw bytes from inside a sandbox: for request shapes no HTTP client sends."""


def raw_exchange(sb, port, payload, host="127.0.0.1"):
    """Sends `payload` from inside the sandbox to host:port; returns what came
    back until the connection ended (close or reset), as latin-1 text."""
    code = f"""
import socket, sys
s = socket.create_connection(({host!r}, {port}), timeout=10)
s.sendall({payload!r})
data = b""
while True:
    try:
        chunk = s.recv(65536)
    except ConnectionResetError:
        break
    if not chunk:
        break
    data += chunk
sys.stdout.write(data.decode("latin-1"))
"""
    r = sb.python(code)
    assert r.returncode == 0, r.stderr
    return r.stdout
