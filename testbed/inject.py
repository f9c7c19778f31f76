"""Put hand-made frames on a wire: scapy frames sent from inside a namespace.

The sender is a few lines of the standard library (a packet socket), run without the
venv's site hooks: scapy and eventlet take seconds to import, many more in an emulated VM.
"""
import os
import struct
import sys
import tempfile

_SEND = ("import socket, struct, sys\n"
         "data = open(sys.argv[1], 'rb').read()\n"
         "with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:\n"
         "    sock.bind((sys.argv[2], 0))\n"
         "    while data:\n"
         "        size, = struct.unpack_from('!H', data)\n"
         "        sock.send(data[2:2 + size])\n"
         "        data = data[2 + size:]\n")


def inject(ns, frames, ifname="eth0"):
    """Send scapy ``frames`` out of ``ifname`` in namespace ``ns``, in order."""
    fd, path = tempfile.mkstemp(suffix=".frames", prefix="sggw-inject-")
    try:
        with os.fdopen(fd, "wb") as handle:
            for frame in map(bytes, frames):
                handle.write(struct.pack("!H", len(frame)) + frame)
        ns.run(sys.executable, "-I", "-S", "-c", _SEND, path, ifname)
    finally:
        os.unlink(path)
