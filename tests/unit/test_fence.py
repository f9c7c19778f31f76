"""A connection that is not writable (a cluster standby, or a master that lost its
mastership) sends no change at all: every write fails before anything leaves."""
import pytest
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from app.channel import Channel, SwitchError


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
