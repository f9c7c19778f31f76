"""For every test with a ``bed`` (a :class:`testbed.topology.TwoSites`)."""
import pytest

from testbed.signals import exit_cleanly_on_sigterm


def pytest_configure(config):
    exit_cleanly_on_sigterm()  # a killed run still tears its beds down


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test's report carries the end of the controller's log."""
    outcome = yield
    report = outcome.get_result()
    bed_ = item.funcargs.get("bed") if hasattr(item, "funcargs") else None
    if report.failed and bed_ is not None and bed_.controller is not None:
        try:
            log = bed_.controller.log()
        except OSError:
            return
        report.sections.append(("controller log (last 60 lines)",
                                "\n".join(log.splitlines()[-60:])))
