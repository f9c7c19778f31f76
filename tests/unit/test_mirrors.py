"""Mirror sessions on one bridge (site A): what the analyzer ports receive, and that the
traffic itself is untouched.

Every packet goes through a :class:`Twin`: the bridge with the sessions and the same bridge
without any, with the same history. Apart from the copies on the analyzer ports (mon1, mon2)
both must send the same packets to the same ports, ask the controller the same things and
learn the same flows: a session never changes, delays or drops the original. The FakeSwitch
runs group buckets as action sets and meters in clones as OVS 3.1 does (see its docstring).
"""
import pytest

import fakeswitch as fs
from flows import desired, mirror, tables
from flows.ofp import OFPVID_PRESENT
from sites import (
    ENDPOINT_A, HOST_A1, HOST_A2, INTERNET, LAN1, LAN2, LOCAL, MIRROR_PORT_NAMES, MON1, MON2,
    ROUTER_A, ROUTER_B, SERVER_B, TO_B, TUNNEL, WAN, datapath, portmap, switch)

ANALYZERS = (MON1, MON2)
TAP_MAC = "02:00:00:00:00:99"


def session(name="s", sources=(("lan1", "both"),), destinations=("mon1",), **more):
    """A session's config: sources as (port, direction), destinations as port names or
    dicts."""
    return dict(name=name, sources=[{"port": p, "direction": d} for p, d in sources],
                destinations=[d if isinstance(d, dict) else {"port": d}
                              for d in destinations], **more)


class Twin:
    """Site A with mirror ``sessions`` next to site A without: see the module docstring."""

    def __init__(self, *sessions, drop=(), **config):
        config = dict(dict(capture=TO_B, name="a"), **config)
        fake = dict(meters_drop={tables.session_meter(i) for i in drop})
        self.sw = switch(MIRROR_PORT_NAMES, fake=fake, mirrors=list(sessions), **config)
        self.plain = switch(MIRROR_PORT_NAMES, **config)

    def send(self, pkt):
        result, plain = self.sw.process(pkt), self.plain.process(pkt)
        assert [o for o in result.outputs if o[0] not in ANALYZERS] == plain.outputs
        assert all(o.max_len is None for o in plain.outputs)
        assert result.packet_ins == plain.packet_ins
        assert [f.key for f in result.learned] == [f.key for f in plain.learned]
        return result

    def seen(self, host, port):
        """``host`` sends an ARP reply from ``port``: the bridge learns where it is."""
        return self.send(fs.arp_reply(port, host.mac, ROUTER_A.mac, host.ip, ROUTER_A.ip))


def copies(result, port=MON1):
    return result.to(port)


def a1_to_a2(**kwargs):
    return fs.tcp(LAN1, HOST_A1.mac, HOST_A2.mac, HOST_A1.ip, HOST_A2.ip, **kwargs)


def a2_to_a1(**kwargs):
    return fs.tcp(LAN2, HOST_A2.mac, HOST_A1.mac, HOST_A2.ip, HOST_A1.ip, **kwargs)


def known_hosts(twin):
    twin.seen(HOST_A1, LAN1)
    twin.seen(HOST_A2, LAN2)
    twin.seen(ROUTER_A, WAN)
    return twin


# --- directions -------------------------------------------------------------------------------

@pytest.mark.parametrize("direction, copied_in, copied_out", [
    ("rx", True, False), ("tx", False, True), ("both", True, True)])
def test_direction_selects_what_the_port_receives_and_what_it_sends(
        direction, copied_in, copied_out):
    twin = known_hosts(Twin(session(sources=[("lan1", direction)])))
    into_lan1, out_of_lan1 = a1_to_a2(), a2_to_a1()
    received = twin.send(into_lan1)
    assert copies(received) == ([fs.without_in_port(into_lan1)] if copied_in else [])
    sent = twin.send(out_of_lan1)
    assert copies(sent) == ([sent.sent(LAN1)] if copied_out else [])


def test_a_packet_between_two_source_ports_is_copied_once_in_and_once_out():
    twin = known_hosts(Twin(session(sources=[("lan", "both")],
                                    destinations=["mon1", "mon2"])))
    result = twin.send(a1_to_a2())
    for port in ANALYZERS:
        assert copies(result, port) == [fs.without_in_port(a1_to_a2())] * 2


def test_a_port_named_twice_as_a_source_is_copied_once():
    """``lan`` and ``lan1`` both name port 1: still one copy per packet and direction."""
    twin = known_hosts(Twin(session(sources=[("lan", "rx"), ("lan1", "both")])))
    assert len(copies(twin.send(a1_to_a2()))) == 1
    assert len(copies(twin.send(a2_to_a1()))) == 2  # in on lan2, out on lan1


