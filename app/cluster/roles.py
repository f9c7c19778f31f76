"""What the connected switches are told of this instance's role in a cluster, and what it
then does with them.

A master asks each switch for MASTER with its committed generation, and only once the
switch granted it, at that generation, does the connection become writable and the switch
get reconciled (the same compare-and-send-the-difference as on reconnect: learned flows
stay, forwarding never stops). A standby's connections are not writable and ask for SLAVE.

The switch fences an older master itself, and says so in two ways: it refuses a request
with an older generation (``OFPRRFC_STALE``; a refused request leaves the connection's
role as it was, EQUAL on a new connection, still able to write), and it tells a master it
demoted because another controller asked for MASTER (role status: OpenFlow 1.3 has it as
the ONF extension below, which Ryu 4.34 delivers as a bare experimenter message). Either
makes that switch's connection read-only at once, marks the switch ``fenced`` in health,
and makes the instance step down; nothing asks the switch for MASTER again until a new
generation is committed (no fight over it).
"""
import logging
import struct

from ryu.lib import hub
from ryu.ofproto import ofproto_common
from ryu.ofproto import ofproto_v1_3 as ofp

from app.openflow.channel import Rejected, SwitchError
from app.ovs import settings as ovs_settings

LOG = logging.getLogger("sggw.roles")
ONFT_ROLE_STATUS = 1911  # OpenFlow 1.3 Extensions Pack 1 (EXT-191): OVS sends it on demotion
_ROLE_STATUS = struct.Struct("!IB3xQ")  # role, reason, pad, generation_id
ROLES = {ofp.OFPCR_ROLE_NOCHANGE: "nochange", ofp.OFPCR_ROLE_EQUAL: "equal",
         ofp.OFPCR_ROLE_MASTER: "master", ofp.OFPCR_ROLE_SLAVE: "slave"}


class Roles:
    def __init__(self, sggw, settings):
        self.sggw = sggw
        self.settings = settings  # app.ovs.settings_watch: checks the OVS settings of a master
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
            if switch.ovs.pending:  # a standby does not check them: its master does
                switch.ovs = ovs_settings.Review()
            hub.spawn(self._hold, switch)

    def follow_store(self):
        """A standby reads what the master changed (REST reads are the same everywhere),
        and asks a switch that refused its SLAVE as stale again once the store may know
        the newer generation (then it is a plain standby there)."""
        if self.election.role != "master":
            self.sggw.store.refresh()
            for switch in list(self.sggw.switches.values()):
                if switch.state == "fenced" and not switch.channel.writable:
                    hub.spawn(self._hold, switch)

    def role_status(self, switch, msg):
        """An experimenter message from ``switch``: True if it was a role status (then
        handled: a demotion fences the switch and this instance steps down)."""
        if (msg.experimenter, msg.exp_type) != (ofproto_common.ONF_EXPERIMENTER_ID,
                                                ONFT_ROLE_STATUS):
            return False
        role, _, generation = _ROLE_STATUS.unpack_from(bytes(msg.data))
        if role == ofp.OFPCR_ROLE_MASTER:
            return True
        self._fence(switch, "slave", "the switch made another controller master (generation "
                    "%d; this instance's is %s)" % (generation, self.election.generation))
        return True

    def _fence(self, switch, role, why):
        """``switch`` has a newer master than this instance: never write to it again (until
        a new generation is granted), and stand down everywhere."""
        switch.channel.writable = False
        LOG.error("%s: fenced: %s", switch.name, why)
        self.election.step_down("%s: %s" % (switch.name, why))
        switch.role, switch.state, switch.error = role, "fenced", why

    def _take(self, switch, generation):
        try:
            reply = switch.channel.role(ofp.OFPCR_ROLE_MASTER, generation)
        except SwitchError as exc:
            if _stale(exc):
                self._fence(switch, switch.role or "equal",
                            "MASTER with generation %d refused as stale (%s): the switch has "
                            "a newer master" % (generation, exc))
            else:
                LOG.error("%s: the switch refused this controller as master (generation "
                          "%d): %s", switch.name, generation, exc)
            return
        if (reply.role, reply.generation_id) != (ofp.OFPCR_ROLE_MASTER, generation):
            LOG.error("%s: asked MASTER with generation %d, the switch answered %s with %d",
                      switch.name, generation, ROLES.get(reply.role, reply.role),
                      reply.generation_id)
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
            switch.start(self.settings)

    def _hold(self, switch):
        generation, _, _ = self.election.stored()
        try:
            switch.channel.role(ofp.OFPCR_ROLE_SLAVE, generation)
        except SwitchError as exc:  # stale: a newer master exists; still never write
            LOG.warning("%s: SLAVE with generation %d refused: %s", switch.name, generation,
                        exc)
            if _stale(exc):  # the connection keeps its role (EQUAL if new): our fence holds
                switch.state = "fenced"
                switch.error = ("SLAVE with generation %d refused as stale: the switch has a "
                                "newer master; this instance does not write to it"
                                % generation)
            return
        if not switch.channel.writable:  # not overtaken by a MASTER granted since
            switch.role, switch.state, switch.error = "slave", "standby", None


def _stale(exc):
    return isinstance(exc, Rejected) and any(
        err.type == ofp.OFPET_ROLE_REQUEST_FAILED and err.code == ofp.OFPRRFC_STALE
        for _, err in exc.errors)
