"""A bad config stops ``ryu-manager app/sggw_app.py`` with one line, never a traceback."""
import os
import subprocess

import pytest

from testbed.controller import ROOT, RYU_MANAGER

GOOD = """\
datapaths:
  site-a:
    dp_id: 0x1
    ports: {lan: [hosta-p], wan: routera-p, tunnel: tun-a}
    capture:
      - {name: to-site-b, ipv4_dst: 10.2.0.0/16}
"""

# ~500 bytes that PyYAML alone expands to 9**8 keys: minutes and gigabytes
MERGE_KEY_BOMB = "a: &a0 {k: 0, j: 1}\n" + "".join(
    "b%d: &a%d {<<: [%s]}\n" % (i, i, ", ".join(["*a%d" % (i - 1)] * 9)) for i in range(1, 9)
) + "datapaths: *a8\n"

CASES = {
    "unknown-key": (GOOD.replace("    dp_id: 0x1", "    dp_id: 0x1\n    colour: blue"),
                    "datapaths.site-a.colour: unknown key"),
    "wrong-type": (GOOD.replace("dp_id: 0x1", "dp_id: one"),
                   "datapaths.site-a.dp_id: expected an integer, got 'one'"),
    "bad-prefix": (GOOD.replace("10.2.0.0/16", "10.2.0.0/33"),
                   "datapaths.site-a.capture[0].ipv4_dst: '10.2.0.0/33' is not an IPv4 prefix"),
    "port-in-two-roles": (GOOD.replace("wan: routera-p", "wan: hosta-p"),
                          "datapaths.site-a.ports.wan: 'hosta-p' is already used as "
                          "ports.lan[0]"),
    "duplicate-dp_id": (GOOD + GOOD.split("\n", 1)[1].replace("site-a", "site-b"),
                        "datapaths.site-b.dp_id: 0x1 is already used by datapaths.site-a"),
    "merge-key-bomb": (MERGE_KEY_BOMB, "line 6 column 14: aliases and merge keys expand this "
                                       "to more than 200000 values"),
    "nested-20k-deep": ("datapaths: " + "[" * 20000 + "]" * 20000 + "\n",
                        "line 1 column 43: nested deeper than 32 levels"),
}


def start(config_path):
    env = dict(os.environ, SGGW_CONFIG=config_path)
    return subprocess.run([RYU_MANAGER, "app/sggw_app.py"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_config_stops_start_up_with_one_line(tmp_path, case):
    text, expected = CASES[case]
    path = tmp_path / "sggw.yaml"
    path.write_text(text)
    done = start(str(path))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr + done.stdout
    errors = [line for line in done.stderr.splitlines() if line.startswith("sggw: ")]
    assert errors == ["sggw: %s: %s" % (path, expected)] or (
        len(errors) == 1 and errors[0].startswith("sggw: %s: %s" % (path, expected))), errors


def test_missing_sggw_config_says_how_to_start(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SGGW_CONFIG"}
    done = subprocess.run([RYU_MANAGER, "app/sggw_app.py"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "SGGW_CONFIG is not set" in done.stderr and "Traceback" not in done.stderr
