"""Waits that cannot hang and cleanups that cannot skip a step: the two
building blocks every end-to-end fixture and test uses."""
import queue
import threading


class WaitTimeout(AssertionError):
    """A bounded wait ran out: the test fails with what it was waiting for."""


def read_line(stream, timeout=10, what="a line"):
    """stream.readline(), but at most `timeout` seconds.

    The read happens on a helper thread (a text stream's buffer makes select()
    on its fd unreliable); on timeout the thread is abandoned, and ends when
    the test's cleanup closes the process or the stream."""
    result = queue.Queue(maxsize=1)

    def reader():
        try:
            result.put(("line", stream.readline()))
        except Exception as e:  # closed under us: report it to the waiter
            result.put(("error", e))

    threading.Thread(target=reader, daemon=True).start()
    try:
        kind, value = result.get(timeout=timeout)
    except queue.Empty:
        raise WaitTimeout(f"no {what} within {timeout} s") from None
    if kind == "error":
        raise value
    return value


def run_each(steps):
    """Runs every (description, callable) step even when earlier ones fail;
    raises one error naming every step that failed, after all have run."""
    failures = []
    for description, step in steps:
        try:
            step()
        except Exception as e:  # noqa: BLE001 - collected and re-raised below
            failures.append(f"{description}: {type(e).__name__}: {e}")
    if failures:
        raise AssertionError("cleanup steps failed:\n  " + "\n  ".join(failures))


def wait_pid(pid, timeout=20):
    """os.waitpid(pid, 0) for at most `timeout` seconds; then the child is
    killed, reaped, and the wait fails. Returns the raw wait status."""
    import os
    import signal
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.05)  # no pidfd wait in the stdlib here; polling is the signal
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise WaitTimeout(f"process {pid} did not exit within {timeout} s")
