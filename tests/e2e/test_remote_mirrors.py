"""Mirror copies to a remote analyzer over ERSPAN v1/v2, GRE and VXLAN, on the real switch.

The bed runs in a network namespace of its own, with an underlay to an analyzer namespace
as the README tells users to make one (testbed/underlay.py): on the userspace datapath a
bridge whose LOCAL interface routes there, on the kernel's an ordinary interface. The
analyzer decodes what arrives and compares each copy's inner frame with what really crossed
hostA's wire.
"""
import contextlib
import secrets
import subprocess
import sys
from collections import Counter

import pytest
from scapy.layers.inet import ICMP, TCP
from scapy.layers.l2 import Ether

from tests.e2e.kernel import DATAPATHS
from tests.e2e.test_mirrors import api, both, frames, session
from testbed.netns import inside
from testbed.proc import wait_for
from testbed.sniff import Sniffer
from testbed.topology import TwoSites
from testbed.underlay import (
    ANALYZER_V4, ANALYZER_V6, SILENT_V4, UNROUTABLE_V4, Underlay, decapsulate)

TOKEN = "remote-mirror-token"
ENCAPSULATED = "ip proto 47 or ip6 proto 47 or udp port 4789"
ERSPAN_V1 = {"erspan": {"remote_ip": ANALYZER_V4, "version": 1, "session_id": 7, "index": 5}}
ERSPAN_V2 = {"erspan": {"remote_ip": ANALYZER_V6, "version": 2, "session_id": 9,
                        "direction": "egress", "hwid": 3}}
GRE = {"gre": {"remote_ip": ANALYZER_V6, "key": 1234}}
VXLAN = {"vxlan": {"remote_ip": ANALYZER_V4, "vni": 5001}}
# ERSPAN over IPv4 and IPv6, GRE over IPv6 and VXLAN: one tunnel port each
PORTS = ["sgw00000aerspan", "sgw00000aip6ers", "sgw00000aip6gre", "sgw00000avxlan"]
OVERHEAD = {  # outer IP header and what the tunnel adds before the copied frame
    ("erspan", 7): 20 + 8 + 8,  # IPv4, GRE with a sequence number, ERSPAN type II
    ("erspan", 9): 40 + 8 + 12,  # IPv6, GRE with a sequence number, ERSPAN type III
    ("gre", 1234): 40 + 8,  # IPv6, GRE with a key
    ("vxlan", 5001): 20 + 8 + 8,  # IPv4, UDP, VXLAN
}


@pytest.fixture(scope="module", params=DATAPATHS)
def bed(request):
    with inside("sg%s-net" % secrets.token_hex(2)), contextlib.ExitStack() as undo:
        with TwoSites(analyzers=1, token=TOKEN, datapath=request.param) as two_sites:
            two_sites.underlay = Underlay(two_sites.ovs, two_sites.prefix).build(undo)
            two_sites.warm_up()
            yield two_sites


@contextlib.contextmanager
def watching(bed, bpf):
    """hostA's wire, the local analyzer and (what arrives at) the remote analyzer."""
    remote = Sniffer(bed.underlay.analyzer, bpf=ENCAPSULATED, direction="in")
    local = Sniffer(bed["ana1"].ns, bpf=bpf, direction="in")
    with remote, local:
        with Sniffer(bed["hostA"].ns, bpf=bpf) as wire:
            yield {"wire": wire, "local": local, "remote": remote}


def copies(capture):
    """The remote analyzer's copies grouped by (kind, key): [decoded copy]."""
    out = {}
    for packet in capture.packets:
        found = decapsulate(bytes(packet))
        if found is not None:
            out.setdefault((found["kind"], found.get("key", found.get("session_id"))),
                           []).append(found)
    return out


def tunnel_ports(bed):
    return sorted(p for p in bed.ovs.vsctl("list-ports", bed.bridge("a")).split()
                  if p.startswith("sgw"))


