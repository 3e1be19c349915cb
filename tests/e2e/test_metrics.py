"""`--metrics-listen ADDR:PORT`: Prometheus text at /metrics, read with a
real HTTP client and checked by `promtool check metrics`. Per-sandbox series
are labelled `sandbox` (the instance) and `policy` and agree with `egressctl
stats` (the same figures); a sandbox that ended keeps its series; hosts are
never labels. Off by default; a bad value is refused at start."""
import json
import re
import socket
import subprocess
import time
import urllib.request

from conftest import Daemon, free_port
from fakedns import build_query

METRICS_ADDR = f"127.0.0.1:{free_port()}"
EGRESSD_FLAGS = {"metrics_listen": METRICS_ADDR}

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape(addr=METRICS_ADDR):
    with urllib.request.urlopen(f"http://{addr}/metrics", timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain"), r.headers["Content-Type"]
        return r.read().decode()


def parse(text):
    """[(name, {label: value}, float)] of every sample line."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"unparsable sample line: {line!r}"
        out.append((m.group(1), dict(LABEL.findall(m.group(2) or "")), float(m.group(3))))
    return out


def value(samples, name, **labels):
    """The one sample of `name` whose labels include `labels`."""
    found = [v for n, l, v in samples if n == name and all(l.get(k) == x for k, x in labels.items())]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def promtool_check(text):
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, f"promtool check metrics failed:\n{r.stdout}{r.stderr}"


def dns_query(sb, name):
    """One UDP query from inside the sandbox (to port 53: egressd's listener); its rcode."""
    query = build_query(0x4242, name)
    code = f"""
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.connect(("127.0.0.1", 53))
s.send({query!r})
print(s.recv(4096)[3] & 0xF)
"""
    r = sb.python(code)
    assert r.returncode == 0, r.stderr
    return int(r.stdout.strip())


# Holds one keep-alive connection through the proxy open until stdin closes.
HOLD = """
import socket, sys
s = socket.create_connection(("127.0.0.1", {port}))
s.sendall(b"GET / HTTP/1.1\\r\\nHost: allowed.test:{port}\\r\\n\\r\\n")
data = b""
while b"\\r\\n\\r\\n" not in data:
    data += s.recv(4096)
print(data.split(b" ")[1].decode(), flush=True)
sys.stdin.read()
"""


def wait_for(predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_metrics_count_a_sandboxs_traffic_and_pass_promtool(env):
    sb = env.sandbox("strict")
    allowed = f"http://allowed.test:{env.http.port}/"
    denied = f"http://denied.test:{env.http.port}/"
    for _ in range(2):
        assert sb.curl("-o", "/dev/null", "-w", "%{http_code}", allowed).stdout == "200"
    assert sb.curl("-o", "/dev/null", "-w", "%{http_code}", denied).stdout == "403"
    assert dns_query(sb, "denied.test") == 3  # NXDOMAIN by policy
    assert dns_query(sb, "allowed.test") == 0

    # The connections are closed by now: open_connections is back to 0.
    assert wait_for(lambda: value(parse(scrape()), "egressd_open_connections",
                                  sandbox=sb.instance) == 0)
    text = scrape()
    promtool_check(text)
    s = parse(text)
    me = {"sandbox": sb.instance, "policy": "strict"}
    assert value(s, "egressd_requests_total", decision="allowed", **me) == 2
    assert value(s, "egressd_requests_total", decision="denied", **me) == 1
    assert value(s, "egressd_requests_total", decision="malformed", **me) == 0
    assert value(s, "egressd_connections_total", **me) == 3
    assert value(s, "egressd_connections_redirected_total", **me) == 3
    assert value(s, "egressd_dns_queries_total", **me) == 2
    assert value(s, "egressd_dns_denied_total", **me) == 1
    assert value(s, "egressd_dns_redirected_total", **me) == 2
    assert value(s, "egressd_proxied_bytes_total", direction="up", **me) > 0
    assert value(s, "egressd_proxied_bytes_total", direction="down", **me) > 0
    assert value(s, "egressd_upstream_errors_total", **me) == 0
    assert value(s, "egressd_limits_hit_total", limit="header_timeout", **me) == 0
    # The same figures as `egressctl stats` (one gatherer for both).
    stats = sb.stats()
    assert value(s, "egressd_requests_total", decision="allowed", **me) == \
        stats["proxy"]["requests_allowed"]
    assert value(s, "egressd_proxied_bytes_total", direction="down", **me) == \
        stats["proxy"]["bytes_down"]
    assert value(s, "egressd_dns_denied_total", **me) == stats["dns"]["refused"]
    # Histograms: every bucket, cumulative, +Inf = count >= the requests
    # forwarded (connects: the second request may take the first one's
    # upstream from the pool, with no connect).
    for name, at_least in (("egressd_request_duration_seconds", 2),
                           ("egressd_upstream_connect_duration_seconds", 1)):
        count = value(s, name + "_count", **me)
        assert count >= at_least, (name, count)
        buckets = [(l["le"], v) for n, l, v in s
                   if n == name + "_bucket" and l["sandbox"] == sb.instance]
        assert len(buckets) >= 10 and buckets[-1] == ("+Inf", count), buckets
        assert [v for _, v in buckets] == sorted(v for _, v in buckets)
        assert value(s, name + "_sum", **me) > 0
    # Loopback requests take far less than a second.
    assert value(s, "egressd_request_duration_seconds_bucket", le="1", **me) >= 2
    # Daemon-wide figures.
    assert value(s, "egressd_attached_sandboxes") >= 1
    assert value(s, "egressd_proxy_accepted_total") >= 3
    assert value(s, "egressd_audit_events_total") >= 2  # the 403 and the NXDOMAIN
    # Hosts are never labels, nor anywhere in the text.
    assert all("host" not in l for _, l, _ in s)
    assert "allowed.test" not in text and "denied.test" not in text
    # Every per-sandbox series has both labels.
    for n, l, _ in s:
        if "sandbox" in l:
            assert l.get("policy") is not None, (n, l)


def test_open_connections_gauge_follows_a_held_connection(env):
    sb = env.sandbox("strict")
    proc = sb.popen("python3", "-c", HOLD.format(port=env.http.port), stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "200"
        assert value(parse(scrape()), "egressd_open_connections", sandbox=sb.instance) == 1
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)
    assert wait_for(lambda: value(parse(scrape()), "egressd_open_connections",
                                  sandbox=sb.instance) == 0)


def test_an_ended_sandbox_keeps_its_series(env):
    url = f"http://allowed.test:{env.http.port}/"
    r = env.daemon.run("--policy", "strict", "--netns", "host", "--instance", "metrics-ended", "--",
                       "curl", "-sS", "-o", "/dev/null", "--max-time", "10", "--noproxy", "*",
                       "--resolve", f"allowed.test:{env.http.port}:127.0.0.1", url)
    assert r.returncode == 0, r.stderr
    assert "metrics-ended" not in env.daemon.instances()
    s = parse(scrape())
    assert value(s, "egressd_requests_total", sandbox="metrics-ended", policy="strict",
                 decision="allowed") == 1
    assert value(s, "egressd_open_connections", sandbox="metrics-ended") == 0
    attached = value(s, "egressd_attached_sandboxes")
    assert attached == len(env.daemon.instances())


def listening_tcp_ports(pid):
    """The TCP ports a process listens on (ss -ltnp)."""
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, timeout=10).stdout
    ports = set()
    for line in out.splitlines():
        if f"pid={pid}," in line:
            ports.add(int(line.split()[3].rsplit(":", 1)[1]))
    return ports


def test_metrics_are_off_by_default(env, tmp_path):
    # The module's daemon listens on the metrics port...
    metrics_port = int(METRICS_ADDR.rsplit(":", 1)[1])
    assert metrics_port in listening_tcp_ports(env.daemon.proc.pid)
    # ...one without the flag on nothing but its proxy port.
    d = Daemon(str(tmp_path), env.dns.address)
    try:
        d.start()
        assert not any("Prometheus" in l for l in d.log), d.log
        assert listening_tcp_ports(d.proc.pid) == {d.proxy_port}
    finally:
        d.cleanup()
    assert any(f"metrics: Prometheus text format at http://{METRICS_ADDR}/metrics" in l
               for l in env.daemon.history)


def test_a_bad_metrics_listen_is_refused_at_start(env, tmp_path):
    for bad in ("localhost:9464", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "[::1]",
                "::1:9464", "1.2.3:80", "[::1]:9464"):
        r = subprocess.run(env.daemon.argv(metrics_listen=bad, state_dir=str(tmp_path / "s")),
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 2, (bad, r.returncode, r.stderr)
        assert f"--metrics-listen {bad}:" in r.stderr and "expected IPv4:PORT" in r.stderr, \
            (bad, r.stderr)
    # A port another process holds: egressd says so and does not start.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        addr = f"127.0.0.1:{taken.getsockname()[1]}"
        d = Daemon(str(tmp_path / "d"), env.dns.address, metrics_listen=addr)
        try:
            r = subprocess.run(d.argv(), capture_output=True, text=True, timeout=30)
        finally:
            d.cleanup()
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert f"--metrics-listen {addr}: cannot listen" in r.stderr, r.stderr


def test_a_sandbox_cannot_scrape_egressds_metrics_through_the_proxy(env):
    # A host-namespace sandbox whose policy allows everything, addresses included.
    with open(f"{env.daemon.policy_dir}/anything.yaml", "w") as f:
        f.write("name: anything\n")
    sb = env.sandbox("anything")
    # Its loopback is the host's, and another port there is reachable...
    assert sb.curl("-o", "/dev/null", "-w", "%{http_code}",
                   f"http://127.0.0.1:{env.http.port}/").stdout == "200"
    # ...but never egressd's metrics: other sandboxes' names and figures.
    r = sb.curl("-w", "\n%{http_code}", f"http://{METRICS_ADDR}/metrics")
    assert r.stdout.endswith("\n403"), r.stdout[-300:]
    assert "egressd_" not in r.stdout.replace("egressd itself", "")



KERNEL_DENIES = """
import socket
s = socket.socket()
try:
    s.connect(("127.0.0.2", 80))
    print("connected")
except OSError as e:
    print(e.errno)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    u.sendto(b"x", ("127.0.0.1", 9))
    print("sent")
except OSError as e:
    print(e.errno)
"""


def test_denies_are_counted_by_layer(env):
    with open(f"{env.daemon.policy_dir}/metrics-cidr.yaml", "w") as f:
        f.write('name: metrics-cidr\nallowed_hosts: ["allowed.test"]\ndeny_cidrs: ["127.0.0.2/32"]\n')
    sb = env.sandbox("metrics-cidr")
    before = value(parse(scrape()), "egressd_kernel_events_total")
    # Kernel: a connect into deny_cidrs and a UDP send that is not DNS (EPERM both).
    assert sb.python(KERNEL_DENIES).stdout.split() == ["1", "1"]
    # Proxy: a TLS connection whose SNI the policy denies is closed.
    assert sb.curl("--cacert", env.ca, f"https://denied.test:{env.https.port}/").returncode != 0
    # Kernel events reach the daemon within ~100 ms.
    assert wait_for(lambda: value(parse(scrape()), "egressd_kernel_events_total") >= before + 2)
    text = scrape()
    promtool_check(text)
    s = parse(text)
    me = {"sandbox": sb.instance, "policy": "metrics-cidr"}
    assert value(s, "egressd_connections_denied_total", layer="kernel", **me) == 1
    assert value(s, "egressd_connections_denied_total", layer="proxy", **me) == 1
    assert value(s, "egressd_udp_denied_total", **me) == 1
    assert value(s, "egressd_tls_connections_total", handling="passthrough", **me) == 0
    assert value(s, "egressd_connections_total", **me) == 1
    stats = sb.stats()
    assert stats["kernel"]["connect_denied"] == 1 and stats["proxy"]["connections_denied"] == 1
