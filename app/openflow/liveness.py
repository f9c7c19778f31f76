"""Whether a connected switch still answers.

A stalled ovs-vswitchd (stopped, or waiting for an ovsdb-server that went away) keeps its
TCP connection open, so nothing tells the controller. An echo request goes out every
:data:`INTERVAL` seconds; a switch is silent once it has said nothing for :data:`TIMEOUT`
seconds while an echo waits for it (each echo waits what is left of TIMEOUT since the
switch's last answer of any kind), so a stall shows within TIMEOUT of its last answer; the
first answer after a stall clears it. An echo that times out while answers to earlier
requests are still coming in (a dump of 100k flows takes the switch's replies seconds to
arrive, and its echo reply waits behind them) is not a stall: the switch is busy answering.
"""
import logging
import time

from ryu.lib import hub

from app.openflow.channel import SwitchError

LOG = logging.getLogger("sggw.switch")
INTERVAL = 1.0
TIMEOUT = 2.0
SHORTEST_WAIT = 1.0  # an echo waits at least this long (the controller may have been busy)
BUSY = 1.0  # an answer heard this recently (seconds) means a late echo reply is queued


class Liveness:
    """Echoes one switch's connection (``channel``) until it closes; ``name`` is for logs."""

    def __init__(self, channel, name):
        self.channel = channel
        self.name = name
        self.answering = True
        self.silent_since = None  # time.time() of the first unanswered echo
        self.on_silent = None  # called once when the switch stops answering

    def run(self):
        while not self.channel.closed:
            started = time.monotonic()
            self.echo()
            hub.sleep(max(0.0, INTERVAL - (time.monotonic() - started)))

    def echo(self):
        parser = self.channel.datapath.ofproto_parser
        wait = max(TIMEOUT - self.channel.quiet_for(), SHORTEST_WAIT) if self.answering \
            else TIMEOUT
        try:
            self.channel.request(parser.OFPEchoRequest(None, data=b"sggw"), timeout=wait)
        except SwitchError as exc:
            if self.channel.closed or not self.answering or self.channel.quiet_for() < BUSY:
                return
            self.answering, self.silent_since = False, time.time()
            LOG.error("%s: the switch does not answer (%s): degraded; changes get 503 "
                      "until it does", self.name, exc)
            if self.on_silent is not None:
                self.on_silent()
            return
        if not self.answering:
            LOG.warning("%s: the switch answers again after %.1f s", self.name,
                        time.time() - self.silent_since)
            self.answering, self.silent_since = True, None
