"""A randomized fault run against a real sggw cluster, and its verdict.

REST writers on every instance create, replace and delete capture rules and mirror
sessions (each writer its own objects, one request at a time, every answer recorded in a
:mod:`testbed.history`) while the faults of a :mod:`testbed.fault_schedule` hit the real
processes and links: an instance killed or hung, a store member killed or cut off,
ovs-vswitchd restarted. At the end every fault is undone, the cluster settles, and what
was found is checked against the history:

* the store (read with ``ovsdb-client``), each instance's REST API and the switches'
  flows (each version's address, :func:`testbed.history.marker`) show every
  acknowledged write and none of what an acknowledged delete removed, and agree;
* the switches hold exactly what the store says, flows, groups and meters: the master is
  killed and the standby, taking over, finds nothing to change (its reconcile compares
  the switch's own dumps with what the store's objects make);
* exactly one master, granted by both switches.

The bed (``tests/e2e/test_cluster.py``'s ClusterBed) has two instances, ``instances``,
their store ``store`` (a :class:`testbed.ovsdb_cluster.Cluster`, members behind links of
their own) and a private Open vSwitch ``ovs``.
"""
import itertools
import json
import os
import random
import re
import signal
import threading
import time

import requests
import urllib3

from testbed import history
from testbed.fault_schedule import INSTANCE, MEMBER, schedule
from testbed.history import ABSENT, CREATE, DELETE, OK, REFUSED, REPLACE, Request
from testbed.proc import run as run_command
from testbed.proc import wait_for

# Longer than anything an instance may take on a request (a hang, then the store's and the
# switch's own timeouts): a writer that gives up may leave a request to be done later.
CLIENT_TIMEOUT = 60.0
CONNECT_TIMEOUT = 5.0
WRITERS_PER_INSTANCE = 2
OBJECTS = (("site-a", "captures"), ("site-b", "captures"), ("site-a", "captures"),
           ("site-a", "mirrors"), ("site-a", "mirrors"))  # each writer's, one name each
SETTLE = 90  # seconds the healed cluster may take to have one master with both switches
PROGRAMMED = re.compile(r"(site-[ab]) \(0x[0-9a-f]+\): programmed: \d+ flows "
                        r"\((\d+) added, (\d+) removed\), (\d+) messages")
MARKED = re.compile(r"nw_dst=(10\.\d+\.\d+\.\d+)(?:/32)?[,\s]")


class Writer(threading.Thread):
    """Writes its own objects through instance ``instance`` until told to stop."""

    def __init__(self, fault_run, name, instance, seed):
        super().__init__(name=name, daemon=True)
        self.fault_run, self.instance = fault_run, instance
        self.rng = random.Random("%s-%s" % (seed, name))
        self.keys = [(switch, kind, "%s-%s-%d" % (kind[0], name, i))
                     for i, (switch, kind) in enumerate(OBJECTS)]
        self.believed = {key: False for key in self.keys}  # present? None: not known

    def run(self):
        while not self.fault_run.stopping.is_set():
            key = self.rng.choice(self.keys)
            request = self.write(key, self._choose(self.believed[key]))
            self._learn(key, request)
            if request.outcome == OK:
                time.sleep(self.rng.uniform(0, 0.03))
            else:  # an election, a switch away, an instance down: not too many of them
                time.sleep(self.rng.uniform(0.1, 0.4))

    def _choose(self, present):
        if present is None:
            return self.rng.choice((CREATE, REPLACE, DELETE))
        if not present:
            return CREATE
        return REPLACE if self.rng.random() < 0.65 else DELETE

    def _learn(self, key, request):
        outcome = request.outcome
        if outcome == OK:
            self.believed[key] = request.op != DELETE
        elif outcome == REFUSED:
            said = history.constraint(request)
            if said is not None:
                self.believed[key] = said
        else:
            self.believed[key] = None

    def body(self, key, version):
        switch, kind, name = key
        address = history.marker(kind, version)
        rng = self.rng
        if kind == "captures":
            body = {"name": name, "ipv4_dst": address}
            if rng.random() < 0.3:
                body.update(ip_proto="udp", dst_port=rng.randint(1, 65535))
            return body
        destination = {"port": rng.choice(self.fault_run.analyzers)}
        if rng.random() < 0.3:
            destination["vlan"] = rng.randint(1, 4094)
        body = {"name": name, "sources": [{"port": "lan", "direction": rng.choice(
            ("rx", "tx", "both"))}], "destinations": [destination],
            "filter": {"ipv4_dst": address}}
        if rng.random() < 0.3:
            body["rate_limit"] = {"pps": rng.randint(100, 100000)}
        if rng.random() < 0.2:
            body["snaplen"] = rng.randint(64, 1500)
        return body

    def write(self, key, op):
        switch, kind, name = key
        version = None if op == DELETE else self.fault_run.next_version(kind)
        path = "/v1/switches/%s/%s" % (switch, kind) + ("" if op == CREATE else "/" + name)
        method = {CREATE: "POST", REPLACE: "PUT", DELETE: "DELETE"}[op]
        api = self.fault_run.bed.instances[self.instance].api
        request = Request(self.name, key, op, version, self.instance, self.fault_run.clock())
        try:
            answer = requests.request(
                method, api + path, json=None if op == DELETE else self.body(key, version),
                timeout=(CONNECT_TIMEOUT, CLIENT_TIMEOUT))
            request.status = answer.status_code
            request.redirects = [r.status_code for r in answer.history]
            if answer.status_code >= 300:
                request.message = _error_text(answer)
        except requests.exceptions.ConnectTimeout:
            request.error = "refused connection"
        except requests.exceptions.ReadTimeout:
            request.error = "timeout"
        except requests.exceptions.ConnectionError as exc:
            request.error = "refused connection" if _not_sent(exc) else "reset"
            if request.error == "reset":
                request.message = _cause(exc)
        request.ended = self.fault_run.clock()
        self.fault_run.requests.append(request)
        return request


