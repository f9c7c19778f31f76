"""The core on the real switch: capture into the tunnel, replies by learned reverse paths,
the transparent wire, healing, the endpoint's own traffic, and a controller restart.

Every check looks at real packets (tcpdump in the namespaces) or at what a user sees
(ping, sockets, the REST API, ``ovs-ofctl dump-flows``).
"""
import contextlib
import signal
import subprocess
import sys
import time

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.inet6 import ICMPv6EchoReply, IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether

from testbed.inject import inject
from testbed.proc import run, wait_for
from testbed.sniff import Sniffer
from testbed.topology import FAR_V4

ECHO = [sys.executable, "-m", "testbed.echo"]


@pytest.fixture
def no_packet_ins(bed):
    """The test's traffic must not reach the controller."""
    before = {site: bed.controller.packet_ins(bed.dp_name(site)) for site in "ab"}
    yield
    after = {site: bed.controller.packet_ins(bed.dp_name(site)) for site in "ab"}
    assert after == before, "packet-ins during the test: %s -> %s" % (before, after)


@pytest.fixture(scope="module")
def echo_servers(bed):
    """TCP (5001) and UDP (5002) echo services on serverB."""
    procs = []
    for proto, port in (("tcp", 5001), ("udp", 5002)):
        proc = bed["serverB"].popen(*ECHO, "serve", proto, port, stdout=subprocess.PIPE,
                                    text=True)
        assert proc.stdout.readline().strip() == "ready"
        procs.append(proc)
    yield
    for proc in procs:
        proc.kill()
        proc.wait()


def ask(host, proto, address, port, message, *options):
    return host.run(*ECHO, "ask", proto, address, port, message, *options, timeout=15).strip()


def from_host(packets, ip):
    return [p for p in packets
            if (IP in p and p[IP].src == ip) or (IPv6 in p and p[IPv6].src == ip)]


def test_ping_replies_come_back_from_the_gateway_mac(bed, no_packet_ins):
    host, server, router = bed["hostA"], bed["serverB"], bed["routerA"]
    with Sniffer(host.ns, bpf="icmp or icmp6") as at_host, \
            Sniffer(router.ns, bpf="icmp or icmp6") as at_router:
        host.ping(server.ipv4, count=3)
        host.ping(server.ipv6, count=3)
    replies4 = [p for p in from_host(at_host.packets, server.ipv4) if p[ICMP].type == 0]
    replies6 = [p for p in from_host(at_host.packets, server.ipv6) if ICMPv6EchoReply in p]
    assert len(replies4) == 3 and len(replies6) == 3
    for reply in replies4 + replies6:
        assert (reply[Ether].dst, reply[Ether].src) == (host.mac, router.mac)
    # captured traffic goes into the tunnel, never to the router
    assert not [p for p in at_router.packets
                if (IP in p and p[IP].dst == server.ipv4) or (IPv6 in p and p[IPv6].dst ==
                                                              server.ipv6)]


def test_captured_frames_cross_the_tunnel_as_sent_full_size_too(bed, no_packet_ins):
    """The tunnel port carries the host's frames unchanged, up to the LAN's MTU (an MTU
    mismatch would drop them silently); over OpenVPN they travel only encrypted, as UDP
    between the two peers on loopback."""
    host, server, router = bed["hostA"], bed["serverB"], bed["routerA"]
    pattern = b"Sggw!"
    with contextlib.ExitStack() as stack:
        tunnel = stack.enter_context(Sniffer(None, bed.tunnel_port("a"), bpf="icmp"))
        outer = stack.enter_context(Sniffer(None, "lo", bpf="udp")) if bed.vpn else None
        out = host.run("ping", "-n", "-c", 2, "-i", 0.2, "-W", 2, "-M", "do", "-s", 1472,
                       "-p", pattern.hex(), server.ipv4, check=False)
    assert ", 2 received" in out, out
    requests = [p for p in from_host(tunnel.packets, host.ipv4) if p[ICMP].type == 8]
    assert len(requests) == 2
    for frame in requests:
        assert (frame[Ether].src, frame[Ether].dst, len(frame)) == (host.mac, router.mac, 1514)
        assert pattern in bytes(frame)
    if bed.vpn:
        assert len(bed.vpn.datagrams(outer.packets)) >= 4  # two requests, two replies
        assert not [p for p in outer.packets if pattern in bytes(p)]


