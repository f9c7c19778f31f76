"""A damaged or foreign state file stops loading with one line: file, key path, reason
(issue 9, case 5). Nothing from it is applied, nothing hangs, nothing recurses away."""
import json
import os

import pytest
import yaml

from app import config
from app.store.store import FIRST_API_ID, Store, StoreError

CONFIG = {"datapaths": {"site": {"dp_id": 1, "ports": {"lan": ["lan1"], "wan": "wan0",
                                                       "tunnel": "tap0"}}}}
RULE = {"name": "to-b", "ipv4_dst": "10.2.0.0/16"}


def state(*rules, kind="captures"):
    return {"version": 1, "datapaths": {"site": {kind: list(rules)}}}


def rule(ident, **extra):
    return dict(RULE, id=ident, **extra)


BAD = {
    "a list": ([], "expected an object, got a list"),
    "null": (None, "expected an object, got null"),
    "a list of numbers as a datapath": ({"version": 1, "datapaths": {"site-a": [1, 2]}},
                                        "datapaths.site-a: expected an object, got a list"),
    "objects not a list": ({"version": 1, "datapaths": {"site": {"mirrors": {}}}},
                           "datapaths.site.mirrors: expected a list, got an object"),
    "an object that is a number": (state(7), "datapaths.site.captures[0]: expected an object, "
                                             "got 7"),
    "id a string": (state(rule("x")),
                    'datapaths.site.captures[0].id: expected an integer, got "x"'),
    "id a float": (state(rule(1001.0)),
                   "datapaths.site.captures[0].id: expected an integer, got 1001.0"),
    "id true": (state(rule(True)),
                "datapaths.site.captures[0].id: expected an integer, got true"),
    "id missing": (state(RULE), "datapaths.site.captures[0].id: expected an integer, got null"),
    "id 2**70": (state(rule(2 ** 70)), "datapaths.site.captures[0].id: %d is outside "
                 "1001..64998" % 2 ** 70),
    "a config rule's id": (state(rule(1)), "datapaths.site.captures[0].id: 1 is outside "
                                           "1001..64998 (ids below 1001 belong to the config"),
    "a mirror id past the group layout": (
        state({"name": "m", "id": 65536}, kind="mirrors"),
        "datapaths.site.mirrors[0].id: 65536 is outside 1001..65535"),
    "duplicate ids": (state(rule(1001), rule(1001, name="other")),
                      "datapaths.site.captures[1].id: 1001 is already used by "
                      "datapaths.site.captures[0]"),
    "duplicate names": (state(rule(1001), rule(1002)),
                        "datapaths.site.captures[1].name: 'to-b' is already used by "
                        "datapaths.site.captures[0]"),
    "name not a string": (state(dict(rule(1001), name=5)),
                          "datapaths.site.captures[0].name: expected a string, got 5"),
    "unknown version": ({"version": 99, "datapaths": {}},
                        "version: expected 1, got 99"),
    "no version": ({"datapaths": {}}, "version: expected 1, got null"),
    "unknown key": ({"version": 1, "datapaths": {}, "extra": 1}, "extra: unknown key"),
    "unknown kind": ({"version": 1, "datapaths": {"site": {"rules": []}}},
                     "datapaths.site.rules: unknown key"),
}


def load(path):
    return Store(str(path)).load(config.loads(yaml.safe_dump(CONFIG)))


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_state_file_is_one_line_naming_file_key_and_reason(tmp_path, case):
    data, expected = BAD[case]
    path = tmp_path / "state.json"
    path.write_text(json.dumps(data))
    with pytest.raises(StoreError) as caught:
        load(path)
    message = str(caught.value)
    assert message.startswith("%s: %s" % (path, expected)), message
    assert "\n" not in message


@pytest.mark.parametrize("text, expected", [
    ("[" * 100000 + "]" * 100000, "not valid JSON: nested too deeply"),
    ('{"version": 1, "datapaths": {"site": {"captures": [{"id": ' + "[" * 100000,
     "not valid JSON"),
    ('{"version": 1, "datap', "not valid JSON: Unterminated string"),
    ("", "not valid JSON: Expecting value"),
])
def test_unparseable_files_are_one_line(tmp_path, text, expected):
    path = tmp_path / "state.json"
    path.write_text(text)
    with pytest.raises(StoreError, match="^%s: %s" % (path, expected)):
        load(path)


def test_a_fifo_or_a_directory_at_the_path_is_refused_without_waiting(tmp_path):
    fifo = tmp_path / "state.json"
    os.mkfifo(fifo)
    with pytest.raises(StoreError, match="^%s: not a regular file$" % fifo):
        load(fifo)  # would block forever in open() without a writer
    with pytest.raises(StoreError, match="^%s: not a regular file$" % tmp_path):
        load(tmp_path)


def test_a_good_file_loads(tmp_path):
    path = tmp_path / "state.json"
    path.write_text(json.dumps(state(rule(FIRST_API_ID), rule(60000, name="late"))))
    store = load(path)
    assert [(o.name, o.id) for o in store.get("site", "captures")] == [
        ("to-b", FIRST_API_ID), ("late", 60000)]
