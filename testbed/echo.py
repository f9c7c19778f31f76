"""A tiny TCP/UDP echo service and client, run inside namespaces by tests and benchmarks.

    python -m testbed.echo serve tcp|udp PORT [--count N]
    python -m testbed.echo ask tcp|udp HOST PORT MESSAGE [--source-port P]

``ask`` prints the echoed reply and exits 0, or exits 1 if none came within 5 seconds.
``--source-port`` keeps one five-tuple across several asks (one conversation).
The server answers TCP with the same bytes and closes (FIN), like a short request.
"""
import argparse
import socket
import sys

TIMEOUT = 5.0


def _family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def serve(proto, port, count):
    family = socket.AF_INET6
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(family, kind) as sock:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("::", port))
        if proto == "tcp":
            sock.listen(64)
        print("ready", flush=True)
        served = 0
        while count == 0 or served < count:
            if proto == "tcp":
                conn, _ = sock.accept()
                with conn:
                    data = conn.recv(65536)
                    conn.sendall(data)
            else:
                data, peer = sock.recvfrom(65536)
                sock.sendto(data, peer)
            served += 1


def ask(proto, host, port, message, source_port=0):
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(_family(host), kind) as sock:
        sock.settimeout(TIMEOUT)
        if source_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("", source_port))
        try:
            if proto == "tcp":
                sock.connect((host, port))
                sock.sendall(message.encode())
                reply = sock.recv(65536)
            else:
                sock.sendto(message.encode(), (host, port))
                reply, _ = sock.recvfrom(65536)
        except OSError as exc:
            print("error: %s" % exc, file=sys.stderr)
            return 1
    print(reply.decode())
    return 0 if reply else 1


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m testbed.echo")
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("proto", choices=("tcp", "udp"))
    s.add_argument("port", type=int)
    s.add_argument("--count", type=int, default=0, help="exit after N requests (0: never)")
    a = sub.add_parser("ask")
    a.add_argument("proto", choices=("tcp", "udp"))
    a.add_argument("host")
    a.add_argument("port", type=int)
    a.add_argument("message")
    a.add_argument("--source-port", type=int, default=0)
    args = parser.parse_args(argv)
    if args.cmd == "serve":
        serve(args.proto, args.port, args.count)
        return 0
    return ask(args.proto, args.host, args.port, args.message, args.source_port)


if __name__ == "__main__":
    sys.exit(main())
