"""A bad state file stops ``ryu-manager app/sggw_app.py`` with one line naming the file, the
key path and the reason, and exit status 2: never a traceback, never a hang (issue 9,
case 5). The config itself is good; only the state file it points at is not."""
import json
import os

import pytest

from tests.e2e.test_config_errors import GOOD, start

CASES = {
    "list": ("[]", "expected an object, got a list"),
    "null": ("null", "expected an object, got null"),
    "wrong-shape": ('{"version": 1, "datapaths": {"site-a": [1, 2]}}',
                    "datapaths.site-a: expected an object, got a list"),
    "id-string": ('{"version": 1, "datapaths": {"site-a": {"captures": '
                  '[{"id": "x", "name": "r", "ipv4_dst": "10.9.0.0/16"}]}}}',
                  'datapaths.site-a.captures[0].id: expected an integer, got "x"'),
    "id-2**70": ('{"version": 1, "datapaths": {"site-a": {"captures": '
                 '[{"id": %d, "name": "r", "ipv4_dst": "10.9.0.0/16"}]}}}' % 2 ** 70,
                 "datapaths.site-a.captures[0].id: %d is outside 1001..64998" % 2 ** 70),
    "config-rule-id": ('{"version": 1, "datapaths": {"site-a": {"captures": '
                       '[{"id": 1, "name": "r", "ipv4_dst": "10.9.0.0/16"}]}}}',
                       "datapaths.site-a.captures[0].id: 1 is outside 1001..64998"),
    "duplicate-id": ('{"version": 1, "datapaths": {"site-a": {"captures": '
                     '[{"id": 1001, "name": "r", "ipv4_dst": "10.9.0.0/16"}, '
                     '{"id": 1001, "name": "s", "ipv4_dst": "10.8.0.0/16"}]}}}',
                     "datapaths.site-a.captures[1].id: 1001 is already used by "
                     "datapaths.site-a.captures[0]"),
    "version-99": ('{"version": 99, "datapaths": {}}', "version: expected 1, got 99"),
    "deep": ("[" * 100000 + "]" * 100000, "not valid JSON: nested too deeply"),
}


def run_with_state(tmp_path, make_state):
    state = tmp_path / "state.json"
    make_state(state)
    path = tmp_path / "sggw.yaml"
    path.write_text(GOOD + "state_file: %s\n" % json.dumps(str(state)))
    return state, start(str(path))


def assert_one_line(done, expected):
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr + done.stdout
    errors = [line for line in done.stderr.splitlines() if line.startswith("sggw: ")]
    assert len(errors) == 1 and errors[0].startswith("sggw: " + expected), errors


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_state_file_stops_start_up_with_one_line(tmp_path, case):
    text, expected = CASES[case]
    state, done = run_with_state(tmp_path, lambda p: p.write_text(text))
    assert_one_line(done, "%s: %s" % (state, expected))


def test_a_fifo_at_the_state_path_does_not_hang_start_up(tmp_path):
    state, done = run_with_state(tmp_path, lambda p: os.mkfifo(p))  # start() times out at 60 s
    assert_one_line(done, "%s: not a regular file" % state)
