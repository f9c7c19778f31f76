"""Real faults for the change path: a full file system, a state file that cannot be
replaced, a stalled switch. Each is a context manager that undoes itself.

Nothing here is simulated: the controller meets the kernel's own ENOSPC, EBUSY and EROFS,
and an ovs-vswitchd that really stops answering (SIGSTOP)."""
import contextlib
import errno
import os
import signal

from testbed.proc import run


@contextlib.contextmanager
def tmpfs(path, size="1m"):
    """A small tmpfs mounted at ``path`` (created if missing)."""
    os.makedirs(path, exist_ok=True)
    run("mount", "-t", "tmpfs", "-o", "size=%s,mode=0755" % size, "sggw-test", path)
    try:
        yield path
    finally:
        run("umount", "-l", path, check=False)


@contextlib.contextmanager
def full(directory):
    """``directory``'s file system filled up: writing a new file there fails (ENOSPC)."""
    filler = os.path.join(directory, ".filler")
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 20, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        yield
    finally:
        os.unlink(filler)


@contextlib.contextmanager
def bind_file(source, target):
    """File ``source`` bind-mounted over file ``target``, as ``docker run -v
    ./state.json:/var/lib/sggw/state.json`` does: ``target`` is a mount point, so nothing
    can be renamed over it (EBUSY)."""
    run("mount", "--bind", source, target)
    try:
        yield
    finally:
        run("umount", target, check=False)


@contextlib.contextmanager
def read_only_file(path):
    """``path`` bind-mounted read-only over itself: it can be neither renamed over (EBUSY)
    nor written into (EROFS), like a read-only single-file volume."""
    run("mount", "--bind", path, path)
    try:
        run("mount", "-o", "remount,bind,ro", path)
        yield
    finally:
        run("umount", path, check=False)


@contextlib.contextmanager
def stalled(pid):
    """Process ``pid`` stopped (SIGSTOP) until the block ends (SIGCONT)."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)
