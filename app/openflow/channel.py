"""Request and response over one switch's OpenFlow connection, for code that may block.

Ryu delivers replies as events to the app's single event thread, so waiting there would
deadlock. Callers run in their own green thread (REST handlers, a spawned sync) and
block here; the app's event handlers feed every reply, error and barrier into
:meth:`Channel.dispatch`, which wakes the waiter whose xid it carries.
"""
import time

from ryu.lib import hub
from ryu.ofproto import ofproto_v1_3 as ofp

from app.openflow import streaming

TIMEOUT = 10.0


class SwitchError(Exception):
    """The switch refused a request, went away, or did not answer in time."""


class Rejected(SwitchError):
    """The switch answered with OpenFlow errors: ``errors`` is [(msg or None, error msg)]."""

    def __init__(self, errors):
        self.errors = errors
        super().__init__("; ".join(describe_error(err, msg) for msg, err in errors))


def describe_error(err, msg=None):
    """A one-line reading of an OFPErrorMsg, e.g. 'OFPET_BAD_ACTION/OFPBAC_BAD_OUT_PORT'."""
    type_name = _const_name("OFPET_", err.type) or str(err.type)
    if err.type == ofp.OFPET_EXPERIMENTER:
        return "experimenter %#x error %s" % (getattr(err, "experimenter", 0),
                                              getattr(err, "exp_type", "?"))
    code_name = _code_name(type_name, err.code)
    what = " (%s table %s)" % (type(msg).__name__, getattr(msg, "table_id", "?")) if msg else ""
    return "%s/%s%s" % (type_name, code_name, what)


def _const_name(prefix, value):
    for name in dir(ofp):
        if name.startswith(prefix) and getattr(ofp, name) == value:
            return name
    return None


_CODE_PREFIX = {"OFPET_BAD_REQUEST": "OFPBRC_", "OFPET_BAD_ACTION": "OFPBAC_",
                "OFPET_BAD_INSTRUCTION": "OFPBIC_", "OFPET_BAD_MATCH": "OFPBMC_",
                "OFPET_FLOW_MOD_FAILED": "OFPFMFC_", "OFPET_GROUP_MOD_FAILED": "OFPGMFC_",
                "OFPET_METER_MOD_FAILED": "OFPMMFC_", "OFPET_TABLE_FEATURES_FAILED": "OFPTFFC_",
                "OFPET_ROLE_REQUEST_FAILED": "OFPRRFC_", "OFPET_EXPERIMENTER": None}


def _code_name(type_name, code):
    prefix = _CODE_PREFIX.get(type_name)
    return (_const_name(prefix, code) if prefix else None) or str(code)


class _Waiter:
    def __init__(self, take=None, each=None):
        self.event = hub.Event()
        self.replies = []
        self.errors = []
        self.take = take or self.replies.append  # what becomes of each reply
        self.each = each  # what becomes of each entry of a streamed reply (app.openflow.streaming)
        self.failure = None  # what ``take`` or ``each`` raised

    def feed(self, entry):
        """One entry of a streamed reply, from the receive loop: it must never raise."""
        if self.failure is not None:
            return
        try:
            self.each(entry)
        except Exception as exc:  # noqa: BLE001 -- its caller must not wait for nothing
            self.failure = exc


