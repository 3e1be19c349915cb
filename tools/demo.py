#!/usr/bin/env python3
"""A self-contained egressd demo on loopback: starts egressd, an HTTP and an
HTTPS origin and a DNS server, puts commands in a cgroup under a policy and
shows what gets through. Everything it starts it also stops."""
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
os.environ.setdefault("EGRESSD_BUILD_DIR", os.path.join(HERE, "..", "build"))

from conftest import Daemon, Sandbox, write_policy  # noqa: E402
from fakedns import FakeDns  # noqa: E402
from origins import Origin, make_ca  # noqa: E402
from upstream_certs import make_server_cert  # noqa: E402


def show(title, result):
    print(f"\n$ {title}")
    out = (result.stdout or "").strip()
    err = (result.stderr or "").strip()
    if out:
        print("  " + out.replace("\n", "\n  "))
    if err:
        print("  (stderr) " + err.replace("\n", "\n  "))
    print(f"  -> exit {result.returncode}")


def main():
    if os.geteuid() != 0:
        sys.exit("demo: run as root (egressd loads BPF programs)")
    work = tempfile.mkdtemp(prefix="egressd-demo-")
    ca, crt, key = make_ca(work, ["api.example.test", "blocked.example.test", "other.example.test"])
    http = Origin("origin-http")
    https = Origin("origin-https", tls=(crt, key))
    dns = FakeDns({"api.example.test": ["127.0.0.1"], "blocked.example.test": ["127.0.0.1"],
                   "other.example.test": ["127.0.0.1"]})
    # The origins' CA, trusted by egressd for the upstreams of intercepted TLS.
    daemon = Daemon(work, dns.address, upstream_ca=ca)
    expired_crt, expired_key = make_server_cert(work, "expired", ca, name="api.example.test",
                                                days=(-10, -1))
    expired = Origin("origin-expired", tls=(expired_crt, expired_key))
    sandbox = intercepted = None
    sandboxes = []
    try:
        daemon.start()
        path = write_policy(daemon.policy_dir, "demo", allowed_hosts=["api.example.test", "*.github.com"],
                            denied_hosts=["blocked.example.test"], deny_cidrs=["127.0.0.99/32", "169.254.0.0/16"])
        print(f"policy {path}:\n  " + open(path).read().strip().replace("\n", "\n  "))
        sandbox = Sandbox(daemon, "demo", instance="demo-agent")
        print(f"\nsandbox cgroup {sandbox.path} attached to policy 'demo'")
        show(f"curl http://api.example.test:{http.port}/  (allowed, HTTP)",
             sandbox.curl(f"http://api.example.test:{http.port}/"))
        show(f"curl https://api.example.test:{https.port}/  (allowed, TLS passed through)",
             sandbox.curl("--cacert", ca, f"https://api.example.test:{https.port}/"))
        show(f"curl http://blocked.example.test:{http.port}/  (denied host: 403 from egressd)",
             sandbox.curl("-w", "\nHTTP status %{http_code}", f"http://blocked.example.test:{http.port}/"))
        show(f"curl https://blocked.example.test:{https.port}/  (denied SNI: TLS alert access denied)",
             sandbox.curl("--cacert", ca, f"https://blocked.example.test:{https.port}/"))
        show("python: connect to 127.0.0.99:80  (deny_cidrs: EPERM from the kernel at connect())",
             sandbox.python("import socket\ntry:\n socket.create_connection(('127.0.0.99', 80), timeout=5)\nexcept OSError as e: print(e)"))
        show("python: UDP to 127.0.0.1:443 (QUIC-style; refused in the kernel)",
             sandbox.python("import socket\ntry:\n socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', 443))\nexcept OSError as e: print(e)"))
        show("egressctl stats demo-agent", daemon.ctl("stats", "demo-agent"))
        time.sleep(0.3)  # kernel events reach the daemon within ~100 ms
        show("egressctl events --instance demo-agent  (the audit trail)",
             daemon.ctl("events", "--instance", "demo-agent"))

        # TLS interception: egressd terminates the sandbox's TLS with a CA of
        # the sandbox's own, sees each request, and verifies the upstream.
        path = os.path.join(daemon.policy_dir, "intercept.yaml")
        with open(path, "w") as f:
            f.write('name: intercept\nallowed_hosts: ["api.example.test"]\n'
                    'tls:\n  intercept: ["*.example.test"]\n')
        print(f"\npolicy {path}:\n  " + open(path).read().strip().replace("\n", "\n  "))
        intercepted = Sandbox(daemon, "intercept", instance="demo-intercept")
        sandbox_ca = os.path.join(work, "demo-intercept-ca.pem")
        with open(sandbox_ca, "w") as f:
            f.write(daemon.ctl("ca", "demo-intercept").stdout)
        show("egressctl ca demo-intercept | openssl x509 -noout -subject",
             subprocess.run(["openssl", "x509", "-noout", "-subject", "-in", sandbox_ca],
                            capture_output=True, text=True))
        show(f"curl --cacert sandbox-ca.pem -H 'X-Demo: seen' https://api.example.test:{https.port}/intercepted",
             intercepted.curl("--cacert", sandbox_ca, "-H", "X-Demo: seen",
                              f"https://api.example.test:{https.port}/intercepted"))
        seen = https.requests[-1]
        print(f"  the origin saw: {seen['method']} {seen['path']} Host={seen['host']} "
              f"X-Demo={seen['headers'].get('X-Demo')}")
        show(f"curl https://api.example.test:{expired.port}/  (the upstream's certificate expired: 502)",
             intercepted.curl("--cacert", sandbox_ca, "-w", "\nHTTP status %{http_code}",
                              f"https://api.example.test:{expired.port}/"))
        print(f"  requests the expired origin received: {len(expired.requests)}")

        # Handlers: a credential added outside the sandbox, then the network
        # opened for an install and locked afterwards, all at runtime.
        path = os.path.join(daemon.policy_dir, "job.yaml")
        with open(path, "w") as f:
            f.write('name: job\n'
                    'tls:\n  intercept: ["*.example.test"]\n'
                    'handlers:\n'
                    '  api-auth:\n'
                    '    - set_header: {name: Authorization, value: "Bearer {{secret:api_token}}"}\n'
                    '  allow-hosts:\n'
                    '    - allow_hosts: "{{params.hostnames}}"\n'
                    '  no-http:\n'
                    '    - deny: {status: 403, body: "network locked after setup"}\n'
                    'by_host:\n  "api.example.test": api-auth\n')
        print(f"\npolicy {path}:\n  " + open(path).read().strip().replace("\n", "\n  "))
        job = Sandbox(daemon, "job", instance="job-42")
        sandboxes.append(job)
        job_ca = os.path.join(work, "job-42-ca.pem")
        with open(job_ca, "w") as f:
            f.write(daemon.ctl("ca", "job-42").stdout)
        show("echo tok-demo-1234 | egressctl secret set api_token --instance job-42",
             subprocess.run([*daemon.ctl_argv(), "secret", "set", "api_token", "--instance", "job-42"],
                            input="tok-demo-1234\n", capture_output=True, text=True, timeout=30))
        show(f"curl https://api.example.test:{https.port}/repos  (the sandbox sends no credential)",
             job.curl("--cacert", job_ca, f"https://api.example.test:{https.port}/repos"))
        seen = https.requests[-1]
        print(f"  the origin saw: Authorization={seen['headers'].get('Authorization')}")
        show("egressctl handler set job-42 allow-hosts --params '{\"hostnames\":[\"api.example.test\"]}'",
             daemon.ctl("handler", "set", "job-42", "allow-hosts", "--params",
                        '{"hostnames":["api.example.test"]}'))
        show(f"curl https://other.example.test:{https.port}/  (not in hostnames: refused by its SNI)",
             job.curl("--cacert", job_ca, "-w", "\nHTTP status %{http_code}",
                      f"https://other.example.test:{https.port}/"))
        show("egressctl handler set job-42 no-http  (the install is done: lock it down)",
             daemon.ctl("handler", "set", "job-42", "no-http"))
        show(f"curl http://other.example.test:{http.port}/  (locked)",
             job.curl("-w", "\nHTTP status %{http_code}", f"http://other.example.test:{http.port}/"))
        show("egressctl handler list job-42", daemon.ctl("handler", "list", "job-42"))

        # egressctl run: one command, one sandbox; DNS answered by policy.
        lookup = ("import socket, sys\nsys.path.insert(0, %r)\nfrom fakedns import build_query\n"
                  "for name in sys.argv[1:]:\n"
                  " s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5)\n"
                  " s.sendto(build_query(7, name), ('127.0.0.1', 53))\n"
                  " print(name, 'NXDOMAIN' if s.recv(512)[3] & 15 == 3 else 'answered')"
                  % os.path.join(HERE, "..", "tests", "e2e"))
        show("egressctl run --policy demo -- python3 lookup.py api.example.test exfil-data.attacker.test",
             daemon.run("--policy", "demo", "--netns", "host", "--instance", "demo-run", "--",
                        "python3", "-c", lookup, "api.example.test", "exfil-data.attacker.test"))

        # Learning mode: run once in audit mode, then ask for a policy.
        write_policy(daemon.policy_dir, "learn", mode="audit", allowed_hosts=["api.example.test"])
        show(f"egressctl run --policy learn -- curl http://blocked.example.test:{http.port}/  "
             "(audit mode: let through, recorded)",
             daemon.run("--policy", "learn", "--netns", "host", "--instance", "demo-learn", "--",
                        "curl", "-sS", "--resolve", f"blocked.example.test:{http.port}:127.0.0.1",
                        f"http://blocked.example.test:{http.port}/"))
        show("egressctl events --instance demo-learn",
             daemon.ctl("events", "--instance", "demo-learn"))
        show("egressctl policy suggest --instance demo-learn",
             daemon.ctl("policy", "suggest", "--instance", "demo-learn"))
    finally:
        for sb in (sandbox, intercepted, *sandboxes):
            if sb:
                sb.cleanup()
        daemon.cleanup()
        http.close()
        https.close()
        expired.close()
        dns.close()
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