# --- kinds of traffic -------------------------------------------------------------------------

def test_a_flood_is_copied_on_each_port_it_left_by_and_not_on_its_in_port():
    twin = Twin(session("wire", sources=[("lan", "tx"), ("wan", "tx"), ("local", "tx")]),
                session("in", sources=[("lan1", "tx")], destinations=["mon2"]))
    pkt = fs.arp_request(LAN1, HOST_A1.mac, HOST_A1.ip, HOST_A2.ip)
    result = twin.send(pkt)
    assert sorted(p for p, _ in result.outputs if p not in ANALYZERS) == [LAN2, WAN, LOCAL]
    assert copies(result) == [fs.without_in_port(pkt)] * 3
    assert copies(result, MON2) == []
    # an unknown unicast destination floods too
    assert len(copies(twin.send(a1_to_a2()))) == 3


def captured():
    return fs.tcp(LAN1, HOST_A1.mac, ROUTER_A.mac, HOST_A1.ip, SERVER_B.ip, 40000, 443)


def test_captured_traffic_is_copied_as_it_enters_the_tunnel():
    twin = Twin(session("into", sources=[("tunnel", "tx")]),
                session("out", sources=[("tunnel", "rx")], destinations=["mon2"]))
    result = twin.send(captured())
    assert result.ports == [TUNNEL, MON1]
    assert copies(result) == [result.sent(TUNNEL)] == [fs.without_in_port(captured())]
    assert copies(result, MON2) == []


def test_a_reply_is_copied_as_it_leaves_the_tunnel_and_as_it_reaches_the_host():
    twin = Twin(session("tunnel", sources=[("tunnel", "rx")]),
                session("host", sources=[("lan1", "tx")], destinations=["mon2"]))
    twin.send(captured())
    reply = fs.reply(captured(), TUNNEL, ROUTER_B.mac, "02:00:00:99:99:99")
    result = twin.send(reply)
    assert [p for p, _ in result.outputs if p not in ANALYZERS] == [LAN1]
    assert copies(result) == [fs.without_in_port(reply)]
    assert copies(result, MON2) == [result.sent(LAN1)]
    assert result.sent(LAN1)["eth_dst"] == HOST_A1.mac  # the copy is the packet as sent


def test_remotely_initiated_traffic_and_its_answer_are_copied():
    twin = Twin(session(sources=[("tunnel", "both")]), capture=())
    twin.seen(HOST_A1, LAN1)
    syn = fs.tcp(TUNNEL, SERVER_B.mac, ROUTER_B.mac, SERVER_B.ip, HOST_A1.ip, 50000, 22)
    result = twin.send(syn)
    assert result.ports == [LAN1, MON1]
    assert copies(result) == [fs.without_in_port(syn)]
    answer = twin.send(fs.reply(syn, LAN1, HOST_A1.mac, ROUTER_A.mac))
    assert answer.ports == [TUNNEL, MON1]
    assert copies(answer) == [answer.sent(TUNNEL)]


def test_the_endpoint_is_a_source_by_the_local_role():
    """The endpoint's ARP for an off-subnet address and the bridge's proxy answer."""
    twin = Twin(session(sources=[("local", "both")]), local_ip="10.1.0.2/24")
    twin.send(fs.tcp(LAN1, HOST_A1.mac, ROUTER_A.mac, HOST_A1.ip, INTERNET))  # gateway learned
    ask = fs.arp_request(LOCAL, ENDPOINT_A.mac, ENDPOINT_A.ip, INTERNET)
    result = twin.send(ask)
    assert [p for p, _ in result.outputs if p not in ANALYZERS] == [LOCAL]
    assert copies(result) == [fs.without_in_port(ask), result.sent(LOCAL)]
    assert result.sent(LOCAL)["arp_op"] == 2


def test_a_role_source_covers_each_of_its_ports():
    twin = known_hosts(Twin(session(sources=[("lan", "rx")])))
    for pkt in (a1_to_a2(), a2_to_a1()):
        assert copies(twin.send(pkt)) == [fs.without_in_port(pkt)]
    from_wan = fs.udp(WAN, ROUTER_A.mac, HOST_A1.mac, INTERNET, HOST_A1.ip)
    assert copies(twin.send(from_wan)) == []


# --- filters ---------------------------------------------------------------------------------

