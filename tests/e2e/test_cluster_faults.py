"""Random faults against a real cluster while REST writers on both instances change objects:
no acknowledged write is lost, nothing is half applied, the switches hold what the store
says and there is one master (:mod:`testbed.fault_run` says how each is checked).

The store's members run in namespaces of their own behind links of their own (a cut takes
one down), the instances and the private Open vSwitch in a namespace of the test's own.
The default run is short; ``-m slow`` runs ``SGGW_FAULT_MINUTES`` (20) minutes.
``SGGW_FAULT_SEED=<n>`` reruns a schedule (the run prints its seed first and last).
"""
import os
import random
import secrets

import pytest

from testbed.fault_run import FaultRun
from testbed.netns import inside
from testbed.ovsdb_cluster import Cluster, MemberNetwork
from testbed.proc import wait_for
from tests.e2e.test_cluster import ClusterBed, standing_by

SHORT = 90  # seconds of faults in the default run


@pytest.fixture
def fault_bed(tmp_path):
    prefix = "sf" + secrets.token_hex(2)
    with inside(prefix + "-net"):
        network = MemberNetwork(prefix, 3)
        store = None
        try:
            store = Cluster(tmp_path / "store", network=network)
            (tmp_path / "store").mkdir()
            store.create()
            (tmp_path / "bed").mkdir()
            with ClusterBed(store, str(tmp_path / "bed")) as bed:
                bed.add_second()
                wait_for(lambda: standing_by(bed, "two"), 30, what="a standby")
                yield bed
        finally:
            if store is not None:
                store.stop()
            network.delete()


def run_faults(bed, seconds):
    seed = os.environ.get("SGGW_FAULT_SEED")
    seed = int(seed) if seed else random.SystemRandom().randrange(1 << 32)
    verdict = FaultRun(bed, seed, seconds).run()
    assert verdict.ok, "seed %d: %s" % (seed, "\n".join(verdict.problems[:40]))


def test_random_faults_lose_no_acknowledged_write(fault_bed):
    run_faults(fault_bed, SHORT)


@pytest.mark.slow
def test_random_faults_for_minutes_lose_no_acknowledged_write(fault_bed):
    run_faults(fault_bed, float(os.environ.get("SGGW_FAULT_MINUTES", "20")) * 60)