def _error_text(answer):
    try:
        return answer.json().get("error", "")
    except ValueError:
        return answer.text[:200]


def _cause(exc):
    """The innermost reason of a connection error, in a few words."""
    while exc.args and isinstance(exc.args[-1], BaseException):
        exc = exc.args[-1]
    while getattr(exc, "reason", None) is not None and exc.reason is not exc:
        exc = exc.reason
    return "%s: %s" % (type(exc).__name__, exc)


def _not_sent(exc):
    """Whether a connection error happened before the request went out."""
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


class FaultRun:
    def __init__(self, bed, seed, seconds, out=print):
        self.bed, self.seed, self.seconds, self.out = bed, seed, seconds, out
        self.faults = schedule(seed, seconds)
        self.rng = random.Random(seed)  # picks among targets the schedule names by role
        self.analyzers = [host.outside for name, host in sorted(bed.hosts.items())
                          if name.startswith("ana")]
        self.requests = []
        self.hit = []  # lines: what each fault hit, when
        self.stopping = threading.Event()
        self._versions = {kind: itertools.count(1) for kind in history.NETS}
        self._started = None

    def clock(self):
        return time.monotonic() - self._started

    def next_version(self, kind):
        return next(self._versions[kind])

    # --- the run ------------------------------------------------------------------------------

    def run(self):
        """Write and hit for ``seconds``, heal, check: a :class:`history.Verdict`, and all
        of it printed."""
        self.out("fault run: seed %d (SGGW_FAULT_SEED=%d reruns it), %d s, %d faults"
                 % (self.seed, self.seed, self.seconds, len(self.faults)))
        self._started = time.monotonic()
        writers = [Writer(self, "w%s%d" % (instance, i), instance, self.seed)
                   for instance in sorted(self.bed.instances)
                   for i in range(WRITERS_PER_INSTANCE)]
        for writer in writers:
            writer.start()
        undo = {}
        try:
            self._inject(undo)
        finally:
            self.stopping.set()
            for fault, action in list(undo.items()):  # none unless an injection failed
                self._log("undo %s (run ended early)" % fault.kind)
                action()
            for writer in writers:
                writer.join(CLIENT_TIMEOUT + CONNECT_TIMEOUT + 5)
        problems = []
        try:
            master = self._settle()
            found = self._found(problems)
            problems += self._takeover_changes_nothing(master)
        except (AssertionError, TimeoutError) as exc:
            found = {}
            problems.append("the cluster did not settle after the faults: %s" % exc)
        verdict = history.check(self.requests, found)
        verdict.problems += problems
        self._print(verdict)
        return verdict

    def _inject(self, undo):
        events = sorted([(f.at, 0, i, f) for i, f in enumerate(self.faults)]
                        + [(f.ends, 1, i, f) for i, f in enumerate(self.faults)])
        for at, ending, _, fault in events:
            delay = at - self.clock()
            if delay > 0:
                time.sleep(delay)
            if ending:
                undo.pop(fault)()
                self._log("%s undone" % fault.kind)
            else:
                undo[fault] = self._hit(fault)
        time.sleep(max(0, self.seconds - self.clock()))

    def _log(self, text):
        self.hit.append("%8.2f s  %s" % (self.clock(), text))

    def _hit(self, fault):
        """Do ``fault``; what undoes it."""
        if fault.lane == INSTANCE:
            name = self._instance(fault.target)
            instance = self.bed.instances[name]
            self._log("%s %s (%s)" % (fault.kind, fault.target, name))
            if fault.kind == "kill-instance":
                instance.stop(kill=True)
                return instance.start
            pid = instance.pid
            os.kill(pid, signal.SIGSTOP)
            return lambda: os.kill(pid, signal.SIGCONT)
        if fault.lane == MEMBER:
            store = self.bed.store
            i = self._member(fault.target)
            self._log("%s %s (member %d)" % (fault.kind, fault.target, i))
            if fault.kind == "kill-member":
                store.kill(i)
                return lambda: store.start(i)
            store.cut(i)
            return lambda: store.heal(i)
        self._log("restart-switch: ovs-vswitchd killed")
        self.bed.ovs.stop_vswitchd(kill=True)
        return self.bed.ovs.start_vswitchd

    def _instance(self, role):
        """The instance that is ``role`` (master or standby) now; if none is master, one
        picked at random."""
        names = sorted(self.bed.instances)
        masters = [n for n in names if _role(self.bed.instances[n]) == "master"]
        if len(masters) != 1:
            return self.rng.choice(names)
        return masters[0] if role == "master" else [n for n in names if n != masters[0]][0]

    def _member(self, role):
        store = self.bed.store
        leader = store.leader()
        if role == "leader" and leader is not None:
            return leader
        others = [i for i, proc in enumerate(store.procs) if proc is not None and i != leader]
        return self.rng.choice(others)

    # --- the end ------------------------------------------------------------------------------

    def _settle(self):
        """Wait until the healed cluster has one master holding both switches and a standby
        holding them too; the master's name."""
        self.bed.store.wait_leader(SETTLE)

        def settled():
            roles = {n: _role(i) for n, i in self.bed.instances.items()}
            masters = [n for n, r in roles.items() if r == "master"]
            return (len(masters) == 1 and all(_standing_by(i) for n, i in
                                               self.bed.instances.items() if n != masters[0])
                    and self.bed.granted_everywhere(masters[0]) and masters[0])
        return wait_for(settled, SETTLE, interval=0.5, what="one master and one standby")

    def _found(self, problems):
        """{place: {key: version}}: the store, each instance's API, the switches."""
        found = {"store": self._stored()}
        for name in sorted(self.bed.instances):  # a standby follows the store: give it time
            try:
                wait_for(lambda: self._listed(name) == found["store"], 20, interval=0.5)
            except TimeoutError:
                pass  # what it lists is checked with the rest
            found["api " + name] = self._listed(name)
        found["switches"] = self._on_switches(problems)
        return found

    def _stored(self):
        query = json.dumps(["SGGW", {"op": "select", "table": "Object", "where": [],
                                     "columns": ["datapath", "kind", "name", "body"]}])
        rows = json.loads(run_command("ovsdb-client", "transact", self.bed.store.remotes,
                                      query))[0]["rows"]
        return {(r["datapath"], r["kind"], r["name"]): _version(r["kind"], json.loads(r["body"]))
                for r in rows}

    def _listed(self, name):
        out = {}
        for switch in ("site-a", "site-b"):
            for kind in history.NETS:
                for obj in self.bed.instances[name].get("/v1/switches/%s/%s" % (switch, kind)):
                    if obj["source"] == "api":
                        out[(switch, kind, obj["name"])] = _version(kind, obj)
        return out

    def _on_switches(self, problems):
        """{key: version} from the versions' addresses in the switches' flows."""
        written = {(r.key[1], r.version): r.key for r in self.requests if r.version}
        out = {}
        for site in "ab":
            for line in self.bed.ovs.ofctl("dump-flows", self.bed.bridge(site),
                                           "--no-stats").splitlines():
                for address in MARKED.findall(line + " "):
                    for kind in history.NETS:
                        version = history.version_of(kind, address)
                        if version is None:
                            continue
                        key = written.get((kind, version))
                        if key is None:
                            problems.append("switch %s: a flow with %s, which no write sent: "
                                            "%s" % (site, address, line.strip()))
                        elif out.get(key, version) != version:
                            problems.append("%s: versions %d and %d both on the switch"
                                            % ("/".join(key), out[key], version))
                        else:
                            out[key] = version
        return out

    def _takeover_changes_nothing(self, master):
        """Kill the master: the standby, taking over, must find both switches holding what
        the store says (its reconcile sends nothing). Then exactly one master."""
        problems = []
        new = [n for n in self.bed.instances if n != master][0]
        before = len(self.bed.instances[new].log())
        self.bed.instances[master].stop(kill=True)
        wait_for(lambda: self.bed.granted_everywhere(new), 30, interval=0.1,
                 what="the standby %s master after the final kill" % new)

        def programmed():
            seen = {m.group(1): m for m in PROGRAMMED.finditer(
                self.bed.instances[new].log()[before:])}
            return len(seen) == 2 and seen
        for switch, line in sorted(wait_for(programmed, 10, what="both reconciled").items()):
            if int(line.group(4)):
                problems.append("%s: the new master changed %s things (%s added, %s removed):"
                                " the switch did not hold what the store says" % (
                                    switch, line.group(4), line.group(2), line.group(3)))
            self._log("final takeover by %s: %s" % (new, line.group(0)))
        self.bed.instances[master].start()
        wait_for(lambda: _standing_by(self.bed.instances[master]), 60,
                 what="the killed master back, holding both switches as standby")
        roles = {n: _role(i) for n, i in self.bed.instances.items()}
        if sorted(roles.values()) != ["master", "standby"]:
            problems.append("not exactly one master: %s" % roles)
        try:  # OVS writes the roles to its database every few seconds
            wait_for(lambda: self.bed.master_everywhere(new), 15, interval=0.5)
        except TimeoutError:
            problems.append("OVS does not show %s as the only master: %s" % (
                new, {site: self.bed.roles(site) for site in "ab"}))
        return problems

    def _print(self, verdict):
        out = self.out
        out("faults (as scheduled):")
        for fault in self.faults:
            out("  " + fault.describe())
        out("faults (as done):")
        for line in self.hit:
            out("  " + line)
        out("requests (start, seconds, writer, request, instance, answer):")
        for request in self.requests:
            out("  " + request.describe())
        kinds = {}
        for fault in self.faults:
            kinds[fault.kind] = kinds.get(fault.kind, 0) + 1
        out("found: %s" % ("nothing wrong" if verdict.ok else "%d problems"
                           % len(verdict.problems)))
        for problem in verdict.problems:
            out("  " + problem)
        out("summary: seed %d, %d s, faults: %d (%s); %s" % (
            self.seed, self.seconds, len(self.faults),
            ", ".join("%s %d" % kv for kv in sorted(kinds.items())),
            history.summary(self.requests, verdict)))


def _standing_by(instance):
    """A standby that holds every switch (connected, asked SLAVE)."""
    health = instance.health() if instance.running() else None
    return bool(health) and health.get("cluster", {}).get("role") == "standby" and all(
        s["connected"] and s["state"] == "standby" for s in health["switches"].values())


def _role(instance):
    if not instance.running():
        return None
    health = instance.health()
    return health and health.get("cluster", {}).get("role")


def _version(kind, body):
    address = body.get("ipv4_dst") if kind == "captures" else (body.get("filter") or {}).get(
        "ipv4_dst")
    return history.version_of(kind, address) if address else ABSENT
