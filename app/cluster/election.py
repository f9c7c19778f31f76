"""Which sggw instance of a cluster programs the switches, and the fence that stops others.

An instance is master only when all three hold:

* its store connection holds the OVSDB lock (:data:`app.store.ovsdb_client.LOCK`);
* that connection is live (the IDL is connected to the raft leader and has the data);
* a transaction that asserts the lock and raises the stored generation committed.

A lock reported by a raft follower is not proof (two clients can be told they hold it),
so the committed raise is what makes a master, and its value is the OpenFlow role
``generation_id``: every switch then refuses an older master by itself. Losing the lock
or the connection, or a switch answering ``OFPRRFC_STALE`` or demoting it (role status,
:mod:`app.cluster.roles`), makes the instance a standby at once: :attr:`Election.writable`
turns False before anything else happens, and every write to a switch checks it
(:class:`app.openflow.channel.Channel`).

The new generation is above the store's and above every generation a connected switch
knows (``floor``): a store rebuilt or restored from a backup starts below what the switches
saw, and they would refuse every master until it caught up. Only the lock holder, by a
lock-asserting transaction that verifies the number it raises, can raise it, so two
instances never both hold a generation a switch grants; a switch that turns out to know a
higher one makes the master step down and stand again (:meth:`Election.review`), above it.

A committed generation also settles every change sent before it (:meth:`Election.seal`):
raft commits a transaction before the next master's claim or never, so once a later
generation is in the store, a change whose answer was lost is in it or gone for good.
"""
import logging
import time

from ryu.lib import hub

from app.store.ovsdb_client import OvsdbError

LOG = logging.getLogger("sggw.election")
TABLE = "Election"
STANDBY, ELECTING, MASTER = "standby", "electing", "master"
FRESH_WAIT = 5.0  # seconds a claim waits for a current copy of the store


class Election:
    def __init__(self, db, name, api_url, on_master, on_standby, floor=lambda: 0):
        self.db = db
        self.name = name
        self.api_url = api_url
        self.role = STANDBY
        self.generation = None  # the committed generation this instance is master with
        self.on_master = on_master  # called (generation) in its own green thread
        self.on_standby = on_standby  # called () at once when mastership is lost
        self.floor = floor  # () -> the highest generation a connected switch knows
        self._claiming = False
        db.listeners.append(self.review)

    @property
    def writable(self):
        return self.role == MASTER and self.db.live and self.db.has_lock

    def stored(self):
        """(generation, master name, master API URL) as the store has them."""
        rows = self.db.rows(TABLE)
        if not rows:
            return 0, "", ""
        return rows[0].generation, rows[0].master, rows[0].master_api

    @property
    def master(self):
        """(name, API URL) of the master, or None while there is none known."""
        if self.role == MASTER:
            return self.name, self.api_url
        if self._claiming or not self.db.live:
            return None
        _, name, url = self.stored()  # not this instance: it stood down (fenced by a switch)
        return (name, url) if name and name != self.name and self.db.idl.is_lock_contended \
            else None

    def review(self):
        """After every change of the store connection: step down or stand for master."""
        if self.role == MASTER and not (self.db.live and self.db.has_lock):
            self.step_down("the store lock or connection is lost")
        elif self.role != MASTER and self.db.live and self.db.has_lock and not self._claiming:
            self._claiming = True
            self.role = ELECTING
            hub.spawn(self._claim)

    def step_down(self, why):
        if self.role == MASTER:
            LOG.warning("%s: no longer master (generation %s): %s", self.name,
                        self.generation, why)
        self.role = STANDBY
        self.on_standby()

    def _claim(self):
        if not (self.db.fresh(FRESH_WAIT) and self.db.live and self.db.has_lock):
            self._claiming = False  # a woken instance's copy said it held the lock
            self.role = STANDBY
            return
        try:
            generation = self._commit_generation()
        except OvsdbError as exc:
            LOG.warning("%s: could not become master: %s", self.name, exc)
            self._claiming = False
            self.role = STANDBY
            hub.spawn_after(0.2, self.review)
            return
        self._claiming = False
        if not (self.db.live and self.db.has_lock):
            self.role = STANDBY
            return
        self._master(generation)

    def _master(self, generation):
        self.generation = generation
        self.role = MASTER
        LOG.warning("%s: master with generation %d", self.name, self.generation)
        self.on_master(self.generation)

    def _commit_generation(self):
        """Commit a generation above the store's and every switch's: the number, or
        OvsdbError."""
        floor = self.floor()
        claimed = []

        def bump(txn, tables):
            rows = list(tables[TABLE].rows.values())
            if rows:  # verified: the transaction fails if the stored number moved meanwhile
                row = rows[0]
                row.verify("generation")
            else:  # the first master of this store (maxRows 1: a second insert fails)
                row = txn.insert(tables[TABLE])
            stored = row.generation if rows else 0
            claimed.append(max(stored, floor) + 1)
            if floor > stored:
                LOG.warning("%s: a switch knows generation %d, the store %d: claiming %d",
                            self.name, floor, stored, claimed[-1])
            row.generation = claimed[-1]
            row.master, row.master_api = self.name, self.api_url
        self.db.transact(bump)
        return claimed[-1]

    def seal(self, generation, timeout):
        """Wait until a generation above ``generation`` is committed (True; False after
        ``timeout`` s): every transaction sent before is then in the store or never will be.
        The master of ``generation`` commits the next one itself, and with it takes its
        switches again (``on_master``: granted anew, each reconciled with the store)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.db.fresh(max(0.1, deadline - time.monotonic())) \
                    and self.stored()[0] > generation:
                return True
            if self.writable and self.generation == generation:
                try:
                    raised = self._commit_generation()
                except OvsdbError as exc:
                    LOG.warning("%s: could not raise generation %d: %s", self.name,
                                generation, exc)
                else:
                    if self.writable and self.generation == generation:
                        self._master(raised)
                    continue
            hub.sleep(0.1)
        return False

    def health(self):
        generation, name, url = self.stored() if self.db.live else (None, None, None)
        master = self.master
        return {"name": self.name, "role": self.role,
                "generation": self.generation if self.role == MASTER else generation,
                "store": self.db.remotes.split(","), "store_connected": self.db.live,
                "store_error": self.db.error,
                "master": master[0] if master else None,
                "master_api": master[1] if master else None}
