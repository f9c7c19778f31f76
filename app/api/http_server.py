"""The HTTP server of the REST API: eventlet's WSGI protocol, with the bounds Ryu's lacks.

Ryu runs its WSGI apps on ``eventlet.wsgi.server`` with the defaults: no read timeout and
a pool of 1024 connections. A client that sends half a request then holds its connection
for ever, and about a thousand idle connections lock everyone else out. This server keeps
eventlet's HTTP parsing (since 0.40.3 it refuses a request with both Content-Length and
Transfer-Encoding, the request-smuggling fix) and adds:

- a request deadline: once connected, or answered, a client has ``REQUEST_TIMEOUT`` seconds
  to send its next request whole (request line, headers, body), or the connection closes
  and nothing of the request is processed;
- a connection bound: at most ``MAX_CONNECTIONS`` at once; a new connection beyond it
  closes the one that has waited longest for its request (one being answered is never
  closed), so idle connections cannot starve health checks and reads;
- a write timeout: an answer that a client stops reading ends after ``WRITE_TIMEOUT``;
- framing checks: a Transfer-Encoding other than ``chunked``, or two Content-Length
  headers, is a 400 that closes the connection (such a request could hide another).

The application gets the body already read (at most ``max_body`` + 1 bytes).
"""
import errno
import io
import ipaddress
import socket
import time

import eventlet
import eventlet.wsgi
from eventlet import greenio, greenthread

REQUEST_TIMEOUT = 10.0
MAX_CONNECTIONS = 100
WRITE_TIMEOUT = 30.0
# accept() errors that pass: the process is out of descriptors or memory for a moment, or
# the client gave up before its connection was accepted
_ACCEPT_RETRY = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
_ACCEPT_SKIP = {errno.ECONNABORTED, errno.EPROTO, errno.ECONNRESET}


class _Connection(list):
    """eventlet's connection state ``[address, socket, state]`` plus what eviction needs:
    since when it has waited for a request (None while its request is being answered).
    Compared and hashed by identity, as a member of the server's set."""

    __eq__ = object.__eq__
    __hash__ = object.__hash__

    def __init__(self, address, sock):
        super().__init__([address, sock, eventlet.wsgi.STATE_IDLE])
        self.waiting_since = time.monotonic()
        self.thread = None


class _Protocol(eventlet.wsgi.HttpProtocol):
    """One connection's requests, each under the request deadline until it has arrived."""

    def handle_one_request(self):
        self.conn_state.waiting_since = time.monotonic()
        self.deadline = eventlet.Timeout(self.server.request_timeout)
        try:
            super().handle_one_request()
        except eventlet.Timeout as exc:
            if exc is not self.deadline:
                raise
            self.close_connection = 1
        finally:
            self.deadline.cancel()

    def handle_one_response(self):
        """Line and headers are in: check the framing, read the body, then answer."""
        problem = _framing_problem(self.headers)
        if problem:
            self._refuse(problem)
            return
        body = self._read_body()
        if body is None:  # cut short or malformed: nothing to answer
            self.close_connection = 1
            return
        self.deadline.cancel()
        self.conn_state.waiting_since = None
        self.environ["wsgi.input"] = io.BytesIO(body)
        self.environ["CONTENT_LENGTH"] = str(len(body))
        super().handle_one_response()

    def _read_body(self):
        """The body, at most ``max_body`` + 1 bytes (the connection then closes after the
        answer, since the rest is never read), or None if it did not arrive whole."""
        request_input = self.environ["eventlet.input"]
        limit = self.server.max_body + 1
        want = limit if request_input.chunked_input else min(request_input.content_length,
                                                             limit)
        try:
            body = request_input.read(want)  # a chunked body cut short raises
        except (OSError, ValueError):
            return None
        if len(body) < want and not request_input.chunked_input:
            return None
        if len(body) == limit:
            self.close_connection = 1
        return body

    def _refuse(self, reason):
        message = reason.encode() + b"\n"
        self.wfile.write(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n"
                         b"Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
                         % (len(message), message))
        self.close_connection = 1


def _framing_problem(headers):
    """Why the body's length is ambiguous, or None (eventlet itself refuses a request with
    both Content-Length and Transfer-Encoding)."""
    encodings = headers.get_all("Transfer-Encoding") or []
    if encodings and [e.strip().lower() for e in encodings] != ["chunked"]:
        return "Transfer-Encoding must be chunked alone"
    if len(headers.get_all("Content-Length") or []) > 1:
        return "Content-Length is given more than once"
    return None


class HttpServer(eventlet.wsgi.Server):
    """Serve ``app`` on ``(host, port)``; binding happens here, serving in serve_forever."""

    request_timeout = REQUEST_TIMEOUT
    max_connections = MAX_CONNECTIONS

    def __init__(self, host, port, app, max_body):
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
        listener = eventlet.listen((host, port), family=family, backlog=128)
        super().__init__(listener, listener.getsockname(), app, protocol=_Protocol,
                         log_output=False, debug=False, socket_timeout=WRITE_TIMEOUT)
        self.max_body = max_body
        self.connections = set()

    def serve_forever(self):
        while True:
            try:
                sock, address = self.socket.accept()
            except OSError as exc:
                if exc.errno in _ACCEPT_SKIP:
                    continue
                if exc.errno not in _ACCEPT_RETRY:
                    raise
                self._evict()
                eventlet.sleep(0.1)
                continue
            if len(self.connections) >= self.max_connections and not self._evict():
                sock.close()  # every connection is being answered: this one must retry
                continue
            sock.settimeout(self.socket_timeout)
            conn = _Connection(address, sock)
            self.connections.add(conn)
            conn.thread = eventlet.spawn(_serve, conn, self)
            conn.thread.link(self._closed, conn)

    def _evict(self):
        """Close the connection that has waited longest for a request; False if none
        waits (all are being answered)."""
        waiting = [c for c in self.connections if c.waiting_since is not None]
        if not waiting:
            return False
        oldest = min(waiting, key=lambda c: c.waiting_since)
        greenthread.kill(oldest.thread)  # its link closes it
        return True

    def _closed(self, _thread, conn):
        self.connections.discard(conn)
        greenio.shutdown_safe(conn[1])
        conn[1].close()


def _serve(conn, server):
    """One connection, until it closes; a peer that went away or a write that timed out
    just ends it."""
    try:
        _Protocol(conn, server)
    except OSError:
        pass
