"""``max_flows`` on the real switch: a flood of spoofed tuples cannot exhaust it."""
import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from testbed.inject import inject
from testbed.topology import TwoSites

MAX_FLOWS = 300
LEARNED_TABLES = (20, 21, 22, 23)  # reverse, mac, neigh, gateway


@pytest.fixture(scope="module", params=["five_tuple", "conntrack"])
def bed(request):
    with TwoSites(reverse_path={"max_flows": MAX_FLOWS, "match": request.param}) as two_sites:
        two_sites.warm_up()
        yield two_sites


def spoofed_flood(host, router, server, count):
    """UDP datagrams from ``count`` spoofed (source address, port) pairs, all captured."""
    return [Ether(src=host.mac, dst=router.mac)
            / IP(src="10.1.%d.%d" % (1 + i // 250, 1 + i % 250), dst=server.ipv4)
            / UDP(sport=20000 + i, dport=9) / b"spoof" for i in range(count)]


def test_a_spoofed_flood_leaves_the_learned_tables_at_the_bound(bed):
    host, router, server = bed["hostA"], bed["routerA"], bed["serverB"]
    assert host.ping(server.ipv4, count=1) == 1  # a path learned before the flood
    inject(host.ns, spoofed_flood(host, router, server, 5 * MAX_FLOWS))
    counts = {site: {table: len(bed.flows(site, table)) for table in LEARNED_TABLES}
              for site in "ab"}
    if bed.reverse_path["match"] == "conntrack":  # reverse paths are connections there
        for site in "ab":
            counts[site]["conntrack"] = bed.connections(site)
        assert counts["a"]["conntrack"] >= MAX_FLOWS - 10, counts  # the flood filled it
    else:
        assert counts["a"][20] >= MAX_FLOWS - 10, counts  # the flood filled the table
    for site, tables in counts.items():
        for table, count in tables.items():
            assert count <= MAX_FLOWS, (site, table, count)  # OVS refused the rest
    if bed.reverse_path["match"] != "conntrack":
        # the flood did not push out the path learned before it (the reply to the ping)
        assert [f for f in bed.flows("a", 20)
                if "icmp" in f.flags and f.fields.get("nw_src") == server.ipv4], counts
    # a legitimate flow still works, both ways (with conntrack full, replies are delivered
    # to the learned neighbour)
    assert host.ping(server.ipv4, count=3) == 3
    bed.exchange("tcp", server.ipv4)
    bed.exchange("udp", server.ipv4)
