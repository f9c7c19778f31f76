"""Many short flows, each a new 5-tuple: an echo server and a load generator.

    python -m bench.flowgen serve --udp-ports 9000-9007 --tcp-ports 9100-9107 [--bind 0.0.0.0]
    python -m bench.flowgen run udp|tcp --target IP --ports 9000-9007 --duration SECONDS
                                --workers N [--concurrency K] [--timeout 1.0]

``serve`` prints ``ready`` once every port listens, then serves forever in one process (one
epoll loop): UDP datagrams are echoed; a TCP connection is accepted, its request (the first
read) is sent back, and the server closes it.

``run`` forks N worker processes. Each keeps up to K exchanges in flight, and every exchange
uses a new socket with a new source port: a new 5-tuple, to the next destination port
round-robin. UDP: send a small payload, wait for its echo. TCP: non-blocking connect, send,
read the echo, then wait for the server's FIN and close (the server closes first, so
TIME_WAIT stays on the server and client ports are free at once). The latency of an exchange
runs from just before its first packet (the UDP datagram, the TCP SYN) to the echo received:
the first-packet latency of a new flow. Timeouts, refusals and resets are counted as failures
and never stop the run. Exchanges start during ``duration`` seconds; those in flight then
finish or time out, and ``duration`` in the result is the time actually measured, so
``rate`` is completed exchanges per measured second. One JSON line:

    {"proto", "workers", "concurrency", "duration", "completed", "failed", "rate",
     "p50_ms", "p90_ms", "p99_ms", "max_ms", "distinct_tuples", "errors"}

``distinct_tuples`` counts the different (source port, destination port) pairs among the
completed exchanges (the addresses are fixed), ``errors`` the failures by kind
(``timeout``, ``ECONNREFUSED``, ...). Exit status 0 even with failures (the caller judges),
2 for bad arguments.

Tuple space: (ephemeral ports of the client namespace) x (destination ports); with the
caller's ``sysctl net.ipv4.ip_local_port_range="1024 65535"`` and 8 ports, 64512 x 8.
- TCP lets the kernel pick the source port at connect(); Linux walks the range in order per
  destination, so tuples hardly repeat before the range is used up.
- UDP would get a random port from the kernel (after 160k exchanges over 8 ports about 14%
  would repeat a tuple, and hit a flow already installed), so it binds the port itself,
  enumerating the R x P (source port, destination port) pairs (see Worker._start) so that
  no tuple repeats before all of them are used and consecutive exchanges use different
  source ports. A run starts at a random tuple: a run right after another (a warm-up)
  overlaps it no more than with random ports. One UDP run per client namespace at a time:
  a port held by another socket counts as an ``EADDRINUSE`` failure.
Client sockets do not set SO_REUSEADDR (on UDP it would let two live sockets share a port).
TCP connections close normally (no SO_LINGER 0, which would put a RST on the wire); if the
server's TIME_WAIT entries get in the way at high rates the caller may set
``net.ipv4.tcp_tw_reuse=1``.
"""
import argparse
import collections
import errno
import json
import math
import multiprocessing
import os
import random
import select
import socket
import sys
import time
from array import array
from functools import partial

PAYLOAD = b"sggw-flowgen"
LISTEN_BACKLOG = 4096
BATCH = 256              # datagrams/accepts handled per readiness event before polling again


def parse_ports(text):
    """``"9000-9007,9010"`` -> [9000, ..., 9007, 9010]; ValueError when malformed."""
    ports = []
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        low, high = int(low), int(high or low)
        if not 1 <= low <= high <= 65535:
            raise ValueError("bad port range %r" % part)
        ports.extend(range(low, high + 1))
    if not ports:
        raise ValueError("no ports")
    return ports


