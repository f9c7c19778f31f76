"""Let a SIGTERM (a CI timeout, ``kill PID``) unwind like Ctrl-C, so every ``finally`` and
context manager runs and the bed is torn down instead of left behind."""
import signal
import sys


def exit_cleanly_on_sigterm():
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