def test_tunnel_restart_heals_and_nothing_else_joins_the_sites(bed):
    """While site B's OpenVPN peer is down (its TAP without carrier), nothing reaches site B:
    the tunnel is the only way. Once the peer is back, traffic flows again."""
    if bed.vpn is None:
        pytest.skip("a veth pair has no VPN daemon to restart")
    host, server = bed["hostA"], bed["serverB"]
    bed.vpn.stop_peer(1)
    try:
        assert host.ping(server.ipv4, count=2, check=False) == 0
    finally:
        bed.vpn.start_peer(1)
    wait_for(lambda: host.ping(server.ipv4, count=1, check=False), 10, what="ping again")
    bed.exchange("tcp", server.ipv6)


def test_tcp_and_udp_exchanges_learn_visible_reverse_flows(bed, echo_servers, no_packet_ins):
    host, server, router = bed["hostA"], bed["serverB"], bed["routerA"]
    with Sniffer(host.ns, bpf="tcp port 5001 or udp port 5002") as cap:
        for proto, port in (("tcp", 5001), ("udp", 5002)):
            for address in (server.ipv4, server.ipv6):
                message = "hello %s %s" % (proto, address)
                assert ask(host, proto, address, port, message) == message
    replies = from_host(cap.packets, server.ipv4) + from_host(cap.packets, server.ipv6)
    assert len(replies) >= 6  # SYN-ACK, data, FIN... per TCP exchange; one per UDP
    for reply in replies:
        assert (reply[Ether].dst, reply[Ether].src) == (host.mac, router.mac)

    # the reverse paths are visible, each with the way back it keeps
    udp = [p for p in paths(bed) if p["reply"].get("src_port") == 5002]
    assert {p["reply"]["src"] for p in udp} == {server.ipv4, server.ipv6}
    for path in udp:
        assert path["reply"]["from"] == "tunnel"
        assert path["to"] == {"port_no": host.port, "port": host.outside,
                              "eth_dst": host.mac, "eth_src": router.mac}
    if learning(bed):  # learned flows have counters (conntrack keeps none)
        wait_for(lambda: {p["reply"]["src"] for p in paths(bed) if p["packets"] > 0
                          and p["reply"].get("src_port") == 5002} == {server.ipv4, server.ipv6},
                 5, what="reverse path counters")


def paths(bed, site="site-a"):
    return bed.controller.get("/v1/switches/%s/paths" % site)["paths"]


def flushable(paths_):
    """Paths a flush removes: with conntrack, ICMPv6 entries idle out instead (flushing one
    aborts Debian's ovs-vswitchd 3.1.0: OVS bug fixed by upstream commit 915d3c1a)."""
    return [p for p in paths_ if p["reply"].get("proto") != "icmpv6"]


def learning(bed):
    return bed.reverse_path["match"] != "conntrack"


def test_tcp_reverse_path_ends_early_after_fin(bed, echo_servers):
    host, server = bed["hostA"], bed["serverB"]
    assert ask(host, "tcp", server.ipv4, 5001, "bye") == "bye"
    # the bed's fin_idle_timeout is 2 s while idle_timeout is 60 s
    wait_for(lambda: not [p for p in paths(bed) if p["reply"].get("src_port") == 5001], 8,
             what="TCP reverse path gone after FIN")


