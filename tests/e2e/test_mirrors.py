"""Mirror sessions on the real switch, created over REST, checked at the analyzers.

Every check compares what the analyzers captured with what really crossed hostA's wire,
byte for byte.
"""
import contextlib
import subprocess
import sys
import time
from collections import Counter

import pytest
from scapy.layers.inet import ICMP, IP, TCP
from scapy.layers.l2 import Dot1Q, Ether

from tests.e2e.kernel import DATAPATHS
from testbed.proc import wait_for
from testbed.sniff import Sniffer
from testbed.topology import TwoSites

TOKEN = "mirror-test-token"
ECHO = [sys.executable, "-m", "testbed.echo"]
TRAFFIC = "icmp or tcp port 5001 or tcp port 443"
ANALYZERS = ("ana1", "ana2", "ana3")


@pytest.fixture(scope="module", params=DATAPATHS)
def bed(request):
    with TwoSites(analyzers=3, token=TOKEN, datapath=request.param) as two_sites:
        two_sites.warm_up()
        yield two_sites


@pytest.fixture(scope="module")
def echo(bed):
    procs = [bed["serverB"].popen(*ECHO, "serve", "tcp", port, stdout=subprocess.PIPE,
                                  text=True) for port in (5001, 443)]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready"
    yield
    for proc in procs:
        proc.kill()
        proc.wait()


def api(bed, method, path="", body=None):
    return bed.controller.call(method, "/v1/switches/site-a/mirrors" + path, body)


@contextlib.contextmanager
def session(bed, name, sources, destinations, **options):
    body = dict(name=name, sources=sources, destinations=destinations, **options)
    status, created = api(bed, "POST", "", body)
    assert status == 201, created
    # flows OVS had cached in its datapath are copied once its revalidator re-translated them
    bed.ovs.revalidated()
    try:
        yield created
    finally:
        status, _ = api(bed, "DELETE", "/" + name)
        assert status in (204, 404)


def both(bed, host="hostA"):
    return [{"port": bed[host].outside, "direction": "both"}]


def to(bed, *names, **options):
    return [dict({"port": bed[name].outside}, **options) for name in names]


@contextlib.contextmanager
def watching(bed, analyzers, bpf=TRAFFIC):
    """Capture on hostA's wire and (receive side only) at the analyzers. The analyzers
    listen longer on both ends, so they can only see more than the wire, never less."""
    captures = {name: Sniffer(bed[name].ns, bpf=bpf, direction="in") for name in analyzers}
    for cap in captures.values():
        cap.__enter__()
    wire = Sniffer(bed["hostA"].ns, bpf=bpf)
    try:
        with wire:
            yield captures
    finally:
        for cap in captures.values():
            cap.stop()
        captures["wire"] = wire


def exchange(bed, port=5001, message="mirror me"):
    out = bed["hostA"].run(*ECHO, "ask", "tcp", bed["serverB"].ipv4, port, message, timeout=15)
    assert out.strip() == message  # the exchange itself is unchanged


def traffic(bed):
    """Captured (to the tunnel) and reply traffic, bridged traffic, and a TCP exchange."""
    host = bed["hostA"]
    assert host.ping(bed["serverB"].ipv4, count=3) == 3
    assert host.ping(bed["routerA"].ipv4, count=2) == 2
    exchange(bed)


def frames(packets):
    return Counter(bytes(p) for p in packets)


def test_each_analyzer_gets_exactly_one_copy_of_every_packet(bed, echo):
    with session(bed, "span", both(bed), to(bed, *ANALYZERS)):
        with watching(bed, ANALYZERS) as cap:
            traffic(bed)
    wire = frames(cap["wire"].packets)
    host, server = bed["hostA"], bed["serverB"]
    sent = [p for p in cap["wire"].packets if p[Ether].src == host.mac]
    received = [p for p in cap["wire"].packets if p[Ether].dst == host.mac]
    # requests captured into the tunnel, replies by the reverse path, bridged pings, TCP
    assert any(IP in p and p[IP].dst == server.ipv4 for p in sent)
    assert any(IP in p and p[IP].src == server.ipv4 and ICMP in p for p in received)
    assert any(IP in p and p[IP].src == server.ipv4 and TCP in p for p in received)
    for name in ANALYZERS:
        assert frames(cap[name].packets) == wire, name


def test_rx_and_tx_sessions_copy_only_their_direction(bed, echo):
    host = bed["hostA"]
    with session(bed, "rx", [{"port": host.outside, "direction": "rx"}], to(bed, "ana1")), \
            session(bed, "tx", [{"port": host.outside, "direction": "tx"}], to(bed, "ana2")):
        with watching(bed, ("ana1", "ana2")) as cap:
            traffic(bed)
    sent = [p for p in cap["wire"].packets if p[Ether].src == host.mac]
    received = [p for p in cap["wire"].packets if p[Ether].dst == host.mac]
    assert sent and received
    assert frames(cap["ana1"].packets) == frames(sent)
    assert frames(cap["ana2"].packets) == frames(received)


@pytest.mark.userspace_only("OpenFlow matching: the same on any datapath")
def test_a_filter_copies_only_matching_packets(bed, echo):
    with session(bed, "https", both(bed), to(bed, "ana1"),
                 filter={"ip_proto": "tcp", "dst_port": 443}):
        with watching(bed, ("ana1",)) as cap:
            traffic(bed)
            exchange(bed, port=443)
    to_443 = [p for p in cap["wire"].packets if TCP in p and p[TCP].dport == 443]
    assert to_443 and len(to_443) < len(cap["wire"].packets)
    assert frames(cap["ana1"].packets) == frames(to_443)


