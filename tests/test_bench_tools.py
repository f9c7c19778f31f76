"""Smoke tests of the benchmark tools in bench/.

``flowgen`` and ``blast`` run over a bare veth pair between two network namespaces of their
own (root only: the tests fail, not skip, without it); the reactive baseline is checked as
a Ryu OpenFlow 1.3 app driven with a fake datapath.
"""
import ipaddress
import json
import os
import secrets
import select
import signal
import struct
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from testbed.controller import ROOT
from testbed.proc import popen, stop_child

UDP_PORTS, TCP_PORTS = "9000-9003", "9100-9103"
CLIENT_IP, SERVER_IP = "10.250.0.1", "10.250.0.2"
FLOWGEN_KEYS = {"proto", "workers", "concurrency", "duration", "completed", "failed", "rate",
                "p50_ms", "p90_ms", "p99_ms", "max_ms", "distinct_tuples", "errors"}


def sh(*cmd, ns=None, timeout=30, check=True):
    argv = (["ip", "netns", "exec", ns] if ns else []) + [str(c) for c in cmd]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if check and done.returncode != 0:
        raise AssertionError("%s: exit %d: %s" % (" ".join(argv), done.returncode,
                                                  (done.stderr or done.stdout).strip()))
    return done


def wait_for_line(stream, text, timeout=10.0):
    """Read ``stream`` until a line contains ``text``; the lines read."""
    deadline, lines = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        if select.select([stream], [], [], max(0.0, deadline - time.monotonic()))[0]:
            line = stream.readline()
            if not line:
                break
            lines.append(line)
            if text in line:
                return lines
    raise AssertionError("no %r within %ss; got %r" % (text, timeout, lines))


@pytest.fixture(scope="module")
def pair():
    """Namespaces client (10.250.0.1) and server (10.250.0.2) joined by a veth pair."""
    if os.geteuid() != 0:
        pytest.fail("the bench tool tests need root (network namespaces, veth, AF_PACKET)")
    suffix = secrets.token_hex(3)
    client, server = "bt-c-" + suffix, "bt-s-" + suffix
    try:
        for ns in (client, server):
            sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", "eth0", "netns", client, "type", "veth", "peer", "name", "eth0",
           "netns", server)
        for ns, address in ((client, CLIENT_IP), (server, SERVER_IP)):
            sh("ip", "link", "set", "lo", "up", ns=ns)
            sh("ethtool", "-K", "eth0", "tx", "off", ns=ns)
            sh("ip", "addr", "add", address + "/24", "dev", "eth0", ns=ns)
            sh("ip", "link", "set", "eth0", "up", ns=ns)
        sh("sysctl", "-qw", "net.ipv4.ip_local_port_range=1024 65535", ns=client)
        macs = [json.loads(sh("ip", "-j", "link", "show", "eth0", ns=ns).stdout)[0]["address"]
                for ns in (client, server)]
        yield SimpleNamespace(client=client, server=server, client_mac=macs[0],
                              server_mac=macs[1])
    finally:
        for ns in (client, server):
            sh("ip", "netns", "del", ns, check=False)   # takes its end of the veth pair along


@pytest.fixture(scope="module")
def echo(pair):
    proc = popen(sys.executable, "-m", "bench.flowgen", "serve", "--udp-ports", UDP_PORTS,
                 "--tcp-ports", TCP_PORTS, ns=pair.server, cwd=ROOT, stdout=subprocess.PIPE,
                 text=True)
    try:
        wait_for_line(proc.stdout, "ready")
        yield proc
    finally:
        stop_child(proc)


def flowgen(pair, proto, ports, *extra):
    out = sh(sys.executable, "-m", "bench.flowgen", "run", proto, "--target", SERVER_IP,
             "--ports", ports, *extra, ns=pair.client).stdout
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    return json.loads(lines[0])