def test_wire_traffic_is_bridged_untouched_also_tagged(bed, no_packet_ins):
    host, router = bed["hostA"], bed["routerA"]
    with Sniffer(router.ns, bpf="icmp") as cap:
        host.ping(router.ipv4, count=2)
    requests = [p for p in from_host(cap.packets, host.ipv4) if p[ICMP].type == 8]
    assert len(requests) == 2
    assert all((p[Ether].src, p[Ether].dst) == (host.mac, router.mac) for p in requests)

    # tagged frames (this kernel has no 8021q module, so they are made by hand)
    unicast = Ether(src=host.mac, dst=router.mac) / Dot1Q(vlan=100, prio=3) / IP(
        src="10.100.0.10", dst="10.100.0.1") / ICMP(id=7, seq=1) / b"tagged"
    broadcast = Ether(src=host.mac, dst="ff:ff:ff:ff:ff:ff") / Dot1Q(vlan=100) / ARP(
        hwsrc=host.mac, psrc="10.100.0.10", pdst="10.100.0.1")
    with Sniffer(router.ns, bpf="vlan 100") as cap:
        inject(host.ns, [unicast, broadcast])
    got = [bytes(p) for p in cap.packets]
    # byte for byte, tag and all (in either order: the kernel datapath's handler threads
    # may finish two first packets of different flows out of order)
    assert sorted(got) == sorted([bytes(unicast), bytes(broadcast)])


def gratuitous_arp(router, mac):
    frame = Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=1, hwsrc=mac, psrc=router.ipv4, hwdst="00:00:00:00:00:00", pdst=router.ipv4)
    inject(router.ns, [frame])


def set_router_mac(bed, mac):
    host, router = bed["hostA"], bed["routerA"]
    router.run("ip", "link", "set", "eth0", "address", mac)
    time.sleep(1.1)  # Linux ignores ARP updates within 1 s (locktime) of the last one
    gratuitous_arp(router, mac)
    wait_for(lambda: any(n.get("dst") == router.ipv4 and n.get("lladdr") == mac
                         for n in host.neighbours()), 5, what="hostA learns %s" % mac)


def test_gateway_mac_change_heals_with_the_next_packet(bed, no_packet_ins):
    host, server, router = bed["hostA"], bed["serverB"], bed["routerA"]
    new_mac = "02:a0:00:00:00:99"
    try:
        set_router_mac(bed, new_mac)
        with Sniffer(host.ns, bpf="icmp and src host %s" % server.ipv4) as cap:
            host.ping(server.ipv4, count=1)
            # the first request re-points the reverse path; its own reply may still race
            # OVS's datapath cache, which follows once the revalidator has run (milliseconds
            # on a quiet machine, longer on a busy one); every later reply follows
            bed.ovs.revalidated()
            host.ping(server.ipv4, count=3, interval=0.2)
        sources = [p[Ether].src for p in cap.packets]
        assert len(sources) == 4
        assert sources[0] in (router.mac, new_mac)
        assert sources[1:] == [new_mac] * 3
    finally:
        set_router_mac(bed, router.mac)
        host.ping(server.ipv4, count=1)  # and point the learned state back


def test_remotely_initiated_traffic_reaches_the_local_host(bed, no_packet_ins):
    host, server, router = bed["hostA"], bed["serverB"], bed["routerA"]
    host.ping(FAR_V4, count=1)  # hostA's routed traffic shows site A its gateway's MAC
    with Sniffer(host.ns, bpf="icmp") as cap:
        server.ping(host.ipv4, count=3)
    requests = [p for p in from_host(cap.packets, server.ipv4) if p[ICMP].type == 8]
    assert len(requests) == 3
    # delivered to hostA's MAC, from its gateway's MAC
    assert all((p[Ether].dst, p[Ether].src) == (host.mac, router.mac) for p in requests)


def test_unknown_neighbour_is_probed_then_delivered(bed):
    host, server = bed["hostA"], bed["serverB"]
    bed.forget("b", server.ipv4)  # site B forgets its hosts and every reverse path to them
    punted = bed.controller.packet_ins("site-b")
    # the first packets find no neighbour: counted, punted (metered), and a probe goes out;
    # once the answer is learned they are delivered
    wait_for(lambda: host.ping(server.ipv4, count=1, check=False), 15,
             what="an echo delivered once the probe's answer is learned")
    assert bed.controller.packet_ins("site-b") > punted
    assert bed.controller.get("/v1/switches/site-b")["neighbour_probes"] >= 1
    sample = 'sggw_unknown_neighbour_packets_total{datapath="site-b"}'
    wait_for(lambda: metric(bed.controller.call("GET", "/metrics")[1], sample) > 0, 5,
             what="unknown-neighbour counter (OVS pushes flow stats about every second)")
    assert [f for f in bed.flows("b", 22) if f.fields.get("nw_dst") == server.ipv4]