def local_port_range():
    """The ephemeral port range of this network namespace."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999      # Linux's default


def _family(address):
    return socket.AF_INET6 if ":" in address else socket.AF_INET


# --- serve ------------------------------------------------------------------------------------
#
# Syscalls dominate the cost of a short exchange (a few microseconds each on a VM), so both
# sides use ``select.epoll`` directly rather than ``selectors``: a closed socket leaves the
# epoll set by itself, which saves an unregister call per connection.

class EchoServer:
    """UDP echo and TCP echo-then-close on many ports, in one epoll loop."""

    def __init__(self, bind, udp_ports, tcp_ports):
        self.epoll = select.epoll()
        self.handlers = {}       # fd -> (handler, socket)
        for port in udp_ports:
            self._watch(self._listen(bind, port, socket.SOCK_DGRAM), self._echo_datagrams)
        for port in tcp_ports:
            self._watch(self._listen(bind, port, socket.SOCK_STREAM), self._accept)

    @staticmethod
    def _listen(bind, port, kind):
        sock = socket.socket(_family(bind), kind | socket.SOCK_NONBLOCK)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((bind, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(LISTEN_BACKLOG)
        return sock

    def _watch(self, sock, handler, events=select.EPOLLIN):
        self.handlers[sock.fileno()] = (handler, sock)
        self.epoll.register(sock.fileno(), events)

    def serve_forever(self):
        handlers = self.handlers
        while True:
            for fd, _ in self.epoll.poll():
                handler, sock = handlers[fd]
                handler(sock)

    def _echo_datagrams(self, sock):
        for _ in range(BATCH):
            try:
                data, peer = sock.recvfrom(65536)
            except BlockingIOError:
                return
            except OSError:          # e.g. an ICMP error queued on the socket
                continue
            try:
                sock.sendto(data, peer)
            except OSError:
                pass

    def _accept(self, listener):
        for _ in range(BATCH):
            try:
                conn, _ = listener.accept()
            except BlockingIOError:
                return
            except OSError:          # ECONNABORTED, EMFILE, ...: the client sees a failure
                return
            # The accepted socket is left blocking (saves a syscall): every call on it
            # passes MSG_DONTWAIT. Under load the request is often there already.
            if not self._answer(conn):
                self._watch(conn, self._answer_later)

    def _answer(self, conn, data=None, watched=False):
        """Read the request, send it back and close; False if the request is not there yet."""
        if data is None:
            try:
                data = conn.recv(65536, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return False
            except OSError:
                data = b""
        if data:
            try:
                sent = conn.send(data, socket.MSG_DONTWAIT)
            except BlockingIOError:
                sent = 0
            except OSError:
                sent = len(data)     # the peer is gone: nothing left to do
            if sent < len(data):     # never for a few bytes, but be correct
                self.handlers[conn.fileno()] = (partial(self._send_rest, data[sent:]), conn)
                (self.epoll.modify if watched else self.epoll.register)(conn.fileno(),
                                                                        select.EPOLLOUT)
                return True
        self.handlers.pop(conn.fileno(), None)
        conn.close()                 # also leaves the epoll set
        return True

    def _answer_later(self, conn):
        self._answer(conn, watched=True)         # False: a spurious wake-up, wait on

    def _send_rest(self, data, conn):
        self._answer(conn, data, watched=True)


# --- run --------------------------------------------------------------------------------------

class _Exchange:
    __slots__ = ("sock", "key", "t0", "deadline", "connecting", "got", "done", "closed")

    def __init__(self, sock, deadline):
        self.sock = sock
        self.key = 0             # source port << 16 | destination port
        self.t0 = 0.0
        self.deadline = deadline
        self.connecting = False  # TCP: waiting for the handshake
        self.got = 0
        self.done = False        # echo received (latency recorded); TCP still waits for EOF
        self.closed = False


class Worker:
    """One process's share of the load: up to ``concurrency`` exchanges in flight."""

    def __init__(self, proto, target, ports, concurrency, timeout, index=0, workers=1,
                 first=0):
        self.tcp = proto == "tcp"
        self.family = _family(target)
        self.kind = (socket.SOCK_STREAM if self.tcp else socket.SOCK_DGRAM) | \
            socket.SOCK_NONBLOCK
        self.target = target
        self.ports = ports
        self.concurrency = concurrency
        self.timeout = timeout
        self.index, self.workers, self.first = index, workers, first
        self.started = 0                     # exchanges this worker has started
        self.sport_low, sport_high = local_port_range()
        self.sports = sport_high - self.sport_low + 1
        self.space = self.sports * len(ports)
        self.block = self.space // math.gcd(self.sports, len(ports))
        self.epoll = select.epoll()
        self.inflight = {}                   # fd -> _Exchange
        self.pending = collections.deque()   # in start order, hence in deadline order
        self.latencies = array("d")
        self.tuples = set()
        self.errors = collections.Counter()

    def run(self, duration):
        start = time.perf_counter()
        end = start + duration
        inflight = self.inflight
        while True:
            now = time.perf_counter()
            wait = self.timeout
            if now < end:
                while len(inflight) < self.concurrency:
                    if not self._start(now):
                        wait = 0.001     # no socket or port right now: do not spin
                        break
                wait = min(wait, end - now)
            elif not inflight:
                break
            if self.pending:
                wait = min(wait, self.pending[0].deadline - now)
            for fd, _ in self.epoll.poll(max(wait, 0.0)):
                self._on_event(inflight[fd])
            self._expire(time.perf_counter())
        return start, time.perf_counter()

    def _start(self, now):
        # Tuple number g (worker i takes first + i, first + i + N, ...): source port
        # g mod R, destination port (g + g // lcm(R, P)) mod P. Within a block of lcm(R, P)
        # tuples the pairs differ (Chinese remainder theorem), block k shifts the destination
        # by k, so all R x P pairs come once; and consecutive tuples never share a source port.
        g = (self.first + self.started * self.workers + self.index) % self.space
        self.started += 1
        port = self.ports[(g + g // self.block) % len(self.ports)]
        try:
            sock = socket.socket(self.family, self.kind)
        except OSError as exc:
            self._fail(None, exc.errno)
            return False
        ex = _Exchange(sock, now + self.timeout)
        try:
            if self.tcp:
                ex.t0 = time.perf_counter()
                err = sock.connect_ex((self.target, port))
                if err not in (0, errno.EINPROGRESS):
                    raise OSError(err, os.strerror(err))
                ex.connecting = True
                events = select.EPOLLOUT
            else:
                sport = self.sport_low + g % self.sports
                sock.bind(("", sport))
                sock.connect((self.target, port))    # no packet yet
                ex.t0 = time.perf_counter()
                sock.send(PAYLOAD)
                events = select.EPOLLIN
            ex.key = (sock.getsockname()[1] if self.tcp else sport) << 16 | port
            self.epoll.register(sock.fileno(), events)
        except OSError as exc:
            sock.close()
            self._fail(None, exc.errno)
            return False
        self.inflight[sock.fileno()] = ex
        self.pending.append(ex)
        return True

    def _on_event(self, ex):
        sock = ex.sock
        try:
            if ex.connecting:
                # a failed connect shows here too: send raises its error
                ex.connecting = False
                sock.send(PAYLOAD)                    # a few bytes: always sent whole
                self.epoll.modify(sock.fileno(), select.EPOLLIN)
                return
            while True:
                data = sock.recv(4096)
                if not data:                          # EOF: the server closed (TCP only)
                    if ex.done:
                        self._close(ex)
                    else:
                        self._fail(ex, "early_eof")
                    return
                ex.got += len(data)
                if not ex.done and ex.got >= len(PAYLOAD):
                    self.latencies.append(time.perf_counter() - ex.t0)
                    self.tuples.add(ex.key)
                    ex.done = True
                    if not self.tcp:
                        self._close(ex)
                        return
        except BlockingIOError:
            return
        except OSError as exc:
            if ex.done:
                self._close(ex)
            else:
                self._fail(ex, exc.errno)

    def _expire(self, now):
        pending = self.pending
        while pending and (pending[0].closed or pending[0].deadline <= now):
            ex = pending.popleft()
            if ex.closed:
                continue
            if ex.done:
                self._close(ex)          # echoed, but the FIN is late: done anyway
            else:
                self._fail(ex, "timeout")

    def _close(self, ex):
        if not ex.closed:
            ex.closed = True
            del self.inflight[ex.sock.fileno()]
            ex.sock.close()              # also leaves the epoll set

    def _fail(self, ex, err):
        kind = err if isinstance(err, str) else errno.errorcode.get(err, str(err))
        self.errors[kind] += 1
        if ex is not None:
            self._close(ex)


def _worker_main(index, args, first, barrier, results):
    try:
        worker = Worker(args.proto, args.target, args.ports, args.concurrency, args.timeout,
                        index=index, workers=args.workers, first=first)
        barrier.wait()
        start, end = worker.run(args.duration)
        results.put({"start": start, "end": end, "latencies": worker.latencies.tobytes(),
                     "tuples": array("Q", worker.tuples).tobytes(),
                     "errors": dict(worker.errors)})
    except BaseException as exc:  # noqa: BLE001 - reported by the parent
        results.put({"error": "worker %d: %r" % (index, exc)})


def percentile(ordered, p):
    """Nearest-rank percentile of a sorted sequence (None when empty)."""
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100.0 * len(ordered)) - 1))]


