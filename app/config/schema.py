"""Declare a value once; read it, and describe it, from that one declaration.

Each object users write (in ``sggw.yaml`` or a REST body) is a tree of nodes. A node's
:meth:`Node.check` checks a value and turns it into what sggw works with, raising
:class:`ConfigError` with the key path and a precise reason; its :meth:`Node.schema` says
the same as JSON Schema, in one of two dialects: :data:`JSON_SCHEMA` (draft-07, what
editors read for ``sggw.yaml``) or :data:`OPENAPI` (OpenAPI 3.0's, for the REST API).
What JSON Schema cannot say (a port that must be one of the datapath's, a prefix without
host bits, two fields that exclude each other) is checked by the object's ``build``, in
the order a reader expects the errors.

sggw's own layer rather than pydantic or jsonschema: docs/design.md says why.
"""
import copy
import re
from dataclasses import dataclass

MISSING = object()


class ConfigError(ValueError):
    """A config problem at ``path`` (a key path like ``datapaths.a.ports.lan[0]``)."""

    def __init__(self, path, reason, source=None):
        super().__init__(reason)
        self.path = path
        self.reason = reason
        self.source = source

    def __str__(self):
        parts = [p for p in (self.source, self.path) if p]
        return ": ".join(parts + [self.reason])


@dataclass(frozen=True)
class Dialect:
    """How a schema is written: ``nullable: true`` (OpenAPI 3.0) or a ``null`` type."""

    openapi: bool


JSON_SCHEMA = Dialect(openapi=False)
OPENAPI = Dialect(openapi=True)


def join(path, key):
    return "%s.%s" % (path, key) if path else str(key)


def key_text(key):
    """A key as it may appear in a one-line key path."""
    if isinstance(key, str) and re.fullmatch(r"[\w.-]+", key):
        return key
    return repr(key)


def show(value):
    if isinstance(value, (dict, list)):
        return "a %s" % ("mapping" if isinstance(value, dict) else "list")
    if value is None:
        return "nothing"
    return repr(value)


def anchored(pattern):
    """``pattern`` (matched whole by Python) as a JSON Schema pattern (which searches)."""
    return "^%s$" % pattern if "|" not in pattern else "^(?:%s)$" % pattern


class Node:
    """A declared value. Subclasses give :meth:`check` (the value read from input at key
    path ``path``, or ConfigError) and :meth:`describe` (its JSON Schema, without the
    keywords this class adds). ``nullable``: a null (YAML's empty value) in a record reads
    as "not given"."""

    def __init__(self, description=None, default=MISSING, nullable=False):
        self.description, self.default, self.nullable = description, default, nullable

    def but(self, **changes):
        """A copy with other ``description``, ``default`` or ``nullable``."""
        out = copy.copy(self)
        out.__dict__.update(changes)
        return out

    def check(self, value, path, ctx):
        raise NotImplementedError

    def schema(self, dialect):
        out = self.describe(dialect)
        if self.nullable:
            if "enum" in out:
                out["enum"] = out["enum"] + [None]
            if dialect.openapi:
                out["nullable"] = True
            elif isinstance(out.get("type"), str):
                out["type"] = [out["type"], "null"]
            else:
                out = {"anyOf": [out, {"type": "null"}]}
        if self.description:
            out["description"] = self.description
        if self.default is not MISSING:
            out["default"] = self.default
        return out

    def describe(self, dialect):
        raise NotImplementedError


class Int(Node):
    """An integer in ``low..high``; from YAML, strings of decimal digits or 0x-hex too."""

    def __init__(self, low=None, high=None, fmt="%d", **kw):
        super().__init__(**kw)
        self.low, self.high, self.fmt = low, high, fmt

    def check(self, value, path, ctx):
        if isinstance(value, str):
            text = value.strip()
            if re.fullmatch(r"0[xX][0-9a-fA-F]+", text):
                value = int(text, 16)
            elif re.fullmatch(r"[0-9]+", text):
                value = int(text, 10)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(path, "expected an integer, got %s" % show(value))
        if not self.low <= value <= self.high:
            raise ConfigError(path, "%s is out of range %s..%s" % (
                self.fmt % value, self.fmt % self.low, self.fmt % self.high))
        return value

    def describe(self, dialect):
        out = {"type": "integer"}
        if self.low is not None:
            out["minimum"] = self.low
        if self.high is not None:
            out["maximum"] = self.high
        return out


