"""Runs inside a sandbox and does what the test asks, one command per stdin
line, one result per stdout line (so a test can act before and after a
daemon restart with the same process):

  http HOST PORT IP      GET http://HOST:PORT/ connecting to IP -> status and body
  dns NAME IP udp|tcp    A query for NAME sent to IP:53 -> rcode and addresses
  local                  a TCP server on 127.0.0.1 of the sandbox, and a connection to it
  tcp IP PORT            connect, send a line that is not HTTP -> first line of the answer
  udp IP PORT            send one datagram -> "sent" or the error
"""
import http.client
import socket
import struct
import sys
import threading


def http_get(host, port, ip, path="/"):
    conn = http.client.HTTPConnection(ip, int(port), timeout=10)
    conn.request("GET", path, headers={"Host": f"{host}:{port}"})
    r = conn.getresponse()
    return f"{r.status} {r.read().decode().strip()}"


def dns_query(name, ip, transport):
    q = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"
    msg = struct.pack("!HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0) + q + struct.pack("!HH", 1, 1)
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    if transport == "tcp":
        with socket.create_connection((ip, 53), timeout=5) as s:
            s.sendall(struct.pack("!H", len(msg)) + msg)
            data = b""
            while len(data) < 2 or len(data) < 2 + struct.unpack("!H", data[:2])[0]:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            reply = data[2:]
    else:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.settimeout(5)
            s.sendto(msg, (ip, 53))
            reply = s.recv(4096)
    rcode = reply[3] & 0xF
    ancount = struct.unpack("!H", reply[6:8])[0]
    addrs = []
    off = len(msg)
    for _ in range(ancount):
        off += 2  # compressed name pointer
        rtype, _, _, rdlen = struct.unpack("!HHIH", reply[off:off + 10])
        off += 10
        if rtype == 1:
            addrs.append(socket.inet_ntoa(reply[off:off + rdlen]))
        off += rdlen
    return f"rcode={rcode} {','.join(addrs)}".strip()


def local():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]

    def serve():
        c, _ = srv.accept()
        c.sendall(b"local-hello")
        c.close()

    threading.Thread(target=serve, daemon=True).start()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        return c.recv(100).decode()


def tcp(ip, port):
    with socket.create_connection((ip, int(port)), timeout=10) as c:
        c.sendall(b"\x00\x01 hello, not http\r\n\r\n")
        data = c.recv(4096)
        first = data.split(b"\n")[0].strip().decode(errors="replace")
        return f"answered {first}" if data else "closed"


def udp(ip, port):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"x", (ip, int(port)))
    return "sent"


print("ready", flush=True)
for line in sys.stdin:
    words = line.split()
    if not words:
        continue
    try:
        if words[0] == "http":
            out = http_get(*words[1:5])
        elif words[0] == "dns":
            out = dns_query(*words[1:4])
        elif words[0] == "local":
            out = local()
        elif words[0] == "tcp":
            out = tcp(*words[1:3])
        elif words[0] == "udp":
            out = udp(*words[1:3])
        else:
            out = "unknown command"
    except Exception as e:  # the test reads the error
        out = f"error {type(e).__name__}: {e}"
    print(out, flush=True)