def run(args):
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(args.workers)
    results = ctx.Queue()
    low, high = local_port_range()
    first = random.randrange((high - low + 1) * len(args.ports))   # see "Tuple space"
    procs = [ctx.Process(target=_worker_main, args=(i, args, first, barrier, results),
                         daemon=True) for i in range(args.workers)]
    for proc in procs:
        proc.start()
    parts = [results.get(timeout=args.duration + args.timeout + 60) for _ in procs]
    for proc in procs:
        proc.join()
    failed_workers = [p["error"] for p in parts if "error" in p]
    if failed_workers:
        raise RuntimeError("; ".join(failed_workers))
    latencies = array("d")
    tuples = set()
    errors = collections.Counter()
    for part in parts:
        latencies.frombytes(part["latencies"])
        tuples.update(array("Q", part["tuples"]))
        errors.update(part["errors"])
    ordered = sorted(latencies)
    duration = max(p["end"] for p in parts) - min(p["start"] for p in parts)

    def ms(value):
        return None if value is None else round(value * 1000.0, 3)

    return {"proto": args.proto, "workers": args.workers, "concurrency": args.concurrency,
            "duration": round(duration, 3), "completed": len(ordered),
            "failed": sum(errors.values()), "rate": round(len(ordered) / duration, 1),
            "p50_ms": ms(percentile(ordered, 50)), "p90_ms": ms(percentile(ordered, 90)),
            "p99_ms": ms(percentile(ordered, 99)), "max_ms": ms(ordered[-1] if ordered else None),
            "distinct_tuples": len(tuples), "errors": dict(sorted(errors.items()))}


