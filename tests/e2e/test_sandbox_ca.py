"""A CA per sandbox (issue 9, section 2): created at attach and `run`, served
by `egressctl ca` (the certificate, never the key), kept across a policy
switch and a daemon restart, root-only in the state dir, wiped at detach."""
import json
import os
import stat
import subprocess
import uuid

import pytest

from bounded import read_line
from conftest import CGROUP2, Daemon, Sandbox


def ca_pem(daemon, instance):
    r = daemon.ctl("ca", instance)
    assert r.stdout.startswith("-----BEGIN CERTIFICATE-----\n"), r.stdout
    assert r.stdout.rstrip().endswith("-----END CERTIFICATE-----")
    assert "PRIVATE" not in r.stdout
    return r.stdout


def openssl(*args, stdin):
    r = subprocess.run(["openssl", *args], input=stdin, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


def ca_dir(daemon, instance):
    return os.path.join(daemon.state_dir, "ca", instance)


def test_ca_is_an_ecdsa_p256_ca_that_signs_only_leaves(env):
    sb = env.sandbox("open")
    pem = ca_pem(env.daemon, sb.instance)
    text = openssl("x509", "-noout", "-text", stdin=pem)
    assert "CA:TRUE, pathlen:0" in text, text
    assert "Certificate Sign, CRL Sign" in text, text
    assert "ASN1 OID: prime256v1" in text and "NIST CURVE: P-256" in text, text
    assert "Signature Algorithm: ecdsa-with-SHA256" in text, text
    assert "X509v3 Subject Key Identifier" in text, text
    subject = openssl("x509", "-noout", "-subject", stdin=pem)
    assert f"CN = egressd sandbox CA ({sb.instance})" in subject and "O = egressd" in subject, subject
    # The API gives the same certificate, for orchestrators.
    r = json.loads(env.daemon.ctl("ca", sb.instance, "--json").stdout)
    assert r == {"instance": sb.instance, "certificate": pem}


def test_two_sandboxes_get_different_cas(env):
    a, b = env.sandbox("open"), env.sandbox("open")
    pem_a, pem_b = ca_pem(env.daemon, a.instance), ca_pem(env.daemon, b.instance)
    assert pem_a != pem_b
    key_a = openssl("x509", "-noout", "-pubkey", stdin=pem_a)
    key_b = openssl("x509", "-noout", "-pubkey", stdin=pem_b)
    assert key_a != key_b
    # Each signs only itself: neither verifies under the other.
    with open(os.path.join(env.daemon.workdir, "ca-a.pem"), "w") as f:
        f.write(pem_a)
    r = subprocess.run(["openssl", "verify", "-CAfile", f.name], input=pem_b, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode != 0, r.stdout


def test_ca_key_is_root_only_in_the_state_dir(env):
    sb = env.sandbox("open")
    pem = ca_pem(env.daemon, sb.instance)
    d = ca_dir(env.daemon, sb.instance)
    for path, mode in ((os.path.dirname(d), 0o700), (d, 0o700), (os.path.join(d, "ca.key"), 0o600)):
        st = os.lstat(path)
        assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == mode, (path, oct(st.st_mode))
    with open(os.path.join(d, "ca.crt")) as f:
        assert f.read() == pem
    with open(os.path.join(d, "ca.key")) as f:
        key = f.read()
    assert key.startswith("-----BEGIN PRIVATE KEY-----")
    # The key is the certificate's.
    assert (openssl("pkey", "-pubout", stdin=key) == openssl("x509", "-noout", "-pubkey", stdin=pem))
    # A process of the sandbox that is not root cannot read it.
    r = sb.run("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "cat",
               os.path.join(d, "ca.key"))
    assert r.returncode != 0 and "Permission denied" in r.stderr and "PRIVATE" not in r.stdout, r


def test_policy_switch_keeps_the_ca(env):
    sb = env.sandbox("open")
    before = ca_pem(env.daemon, sb.instance)
    r = sb.attach("strict")
    assert "switched" in r.stdout, r.stdout
    assert ca_pem(env.daemon, sb.instance) == before
    # A switch that renames the instance keeps the CA too; its files move.
    old = sb.instance
    sb.instance = f"renamed-{uuid.uuid4().hex[:8]}"
    sb.attach("open")
    assert ca_pem(env.daemon, sb.instance) == before
    assert not os.path.exists(ca_dir(env.daemon, old))
    with open(os.path.join(ca_dir(env.daemon, sb.instance), "ca.crt")) as f:
        assert f.read() == before


def test_detach_wipes_the_ca(env):
    sb = env.sandbox("open")
    old = ca_pem(env.daemon, sb.instance)
    d = ca_dir(env.daemon, sb.instance)
    assert os.path.exists(os.path.join(d, "ca.key"))
    env.daemon.ctl("detach", sb.path)
    assert not os.path.exists(d), os.listdir(d)
    r = env.daemon.ctl("ca", sb.instance, check=False)
    assert r.returncode == 1 and r.stdout == ""
    assert f'no sandbox "{sb.instance}" is attached' in r.stderr, r.stderr
    # Attached again under the same name: a new CA, not the old one.
    sb.attach("open")
    assert ca_pem(env.daemon, sb.instance) != old


def test_ca_of_an_unknown_instance_fails(env):
    r = env.daemon.ctl("ca", "no-such-instance", check=False)
    assert r.returncode == 1 and r.stdout == ""
    assert 'no sandbox "no-such-instance" is attached' in r.stderr, r.stderr
    r = env.daemon.ctl("ca", check=False)
    assert r.returncode == 2 and "usage: egressctl ca INSTANCE" in r.stderr, r.stderr


@pytest.mark.parametrize("name", ["..", "../escape", "a/b"])
def test_instance_names_that_are_not_a_path_component_are_refused(env, name):
    path = os.path.join(CGROUP2, f"egressd-test-{uuid.uuid4().hex[:8]}")
    os.mkdir(path)
    try:
        r = env.daemon.ctl("attach", path, "--policy", "open", "--instance", name, check=False)
        assert r.returncode == 1, r.stdout
        assert "instance name" in r.stderr or "cannot be an instance name" in r.stderr, r.stderr
        assert name not in env.daemon.instances()
        assert not os.path.exists(os.path.join(env.daemon.state_dir, "escape"))
    finally:
        env.daemon.ctl("detach", path, check=False)
        os.rmdir(path)


def test_run_gets_a_ca_the_command_cannot_read_and_loses_it_at_exit(env):
    instance = f"run-ca-{uuid.uuid4().hex[:8]}"
    key_path = os.path.join(ca_dir(env.daemon, instance), "ca.key")
    # Inside: the state dir is an empty tmpfs, and nothing of the key is in
    # the environment.
    script = ('echo ready; read x; cat "$0" 2>&1; ls -A "$1"; env | grep -c "PRIVATE KEY"; '
              'echo done')
    p = env.daemon.popen_run("--policy", "open", "--instance", instance, "--", "sh", "-c", script,
                             key_path, env.daemon.state_dir, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert read_line(p.stdout, 20) == "ready\n"
        pem = ca_pem(env.daemon, instance)
        with open(key_path) as f:
            assert "PRIVATE KEY" in f.read()  # there, outside
        out, _ = p.communicate("\n", timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert "No such file or directory" in out and "PRIVATE" not in out, out
    assert out.endswith("0\ndone\n"), out
    assert pem not in out
    assert p.returncode == 0
    assert not os.path.exists(os.path.dirname(key_path))  # wiped with the sandbox
    assert env.daemon.ctl("ca", instance, check=False).returncode == 1


@pytest.fixture
def own_daemon(env, tmp_path):
    """A daemon of the test's own, to restart."""
    d = Daemon(str(tmp_path), env.dns.address)
    sandboxes = []
    try:
        d.start()
        with open(os.path.join(d.policy_dir, "open.yaml"), "w") as f:
            f.write("name: open\ndenied_hosts: [\"denied.test\"]\n")
        d.sandbox = lambda: sandboxes.append(Sandbox(d, "open")) or sandboxes[-1]
        yield d
    finally:
        for sb in sandboxes:
            sb.cleanup()
        d.cleanup()


def test_restart_serves_the_same_ca(env, own_daemon):
    d = own_daemon
    a, b = d.sandbox(), d.sandbox()
    before = {sb.instance: ca_pem(d, sb.instance) for sb in (a, b)}
    with open(os.path.join(ca_dir(d, a.instance), "ca.key")) as f:
        key = f.read()
    # A CA no sandbox uses (a crash between saving it and saving the state):
    # the restarted daemon removes it.
    stale = os.path.join(d.state_dir, "ca", "stale-instance")
    os.makedirs(stale, mode=0o700)
    with open(os.path.join(stale, "ca.crt"), "w") as f:
        f.write(before[a.instance])
    d.stop()
    d.start()
    assert {sb.instance: ca_pem(d, sb.instance) for sb in (a, b)} == before
    with open(os.path.join(ca_dir(d, a.instance), "ca.key")) as f:
        assert f.read() == key
    assert not os.path.exists(stale)


def test_restart_with_a_damaged_ca_says_so_and_serves_none(env, own_daemon):
    d = own_daemon
    sb = d.sandbox()
    ca_pem(d, sb.instance)
    d.stop()
    with open(os.path.join(ca_dir(d, sb.instance), "ca.key"), "w") as f:
        f.write("garbage")
    d.start()
    assert d.wait_log(lambda l: f"sandbox {sb.instance}: its CA cannot be loaded" in l), \
        "\n".join(d.log[-10:])
    r = d.ctl("ca", sb.instance, check=False)
    assert r.returncode == 1 and f'sandbox "{sb.instance}" has no CA' in r.stderr, r.stderr
    # The sandbox itself is still enforced and served.
    assert sb.instance in d.instances()
