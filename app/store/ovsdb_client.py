"""sggw's connection to its clustered store (``app/store/sggw.ovsschema``), through the ``ovs`` IDL.

The IDL is not thread-safe and only its poller may block, so one green thread owns it:
it runs the IDL, starts the transactions others asked for and hands back their outcome,
then blocks in the IDL's poller (green under eventlet, so Ryu's other threads keep running)
until the server, a transaction or a new request needs it. The IDL holds sggw's lock:
every transaction asserts it, so an instance that does not hold the lock cannot write.

A transaction whose connection broke after it was sent, or that got no answer in time, may
still have committed: its :class:`OvsdbError` says so (``unknown``), and only a later look
at the store tells. :meth:`Ovsdb.fresh` makes sure that look sees the present: the IDL's
copy may be old (a hung process's server dropped it long ago, and it has not noticed yet).
"""
import logging
import os

import ovs.db.idl
import ovs.jsonrpc
import ovs.poller
import ovs.stream
from ryu.lib import hub

from app.store.store_link import Doctor

LOG = logging.getLogger("sggw.ovsdb")
SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sggw.ovsschema")
LOCK = "sggw_master"
TIMEOUT = 5.0  # seconds a transaction may take (raft leader election included)
PROBE_MS = 2000  # the IDL's inactivity probe: a silent server is left after 2 probes
# Reconnect backoff cap (the library's is 8 s): after a member dies, the IDL tries the next
# member within 2 s, so a standby's copy of the store is not 8 s or more behind
MAX_BACKOFF_MS = 2000


class OvsdbError(Exception):
    """A transaction that did not commit: the store did not change, unless ``unknown``
    (sent, then the connection broke or the answer was late: it may have committed)."""

    def __init__(self, message, unknown=False):
        super().__init__(message)
        self.unknown = unknown