class Channel:
    """Blocking transactions with one datapath. One instance per connection."""

    def __init__(self, datapath, timeout=TIMEOUT):
        self.datapath = datapath
        self.timeout = timeout
        self._waiters = {}  # xid -> _Waiter expecting the final answer
        self._members = {}  # xid of a message in a transaction -> (_Waiter, msg)
        self._bundle_id = 0
        self._heard = time.monotonic()  # when the switch last answered anything
        self.closed = False
        # False while this instance may not change the switch (a cluster standby, or a
        # master that lost its mastership): every write then fails before it is sent.
        self.writable = True

    # --- called from the app's event handlers -------------------------------------------

    def dispatch(self, msg):
        """Feed a reply, error or barrier reply; returns True if a waiter took it."""
        self._heard = time.monotonic()
        xid = msg.xid
        if msg.msg_type == ofp.OFPT_ERROR:
            if xid in self._members:
                waiter, sent = self._members[xid]
                waiter.errors.append((sent, msg))
                return True
            if xid in self._waiters:
                self._waiters[xid].errors.append((None, msg))
                self._waiters.pop(xid).event.set()
                return True
            return False
        waiter = self._waiters.get(xid)
        if waiter is None:
            return False
        try:
            waiter.take(msg)
        except Exception as exc:  # noqa: BLE001 -- its caller must not wait for nothing
            waiter.failure = exc
        if waiter.failure is not None or not getattr(msg, "flags", 0) & ofp.OFPMPF_REPLY_MORE:
            self._waiters.pop(xid).event.set()
        return True

    def quiet_for(self):
        """Seconds since the switch last answered anything."""
        return time.monotonic() - self._heard

    def close(self):
        """The connection is gone: wake every waiter with an error."""
        self.closed = True
        for waiter in list(self._waiters.values()):
            waiter.event.set()
        self._waiters.clear()
        self._members.clear()

    # --- called from green threads that may block ------------------------------------------

    def transact(self, msgs):
        """Send ``msgs`` then a barrier; return when the switch has processed all of them.

        Raises Rejected with the switch's errors (messages before the failing one still
        took effect: use :meth:`commit` for all-or-nothing).
        """
        if not msgs:
            return
        waiter = _Waiter()
        xids = [self._send(msg, waiter) for msg in msgs]
        barrier = self.datapath.ofproto_parser.OFPBarrierRequest(self.datapath)
        self._await(self._send_request(barrier, waiter), waiter, xids)

    def commit(self, msgs):
        """Apply ``msgs`` (flow and group mods) atomically in one bundle: all or nothing."""
        if not msgs:
            return
        parser = self.datapath.ofproto_parser
        self._bundle_id = (self._bundle_id + 1) & 0xFFFFFFFF
        bundle, flags = self._bundle_id, ofp.ONF_BF_ATOMIC | ofp.ONF_BF_ORDERED
        # The open is not waited for on its own: the switch answers in order, so its reply
        # is in before the barrier's (one round trip less: with 100 bridges on one
        # ovs-vswitchd each costs milliseconds).
        self._may_write()
        opened = _Waiter()
        open_xid = self._send_request(parser.ONFBundleCtrlMsg(
            self.datapath, bundle, ofp.ONF_BCT_OPEN_REQUEST, flags, []), opened)
        added = _Waiter()
        xids = []
        try:
            for msg in msgs:
                msg.datapath = self.datapath
                add = parser.ONFBundleAddMsg(self.datapath, bundle, flags, msg, [])
                xids.append(self._send(add, added, member=msg))
            # A message the switch refuses is left out of the bundle, which would still
            # commit the rest: make sure every add was accepted first.
            try:
                self._await(self._send_request(parser.OFPBarrierRequest(self.datapath), added),
                            added, [])
                self._await(open_xid, opened, [])
            except Rejected:
                self._control(bundle, ofp.ONF_BCT_DISCARD_REQUEST, flags)
                raise
            committed = _Waiter()
            for xid in xids:
                self._members[xid] = (committed, self._members[xid][1])
            self._control(bundle, ofp.ONF_BCT_COMMIT_REQUEST, flags, committed)
        finally:
            self._waiters.pop(open_xid, None)
            for xid in xids:
                self._members.pop(xid, None)

    def request(self, req, timeout=None):
        """Send a multipart request; return the list of reply messages."""
        waiter = _Waiter()
        self._await(self._send_request(req, waiter), waiter, [], timeout)
        return waiter.replies

    def stream(self, req, each, timeout=None):
        """Send a multipart request and call ``each(item)`` for every item of every reply
        while the reply is parsed (:mod:`app.openflow.streaming`), so a huge answer (100k flows) is
        never held in memory: only what ``each`` keeps stays."""
        waiter = _Waiter(take=lambda reply: None, each=each)  # its body came through each
        self._await(self._send_request(req, waiter), waiter, [], timeout)

    def stats(self, req, timeout=None):
        """Send a multipart request; return all reply bodies concatenated."""
        return [item for reply in self.request(req, timeout) for item in reply.body]

    def send(self, msg):
        """Fire and forget (packet-outs)."""
        self._may_write()
        msg.datapath = self.datapath
        if not self.datapath.send_msg(msg):
            raise SwitchError("not connected")

    # --- internals ----------------------------------------------------------------------

    def role(self, role, generation, timeout=None):
        """Ask the switch for OpenFlow ``role`` with ``generation``: its OFPRoleReply, or
        Rejected if refused (``OFPRRFC_STALE``: another master has a newer generation)."""
        req = self.datapath.ofproto_parser.OFPRoleRequest(self.datapath, role, generation)
        return self.request(req, timeout)[0]

    def _may_write(self):
        if not self.writable:
            raise SwitchError("this controller is not the master")

    def _control(self, bundle, type_, flags, waiter=None):
        self._may_write()
        parser = self.datapath.ofproto_parser
        waiter = waiter or _Waiter()
        req = parser.ONFBundleCtrlMsg(self.datapath, bundle, type_, flags, [])
        self._await(self._send_request(req, waiter), waiter, [])

    def _send(self, msg, waiter, member=None):
        self._may_write()
        msg.datapath = self.datapath
        xid = self.datapath.set_xid(msg)
        self._members[xid] = (waiter, member or msg)
        if not self.datapath.send_msg(msg):
            raise SwitchError("not connected")
        return xid

    def _send_request(self, req, waiter):
        if self.closed:
            raise SwitchError("not connected")
        req.datapath = self.datapath
        xid = self.datapath.set_xid(req)
        self._waiters[xid] = waiter
        if waiter.each is not None:
            streaming.register(self.datapath, xid, waiter.feed)
        if not self.datapath.send_msg(req):
            self._waiters.pop(xid, None)
            streaming.unregister(self.datapath, xid)
            raise SwitchError("not connected")
        return xid

    def _await(self, xid, waiter, member_xids, timeout=None):
        timeout = timeout or self.timeout
        try:
            with hub.Timeout(timeout, SwitchError("no answer within %.0f s" % timeout)):
                waiter.event.wait()
        finally:
            self._waiters.pop(xid, None)
            streaming.unregister(self.datapath, xid)
            for member in member_xids:
                self._members.pop(member, None)
        if waiter.errors:
            raise Rejected(waiter.errors)
        if waiter.failure is not None:
            raise SwitchError("unreadable reply: %r" % waiter.failure)
        if self.closed:
            raise SwitchError("connection lost")