def test_a_filter_copies_only_matching_packets():
    twin = known_hosts(Twin(session(filter={"ip_proto": "tcp", "dst_port": 443})))
    assert len(copies(twin.send(a1_to_a2(dport=443)))) == 1
    assert copies(twin.send(a1_to_a2(dport=80))) == []
    assert copies(twin.send(fs.udp(LAN1, HOST_A1.mac, HOST_A2.mac, HOST_A1.ip, HOST_A2.ip,
                                   dport=443))) == []
    v6 = fs.tcp(LAN1, HOST_A1.mac, HOST_A2.mac, HOST_A1.ip6, HOST_A2.ip6, dport=443)
    assert copies(twin.send(v6)) == [fs.without_in_port(v6)]


def test_an_ipv6_prefix_filter():
    twin = known_hosts(Twin(session(filter={"ipv6_dst": "fd00:2::/48"})))
    to_b = fs.udp(LAN1, HOST_A1.mac, ROUTER_A.mac, HOST_A1.ip6, SERVER_B.ip6)
    assert copies(twin.send(to_b)) == [fs.without_in_port(to_b)]
    assert copies(twin.send(fs.udp(LAN1, HOST_A1.mac, HOST_A2.mac, HOST_A1.ip6,
                                   HOST_A2.ip6))) == []
    assert copies(twin.send(captured())) == []  # IPv4 to site B
    assert copies(twin.send(fs.arp_request(LAN1, HOST_A1.mac, HOST_A1.ip, HOST_A2.ip))) == []


# --- what the copies look like ---------------------------------------------------------------

def test_a_destination_vlan_is_pushed_on_its_copies_only():
    twin = known_hosts(Twin(session(destinations=[{"port": "mon1", "vlan": 100}, "mon2"])))
    pkt = a1_to_a2()
    result = twin.send(pkt)
    assert copies(result) == [dict(fs.without_in_port(pkt), vlan_vid=OFPVID_PRESENT | 100)]
    assert copies(result, MON2) == [fs.without_in_port(pkt)]
    tagged = a1_to_a2(vlan=7)
    [copy] = copies(twin.send(tagged))
    assert (copy["vlan_vid"], copy["inner_vlan_vid"]) == (OFPVID_PRESENT | 100,
                                                          OFPVID_PRESENT | 7)


def test_a_destination_eth_dst_readdresses_its_copies_only():
    twin = known_hosts(Twin(session(destinations=[{"port": "mon1", "eth_dst": TAP_MAC},
                                                  "mon2"])))
    pkt = a1_to_a2()
    result = twin.send(pkt)
    assert copies(result) == [dict(fs.without_in_port(pkt), eth_dst=TAP_MAC)]
    assert copies(result, MON2) == [fs.without_in_port(pkt)]


def test_snaplen_truncates_the_copies_on_every_destination():
    twin = known_hosts(Twin(session(destinations=[{"port": "mon1", "vlan": 5}, "mon2"],
                                    snaplen=96)))
    pkt = a1_to_a2()
    result = twin.send(pkt)
    assert (result.output(MON1).max_len, result.output(MON2).max_len) == (96, 96)
    assert result.sent(MON1) == dict(fs.without_in_port(pkt), vlan_vid=OFPVID_PRESENT | 5)
    assert result.output(LAN2).max_len is None


# --- sessions side by side -------------------------------------------------------------------

def test_sessions_sharing_a_source_and_a_destination_each_deliver_their_copy():
    tagged = session("b", destinations=[{"port": "mon1", "vlan": 2}])
    twin = known_hosts(Twin(session("a"), tagged))
    pkt = a1_to_a2()
    assert copies(twin.send(pkt)) == [fs.without_in_port(pkt),
                                      dict(fs.without_in_port(pkt), vlan_vid=OFPVID_PRESENT | 2)]


@pytest.mark.parametrize("limited", [1, 2], ids=["first session", "second session"])
def test_a_dropping_rate_limit_costs_only_its_own_copies(limited):
    """A session's meter (here one that drops everything) never touches the original or
    another session's copies, whichever bucket of the hook it is."""
    sessions = [session("a", sources=[("lan", "both")], destinations=["mon1"]),
                session("b", sources=[("lan", "both")], destinations=["mon2"])]
    sessions[limited - 1]["rate_limit"] = {"pps": 1}
    twin = known_hosts(Twin(*sessions, drop=[limited]))
    kept = MON2 if limited == 1 else MON1
    for pkt in (a1_to_a2(), fs.arp_request(LAN1, HOST_A1.mac, HOST_A1.ip, "10.1.0.99")):
        result = twin.send(pkt)
        assert result.dropped and set(result.dropped) == {tables.session_meter(limited)}
        assert copies(result, MON1 if limited == 1 else MON2) == []
        assert len(copies(result, kept)) == 2  # in on lan1, out on lan2


