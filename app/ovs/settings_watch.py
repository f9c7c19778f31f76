"""The OVS settings of every connected switch, checked in rounds (app.ovs.settings).

One round reads each OVSDB once for all its switches, so 100 bridges cost one ``ovs-vsctl``
a round instead of one each (every one forked from the controller and parsing every
bridge's rows), and it runs beside the programming instead of before it: a switch is
programmed at once and its settings are ``pending`` in health until its first round. A
switch that starts being programmed asks for a round, which starts at once (switches
connecting together share it); otherwise a round runs every ``ovs_settings.RECHECK``
seconds.
A cluster standby's switches are checked too, read-only (their master fixes the settings):
health then tells the same on every instance, and a takeover starts from a checked view
instead of ``pending``.
"""
from ryu.lib import hub

from app.ovs import settings as ovs_settings

GATHER = 0.2  # seconds a requested round waits for other switches that connect meanwhile


class SettingsWatch:
    def __init__(self, switches):
        self.switches = switches  # dp_id -> app.openflow.switch.Switch, the connected ones
        self._wanted = hub.Event()

    def request(self):
        """Run a round soon (a switch was just programmed and awaits its first check)."""
        self._wanted.set()

    def run(self):
        while True:
            if self._wanted.wait(timeout=ovs_settings.RECHECK):
                hub.sleep(GATHER)
            self._wanted.clear()
            self.round()

    def round(self):
        by_db = {}
        for switch in list(self.switches.values()):
            if not switch.channel.closed:
                by_db.setdefault((switch.ovsdb_address, switch.channel.writable),
                                 []).append(switch)
        for (db, writable), switches in by_db.items():
            reviews = ovs_settings.check(db, [s.wanted_settings() for s in switches],
                                         fix=writable)
            for switch in switches:
                switch.settings_checked(reviews[switch.dp.dp_id])
