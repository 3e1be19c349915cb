"""`egressctl run`: a command in a transient sandbox, its terminal, signals,
exit status, user, and the daemon cleaning up after a killed egressctl."""
import os
import pty
import select
import signal
import subprocess
import time

from conftest import CGROUP2
from bounded import read_line, wait_pid

def wait_for(predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def cgroups_left(env):
    root = env.daemon.cgroup_root
    return sorted(os.listdir(root)) if os.path.isdir(root) else []


def only_dirs(names, root):
    return [n for n in names if os.path.isdir(os.path.join(root, n))]


def test_exit_status_and_clean_stdout(env):
    r = env.daemon.run("--policy", "open", "--", "sh", "-c", "echo hello; echo oops >&2; exit 7")
    assert r.returncode == 7, r.stderr
    assert r.stdout == "hello\n"  # nothing of egressctl's own on stdout
    assert r.stderr == "oops\n"
    r = env.daemon.run("--policy", "open", "--", "sh", "-c", "kill -TERM $$")
    assert r.returncode == 128 + signal.SIGTERM
    r = env.daemon.run("--policy", "open", "--", "/nonexistent/command")
    assert r.returncode == 127
    assert "egressctl: cannot run the command: /nonexistent/command" in r.stderr
    # Nothing left behind: every transient cgroup was removed, every sandbox detached.
    assert only_dirs(cgroups_left(env), env.daemon.cgroup_root) == []
    assert not [i for i in env.daemon.instances() if i.startswith("run-")]


def test_setup_errors_are_clear_and_leave_nothing(env):
    r = env.daemon.run("--policy", "no-such-policy", "--", "true")
    assert r.returncode == 125
    assert r.stdout == ""
    assert r.stderr.startswith("egressctl: cannot attach the policy:")
    assert "no-such-policy" in r.stderr
    r = env.daemon.run("--policy", "open", "--netns", "sideways", "--", "true")
    assert r.returncode == 2 and "--netns must be" in r.stderr  # a usage error
    r = env.daemon.run("--policy", "open", "--user", "no-such-user-xyz", "--", "true")
    assert r.returncode == 125 and "no such user" in r.stderr
    assert only_dirs(cgroups_left(env), env.daemon.cgroup_root) == []


def test_instance_name_and_policy_from_the_start(env):
    p = env.daemon.popen_run("--policy", "open", "--instance", "run-named", "--", "sh", "-c",
                             "echo started; grep '^0::' /proc/self/cgroup; read x",
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert read_line(p.stdout, 20) == "started\n"
        # Seen from outside: the instance's cgroup under the daemon's root...
        # (the pid the command sees is of its own PID namespace: ask the cgroup)
        cgroup = os.path.join(env.daemon.cgroup_root, "run-named")
        with open(os.path.join(cgroup, "cgroup.procs")) as f:
            pid = int(f.read().split()[0])
        with open(f"/proc/{pid}/cgroup") as f:
            assert f"0::/{os.path.relpath(env.daemon.cgroup_root, CGROUP2)}/run-named\n" in f.read()
        # ... and from inside, a cgroup namespace rooted there.
        assert read_line(p.stdout, 20) == "0::/\n"
    finally:
        p.communicate("\n", timeout=20)
    assert p.returncode == 0
    # The command's very first connection is already decided by the policy.
    r = env.daemon.run("--policy", "open", "--netns", "host", "--", "curl", "-sS", "-o", "/dev/null",
                       "-w", "%{http_code}", "--max-time", "10", "--resolve",
                       f"denied.test:{env.http.port}:127.0.0.1", f"http://denied.test:{env.http.port}/")
    assert r.stdout == "403", r.stderr


def test_stdin_and_interactive_tty(env):
    r = env.daemon.run("--policy", "open", "--", "sh", "-c", "tr a-z A-Z", input="piped in\n")
    assert r.returncode == 0 and r.stdout == "PIPED IN\n"
    # A terminal: the command sees a tty on stdin and reads what is typed.
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(env.daemon_egressctl, [env.daemon_egressctl, "--socket", env.daemon.socket, "run",
                                        "--policy", "open", "--", "sh", "-c",
                                        "[ -t 0 ] && echo tty-yes; read line; echo got:$line"])
    out = b""
    try:
        deadline = time.monotonic() + 20
        sent = False
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(fd, 1024)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            if b"tty-yes" in out and not sent:
                os.write(fd, b"typed\n")
                sent = True
            if b"got:typed" in out:
                break
    finally:
        status = wait_pid(pid)
        os.close(fd)
    assert b"tty-yes" in out and b"got:typed" in out, out
    assert os.waitstatus_to_exitcode(status) == 0


def test_signals_are_forwarded(env):
    script = 'trap "echo caught-$1; exit 42" $1; echo ready; while :; do sleep 0.05; done'
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        name = signal.Signals(sig).name[3:]
        p = env.daemon.popen_run("--policy", "open", "--", "sh", "-c", script, "sh", name,
                                 stdout=subprocess.PIPE, text=True)
        try:
            assert read_line(p.stdout, 20) == "ready\n"
            p.send_signal(sig)
            assert p.wait(timeout=20) == 42
            assert p.stdout.read() == f"caught-{name}\n"
        finally:
            p.kill()
            p.wait()
    # Default disposition: the command dies of the signal, egressctl exits 128+N.
    p = env.daemon.popen_run("--policy", "open", "--", "sh", "-c", "echo ready; exec sleep 100",
                             stdout=subprocess.PIPE, text=True)
    try:
        assert read_line(p.stdout, 20) == "ready\n"
        p.send_signal(signal.SIGHUP)
        assert p.wait(timeout=20) == 128 + signal.SIGHUP
    finally:
        p.kill()
        p.wait()


def capability_bits(status_text, field):
    for line in status_text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1], 16)
    raise AssertionError(f"{field} not in /proc/self/status")


