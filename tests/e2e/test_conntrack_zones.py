"""The conntrack mode's zone settings on a real Open vSwitch: bridges of one datapath type
share one Datapath row, so zones written at the same moment (sggw programs every switch as
it connects) must all keep their timeout policy. Losing one leaves its zone on OVS's
defaults: a closed TCP connection's reverse path then stays 30 s instead of fin_idle.
On both datapaths: the kernel's applies the policies through nfnetlink_cttimeout."""
import concurrent.futures
import secrets

import pytest

from app.ovs import cli as ovs_cli
from tests.e2e.kernel import DATAPATHS

BRIDGES = 6


@pytest.mark.parametrize("ovs", DATAPATHS, indirect=True)
def test_zones_written_at_once_all_keep_their_policy(ovs):
    prefix = "ct" + secrets.token_hex(2)
    for n in range(BRIDGES):
        ovs.add_bridge("%s%d" % (prefix, n), 0xc70 + n)

    def configure(n):
        ovs_cli.configure_conntrack(ovs.db, 0xc70 + n, 100 + n, 60, 2 + n, 1000)

    for _ in range(2):  # the second round rewrites nothing and loses nothing
        with concurrent.futures.ThreadPoolExecutor(BRIDGES) as pool:
            list(pool.map(configure, range(BRIDGES)))
        for n in range(BRIDGES):
            policy = ovs_cli.zone_policy(ovs.db, ovs.datapath, 100 + n)
            assert policy is not None, "zone %d lost its timeout policy" % (100 + n)
            assert (policy["tcp_established"], policy["tcp_time_wait"]) == (60, 2 + n)
    # one Datapath row for the type, every zone in it, no orphans left behind
    assert len(ovs.vsctl("--bare", "--columns=_uuid", "list", "Datapath").split()) == 1
    assert len(ovs.vsctl("--bare", "--columns=_uuid", "list", "CT_Zone").split()) == BRIDGES
