"""The REST-made objects in sggw's clustered OVSDB (``store:`` in the config), for a cluster.

Same objects, ids and checks as the file store (:class:`app.store.Store`): the rows are
read back as the state document and go through the same strict validation, and objects
that do not fit the config are kept likewise. What differs is how a change is made
durable: one OVSDB transaction that asserts the master lock (so only the elected master
can write), committed by the raft leader before the REST answer. ``write`` has nothing to
prepare; ``commit`` either commits the transaction or raises StoreError with the store
unchanged. Instances that do not write follow every change through :meth:`refresh`.
"""
import logging

from app.store import statefile
from app.store.ovsdb_client import OvsdbError
from app.store.store import FIRST_API_ID, KINDS, LAST_ID, Store, StoreError, render

LOG = logging.getLogger("sggw.store")
TABLE = "Object"


class ClusterStore(Store):
    def __init__(self, db):
        super().__init__("store %s" % db.remotes)
        self.db = db
        self.cfg = None

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
        wanted = {(name, kind, ident): (obj_name, text)
                  for name in set(content.objects) | set(content.kept) for kind in KINDS
                  for ident, obj_name, text in self._items(content, name, kind)}

        def build(txn, tables):
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
            raise StoreError("%s: %s" % (self.path, exc)) from None
        self._took(content)
