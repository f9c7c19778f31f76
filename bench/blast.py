"""Fill learned tables fast: spoofed IPv4/UDP frames, each a distinct (source IP, source port).

    python -m bench.blast --iface eth0 --src-mac MAC --dst-mac MAC --dst-ip IP --count N
                          [--rate PPS] [--src-net 10.1.128.0/17] [--dport 9] [--first 0]

Frame i carries tuple number ``first + i`` of the enumeration (source address varies
fastest, so the first tuples are also distinct host pairs):

    source IP   = host[t % H]              H = the host addresses of --src-net
    source port = 1024 + t // H            (1024..65535: H x 64512 tuples in all)

to ``--dst-ip:--dport``, Ethernet source and destination as given. Sending the tuples
``[first, first + count)`` again repeats exactly the same flows. Frames are built with
``struct`` in one buffer (two fields and the IPv4 header checksum change per frame; the UDP
checksum is 0, i.e. none) and sent through an AF_PACKET socket bound to ``--iface`` that
bypasses the qdisc. Without ``--rate`` it sends as fast as it can; with it, it sleeps
between batches of about a millisecond's worth of frames to keep the schedule. Prints one
JSON line, ``{"sent", "seconds", "pps"}``, measured by the tool. A frame the kernel refuses
for lack of buffers (ENOBUFS) is sent again, not counted twice.
"""
import argparse
import errno
import ipaddress
import json
import socket
import struct
import sys
import time

ETH_P_IP = 0x0800
SOL_PACKET = 263
PACKET_QDISC_BYPASS = 20      # linux/if_packet.h; not exported by Python's socket module
FIRST_PORT = 1024
PORTS = 65536 - FIRST_PORT
PAYLOAD = b"sggw-blast".ljust(18, b".")   # 14 + 20 + 8 + 18 = 60 bytes, Ethernet's minimum
# checksum, source address, destination address, source port: contiguous from offset 24
_VARIABLE = struct.Struct("!HI4sH")
_VARIABLE_OFFSET = 14 + 10


def host_range(net):
    """(first host address as int, number of hosts) of an IPv4 network."""
    if net.prefixlen >= 31:       # /31 and /32: every address is a host (RFC 3021)
        return int(net.network_address), net.num_addresses
    return int(net.network_address) + 1, net.num_addresses - 2


def tuple_of(index, net):
    """The (source IP, source port) of tuple number ``index`` (for checks and callers)."""
    first, hosts = host_range(net)
    port, host = divmod(index, hosts)
    return str(ipaddress.IPv4Address(first + host)), FIRST_PORT + port


def frame_template(src_mac, dst_mac, dst_ip, dport):
    """The frame with source IP, source port and IP checksum 0, and the checksum's partial
    one's-complement sum over the fixed header words."""
    ip_len = 20 + 8 + len(PAYLOAD)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, ip_len, 0, 0x4000, 64, socket.IPPROTO_UDP, 0,
                     b"\0\0\0\0", dst_ip)
    udp = struct.pack("!HHHH", 0, dport, 8 + len(PAYLOAD), 0)
    frame = bytearray(dst_mac + src_mac + struct.pack("!H", ETH_P_IP) + ip + udp + PAYLOAD)
    partial = sum(struct.unpack("!10H", ip))
    return frame, partial


def blast(sock, frame, partial, src_first, hosts, dst_ip, first, count, rate=None):
    """Send ``count`` frames, tuples ``first..``; returns (sent, seconds)."""
    pack_into = _VARIABLE.pack_into
    send = sock.send
    batch = max(1, min(1024, int(rate / 1000))) if rate else 1024
    start = time.perf_counter()
    sent = 0
    t = first
    end = first + count
    while t < end:
        stop = min(end, t + batch)
        while t < stop:
            port, host = divmod(t, hosts)
            src = src_first + host
            s = partial + (src >> 16) + (src & 0xFFFF)
            s = (s & 0xFFFF) + (s >> 16)
            s = (s & 0xFFFF) + (s >> 16)
            pack_into(frame, _VARIABLE_OFFSET, ~s & 0xFFFF, src, dst_ip, FIRST_PORT + port)
            try:
                send(frame)
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                time.sleep(0.0001)   # the device queue is full: try this frame again
                continue
            t += 1
        sent = t - first
        if rate:
            ahead = start + sent / rate - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
    return sent, time.perf_counter() - start


def _mac(text):
    try:
        raw = bytes.fromhex(text.replace(":", "").replace("-", ""))
    except ValueError:
        raw = b""
    if len(raw) != 6:
        raise argparse.ArgumentTypeError("not a MAC address: %r" % text)
    return raw


def _ipv4(text):
    try:
        return ipaddress.IPv4Address(text).packed
    except ValueError:
        raise argparse.ArgumentTypeError("not an IPv4 address: %r" % text) from None


def _net(text):
    try:
        return ipaddress.IPv4Network(text, strict=False)
    except ValueError:
        raise argparse.ArgumentTypeError("not an IPv4 network: %r" % text) from None


def _number(kind, low, high=None):
    def convert(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError("not a number: %r" % text) from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError("out of range: %r" % text)
        return value
    return convert


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench.blast",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--iface", required=True)
    parser.add_argument("--src-mac", type=_mac, required=True)
    parser.add_argument("--dst-mac", type=_mac, required=True)
    parser.add_argument("--dst-ip", type=_ipv4, required=True)
    parser.add_argument("--count", type=_number(int, 1), required=True)
    parser.add_argument("--rate", type=_number(float, 1), help="packets/s (default: flat out)")
    parser.add_argument("--src-net", type=_net, default=_net("10.1.128.0/17"))
    parser.add_argument("--dport", type=_number(int, 0, 65535), default=9)
    parser.add_argument("--first", type=_number(int, 0), default=0,
                        help="number of the first tuple")
    args = parser.parse_args(argv)
    _, hosts = host_range(args.src_net)
    if args.first + args.count > hosts * PORTS:
        parser.error("%s has %d hosts x %d ports = %d tuples; asked for [%d, %d)"
                     % (args.src_net, hosts, PORTS, hosts * PORTS, args.first,
                        args.first + args.count))
    return parser, args


def main(argv=None):
    parser, args = parse_args(argv)
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)   # protocol 0: send only
    try:
        sock.bind((args.iface, 0))
    except OSError as exc:
        parser.error("--iface %s: %s" % (args.iface, exc.strerror))
    try:
        sock.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)
    except OSError:
        pass                         # an old kernel: through the qdisc, a little slower
    frame, partial = frame_template(args.src_mac, args.dst_mac, args.dst_ip, args.dport)
    src_first, hosts = host_range(args.src_net)
    try:
        sent, seconds = blast(sock, frame, partial, src_first, hosts, args.dst_ip, args.first,
                              args.count, args.rate)
    except OSError as exc:
        print("blast: %s: %s" % (args.iface, exc), file=sys.stderr)
        return 1
    finally:
        sock.close()
    print(json.dumps({"sent": sent, "seconds": round(seconds, 4),
                      "pps": round(sent / seconds, 1) if seconds > 0 else None}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