# --- command line -----------------------------------------------------------------------------

def _ports_arg(text):
    try:
        return parse_ports(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(kind):
    def convert(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError("not a number: %r" % text) from None
        if value <= 0:
            raise argparse.ArgumentTypeError("must be > 0: %r" % text)
        return value
    return convert


def _address(text):
    try:
        socket.inet_pton(_family(text), text)
    except OSError:
        raise argparse.ArgumentTypeError("not an IP address: %r" % text) from None
    return text


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench.flowgen",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    serve = sub.add_parser("serve", help="echo server on many UDP and TCP ports")
    serve.add_argument("--udp-ports", type=_ports_arg, default=[])
    serve.add_argument("--tcp-ports", type=_ports_arg, default=[])
    serve.add_argument("--bind", type=_address, default="0.0.0.0",
                       help="address to listen on ('::' for dual-stack)")
    go = sub.add_parser("run", help="new flows to the server, one JSON line of results")
    go.add_argument("proto", choices=("udp", "tcp"))
    go.add_argument("--target", type=_address, required=True)
    go.add_argument("--ports", type=_ports_arg, required=True)
    go.add_argument("--duration", type=_positive(float), required=True)
    go.add_argument("--workers", type=_positive(int), default=1)
    go.add_argument("--concurrency", type=_positive(int), default=1,
                    help="exchanges in flight per worker")
    go.add_argument("--timeout", type=_positive(float), default=1.0,
                    help="seconds before an exchange counts as failed")
    args = parser.parse_args(argv)
    if args.cmd == "serve" and not (args.udp_ports or args.tcp_ports):
        parser.error("serve: give --udp-ports and/or --tcp-ports")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.cmd == "serve":
        try:
            server = EchoServer(args.bind, args.udp_ports, args.tcp_ports)
        except OSError as exc:
            print("flowgen serve: %s" % exc, file=sys.stderr)
            return 1
        print("ready", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            return 0
    print(json.dumps(run(args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
