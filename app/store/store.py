"""Capture rules and mirror sessions created over REST, kept on disk across restarts.

One JSON file (``state_file`` in the config), checked strictly when read
(:mod:`app.store.statefile`). What the store guarantees:

* A change is written to a temporary file next to the store and fsynced first; it becomes
  the store (renamed over the old file, then the directory fsynced) only after the switch
  confirmed it. If that fails, the service changes the switch back (``Sggw._commit``).
* A state file that is a mount point of its own (one file bind-mounted into a container:
  ``-v ./state.json:/var/lib/sggw/state.json``) cannot be renamed over (EBUSY). It is then
  rewritten in place: space reserved first, written, fsynced. That is not atomic against
  a power cut in the middle of the write; bind-mount the directory to get the rename.
* No temporary file outlives its change; those of a killed controller go at the next start.
* An object that no longer fits the config (its datapath or port gone, its name now used
  by the file) is *kept*: logged, listed in health, written back unchanged by every later
  write, and applied again once the config fits it.
* Ids stay within what the switch layout allows (:data:`LAST_ID`): a mirror session gets
  the lowest free one, a capture rule one above every other (rules keep their creation
  order; when the top is reached they are renumbered in order). Exhaustion is an error.
"""
import bisect
import errno
import glob
import json
import logging
import os
import tempfile
from dataclasses import dataclass, replace
from operator import attrgetter
from typing import NamedTuple

from app import config
from app.store import statefile
from flows.capture import MAX_RULE_ID
from flows.tables import MAX_SESSION_ID

LOG = logging.getLogger("sggw.store")
FIRST_API_ID = config.MAX_CONFIG_OBJECTS + 1  # REST objects are numbered after the file's
LAST_ID = {"captures": MAX_RULE_ID, "mirrors": MAX_SESSION_ID}
KINDS = statefile.KINDS
TEMP_PREFIX = ".sggw-state-"
_ID, _NAME = attrgetter("id"), attrgetter("name")


class StoreError(Exception):
    pass


class IdsExhausted(StoreError):
    pass


class StoreUnknown(StoreError):
    """The change was sent, and whether it was made cannot be known yet (a cluster store
    that does not answer); the store, once it does, has the last word."""


@dataclass(frozen=True)
class Kept:
    """A stored object that does not fit the config now: its stored body, and why."""

    id: int
    body: dict  # as read from the file, without its id
    reason: str

    @property
    def name(self):
        return self.body["name"]


class Content(NamedTuple):
    """The whole store: ``{datapath: {kind: [object]}}`` applied, the same of Kept, and
    the applied objects' JSON texts (``{datapath: {kind: [text]}}``, in the same order)."""

    objects: dict
    kept: dict
    texts: dict
    change: tuple = None  # (datapath, kind, objects gone, objects come) since the store


class Numbered(NamedTuple):
    """A new object with its id, and the change that adds it: the objects to put (the new
    one, and the renumbered ones when capture rules reached the top) and the ids to drop."""

    put: list
    drop: list
    obj: object


def _parse(kind, body, dp, path):
    if kind == "captures":
        return config.capture_rule(body, path, dp.ports)
    return config.mirror(body, path, dp.ports)


