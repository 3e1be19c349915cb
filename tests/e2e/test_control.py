"""The control plane: attach, switch, detach, reload, bad input, restart."""
import json
import os
import socket
import subprocess

from conftest import EGRESSCTL, read_line, write_policy


def test_policy_check_reports_lines(env, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nallowed_hosts: [\"ok.test\"]\ndeny_cidrs: [\"10.0.0.0/33\"]\nallowed_host: []\n")
    r = subprocess.run([EGRESSCTL, "policy", "check", str(bad)], capture_output=True, text=True)
    assert r.returncode == 1
    assert f"{bad}:3:" in r.stderr
    assert f"{bad}:4:" in r.stderr
    good = tmp_path / "good.yaml"
    good.write_text("name: good\nallowed_hosts: [\"*.example.com\"]\n")
    r = subprocess.run([EGRESSCTL, "policy", "check", str(good)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "ok" in r.stdout


def test_bad_policy_file_changes_nothing(env, tmp_path):
    sb = env.sandbox("open")
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: broken\ndeny_cidrs: [\"not-a-cidr\"]\n")
    r = sb.attach(str(bad), check=False)
    assert r.returncode != 0
    assert "broken.yaml:2" in r.stderr
    lst = json.loads(env.daemon.ctl("list", "--json").stdout)
    mine = [s for s in lst["sandboxes"] if s["instance"] == sb.instance]
    assert mine[0]["policy"] == "open"
    assert sb.curl(f"http://allowed.test:{env.http.port}/").returncode == 0


def test_bad_api_requests_are_answered(env):
    for payload in [b"not json\n", b"[1,2]\n", b"{\"cmd\":\"nope\"}\n", b"{\"cmd\":\"attach\"}\n",
                    b"{\"cmd\":\"attach\",\"cgroup\":5}\n", b"{\"cmd\":\"detach\",\"cgroup\":\"/nonexistent\"}\n"]:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(env.daemon.socket)
        s.sendall(payload)
        reply = json.loads(s.makefile().readline())
        s.close()
        assert reply["ok"] is False and reply["error"], payload
    assert env.daemon.status()["api"]["errors"] >= 6
    assert oct(os.stat(env.daemon.socket).st_mode & 0o777) == "0o600"


def test_policy_switch_applies_to_next_request_on_open_connection(env):
    write_policy(env.daemon.policy_dir, "allow-a", allowed_hosts=["allowed.test"])
    write_policy(env.daemon.policy_dir, "deny-a", denied_hosts=["allowed.test"])
    sb = env.sandbox("allow-a")
    code = f"""
import socket, sys
s = socket.create_connection(("127.0.0.1", {env.http.port}), timeout=10)
f = s.makefile("rb")
def req(path):
    s.sendall(("GET " + path + " HTTP/1.1\\r\\nHost: allowed.test\\r\\n\\r\\n").encode())
    status = f.readline().decode()
    length = 0
    while True:
        line = f.readline()
        if line in (b"\\r\\n", b""): break
        if line.lower().startswith(b"content-length:"): length = int(line.split(b":")[1])
    f.read(length)
    return status.strip()
print(req("/before"))
sys.stdout.flush()
sys.stdin.readline()   # the test switches the policy now
print(req("/after"))
"""
    p = sb.popen("/usr/bin/python3", "-c", code, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert read_line(p.stdout).strip() == "HTTP/1.1 200 OK"
        r = sb.attach("deny-a")
        assert "switched" in r.stdout
        p.stdin.write("\n")
        p.stdin.flush()
        assert read_line(p.stdout).strip() == "HTTP/1.1 403 Forbidden"
    finally:
        p.kill()
        p.wait(timeout=10)
    # and a new connection follows the new policy too
    r = sb.curl("-i", f"http://allowed.test:{env.http.port}/")
    assert r.stdout.startswith("HTTP/1.1 403")


def test_policy_reload(env):
    path = write_policy(env.daemon.policy_dir, "reloadable", allowed_hosts=["allowed.test"])
    sb = env.sandbox("reloadable")
    assert sb.curl(f"http://other.test:{env.http.port}/", "-o", "/dev/null", "-w", "%{http_code}").stdout == "403"
    write_policy(env.daemon.policy_dir, "reloadable", allowed_hosts=["allowed.test", "other.test"])
    env.daemon.ctl("policy", "reload")
    assert sb.curl(f"http://other.test:{env.http.port}/", "-o", "/dev/null", "-w", "%{http_code}").stdout == "200"
    # a broken file: reload refused, nothing changes
    with open(path, "w") as f:
        f.write("name: reloadable\nallowed_hosts: 7\n")
    r = env.daemon.ctl("policy", "reload", check=False)
    assert r.returncode != 0 and "reloadable.yaml:2" in r.stderr
    assert sb.curl(f"http://other.test:{env.http.port}/", "-o", "/dev/null", "-w", "%{http_code}").stdout == "200"
    write_policy(env.daemon.policy_dir, "reloadable", allowed_hosts=["allowed.test"])


def test_detach_removes_enforcement(env):
    sb = env.sandbox("open")
    lst = json.loads(env.daemon.ctl("list", "--json").stdout)
    sid = [s["id"] for s in lst["sandboxes"] if s["instance"] == sb.instance][0]
    assert os.path.exists(os.path.join(env.daemon.bpffs, "links", str(sid), "connect4"))
    env.daemon.ctl("detach", sb.path)
    lst = json.loads(env.daemon.ctl("list", "--json").stdout)
    assert sb.instance not in [s["instance"] for s in lst["sandboxes"]]
    assert not os.path.exists(os.path.join(env.daemon.bpffs, "links", str(sid)))
    # UDP to a non-DNS port is no longer refused by egressd
    r = sb.python("import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', 9)); print('sent')")
    assert r.stdout.strip() == "sent"


def test_requests_from_inside_a_sandbox_are_refused(env):
    # An attached sandbox in the host's mount namespace, as root, can open the
    # socket file; the daemon still refuses it (the peer's cgroup decides).
    sb = env.sandbox("open")
    r = sb.run(EGRESSCTL, "--socket", env.daemon.socket, "detach", sb.instance)
    assert r.returncode == 1
    assert f'requests from inside sandbox "{sb.instance}" are refused' in r.stderr
    assert sb.instance in env.daemon.instances()  # still attached
    # A process in a child cgroup of the sandbox is inside it too.
    child = os.path.join(sb.path, "child")
    os.mkdir(child)
    try:
        r = subprocess.run(["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', child, EGRESSCTL,
                            "--socket", env.daemon.socket, "status"], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 1 and "are refused" in r.stderr
    finally:
        os.rmdir(child)
