"""Multipart replies handed over entry by entry while they are parsed, for huge dumps.

Ryu parses each reply whole in the switch's receive loop (every flow a tree of Python
objects, a few kB each) and queues it for the app's event thread, up to 128 replies deep:
listing 96k learned paths held tens of thousands of parsed flows at once and took the
controller's RSS from 76 MB to 350 MB, where it stayed (freed memory is kept by the
allocator). For a request registered here the receive loop gives each entry to the waiting
consumer as soon as it is parsed and queues the reply with an empty body, so only what the
consumer keeps stays in memory. Any other message is parsed as Ryu does.
"""
import struct
import weakref

from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser
from ryu.ofproto.ofproto_parser import MsgBase

_consumers = weakref.WeakKeyDictionary()  # Ryu datapath -> {xid: feed(entry)}
_ryu_parse = parser._MSG_PARSERS[ofp.OFPT_MULTIPART_REPLY]


def register(datapath, xid, feed):
    """Have the replies to request ``xid`` on ``datapath`` fed to ``feed`` entry by entry."""
    _consumers.setdefault(datapath, {})[xid] = feed


def unregister(datapath, xid):
    _consumers.get(datapath, {}).pop(xid, None)


def _parse(datapath, version, msg_type, msg_len, xid, buf):
    feed = _consumers.get(datapath, {}).get(xid)
    if feed is None:
        return _ryu_parse(datapath, version, msg_type, msg_len, xid, buf)
    kind, flags = struct.unpack_from(ofp.OFP_MULTIPART_REPLY_PACK_STR, bytes(buf[:16]),
                                     ofp.OFP_HEADER_SIZE)
    reply_cls = parser.OFPMultipartReply._STATS_MSG_TYPES[kind]
    msg = MsgBase.parser.__func__(reply_cls, datapath, version, msg_type, msg_len, xid, b"")
    msg.type, msg.flags, msg.body = kind, flags, []
    offset = ofp.OFP_MULTIPART_REPLY_SIZE
    while offset < msg_len:
        entry = reply_cls.cls_stats_body_cls.parser(buf, offset)
        offset += entry.length if hasattr(entry, "length") else entry.len
        feed(entry)
    return msg


parser._MSG_PARSERS[ofp.OFPT_MULTIPART_REPLY] = _parse
