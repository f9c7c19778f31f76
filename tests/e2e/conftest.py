"""Fixtures for end-to-end tests: real Open vSwitch, namespaces and controller (root only)."""
import os

import pytest

from testbed.topology import TwoSites

BED_REVERSE_PATH = {"idle_timeout": 60, "fin_idle_timeout": 2, "max_flows": 1000}


def pytest_collection_modifyitems(items):
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session", autouse=True)
def _needs_root():
    if os.geteuid() != 0:
        pytest.fail("end-to-end tests need root (network namespaces, Open vSwitch)")


@pytest.fixture(scope="module", params=["five_tuple", "conntrack"])
def bed(request):
    """The two-site bed, shared by a test module, once per way of keeping reverse paths
    (learn() per 5-tuple, OVS conntrack); hosts have talked to their gateways."""
    with TwoSites(reverse_path=dict(BED_REVERSE_PATH, match=request.param)) as two_sites:
        two_sites.warm_up()
        yield two_sites
