"""What the connected switches are told of this instance's role in a cluster, and what it
then does with them.

A master asks each switch for MASTER with its committed generation, and only once the
switch granted it does the connection become writable and the switch get reconciled (the
same compare-and-send-the-difference as on reconnect: learned flows stay, forwarding never
stops). A standby's connections are not writable and ask for SLAVE. The switch refuses an
older generation itself (``OFPRRFC_STALE``): the instance then steps down.
"""
import logging

from ryu.lib import hub
from ryu.ofproto import ofproto_v1_3 as ofp

from app.channel import Rejected, SwitchError

LOG = logging.getLogger("sggw.roles")


class Roles:
    def __init__(self, sggw):
        self.sggw = sggw
        self.started = set()  # Switch objects whose programming thread runs

    @property
    def election(self):
        return self.sggw.election

    def adopted(self, switch):
        """A newly owned connection: writable only once this master's role is granted."""
        switch.channel.writable = False
        if self.election.role == "master":
            hub.spawn(self._take, switch, self.election.generation)
        else:
            switch.state = "standby"
            hub.spawn(self._hold, switch)

    def became_master(self, generation):
        self.sggw.store.refresh()
        for switch in list(self.sggw.switches.values()):
            hub.spawn(self._take, switch, generation)

    def became_standby(self):
        """Called at once on losing mastership: nothing is written from here on."""
        for switch in list(self.sggw.switches.values()):
            switch.channel.writable = False
            switch.role = None
            switch.state = "standby"
            hub.spawn(self._hold, switch)

    def follow_store(self):
        """A standby reads what the master changed (REST reads are the same everywhere)."""
        if self.election.role != "master":
            self.sggw.store.refresh()

    def _take(self, switch, generation):
        try:
            switch.channel.role(ofp.OFPCR_ROLE_MASTER, generation)
        except SwitchError as exc:
            LOG.error("%s: the switch refused this controller as master (generation %d): %s",
                      switch.name, generation, exc)
            if _stale(exc):
                self.election.step_down("a switch knows a newer master")
            return
        switch.role = "master"
        if not self.election.writable or self.election.generation != generation:
            return  # lost mastership while asking
        switch.channel.writable = True
        switch.dp = self.sggw.effective(switch.dp.name)
        LOG.info("%s: master (generation %d): reconciling", switch.name, generation)
        if switch in self.started:
            hub.spawn(switch.sync)
        else:
            self.started.add(switch)
            switch.start()

    def _hold(self, switch):
        generation, _, _ = self.election.stored()
        try:
            switch.channel.role(ofp.OFPCR_ROLE_SLAVE, generation)
        except SwitchError as exc:  # stale: a newer master exists; still never write
            LOG.info("%s: SLAVE with generation %d refused: %s", switch.name, generation, exc)
            return
        switch.role = "slave"


def _stale(exc):
    return isinstance(exc, Rejected) and any(
        err.type == ofp.OFPET_ROLE_REQUEST_FAILED and err.code == ofp.OFPRRFC_STALE
        for _, err in exc.errors)
