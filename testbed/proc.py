"""Run commands and stop processes by PID."""
import os
import signal
import socket
import subprocess
import time


class CommandError(RuntimeError):
    pass


def slowdown():
    """How many times longer the bed's work takes here than on the machine its deadlines were
    sized on: 1, or what testbed/vm.py measured in an emulated VM (SGGW_BED_SLOWDOWN).
    Deadlines (hang guards) are multiplied by it; waits still end as soon as their
    condition holds, and nothing that is timed by the network or by OVS is stretched."""
    return float(os.environ.get("SGGW_BED_SLOWDOWN", "1"))


def run(*cmd, ns=None, check=True, timeout=30, input=None, env=None):
    """Run ``cmd`` (in network namespace ``ns`` if given); return its stdout."""
    argv = (["ip", "netns", "exec", ns] if ns else []) + [str(c) for c in cmd]
    timeout = timeout * slowdown()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input,
                              env=env, check=False)
    except subprocess.TimeoutExpired as exc:
        raise CommandError("%s: timed out after %ss" % (" ".join(argv), timeout)) from exc
    if check and done.returncode != 0:
        raise CommandError("%s: exit %d: %s" % (" ".join(argv), done.returncode,
                                                (done.stderr or done.stdout).strip()))
    return done.stdout


def popen(*cmd, ns=None, **kwargs):
    argv = (["ip", "netns", "exec", ns] if ns else []) + [str(c) for c in cmd]
    return subprocess.Popen(argv, **kwargs)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child counts as gone
    try:
        with open("/proc/%d/stat" % pid) as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def wait_gone(pid, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return not alive(pid)


def stop_pid(pid, timeout=5.0, sig=signal.SIGTERM):
    """Stop process ``pid``: ``sig``, then SIGKILL if it is still there after ``timeout``."""
    if pid is None or not alive(pid):
        return
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    if not wait_gone(pid, timeout):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        wait_gone(pid, timeout)


def stop_child(proc, sig=signal.SIGTERM):
    """Stop a child process (a ``Popen``) by its PID and reap it."""
    stop_pid(proc.pid, sig=sig)
    proc.wait(timeout=10)


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout, interval=0.1, what="condition"):
    """Poll ``predicate`` until it returns something truthy; raise TimeoutError otherwise
    (after ``timeout`` seconds, times the bed's slowdown())."""
    timeout = timeout * slowdown()
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(interval)
