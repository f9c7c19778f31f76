"""The OpenVPN tunnel of the test bed on its own: frames cross it, and it leaves nothing behind.

(The sggw checks over it are test_core's ``*-openvpn`` runs.)
"""
import os
import socket
import tempfile

from scapy.layers.l2 import Ether

from testbed.openvpn import OpenVpnPair
from testbed.proc import alive
from testbed.sniff import Sniffer


def test_frames_cross_and_a_second_pair_starts_where_the_first_stopped():
    frame = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", type=0x88b5)
                  / (b"sggw" * 32))
    with tempfile.TemporaryDirectory(prefix="sggw-vpn-") as workdir:
        for run in (1, 2):  # the same TAP names and directory, twice in a row
            vpn = OpenVpnPair(os.path.join(workdir, "vpn"), "sgvpnx", "sgvpny")
            try:
                vpn.start()
                assert vpn.setup_seconds < 10
                with Sniffer(None, "sgvpny", bpf="ether proto 0x88b5") as cap:
                    send_frame("sgvpnx", frame)
                assert [bytes(p) for p in cap.packets] == [frame], "run %d" % run
                pids = vpn.pids()
            finally:
                vpn.stop()
            assert not [pid for pid in pids if alive(pid)]
            assert not [t for t in vpn.taps if os.path.exists("/sys/class/net/" + t)]


def send_frame(ifname, frame):
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
        sock.bind((ifname, 0))
        sock.send(frame)
