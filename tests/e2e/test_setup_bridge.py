"""deploy/setup-bridge on a private Open vSwitch: the bridge gets exactly the settings the
README asks for, a re-run changes nothing, and sggw programs the bridge with the datapath
the script prints (its tunnel port not there yet, as before OpenVPN starts)."""
import os
import secrets
import subprocess

import pytest
import yaml

from testbed.controller import ROOT, Controller
from testbed.netns import delete_link, veth_pair
from testbed.proc import free_port

SCRIPT = os.path.join(ROOT, "deploy", "setup-bridge")


@pytest.fixture
def links():
    prefix = "sb" + secrets.token_hex(2)
    names = (prefix + "l", prefix + "w")
    try:
        for name in names:
            veth_pair(name, name + "p")
        yield names
    finally:
        for name in names:
            delete_link(name)


def test_setup_bridge_makes_a_bridge_that_sggw_programs(ovs, links, tmp_path):
    lan, wan = links
    bridge, tunnel = lan[:-1] + "br", lan[:-1] + "tap"
    of_port, api_port = free_port(), free_port()
    argv = [SCRIPT, "--netdev", "--controller", "tcp:127.0.0.1:%d" % of_port, bridge, "0x5eed",
            lan, wan, tunnel]
    env = dict(os.environ, OVS_RUNDIR=ovs.rundir)
    first = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    assert (first.returncode, first.stderr) == (0, "setup-bridge: %s does not exist yet: Open "
                                                   "vSwitch adds it when it appears\n" % tunnel)
    again = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    assert (again.returncode, again.stdout) == (0, first.stdout)

    def get(column):
        return ovs.vsctl("get", "bridge", bridge, column).strip()
    assert get("fail_mode") == "secure"
    assert get("protocols") == "[OpenFlow13]"
    assert get("datapath_type") == "netdev"
    assert get("other_config:datapath-id") == '"0000000000005eed"'
    assert ovs.vsctl("get-controller", bridge).split() == ["tcp:127.0.0.1:%d" % of_port]
    assert ovs.vsctl("list-ports", bridge).split() == sorted([lan, wan, tunnel])

    cfg = yaml.safe_load(first.stdout)
    assert cfg == {"datapaths": {bridge: {"dp_id": 0x5eed, "ports": {
        "lan": [lan], "wan": wan, "tunnel": tunnel}}}}
    cfg.update(openflow={"port": of_port}, api={"port": api_port}, ovsdb=ovs.db,
               state_file=str(tmp_path / "state.json"))
    config_path = tmp_path / "sggw.yaml"
    config_path.write_text(yaml.safe_dump(cfg))
    controller = Controller(str(config_path), api_port, str(tmp_path / "controller.log"))
    try:
        controller.start()
        health = controller.wait_programmed()
        assert health["switches"][bridge]["learned_tables_bounded"] is True
        switch = controller.get("/v1/switches/" + bridge)
        assert switch["missing_ports"] == [{"role": "tunnel", "port": tunnel}]
    finally:
        controller.stop()


def test_setup_bridge_refuses_a_bad_dp_id_and_changes_nothing(ovs):
    done = subprocess.run([SCRIPT, "br-bad", "0xZZ", "a", "b", "c"], capture_output=True,
                          text=True, env=dict(os.environ, OVS_RUNDIR=ovs.rundir), check=False)
    assert done.returncode == 2
    assert done.stderr == "setup-bridge: DP_ID 0xZZ: expected 0x-hex or decimal\n"
    assert ovs.vsctl("list-br").split() == []
