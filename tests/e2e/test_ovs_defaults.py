"""sggw on bridges exactly as the README sets them up, on OVS's defaults, and with no way
to change them: the config's OVSDB socket is not this switch's (the README's config names
none, and the default one belongs to the machine's own OVS). In-band control therefore
stays on, with its hidden flows ahead of table 0, and sggw says so.
"""
import shlex

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.inet6 import ICMPv6EchoReply, IPv6
from scapy.layers.l2 import Ether

from app.ovs import settings as ovs_settings
from testbed.proc import run, wait_for
from testbed.sniff import Sniffer
from testbed.topology import TwoSites

NO_OVSDB = "unix:/nonexistent/sggw-test/db.sock"


@pytest.fixture(scope="module")
def bed():
    with TwoSites(extra_config={"ovsdb": NO_OVSDB}) as two_sites:
        yield two_sites


def hidden_flow(bed, site, flow):
    """The first rule ``ofproto/trace`` shows ``flow`` hitting on the site's bridge."""
    out = bed.ovs.appctl("ofproto/trace", bed.bridge(site), flow)
    return next(line.strip() for line in out.splitlines() if line.startswith(" 0. "))


def test_in_band_control_is_on_and_health_names_the_command_that_fixes_it(bed):
    # OVS's hidden in-band flow takes ARP replies to the bridge's MAC before table 0
    bridge_mac = "02:b0:00:00:00:02"
    rule = hidden_flow(bed, "b", "in_port=1,arp,arp_op=2,dl_dst=%s" % bridge_mac)
    assert "priority 180001" in rule, rule
    health = bed.controller.health()
    assert health["status"] == "degraded"
    for site in "ab":
        settings = health["switches"][bed.dp_name(site)]["ovs_settings"]
        assert not settings["ok"] and NO_OVSDB in settings["error"]
        fix = settings["fix"]
        assert fix.startswith("ovs-vsctl --db=%s -- set Bridge %s " % (NO_OVSDB, bed.bridge(site)))
        assert "other-config:disable-in-band=true" in fix and "fail_mode=secure" in fix
        assert "flow_limit=1000" in fix
        lines = [line for line in bed.controller.log().splitlines()
                 if "ovs-vsctl" in line and bed.dp_name(site) + " " in line]
        assert len(lines) == 1 and lines[0].endswith(fix), lines


@pytest.mark.parametrize("family", [4, 6])
def test_a_host_site_b_has_never_seen_is_reached_ping_udp_tcp(bed, family):
    host, server, router = bed["hostA"], bed["serverB"], bed["routerA"]
    address = server.ipv4 if family == 4 else server.ipv6
    bed.forget("b", address)  # site B knows no neighbour and no reverse path
    before = {s: bed.controller.get("/v1/switches/" + bed.dp_name(s)) for s in "ab"}
    unanswered = []

    def answered():
        if host.ping(address, count=1, check=False):
            return True
        unanswered.append(address)
        return False
    with Sniffer(host.ns, bpf="icmp or icmp6") as cap:
        # the first echo finds no neighbour at site B: punted, probed, answered, learned;
        # echoes until then go unanswered (as many as the controller's answer takes), every
        # echo after it is answered
        wait_for(answered, 20, interval=0, what="an echo answered")
        assert host.ping(address, count=3) == 3
    probed = {s: bed.controller.get("/v1/switches/" + bed.dp_name(s)) for s in "ab"}
    bed.exchange("udp", address)
    bed.exchange("tcp", address)
    after = {s: bed.controller.get("/v1/switches/" + bed.dp_name(s)) for s in "ab"}

    assert probed["b"]["neighbour_probes"] > before["b"]["neighbour_probes"]
    punted = probed["b"]["packet_ins"] - before["b"]["packet_ins"]
    assert 1 <= punted <= len(unanswered), punted  # echoes before the answer, no more
    assert after["a"]["packet_ins"] == before["a"]["packet_ins"]
    assert after["b"]["packet_ins"] == probed["b"]["packet_ins"]  # UDP, TCP: none
    replies = [p for p in cap.packets if (ICMP in p and p[ICMP].type == 0
                                          and p[IP].src == address)
               or (ICMPv6EchoReply in p and p[IPv6].src == address)]
    assert len(replies) >= 4
    assert all((p[Ether].dst, p[Ether].src) == (host.mac, router.mac) for p in replies)


def test_the_command_health_gives_sets_everything_sggw_needs(bed):
    """Run last: it turns in-band control off on site B."""
    fix = bed.controller.health()["switches"]["site-b"]["ovs_settings"]["fix"]
    run(*shlex.split(fix.replace(NO_OVSDB, bed.ovs.db)))  # as the user would, on its OVSDB
    found = ovs_settings.review(*ovs_settings.read(bed.ovs.db, 0xB), 0xB, 1000, bed.of_port)
    assert found == []
    rule = hidden_flow(bed, "b", "in_port=1,arp,arp_op=2,dl_dst=02:b0:00:00:00:02")
    assert "cookie 0x5367" in rule, rule  # sggw's table 0 now
