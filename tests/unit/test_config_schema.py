"""Editors validate sggw.yaml with the JSON Schema generated from the same declarations that
check it (app/config/file.py): the copy shipped in the package is the generated one, and
every example file and every YAML snippet of the README and docs/ passes it.

Validated with jsonschema_rs (a test dependency, as schemathesis's validator).
"""
import json
import os
import re
import textwrap

import jsonschema_rs
import pytest

from app import config
from app.config import file, strict_yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHIPPED = os.path.join(ROOT, "app", "config", file.SCHEMA_FILE)
EXAMPLES = ["sggw.example.yaml", "sggw.cluster.example.yaml"]
DOCS = ["README.md"] + sorted("docs/" + name for name in os.listdir(os.path.join(ROOT, "docs"))
                              if name.endswith(".md"))
VALIDATOR = jsonschema_rs.Draft7Validator(config.json_schema())


def problems(data, schema=None):
    validator = VALIDATOR if schema is None else jsonschema_rs.Draft7Validator(schema)
    return ["%s: %s" % ("/".join(map(str, e.instance_path)), e.message)
            for e in validator.iter_errors(data)]


def snippets():
    """(where, YAML text) of every ```yaml block of the README and docs/."""
    for name in DOCS:
        with open(os.path.join(ROOT, name), encoding="utf-8") as handle:
            text = handle.read()
        for match in re.finditer(r"```ya?ml\n(.*?)```", text, re.S):
            line = text[:match.start()].count("\n") + 1
            yield "%s:%d" % (name, line), textwrap.dedent(match.group(1))


def part_for(key, schema):
    """The schema of ``key`` wherever an object of the whole file has it (the nearest to the
    top): a snippet may show a part of a file, as ``mirrors:`` of a datapath."""
    level = [schema]
    while level:
        for node in level:
            if key in node.get("properties", {}):
                return node["properties"][key]
        level = [child for node in level for value in node.values()
                 for child in (value if isinstance(value, list) else [value])
                 if isinstance(child, dict)]
    raise AssertionError("no part of sggw.yaml has the key %r" % key)


def test_the_shipped_schema_is_the_generated_one():
    with open(SHIPPED, encoding="utf-8") as handle:
        shipped = json.load(handle)
    assert shipped == config.json_schema(), (
        "regenerate it: .venv/bin/python -c 'import json; from app import config; "
        "print(json.dumps(config.json_schema(), indent=1, sort_keys=True))' > %s" % SHIPPED)


def test_the_schema_is_valid_draft_07():
    schema = config.json_schema()
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert jsonschema_rs.meta.is_valid(schema)


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_names_the_schema_and_passes_it(name):
    with open(os.path.join(ROOT, name), encoding="utf-8") as handle:
        text = handle.read()
    first = text.splitlines()[0]
    assert first.startswith("# yaml-language-server: $schema="), first
    named = os.path.join(ROOT, os.path.dirname(name), first.split("=", 1)[1])
    assert os.path.samefile(named, SHIPPED)
    assert problems(strict_yaml.load(text)) == []
    config.loads(text, name)  # and sggw agrees


@pytest.mark.parametrize("where, text", list(snippets()), ids=lambda v: v.split("\n")[0])
def test_every_yaml_snippet_of_the_docs_passes_the_schema(where, text):
    data = strict_yaml.load(text)
    assert isinstance(data, dict), where
    schema = config.json_schema()
    if "datapaths" in data:
        assert problems(data) == [], where
    else:
        for key, value in data.items():
            assert problems(value, part_for(key, schema)) == [], (where, key)


MINIMAL = {"datapaths": {"a": {"dp_id": 1, "ports": {"lan": ["p1"], "wan": "p2"}}}}


@pytest.mark.parametrize("edit, path", [
    ({"bogus": 1}, "bogus"),
    ({"api": {"port": 0}}, "api.port"),
    ({"api": {"token": "short"}}, "api.token"),
    ({"ovsdb": "ssl:10.0.0.1:6640"}, "ovsdb"),
    ({"datapaths": {}}, "datapaths"),
    ({"datapaths": {"a": {"dp_id": 1, "ports": {"lan": [], "wan": "p2"}}}},
     "datapaths.a.ports.lan"),
    ({"datapaths": {"a": {"dp_id": 1, "ports": {"lan": ["p1"]}}}}, "datapaths.a.ports.wan"),
    ({"datapaths": {"a": dict(MINIMAL["datapaths"]["a"], reverse_path={"match": "x"})}},
     "datapaths.a.reverse_path.match"),
    ({"datapaths": {"a": dict(MINIMAL["datapaths"]["a"], mirrors=[
        {"name": "m", "sources": [{"port": "p1"}],
         "destinations": [{"gre": {"remote_ip": "192.0.2.1", "key": -1}}]}])}},
     "datapaths.a.mirrors[0].destinations[0].gre.key"),
    ({"cluster": {"name": "a", "store": "udp:1.2.3.4:5", "api_url": "http://a:1"}},
     "cluster.store"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_what_sggw_refuses_for_its_shape_the_schema_refuses_too(edit, path):
    data = dict(MINIMAL, **edit)
    with pytest.raises(config.ConfigError) as info:
        config.parse(data)
    assert info.value.path == path
    assert problems(data), path
    assert problems(MINIMAL) == [] and config.parse(MINIMAL)