class Ovsdb:
    """One IDL to the store's members (``tcp:a,ssl:b,...``), run by :meth:`start`;
    ``tls`` (config.StoreTls) holds the files for ``ssl:`` members."""

    def __init__(self, remotes, lock=LOCK, tls=None):
        helper = ovs.db.idl.SchemaHelper(location=SCHEMA)
        helper.register_all()
        if tls is not None:  # the ovs library keeps them process-wide
            ovs.stream.Stream.ssl_set_private_key_file(tls.private_key)
            ovs.stream.Stream.ssl_set_certificate_file(tls.certificate)
            ovs.stream.Stream.ssl_set_ca_cert_file(tls.ca_cert)
        self.remotes = remotes
        self.doctor = Doctor(remotes, tls, lambda: self.live)
        self.idl = ovs.db.idl.Idl(remotes, helper, probe_interval=PROBE_MS, leader_only=True)
        self.idl._session.reconnect.set_backoff(1000, MAX_BACKOFF_MS)  # noqa: SLF001
        if lock:
            self.idl.set_lock(lock)
        self.listeners = []  # called (no arguments) after every IDL run that changed anything
        self._requests = []  # (build, result) not started yet
        self._running = []  # (transaction, result) started, not finished
        self._fresh = []  # _Result of fresh() calls not answered yet
        self._echoes = {}  # JSON-RPC id of an echo of ours -> (connection, _Results it answers)
        self._wake_read, self._wake_write = os.pipe()
        self._waking = False  # a byte is in the pipe, or on its way
        self._thread = None
        self._cluster_id = None
        self._hide_echo_replies()

    @property
    def live(self):
        """Connected to the leader and holding a current copy of the database."""
        return (self.idl._session.is_connected()  # noqa: SLF001 -- no public accessor
                and self.idl.state == self.idl.IDL_S_MONITORING)

    @property
    def error(self):
        """Why the store is not connected (see app.store.store_link), or None."""
        return None if self.live else self.doctor.error

    @property
    def has_lock(self):
        return self.idl.has_lock

    def rows(self, table):
        return list(self.idl.tables[table].rows.values())

    def start(self):
        self._thread = hub.spawn(self._loop)
        self.doctor.start()
        return self

    def wait_live(self, timeout):
        """Block until the IDL has the database; False if that takes over ``timeout`` s."""
        deadline = hub.Timeout(timeout)
        try:
            while not self.live:
                hub.sleep(0.02)
            return True
        except hub.Timeout:
            return False
        finally:
            deadline.cancel()

    def transact(self, build, timeout=TIMEOUT):
        """Run ``build(txn, tables)`` in a new transaction and commit it: returns the
        committed transaction, or raises OvsdbError."""
        result = _Result()
        self._requests.append((build, result))
        self._wake()
        if not result.event.wait(timeout):
            result.abandoned = True
            raise OvsdbError("the store did not answer within %.0f s" % timeout,
                             unknown=result.sent)
        status, txn = result.value
        if status not in (ovs.db.idl.Transaction.SUCCESS, ovs.db.idl.Transaction.UNCHANGED):
            detail = txn.get_error() if status == ovs.db.idl.Transaction.ERROR else status
            if result.broken:
                raise OvsdbError("the connection to the store broke before it answered",
                                 unknown=True)
            raise OvsdbError("the store refused the change: %s" % detail)
        return txn

    def fresh(self, timeout):
        """Wait until this copy of the store is known to be current: every change committed
        before the call is in it (a round trip on the connection, or a new connection's
        copy). False if that takes over ``timeout`` s (the store does not answer)."""
        result = _Result()
        self._fresh.append(result)
        self._wake()
        return result.event.wait(timeout)

    def _wake(self):
        """Wake the IDL's thread. One byte at a time: a green write yields before writing,
        and two at once on one pipe is an error."""
        if not self._waking:
            self._waking = True
            os.write(self._wake_write, b"x")

    # --- the IDL's own thread ---------------------------------------------------------------

    def _loop(self):
        while True:
            try:
                self._run_once()
            except Exception:  # noqa: BLE001 -- the store connection must outlive a bug
                LOG.exception("store connection: unexpected error; going on")
                hub.sleep(0.5)

    def _run_once(self):
        seqno, locked = self.idl.change_seqno, self.idl.has_lock
        live = self.live
        self.idl.run()
        self._follow_cluster_id()
        if self._waking:  # before taking the requests: a later one writes a new byte
            os.read(self._wake_read, 1)
            self._waking = False
        requests, self._requests = self._requests, []
        for build, result in requests:
            if result.abandoned:
                continue
            txn = ovs.db.idl.Transaction(self.idl)
            try:
                build(txn, self.idl.tables)
            except Exception as exc:  # noqa: BLE001 -- handed to the waiting caller
                txn.abort()
                result.finish(ovs.db.idl.Transaction.ERROR, _Failed(exc))
                continue
            self._running.append((txn, result))
        still = []
        connection = self.idl._session.get_seqno()  # noqa: SLF001 -- changes on reconnect
        for txn, result in self._running:
            status = txn.commit()
            if status == ovs.db.idl.Transaction.INCOMPLETE:
                if not result.sent:
                    result.sent, result.connection = True, connection
                still.append((txn, result))
            else:  # aborted by a reconnect: its answer is lost, not a refusal
                result.broken = result.sent and result.connection != connection
                result.finish(status, txn)
        self._running = still
        self._answer_fresh(connection)
        if (seqno, locked, live) != (self.idl.change_seqno, self.idl.has_lock, self.live):
            for listener in list(self.listeners):
                listener()
        poller = ovs.poller.Poller()
        self.idl.wait(poller)
        for txn, _ in self._running:
            txn.wait(poller)
        poller.fd_wait(self._wake_read, ovs.poller.POLLIN)
        poller.timer_wait(1000)
        poller.block()

    def _answer_fresh(self, connection):
        """fresh() calls are answered by the reply to an echo sent on a live connection
        after they were made, or by the copy a newer connection brought."""
        if not self.live:
            return
        self._echoes = {k: v for k, v in self._echoes.items() if v[0] == connection}
        waiting, self._fresh, unsent = self._fresh, [], []
        for result in waiting:
            if result.sent and result.connection != connection:
                result.finish(None, None)
                continue
            self._fresh.append(result)
            if not result.sent:
                result.sent, result.connection = True, connection
                unsent.append(result)
        if unsent:
            echo = ovs.jsonrpc.Message.create_request("echo", ["sggw-fresh"])
            self._echoes[echo.id] = (connection, unsent)
            self.idl._session.send(echo)  # noqa: SLF001

    def _hide_echo_replies(self):
        """Take the replies to fresh()'s echoes before the IDL sees them (it would take one
        for an answer to something of its own)."""
        session = self.idl._session  # noqa: SLF001
        receive = session.recv

        def recv():
            while True:
                msg = receive()
                if msg is None or msg.type != ovs.jsonrpc.Message.T_REPLY \
                        or msg.id not in self._echoes:
                    return msg
                answered = self._echoes.pop(msg.id)[1]
                self._fresh = [r for r in self._fresh if r not in answered]
                for result in answered:
                    result.finish(None, None)
        session.recv = recv

    def _follow_cluster_id(self):
        """A store made anew (other cluster id) starts its raft log at 1, and the IDL would
        take every member of it for one with stale data (an index below the old store's):
        once a member shows a new cluster id, the old index no longer counts."""
        tables = self.idl.server_tables
        for row in (tables["Database"].rows.values() if tables else ()):
            if row.name != self.idl._db.name or not row.cid:  # noqa: SLF001
                continue
            found = str(row.cid[0])
            if self._cluster_id not in (None, found):
                LOG.warning("store: it is a new cluster (id %s, was %s): its data replaces "
                            "what this instance knew", found, self._cluster_id)
                self.idl._min_index = 0  # noqa: SLF001 -- no public accessor
            self._cluster_id = found


class _Result:
    def __init__(self):
        self.event = hub.Event()
        self.value = None
        self.abandoned = False
        self.sent = False  # a transaction: started; fresh(): its echo is out
        self.connection = None  # the session's seqno then
        self.broken = False  # the connection changed before the answer came

    def finish(self, status, txn):
        self.value = status, txn
        self.event.set()


class _Failed:
    """Stands for a transaction whose building raised."""

    def __init__(self, exc):
        self.exc = exc

    def get_error(self):
        return str(self.exc)
