"""Capture rules and mirror sessions created over REST, kept on disk across restarts.

One JSON file (``state_file`` in the config), replaced atomically: the new content goes to
a temporary file that is renamed over the old one only after the switch confirmed the
change. On start every stored object is validated again against the config; one that no
longer fits (a port left the config, a name now used by the file) is skipped with a log
line, never a crash.
"""
import json
import logging
import os
import tempfile
from dataclasses import replace

from app import config

LOG = logging.getLogger("sggw.store")
FIRST_API_ID = config.MAX_CONFIG_OBJECTS + 1  # REST objects are numbered after the file's
KINDS = ("captures", "mirrors")


class StoreError(Exception):
    pass


def _parse(kind, body, dp, path):
    if kind == "captures":
        return config.capture_rule(body, path, dp.ports)
    return config.mirror(body, path, dp.ports)


class Store:
    """REST-made objects per datapath: ``{dp name: {"captures": [...], "mirrors": [...]}}``,
    each list ordered by id."""

    def __init__(self, path):
        self.path = path
        self.objects = {}
        self._texts = {}  # id(object) -> (object, its JSON): objects are immutable

    def load(self, cfg):
        """Read the file (if any) and keep the objects that still fit ``cfg``."""
        try:
            with open(self.path, encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return self
        except (OSError, ValueError) as exc:
            raise StoreError("%s: cannot read REST-made objects: %s" % (self.path, exc)) \
                from None
        for dp_name, kinds in (data.get("datapaths") or {}).items():
            dp = cfg.datapaths.get(dp_name)
            if dp is None:
                LOG.error("%s: datapath %r is no longer configured: its REST objects are "
                          "ignored", self.path, dp_name)
                continue
            for kind in KINDS:
                for i, body in enumerate(kinds.get(kind, [])):
                    self._restore(dp, kind, body, "%s.%s[%d]" % (dp_name, kind, i))
        return self

    def _restore(self, dp, kind, body, where):
        try:
            ident = body.pop("id")
            obj = replace(_parse(kind, body, dp, where), id=ident)
        except (config.ConfigError, KeyError, TypeError, AttributeError) as exc:
            LOG.error("%s: %s skipped: %s", self.path, where, exc)
            return
        taken = {o.name for o in getattr(dp, "capture" if kind == "captures" else kind)}
        if obj.name in taken:
            LOG.error("%s: %s skipped: the config file now defines %r", self.path, where,
                      obj.name)
            return
        self.objects.setdefault(dp.name, {k: [] for k in KINDS})[kind].append(obj)

    def get(self, dp_name, kind):
        return list(self.objects.get(dp_name, {}).get(kind, []))

    def next_id(self, dp_name, kind):
        return max([FIRST_API_ID - 1] + [o.id for o in self.get(dp_name, kind)]) + 1

    def with_changed(self, dp_name, kind, objects):
        """The store's content with ``dp_name``'s ``kind`` list replaced (not written yet)."""
        out = {name: dict(kinds) for name, kinds in self.objects.items()}
        out.setdefault(dp_name, {k: [] for k in KINDS})[kind] = sorted(objects,
                                                                       key=lambda o: o.id)
        return out

    def write(self, objects):
        """Write ``objects`` to a temporary file next to the store; returns its path."""
        datapaths = ",".join(
            "%s:{%s}" % (json.dumps(name), ",".join(
                '"%s":[%s]' % (kind, ",".join(self._text(o) for o in kinds[kind]))
                for kind in KINDS))
            for name, kinds in objects.items())
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(directory, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=directory, prefix=".sggw-state-")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write('{"version":1,"datapaths":{%s}}' % datapaths)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise StoreError("cannot write %s: %s" % (self.path, exc.strerror)) from None
        return temp

    def _text(self, obj):
        """``obj`` as JSON, encoded once: a write with a thousand objects costs only the new
        one's encoding."""
        cached = self._texts.get(id(obj))
        if cached is None or cached[0] is not obj:
            cached = obj, json.dumps(dict(obj.to_dict(), id=obj.id), separators=(",", ":"))
            self._texts[id(obj)] = cached
        return cached[1]

    def commit(self, temp, objects):
        """Make the written ``temp`` file the store (atomic rename)."""
        os.replace(temp, self.path)
        self.objects = objects
        kept = {id(o) for kinds in objects.values() for kind in KINDS for o in kinds[kind]}
        self._texts = {k: v for k, v in self._texts.items() if k in kept}

    @staticmethod
    def discard(temp):
        try:
            os.unlink(temp)
        except OSError:
            pass