def test_user_capabilities_and_no_new_privs(env):
    cap_net_admin, cap_net_raw = 1 << 12, 1 << 13
    r = env.daemon.run("--policy", "open", "--user", "nobody", "--", "sh", "-c",
                       "id -u; id -g; cat /proc/self/status")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "65534"
    assert lines[1] == subprocess.run(["id", "-g", "nobody"], capture_output=True,
                                      text=True).stdout.strip()
    status = r.stdout
    assert capability_bits(status, "CapEff") == 0
    assert capability_bits(status, "CapBnd") & (cap_net_admin | cap_net_raw) == 0
    assert capability_bits(status, "NoNewPrivs") == 1
    # As root the command keeps root with a container's default capabilities:
    # no network administration, raw sockets, setns, mounts, BPF or ptrace.
    r = env.daemon.run("--policy", "open", "--", "cat", "/proc/self/status")
    assert capability_bits(r.stdout, "Uid") == 0
    kept = sum(1 << c for c in (0, 1, 3, 4, 5, 6, 7, 8, 10, 18, 27, 29, 31))
    for field in ("CapEff", "CapPrm", "CapBnd"):
        assert capability_bits(r.stdout, field) == kept, field
    assert capability_bits(r.stdout, "NoNewPrivs") == 1
    # No way into another network namespace: setns needs CAP_SYS_ADMIN, which it lacks.
    r = env.daemon.run("--policy", "open", "--", "nsenter", "--net=/proc/1/ns/net", "true")
    assert r.returncode == 1 and "Operation not permitted" in r.stderr, r.stderr
    # So a raw socket fails even for root inside.
    r = env.daemon.run("--policy", "open", "--", "python3", "-c",
                       "import socket\ntry:\n socket.socket(socket.AF_INET, socket.SOCK_RAW, 1)\n"
                       " print('raw-ok')\nexcept OSError as e: print('raw-refused', e.errno)")
    assert r.stdout.startswith("raw-refused"), r.stdout


def test_killed_egressctl_leaves_no_sandbox(env):
    p = env.daemon.popen_run("--policy", "open", "--instance", "run-orphan", "--", "sh", "-c",
                             "echo ready; exec sleep 1000", stdout=subprocess.PIPE, text=True)
    try:
        assert read_line(p.stdout, 20) == "ready\n"
        assert "run-orphan" in env.daemon.instances()
        cgroup = os.path.join(env.daemon.cgroup_root, "run-orphan")
        with open(os.path.join(cgroup, "cgroup.procs")) as f:
            sleeper = int(f.read().split()[0])
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=10)
        # The daemon notices (it checks owners every second) and removes all of it.
        assert wait_for(lambda: "run-orphan" not in env.daemon.instances(), timeout=10)
        assert not os.path.exists(cgroup)
        assert wait_for(lambda: not os.path.exists(f"/proc/{sleeper}"), timeout=5)
        assert env.daemon.wait_log(lambda l: "run-orphan: its owner" in l)
    finally:
        p.kill()
        p.wait()