def test_endpoint_reaches_off_subnet_address_without_gateway_route(bed, no_packet_ins):
    endpoint, host, router = bed.endpoint, bed["hostA"], bed["routerA"]
    assert not [r for r in endpoint.routes() if "gateway" in r]
    host.ping(FAR_V4, count=1)  # a LAN host's routed packet shows the gateway's MAC
    assert endpoint.ping(FAR_V4, count=3) == 3
    entry = [n for n in endpoint.neighbours() if n.get("dst") == FAR_V4]
    assert entry and entry[0]["lladdr"] == router.mac


def test_sggw_turned_in_band_control_off_so_the_endpoints_arp_reaches_the_pipeline(bed):
    """The bed's bridges start on OVS's defaults (in-band on); sggw, which reaches OVSDB
    here and whose controller is local, turned it off. Site B's LOCAL port stays in the
    switch's own namespace, as on an endpoint, so in-band would take its ARP."""
    bridge = bed.bridge("b")
    mac = bed.ovs.vsctl("get", "interface", bridge, "mac_in_use").strip().strip('"')
    assert bed.ovs.vsctl("get", "bridge", bridge, "other-config:disable-in-band").strip() \
        == '"true"'
    for flow in ("in_port=LOCAL,arp,arp_op=1,dl_src=%s" % mac,  # the endpoint asks
                 "in_port=1,arp,arp_op=2,dl_dst=%s" % mac):  # and hears the answer
        trace = bed.ovs.appctl("ofproto/trace", bridge, flow)
        first = next(line for line in trace.splitlines() if line.startswith(" 0. "))
        assert "cookie 0x5367" in first, trace  # sggw's table 0, not a hidden flow
    for site in "ab":
        assert bed.controller.health()["switches"][bed.dp_name(site)]["ovs_settings"] == \
            {"ok": True}


def metric(text, name):
    """The value of sample ``name`` (with its labels) in Prometheus text."""
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")]
    assert len(values) == 1, "%s: %s" % (name, values)
    return values[0]


def learned_through(bed, site, port):
    return [f for f in bed.flows(site) if f.cookie >> 44 == 0x53671
            and f.cookie & 0xFFFFFFFF == port]


def test_port_down_flushes_what_was_learned_through_it(bed):
    host, server = bed["hostA"], bed["serverB"]
    host.ping(server.ipv4, count=1)
    bed.ovs.revalidated()  # the ping's learns are done: none comes after the flush

    def through(port):
        paths_out = [p for p in flushable(paths(bed)) if p["to"]["port_no"] == port]
        return paths_out + (learned_through(bed, "a", port) if learning(bed) else [])
    assert through(host.port)
    assert learned_through(bed, "a", bed["routerA"].port)
    run("ip", "link", "set", host.outside, "down")
    try:
        wait_for(lambda: not through(host.port), 5,
                 what="what was learned through hostA's port flushed")
        assert learned_through(bed, "a", bed["routerA"].port)  # others stay
    finally:
        run("ip", "link", "set", host.outside, "up")
    wait_for(lambda: host.ping(server.ipv4, count=1, check=False), 10, what="ping again")