def test_a_rate_limit_that_passes_lets_every_copy_through():
    twin = known_hosts(Twin(session(rate_limit={"kbps": 1000})))
    result = twin.send(a1_to_a2())
    assert result.meters == [tables.session_meter(1)] and result.dropped == []
    assert len(copies(result)) == 1


# --- analyzer ports ---------------------------------------------------------------------------

def test_what_arrives_on_an_analyzer_port_is_dropped():
    """Even when another session names the port (by number, so the config cannot tell) as a
    source: copies are never copied."""
    twin = Twin(session(destinations=["mon1", "mon2"]),
                session("copies", sources=[(MON1, "rx")], destinations=["mon2"]))
    for port in ANALYZERS:
        for pkt in (fs.arp_request(port, HOST_A1.mac, HOST_A1.ip, HOST_A2.ip),
                    fs.tcp(port, HOST_A1.mac, ROUTER_A.mac, HOST_A1.ip, SERVER_B.ip)):
            result = twin.sw.process(pkt)
            assert (result.outputs, result.learned, result.packet_ins) == ([], [], [])


def test_analyzer_ports_get_no_floods():
    twin = Twin(session(sources=[("wan", "both")], destinations=["mon1", "mon2"]))
    for in_port in (LAN1, LAN2, LOCAL):
        result = twin.send(fs.arp_request(in_port, HOST_A1.mac, HOST_A1.ip, HOST_A2.ip))
        assert copies(result, MON2) == [result.sent(WAN)]
        assert len(result.to(MON1)) == 1


# --- placing sessions on a switch --------------------------------------------------------------

def placed(*sessions, switch_ports=MIRROR_PORT_NAMES):
    dp = datapath(capture=TO_B, mirrors=list(sessions))
    pm = portmap(dp, switch_ports)
    return dp, pm, [mirror.place(s, pm, dp.dp_id) for s in dp.mirrors], desired.plan(dp, pm)


def test_a_session_whose_destinations_are_all_missing_has_no_part_and_no_hooks():
    dp, pm, [gone, kept], plan = placed(session("gone", destinations=["mon9"]),
                                        session("kept", sources=[("wan", "rx")]))
    assert gone.missing == ("mon9",) and gone.destinations == ()
    assert kept.missing == ()
    assert {k for k in plan if k[0] in ("mirror", "hook")} == {
        ("mirror", 2), ("hook", "rx", WAN)}
    part = desired.everything(dp, pm)
    assert tables.session_group(1) not in {g.group_id for g in part.groups}
    assert not [f for f in part.flows if f.cookie == tables.cookie(tables.KIND_MIRROR, 1)]


def test_a_missing_destination_or_source_is_reported_and_the_rest_is_used():
    _, _, [one], plan = placed(session(sources=[("lan1", "rx"), ("eth7", "rx")],
                                       destinations=["mon1", "mon9"]))
    assert one.missing == ("eth7", "mon9")
    assert [port for _, _, port in one.destinations] == [MON1] and one.rx == (LAN1,)
    twin = Twin(session(sources=[("lan1", "rx"), ("eth7", "rx")],
                        destinations=["mon1", "mon9"]))
    assert twin.send(a1_to_a2()).ports == sorted([LAN2, WAN, LOCAL, MON1])


def test_a_session_whose_analyzer_is_not_on_the_switch_copies_nothing_and_changes_nothing():
    ports = {n: name for n, name in MIRROR_PORT_NAMES.items() if n not in ANALYZERS}
    dp, pm, [one], plan = placed(session(), switch_ports=ports)
    assert one.missing == ("mon1",) and set(plan) == {("base",), ("capture", 1),
                                                      ("capture", 2)}
    no_mirrors = datapath(capture=TO_B)
    assert plan[("base",)].token == desired.plan(no_mirrors, pm)[("base",)].token


# --- regressions ---------------------------------------------------------------------------------

@pytest.mark.parametrize("destination, in_port", [(LAN2, LAN2), ("br0", LOCAL)],
                         ids=["lan2 by number", "LOCAL by name"])
def test_a_role_port_is_never_made_an_analyzer(destination, in_port):
    twin = Twin(session(sources=[("wan", "rx")], destinations=[destination]))
    result = twin.send(fs.arp_request(in_port, HOST_A1.mac, HOST_A1.ip, HOST_A2.ip))
    assert result.outputs
