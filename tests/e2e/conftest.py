"""Fixtures for end-to-end tests: real Open vSwitch, namespaces and controller (root only).

Tests run on OVS's userspace datapath; those parametrized with ``datapath`` ``system``
(tests/e2e/kernel.py) also on the kernel's, in a VM where this machine's kernel has no
OVS module. A test marked ``userspace_only`` is not run on the kernel datapath.
"""
import os

import pytest

from tests.e2e.kernel import GuestRun, delegated, missing_report, param
from testbed.ovs import PrivateOvs
from testbed.topology import TwoSites

BED_REVERSE_PATH = {"idle_timeout": 60, "fin_idle_timeout": 2, "max_flows": 1000}
GUEST_RUN = pytest.StashKey()


def pytest_collection_modifyitems(config, items):
    soak = "slow" in (config.getoption("markexpr") or "")
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
        if "slow" in item.keywords and not soak:
            item.add_marker(pytest.mark.skip(reason="slow: run it with -m slow"))
    kernel = [i for i in items if i.get_closest_marker("kernel")]
    unwanted = [i for i in kernel if i.get_closest_marker("userspace_only")]
    if unwanted:
        config.hook.pytest_deselected(items=unwanted)
    # the kernel datapath's tests last: where they run in a VM, one VM runs them all
    away = [i for i in kernel if i not in unwanted and delegated(i)]
    items[:] = [i for i in items if i not in unwanted and i not in away] + away


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    """A kernel-datapath test with no kernel datapath here: its reports come from the VM."""
    if not delegated(item):
        return None
    run = item.config.stash.get(GUEST_RUN, None)
    if run is None:
        nodeids = [i.nodeid for i in item.session.items if delegated(i)]
        run = item.config.stash[GUEST_RUN] = GuestRun(item.config, nodeids).start()
    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    reports = run.wait(item.nodeid)
    if not reports or reports[-1].when != "teardown":
        reports.append(missing_report(item, run))
    for report in reports:
        item.ihook.pytest_runtest_logreport(report=report)
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


def pytest_sessionfinish(session):
    run = session.config.stash.get(GUEST_RUN, None)
    if run is not None:
        run.stop()


@pytest.fixture(scope="session", autouse=True)
def _needs_root():
    if os.geteuid() != 0:
        pytest.fail("end-to-end tests need root (network namespaces, Open vSwitch)")


# (way of keeping reverse paths, tunnel between the sites, datapath): both ways over the
# veth that stands in for a tunnel, and learn() once more over a real OpenVPN TAP tunnel; on
# the kernel datapath, conntrack (the kernel's nf_conntrack) and learn() over OpenVPN (a TAP
# is a real netdev there). host_pair has its bed in test_host_pair.py.
BEDS = [param("five_tuple", "veth", "netdev"), param("conntrack", "veth", "netdev"),
        param("five_tuple", "openvpn", "netdev"),
        param("conntrack", "veth", "system"), param("five_tuple", "openvpn", "system")]


@pytest.fixture(scope="module", params=BEDS)
def bed(request):
    """The two-site bed, shared by a test module, once per entry of BEDS; hosts have talked
    to their gateways."""
    match, tunnel, datapath = request.param
    with TwoSites(reverse_path=dict(BED_REVERSE_PATH, match=match), tunnel=tunnel,
                  datapath=datapath) as two_sites:
        two_sites.warm_up()
        yield two_sites


@pytest.fixture
def ovs(request, tmp_path):
    """A private Open vSwitch of the test's own, with no bridge yet; its bridges' datapath
    is the userspace one, or the test's (``@pytest.mark.parametrize("ovs", DATAPATHS,
    indirect=True)``)."""
    private = PrivateOvs(str(tmp_path / "ovs"), getattr(request, "param", "netdev"))
    try:
        yield private.start()
    finally:
        private.stop()