def test_every_kind_gets_exactly_one_copy_of_every_packet(bed):
    host, server = bed["hostA"], bed["serverB"]
    local = {"port": bed["ana1"].outside}
    with session(bed, "far", both(bed), [ERSPAN_V1, ERSPAN_V2, GRE, VXLAN, local]):
        assert tunnel_ports(bed) == PORTS
        with watching(bed, "icmp or tcp port 5201") as cap:
            assert host.ping(server.ipv4, count=3, interval=0.1) == 3
            assert host.ping(bed["routerA"].ipv4, count=2, interval=0.1) == 2
            transfer(bed, 20000)
    wire = frames(cap["wire"].packets)
    assert sum(wire.values()) > 20
    assert frames(cap["local"].packets) == wire
    got = copies(cap["remote"])
    assert sorted(got) == [("erspan", 7), ("erspan", 9), ("gre", 1234), ("vxlan", 5001)]
    for key in got:  # full-size frames cut to fit a 1500-byte path MTU
        limit = 1500 - OVERHEAD[key]
        assert inner(cap["remote"], key, is_traffic) == Counter(
            {f[:limit]: n for f, n in wire.items()}), key
    assert {(c["version"], c["index"]) for c in got["erspan", 7]} == {(1, 5)}
    assert {(c["version"], c["direction"], c["hwid"]) for c in got["erspan", 9]} == \
        {(2, "egress", 3)}
    assert tunnel_ports(bed) == []  # the session is gone, and so are its tunnel ports


# every kind over IPv4 and over IPv6, each with a key of its own
EVERY_KIND = [
    {"erspan": {"remote_ip": ANALYZER_V4, "version": 1, "session_id": 11, "index": 1}},
    {"erspan": {"remote_ip": ANALYZER_V6, "version": 1, "session_id": 12, "index": 1}},
    {"erspan": {"remote_ip": ANALYZER_V4, "version": 2, "session_id": 13}},
    {"erspan": {"remote_ip": ANALYZER_V6, "version": 2, "session_id": 14}},
    {"gre": {"remote_ip": ANALYZER_V4, "key": 21}},
    {"gre": {"remote_ip": ANALYZER_V6, "key": 22}},
    {"vxlan": {"remote_ip": ANALYZER_V4, "vni": 31}},
    {"vxlan": {"remote_ip": ANALYZER_V6, "vni": 32}},
]


def _destination(dest):
    """(REST's name, the decoder's (kind, key)) of a remote destination."""
    (kind, fields), = dest.items()
    key = fields.get("session_id", fields.get("key", fields.get("vni")))
    address = fields["remote_ip"]
    return "%s:%s/%d" % (kind, "[%s]" % address if ":" in address else address, key), \
        (kind, key)


def test_every_counter_is_what_the_analyzers_received(bed):
    """Each destination's packets and bytes, the session's and /metrics' are the copies
    and the inner bytes the analyzers received; also for a port destination after remote
    ones, and for a session whose copies are made after another session's remote ones
    (OVS 3.1 credited those with the outer headers of the copies before them)."""
    ana = bed["ana1"]
    icmp = {"ip_proto": "icmp"}
    with session(bed, "exact", both(bed), EVERY_KIND + [{"port": ana.outside}],
                 filter=icmp), \
            session(bed, "next", both(bed), [{"port": ana.outside}], filter=icmp):
        with watching(bed, "icmp") as cap:
            assert bed["hostA"].ping(bed["serverB"].ipv4, count=10, interval=0.05) == 10
        wire = [bytes(p) for p in cap["wire"].packets]
        want = {"packets": len(wire), "bytes": sum(map(len, wire))}
        assert want == {"packets": 20, "bytes": 20 * 98}
        counted = wait_for(lambda: _all_counted(bed, ("exact", "next"), want["packets"]), 10,
                           what="every copy counted")
        metrics = bed.controller.call("GET", "/metrics")[1]
    assert Counter(bytes(p) for p in cap["local"].packets) == \
        Counter({f: 2 for f in wire})  # one copy from each session
    exact = counted["exact"]
    assert exact["destinations"][ana.outside] == want
    assert counted["next"]["destinations"] == {ana.outside: want}
    for name in counted:
        assert {k: counted[name][k] for k in want} == want, name
        for family, value in (("packets", want["packets"]), ("bytes", want["bytes"])):
            assert 'sggw_mirror_%s_total{datapath="site-a",session="%s"} %d' \
                % (family, name, value) in metrics, (family, name)
    got = copies(cap["remote"])
    for dest in EVERY_KIND:
        name, key = _destination(dest)
        received = [c["inner"] for c in got.get(key, ()) if is_traffic(Ether(c["inner"]))]
        assert Counter(received) == Counter(wire), name
        assert exact["destinations"][name] == \
            {"packets": len(received), "bytes": sum(map(len, received))}, name


def _all_counted(bed, sessions, packets):
    """{session: counters} once every destination of each counts ``packets`` copies."""
    found = {}
    for name in sessions:
        status, body = api(bed, "GET", "/" + name)
        counters = body["counters"] if status == 200 else {"destinations": {}}
        if not counters["destinations"] or any(
                d["packets"] < packets for d in counters["destinations"].values()):
            return None
        found[name] = counters
    return found