@pytest.mark.parametrize("proto", ["udp", "tcp"])
def test_flowgen_makes_many_short_flows(pair, echo, proto):
    result = flowgen(pair, proto, UDP_PORTS if proto == "udp" else TCP_PORTS,
                     "--duration", 1, "--workers", 2, "--concurrency", 4)
    assert set(result) == FLOWGEN_KEYS, result
    assert (result["proto"], result["workers"], result["concurrency"]) == (proto, 2, 4)
    assert result["failed"] == 0 and result["errors"] == {}, result
    assert result["completed"] > 100, result
    assert result["duration"] >= 1.0
    assert result["rate"] == pytest.approx(result["completed"] / result["duration"], rel=0.01)
    assert 0 < result["p50_ms"] <= result["p90_ms"] <= result["p99_ms"] <= result["max_ms"]
    # a new socket each time: (source port, destination port) pairs hardly ever repeat
    assert result["distinct_tuples"] >= 0.8 * result["completed"], result
    assert echo.poll() is None, "the echo server died"


def test_flowgen_counts_failures_and_carries_on(pair, echo):
    result = flowgen(pair, "tcp", "9999", "--duration", 0.3, "--timeout", 0.2)
    assert result["completed"] == 0 and result["failed"] > 0, result
    assert result["errors"].get("ECONNREFUSED") == result["failed"], result
    assert result["p50_ms"] is None


def test_flowgen_and_blast_refuse_bad_arguments():
    for argv in (["bench.flowgen", "run", "udp", "--target", SERVER_IP, "--ports", "70000",
                  "--duration", "1"],
                 ["bench.flowgen", "run", "tcp", "--target", "nowhere", "--ports", "9000",
                  "--duration", "1"],
                 ["bench.blast", "--iface", "lo", "--src-mac", "02:00:00:00:00:01",
                  "--dst-mac", "zz", "--dst-ip", SERVER_IP, "--count", "1"]):
        assert sh(sys.executable, "-m", *argv, check=False).returncode == 2, argv


def _udp_frames(pcap):
    """(source IP, source port, IPv4 header) of each IPv4/UDP frame in a pcap file."""
    with open(pcap, "rb") as f:
        data = f.read()
    frames, offset = [], 24                           # past the global header
    while offset < len(data):
        caplen = struct.unpack_from("<I", data, offset + 8)[0]
        frame = data[offset + 16:offset + 16 + caplen]
        offset += 16 + caplen
        if frame[12:14] == b"\x08\x00" and frame[23] == 17:
            ihl = (frame[14] & 0x0F) * 4
            frames.append((str(ipaddress.IPv4Address(frame[26:30])),
                           struct.unpack_from("!H", frame, 14 + ihl)[0], frame[14:14 + ihl]))
    return frames