class Text(Node):
    """A string, whole-matching ``pattern`` if given; else ``problem`` % show(value)."""

    def __init__(self, pattern=None, problem=None, **kw):
        super().__init__(**kw)
        self.pattern, self.problem = pattern, problem

    def check(self, value, path, ctx):
        if not isinstance(value, str) or (
                self.pattern and not re.fullmatch(self.pattern, value)):
            raise ConfigError(path, self.problem % show(value))
        return value

    def describe(self, dialect):
        out = {"type": "string"}
        if self.pattern:
            out["pattern"] = anchored(self.pattern)
        return out


class Choice(Node):
    """One of ``values``; else "expected ``expected``, got ..." (default: one of them all)."""

    def __init__(self, values, expected=None, **kw):
        super().__init__(**kw)
        self.values = tuple(values)
        self.expected = expected or "one of %s" % ", ".join(map(str, self.values))

    def check(self, value, path, ctx):
        if value not in self.values:
            raise ConfigError(path, "expected %s, got %s" % (self.expected, show(value)))
        return value

    def describe(self, dialect):
        kind = "integer" if all(isinstance(v, int) for v in self.values) else "string"
        return {"type": kind, "enum": list(self.values)}


class Bool(Node):
    """A boolean (only answers have them)."""

    def describe(self, dialect):
        return {"type": "boolean"}


class Ref(Node):
    """A named schema of the document (only answers have them)."""

    def __init__(self, name, **kw):
        super().__init__(**kw)
        self.name = name

    def describe(self, dialect):
        return {"$ref": "#/components/schemas/%s" % self.name}


class AnyOf(Node):
    """Any of ``nodes``' schemas (only answers use it: parsing picks its branch itself)."""

    def __init__(self, *nodes, **kw):
        super().__init__(**kw)
        self.nodes = nodes

    def describe(self, dialect):
        return {"oneOf": [node.schema(dialect) for node in self.nodes]}


class ListOf(Node):
    """A list of ``item``, returned as a tuple. ``single``: one item may stand alone (its
    path is then the list's). ``what`` names the items in errors."""

    def __init__(self, item, what=None, min_items=0, max_items=None, single=False,
                 empty=None, each=None, **kw):
        super().__init__(**kw)
        self.item, self.what, self.single = item, what, single
        self.min_items, self.max_items = min_items, max_items
        self.empty = empty  # the reason for an empty list, if not the "expected" one
        self.each = each  # each(item, the items before it, its path, ctx) checks across

    def check(self, value, path, ctx):
        alone = self.single and not isinstance(value, list)
        items = [value] if alone else value
        if not isinstance(items, list) or (not items and self.min_items and not self.empty):
            raise ConfigError(path, "expected a %slist of %s, got %s" % (
                "non-empty " if self.min_items else "", self.what, show(value)))
        if not items and self.min_items:
            raise ConfigError(path, self.empty)
        if self.max_items is not None and len(items) > self.max_items:
            raise ConfigError(path, "at most %d %s in the file" % (self.max_items, self.what))
        out = []
        for i, item in enumerate(items):
            where = path if alone else "%s[%d]" % (path, i)
            parsed = self.item.check(item, where, ctx)
            if self.each:
                self.each(parsed, out, where, ctx)
            out.append(parsed)
        return tuple(out)

    def describe(self, dialect):
        out = {"type": "array", "items": self.item.schema(dialect)}
        if self.min_items:
            out["minItems"] = self.min_items
        if self.max_items is not None:
            out["maxItems"] = self.max_items
        if self.single:
            return {"oneOf": [self.item.schema(dialect), out]}
        return out


class MapOf(Node):
    """A mapping of names (``key``) to ``value``s, returned as a dict in file order; each
    value is read with its key as ctx."""

    def __init__(self, key, value, what=None, min_items=0, empty=None, each=None, **kw):
        super().__init__(**kw)
        self.key, self.value, self.what = key, value, what
        self.min_items, self.empty, self.each = min_items, empty, each  # as ListOf's

    def check(self, value, path, ctx):
        if not isinstance(value, dict):
            raise ConfigError(path, "expected a mapping of %s, got %s"
                              % (self.what, show(value)))
        if len(value) < self.min_items:
            raise ConfigError(path, self.empty)
        out = {}
        for key, item in value.items():
            where = join(path, key_text(key))
            self.key.check(key, where, ctx)
            parsed = self.value.check(item, where, key)
            if self.each:
                self.each(parsed, out, where, ctx)
            out[key] = parsed
        return out

    def describe(self, dialect):
        out = {"type": "object", "additionalProperties": self.value.schema(dialect)}
        if self.min_items:
            out["minProperties"] = self.min_items
        if not dialect.openapi:  # OpenAPI 3.0 has no propertyNames
            out["propertyNames"] = self.key.schema(dialect)
        return out


