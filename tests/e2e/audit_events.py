"""Reading a sandbox's audit events through `egressctl events --json`."""
import json
import time


def events(env, instance):
    """Every event of the instance the daemon holds now."""
    out = env.daemon.ctl("events", "--json", "--instance", instance).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def wait_events(env, instance, count=1, timeout=5, predicate=None):
    """The instance's events (those matching predicate, if given) once there
    are at least `count`, or what there is after `timeout` seconds. Kernel
    events reach the daemon within ~100 ms (the ring is drained on a timer);
    polling the daemon is the signal."""
    deadline = time.monotonic() + timeout
    while True:
        got = [e for e in events(env, instance) if predicate is None or predicate(e)]
        if len(got) >= count or time.monotonic() > deadline:
            return got
        time.sleep(0.05)
