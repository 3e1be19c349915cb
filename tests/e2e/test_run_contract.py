"""What the README promises of `egressctl run` that no other module checks:
126 and 127, `--user` setting HOME/USER/LOGNAME with the uid and groups, and
the command's view of the host: egressd's policy dir, state dir and bpffs
empty, `/proc/sys` read-only, the control socket `/dev/null`."""
import os
import pwd
import subprocess


def test_a_file_that_is_not_executable_exits_126(env, tmp_path):
    script = tmp_path / "not-executable.sh"
    script.write_text("#!/bin/sh\necho ran\n")
    os.chmod(script, 0o644)
    r = env.daemon.run("--policy", "open", "--", str(script))
    assert r.returncode == 126, (r.returncode, r.stderr)
    assert r.stdout == ""  # it never ran
    assert r.stderr == f"egressctl: cannot run the command: {script}: Permission denied\n"
    # A directory is not something to run either.
    r = env.daemon.run("--policy", "open", "--", str(tmp_path))
    assert r.returncode == 126 and "Permission denied" in r.stderr, r.stderr


def test_a_command_not_on_path_exits_127(env):
    r = env.daemon.run("--policy", "open", "--", "egressd-test-no-such-command")
    assert r.returncode == 127, (r.returncode, r.stderr)
    assert r.stderr == ("egressctl: cannot run the command: egressd-test-no-such-command: "
                        "No such file or directory\n")
    # Found on PATH, the same way a shell finds it: not 127.
    assert env.daemon.run("--policy", "open", "--", "true").returncode == 0


def test_user_sets_home_user_logname_uid_and_groups(env):
    nobody = pwd.getpwnam("nobody")
    groups = subprocess.run(["id", "-G", "nobody"], capture_output=True, text=True,
                            timeout=10).stdout.split()
    r = env.daemon.run("--policy", "open", "--user", "nobody", "--", "/usr/bin/python3", "-c",
                       "import os\n"
                       "print(os.environ.get('HOME'), os.environ.get('USER'), "
                       "os.environ.get('LOGNAME'))\n"
                       "print(os.getuid(), os.geteuid(), os.getgid(), os.getegid())\n"
                       "print(' '.join(sorted(str(g) for g in os.getgroups())))\n")
    assert r.returncode == 0, r.stderr
    names, ids, got_groups = r.stdout.splitlines()
    assert names.split() == [nobody.pw_dir, "nobody", "nobody"]
    assert ids.split() == [str(nobody.pw_uid)] * 2 + [str(nobody.pw_gid)] * 2
    assert sorted(got_groups.split()) == sorted(groups)
    # Without --user the environment is the caller's, untouched.
    r = env.daemon.run("--policy", "open", "--", "sh", "-c", 'echo "$HOME $USER"',
                       env={**os.environ, "HOME": "/egressd-test-home", "USER": "caller"})
    assert r.stdout == "/egressd-test-home caller\n", r.stdout


HIDDEN = """
import errno, os, socket, stat
d = {daemon!r}
out = []
for name in ("policy_dir", "state_dir", "bpffs", "secrets_dir"):
    try:
        out.append(name + "=" + ",".join(sorted(os.listdir(d[name]))))
    except OSError as e:
        out.append(name + "=" + errno.errorcode[e.errno])
try:
    with open("/proc/sys/net/ipv4/ip_forward", "r+") as f:
        value = f.read()
        f.seek(0)
        f.write(value)  # the same value: harmless if it were allowed
        f.flush()
    out.append("procsys=written")
except OSError as e:
    out.append("procsys=" + errno.errorcode[e.errno])
try:
    st = os.stat(d["socket"])
    out.append("socket=" + ("devnull" if stat.S_ISCHR(st.st_mode) and
                            st.st_rdev == os.makedev(1, 3) else oct(st.st_mode)))
except OSError as e:
    out.append("socket=" + errno.errorcode[e.errno])
try:
    s = socket.socket(socket.AF_UNIX)
    s.connect(d["socket"])
    out.append("connect=reached")
except OSError as e:
    out.append("connect=" + errno.errorcode[e.errno])
print(" ".join(out))
"""


def test_the_daemons_files_are_hidden_and_proc_sys_is_read_only(env):
    d = env.daemon
    # A secret the command could otherwise read as root (the file is root's).
    with open(os.path.join(d.secrets_dir, "hidden_token"), "w") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write("never-inside\n")
    # Outside, none of them is empty: hiding them is what the test sees.
    for path in (d.policy_dir, d.state_dir, d.bpffs, d.secrets_dir):
        assert os.listdir(path), path
    code = HIDDEN.format(daemon={"policy_dir": d.policy_dir, "state_dir": d.state_dir,
                                 "bpffs": d.bpffs, "secrets_dir": d.secrets_dir,
                                 "socket": d.socket})
    expected = ["policy_dir=", "state_dir=", "bpffs=", "secrets_dir=", "procsys=EROFS",
                "socket=devnull", "connect=ECONNREFUSED"]
    for user in ([], ["--user", "nobody"]):
        for netns in ("new", "host"):
            r = d.run("--policy", "open", "--netns", netns, *user, "--", "/usr/bin/python3", "-c",
                      code)
            assert r.returncode == 0, (user, netns, r.stderr)
            got = r.stdout.split()
            if user:
                # nobody cannot reach the test's directories (under a
                # root-only tmp dir, /sys/fs/bpf is 0700), hidden or not;
                # nor open /proc/sys for writing.
                assert got[:2] == ["policy_dir=EACCES", "state_dir=EACCES"], got
                assert got[2] in ("bpffs=", "bpffs=EACCES"), got
                assert got[3] in ("secrets_dir=", "secrets_dir=EACCES"), got
                assert got[4] in ("procsys=EROFS", "procsys=EACCES"), got
                assert got[5:] == ["socket=EACCES", "connect=EACCES"], got
                continue
            assert got == expected, (user, netns, r.stdout)
    # Nothing of the daemon's changed outside.
    assert "state.json" in os.listdir(d.state_dir)
    assert d.status()["pid"] == d.proc.pid