SINK = ("import socket\nserver = socket.create_server(('', 5201))\nprint('ready', flush=True)\n"
        "conn, _ = server.accept()\ncount = 0\nwhile data := conn.recv(65536):\n"
        "    count += len(data)\nconn.sendall(str(count).encode())\nconn.close()\n")
SEND = ("import socket, sys\nconn = socket.create_connection((sys.argv[1], 5201))\n"
        "conn.sendall(b'x' * int(sys.argv[2]))\nconn.shutdown(socket.SHUT_WR)\n"
        "print(conn.recv(100).decode())\n")


def transfer(bed, size):
    """``size`` bytes over TCP from hostA to serverB (full-size segments); the receiver
    answers with the count it got, then both close."""
    sink = bed["serverB"].popen(sys.executable, "-c", SINK, stdout=subprocess.PIPE, text=True)
    try:
        assert sink.stdout.readline().strip() == "ready"
        out = bed["hostA"].run(sys.executable, "-c", SEND, bed["serverB"].ipv4, size)
        assert out.strip() == str(size)  # the original transfer is untouched
    finally:
        sink.kill()
        sink.wait()
    # every capture must hold the last FIN and ACK: the connection is closed once each end
    # is gone or in TIME-WAIT (which it enters sending the last ACK)
    wait_for(lambda: not open_on(bed["hostA"], 5201) and not open_on(bed["serverB"], 5201), 10,
             what="the transfer's connection closed on both ends")


def open_on(host, port):
    """TCP sockets on ``port`` in ``host``'s namespace that are not closed yet."""
    out = host.run("ss", "-Htan", "exclude", "listening", "( sport = :%d or dport = :%d )"
                   % (port, port))
    return [line for line in out.splitlines() if not line.startswith("TIME-WAIT")]


def inner(capture, key, wanted):
    """The inner frames of ``key``'s copies that ``wanted`` (a scapy predicate) selects."""
    return Counter(c["inner"] for c in copies(capture)[key] if wanted(Ether(c["inner"])))


def is_tcp_5201(packet):
    return TCP in packet and 5201 in (packet[TCP].sport, packet[TCP].dport)


def is_traffic(packet):
    return ICMP in packet or is_tcp_5201(packet)


def test_full_size_copies_are_cut_to_fit_the_path_mtu_and_counted(bed):
    small_mtu = dict(VXLAN, vxlan=dict(VXLAN["vxlan"], mtu=1400))
    with session(bed, "cut", both(bed), [ERSPAN_V1, small_mtu]):
        with watching(bed, "tcp port 5201") as cap:
            transfer(bed, 30000)
        status, body = wait_for(lambda: _counted(api(bed, "GET", "/cut")), 5,
                                what="session counters")
    wire = [bytes(p) for p in cap["wire"].packets]
    assert max(len(f) for f in wire) == 1514
    cut = 0
    for key, mtu, name in ((("erspan", 7), 1500, "erspan:%s/7" % ANALYZER_V4),
                           (("vxlan", 5001), 1400, "vxlan:%s/5001" % ANALYZER_V4)):
        limit = mtu - OVERHEAD[key]
        assert inner(cap["remote"], key, is_tcp_5201) == Counter(f[:limit] for f in wire), key
        assert body["counters"]["destinations"][name]["packets"] >= len(wire), key
        cut += sum(len(f) > limit for f in wire)
    # the session's count of cut copies, over both remote destinations (the transfer is all
    # that crossed hostA meanwhile that was long enough to be cut)
    assert body["counters"]["truncated"] == cut > 0


def _counted(response):
    status, body = response
    return (status, body) if status == 200 and body["counters"]["truncated"] > 0 else None


def test_a_snaplen_still_cuts_remote_copies(bed):
    with session(bed, "snap", both(bed), [GRE], snaplen=100):
        with watching(bed, "icmp") as cap:
            bed["hostA"].run("ping", "-n", "-c", "2", "-s", "400", bed["serverB"].ipv4)
    wire = [bytes(p) for p in cap["wire"].packets]
    assert len(wire) == 4
    assert inner(cap["remote"], ("gre", 1234), lambda p: ICMP in p) == \
        Counter(f[:100] for f in wire)


