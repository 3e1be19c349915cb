"""A tiny authoritative DNS server on loopback for tests: answers A/AAAA from
a dict, NXDOMAIN otherwise. Runs in a thread; counts the queries it saw and
records the id and source port of each. With `spoof` set it first sends
forged answers (wrong id, wrong question, wrong type, from another port)
naming SPOOFED_ADDRESS, as an off-path attacker racing the real answer would."""
import socket
import struct
import threading

SPOOFED_ADDRESS = "127.0.0.66"


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
    def __init__(self, records=None, host="127.0.0.1", ttl=30, port=0):
        self.records = dict(records or {})  # name -> list of "1.2.3.4" / "::1"
        self.ttl = ttl
        self.queries = []
        self.raw_queries = []  # the bytes of each query, as they arrived
        self.sources = []  # (id, source port, name, qtype) of each query
        self.spoof = False
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
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
                reply = self._answer(data, peer)
            except Exception:  # malformed query: no answer
                continue
            if self.spoof:
                self._send_forgeries(data, peer)
            self.sock.sendto(reply, peer)

    def _send_forgeries(self, data, peer):
        qid = struct.unpack("!H", data[:2])[0]
        name, off = _read_name(data, 12)
        qtype = struct.unpack("!H", data[off:off + 2])[0]
        other_type = 28 if qtype == 1 else 1
        for forged in (_response(qid ^ 0x5a5a, name, qtype, [SPOOFED_ADDRESS]),
                       _response(qid, "evil.test", qtype, [SPOOFED_ADDRESS]),
                       _response(qid, name, other_type, [SPOOFED_ADDRESS])):
            self.sock.sendto(forged, peer)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other_port:
            other_port.bind((self.sock.getsockname()[0], 0))
            other_port.sendto(_response(qid, name, qtype, [SPOOFED_ADDRESS]), peer)

    def _answer(self, data, peer):
        self.raw_queries.append(data)
        qid, flags, qd, _, _, _ = struct.unpack("!HHHHHH", data[:12])
        name, off = _read_name(data, 12)
        qtype, qclass = struct.unpack("!HH", data[off:off + 4])
        question = data[12:off + 4]
        self.queries.append((name, qtype))
        self.sources.append((qid, peer[1], name, qtype))
        answers = []
        known = name in self.records
        for addr in self.records.get(name, []):
            fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
            if (qtype == 1 and fam == socket.AF_INET) or (qtype == 28 and fam == socket.AF_INET6):
                answers.append(_record(qtype, addr, self.ttl))
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


def _record(qtype, addr, ttl):
    """An answer record for the question's name (a pointer to offset 12)."""
    rdata = socket.inet_pton(socket.AF_INET6 if ":" in addr else socket.AF_INET, addr)
    return b"\xc0\x0c" + struct.pack("!HHIH", 1 if len(rdata) == 4 else 28, 1, ttl, len(rdata)) + rdata


def _response(qid, name, qtype, addrs, ttl=30):
    """A NOERROR response to the question (name, qtype) with these records."""
    question = build_query(0, name, qtype)[12:]
    header = struct.pack("!HHHHHH", qid, 0x8180, 1, len(addrs), 0, 0)
    return header + question + b"".join(_record(qtype, a, ttl) for a in addrs)
