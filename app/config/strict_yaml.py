"""YAML for the config: PyYAML's safe loader, made strict and bounded.

Strict: a duplicate key is an error (not "the last one wins"), and integers are read as
YAML 1.2 does (``010`` is not octal 8, ``1:00`` is not 60).

Bounded, so that any file loads in bounded time and memory (PyYAML alone takes minutes
and gigabytes on a few hundred bytes of ``<<`` merge keys, and a RecursionError on deep
nesting):

- the file is at most ``MAX_BYTES``;
- nesting is at most ``MAX_DEPTH`` levels, counted through aliases;
- aliases and merge keys expand to at most ``MAX_VALUES`` values in all (every scalar,
  list and mapping counted once per place it appears), and no alias may sit inside the
  node it names.

Over a bound, :func:`load` raises :class:`LimitError` with the place in the file.
"""
import re

import yaml
from yaml._yaml import CParser
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 32
MAX_VALUES = 200_000
TOO_LARGE = "the file is larger than %d bytes" % MAX_BYTES
_INT_TAG = "tag:yaml.org,2002:int"
_MERGE_TAG = "tag:yaml.org,2002:merge"


class LimitError(yaml.MarkedYAMLError):
    """The file is valid YAML but over one of the bounds; ``problem_mark`` says where."""


class _StrictLoader(Composer, CParser, SafeConstructor, Resolver):
    """The safe loader with YAML 1.2 integers, no duplicate keys and a nesting bound:
    libyaml's parser (pure Python takes a minute on a 1 MiB file), PyYAML's composer."""

    def __init__(self, stream):
        CParser.__init__(self, stream)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)
        Composer.__init__(self)
        self._depth = self._nodes = 0

    def compose_node(self, parent, index):
        self._depth += 1
        self._nodes += 1
        try:
            if self._depth > MAX_DEPTH:
                raise LimitError(problem="nested deeper than %d levels" % MAX_DEPTH,
                                 problem_mark=self.peek_event().start_mark)
            if self._nodes > MAX_VALUES:
                raise LimitError(problem="more than %d values" % MAX_VALUES,
                                 problem_mark=self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def get_single_node(self):
        node = super().get_single_node()
        if node is not None:
            _check_expansion(node)
        return node


_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _INT_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_StrictLoader.add_implicit_resolver(
    _INT_TAG, re.compile(r"^(?:[-+]?(?:0|[1-9][0-9]*)|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"))


def _mapping_without_duplicates(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG:
            continue
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in seen
        except TypeError:
            raise yaml.MarkedYAMLError(problem="a %s cannot be a key" % type(key).__name__,
                                       problem_mark=key_node.start_mark) from None
        if duplicate:
            raise yaml.MarkedYAMLError(
                problem="duplicate key %r" % (key,), problem_mark=key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def _check_expansion(root):
    """Size and depth of the tree that aliases and merge keys make of the node graph,
    worked out once per node (in time linear in the file, not in the expansion)."""
    measured = {}  # id(collection node) -> (values, levels) it expands to
    on_path = set()

    def measure(node, depth):
        key = id(node)
        if key in measured:
            size, height = measured[key]
        elif key in on_path:
            raise LimitError(problem="an alias refers to a node that contains it",
                             problem_mark=node.start_mark)
        else:
            on_path.add(key)
            parts = node.value if isinstance(node, yaml.SequenceNode) \
                else [part for pair in node.value for part in pair]
            size, height = 1, 1
            for part in parts:
                if isinstance(part, yaml.ScalarNode):
                    size, height = size + 1, max(height, 2)
                else:
                    part_size, part_height = measure(part, depth + 1)
                    size, height = size + part_size, max(height, 1 + part_height)
            on_path.discard(key)
            measured[key] = size, height
        if depth + height - 1 > MAX_DEPTH:
            raise LimitError(problem="nested deeper than %d levels once aliases are expanded"
                                     % MAX_DEPTH, problem_mark=node.start_mark)
        if size > MAX_VALUES:
            raise LimitError(problem="aliases and merge keys expand this to more than %d "
                                     "values" % MAX_VALUES, problem_mark=node.start_mark)
        return size, height

    if not isinstance(root, yaml.ScalarNode):
        measure(root, 1)


def load(text):
    """The data in YAML ``text``; raises yaml.YAMLError, or LimitError over a bound."""
    if len(text.encode("utf-8")) > MAX_BYTES:
        raise LimitError(problem=TOO_LARGE)
    return yaml.load(text, Loader=_StrictLoader)
