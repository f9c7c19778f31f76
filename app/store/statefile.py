"""Read the state file and check its shape strictly, before anything is built from it.

The file is sggw's own (``{"version": 1, "datapaths": {name: {"captures": [...],
"mirrors": [...]}}}``), but people edit, copy and truncate files: every deviation is one
:class:`StateFileError` line naming the file, the key path and the reason, and the
controller stops with exit status 2 (see ``sggw_app.start_or_exit``). What is checked here
is what must hold whatever the config says (shapes, ids, uniqueness); whether an object
still fits the config is the store's question, and its answer never loses the object.
"""
import json
import os
import stat

VERSION = 1
KINDS = ("captures", "mirrors")
MAX_BYTES = 64 << 20  # far above a thousand objects per kind and switch (about 0.5 MB)


class StateFileError(Exception):
    """``file: key.path: reason``, like a config error."""

    def __init__(self, path, where, reason):
        super().__init__(": ".join(p for p in (path, where, reason) if p))


def read(path, first_id, last_id):
    """{datapath name: {kind: [(id, body without id, key path)]}} from the file at ``path``
    ({} if there is none). Ids are integers in ``first_id..last_id[kind]``, unique per kind
    and datapath; names are unique likewise."""
    text = _read_text(path)
    return {} if text is None else parse(text, path, first_id, last_id)


def parse(text, path, first_id, last_id):
    """:func:`read` of a document already read (``path`` names where it came from)."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise StateFileError(path, None, "not valid JSON: nested too deeply") from None
    except ValueError as exc:
        raise StateFileError(path, None, "not valid JSON: %s" % exc) from None
    _object(path, data, None, ("version", "datapaths"))
    if data.get("version") != VERSION or isinstance(data.get("version"), bool):
        raise StateFileError(path, "version", "expected %d, got %s (written by another sggw "
                             "version?)" % (VERSION, _show(data.get("version"))))
    datapaths = data.get("datapaths", {})
    _object(path, datapaths, "datapaths", None)
    out = {}
    for dp_name, kinds in datapaths.items():
        where = "datapaths.%s" % dp_name
        _object(path, kinds, where, KINDS)
        out[dp_name] = {kind: _entries(path, kinds.get(kind, []), "%s.%s" % (where, kind),
                                       first_id, last_id[kind]) for kind in KINDS}
    return out


def _read_text(path):
    """The file's text; a FIFO, device or directory is refused without blocking on it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateFileError(path, None, "cannot read: %s" % exc.strerror) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise StateFileError(path, None, "not a regular file")
        if info.st_size > MAX_BYTES:
            raise StateFileError(path, None, "%d bytes: larger than the %d a state file can "
                                 "be" % (info.st_size, MAX_BYTES))
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    except OSError as exc:
        raise StateFileError(path, None, "cannot read: %s" % exc.strerror) from None
    finally:
        os.close(fd)
    raw = b"".join(chunks)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StateFileError(path, None, "not UTF-8 text: %s" % exc.reason) from None


def _entries(path, items, where, first_id, last_id):
    if not isinstance(items, list):
        raise StateFileError(path, where, "expected a list, got %s" % _show(items))
    ids, names, out = {}, {}, []
    for i, body in enumerate(items):
        at = "%s[%d]" % (where, i)
        _object(path, body, at, None)
        ident = body.get("id")
        if not isinstance(ident, int) or isinstance(ident, bool):
            raise StateFileError(path, at + ".id", "expected an integer, got %s"
                                 % _show(ident))
        if not first_id <= ident <= last_id:
            raise StateFileError(path, at + ".id", "%s is outside %d..%d (ids below %d "
                                 "belong to the config file)" % (_show(ident), first_id,
                                                                 last_id, first_id))
        if ident in ids:
            raise StateFileError(path, at + ".id", "%d is already used by %s"
                                 % (ident, ids[ident]))
        name = body.get("name")
        if not isinstance(name, str):
            raise StateFileError(path, at + ".name", "expected a string, got %s"
                                 % _show(name))
        if name in names:
            raise StateFileError(path, at + ".name", "%r is already used by %s"
                                 % (name, names[name]))
        ids[ident] = names[name] = at
        out.append((ident, {k: v for k, v in body.items() if k != "id"}, at))
    return out


def _object(path, value, where, keys):
    if not isinstance(value, dict):
        raise StateFileError(path, where, "expected an object, got %s" % _show(value))
    if keys is not None:
        for key in value:
            if key not in keys:
                raise StateFileError(path, "%s.%s" % (where, key) if where else key,
                                     "unknown key")


def _show(value):
    """A short rendering of a JSON value for an error line."""
    if isinstance(value, (dict, list)):
        return "an object" if isinstance(value, dict) else "a list"
    if value is None:
        return "null"
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."
