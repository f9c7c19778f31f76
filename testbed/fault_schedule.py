"""A random schedule of faults for a cluster run, the same for the same seed.

Faults come in three lanes that run side by side: the sggw instances (one killed with
SIGKILL and started again, or hung with SIGSTOP and woken with SIGCONT), the store's
members (one killed and started again, or cut off: its link down), and the switch
(ovs-vswitchd killed and started again). Within a lane one fault ends before the next
begins, so the store always keeps a majority once its member is back and one instance is
left when the other is hit; across lanes they overlap freely. Targets are roles
(``master``, ``leader``), found out when the fault hits: the schedule is pure, so a
failing seed (``SGGW_FAULT_SEED``) replays the same faults at the same times.
"""
import random
from dataclasses import dataclass

INSTANCE, MEMBER, SWITCH = "instance", "member", "switch"
# kind: (lane, targets, shortest and longest time until it is undone, in seconds)
KINDS = {
    "kill-instance": (INSTANCE, ("master", "standby"), 0.5, 6.0),
    "stop-instance": (INSTANCE, ("master", "standby"), 1.0, 9.0),
    "kill-member": (MEMBER, ("leader", "follower"), 0.5, 8.0),
    "cut-member": (MEMBER, ("leader", "follower"), 1.0, 10.0),
    "restart-switch": (SWITCH, ("ovs-vswitchd",), 0.2, 2.0),
}
LANES = {INSTANCE: ("kill-instance", "stop-instance"),
         MEMBER: ("kill-member", "cut-member"),
         SWITCH: ("restart-switch",)}
# seconds of calm between two faults of a lane: the switch is restarted less often
GAPS = {INSTANCE: (1.0, 8.0), MEMBER: (1.0, 8.0), SWITCH: (10.0, 40.0)}
TAIL = 5.0  # seconds at the end with no fault in force: the run ends on a healed cluster


@dataclass(frozen=True)
class Fault:
    at: float  # seconds after the start of the run
    kind: str
    target: str
    duration: float  # seconds until it is undone (restart, SIGCONT, link up)

    @property
    def lane(self):
        return KINDS[self.kind][0]

    @property
    def ends(self):
        return self.at + self.duration

    def describe(self):
        return "%7.2f s  %-14s %-12s for %.2f s" % (self.at, self.kind, self.target,
                                                     self.duration)


def schedule(seed, seconds):
    """The faults of a run of ``seconds``, in the order they begin."""
    rng = random.Random(seed)
    faults = []
    for lane, kinds in LANES.items():
        at = rng.uniform(*GAPS[lane]) / 2
        while True:
            kind = rng.choice(kinds)
            _, targets, shortest, longest = KINDS[kind]
            fault = Fault(round(at, 2), kind, rng.choice(targets),
                          round(rng.uniform(shortest, longest), 2))
            if fault.ends > seconds - TAIL:
                break
            faults.append(fault)
            at = fault.ends + rng.uniform(*GAPS[lane])
    return sorted(faults, key=lambda f: (f.at, f.lane))


def describe(faults):
    return "\n".join(f.describe() for f in faults)
