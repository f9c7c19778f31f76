"""``sggwctl export`` and ``sggwctl import``: a controller's REST-made capture rules and
mirror sessions as one JSON file, and that file made real again on a controller.

The file holds each object as the API takes it (``source``, ``counters`` and empty keys
left out), per switch and kind:

    {"sggw_export": 1, "switches": {"site-a": {"captures": [{"name": "web", ...}],
                                               "mirrors": [...]}}}

Import creates what is missing and replaces what differs, by name; it deletes nothing,
and running it twice changes nothing the second time. Objects of the config file are never
exported, and one in the file whose name the config file uses fails (change it there).
"""
from sggwctl.errors import USAGE, CtlError

FORMAT = 1
KINDS = ("captures", "mirrors")
NOUNS = {"captures": "capture rule", "mirrors": "mirror session"}
CREATE, REPLACE, UNCHANGED, IN_CONFIG = "created", "replaced", "unchanged", "in the config"


def exported(listings):
    """The file's document from ``{switch: {kind: [object as GET lists it]}}``."""
    return {"sggw_export": FORMAT, "switches": {
        switch: {kind: [body(o) for o in kinds.get(kind, []) if o.get("source") == "api"]
                 for kind in KINDS}
        for switch, kinds in listings.items()}}


def body(obj):
    """An object as the API takes it back: without what only GET says, without empty keys."""
    return _without_empty({k: v for k, v in obj.items() if k not in ("source", "counters")})


def _without_empty(value):
    if isinstance(value, dict):
        return {k: _without_empty(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_empty(v) for v in value]
    return value


def checked(document, path):
    """``{switch: {kind: [body]}}`` from a file's document, or a one-line usage error."""
    def bad(where, what):
        raise CtlError(USAGE, "%s: %s: %s" % (path, where, what))
    if not isinstance(document, dict) or set(document) != {"sggw_export", "switches"}:
        bad("top level", "expected {\"sggw_export\": %d, \"switches\": {...}} as sggwctl "
            "export writes it" % FORMAT)
    if document["sggw_export"] != FORMAT or isinstance(document["sggw_export"], bool):
        bad("sggw_export", "expected %d, got %r" % (FORMAT, document["sggw_export"]))
    switches = document["switches"]
    if not isinstance(switches, dict):
        bad("switches", "expected a mapping of switch names")
    out = {}
    for switch, kinds in switches.items():
        where = "switches.%s" % switch
        if not isinstance(kinds, dict) or not set(kinds) <= set(KINDS):
            bad(where, "expected a mapping with captures and/or mirrors")
        out[switch] = {}
        for kind, objects in kinds.items():
            if not isinstance(objects, list):
                bad("%s.%s" % (where, kind), "expected a list")
            names = set()
            for i, obj in enumerate(objects):
                at = "%s.%s[%d]" % (where, kind, i)
                if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
                    bad(at, "expected an object with a name")
                if obj["name"] in names:
                    bad(at, "%s %r is in the file twice" % (NOUNS[kind], obj["name"]))
                names.add(obj["name"])
            out[switch][kind] = objects
    return out


def plan(existing, wanted):
    """[(what to do, body)] to make ``wanted`` (bodies) exist among ``existing`` (objects
    as GET lists them): create, replace, leave unchanged, or refuse (the config's)."""
    have = {o["name"]: o for o in existing}
    out = []
    for want in wanted:
        found = have.get(want["name"])
        if found is None:
            out.append((CREATE, want))
        elif found.get("source") == "config":
            out.append((IN_CONFIG, want))
        elif body(found) == _without_empty(want):
            out.append((UNCHANGED, want))
        else:
            out.append((REPLACE, want))
    return out


def failed(switch, kind, obj, error):
    return {"switch": switch, "kind": kind, "name": obj["name"], "result": "failed",
            "error": error}


def describe(result):
    """One line of import's output: ``site-a: capture rule web: created``."""
    return "%s: %s %s: %s%s" % (result["switch"], NOUNS[result["kind"]], result["name"],
                                result["result"],
                                " (%s)" % result["error"] if "error" in result else "")
