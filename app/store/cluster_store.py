"""The REST-made objects in sggw's clustered OVSDB (``store:`` in the config), for a cluster.

Same objects, ids and checks as the file store (:class:`app.store.Store`): the rows are
read back as the state document and go through the same strict validation, and objects
that do not fit the config are kept likewise. What differs is how a change is made
durable: one OVSDB transaction that asserts the master lock and verifies the master's
generation (so only the elected master of the current generation can write), committed by
the raft leader before the REST answer. ``write`` has nothing to prepare; ``commit``
commits the transaction, or raises StoreError with the store unchanged.

A transaction whose answer was lost (the connection broke, the leader was cut off) may have
committed all the same. Then the election settles it (``election.seal``: once a later
generation is committed, the change is in the store or never will be) and the rows tell:
commit returns if it was made, raises StoreError if not, StoreUnknown if the store does not
settle it within :data:`SETTLE_WAIT`. Instances that do not write follow every change
through :meth:`refresh`.
"""
import logging

from app.store import statefile
from app.store.ovsdb_client import OvsdbError
from app.store.store import (
    FIRST_API_ID, KINDS, LAST_ID, Content, Store, StoreError, StoreUnknown, render)

LOG = logging.getLogger("sggw.store")
TABLE = "Object"
ELECTION = "Election"
SETTLE_WAIT = 15.0  # seconds a change whose answer was lost waits for the store to settle it


class ClusterStore(Store):
    def __init__(self, db):
        super().__init__("store %s" % db.remotes)
        self.db = db
        self.cfg = None
        # app.cluster.election.Election, once there is one: its generation is verified by
        # every change, and its seal settles a change whose answer was lost
        self.election = None

    def load(self, cfg):
        self.cfg = cfg
        return super().load(cfg)

    def refresh(self):
        """Read the store again (another instance changed it); an unreadable store is
        logged and the last good view is kept."""
        before = self.objects, self.kept, self.texts
        try:
            self.load(self.cfg)
        except StoreError as exc:
            LOG.error("%s: cannot be read, the last good copy stays in use: %s",
                      self.path, exc)
            self.objects, self.kept, self.texts = before

    def _read_entries(self):
        texts = {}
        for row in self.db.rows(TABLE):
            texts.setdefault(row.datapath, {k: [] for k in KINDS})[row.kind].append(
                (row.ident, row.body))
        text = render({name: {kind: [body for _, body in sorted(items)]
                              for kind, items in kinds.items()}
                       for name, kinds in texts.items()})
        return statefile.parse(text, self.path, FIRST_API_ID, LAST_ID)

    def _remove_stale_temps(self):
        """Nothing outlives a transaction."""

    def write(self, content):
        return None

    @staticmethod
    def discard(temp):
        """Nothing to discard: a transaction leaves nothing behind."""

    def commit(self, temp, content):
        wanted = self._rows_of(content)
        generation = self.election.generation if self.election else None

        def build(txn, tables):
            if generation is not None:
                _verify_generation(tables, generation)
            seen = set()
            for row in list(tables[TABLE].rows.values()):
                key = (row.datapath, row.kind, row.ident)
                if key not in wanted:
                    row.delete()
                    continue
                seen.add(key)
                name, text = wanted[key]
                if row.body != text:
                    row.name, row.body = name, text
            for key in wanted.keys() - seen:
                row = txn.insert(tables[TABLE])
                row.datapath, row.kind, row.ident = key
                row.name, row.body = wanted[key]
        try:
            self.db.transact(build)
        except OvsdbError as exc:
            if not exc.unknown:
                raise StoreError("%s: %s" % (self.path, exc)) from None
            if not self._made(wanted, generation, exc):
                raise StoreError("%s: %s, and the store settled it: not made"
                                 % (self.path, exc)) from None
        self._took(content)

    def _rows_of(self, content):
        """{(datapath, kind, id): (name, JSON text)}: the rows that hold ``content``."""
        return {(name, kind, ident): (obj_name, text)
                for name in set(content.objects) | set(content.kept) for kind in KINDS
                for ident, obj_name, text in self._items(content, name, kind)}

    def _made(self, wanted, generation, exc):
        """Whether a change whose answer was lost was made, once the store settled it (a
        later generation committed): the rows it changed hold its values, or their old
        ones. Raises StoreUnknown if that cannot be told."""
        LOG.warning("%s: %s: waiting for the store to settle whether the change was made",
                    self.path, exc)
        old = self._rows_of(Content(self.objects, self.kept, self.texts))
        changed = {key for key in wanted.keys() | old.keys() if wanted.get(key) != old.get(key)}
        if generation is not None and self.election.seal(generation, SETTLE_WAIT):
            rows = {(r.datapath, r.kind, r.ident): (r.name, r.body) for r in self.db.rows(TABLE)}
            for made, values in ((True, wanted), (False, old)):
                if all(rows.get(key) == values.get(key) for key in changed):
                    LOG.warning("%s: the change was %s", self.path, "made" if made else
                                "not made")
                    return made
        raise StoreUnknown("%s: %s; the store has not settled whether it was made: it may "
                           "have been (GET shows what the store holds)" % (self.path, exc))


def _verify_generation(tables, generation):
    """The transaction fails unless the store's generation is still ``generation``: a
    master that was superseded writes nothing, whatever lock its member says it holds."""
    rows = list(tables[ELECTION].rows.values())
    if not rows or rows[0].generation != generation:
        raise OvsdbError("this instance is no longer master (the store has generation %s, "
                         "not %d)" % (rows[0].generation if rows else None, generation))
    rows[0].verify("generation")