@dataclass(frozen=True)
class Field:
    """A key of a :class:`Record`. ``required``: True (checked before anything else is
    read), or the reason to give when the key is missing once it is read (the key is then
    required by the schema too). ``needs``: (predicate of the fields read so far, the
    reason it fails) checked before the value is read."""

    name: str
    node: Node
    required: object = False
    needs: tuple = None


class Record(Node):
    """A mapping with known keys. :meth:`check` refuses anything but a mapping, unknown
    keys and missing required ones, then hands a :class:`Reader` to ``build``, which reads
    the fields (in its own order, with its own checks between them) and returns the
    object; without ``build``, every field given is read in order into ``cls``.

    ``closed=False`` describes an answer (which may grow keys) instead of an input.
    ``exactly_one``: exactly one of the keys must be given.
    ``refused``: keys that are known only to be refused with a reason of their own."""

    def __init__(self, *fields, build=None, cls=dict, closed=True, exactly_one=False,
                 refused=None, **kw):
        super().__init__(**kw)
        self.build, self.cls, self.closed = build, cls, closed
        self.exactly_one, self.refused = exactly_one, refused or {}
        self._set_fields(fields)

    def _set_fields(self, fields):
        self.fields = {f.name: f for f in fields}
        self.keys = tuple(self.fields) + tuple(self.refused)  # in errors, in this order
        self._known = frozenset(self.keys)
        self._required = [name for name, f in self.fields.items() if f.required is True]

    def derived(self, drop=(), add=(), **changes):
        """This record less the fields named in ``drop``, plus the fields ``add``."""
        out = self.but(**changes)
        out._set_fields([f for f in self.fields.values() if f.name not in drop] + list(add))
        return out

    def check(self, value, path, ctx):
        if not isinstance(value, dict):
            raise ConfigError(path, "expected a mapping, got %s" % show(value))
        for key in value:
            if key not in self._known:
                raise ConfigError(join(path, key_text(key)), "unknown key (expected one of: "
                                  "%s)" % ", ".join(self.keys))
        for name in self._required:
            if name not in value:
                raise ConfigError(join(path, name), "is required")
        for name, reason in self.refused.items():
            if name in value:
                raise ConfigError(join(path, name), reason)
        if self.exactly_one and len(value) != 1:
            raise ConfigError(path, "give exactly one of %s" % " or ".join(self.fields))
        reader = Reader(self, value, path, ctx)
        out = self.build(reader) if self.build else self.cls(**reader.all())
        # a build that forgot a field would silently drop what the user wrote
        assert all(key in reader.read for key in value if key in self.fields
                   and key in reader), path
        return out

    def describe(self, dialect):
        out = {"type": "object",
               "properties": {name: f.node.schema(dialect) for name, f in self.fields.items()}}
        required = [name for name, f in self.fields.items() if f.required]
        if required:
            out["required"] = required
        if self.closed:
            out["additionalProperties"] = False
        if self.exactly_one:
            out["minProperties"] = out["maxProperties"] = 1
        return out


class Reader:
    """One mapping being read by a :class:`Record`'s ``build``."""

    def __init__(self, record, value, path, ctx):
        self.record, self.value, self.path, self.ctx = record, value, path, ctx
        self.read = {}  # name -> value, the fields read so far

    def __contains__(self, name):
        """Whether field ``name`` is given (a null is not, where it may be null)."""
        if self.value.get(name) is not None:
            return True
        return name in self.value and not self.record.fields[name].node.nullable

    def get(self, name, default=MISSING, ctx=MISSING):
        """Field ``name`` read (``default``, or the node's default, if it is not given)."""
        f = self.record.fields[name]
        if name not in self:
            if isinstance(f.required, str):
                raise self.error(name, f.required)
            found = f.node.default if default is MISSING else default
            return None if found is MISSING else found
        if f.needs and not f.needs[0](self.read):
            raise self.error(name, f.needs[1])
        self.read[name] = f.node.check(self.value[name], join(self.path, name),
                                       self.ctx if ctx is MISSING else ctx)
        return self.read[name]

    def all(self):
        """Every field given, read in declared order: {name: value}."""
        for name in self.record.fields:
            if name in self.value and name in self:
                self.get(name)
        return dict(self.read)

    def error(self, name, reason):
        """A ConfigError about field ``name`` (None: the whole mapping)."""
        return ConfigError(join(self.path, name) if name else self.path, reason)
