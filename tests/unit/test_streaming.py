"""A streamed flow dump: each entry handed over as it is parsed, the reply queued empty."""
import struct

import pytest
from ryu.lib import hub
from ryu.ofproto import ofproto_parser
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from app.openflow import streaming
from app.openflow.channel import Channel, SwitchError
from test_fence import Recording as Datapath


def flow_entry(index):
    match = parser.OFPMatch(eth_type=0x0800, ipv4_src="10.2.0.%d" % index)
    buf = bytearray()
    match_len = match.serialize(buf, 0)
    inst = parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS,
                                        [parser.OFPActionOutput(index)])
    inst.serialize(buf, match_len)
    head = struct.pack(ofp.OFP_FLOW_STATS_0_PACK_STR, ofp.OFP_FLOW_STATS_0_SIZE + len(buf),
                       20, index, 0, 10, 60, 0, 0, 0x5367120000000001, index, 64 * index)
    return head + bytes(buf)


def reply(xid, entries, more):
    body = b"".join(entries)
    length = ofp.OFP_MULTIPART_REPLY_SIZE + len(body)
    return (struct.pack(ofp.OFP_HEADER_PACK_STR, ofp.OFP_VERSION, ofp.OFPT_MULTIPART_REPLY,
                        length, xid)
            + struct.pack(ofp.OFP_MULTIPART_REPLY_PACK_STR, ofp.OFPMP_FLOW,
                          ofp.OFPMPF_REPLY_MORE if more else 0)
            + body)


def receive(datapath, raw):
    """What Ryu's receive loop does with one message."""
    version, msg_type, msg_len, xid = ofproto_parser.header(raw)
    return ofproto_parser.msg(datapath, version, msg_type, msg_len, xid, bytearray(raw))


def test_a_registered_dump_hands_each_entry_over_and_queues_an_empty_reply():
    datapath, got = Datapath(), []
    streaming.register(datapath, 7, got.append)
    try:
        first = receive(datapath, reply(7, [flow_entry(1), flow_entry(2)], more=True))
        last = receive(datapath, reply(7, [flow_entry(3)], more=False))
    finally:
        streaming.unregister(datapath, 7)
    assert [(e.duration_sec, e.match["ipv4_src"], e.byte_count) for e in got] == [
        (1, "10.2.0.1", 64), (2, "10.2.0.2", 128), (3, "10.2.0.3", 192)]
    assert got[0].instructions[0].actions[0].port == 1
    assert (first.body, first.flags, last.body, last.flags) == \
        ([], ofp.OFPMPF_REPLY_MORE, [], 0)
    assert isinstance(last, parser.OFPFlowStatsReply)


def test_any_other_reply_is_parsed_whole_as_ryu_does():
    datapath = Datapath()
    streaming.register(datapath, 7, None)
    try:
        msg = receive(datapath, reply(8, [flow_entry(1), flow_entry(2)], more=False))
    finally:
        streaming.unregister(datapath, 7)
    assert [e.duration_sec for e in msg.body] == [1, 2]


def test_a_consumer_that_fails_ends_the_stream_with_an_error():
    datapath = Datapath()
    channel = Channel(datapath, timeout=1)
    seen = []

    def each(entry):
        seen.append(entry.duration_sec)
        raise ValueError("cannot take %d" % entry.duration_sec)

    def switch():  # answers the request the channel sends, as the receive loop would
        xid = datapath.sent[-1].xid
        channel.dispatch(receive(datapath, reply(xid, [flow_entry(1), flow_entry(2)],
                                                 more=True)))

    hub.spawn_after(0.01, switch)
    with pytest.raises(SwitchError, match="cannot take 1"):
        channel.stream(parser.OFPFlowStatsRequest(None), each)
    assert seen == [1]  # the rest of the dump was not given to it
