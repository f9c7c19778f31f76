"""The demo: two sites on a private Open vSwitch, the real controller, real packets.

    python -m testbed.demo        (as root; ``scripts/demo`` installs what it needs first)

hostA (site A) talks to serverB (site B) through the tunnel with no route to it. The demo
shows a reply arriving at hostA rewritten to come "from its gateway", the reverse paths the
switches learned by themselves, and that the controller saw no packet. It cleans up after.
"""
import sys

from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Ether

from testbed.signals import exit_cleanly_on_sigterm
from testbed.sniff import Sniffer
from testbed.topology import TwoSites


def say(text=""):
    print(text, flush=True)


def main():
    exit_cleanly_on_sigterm()
    say("Building two sites on a private Open vSwitch (userspace datapath)...")
    with TwoSites() as bed:
        host, server, router = bed["hostA"], bed["serverB"], bed["routerA"]
        say("  hostA   %-10s %s  (gateway routerA %s %s)"
            % (host.ipv4, host.mac, router.ipv4, router.mac))
        say("  serverB %-10s %s  (site B, reachable only through the tunnel)"
            % (server.ipv4, server.mac))
        say("  controller: %s, both switches programmed" % bed.controller.api)
        bed.warm_up()
        say("\nhostA pings serverB; tcpdump on hostA's wire:")
        with Sniffer(host.ns, bpf="icmp") as cap:
            received = host.ping(server.ipv4, count=3)
        for p in cap.packets:
            kind = "request" if p[ICMP].type == 8 else "reply  "
            say("  %s %s -> %s   eth %s -> %s"
                % (kind, p[IP].src, p[IP].dst, p[Ether].src, p[Ether].dst))
        say("  %d/3 replies; each came back to hostA's MAC from routerA's MAC, with no route"
            % received)
        say("\nReverse paths the switches learned (ovs-ofctl dump-flows table=20):")
        for site in "ab":
            for f in bed.flows(site, 20):
                say("  site %s: %s" % (site.upper(), f.line.split("priority=10,", 1)[-1]))
        packet_ins = sum(bed.controller.packet_ins(bed.dp_name(s)) for s in "ab")
        say("\nPacket-ins the controller received for all of this: %d" % packet_ins)
        ok = received == 3 and packet_ins == 0 and all(
            p[Ether].src == router.mac for p in cap.packets if p[ICMP].type == 0)
    say("\nCleaned up: daemons stopped by PID, namespaces and links removed.")
    say("Demo %s." % ("passed" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
