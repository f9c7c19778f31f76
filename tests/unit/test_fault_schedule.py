"""The fault run's schedule: the same seed gives the same faults; within a lane faults never
overlap (the store keeps its majority, one instance is always left); every fault is undone
before the run's quiet end."""
import pytest

from testbed.fault_schedule import KINDS, LANES, TAIL, describe, schedule


@pytest.mark.parametrize("seed", [0, 1, 42, 20261201])
def test_a_seed_replays_the_same_schedule(seed):
    assert schedule(seed, 600) == schedule(seed, 600)


def test_other_seeds_give_other_schedules():
    assert len({tuple(schedule(seed, 300)) for seed in range(20)}) == 20


@pytest.mark.parametrize("seed", range(30))
def test_faults_of_a_lane_follow_each_other_and_end_before_the_quiet_tail(seed):
    faults = schedule(seed, 300)
    assert faults == sorted(faults, key=lambda f: f.at)
    for lane in LANES:
        mine = [f for f in faults if f.lane == lane]
        assert all(a.ends <= b.at for a, b in zip(mine, mine[1:])), lane
    assert all(f.ends <= 300 - TAIL and f.at > 0 for f in faults)
    for fault in faults:
        _, targets, shortest, longest = KINDS[fault.kind]
        assert fault.target in targets and shortest <= fault.duration <= longest


def test_a_long_run_meets_every_kind_and_target_and_lanes_overlap():
    faults = schedule(7, 1200)
    assert {(f.kind, f.target) for f in faults} == {
        (kind, target) for kind, (_, targets, _, _) in KINDS.items() for target in targets}
    assert any(a.lane != b.lane and a.at < b.ends and b.at < a.ends
               for a in faults for b in faults)


def test_a_run_too_short_for_any_fault_has_none():
    assert schedule(3, TAIL) == []


def test_the_schedule_reads_one_line_per_fault():
    faults = schedule(5, 60)
    lines = describe(faults).splitlines()
    assert len(lines) == len(faults) and all(f.kind in line for f, line in zip(faults, lines))
