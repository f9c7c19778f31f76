"""A routed underlay toward a remote analyzer, as the README tells users to set one up.

On the userspace datapath (OVS routes tunnel packets itself, only through a bridge's own
interface)::

    OVS bridge <prefix>u (NORMAL, no controller); its own (LOCAL) interface 172.31.250.1/24,
    fd00:fa::1/64, is where OVS's userspace tunnels route from
      port 1 -- veth -- namespace <prefix>-remote: the analyzer, 172.31.250.2, fd00:fa::2

On the kernel datapath (Linux routes them, with its own table and neighbours), an ordinary
interface, as an endpoint's NIC toward its analyzers::

    <prefix>u 172.31.250.1/24, fd00:fa::1/64 -- veth -- namespace <prefix>-remote: the analyzer

Build it inside a bed's own network namespace (:func:`testbed.netns.inside`): the local
addresses must sit next to ovs-vswitchd. ``device`` is the interface copies leave through.
"""
import struct

from testbed.netns import Namespace, add_address, veth_to_namespace
from testbed.proc import run

LOCAL_V4, LOCAL_V6 = "172.31.250.1", "fd00:fa::1"
ANALYZER_V4, ANALYZER_V6 = "172.31.250.2", "fd00:fa::2"
SILENT_V4 = "172.31.250.99"  # on the underlay's subnet, but nobody answers for it
UNROUTABLE_V4 = "203.0.113.9"  # TEST-NET-3: no route


class Underlay:
    def __init__(self, ovs, prefix, mtu=1500):
        self.ovs, self.device, self.mtu = ovs, prefix + "u", mtu
        self.analyzer = None
        self.prefix = prefix

    def build(self, undo):
        """Create everything; ``undo`` (an ExitStack) removes the namespace."""
        self.analyzer = Namespace(self.prefix + "-remote")
        undo.callback(self.analyzer.delete)
        if self.ovs.datapath == "netdev":
            self.ovs.vsctl("add-br", self.device, "--", "set", "bridge", self.device,
                           "datapath_type=netdev")
            outside = self.prefix + "ur"
            veth_to_namespace(outside, self.analyzer, mtu=self.mtu)
            self.ovs.add_port(self.device, outside, 1)
        else:
            veth_to_namespace(self.device, self.analyzer, mtu=self.mtu, quiet=False)
        add_address(self.analyzer, ANALYZER_V4 + "/24")
        add_address(self.analyzer, ANALYZER_V6 + "/64")
        run("ip", "link", "set", self.device, "mtu", self.mtu, "up")
        run("ip", "addr", "add", LOCAL_V4 + "/24", "dev", self.device)
        run("ip", "addr", "add", LOCAL_V6 + "/64", "dev", self.device, "nodad")
        return self


def decapsulate(frame):
    """What an analyzer gets from one encapsulated copy (an Ethernet frame as bytes):
    {kind, key, inner, and for ERSPAN version, session_id, index or direction and hwid}."""
    eth_type = struct.unpack_from("!H", frame, 12)[0]
    if eth_type == 0x0800:
        proto, offset = frame[23], 14 + (frame[14] & 0x0F) * 4
    elif eth_type == 0x86DD:
        proto, offset = frame[20], 14 + 40
    else:
        return None
    if proto == 17:  # UDP: VXLAN
        if struct.unpack_from("!H", frame, offset + 2)[0] != 4789:
            return None
        vni = struct.unpack_from("!I", frame, offset + 12)[0] >> 8
        return {"kind": "vxlan", "key": vni, "inner": frame[offset + 16:]}
    if proto != 47:
        return None
    flags, gre_proto = struct.unpack_from("!HH", frame, offset)
    offset += 4
    key = None
    if flags & 0x8000:  # checksum
        offset += 4
    if flags & 0x2000:
        key = struct.unpack_from("!I", frame, offset)[0]
        offset += 4
    if flags & 0x1000:  # sequence number
        offset += 4
    if gre_proto == 0x6558:
        return {"kind": "gre", "key": key, "inner": frame[offset:]}
    word0, word1 = struct.unpack_from("!HH", frame, offset)
    out = {"kind": "erspan", "version": word0 >> 12, "session_id": word1 & 0x3FF}
    if gre_proto == 0x88BE:  # ERSPAN type II (version field 1)
        out["index"] = struct.unpack_from("!I", frame, offset + 4)[0] & 0xFFFFF
        return dict(out, inner=frame[offset + 8:])
    if gre_proto == 0x22EB:  # type III (version field 2)
        last = struct.unpack_from("!H", frame, offset + 10)[0]
        out.update(hwid=(last >> 4) & 0x3F, direction="egress" if last & 0x8 else "ingress")
        return dict(out, inner=frame[offset + 12:])
    return None
