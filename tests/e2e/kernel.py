"""Tests on Open vSwitch's kernel datapath, run where there is one.

A test parametrized with ``datapath="system"`` (:data:`DATAPATHS` marks it ``kernel``) needs
OVS's kernel module. Where this machine's kernel has it, such tests run here like any
other. Where it has not, the session hands every one of them, in one batch, to a pytest of
its own inside a VM that boots Debian's kernel (testbed/vm.py); that run streams each
test's reports back (:class:`ReportStream`, loaded there with ``-p``), and they are
reported here as if the tests had run here. The batch starts when the first kernel test is
due: ``pytest_collection_modifyitems`` puts them last, so one VM serves them all.
"""
import collections
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import pytest
from _pytest.reports import TestReport

from testbed import vm

KERNEL = pytest.mark.kernel


def param(*values):
    """A fixture parameter (``values``, one of them a datapath type, alone or in a tuple)
    named by its values and marked ``kernel`` if it is ``system``."""
    return pytest.param(values if len(values) > 1 else values[0], id="-".join(values),
                        marks=[KERNEL] if "system" in values else [])


DATAPATHS = [param("netdev"), param("system")]
REPORT = "sggw-report "  # a line of the guest's fd 3 that carries one serialized report
REPORTS_FD = 3
VM_TIMEOUT = 3600  # seconds for the guest's run as a whole: a hang guard
LOG_TAIL = 60  # lines of the VM's output quoted when it ends before a test's reports


def delegated(item):
    """Whether ``item`` must run in the VM: a kernel test, with no kernel datapath here."""
    return item.get_closest_marker("kernel") is not None and not _here()


_HERE = []


def _here():
    if not _HERE:
        _HERE.append(vm.kernel_datapath_here())
    return _HERE[0]


class GuestRun:
    """The VM's pytest run of ``nodeids``: reports by node id as they arrive."""

    def __init__(self, config, nodeids):
        self.config = config
        self.nodeids = nodeids
        self.reports = collections.defaultdict(list)
        self.done = set()  # node ids whose teardown report is in
        self.ended = False
        self.tail = collections.deque(maxlen=LOG_TAIL)
        self.changed = threading.Condition()
        self.vm = None
        self._args = None
        self._deadline = None

    def start(self):
        fd, self._args = tempfile.mkstemp(prefix="sggw-kernel-tests-", suffix=".txt")
        with os.fdopen(fd, "w") as handle:  # too many for the kernel's command line
            handle.write("\n".join(self.nodeids) + "\n")
        argv = ["sh", "-c", 'exec "$@" %d>&1 1>&2' % REPORTS_FD, "pytest",
                sys.executable, "-m", "pytest", "-p", __name__, "-p", "no:cacheprovider",
                "-p", "no:schemathesis", "-p", "no:hypothesispytest", "-p", "no:anyio",
                "-o", "addopts=", "-rA", "@" + self._args]
        env = {"SGGW_HOST_SPEED": "%.6f" % vm.speed(), "PYTHONDONTWRITEBYTECODE": "1"}
        if os.environ.get("SGGW_KEEP_BED"):
            env["SGGW_KEEP_BED"] = "1"
        self.vm = vm.KernelVm(argv, env).start()
        self._deadline = time.monotonic() + VM_TIMEOUT
        threading.Thread(target=self._read_reports, daemon=True).start()
        threading.Thread(target=self._read_log, daemon=True).start()
        return self

    def _read_reports(self):
        try:
            for raw in self.vm.stdout:
                line = raw.decode(errors="replace")
                if not line.startswith(REPORT):
                    self.tail.append(line.rstrip("\n"))
                    continue
                report = self.config.hook.pytest_report_from_serializable(
                    config=self.config, data=json.loads(line[len(REPORT):]))
                if report.skipped and isinstance(report.longrepr, list):
                    report.longrepr = tuple(report.longrepr)  # (path, line, reason): JSON
                with self.changed:
                    self.reports[report.nodeid].append(report)
                    if report.when == "teardown":
                        self.done.add(report.nodeid)
                    self.changed.notify_all()
        finally:
            with self.changed:
                self.ended = True
                self.changed.notify_all()

    def _read_log(self):
        """The guest pytest's terminal and the kernel's messages: the last lines are kept
        for a test the VM never finished; all of them go to SGGW_VM_LOG if set."""
        path = os.environ.get("SGGW_VM_LOG")
        with open(path or os.devnull, "a") as log:
            for raw in self.vm.stderr:
                line = raw.decode(errors="replace")
                self.tail.append(line.rstrip("\n"))
                log.write(line)
                log.flush()

    def wait(self, nodeid):
        """The reports of ``nodeid`` once it is done (or the VM ended without it; past
        VM_TIMEOUT it is powered off)."""
        with self.changed:
            if not self.changed.wait_for(lambda: nodeid in self.done or self.ended,
                                         max(0, self._deadline - time.monotonic())):
                self.tail.append("(powered off after %d s)" % VM_TIMEOUT)
                self.vm.stop()
            return list(self.reports.get(nodeid, []))

    def stop(self):
        """Let the guest's pytest finish and power off (it has sent every report by the
        time this session ends), else power it off."""
        if self.vm is not None:
            try:
                self.vm.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            self.vm.stop()
            self.vm = None
        if self._args:
            os.unlink(self._args)
            self._args = None


def missing_report(item, run):
    """A failed report for a test the VM never finished, with what it printed last."""
    why = "the kernel-datapath VM ended before this test finished"
    if run.vm is not None and run.vm.process.poll() is not None:
        why += " (exit status %s)" % run.vm.process.poll()
    return TestReport(item.nodeid, item.location, {k: 1 for k in item.keywords}, "failed",
                      "%s; its last lines:\n%s" % (why, "\n".join(run.tail)), "call")


class ReportStream:
    """Inside the VM: every report, serialized, one line each on fd 3."""

    def __init__(self, config):
        self.config = config
        self.out = os.fdopen(REPORTS_FD, "w", buffering=1)

    def pytest_runtest_logreport(self, report):
        data = self.config.hook.pytest_report_to_serializable(config=self.config,
                                                              report=report)
        self.out.write(REPORT + json.dumps(data) + "\n")


def pytest_configure(config):
    """Loaded with ``-p`` inside the VM: stream the reports, and size the bed's deadlines
    to how much slower than the host this guest is."""
    host = float(os.environ.get("SGGW_HOST_SPEED", 0))
    if host:
        os.environ["SGGW_BED_SLOWDOWN"] = "%.1f" % max(1.0, vm.speed() / host)
        config.pluginmanager.register(ReportStream(config), "sggw-report-stream")


def pytest_report_header(config):
    if os.environ.get("SGGW_HOST_SPEED"):
        return "kernel-datapath VM (%s): the bed's deadlines x%s" % (
            os.uname().release, os.environ["SGGW_BED_SLOWDOWN"])
    return None
