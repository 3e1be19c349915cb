"""Secrets (issue 10, section 4): `egressctl secret set|rm|list` against a
real daemon and its --secrets-dir. Values come from stdin only, are stored
root-only, and never appear in a listing, an error, the daemon's log or the
audit file; a file written by another tool is picked up within a second, and
one readable by others is refused with the fix."""
import json
import os
import pty
import select
import signal
import stat
import subprocess
import time
import uuid

import pytest

from conftest import EGRESSCTL

# Every value this module stores: none may appear in any output (last test).
VALUES = []
OUTPUTS = []


def new_value():
    value = f"sekret-{uuid.uuid4().hex}"
    VALUES.append(value)
    return value


def secret(daemon, *args, stdin=None):
    """`egressctl secret ARGS` (no check); its output is kept for the final grep."""
    r = subprocess.run([EGRESSCTL, "--socket", daemon.socket, "secret", *args], input=stdin,
                       capture_output=True, text=True, timeout=30)
    OUTPUTS.append(r.stdout + r.stderr)
    return r


def set_secret(daemon, name, value, *args):
    r = secret(daemon, "set", name, *args, stdin=value + "\n")  # as `echo "$TOKEN" |` sends it
    assert r.returncode == 0, r.stderr
    return r


def listing(daemon, *args):
    r = secret(daemon, "list", "--json", *args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def entry(reply, name, instance=None):
    found = [s for s in reply["secrets"] if s["name"] == name and s.get("instance") == instance]
    assert len(found) <= 1, reply
    return found[0] if found else None


def wait_for(predicate, timeout=3):
    """Polls a listing (the daemon re-reads its dir every 300 ms; the listing is the signal)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_set_reads_stdin_stores_root_only_and_lists_without_the_value(env):
    d = env.daemon
    value = new_value()
    set_secret(d, "gh-token", value)
    path = os.path.join(d.secrets_dir, "gh-token")
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0
    assert stat.S_IMODE(os.stat(d.secrets_dir).st_mode) == 0o700  # created by egressd
    with open(path) as f:
        assert f.read() == value + "\n"  # one newline: `echo` sent one, stripped, stored again

    # Listed at once (set refreshes before it returns), as JSON and as a table.
    reply = listing(d)
    row = entry(reply, "gh-token")
    assert row is not None, reply
    assert row["scope"] == "shared" and row["usable"] is True and "problem" not in row, row
    assert abs(row["changed"] - time.time()) < 60, row
    assert set(row) == {"name", "scope", "changed", "usable"}, row
    assert value not in json.dumps(reply)
    table = secret(d, "list")
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].split() == ["NAME", "SCOPE", "CHANGED", "USABLE/PROBLEM"]
    line = next(l for l in table.stdout.splitlines() if l.startswith("gh-token "))
    assert " shared " in line and line.endswith(" yes"), line
    assert value not in table.stdout + table.stderr

    status = json.loads(d.ctl("status").stdout)
    assert status["secrets_dir"] == d.secrets_dir


def test_instance_scope_and_rm(env):
    d = env.daemon
    shared, own = new_value(), new_value()
    set_secret(d, "api-key", shared)
    # The instance need not be attached: operators provision before a run.
    set_secret(d, "api-key", own, "--instance", "job-1")
    path = os.path.join(d.secrets_dir, "instances", "job-1", "api-key")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    with open(path) as f:
        assert f.read() == own + "\n"

    mine = listing(d, "--instance", "job-1")
    assert entry(mine, "api-key")["scope"] == "shared"
    assert entry(mine, "api-key", "job-1")["scope"] == "instance"
    other = listing(d, "--instance", "job-2")
    assert entry(other, "api-key") and not entry(other, "api-key", "job-1")
    table = secret(d, "list", "--instance", "job-1").stdout
    assert any(" instance job-1 " in l for l in table.splitlines()), table

    r = secret(d, "rm", "api-key", "--instance", "job-1")
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(path)
    assert entry(listing(d), "api-key", "job-1") is None
    again = secret(d, "rm", "api-key", "--instance", "job-1")
    assert again.returncode == 1
    assert 'secret api-key is not set for instance "job-1"' in again.stderr, again.stderr
    assert secret(d, "rm", "api-key").returncode == 0
    assert entry(listing(d), "api-key") is None


def test_a_file_readable_by_others_is_unusable_with_the_chmod_hint(env):
    d = env.daemon
    value = new_value()
    path = os.path.join(d.secrets_dir, "loose-token")
    # Another tool's file, written whole then renamed ("~": not a secret's name, ignored).
    fd = os.open(path + "~", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(fd, (value + "\n").encode())
    os.close(fd)
    os.chmod(path + "~", 0o644)
    os.rename(path + "~", path)
    assert wait_for(lambda: entry(listing(d), "loose-token") is not None), "not picked up"
    row = entry(listing(d), "loose-token")
    assert row["usable"] is False, row
    assert row["problem"] == (f"{path} is readable by group or others (mode 0644): chmod 600 it"), row
    table = secret(d, "list").stdout
    assert f"no: {path} is readable by group or others (mode 0644): chmod 600 it" in table, table
    # Logged once, with the name and path, never the value.
    assert d.wait_log(lambda l: "loose-token is unusable" in l and "chmod 600" in l), d.log[-20:]
    time.sleep(1)  # a few refreshes: the warning is not repeated
    assert sum("loose-token is unusable" in l for l in d.log) == 1, d.log[-20:]
    assert json.loads(d.ctl("status").stdout)["secrets"]["unusable"] >= 1

    os.chmod(path, 0o600)  # the fix, picked up within a second
    assert wait_for(lambda: entry(listing(d), "loose-token")["usable"], timeout=1.5)
    os.unlink(path)
    assert wait_for(lambda: entry(listing(d), "loose-token") is None, timeout=1.5)


def test_a_change_by_another_tool_is_picked_up_within_a_second(env):
    d = env.daemon
    set_secret(d, "rotated", new_value())
    path = os.path.join(d.secrets_dir, "rotated")
    # Replaced the way a secret manager's agent would (write, rename), with a
    # known modification time the listing reports.
    tmp = path + ".new"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, (new_value() + "\n").encode())
    os.close(fd)
    os.utime(tmp, (1_000_000_000, 1_000_000_000))
    os.rename(tmp, path)
    start = time.monotonic()
    assert wait_for(lambda: entry(listing(d), "rotated")["changed"] == 1_000_000_000, timeout=2)
    assert time.monotonic() - start < 1.0


def test_a_value_typed_on_a_terminal_is_not_echoed(env):
    d = env.daemon
    value = new_value()
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execv(EGRESSCTL, [EGRESSCTL, "--socket", d.socket, "secret", "set", "typed"])
        finally:
            os._exit(127)
    out = b""
    try:
        deadline = time.monotonic() + 10
        written = False
        while time.monotonic() < deadline:
            if not written and b"not shown" in out:  # the prompt: echo is off by now
                os.write(fd, (value + "\n").encode())
                written = True
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # EIO: egressctl exited
                    break
                if not chunk:
                    break
                out += chunk
        if time.monotonic() >= deadline:
            os.kill(pid, signal.SIGKILL)  # hung: fail below, never wait forever
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    text = out.decode(errors="replace")
    OUTPUTS.append(text)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, text
    assert "set secret typed" in text and value not in text, text
    with open(os.path.join(d.secrets_dir, "typed")) as f:
        assert f.read() == value + "\n"


def test_a_value_in_argv_is_refused(env):
    d = env.daemon
    value = new_value()
    r = secret(d, "set", "argv-token", value)
    assert r.returncode == 2, r
    assert "stdin" in r.stderr and value not in r.stderr + r.stdout, r.stderr
    r = secret(d, "set", "argv-token", "-" + value)  # looks like an option: not echoed either
    assert r.returncode == 2 and value not in r.stderr + r.stdout, r.stderr
    assert entry(listing(d), "argv-token") is None
    assert not os.path.exists(os.path.join(d.secrets_dir, "argv-token"))


def test_bad_values_names_and_instances_are_refused(env):
    d = env.daemon
    r = secret(d, "set", "empty", stdin="")
    assert r.returncode == 2 and "no value on stdin" in r.stderr, r.stderr
    big = new_value() + "x" * (64 * 1024)
    r = secret(d, "set", "big", stdin=big)
    assert r.returncode == 2 and "longer than 65536 bytes" in r.stderr, r.stderr
    assert big not in r.stderr
    r = secret(d, "set", "a/b", stdin=new_value())
    assert r.returncode == 1 and 'secret name "a/b"' in r.stderr, r.stderr
    r = secret(d, "set", "x", "--instance", "../escape", stdin=new_value())
    assert r.returncode == 1 and "no '/' allowed" in r.stderr, r.stderr
    r = secret(d, "set", "instances", stdin=new_value())
    assert r.returncode == 1 and "taken by the per-instance secrets directory" in r.stderr
    assert secret(d, "bogus").returncode == 2
    assert secret(d, "rm").returncode == 2
    assert secret(d, "set", "x", "--json", stdin="v").returncode == 2
    assert not os.path.exists(os.path.join(d.secrets_dir, "escape"))
    # The biggest value allowed goes through.
    biggest = new_value()
    biggest += "y" * (64 * 1024 - len(biggest))
    set_secret(d, "biggest", biggest)
    assert entry(listing(d), "biggest")["usable"] is True


def test_no_value_in_the_log_the_audit_file_or_any_cli_output(env):
    """Runs last in the module: every value set above is nowhere."""
    d = env.daemon
    assert VALUES and OUTPUTS
    audit = os.path.join(d.state_dir, "audit.jsonl")
    texts = {"daemon log": "\n".join(d.history), "CLI outputs": "\n".join(OUTPUTS)}
    if os.path.exists(audit):
        with open(audit) as f:
            texts["audit file"] = f.read()
    for where, text in texts.items():
        for value in VALUES:
            assert value[:40] not in text, f"a secret value is in the {where}"
    # The log did record the operations, by name.
    assert any("secrets: gh-token set" in l for l in d.history)