def test_health_names_an_unroutable_or_unresolved_analyzer(bed):
    status, health = bed.controller.call("GET", "/v1/health")
    assert health["status"] == "ok"
    nowhere = [{"gre": {"remote_ip": UNROUTABLE_V4, "key": 1}},
               {"vxlan": {"remote_ip": SILENT_V4, "vni": 2}}, GRE]
    with session(bed, "nowhere", both(bed), nowhere), \
            session(bed, "also-gre", both(bed), [dict(GRE, gre=dict(GRE["gre"], key=99))]):
        status, health = bed.controller.call("GET", "/v1/health")
        assert health["status"] == "degraded"
        found = {r["destination"]: r for r in
                 health["switches"]["site-a"]["remote_destinations"]}
        assert found["gre:%s/1" % UNROUTABLE_V4]["state"] == "unroutable"
        assert found["vxlan:%s/2" % SILENT_V4]["state"] == "unresolved"
        ok = found["gre:[%s]/1234" % ANALYZER_V6]
        assert ok["state"] == "ok" and ok["via"] == bed.underlay.device
        metrics = bed.controller.call("GET", "/metrics")[1]
        assert 'sggw_mirror_remote_destination_ok{datapath="site-a",destination="gre:%s/1",' \
            'session="nowhere"} 0' % UNROUTABLE_V4 in metrics
        assert 'destination="gre:[%s]/1234",session="nowhere"} 1' % ANALYZER_V6 in metrics
        api(bed, "DELETE", "/nowhere")
        assert tunnel_ports(bed) == ["sgw00000aip6gre"]  # still used by also-gre
    assert tunnel_ports(bed) == []
    status, health = bed.controller.call("GET", "/v1/health")
    assert health["status"] == "ok"


def test_a_bad_remote_destination_is_refused_and_changes_nothing(bed):
    status, body = api(bed, "POST", "", {
        "name": "bad", "sources": [{"port": bed["hostA"].outside}],
        "destinations": [GRE, {"erspan": {"remote_ip": ANALYZER_V4, "version": 1,
                                          "session_id": 7, "hwid": 3}}]})
    assert status == 400
    assert body == {"error": "is an ERSPAN v2 field; version 1 has index",
                    "field": "destinations[1].erspan.hwid"}
    assert tunnel_ports(bed) == []
    assert api(bed, "GET")[1] == []


@pytest.mark.userspace_only("restarts on the kernel datapath: test_core's")
def test_a_controller_restart_keeps_remote_sessions_and_changes_no_flow(bed):
    with session(bed, "kept", both(bed), [ERSPAN_V1, ERSPAN_V2, GRE, VXLAN]):
        before = bed.ovs.static_flows(bed.bridge("a"))
        bed.controller.stop()
        bed.controller.start()
        bed.controller.wait_programmed()
        sync = bed.controller.get("/v1/switches/site-a")["last_sync"]
        assert (sync["added"], sync["removed"]) == (0, 0), sync
        assert bed.ovs.static_flows(bed.bridge("a")) == before
        assert tunnel_ports(bed) == PORTS
        with watching(bed, "icmp") as cap:
            assert bed["hostA"].ping(bed["serverB"].ipv4, count=2, interval=0.1) == 2
        got = copies(cap["remote"])
        for key in (("erspan", 7), ("erspan", 9), ("gre", 1234), ("vxlan", 5001)):
            assert inner(cap["remote"], key, is_traffic) == frames(cap["wire"].packets), key
        assert len(got) == 4


def test_two_bridges_of_one_switch_each_send_their_copies(bed):
    """Each bridge has tunnel ports of its own (OVS refuses two with the same options)."""
    server = bed["serverB"]
    body = {"name": "b-side", "sources": [{"port": server.outside, "direction": "both"}],
            "destinations": [dict(GRE, gre=dict(GRE["gre"], key=77))]}
    status, created = bed.controller.call("POST", "/v1/switches/site-b/mirrors", body)
    assert status == 201, created
    try:
        with session(bed, "a-side", both(bed), [GRE]), watching(bed, "icmp") as cap:
            assert bed["hostA"].ping(server.ipv4, count=2, interval=0.1) == 2
    finally:
        bed.controller.call("DELETE", "/v1/switches/site-b/mirrors/b-side")
    got = copies(cap["remote"])
    wire = frames(cap["wire"].packets)  # hostA's frames; serverB sees them re-addressed
    assert inner(cap["remote"], ("gre", 1234), is_traffic) == wire
    assert sum(1 for c in got["gre", 77] if is_traffic(Ether(c["inner"]))) == 4
