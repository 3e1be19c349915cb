"""`egressctl run` gives the command a PID namespace of its own: nothing
outside (the daemon above all) can be seen or signalled from inside, even as
root; a small init (PID 1) passes signals on to the command, reaps orphans
and hands the command's status back to egressctl."""
import signal
import subprocess

from bounded import read_line, wait_pid

LOOK_AROUND = """
import os, sys
daemon = int(sys.argv[1])
try:
    os.kill(daemon, 0)
    print("daemon-signalable")
except ProcessLookupError:
    print("daemon-ESRCH")
except PermissionError:
    print("daemon-EPERM")
print("pids", *sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
print("me", os.getpid(), os.getppid())
"""

ORPHAN = """
import os, time
pid_r, pid_w = os.pipe()
go_r, go_w = os.pipe()
child = os.fork()
if child == 0:
    grandchild = os.fork()
    if grandchild == 0:
        os.read(go_r, 1)  # exits once its parent is gone: an orphan, reparented to PID 1
        os._exit(0)
    os.write(pid_w, str(grandchild).encode().rjust(8))
    os._exit(0)
grandchild = int(os.read(pid_r, 8))
os.waitpid(child, 0)
os.write(go_w, b"x")
deadline = time.monotonic() + 5
state = "?"
while time.monotonic() < deadline:
    try:
        with open(f"/proc/{grandchild}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        print("reaped")
        break
    time.sleep(0.02)
else:
    print("left", state)
"""


def test_daemon_is_out_of_sight_and_reach(env):
    daemon_pid = env.daemon.proc.pid
    r = env.daemon.run("--policy", "open", "--", "/usr/bin/python3", "-c", LOOK_AROUND, str(daemon_pid))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "daemon-ESRCH", r.stdout  # root, and still no such process
    # Only init (1) and the command (2) exist in its /proc.
    assert lines[1] == "pids 1 2", r.stdout
    assert lines[2] == "me 2 1", r.stdout


def test_orphans_are_reaped(env):
    r = env.daemon.run("--policy", "open", "--", "/usr/bin/python3", "-c", ORPHAN)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "reaped\n"


def test_signals_reach_the_command_through_init(env):
    # Sent to egressctl: forwarded to init, then to the command.
    p = env.daemon.popen_run("--policy", "open", "--", "sh", "-c", "echo ready; exec sleep 100",
                             stdout=subprocess.PIPE, text=True)
    try:
        assert read_line(p.stdout, 20) == "ready\n"
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=20) == 128 + signal.SIGTERM
    finally:
        p.kill()
        p.wait()
    # Sent to init from inside: passed on to the command as well.
    r = env.daemon.run("--policy", "open", "--", "sh", "-c", "kill -USR1 1; sleep 10; echo survived")
    assert r.returncode == 128 + signal.SIGUSR1, (r.returncode, r.stdout)
    # A signal the command cannot catch still reads as 128+N.
    r = env.daemon.run("--policy", "open", "--", "sh", "-c", "kill -KILL $$")
    assert r.returncode == 128 + signal.SIGKILL


def test_ctrl_c_at_the_terminal_reaches_the_command(env):
    import os
    import pty
    import select
    import time
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(env.daemon_egressctl, [env.daemon_egressctl, "--socket", env.daemon.socket, "run",
                                        "--policy", "open", "--", "sh", "-c", "echo ready; exec sleep 100"])
    out = b""
    status = None
    try:
        deadline = time.monotonic() + 20
        while b"ready" not in out and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.5)[0]:
                out += os.read(fd, 1024)
        assert b"ready" in out, out
        os.write(fd, b"\x03")  # the terminal sends SIGINT to its foreground process group
        pidfd = os.pidfd_open(pid)  # readable once egressctl has exited
        try:
            if select.select([pidfd], [], [], 20)[0]:
                status = wait_pid(pid)
        finally:
            os.close(pidfd)
    finally:
        if status is None:
            os.kill(pid, signal.SIGKILL)
            wait_pid(pid)
        os.close(fd)
    assert status is not None, "egressctl did not exit after Ctrl-C"
    assert os.waitstatus_to_exitcode(status) == 128 + signal.SIGINT
