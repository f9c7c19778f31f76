"""Fixtures for end-to-end tests: real Open vSwitch, namespaces and controller (root only)."""
import os

import pytest

from testbed.ovs import PrivateOvs
from testbed.topology import TwoSites

BED_REVERSE_PATH = {"idle_timeout": 60, "fin_idle_timeout": 2, "max_flows": 1000}


def pytest_collection_modifyitems(config, items):
    soak = "slow" in (config.getoption("markexpr") or "")
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
        if "slow" in item.keywords and not soak:
            item.add_marker(pytest.mark.skip(reason="slow: run it with -m slow"))


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


@pytest.fixture
def ovs(tmp_path):
    """A private Open vSwitch of the test's own, with no bridge yet."""
    private = PrivateOvs(str(tmp_path / "ovs"))
    try:
        yield private.start()
    finally:
        private.stop()
