"""What the handler and credential tests share: the sandbox agent's driver,
an egressctl that keeps every output it printed (for the test that greps
them for secret values), secrets set through `egressctl secret set`, and
policy files written as YAML text."""
import json
import os
import subprocess
import tempfile

from bounded import WaitTimeout, read_line
from conftest import EGRESSCTL, PYTHON

AGENT = os.path.join(os.path.dirname(__file__), "handler_agent.py")


class Cli:
    """egressctl against one daemon; every stdout and stderr is kept in `outputs`."""

    def __init__(self, daemon):
        self.daemon = daemon
        self.outputs = []

    def __call__(self, *args, input=None, check=True, timeout=30):
        r = subprocess.run([EGRESSCTL, "--socket", self.daemon.socket, *args], input=input,
                           capture_output=True, text=True, timeout=timeout)
        self.outputs += [r.stdout, r.stderr]
        if check and r.returncode != 0:
            raise AssertionError(f"egressctl {' '.join(args)} failed ({r.returncode}): "
                                 f"{r.stderr}{r.stdout}")
        return r

    def json(self, *args):
        return json.loads(self(*args).stdout)

    def keep(self, r):
        """Keeps the outputs of a CompletedProcess run elsewhere (egressctl run)."""
        self.outputs += [r.stdout or "", r.stderr or ""]
        return r

    def secret_set(self, name, value, instance=None):
        # The value goes on stdin, never in argv.
        args = ["secret", "set", name] + (["--instance", instance] if instance else [])
        return self(*args, input=value + "\n")

    def handler_list(self, instance):
        return self.json("handler", "list", instance, "--json")

    def events(self, instance):
        out = self("events", "--json", "--instance", instance).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]


class Agent:
    """handler_agent.py started by `argv_prefix` (a sandbox's shell, `egressctl run ... --`)."""

    def __init__(self, argv_prefix, args=()):
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([*argv_prefix, PYTHON, "-u", AGENT, *args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, text=True)
        try:
            line = read_line(self.proc.stdout, 30, "ready from the handler agent")
        except WaitTimeout:
            self.close()
            raise
        if json.loads(line or "{}").get("ready") is not True:
            self.close()
            raise RuntimeError(f"handler agent did not start: {line!r} {self.errors()}")

    def errors(self):
        self.stderr.seek(0)
        return self.stderr.read()

    def __call__(self, op, **kw):
        self.proc.stdin.write(json.dumps({"op": op, **kw}) + "\n")
        self.proc.stdin.flush()
        line = read_line(self.proc.stdout, 40, f"an answer to {op} {kw}")
        if not line:
            raise AssertionError(f"handler agent ended: {self.errors()}")
        return json.loads(line)

    def close(self):
        """Ends the agent; returns its exit status (egressctl's when it ran through run)."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            status = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            status = self.proc.wait(timeout=10)
        self.stderr.close()
        return status


def start_agent(env, sb):
    """The handler agent in sandbox `sb` (a conftest Sandbox); closed with the
    module's sandboxes, after them (their cleanup kills its process first)."""
    agent = Agent(sb._argv([]))
    closer = type("AgentCleanup", (), {})()
    closer.instance = f"agent of {sb.instance}"
    closer.cleanup = agent.close
    env.sandboxes.append(closer)
    return agent


def write_yaml(directory, name, text):
    """NAME.yaml holding `text` (which starts with `name: NAME`)."""
    path = os.path.join(directory, f"{name}.yaml")
    with open(path, "w") as f:
        f.write(text)
    return path


def sandbox_ca(env, instance, directory):
    """The sandbox CA (`egressctl ca`) in a file a client can trust."""
    pem = env.daemon.ctl("ca", instance).stdout
    assert "BEGIN CERTIFICATE" in pem
    path = os.path.join(directory, f"ca-{instance}.pem")
    with open(path, "w") as f:
        f.write(pem)
    return path
