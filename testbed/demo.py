"""The demo: two sites on a private Open vSwitch, the real controller, real packets.

    python -m testbed.demo [--openvpn]   (as root; ``scripts/demo`` installs what it needs)

hostA (site A) talks to serverB (site B) through the tunnel with no route to it: a veth pair,
or with ``--openvpn`` a real OpenVPN TAP tunnel (two peers on loopback). The demo
shows a reply arriving at hostA rewritten to come "from its gateway", the reverse paths the
switches learned by themselves, and that the controller saw no packet. It cleans up after.
"""
import argparse
import contextlib
import sys

from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Ether

from testbed.signals import exit_cleanly_on_sigterm
from testbed.sniff import Sniffer
from testbed.topology import TwoSites


def say(text=""):
    print(text, flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="scripts/demo", description=__doc__.split("\n")[0])
    parser.add_argument("--openvpn", action="store_true",
                        help="join the sites by a real OpenVPN TAP tunnel, not a veth pair")
    args = parser.parse_args(argv)
    exit_cleanly_on_sigterm()
    say("Building two sites on a private Open vSwitch (userspace datapath)...")
    with TwoSites(tunnel="openvpn" if args.openvpn else "veth") as bed:
        host, server, router = bed["hostA"], bed["serverB"], bed["routerA"]
        say("  hostA   %-10s %s  (gateway routerA %s %s)"
            % (host.ipv4, host.mac, router.ipv4, router.mac))
        say("  serverB %-10s %s  (site B, reachable only through the tunnel)"
            % (server.ipv4, server.mac))
        if bed.vpn:
            say("  tunnel: OpenVPN TAP %s <-> %s, UDP 127.0.0.1:%d <-> :%d, up in %.1f s;"
                % (*bed.vpn.taps, *bed.vpn.ports, bed.vpn.setup_seconds))
            say("          each TAP a bridge's tunnel port, with no IP and no route")
        else:
            say("  tunnel: a veth pair %s <-> %s" % (bed.tunnel_port("a"), bed.tunnel_port("b")))
        say("  controller: %s, both switches programmed" % bed.controller.api)
        bed.warm_up()
        say("\nhostA pings serverB; tcpdump on hostA's wire:")
        with contextlib.ExitStack() as stack:
            cap = stack.enter_context(Sniffer(host.ns, bpf="icmp"))
            outer = stack.enter_context(Sniffer(None, "lo", bpf="udp")) if bed.vpn else None
            received = host.ping(server.ipv4, count=3)
        for p in cap.packets:
            kind = "request" if p[ICMP].type == 8 else "reply  "
            say("  %s %s -> %s   eth %s -> %s"
                % (kind, p[IP].src, p[IP].dst, p[Ether].src, p[Ether].dst))
        say("  %d/3 replies; each came back to hostA's MAC from routerA's MAC, with no route"
            % received)
        datagrams = bed.vpn.datagrams(outer.packets) if bed.vpn else ()
        if bed.vpn:
            say("  meanwhile %d encrypted UDP datagrams crossed loopback between the OpenVPN "
                "peers" % len(datagrams))
        say("\nReverse paths the switches learned (ovs-ofctl dump-flows table=20):")
        for site in "ab":
            for f in bed.flows(site, 20):
                say("  site %s: %s" % (site.upper(), f.line.split("priority=10,", 1)[-1]))
        packet_ins = sum(bed.controller.packet_ins(bed.dp_name(s)) for s in "ab")
        say("\nPacket-ins the controller received for all of this: %d" % packet_ins)
        ok = received == 3 and packet_ins == 0 and (not bed.vpn or len(datagrams) >= 6) and all(
            p[Ether].src == router.mac for p in cap.packets if p[ICMP].type == 0)
    say("\nCleaned up: daemons stopped by PID, namespaces and links removed.")
    say("Demo %s." % ("passed" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
