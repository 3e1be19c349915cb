"""`egressctl run` trusts the sandbox CA when the policy intercepts TLS
(issue 9, section 5): a bundle of the host's roots plus the CA, read-only,
over every system bundle file present and in SSL_CERT_FILE & co; real clients
(curl, Python, openssl, git, Node) then reach an intercepted origin with no flags.
A policy without interception changes nothing."""
import json
import os
import shutil
import subprocess
import uuid

import pytest

from bounded import read_line
from conftest import in_ci, write_policy

TRUST_DIR = "/run/egressd-ca"
BUNDLE = f"{TRUST_DIR}/bundle.pem"
CA_ALONE = f"{TRUST_DIR}/ca.pem"
SYSTEM_BUNDLES = ["/etc/ssl/certs/ca-certificates.crt",
                  "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", "/etc/ssl/cert.pem"]
BUNDLE_VARIABLES = ["SSL_CERT_FILE", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "PIP_CERT",
                    "GIT_SSL_CAINFO", "AWS_CA_BUNDLE", "CARGO_HTTP_CAINFO"]
CA_VARIABLES = ["NODE_EXTRA_CA_CERTS", "DENO_CERT"]
PRESENT = [p for p in SYSTEM_BUNDLES if os.path.isfile(p)]


@pytest.fixture(scope="module")
def policies(env):
    d = env.daemon.policy_dir
    write_policy(d, "trust-intercept", allowed_hosts=["allowed.test"], tls='{intercept: ["*"]}')
    write_policy(d, "trust-none", allowed_hosts=["allowed.test"])
    return env


def host_roots():
    """What the bundle starts with: the first system bundle present, as the host has it."""
    if not PRESENT:
        return ""
    with open(PRESENT[0]) as f:
        roots = f.read()
    return roots if roots == "" or roots.endswith("\n") else roots + "\n"


# Run inside the sandbox: what it sees of the trust files and variables, and
# what it can do to them. It never writes a byte to a file it could open:
# on a tree without the mounts, these are the host's own bundles.
INSIDE = r"""
import errno, json, os, sys
paths = {paths!r}
def err(e):
    return errno.errorcode[e.errno]
mounts = {{}}
with open("/proc/self/mountinfo") as f:
    for line in f:
        fields = line.split()
        mounts[fields[4]] = fields[5].split(",")
out = {{"env": dict(os.environ), "files": {{}}, "open_write": {{}}, "rename": {{}}, "mounts": {{}}}}
for path in paths:
    out["mounts"][path] = mounts.get(path)
    try:
        with open(path) as f:
            out["files"][path] = f.read()
    except OSError as e:
        out["files"][path] = "error " + err(e)
    try:
        os.close(os.open(path, os.O_WRONLY))
        out["open_write"][path] = "opened"
    except OSError as e:
        out["open_write"][path] = err(e)
    if mounts.get(path) is not None:  # only a mount point: never rename a host file
        try:
            os.rename(path, path + ".moved")
            os.rename(path + ".moved", path)
            out["rename"][path] = "renamed"
        except OSError as e:
            out["rename"][path] = err(e)
out["create"] = None
if mounts.get({trust_dir!r}) is not None:  # only our own mount: never create a file on the host
    try:
        os.close(os.open({trust_dir!r} + "/new", os.O_WRONLY | os.O_CREAT | os.O_EXCL))
        out["create"] = "created"
    except OSError as e:
        out["create"] = err(e)
out["mounts"][{trust_dir!r}] = mounts.get({trust_dir!r})
out["listing"] = sorted(os.listdir({trust_dir!r})) if os.path.isdir({trust_dir!r}) else None
print(json.dumps(out), flush=True)
sys.stdin.readline()
"""


