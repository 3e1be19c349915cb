"""Malformed control requests and a corrupt state.json against a real daemon:
what the fuzz targets (fuzz_control_request, fuzz_state_file) check on the
parsers alone, checked here through the socket and at restart."""
import glob
import json
import os
import socket

import pytest

from conftest import Daemon

CORPUS = os.path.join(os.path.dirname(__file__), "..", "fuzz", "corpus", "fuzz_control_request")


def send(daemon, payload):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    try:
        s.connect(daemon.socket)
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)  # a line without "\n" is complete at EOF
        return json.loads(s.makefile().readline())
    finally:
        s.close()


@pytest.mark.parametrize("payload", [
    b'{"cmd":5}\n',            # crashed the daemon: logged through json::value("cmd", "?")
    b'{"cmd":["status"]}\n',
    b'{"cmd":null,"cgroup":1}\n',
    b'{"cmd":"events","limit":-1}\n',
    b'{"cmd":"events","after_seq":1.5}\n',
    b'{"cmd":"attach","cgroup":"/x","policy":"p","transient":"yes"}\n',
    b'{"cmd":"status","instance":"\xff"}\n',
    b"[" * 100000 + b"\n",
], ids=["cmd-number", "cmd-list", "cmd-null", "limit-negative", "after_seq-fraction",
        "transient-string", "invalid-utf8", "deep-nesting"])
def test_malformed_request_is_refused_and_the_daemon_lives_on(env, payload):
    reply = send(env.daemon, payload)
    assert reply["ok"] is False and reply["error"], reply
    assert env.daemon.proc.poll() is None, "egressd died:\n" + "\n".join(env.daemon.log[-20:])
    assert env.daemon.status()["api"]["errors"] >= 1


def test_the_fuzz_corpus_never_stops_the_daemon(env):
    files = sorted(glob.glob(os.path.join(CORPUS, "*")))
    assert len(files) >= 20
    for path in files:
        with open(path, "rb") as f:
            payload = f.read()
        if b'"cmd":"attach"' in payload or b'"cmd":"detach"' in payload or b"policy_reload" in payload:
            continue  # real commands: test_control.py covers what they do
        reply = send(env.daemon, payload)
        assert "ok" in reply, path
        assert env.daemon.proc.poll() is None, f"egressd died on {path}"
    assert env.daemon.status()["sandboxes"] is not None


def test_corrupt_state_file_is_refused_naming_the_field(env, tmp_path):
    daemon = Daemon(str(tmp_path), env.dns.address)
    try:
        os.makedirs(daemon.state_dir)
        with open(os.path.join(daemon.state_dir, "state.json"), "w") as f:
            json.dump({"version": 2, "next_policy_set_id": 1, "sandboxes": [
                {"id": 1, "cgroup": "/sys/fs/cgroup/egressd-test-none", "cgroup_id": 1,
                 "instance": "x", "policy_kind": "name", "policy": "p", "policy_set_id": 1,
                 "proxy_port": 70000}]}, f)
        try:
            daemon.start(timeout=20)
        except RuntimeError:
            pass  # it exits; the old reader started it with port 70000 read as 4464
        daemon.proc.wait(timeout=10)
        daemon._reader.join(timeout=10)
        assert not any("egressd ready" in line for line in daemon.log)
        assert any("state.json is corrupt: sandboxes[0].proxy_port: must be an integer from 0 to 65535"
                   in line for line in daemon.log), "\n".join(daemon.log[-20:])
    finally:
        daemon.cleanup()
