#!/usr/bin/env python3
"""Captures real HTTP/1.1 traffic on loopback as seeds for the fuzz corpora
of fuzz_http_request and fuzz_http_response (tests/fuzz/corpus/).

Requests: a capture server on 127.0.0.1 records the exact bytes that curl,
python (urllib; requests when installed), git (smart HTTP: `git ls-remote`
and `git clone`, served by the real `git http-backend` on a tiny repository)
and node (http.request and fetch, when `node` is installed) send it.

Responses: what real servers send: python's http.server, node's http server
(Content-Length and chunked), and the capture server's git smart HTTP
answers (git http-backend's output, framed with Content-Length). Response
seeds start with fuzz_http_response's mode byte (bit 0: the answer to HEAD,
bit 1: Finish at the end of the input).

Only loopback is used. Files are named <client>-<what>; a client that is not
installed is skipped and reported. Run from anywhere:

    tools/capture_seeds.py            # writes into tests/fuzz/corpus/
    tools/capture_seeds.py --out DIR  # writes DIR/fuzz_http_request, DIR/fuzz_http_response
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 20  # seconds for every client, server and socket operation
CANNED_BODY = b"hello from the capture server\n"


def read_until(conn, buf, marker, start=0):
    """`buf` extended from the connection until `marker` occurs at or after `start`."""
    while buf.find(marker, start) < 0:
        chunk = conn.recv(65536)
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def read_exact(conn, buf, n):
    while len(buf) < n:
        chunk = conn.recv(65536)
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def read_request(conn, buf):
    """One request from `buf` + the connection: (raw bytes, request, body, the bytes after it)."""
    buf = read_until(conn, buf, b"\r\n\r\n")
    head_end = buf.index(b"\r\n\r\n") + 4
    lines = buf[:head_end].decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    pos = head_end
    body = b""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            buf = read_until(conn, buf, b"\r\n", pos)
            line_end = buf.index(b"\r\n", pos)
            size = int(buf[pos:line_end].split(b";")[0], 16)
            pos = line_end + 2
            if size == 0:
                while True:  # trailer fields, up to an empty line
                    buf = read_until(conn, buf, b"\r\n", pos)
                    line_end = buf.index(b"\r\n", pos)
                    empty = line_end == pos
                    pos = line_end + 2
                    if empty:
                        break
                break
            buf = read_exact(conn, buf, pos + size + 2)
            body += buf[pos:pos + size]
            pos += size + 2
    elif "content-length" in headers:
        n = int(headers["content-length"])
        buf = read_exact(conn, buf, pos + n)
        body = buf[pos:pos + n]
        pos += n
    return buf[:pos], {"method": method, "target": target, "headers": headers}, body, buf[pos:]


def git_backend(repo_root, req, body):
    """Runs git http-backend (CGI) for one request; returns an HTTP/1.1 response."""
    path, _, query = req["target"].partition("?")
    env = dict(os.environ, GIT_PROJECT_ROOT=repo_root, GIT_HTTP_EXPORT_ALL="1", PATH_INFO=path,
               QUERY_STRING=query, REQUEST_METHOD=req["method"],
               CONTENT_TYPE=req["headers"].get("content-type", ""), CONTENT_LENGTH=str(len(body)),
               REMOTE_ADDR="127.0.0.1")
    if "git-protocol" in req["headers"]:
        env["GIT_PROTOCOL"] = req["headers"]["git-protocol"]
    if req["headers"].get("content-encoding") == "gzip":
        env["HTTP_CONTENT_ENCODING"] = "gzip"
    out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True,
                         timeout=TIMEOUT).stdout
    head, _, payload = out.partition(b"\r\n\r\n")
    status = b"200 OK"
    fields = []
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"status:"):
            status = line.split(b":", 1)[1].strip()
        elif line:
            fields.append(line)
    return (b"HTTP/1.1 " + status + b"\r\n" + b"".join(f + b"\r\n" for f in fields) +
            b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload)


class CaptureServer:
    """Records every request; answers git paths with git http-backend, others canned."""

    def __init__(self, repo_root):
        self.repo_root = repo_root
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.requests = []   # raw request bytes, in order
        self.responses = []  # (method, raw response bytes) the server sent
        self._lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def take(self):
        with self._lock:
            got, self.requests = self.requests, []
            sent, self.responses = self.responses, []
        return got, sent

    def _accept(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        conn.settimeout(TIMEOUT)
        buf = b""
        try:
            while True:
                raw, req, body, buf = read_request(conn, buf)
                if ".git/" in req["target"]:
                    response = git_backend(self.repo_root, req, body)
                else:
                    response = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
                                str(len(CANNED_BODY)).encode() + b"\r\n\r\n")
                    if req["method"] != "HEAD":
                        response += CANNED_BODY
                with self._lock:
                    self.requests.append(raw)
                    self.responses.append((req["method"], response))
                conn.sendall(response)
        except (OSError, ValueError, EOFError):
            return
        finally:
            conn.close()

    def close(self):
        self._stop = True
        self._thread.join(timeout=5)
        self.sock.close()


def make_repo(root):
    repo = os.path.join(root, "repo.git")
    work = os.path.join(root, "work")
    env = dict(os.environ, GIT_AUTHOR_NAME="seed", GIT_AUTHOR_EMAIL="seed@example.test",
               GIT_COMMITTER_NAME="seed", GIT_COMMITTER_EMAIL="seed@example.test",
               GIT_AUTHOR_DATE="2026-01-01T00:00:00Z", GIT_COMMITTER_DATE="2026-01-01T00:00:00Z")
    for args in (["init", "-q", "-b", "main", work],
                 ["-C", work, "commit", "-q", "--allow-empty", "-m", "seed"],
                 ["clone", "-q", "--bare", work, repo]):
        subprocess.run(["git", *args], check=True, env=env, capture_output=True, timeout=TIMEOUT)
    return repo


NODE_REQUEST = r"""
const http = require('http');
const [port, what] = [process.argv[1], process.argv[2]];
if (what === 'fetch') {
  fetch(`http://127.0.0.1:${port}/node/fetch?q=1`, {headers: {'accept': 'application/json'}})
    .then(r => r.text()).then(() => process.exit(0), e => { console.error(e); process.exit(1); });
} else {
  const body = what === 'post' ? JSON.stringify({seed: true}) : null;
  const req = http.request({host: '127.0.0.1', port, path: `/node/${what}`,
                            method: body ? 'POST' : 'GET',
                            headers: body ? {'content-type': 'application/json'} : {}}, res => {
    res.resume(); res.on('end', () => process.exit(0));
  });
  req.on('error', e => { console.error(e); process.exit(1); });
  if (body) req.write(body);
  req.end();
}
"""

NODE_SERVER = r"""
const http = require('http');
const server = http.createServer((req, res) => {
  if (req.url === '/chunked') { res.write('first chunk\n'); res.end('second chunk\n'); return; }
  const body = 'length-delimited from node\n';
  res.writeHead(200, {'content-type': 'text/plain', 'content-length': Buffer.byteLength(body)});
  res.end(req.method === 'HEAD' ? undefined : body);
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
"""

PYTHON_URLLIB = r"""
import sys, urllib.request
port, what = sys.argv[1], sys.argv[2]
url = f"http://127.0.0.1:{port}/python/{what}"
if what == "post":
    req = urllib.request.Request(url, data=b"field=value&other=2", method="POST")
else:
    req = urllib.request.Request(url)
urllib.request.urlopen(req, timeout=20).read()
"""

PYTHON_REQUESTS = r"""
import sys, requests
port = sys.argv[1]
requests.get(f"http://127.0.0.1:{port}/python/requests", timeout=20)
"""


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, timeout=TIMEOUT, **kw)


def capture_requests(server, repo_root, skipped):
    """({name: raw request bytes} from each client, [the git answers the server sent])."""
    port = str(server.port)
    base = f"http://127.0.0.1:{port}"
    clients = [
        ("curl-get", ["curl", "-sS", "-o", "/dev/null", f"{base}/curl/get"]),
        ("curl-head", ["curl", "-sS", "-I", "-o", "/dev/null", f"{base}/curl/head"]),
        ("curl-post-form", ["curl", "-sS", "-o", "/dev/null", "-d", "a=1&b=two", f"{base}/curl/form"]),
        ("curl-put-chunked", ["curl", "-sS", "-o", "/dev/null", "-T", "-", "-H", "Transfer-Encoding: chunked",
                              f"{base}/curl/upload"]),
        ("curl-json-gzip", ["curl", "-sS", "-o", "/dev/null", "--compressed", "-H", "Accept: application/json",
                            "-H", "Authorization: Bearer not-a-secret", f"{base}/curl/api?x=1&y=%20"]),
        ("python-urllib-get", [sys.executable, "-c", PYTHON_URLLIB, port, "get"]),
        ("python-urllib-post", [sys.executable, "-c", PYTHON_URLLIB, port, "post"]),
    ]
    if run([sys.executable, "-c", "import requests"]).returncode == 0:
        clients.append(("python-requests-get", [sys.executable, "-c", PYTHON_REQUESTS, port]))
    else:
        skipped.append("python requests (module not installed)")
    if shutil.which("node"):
        clients += [(f"node-http-{w}", ["node", "-e", NODE_REQUEST, port, w]) for w in ("get", "post")]
        clients.append(("node-fetch-get", ["node", "-e", NODE_REQUEST, port, "fetch"]))
    else:
        skipped.append("node (not installed)")
    git_env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1", HOME=repo_root)
    clone_dir = os.path.join(repo_root, "clone")
    clients += [
        ("git-ls-remote", ["git", "ls-remote", f"{base}/repo.git"], git_env),
        ("git-ls-remote-v0", ["git", "-c", "protocol.version=0", "ls-remote", f"{base}/repo.git"], git_env),
        ("git-clone", ["git", "clone", "-q", f"{base}/repo.git", clone_dir], git_env),
    ]
    seeds = {}
    git_answers = []
    for name, argv, *env in clients:
        stdin = b"chunk one\nchunk two\n" if name == "curl-put-chunked" else None
        r = run(argv, input=stdin, env=env[0] if env else None)
        got, sent = server.take()
        if name.startswith("git-"):
            git_answers += [raw for _, raw in sent]
        if r.returncode != 0 or not got:
            raise RuntimeError(f"{name}: exit {r.returncode}, {len(got)} request(s): {r.stderr.decode()[-500:]}")
        if len(got) == 1:
            seeds[name] = got[0]
        else:  # git: one file per request, and all of them as one keep-alive stream
            for i, raw in enumerate(got):
                seeds[f"{name}-{i + 1}"] = raw
            seeds[f"{name}-all"] = b"".join(got)
    return seeds, git_answers


def fetch_raw(port, request):
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        return data


def start_printing_port(argv, cwd=None):
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)
    line = proc.stdout.readline()  # the server prints its port once it listens
    if not line.strip().isdigit():
        proc.kill()
        raise RuntimeError(f"{argv[0]} server did not start: {line!r} {proc.stderr.read()[-500:]}")
    return proc, int(line)


PYTHON_SERVER = r"""
import http.server, sys
class Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def capture_responses(git_answers, skipped, workdir):
    """{name: mode byte + raw response bytes} from real servers."""
    GET, HEAD, FINISH = 0, 1, 2
    seeds = {}
    for i, raw in enumerate(git_answers):
        seeds[f"git-http-backend-{i + 1}"] = bytes([GET | FINISH]) + raw
    servers = [("python-http-server", [sys.executable, "-c", PYTHON_SERVER])]
    if shutil.which("node"):
        servers.append(("node-http-server", ["node", "-e", NODE_SERVER]))
    else:
        skipped.append("node server (not installed)")
    # python's server serves its working directory: one small file, nothing of this machine's.
    www = os.path.join(workdir, "www")
    os.makedirs(www)
    with open(os.path.join(www, "hello.txt"), "w") as f:
        f.write("hello from python's http.server\n")
    for name, argv in servers:
        proc, port = start_printing_port(argv, cwd=www)
        try:
            get = f"GET /{{}} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
            head = f"HEAD / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
            if name == "python-http-server":
                # A directory listing, a file and a 404.
                seeds[f"{name}-listing"] = bytes([GET | FINISH]) + fetch_raw(port, get.format("").encode())
                seeds[f"{name}-file"] = bytes([GET | FINISH]) + fetch_raw(port, get.format("hello.txt").encode())
                seeds[f"{name}-404"] = bytes([GET | FINISH]) + fetch_raw(port, get.format("missing").encode())
            else:
                seeds[f"{name}-length"] = bytes([GET | FINISH]) + fetch_raw(port, get.format("").encode())
                seeds[f"{name}-chunked"] = bytes([GET | FINISH]) + fetch_raw(port, get.format("chunked").encode())
            seeds[f"{name}-head"] = bytes([HEAD | FINISH]) + fetch_raw(port, head.encode())
        finally:
            proc.kill()
            proc.wait(timeout=TIMEOUT)
    return seeds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "tests", "fuzz", "corpus"))
    args = parser.parse_args()
    skipped = []
    with tempfile.TemporaryDirectory() as tmp:
        make_repo(tmp)
        server = CaptureServer(tmp)
        try:
            requests, git_answers = capture_requests(server, tmp, skipped)
        finally:
            server.close()
        responses = capture_responses(git_answers, skipped, tmp)
    for target, seeds in (("fuzz_http_request", requests), ("fuzz_http_response", responses)):
        directory = os.path.join(args.out, target)
        os.makedirs(directory, exist_ok=True)
        for name, data in sorted(seeds.items()):
            with open(os.path.join(directory, name), "wb") as f:
                f.write(data)
        print(f"{target}: {len(seeds)} seeds: {', '.join(sorted(seeds))}")
    for s in skipped:
        print(f"skipped: {s}")


if __name__ == "__main__":
    main()