def _checksum_ok(header):
    total = sum(struct.unpack("!%dH" % (len(header) // 2), header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total == 0xFFFF


def test_blast_sends_distinct_tuples(pair, tmp_path):
    from bench.blast import tuple_of
    pcap = tmp_path / "blast.pcap"
    # a small snaplen: in immediate mode each ring slot holds a whole snaplen, and with the
    # default (256 KiB) a busy machine overflows the ring before tcpdump gets the CPU
    capture = popen("tcpdump", "-i", "eth0", "--immediate-mode", "-Z", "root", "-U", "-n",
                    "-s", 128, "-B", 8192, "-w", pcap, "udp and dst port 9", ns=pair.server,
                    stderr=subprocess.PIPE, text=True)
    try:
        wait_for_line(capture.stderr, "listening on")
        out = sh(sys.executable, "-m", "bench.blast", "--iface", "eth0", "--src-mac",
                 pair.client_mac, "--dst-mac", pair.server_mac, "--dst-ip", SERVER_IP,
                 "--count", 1000, "--first", 32000, ns=pair.client).stdout
        result = json.loads(out)
        assert result["sent"] == 1000 and result["seconds"] > 0 and result["pps"] > 0, result
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (
                not pcap.exists() or pcap.stat().st_size < 24 + 1000 * (16 + 60)):
            time.sleep(0.05)
    finally:
        stop_child(capture, signal.SIGINT)
    frames = _udp_frames(pcap)
    tuples = [(src, sport) for src, sport, _ in frames]
    assert len(frames) == 1000
    # the source address varies fastest: /17 has 32766 hosts, so tuple 32766 is port 1025
    assert tuples == [tuple_of(i, ipaddress.IPv4Network("10.1.128.0/17"))
                      for i in range(32000, 33000)]
    assert len(set(tuples)) == 1000 and {"10.1.128.1", "10.1.255.254"} <= {s for s, _ in tuples}
    assert all(_checksum_ok(header) for _, _, header in frames)


@pytest.mark.filterwarnings("ignore:'cgi' is deprecated:DeprecationWarning")   # WebOb, via Ryu
def test_reactive_app_is_an_openflow13_learning_switch():
    import app.eventlet_compat  # noqa: F401 - Ryu 4.34 needs it before ryu.app.wsgi
    from ryu.base import app_manager
    from ryu.lib.packet import arp, ethernet, ipv4, packet, udp
    from ryu.ofproto import ofproto_v1_3 as ofp
    from ryu.ofproto import ofproto_v1_3_parser as parser

    from bench import reactive_app

    assert issubclass(reactive_app.ReactiveSwitch13, app_manager.RyuApp)
    assert reactive_app.ReactiveSwitch13.OFP_VERSIONS == [4]
    assert not getattr(reactive_app.ReactiveSwitch13, "_CONTEXTS", None)   # no REST API

    sent = []
    datapath = SimpleNamespace(id=7, ofproto=ofp, ofproto_parser=parser, send_msg=sent.append)
    switch = reactive_app.ReactiveSwitch13()
    switch._features(SimpleNamespace(msg=SimpleNamespace(datapath=datapath)))
    miss = sent[-1]
    assert (miss.priority, dict(miss.match.items())) == (0, {})
    assert miss.instructions[0].actions[0].port == ofp.OFPP_CONTROLLER

    a, b = "02:00:00:00:00:0a", "02:00:00:00:00:0b"

    def packet_in(in_port, *layers):
        pkt = packet.Packet()
        for layer in layers:
            pkt.add_protocol(layer)
        pkt.serialize()
        sent.clear()
        switch._packet_in(SimpleNamespace(msg=parser.OFPPacketIn(
            datapath, buffer_id=ofp.OFP_NO_BUFFER, reason=0, table_id=0,
            match=parser.OFPMatch(in_port=in_port), data=bytes(pkt.data))))
        return ([m for m in sent if isinstance(m, parser.OFPFlowMod)],
                [m.actions[0].port for m in sent if isinstance(m, parser.OFPPacketOut)])

    flows, outs = packet_in(2, ethernet.ethernet("ff:ff:ff:ff:ff:ff", b, 0x0806), arp.arp())
    assert (flows, outs) == ([], [ofp.OFPP_FLOOD])
    flows, outs = packet_in(1, ethernet.ethernet(b, a, 0x0800),
                            ipv4.ipv4(src="10.0.0.1", dst="10.0.0.2", proto=17),
                            udp.udp(src_port=40000, dst_port=9000))
    assert outs == [2] and len(flows) == 1
    assert (flows[0].priority, flows[0].idle_timeout) == (10, 60)
    assert dict(flows[0].match.items()) == {
        "in_port": 1, "eth_src": a, "eth_dst": b, "eth_type": 0x0800, "ip_proto": 17,
        "ipv4_src": "10.0.0.1", "ipv4_dst": "10.0.0.2", "udp_src": 40000, "udp_dst": 9000}
    flows, outs = packet_in(1, ethernet.ethernet(b, a, 0x0806), arp.arp())
    assert (flows, outs) == ([], [2])                # known destination, but no flow for ARP
    assert switch.counts[7]["packet_in"] == 3
