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
and makes the instance step down. The switch's generation is learnt on the way (a role
reply and a role status carry it; after a refusal a NOCHANGE request reads it), and the
store's lock holder, this instance or another, then stands again above it
(:mod:`app.cluster.election`): nothing asks a switch for MASTER without a generation newly
committed by the lock holder, so the instances never fight over it.

A woken or restarted instance's copy of the store may be old (its store connection was
dropped while it hung, and it has not noticed yet): every role request waits until that
copy is known current (:meth:`app.store.ovsdb_client.Ovsdb.fresh`), so nothing asks with a
generation the store has left behind. A standby asks SLAVE with the higher of the store's
generation and the switch's own, which the switch never refuses.
"""
import logging
import struct

from ryu.lib import hub
from ryu.ofproto import ofproto_common
from ryu.ofproto import ofproto_v1_3 as ofp

from app.openflow.channel import Rejected, SwitchError

LOG = logging.getLogger("sggw.roles")
ONFT_ROLE_STATUS = 1911  # OpenFlow 1.3 Extensions Pack 1 (EXT-191): OVS sends it on demotion
_ROLE_STATUS = struct.Struct("!IB3xQ")  # role, reason, pad, generation_id
NO_GENERATION = 1 << 63  # OVS answers 2**64-1 before any; an OVSDB integer stays below 2**63
FRESH_WAIT = 5.0  # seconds a role request waits for a current copy of the store
READ_TIMEOUT = 1.0  # seconds a switch has to tell its generation before a claim goes on
ROLES = {ofp.OFPCR_ROLE_NOCHANGE: "nochange", ofp.OFPCR_ROLE_EQUAL: "equal",
         ofp.OFPCR_ROLE_MASTER: "master", ofp.OFPCR_ROLE_SLAVE: "slave"}


class Roles:
    def __init__(self, sggw, settings):
        self.sggw = sggw
        self.settings = settings  # app.ovs.settings_watch: checks the switches' OVS settings
        self.started = set()  # Switch objects whose programming thread runs

    @property
    def election(self):
        return self.sggw.election

    def adopted(self, switch):
        """A newly owned connection: writable only once this master's role is granted. Its
        OVS settings are checked either way (by a standby, without fixing them)."""
        switch.channel.writable = False
        self.settings.request()
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
        """A standby reads what the master changed (REST reads are the same everywhere),
        and asks a switch that refused its SLAVE as stale again once the store may know
        the newer generation (then it is a plain standby there)."""
        if self.election.role != "master":
            self.sggw.store.refresh()
            for switch in list(self.sggw.switches.values()):
                if switch.state == "fenced" and not switch.channel.writable:
                    hub.spawn(self._hold, switch)

    def generation_floor(self):
        """The highest generation a connected switch knows: what a new master's must be
        above. Switches not heard from yet are asked (NOCHANGE changes nothing)."""
        switches = [s for s in self.sggw.switches.values() if not s.channel.closed]
        hub.joinall([hub.spawn(self._read_generation, s) for s in switches
                     if s.generation is None])
        return max([s.generation or 0 for s in switches], default=0)

    def role_status(self, switch, msg):
        """An experimenter message from ``switch``: True if it was a role status (then
        handled: a demotion of this master fences the switch and this instance steps
        down)."""
        if (msg.experimenter, msg.exp_type) != (ofproto_common.ONF_EXPERIMENTER_ID,
                                                ONFT_ROLE_STATUS):
            return False
        role, _, generation = _ROLE_STATUS.unpack_from(bytes(msg.data))
        _learn(switch, generation)
        if role == ofp.OFPCR_ROLE_MASTER:
            return True
        if self.election.role != "master" and not switch.channel.writable:
            switch.role, switch.state, switch.error = "slave", "standby", None
            return True  # what a standby's connection left as master would be told
        self._outdone(switch, "slave", "the switch made another controller master "
                      "(generation %d; this instance's is %s)"
                      % (generation, self.election.generation))
        return True

    def _outdone(self, switch, role, why):
        """``switch`` has a newer master than this instance: never write to it again (until
        a new generation is granted), and stand down everywhere; the lock holder then
        stands again, above the switch's generation."""
        switch.channel.writable = False
        LOG.error("%s: fenced: %s", switch.name, why)
        self.election.step_down("%s: %s" % (switch.name, why))
        switch.role, switch.state, switch.error = role, "fenced", why
        hub.spawn(self.election.review)

    def _take(self, switch, generation):
        if not self._still_master(generation):
            return  # review() steps down (or has) and the switches are held
        if (switch.generation or 0) > generation:
            self._outdone(switch, switch.role or "equal", "the switch knows generation %d, "
                          "above this master's %d" % (switch.generation, generation))
            return
        try:
            reply = switch.channel.role(ofp.OFPCR_ROLE_MASTER, generation)
        except SwitchError as exc:
            if _stale(exc):
                self._read_generation(switch)
                self._outdone(switch, switch.role or "equal",
                              "MASTER with generation %d refused as stale (%s): the switch "
                              "knows generation %s" % (generation, exc, switch.generation))
            else:
                LOG.error("%s: the switch refused this controller as master (generation "
                          "%d): %s", switch.name, generation, exc)
            return
        _learn(switch, reply.generation_id)
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

    def _still_master(self, generation):
        """Whether this instance is master with ``generation`` by a current copy of the
        store (a woken instance's copy may say so long after the store stopped)."""
        election = self.election
        while election.writable and election.generation == generation:
            if not election.db.fresh(FRESH_WAIT):
                continue  # the store is slow or away: losing it makes this one step down
            stored = election.stored()[0]
            if stored == generation:
                return election.writable and election.generation == generation
            if stored > generation:
                election.step_down("the store has generation %d" % stored)
            else:  # the copy has not caught up with its own claim yet
                hub.sleep(0.1)
        return False

    def _hold(self, switch):
        """Ask SLAVE, with a generation the switch cannot refuse: the store's (read
        afresh) or, if higher, the switch's own."""
        self.election.db.fresh(FRESH_WAIT)
        for _ in range(2):
            if switch.generation is None:
                self._read_generation(switch)
            generation = max(self.election.stored()[0], switch.generation or 0)
            if self.election.role != "standby" or switch.channel.writable:
                return  # it stood for master meanwhile: SLAVE now would demote its grant
            try:
                reply = switch.channel.role(ofp.OFPCR_ROLE_SLAVE, generation)
            except SwitchError as exc:
                LOG.warning("%s: SLAVE with generation %d refused: %s", switch.name,
                            generation, exc)
                if not _stale(exc):
                    return
                switch.generation = None  # raised meanwhile: read it again and ask again
                continue
            _learn(switch, reply.generation_id)
            if not switch.channel.writable:  # not overtaken by a MASTER granted since
                switch.role, switch.state, switch.error = "slave", "standby", None
            return
        switch.state = "fenced"  # the connection keeps its role (EQUAL if new): our fence holds
        switch.error = ("SLAVE refused as stale twice: the switch's generation keeps rising; "
                        "this instance does not write to it")

    def _read_generation(self, switch):
        """Learn the generation ``switch`` knows (NOCHANGE: asks nothing of it)."""
        try:
            reply = switch.channel.role(ofp.OFPCR_ROLE_NOCHANGE, 0, timeout=READ_TIMEOUT)
        except SwitchError as exc:
            LOG.warning("%s: could not read its generation: %s", switch.name, exc)
            return
        _learn(switch, reply.generation_id)


def _learn(switch, generation):
    """The switch said it knows ``generation`` (2**64-1: none yet)."""
    if generation < NO_GENERATION:
        switch.generation = max(switch.generation or 0, generation)


def _stale(exc):
    return isinstance(exc, Rejected) and any(
        err.type == ofp.OFPET_ROLE_REQUEST_FAILED and err.code == ofp.OFPRRFC_STALE
        for _, err in exc.errors)