class Store:
    """REST-made objects per datapath, each list ordered by id."""

    def __init__(self, path):
        self.path = path
        self.objects = {}
        self.kept = {}
        self.texts = {}  # each applied object's JSON, encoded once (objects are immutable)
        self._names = {}  # {datapath: {kind: {name: applied object}}}
        self._used = {}  # {datapath: config.MirrorPorts of the applied sessions}

    # --- loading ----------------------------------------------------------------------------

    def load(self, cfg):
        """Read the file (if any): objects that fit ``cfg`` are applied, the others kept."""
        self._remove_stale_temps()
        try:
            entries = self._read_entries()
        except statefile.StateFileError as exc:
            raise StoreError(str(exc)) from None
        self.objects, self.kept, self._names, self._used = {}, {}, {}, {}
        for dp_name, kinds in entries.items():
            for kind in KINDS:
                for ident, body, where in kinds[kind]:
                    self._restore(cfg.datapaths.get(dp_name), dp_name, kind, ident, body,
                                  where)
        for lists in (self.objects, self.kept):  # a file edited by hand may be in any order
            for kinds in lists.values():
                for kind in KINDS:
                    kinds[kind].sort(key=_ID)
        self.texts = {name: {kind: [_encode(o) for o in kinds[kind]] for kind in KINDS}
                      for name, kinds in self.objects.items()}
        return self

    def _read_entries(self):
        return statefile.read(self.path, FIRST_API_ID, LAST_ID)

    def _restore(self, dp, dp_name, kind, ident, body, where):
        reason = None
        if dp is None:
            reason = "datapath %r is not in the config" % dp_name
        else:
            try:
                obj = replace(_parse(kind, dict(body), dp, where), id=ident)
                configured = dp.capture if kind == "captures" else dp.mirrors
                if obj.name in {o.name for o in configured}:
                    raise config.ConfigError(where + ".name", "the config file now defines %r"
                                             % obj.name)
                if kind == "mirrors":
                    self.mirror_ports(dp_name, dp.mirrors).check(obj, where)
            except config.ConfigError as exc:
                reason = str(exc)
        if reason is not None:
            LOG.error("%s: %s (%r) is kept in the store but not applied: %s", self.path, where,
                      body["name"], reason)
            self.kept.setdefault(dp_name, {k: [] for k in KINDS})[kind].append(
                Kept(ident, body, reason))
            return
        self.objects.setdefault(dp_name, {k: [] for k in KINDS})[kind].append(obj)
        self._index(dp_name, kind, (), (obj,))

    def _remove_stale_temps(self):
        for temp in glob.glob(os.path.join(glob.escape(self._directory()),
                                           glob.escape(self._temp_prefix()) + "*")):
            LOG.warning("%s: removing %s, left by a controller that stopped mid-write",
                        self.path, temp)
            self.discard(temp)

    # --- reading ----------------------------------------------------------------------------

    def get(self, dp_name, kind):
        return list(self.objects.get(dp_name, {}).get(kind, []))

    def named(self, dp_name, kind, name):
        """The applied object called ``name``, or None."""
        return self._names.get(dp_name, {}).get(kind, {}).get(name)

    def mirror_ports(self, dp_name, configured=(), leave_out=()):
        """config.MirrorPorts of ``dp_name``'s applied sessions and of ``configured`` (the
        config file's), without the sessions named in ``leave_out``."""
        used = self._used.get(dp_name, config.MirrorPorts()).copy()
        for session in configured:
            if session.name not in leave_out:
                used.add(session)
        for name in leave_out:
            session = self.named(dp_name, "mirrors", name)
            if session is not None:
                used.remove(session)
        return used

    def kept_objects(self, dp_name, kind):
        return list(self.kept.get(dp_name, {}).get(kind, []))

    def all_kept(self):
        """[(datapath name, kind, Kept)] of the whole store."""
        return [(dp_name, kind, item) for dp_name, kinds in sorted(self.kept.items())
                for kind in KINDS for item in kinds[kind]]

    # --- ids ----------------------------------------------------------------------------------

    def numbered(self, dp_name, kind, obj, what):
        """:class:`Numbered`: ``obj`` with the id it gets among ``dp_name``'s REST-made
        ``kind``, and the change that adds it.

        Raises IdsExhausted (``what``: the noun for the message) when no id is free."""
        objects = self.objects.get(dp_name, {}).get(kind, [])  # ordered by id
        drop = []
        kept = sorted(k.id for k in self.kept_objects(dp_name, kind))
        last = LAST_ID[kind]
        ident = None
        if kind == "mirrors":
            ident = _lowest_free(objects, kept, last)
        elif _top(objects, kept) < last:
            ident = _top(objects, kept) + 1
        else:  # renumber the applied rules in order, below the new one
            kept = set(kept)
            free = (i for i in range(FIRST_API_ID, last + 1) if i not in kept)
            ids = [i for i, _ in zip(free, range(len(objects) + 1))]
            if len(ids) == len(objects) + 1:
                drop = [o.id for o in objects]
                objects = [replace(o, id=i) for o, i in zip(objects, ids)]
                ident = ids[-1]
        if ident is None:
            raise IdsExhausted("all %d ids for a %s on %s are in use (%d kept in the store): "
                               "delete one first" % (last - FIRST_API_ID + 1, what, dp_name,
                                                     len(kept)))
        obj = replace(obj, id=ident)
        return Numbered((objects if drop else []) + [obj], drop, obj)

    # --- changing -----------------------------------------------------------------------------

    def with_changed(self, dp_name, kind, put=(), drop=(), unkeep=None):
        """The store's Content with ``dp_name``'s ``kind`` objects with ids ``drop`` removed,
        those of ``put`` added (or replacing the one with their id) and the kept object with
        id ``unkeep`` removed (not written yet). Lists are copied and changed where the ids
        say (a binary search), and only the new objects are encoded: the cost of a change
        hardly depends on how many objects there are."""
        objects = list(self.objects.get(dp_name, {}).get(kind, ()))
        texts = list(self.texts.get(dp_name, {}).get(kind, ()))
        gone = []
        for ident in drop:
            at = bisect.bisect_left(objects, ident, key=_ID)
            if at < len(objects) and objects[at].id == ident:
                gone.append(objects[at])
                del objects[at], texts[at]
        for obj in put:
            at = bisect.bisect_left(objects, obj.id, key=_ID)
            if at < len(objects) and objects[at].id == obj.id:
                gone.append(objects[at])
                objects[at], texts[at] = obj, _encode(obj)
            else:
                objects.insert(at, obj)
                texts.insert(at, _encode(obj))
        out, out_texts = _with(self.objects, dp_name, kind, objects), \
            _with(self.texts, dp_name, kind, texts)
        kept = self.kept
        if unkeep is not None:
            kept = _with(kept, dp_name, kind, [k for k in kept[dp_name][kind] if k.id != unkeep])
        return Content(out, kept, out_texts, (dp_name, kind, gone, list(put)))

    def write(self, content):
        """Write ``content`` to a temporary file next to the store, fsynced; its path."""
        text = self._render(content)
        try:
            os.makedirs(self._directory(), exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=self._directory(), prefix=self._temp_prefix())
        except OSError as exc:
            raise StoreError("cannot write %s: %s" % (self.path, exc.strerror)) from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            self.discard(temp)
            raise StoreError("cannot write %s: %s" % (self.path, exc.strerror)) from None
        return temp

    def commit(self, temp, content):
        """Make the written ``temp`` file the store: renamed over it, or written into it
        when it is a mount point. Raises StoreError with the store left as it was."""
        try:
            os.replace(temp, self.path)
        except OSError as exc:
            if exc.errno not in (errno.EBUSY, errno.EXDEV):
                self.discard(temp)
                raise StoreError("cannot replace %s: %s" % (self.path, exc.strerror)) from None
            try:
                self._write_in_place(temp)
            finally:
                self.discard(temp)
        else:
            self._sync_directory()
        self._took(content)

    def _took(self, content):
        """``content`` is now what the store holds."""
        self.objects, self.kept, self.texts, change = content
        if change is not None:
            self._index(*change)

    def _index(self, dp_name, kind, gone, came):
        """Follow a change in the lookups by name and the mirror ports in use."""
        names = self._names.setdefault(dp_name, {k: {} for k in KINDS})[kind]
        used = self._used.setdefault(dp_name, config.MirrorPorts())
        for obj in gone:
            names.pop(obj.name, None)
            if kind == "mirrors":
                used.remove(obj)
        for obj in came:
            names[obj.name] = obj
            if kind == "mirrors":
                used.add(obj)

    def _write_in_place(self, temp):
        """Copy ``temp`` into the store file itself (it cannot be renamed over). The space
        is reserved first, so a full disk fails before anything is overwritten."""
        def failed(exc):
            return StoreError("cannot write %s in place: %s" % (self.path, exc.strerror))
        try:
            with open(temp, "rb") as handle:
                new = handle.read()
            fd = os.open(self.path, os.O_RDWR)
        except OSError as exc:
            raise failed(exc) from None
        try:
            old = os.read(fd, os.fstat(fd).st_size + 1)
            try:
                os.posix_fallocate(fd, 0, max(len(new), 1))
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # else: cannot reserve
                    raise
            try:
                _rewrite(fd, new)
            except OSError:
                try:
                    _rewrite(fd, old)
                except OSError as exc:
                    LOG.critical("%s: half-written and could not be restored: %s",
                                 self.path, exc.strerror)
                raise
        except OSError as exc:
            raise failed(exc) from None
        finally:
            os.close(fd)

    def _sync_directory(self):
        """The rename is durable only once the directory is on disk too."""
        try:
            fd = os.open(self._directory(), os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            LOG.warning("%s: saved, but its directory could not be synced: %s", self.path,
                        exc.strerror)

    @staticmethod
    def discard(temp):
        try:
            os.unlink(temp)
        except OSError:
            pass

    # --- encoding -----------------------------------------------------------------------------

    def _render(self, content):
        """The state document of ``content``: each list is its texts joined, merged with
        the kept objects' only where there are any."""
        objects, kept, texts = content.objects, content.kept, content.texts
        joined = {}
        for name in set(objects) | set(kept):
            joined[name] = {}
            for kind in KINDS:
                if kept.get(name, {}).get(kind):
                    items = self._items(content, name, kind)
                    joined[name][kind] = ",".join(text for _, _, text in items)
                else:
                    joined[name][kind] = ",".join(texts.get(name, {}).get(kind, []))
        return render(joined, joined=True)

    def _items(self, content, name, kind):
        """[(id, name, JSON text with its id)] of ``name``'s ``kind`` in ``content``, applied
        and kept objects together, ordered by id."""
        objects, kept, texts = content.objects, content.kept, content.texts
        applied = objects.get(name, {}).get(kind, [])
        items = list(zip(map(_ID, applied), map(_NAME, applied),
                         texts.get(name, {}).get(kind, [])))
        stored = kept.get(name, {}).get(kind, [])
        if stored:
            items = sorted(items + [(k.id, k.name, json.dumps(
                dict(k.body, id=k.id), separators=(",", ":"))) for k in stored])
        return items

    def _directory(self):
        return os.path.dirname(os.path.abspath(self.path))

    def _temp_prefix(self):
        return "%s%s." % (TEMP_PREFIX, os.path.basename(self.path))


def render(texts, joined=False):
    """The state document of {datapath: {kind: [each object's JSON text]}} (or, ``joined``,
    {datapath: {kind: the texts joined by commas}}). Joined, not %-formatted: formatting
    copies a large string piece by piece (0.5 ms for 200 kB)."""
    parts = ['{"version":%d,"datapaths":{' % statefile.VERSION]
    for i, (name, kinds) in enumerate(sorted(texts.items())):
        parts += [",", json.dumps(name), ":{"] if i else [json.dumps(name), ":{"]
        for j, kind in enumerate(KINDS):
            text = kinds.get(kind, "") if joined else ",".join(kinds.get(kind, []))
            parts += [",\"" if j else "\"", kind, "\":[", text, "]"]
        parts.append("}")
    parts.append("}}")
    return "".join(parts)


def _encode(obj):
    return json.dumps(dict(obj.to_dict(), id=obj.id), separators=(",", ":"))


def _with(lists, dp_name, kind, items):
    """A copy of ``{datapath: {kind: list}}`` with one list replaced (the others shared)."""
    out = {name: dict(kinds) for name, kinds in lists.items()}
    out.setdefault(dp_name, {k: [] for k in KINDS})[kind] = items
    return out


def _top(objects, kept):
    """The highest id in use, given objects and kept ids both ordered by id."""
    return max(objects[-1].id if objects else 0, kept[-1] if kept else 0, FIRST_API_ID - 1)


def _lowest_free(objects, kept, last):
    """The lowest id from FIRST_API_ID to ``last`` that neither an object (ordered by id)
    nor a kept id (ordered) uses, or None: a binary search, since the ids in use up to
    ``x`` fill ``FIRST_API_ID..x`` exactly until the first free one."""
    def gap_at_or_below(x):
        used = bisect.bisect_right(objects, x, key=_ID) + bisect.bisect_right(kept, x)
        return used < x - FIRST_API_ID + 1
    low, high = FIRST_API_ID, last
    while low < high:
        middle = (low + high) // 2
        if gap_at_or_below(middle):
            high = middle
        else:
            low = middle + 1
    return low if gap_at_or_below(low) else None


def _rewrite(fd, data):
    os.lseek(fd, 0, os.SEEK_SET)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.ftruncate(fd, len(data))
    os.fsync(fd)
