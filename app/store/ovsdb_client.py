"""sggw's connection to its clustered store (``app/store/sggw.ovsschema``), through the ``ovs`` IDL.

The IDL is not thread-safe and only its poller may block, so one green thread owns it:
it runs the IDL, starts the transactions others asked for and hands back their outcome,
then blocks in the IDL's poller (green under eventlet, so Ryu's other threads keep running)
until the server, a transaction or a new request needs it. The IDL holds sggw's lock:
every transaction asserts it, so an instance that does not hold the lock cannot write.
"""
import logging
import os

import ovs.db.idl
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
    """A transaction that did not commit: the store did not change."""


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
        self._wake_read, self._wake_write = os.pipe()
        self._thread = None

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
        committed transaction, or raises OvsdbError (nothing was changed)."""
        result = _Result()
        self._requests.append((build, result))
        os.write(self._wake_write, b"x")
        if not result.event.wait(timeout):
            result.abandoned = True
            raise OvsdbError("the store did not answer within %.0f s" % timeout)
        status, txn = result.value
        if status not in (ovs.db.idl.Transaction.SUCCESS, ovs.db.idl.Transaction.UNCHANGED):
            detail = txn.get_error() if status == ovs.db.idl.Transaction.ERROR else status
            raise OvsdbError("the store refused the change: %s" % detail)
        return txn

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
        if self._requests:  # each was announced by one byte (a green read of none waits)
            os.read(self._wake_read, len(self._requests))
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
        for txn, result in self._running:
            status = txn.commit()
            if status == ovs.db.idl.Transaction.INCOMPLETE:
                still.append((txn, result))
            else:
                result.finish(status, txn)
        self._running = still
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


class _Result:
    def __init__(self):
        self.event = hub.Event()
        self.value = None
        self.abandoned = False

    def finish(self, status, txn):
        self.value = status, txn
        self.event.set()


class _Failed:
    """Stands for a transaction whose building raised."""

    def __init__(self, exc):
        self.exc = exc

    def get_error(self):
        return str(self.exc)