def test_leftover_processes_are_killed_at_the_end(env):
    # The command exits, a background child of it does not: detach kills it.
    # (Found by its unique argument: the pid it has inside is of its own PID namespace.)
    marker = f"1000.{os.getpid()}{int(time.monotonic() * 1000) % 100000}"
    r = env.daemon.run("--policy", "open", "--instance", "run-bg", "--", "sh", "-c",
                       f"sleep {marker} & echo $!")
    assert r.returncode == 0

    def sleepers():
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        found.append(pid)
            except OSError:
                pass
        return found

    assert wait_for(lambda: not sleepers(), timeout=5)
    assert not os.path.exists(os.path.join(env.daemon.cgroup_root, "run-bg"))


def test_root_command_cannot_leave_or_reach_the_daemon(env):
    """Even as root (no --user): the cgroup tree is read-only, the control socket
    and the daemon's state dir are hidden, in a mount namespace of its own."""
    script = f"""
import os, socket
out = []
try:
    with open("{CGROUP2}/cgroup.procs", "w") as f:
        f.write(str(os.getpid()))
    out.append("left-cgroup")
except OSError as e:
    out.append(f"cgroup-{{e.errno}}")
try:
    s = socket.socket(socket.AF_UNIX)
    s.connect("{env.daemon.socket}")
    out.append("socket-reached")
except OSError as e:
    out.append("socket-refused")
out.append("state-" + ",".join(sorted(os.listdir("{env.daemon.state_dir}"))))
print(" ".join(out))
"""
    r = env.daemon.run("--policy", "open", "--", "/usr/bin/python3", "-c", script)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["cgroup-30", "socket-refused", "state-"]  # 30: EROFS
    # Outside, nothing changed: the state dir still has its files.
    assert "state.json" in os.listdir(env.daemon.state_dir)


def test_a_policy_file_is_followed_as_it_was_at_start(env, tmp_path):
    from conftest import write_policy
    from netns_helpers import Agent
    policy = write_policy(str(tmp_path), "mine", denied_hosts=["denied.test"])
    agent = Agent(env.daemon.run_prefix("--policy", policy, "--netns", "host", "--instance",
                                        "run-file"))
    try:
        assert agent.ask("http", "allowed.test", env.http.port, "127.0.0.1").startswith("200 ")
        # The file may belong to whoever runs in the sandbox: changing it changes nothing.
        write_policy(str(tmp_path), "mine", denied_hosts=["allowed.test"])
        env.daemon.ctl("policy", "reload")
        assert agent.ask("http", "allowed.test", env.http.port, "127.0.0.1").startswith("200 ")
        source = env.daemon.instances()["run-file"]["policy_source"]
        assert source.startswith("file " + os.path.join(env.daemon.state_dir, "run-policies"))
    finally:
        assert agent.close() == 0
    assert os.listdir(os.path.join(env.daemon.state_dir, "run-policies")) == []


def test_a_refused_run_with_a_policy_file_leaves_no_copy_of_it(env, tmp_path):
    # The copy is made before the later checks (here: the instance name is
    # taken); a refusal at any of them removes it.
    from conftest import write_policy
    policy = write_policy(str(tmp_path), "mine")
    taken = env.sandbox("open")
    snapshots = os.path.join(env.daemon.state_dir, "run-policies")
    before = set(os.listdir(snapshots)) if os.path.isdir(snapshots) else set()
    r = env.daemon.run("--policy", policy, "--instance", taken.instance, "--", "/bin/true")
    assert r.returncode == 125 and taken.instance in r.stderr, (r.returncode, r.stderr)
    after = set(os.listdir(snapshots)) if os.path.isdir(snapshots) else set()
    assert after == before, after - before  # the old tree: <cgroup id>.yaml left behind
