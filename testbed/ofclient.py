"""A bare OpenFlow 1.3 controller for tests: a bridge connects to it (as one more
``set-controller`` target) and it asks for a role with a chosen generation, as another
controller of the same switch would. Raw messages, so what the switch answers is seen
as it is."""
import socket
import struct
import time

VERSION = 4
HELLO, ERROR, ECHO_REQUEST, ECHO_REPLY, ROLE_REQUEST, ROLE_REPLY = 0, 1, 2, 3, 24, 25
MASTER, SLAVE = 2, 3
HEADER = struct.Struct("!BBHI")


class OpenFlowClient:
    def __init__(self, host="127.0.0.1"):
        self.listener = socket.create_server((host, 0))
        self.target = "tcp:%s:%d" % (host, self.listener.getsockname()[1])
        self.conn = None
        self.xid = 0

    def accept(self, timeout=20):
        """Wait for the bridge to connect and exchange HELLOs."""
        self.listener.settimeout(timeout)
        self.conn = self.listener.accept()[0]
        self.conn.settimeout(timeout)
        self._send(HELLO, b"")
        self._read(HELLO)
        return self

    def request_role(self, role, generation):
        """("reply", role, generation) or ("error", type, code), as the switch answered."""
        xid = self._send(ROLE_REQUEST, struct.pack("!I4xQ", role, generation))
        kind, body = self._read((ROLE_REPLY, ERROR), xid)
        if kind == ERROR:
            return ("error",) + struct.unpack_from("!HH", body)
        return ("reply",) + struct.unpack_from("!I4xQ", body)

    def close(self):
        for sock in (self.conn, self.listener):
            if sock is not None:
                sock.close()

    def _send(self, kind, body):
        self.xid += 1
        self.conn.sendall(HEADER.pack(VERSION, kind, HEADER.size + len(body), self.xid) + body)
        return self.xid

    def _read(self, kinds, xid=None, timeout=10):
        kinds = kinds if isinstance(kinds, tuple) else (kinds,)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            version, kind, length, got_xid = HEADER.unpack(self._exactly(HEADER.size))
            body = self._exactly(length - HEADER.size)
            if kind == ECHO_REQUEST:
                self.conn.sendall(HEADER.pack(VERSION, ECHO_REPLY, length, got_xid) + body)
            elif kind in kinds and (xid is None or got_xid == xid):
                return kind, body
        raise TimeoutError("no OpenFlow message %s from the switch" % (kinds,))

    def _exactly(self, size):
        data = b""
        while len(data) < size:
            chunk = self.conn.recv(size - len(data))
            if not chunk:
                raise ConnectionError("the switch closed the connection")
            data += chunk
        return data
