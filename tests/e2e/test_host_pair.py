"""``match: host_pair`` on the real switch: one learned reverse path per host pair."""
import pytest

from tests.e2e.kernel import DATAPATHS
from testbed.topology import TwoSites


@pytest.fixture(scope="module", params=DATAPATHS)
def bed(request):
    with TwoSites(reverse_path={"match": "host_pair"}, datapath=request.param) as two_sites:
        two_sites.warm_up()
        yield two_sites


def test_host_pair_mode_learns_one_flow_per_host_pair(bed):
    host, server = bed["hostA"], bed["serverB"]
    for address in (server.ipv4, server.ipv6):
        assert host.ping(address, count=2) == 2
        bed.exchange("tcp", address)
        bed.exchange("udp", address)
        bed.exchange("tcp", address, port=5004)
    learned = bed.flows("a", 20)
    # four exchanges per family, one learned flow per family's host pair, no port match
    assert len(learned) == 2, learned
    pairs = {(f.fields.get("nw_src") or f.fields["ipv6_src"],
              f.fields.get("nw_dst") or f.fields["ipv6_dst"]) for f in learned}
    assert pairs == {(server.ipv4, host.ipv4), (server.ipv6, host.ipv6)}
    assert not any("tp_src" in f.fields or "nw_proto" in f.fields for f in learned)
    assert sum(bed.controller.packet_ins(bed.dp_name(s)) for s in "ab") == 0


@pytest.mark.userspace_only("restarts on the kernel datapath: test_core's")
def test_after_a_controller_restart_health_is_ok(bed):
    bed.controller.stop()
    bed.controller.start()
    bed.controller.wait_programmed()
    assert bed.controller.health()["status"] == "ok", bed.controller.health()
