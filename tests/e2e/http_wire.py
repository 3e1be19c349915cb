"""HTTP/1.1 on a raw socket, for the clients the tests run inside sandboxes
(they import it with this directory on sys.path)."""
import re


def status_line(sock):
    """Reads one response with a Content-Length body from `sock`; returns its
    status line ("HTTP/1.1 200 OK"), or None if the connection ended first."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = sock.recv(4096)
        if not d:
            return None
        buf += d
    head, _, body = buf.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(body) < length:
        d = sock.recv(4096)
        if not d:
            return None
        body += d
    return head.split(b"\r\n")[0].decode()
