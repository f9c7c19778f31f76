"""Put hand-made frames on a wire: scapy frames sent from inside a namespace."""
import os
import sys
import tempfile

from scapy.utils import wrpcap

_SEND = "import sys; from scapy.all import rdpcap, sendp; sendp(rdpcap(sys.argv[1]), " \
        "iface=sys.argv[2], verbose=0)"


def inject(ns, frames, ifname="eth0"):
    """Send scapy ``frames`` out of ``ifname`` in namespace ``ns``, in order."""
    fd, path = tempfile.mkstemp(suffix=".pcap", prefix="sggw-inject-")
    os.close(fd)
    try:
        wrpcap(path, frames)
        ns.run(sys.executable, "-c", _SEND, path, ifname, timeout=120)
    finally:
        os.unlink(path)
