"""A connection that is not writable (a cluster standby, or a master that lost its
mastership) sends no change at all: every write fails before anything leaves. A switch's
role status demoting this master makes its connection so at once, and teaches it the
generation the switch knows."""
import struct

import pytest
from ryu.lib import hub
from ryu.ofproto import ofproto_common
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from app.cluster.roles import ONFT_ROLE_STATUS, Roles
from app.openflow.channel import Channel, SwitchError


class Recording:
    """Stands for Ryu's datapath: keeps what would have been sent."""

    ofproto_parser = parser
    ofproto = ofp

    def __init__(self):
        self.sent = []
        self.xid = 0

    def set_xid(self, msg):
        self.xid += 1
        msg.xid = self.xid
        return self.xid

    def send_msg(self, msg):
        self.sent.append(msg)
        return True


def flow_mod(datapath):
    return parser.OFPFlowMod(datapath, table_id=0, priority=1, match=parser.OFPMatch(),
                             instructions=[])


@pytest.mark.parametrize("write", ["transact", "commit", "send"])
def test_a_connection_that_is_not_writable_sends_nothing(write):
    datapath = Recording()
    channel = Channel(datapath, timeout=0.1)
    channel.writable = False
    msg = flow_mod(datapath)
    with pytest.raises(SwitchError, match="not the master"):
        getattr(channel, write)([msg] if write != "send" else msg)
    assert datapath.sent == []


def test_reads_and_role_requests_still_go_out():
    datapath = Recording()
    channel = Channel(datapath, timeout=0.05)
    channel.writable = False
    with pytest.raises(SwitchError, match="no answer"):
        channel.role(ofp.OFPCR_ROLE_SLAVE, 3)
    sent = datapath.sent[0]
    assert (type(sent), sent.role, sent.generation_id) == (parser.OFPRoleRequest,
                                                           ofp.OFPCR_ROLE_SLAVE, 3)


class Election:
    role, generation = "master", 7

    def __init__(self):
        self.why = None
        self.reviews = 0

    def step_down(self, why):
        self.why, self.role = why, "standby"

    def review(self):
        """Stands again if it holds the store's lock (here: counted)."""
        self.reviews += 1


class Sggw:
    def __init__(self):
        self.election = Election()
        self.switches = {}


class Switch:
    name = "site (0x1)"

    def __init__(self):
        self.channel = Channel(Recording())
        self.role, self.state, self.error = "master", "programmed", None
        self.generation = 7


def role_status(role, generation, experimenter=ofproto_common.ONF_EXPERIMENTER_ID,
                exp_type=ONFT_ROLE_STATUS):
    """An OpenFlow 1.3 role status as OVS sends it (ONF extension) and Ryu 4.34 parses it."""
    return parser.OFPExperimenter(None, experimenter, exp_type,
                                  struct.pack("!IB3xQ", role, 0, generation))


def test_a_role_status_demoting_this_master_makes_the_switch_read_only_at_once():
    roles, switch = Roles(Sggw(), settings=None), Switch()  # no OVS settings checks here
    assert roles.role_status(switch, role_status(ofp.OFPCR_ROLE_SLAVE, 8))
    assert not switch.channel.writable
    assert (switch.role, switch.state) == ("slave", "fenced")
    assert "generation 8; this instance's is 7" in switch.error
    assert roles.election.role == "standby" and "generation 8" in roles.election.why
    with pytest.raises(SwitchError, match="not the master"):
        switch.channel.transact([flow_mod(switch.channel.datapath)])
    assert switch.channel.datapath.sent == []
    # the switch's generation is learnt, and the lock holder is to stand again above it
    assert switch.generation == 8
    hub.sleep(0)
    assert roles.election.reviews == 1


def test_a_role_status_to_a_standby_connection_is_no_fence():
    """A standby's connection the switch still had as master (it stepped down while the
    store was away) is demoted by the new master: that is what a standby wants."""
    sggw = Sggw()
    sggw.election.role = "standby"
    roles, switch = Roles(sggw, settings=None), Switch()
    switch.channel.writable = False
    assert roles.role_status(switch, role_status(ofp.OFPCR_ROLE_SLAVE, 9))
    assert (switch.role, switch.state, switch.error) == ("slave", "standby", None)
    assert switch.generation == 9 and sggw.election.why is None
    hub.sleep(0)
    assert sggw.election.reviews == 0


def test_a_role_status_without_a_generation_teaches_none():
    roles, switch = Roles(Sggw(), settings=None), Switch()
    roles.role_status(switch, role_status(ofp.OFPCR_ROLE_SLAVE, (1 << 64) - 1))
    assert switch.generation == 7


@pytest.mark.parametrize("msg", [role_status(ofp.OFPCR_ROLE_MASTER, 8),
                                 role_status(ofp.OFPCR_ROLE_SLAVE, 8, exp_type=1910),
                                 role_status(ofp.OFPCR_ROLE_SLAVE, 8, experimenter=0x2320)])
def test_other_experimenter_messages_and_a_grant_change_nothing(msg):
    roles, switch = Roles(Sggw(), settings=None), Switch()  # no OVS settings checks here
    roles.role_status(switch, msg)
    assert switch.channel.writable and switch.state == "programmed"
    assert roles.election.role == "master"