def look_inside(env, policy, *run_args):
    """Runs INSIDE in `egressctl run`; returns (what it saw, the CA as `egressctl
    ca` gives it, the CA key from the state dir, list --json's entry), the
    last three taken while the sandbox runs."""
    instance = f"trust-{uuid.uuid4().hex[:8]}"
    code = INSIDE.format(paths=PRESENT + [BUNDLE, CA_ALONE], trust_dir=TRUST_DIR)
    p = env.daemon.popen_run("--policy", policy, "--instance", instance, *run_args, "--",
                             "/usr/bin/python3", "-c", code, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = read_line(p.stdout, 30)
        assert line, p.stderr.read() if p.poll() is not None else "no output"
        seen = json.loads(line)
        ca = env.daemon.ctl("ca", instance).stdout
        with open(os.path.join(env.daemon.state_dir, "ca", instance, "ca.key")) as f:
            key = f.read()
        listed = env.daemon.instances()[instance]
    finally:
        out, err = p.communicate("\n", timeout=30)
    assert p.returncode == 0, err
    return seen, ca, key, listed


@pytest.mark.parametrize("user", [[], ["--user", "nobody"]], ids=["root", "nobody"])
@pytest.mark.parametrize("netns", ["new", "host"])
def test_the_bundle_is_the_host_roots_plus_the_ca_read_only_and_named_by_the_variables(
        policies, user, netns):
    env = policies
    seen, ca, key, listed = look_inside(env, "trust-intercept", "--netns", netns, *user)
    assert listed["intercept"] is True, listed
    bundle = host_roots() + ca
    assert ca.startswith("-----BEGIN CERTIFICATE-----") and ca in bundle
    # Every system bundle present is the bundle; the CA alone is next to it.
    for path in PRESENT + [BUNDLE]:
        assert seen["files"][path] == bundle, path
    assert seen["files"][CA_ALONE] == ca
    assert seen["listing"] == ["bundle.pem", "ca.pem"]
    for name in BUNDLE_VARIABLES:
        assert seen["env"].get(name) == BUNDLE, name
    for name in CA_VARIABLES:
        assert seen["env"].get(name) == CA_ALONE, name
    # Read-only mounts: not writable, not replaceable, nothing can be added,
    # whatever the user (root keeps CAP_DAC_OVERRIDE: only the mount stops it).
    assert "ro" in seen["mounts"][TRUST_DIR], seen["mounts"]
    for path in PRESENT:
        assert "ro" in seen["mounts"][path], (path, seen["mounts"][path])
        assert seen["rename"][path] in (("EBUSY",) if not user else ("EBUSY", "EACCES")), path
    for path in PRESENT + [BUNDLE, CA_ALONE]:
        expected = ("EROFS",) if not user else ("EROFS", "EACCES")
        assert seen["open_write"][path] in expected, (path, seen["open_write"])
    assert seen["create"] in (("EROFS",) if not user else ("EROFS", "EACCES")), seen["create"]
    # Only the certificate came in: no line of the CA key is anywhere the
    # command sees (its environment, the files made for it).
    assert key.startswith("-----BEGIN PRIVATE KEY-----")
    body = [l for l in key.splitlines() if l and not l.startswith("-----")]
    assert body
    visible = json.dumps(seen["env"]) + "".join(seen["files"].values())
    for piece in body + ["".join(body)]:
        assert piece not in visible
    assert "PRIVATE KEY" not in visible


def test_without_interception_nothing_is_mounted_or_set(policies):
    env = policies
    seen, _, _, listed = look_inside(env, "trust-none")
    assert listed["intercept"] is False, listed
    for path in PRESENT:
        with open(path) as f:
            assert seen["files"][path] == f.read(), path
        assert seen["mounts"][path] is None, path
    # No tmpfs (the host's mount point, if an earlier run made it, is empty).
    assert seen["mounts"][TRUST_DIR] is None and seen["listing"] in (None, [])
    assert seen["files"][BUNDLE] == "error ENOENT"
    for name in BUNDLE_VARIABLES + CA_VARIABLES:
        assert seen["env"].get(name) == os.environ.get(name), name


def run_client(env, policy, *command):
    """One client in `egressctl run --netns host` (the origin is on the host's
    loopback); returns the CompletedProcess and the instance."""
    instance = f"trust-{uuid.uuid4().hex[:8]}"
    r = env.daemon.run("--policy", policy, "--instance", instance, "--netns", "host", "--",
                       *command)
    return r, instance


def curl_argv(env, path):
    port = env.https.port
    return ["curl", "-sS", "-v", "--max-time", "10", "--noproxy", "*", "--resolve",
            f"allowed.test:{port}:127.0.0.1", f"https://allowed.test:{port}{path}"]


def test_curl_trusts_the_intercepting_ca_with_no_flags(policies):
    env = policies
    r, instance = run_client(env, "trust-intercept", *curl_argv(env, "/curl-trust"))
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"origin-https host=allowed.test:{env.https.port} path=/curl-trust\n"
    # egressd's leaf, signed by this sandbox's CA, is what curl verified.
    assert f"CN=egressd sandbox CA ({instance})" in r.stderr, r.stderr
    assert any(q["path"] == "/curl-trust" for q in env.https.requests)
    assert env.daemon.stats(instance)["proxy"]["tls_intercepted"] == 1


def test_python_and_openssl_trust_the_intercepting_ca_with_no_flags(policies):
    env = policies
    port = env.https.port
    # Python: urllib's default context (the default paths, SSL_CERT_FILE).
    py = ("import socket, urllib.request\n_g = socket.getaddrinfo\n"
          "socket.getaddrinfo = lambda h, *a, **k: _g('127.0.0.1' if h == 'allowed.test' else h, *a, **k)\n"
          f"print(urllib.request.urlopen('https://allowed.test:{port}/python-trust', timeout=10).read().decode(), end='')\n")
    r, _ = run_client(env, "trust-intercept", "/usr/bin/python3", "-c", py)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"origin-https host=allowed.test:{port} path=/python-trust\n"
    # openssl s_client with its default verify paths; a failed check is an error.
    request = "GET /openssl-trust HTTP/1.1\\r\\nHost: allowed.test\\r\\nConnection: close\\r\\n\\r\\n"
    r, _ = run_client(env, "trust-intercept", "sh", "-c",
                      f"printf '{request}' | openssl s_client -connect 127.0.0.1:{port} "
                      "-servername allowed.test -verify_return_error -verify_hostname allowed.test "
                      "-brief -ign_eof")
    assert r.returncode == 0, r.stderr
    assert "Verification: OK" in r.stderr, r.stderr
    assert "origin-https host=allowed.test path=/openssl-trust" in r.stdout, r.stdout
    paths = [q["path"] for q in env.https.requests]
    assert "/python-trust" in paths and "/openssl-trust" in paths


def need(tool):
    """git and node are not among conftest's TOOLS: missing, the test skips
    (under CI it fails, as for every other tool)."""
    if not shutil.which(tool):
        (pytest.fail if in_ci() else pytest.skip)(f"{tool} not installed (tools/install-deps.sh)")


def test_git_trusts_the_intercepting_ca_with_no_flags(policies):
    env = policies
    need("git")
    port = env.https.port
    # git (libcurl, GIT_SSL_CAINFO): the TLS is trusted and its smart-HTTP
    # request reaches the origin (which is no git server: git then gives up).
    r, _ = run_client(env, "trust-intercept", "git", "-c",
                      f"http.curloptResolve=allowed.test:{port}:127.0.0.1", "ls-remote",
                      f"https://allowed.test:{port}/repo.git")
    assert "SSL certificate problem" not in r.stderr, r.stderr
    assert any(q["path"] == "/repo.git/info/refs?service=git-upload-pack"
               for q in env.https.requests), r.stderr


def test_node_trusts_the_intercepting_ca_with_no_flags(policies):
    env = policies
    need("node")
    port = env.https.port
    # Node: its built-in store plus NODE_EXTRA_CA_CERTS (the CA alone).
    js = (f"require('https').get({{host: '127.0.0.1', servername: 'allowed.test', port: {port}, "
          f"path: '/node-trust', headers: {{Host: 'allowed.test:{port}'}}}}, r => {{ let b = ''; "
          "r.on('data', d => b += d); r.on('end', () => process.stdout.write(b)); })"
          ".on('error', e => { console.error(e.message); process.exit(1); });")
    r, _ = run_client(env, "trust-intercept", "node", "-e", js)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"origin-https host=allowed.test:{port} path=/node-trust\n"
    assert any(q["path"] == "/node-trust" for q in env.https.requests)


def test_without_interception_the_origins_own_ca_is_still_untrusted(policies):
    """Control: the same curl under a policy that does not intercept sees the
    origin's own certificate, from a CA nothing in the sandbox trusts."""
    env = policies
    before = len(env.https.requests)
    r, instance = run_client(env, "trust-none", *curl_argv(env, "/curl-none"))
    assert r.returncode == 60, (r.returncode, r.stderr)  # peer certificate cannot be verified
    assert "SSL certificate problem" in r.stderr and "egressd sandbox CA" not in r.stderr, r.stderr
    assert len(env.https.requests) == before
    assert env.daemon.stats(instance)["proxy"]["tls_passthrough"] == 1


def test_when_the_trust_cannot_be_set_up_the_command_never_runs(policies, tmp_path):
    env = policies
    marker = tmp_path / "ran"
    # The mount point must be a root-owned directory; make it not so for a moment.
    os.makedirs(TRUST_DIR, mode=0o755, exist_ok=True)
    os.chown(TRUST_DIR, 65534, -1)
    try:
        r = env.daemon.run("--policy", "trust-intercept", "--", "touch", str(marker))
    finally:
        os.chown(TRUST_DIR, 0, -1)
    assert r.returncode == 125, (r.returncode, r.stderr)
    assert r.stdout == ""
    assert "trusting the sandbox CA: /run/egressd-ca is not a root-owned directory" in r.stderr
    assert not marker.exists()
    # Nothing left behind: the sandbox was detached, its cgroup removed.
    assert not [i for i in env.daemon.instances() if i.startswith("run-")]
    root = env.daemon.cgroup_root
    assert not [n for n in os.listdir(root) if os.path.isdir(os.path.join(root, n))]
