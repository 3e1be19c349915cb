"""A tiny authoritative DNS server on loopback for tests: answers A/AAAA from
a dict, NXDOMAIN otherwise. Runs in a thread; counts the queries it saw."""
import socket
import struct
import threading


def _read_name(data, off):
    labels = []
    while True:
        n = data[off]
        off += 1
        if n == 0:
            return ".".join(labels), off
        labels.append(data[off:off + n].decode("ascii").lower())
        off += n


class FakeDns:
    def __init__(self, records=None, host="127.0.0.1", ttl=30):
        self.records = dict(records or {})  # name -> list of "1.2.3.4" / "::1"
        self.ttl = ttl
        self.queries = []
        self.raw_queries = []  # the bytes of each query, as they arrived
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.port = self.sock.getsockname()[1]
        self.address = f"{host}:{self.port}"
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                data, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                reply = self._answer(data)
            except Exception:  # malformed query: no answer
                continue
            self.sock.sendto(reply, peer)

    def _answer(self, data):
        self.raw_queries.append(data)
        qid, flags, qd, _, _, _ = struct.unpack("!HHHHHH", data[:12])
        name, off = _read_name(data, 12)
        qtype, qclass = struct.unpack("!HH", data[off:off + 4])
        question = data[12:off + 4]
        self.queries.append((name, qtype))
        answers = []
        known = name in self.records
        for addr in self.records.get(name, []):
            fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
            if (qtype == 1 and fam == socket.AF_INET) or (qtype == 28 and fam == socket.AF_INET6):
                rdata = socket.inet_pton(fam, addr)
                answers.append(b"\xc0\x0c" + struct.pack("!HHIH", qtype, 1, self.ttl, len(rdata)) + rdata)
        rcode = 0 if known else 3
        header = struct.pack("!HHHHHH", qid, 0x8180 | rcode, 1, len(answers), 0, 0)
        return header + question + b"".join(answers)

    def close(self):
        self._stop = True
        self.thread.join(timeout=2)
        self.sock.close()


def build_query(qid, name, qtype=1):
    q = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + q + struct.pack("!HH", qtype, 1)