def test_learned_paths_are_listed_and_flushed_by_host_or_port(bed):
    """A flush forgets the paths; a flow whose datapath flow OVS still caches learns its path
    again when the revalidator next counts its packets, so each check on the paths waits
    for a revalidator round after the traffic that changes them."""
    host, server, router = bed["hostA"], bed["serverB"], bed["routerA"]
    flush = "/v1/switches/site-a/paths"
    bed.ovs.revalidated()  # earlier tests' packets are counted: no learn() comes after this
    bed.controller.call("DELETE", flush)
    host.ping(server.ipv4, count=3)
    bed.ovs.revalidated()
    found = [p for p in paths(bed) if p["reply"]["src"] == server.ipv4
             and p["reply"].get("proto") == "icmp"]
    assert found, paths(bed)
    found = found[0]
    assert found["reply"] == {"family": 4, "src": server.ipv4, "dst": host.ipv4,
                              "proto": "icmp", "vlan": None, "from": "tunnel"}
    assert found["to"] == {"port_no": host.port, "port": host.outside, "eth_dst": host.mac,
                           "eth_src": router.mac}
    assert found["idle_timeout"] == 60
    assert found["idle_age"] is None or 0 <= found["idle_age"] <= 60
    everything, newest = bed.controller.get(flush), bed.controller.get(flush + "?limit=1")
    assert len(newest["paths"]) == 1 and newest["total"] == everything["total"] >= 1
    if learning(bed):  # newest first (a second may pass between the two listings)
        assert newest["paths"][0]["duration"] <= everything["paths"][0]["duration"] + 1
        assert [p["duration"] for p in everything["paths"]] == \
            sorted(p["duration"] for p in everything["paths"])
    by_host = bed.controller.get(flush + "?host=" + server.ipv4)
    assert by_host["total"] == len(by_host["paths"]) >= 1
    assert all(server.ipv4 in (p["reply"]["src"], p["reply"]["dst"]) for p in by_host["paths"])
    by_port = bed.controller.get(flush + "?port=" + host.outside)
    assert by_port["total"] == len(by_port["paths"]) >= 1
    assert {p["to"]["port"] for p in by_port["paths"]} == {host.outside}
    assert bed.controller.call("GET", flush + "?host=nowhere")[1] == {
        "error": "'nowhere' is not an IP address", "field": "host"}
    # the paths just used go too: their packets were all counted before the flush
    to_flush = [p for p in flushable(paths(bed))
                if server.ipv4 in (p["reply"]["src"], p["reply"]["dst"])]
    flushed = bed.controller.call("DELETE", flush + "?host=" + server.ipv4)[1]["flushed"]
    assert flushed >= 1 and (flushed == len(to_flush) or not learning(bed))
    assert not [p for p in flushable(paths(bed))
                if server.ipv4 in (p["reply"]["src"], p["reply"]["dst"])]
    host.ping(server.ipv4, count=1)  # its echo learns the path again, on the way out
    bed.ovs.revalidated()
    assert [p for p in flushable(paths(bed)) if p["to"]["port"] == host.outside]
    assert bed.controller.call("DELETE", flush + "?port=" + host.outside)[1]["flushed"] >= 1
    assert not [p for p in flushable(paths(bed)) if p["to"]["port_no"] == host.port]
    assert host.ping(server.ipv4, count=2) == 2  # and it is learned again


def udp_paths(bed, ports):
    """(reply source, where the reply comes from, reply destination port) of the UDP paths
    of conversations using one of ``ports``."""
    return sorted((p["reply"]["src"], p["reply"]["from"], p["reply"]["dst_port"])
                  for p in paths(bed) if p["reply"].get("proto") == "udp"
                  and {p["reply"]["src_port"], p["reply"]["dst_port"]} & set(ports))


def test_paths_flushed_mid_conversation_come_back_the_way_they_were(bed, echo_servers):
    """Paths flushed while OVS still caches the conversations' datapath flows, its
    revalidator late (paused here; on a busy machine it is late by itself): the replies keep
    arriving, and once the revalidator has counted the packets every conversation has its
    path again, the right way round. (A cached flow runs its learn() only when the
    revalidator counts its packets; a reply counted first is taken for remotely initiated
    traffic and learns a path the wrong way round. When that path was looked up before the
    capture rules, it hid them from the conversation for as long as it lasted.)"""
    host, server = bed["hostA"], bed["serverB"]
    # UDP five-tuples of their own: OVS meets each one's two datapath flows in an order of
    # its own, request or reply first
    conversations = range(40001, 40007)

    def talk():
        for port in conversations:
            assert ask(host, "udp", server.ipv4, 5002, "again", "--source-port", port) == "again"
    talk()
    bed.ovs.appctl("revalidator/pause")
    try:
        bed.controller.call("DELETE", "/v1/switches/site-a/paths")
        talk()  # every reply arrives
    finally:
        bed.ovs.appctl("revalidator/resume")
    bed.ovs.revalidated()
    talk()  # the requests meet the capture rule again, whatever the revalidator learned
    bed.ovs.revalidated()
    as_they_were = {(server.ipv4, "tunnel", port) for port in conversations}
    assert as_they_were <= set(udp_paths(bed, conversations)), udp_paths(bed, conversations)


