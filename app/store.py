"""Capture rules and mirror sessions created over REST, kept on disk across restarts.

One JSON file (``state_file`` in the config), checked strictly when read
(:mod:`app.statefile`). What the store guarantees:

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
import errno
import glob
import json
import logging
import os
import tempfile
from dataclasses import dataclass, replace
from typing import NamedTuple

from app import config, statefile
from flows.capture import MAX_RULE_ID
from flows.tables import MAX_SESSION_ID

LOG = logging.getLogger("sggw.store")
FIRST_API_ID = config.MAX_CONFIG_OBJECTS + 1  # REST objects are numbered after the file's
LAST_ID = {"captures": MAX_RULE_ID, "mirrors": MAX_SESSION_ID}
KINDS = statefile.KINDS
TEMP_PREFIX = ".sggw-state-"


class StoreError(Exception):
    pass


class IdsExhausted(StoreError):
    pass


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
    """The whole store: ``{datapath: {kind: [object]}}`` applied, and the same of Kept."""

    objects: dict
    kept: dict


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
        self._texts = {}  # id(object) -> (object, its JSON): objects are immutable

    # --- loading ----------------------------------------------------------------------------

    def load(self, cfg):
        """Read the file (if any): objects that fit ``cfg`` are applied, the others kept."""
        self._remove_stale_temps()
        try:
            entries = self._read_entries()
        except statefile.StateFileError as exc:
            raise StoreError(str(exc)) from None
        self.objects, self.kept = {}, {}
        for dp_name, kinds in entries.items():
            for kind in KINDS:
                for ident, body, where in kinds[kind]:
                    self._restore(cfg.datapaths.get(dp_name), dp_name, kind, ident, body,
                                  where)
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
                    config.check_mirror_against(obj, dp.mirrors + tuple(self.get(dp_name, kind)),
                                                where)
            except config.ConfigError as exc:
                reason = str(exc)
        if reason is not None:
            LOG.error("%s: %s (%r) is kept in the store but not applied: %s", self.path, where,
                      body["name"], reason)
            self.kept.setdefault(dp_name, {k: [] for k in KINDS})[kind].append(
                Kept(ident, body, reason))
            return
        self.objects.setdefault(dp_name, {k: [] for k in KINDS})[kind].append(obj)

    def _remove_stale_temps(self):
        for temp in glob.glob(os.path.join(glob.escape(self._directory()),
                                           glob.escape(self._temp_prefix()) + "*")):
            LOG.warning("%s: removing %s, left by a controller that stopped mid-write",
                        self.path, temp)
            self.discard(temp)

    # --- reading ----------------------------------------------------------------------------

    def get(self, dp_name, kind):
        return list(self.objects.get(dp_name, {}).get(kind, []))

    def kept_objects(self, dp_name, kind):
        return list(self.kept.get(dp_name, {}).get(kind, []))

    def all_kept(self):
        """[(datapath name, kind, Kept)] of the whole store."""
        return [(dp_name, kind, item) for dp_name, kinds in sorted(self.kept.items())
                for kind in KINDS for item in kinds[kind]]

    # --- ids ----------------------------------------------------------------------------------

    def numbered(self, dp_name, kind, obj, what):
        """(``dp_name``'s REST-made ``kind`` list with ``obj`` added, ``obj`` with its id).

        Raises IdsExhausted (``what``: the noun for the message) when no id is free."""
        objects = self.get(dp_name, kind)
        kept = {k.id for k in self.kept_objects(dp_name, kind)}
        taken = kept | {o.id for o in objects}
        last = LAST_ID[kind]
        ident = None
        if kind == "mirrors":
            ident = next((i for i in range(FIRST_API_ID, last + 1) if i not in taken), None)
        elif max(taken, default=FIRST_API_ID - 1) < last:
            ident = max(taken, default=FIRST_API_ID - 1) + 1
        else:  # renumber the applied rules in order, below the new one
            free = (i for i in range(FIRST_API_ID, last + 1) if i not in kept)
            ids = [i for i, _ in zip(free, range(len(objects) + 1))]
            if len(ids) == len(objects) + 1:
                objects = [replace(o, id=i) for o, i in zip(objects, ids)]
                ident = ids[-1]
        if ident is None:
            raise IdsExhausted("all %d ids for a %s on %s are in use (%d kept in the store): "
                               "delete one first" % (last - FIRST_API_ID + 1, what, dp_name,
                                                     len(kept)))
        obj = replace(obj, id=ident)
        return objects + [obj], obj

    # --- changing -----------------------------------------------------------------------------

    def with_changed(self, dp_name, kind, objects, unkeep=None):
        """The store's Content with ``dp_name``'s ``kind`` list replaced and the kept
        object with id ``unkeep`` removed (not written yet)."""
        out = {name: dict(kinds) for name, kinds in self.objects.items()}
        out.setdefault(dp_name, {k: [] for k in KINDS})[kind] = sorted(objects,
                                                                       key=lambda o: o.id)
        kept = self.kept
        if unkeep is not None:
            kept = {name: dict(kinds) for name, kinds in self.kept.items()}
            kept[dp_name][kind] = [k for k in kept[dp_name][kind] if k.id != unkeep]
        return Content(out, kept)

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
        self.objects, self.kept = content
        alive = {id(o) for kinds in self.objects.values() for kind in KINDS
                 for o in kinds[kind]}
        self._texts = {k: v for k, v in self._texts.items() if k in alive}

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
        return render({name: {kind: [text for _, _, text in items]
                              for kind, items in kinds.items()}
                       for name, kinds in self._items(content).items()})

    def _items(self, content):
        """{datapath: {kind: [(id, name, JSON text with its id)]}} of ``content``, applied
        and kept objects together, ordered by id."""
        objects, kept = content
        out = {}
        for name in sorted(set(objects) | set(kept)):
            out[name] = {}
            for kind in KINDS:
                items = [(o.id, o.name, self._text(o))
                         for o in objects.get(name, {}).get(kind, [])]
                items += [(k.id, k.name, json.dumps(dict(k.body, id=k.id),
                                                    separators=(",", ":")))
                          for k in kept.get(name, {}).get(kind, [])]
                out[name][kind] = sorted(items)
        return out

    def _text(self, obj):
        """``obj`` as JSON, encoded once: a write with a thousand objects costs only the new
        one's encoding."""
        cached = self._texts.get(id(obj))
        if cached is None or cached[0] is not obj:
            cached = obj, json.dumps(dict(obj.to_dict(), id=obj.id), separators=(",", ":"))
            self._texts[id(obj)] = cached
        return cached[1]

    def _directory(self):
        return os.path.dirname(os.path.abspath(self.path))

    def _temp_prefix(self):
        return "%s%s." % (TEMP_PREFIX, os.path.basename(self.path))


def render(texts):
    """The state document of {datapath: {kind: [each object's JSON text]}}."""
    datapaths = ("%s:{%s}" % (json.dumps(name), ",".join(
        '"%s":[%s]' % (kind, ",".join(kinds.get(kind, []))) for kind in KINDS))
        for name, kinds in sorted(texts.items()))
    return '{"version":%d,"datapaths":{%s}}' % (statefile.VERSION, ",".join(datapaths))


def _rewrite(fd, data):
    os.lseek(fd, 0, os.SEEK_SET)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.ftruncate(fd, len(data))
    os.fsync(fd)