def test_snaplen_truncates_and_vlan_and_eth_dst_rewrite_the_copies(bed):
    host, server = bed["hostA"], bed["serverB"]
    analyzer_mac = "02:aa:00:00:00:02"
    with session(bed, "shaped", both(bed),
                 to(bed, "ana1", vlan=42) + [{"port": bed["ana2"].outside,
                                              "eth_dst": analyzer_mac}] + to(bed, "ana3"),
                 snaplen=100):
        with watching(bed, ANALYZERS, bpf="icmp or (vlan 42 and icmp)") as cap:
            host.run("ping", "-n", "-c", "2", "-s", "400", server.ipv4)
    originals = [bytes(p) for p in cap["wire"].packets]
    assert len(originals) == 4 and all(len(f) > 400 for f in originals)
    tagged = [bytes(p) for p in cap["ana1"].packets]
    assert all(Dot1Q in p and p[Dot1Q].vlan == 42 for p in cap["ana1"].packets)
    # snaplen keeps the packet's first 100 bytes; the pushed tag (after the MACs) comes on top
    assert sorted(tagged) == sorted(f[:12] + b"\x81\x00\x00\x2a" + f[12:100] for f in originals)
    readdressed = [bytes(p) for p in cap["ana2"].packets]
    assert sorted(readdressed) == sorted(bytes.fromhex(analyzer_mac.replace(":", "")) + f[6:100]
                                         for f in originals)
    assert sorted(bytes(p) for p in cap["ana3"].packets) == sorted(f[:100] for f in originals)


def test_a_rate_limit_caps_the_copies_never_the_original(bed):
    host, server = bed["hostA"], bed["serverB"]
    with session(bed, "capped", both(bed), to(bed, "ana1"), rate_limit={"pps": 20}):
        with watching(bed, ("ana1",), bpf="icmp") as cap:
            started = time.monotonic()
            out = host.run("ping", "-n", "-q", "-i", "0.01", "-c", "300", server.ipv4,
                           timeout=60)
            seconds = time.monotonic() - started
        assert "300 packets transmitted, 300 received" in out, out  # the original: untouched
        copies = len(cap["ana1"].packets)
        assert len(cap["wire"].packets) == 600
        # 20 packets/s for the run, plus a one-second burst allowance
        assert 20 * seconds * 0.5 <= copies <= 20 * (seconds + 1) + 20, (copies, seconds)
        status, body = wait_for(lambda: _settled(api(bed, "GET", "/capped")), 5,
                                what="session counters")
        assert body["counters"]["rate_limited"] > 0


def _all_counted(response, copies):
    """The session's counters once they show ``copies`` copies for every destination."""
    status, body = response
    assert status == 200, body
    counters = body["counters"]
    done = counters["packets"] >= copies and all(
        d["packets"] >= copies for d in counters["destinations"].values())
    return counters if done else None


def _settled(response):
    status, body = response
    return (status, body) if status == 200 and body["counters"]["packets"] > 0 else None


def test_session_counters_match_what_the_analyzers_received(bed):
    host, server = bed["hostA"], bed["serverB"]
    with session(bed, "counted", both(bed), to(bed, "ana1", "ana2"),
                 filter={"ip_proto": "icmp"}):
        with watching(bed, ("ana1", "ana2"), bpf="icmp") as cap:
            host.ping(server.ipv4, count=5, interval=0.1)
            host.ping(bed["routerA"].ipv4, count=3, interval=0.1)
            # OVS credits groups with what its revalidator counted in the datapath (every
            # 0.5 s, later on a busy machine): wait until every copy is in
            counters = wait_for(lambda: _all_counted(api(bed, "GET", "/counted"), 16), 10,
                                what="session counters")
        assert counters["packets"] == len(cap["wire"].packets) == 16
        for name in ("ana1", "ana2"):
            assert counters["destinations"][bed[name].outside]["packets"] == \
                len(cap[name].packets) == 16


def test_deleting_a_session_stops_copies_and_leaves_nothing_behind(bed):
    host, server = bed["hostA"], bed["serverB"]
    before = _mirror_state(bed)
    with session(bed, "brief", both(bed), to(bed, "ana1"), rate_limit={"kbps": 1000}):
        assert _mirror_state(bed) != before
    bed.ovs.revalidated()  # and no flow OVS had cached is copied any more
    with watching(bed, ("ana1",), bpf="icmp") as cap:
        host.ping(server.ipv4, count=2)
    assert not cap["ana1"].packets
    assert _mirror_state(bed) == before  # no mirror flow, group or meter left


def _mirror_state(bed):
    bridge = bed.bridge("a")
    flows = [line for line in bed.ovs.ofctl("dump-flows", bridge, "--no-stats").splitlines()
             if "cookie=0x536703" in line or "group:" in line]
    groups = bed.ovs.ofctl("dump-groups", bridge).splitlines()[1:]
    meters = [line for line in bed.ovs.ofctl("dump-meters", bridge).splitlines()
              if line.startswith("meter=")]
    return flows, groups, meters


@pytest.mark.userspace_only("restarts on the kernel datapath: test_core's")
def test_sessions_made_over_rest_survive_a_controller_restart(bed):
    host, server = bed["hostA"], bed["serverB"]
    with session(bed, "lasting", both(bed), to(bed, "ana1")):
        bed.controller.stop()
        bed.controller.start()
        bed.controller.wait_programmed()
        status, listed = api(bed, "GET")
        assert status == 200
        assert [(m["name"], m["source"]) for m in listed] == [("lasting", "api")]
        with watching(bed, ("ana1",), bpf="icmp") as cap:
            host.ping(server.ipv4, count=2)
        assert frames(cap["ana1"].packets) == frames(cap["wire"].packets)
        assert len(cap["ana1"].packets) == 4