def test_a_path_learned_the_wrong_way_round_hides_no_capture_rule(bed):
    """serverB speaks first, from a port nothing listens on at hostA: the way back for
    hostA's answer is learned into the tunnel, as for any remotely initiated flow. Then
    hostA talks to serverB on that five-tuple, and a capture rule takes it: the rule comes
    first, so the conversation learns its path from the tunnel (the same as after a flush
    whose reply OVS counted before its request)."""
    if not learning(bed):
        pytest.skip("conntrack mode: a connection's direction is conntrack's, not a lookup's")
    host, server = bed["hostA"], bed["serverB"]
    bed.ovs.revalidated()
    bed.controller.call("DELETE", "/v1/switches/site-a/paths?host=" + server.ipv4)
    server.run(sys.executable, "-c", "import socket, sys\n"
               "with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:\n"
               "    sock.bind(('', 5003))\n"
               "    sock.sendto(b'first', (sys.argv[1], 40010))\n", host.ipv4)
    wait_for(lambda: [p for p in paths(bed) if p["reply"]["src"] == host.ipv4
                      and p["reply"]["dst"] == server.ipv4 and p["reply"]["from"] == "wire"],
             10, what="the way back learned from serverB's first packet")
    echo = server.popen(*ECHO, "serve", "udp", 5003, stdout=subprocess.PIPE, text=True)
    try:
        assert echo.stdout.readline().strip() == "ready"
        assert ask(host, "udp", server.ipv4, 5003, "answer", "--source-port", 40010) == "answer"
        bed.ovs.revalidated()
        assert [p for p in paths(bed) if p["reply"]["src"] == server.ipv4
                and p["reply"]["from"] == "tunnel" and p["reply"].get("proto") == "udp"
                and (p["reply"]["src_port"], p["reply"]["dst_port"]) == (5003, 40010)
                and p["to"]["port"] == host.outside], paths(bed)
    finally:
        echo.kill()
        echo.wait()


def test_controller_restart_loses_no_packet_and_changes_no_flow(bed):
    host, server = bed["hostA"], bed["serverB"]
    before = {site: bed.ovs.static_flows(bed.bridge(site)) for site in "ab"}
    pinger = host.pinger(server.ipv4, interval=0.05, count=160)
    pinger.wait_replies(20)  # a second of traffic
    bed.controller.stop(kill=True)
    pinger.wait_replies(20)  # the switch runs alone for another second of it
    bed.controller.start()
    bed.controller.wait_programmed()
    assert pinger.stop() == (160, 160)
    after = {site: bed.ovs.static_flows(bed.bridge(site)) for site in "ab"}
    assert after == before
    for site in "ab":
        sync = bed.controller.get("/v1/switches/" + bed.dp_name(site))["last_sync"]
        assert (sync["added"], sync["removed"]) == (0, 0), sync
    # the OVS settings and the learned state's bounds are found as they were left
    assert bed.controller.health()["status"] == "ok", bed.controller.health()
    assert "NOT bounded" not in bed.controller.log()


@pytest.mark.userspace_only("signal handling: the same on any datapath")
def test_sigterm_stops_the_controller_at_once_with_status_0(bed):
    # what systemctl stop and docker stop send; a container's PID 1 would ignore it unhandled
    process = bed.controller.process
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    assert time.monotonic() - started < 2
    bed.controller.start()
    bed.controller.wait_programmed()
