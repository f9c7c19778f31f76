"""Fixtures for end-to-end tests: real Open vSwitch, namespaces and controller (root only)."""
import os

import pytest

from testbed.signals import exit_cleanly_on_sigterm
from testbed.topology import TwoSites

BED_REVERSE_PATH = {"idle_timeout": 60, "fin_idle_timeout": 2, "max_flows": 1000}


def pytest_configure(config):
    exit_cleanly_on_sigterm()  # a killed run still tears its beds down


def pytest_collection_modifyitems(items):
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


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


@pytest.fixture(scope="session", autouse=True)
def _needs_root():
    if os.geteuid() != 0:
        pytest.fail("end-to-end tests need root (network namespaces, Open vSwitch)")


# (way of keeping reverse paths, tunnel between the sites): both ways over the veth that
# stands in for a tunnel, and learn() once more over a real OpenVPN TAP tunnel
BEDS = [("five_tuple", "veth"), ("conntrack", "veth"), ("five_tuple", "openvpn")]


@pytest.fixture(scope="module", params=BEDS, ids=["-".join(b) for b in BEDS])
def bed(request):
    """The two-site bed, shared by a test module, once per entry of BEDS; hosts have talked
    to their gateways."""
    match, tunnel = request.param
    with TwoSites(reverse_path=dict(BED_REVERSE_PATH, match=match), tunnel=tunnel) as two_sites:
        two_sites.warm_up()
        yield two_sites
