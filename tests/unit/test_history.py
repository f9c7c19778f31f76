"""The fault run's history check: acknowledged writes must be found, refusals must be true,
requests without an answer may have happened or not (a late one at any later time), and
the store, the APIs and the switches must agree."""
import pytest

from testbed.history import (
    ABSENT, CREATE, DELETE, LATE, OK, REFUSED, REPLACE, UNKNOWN, Request, check, marker,
    replay, summary, version_of)

KEY = ("site-a", "captures", "c-w1-0")


def req(op, version=None, status=201, error=None, message="", at=0.0):
    return Request("w1", KEY, op, version, "one", at, at + 0.01, status, error, message)


def create(version, **kw):
    return req(CREATE, version, **kw)


def replace(version, status=200, **kw):
    return req(REPLACE, version, status=status, **kw)


def delete(status=204, **kw):
    return req(DELETE, None, status=status, **kw)


def reset(op, version=None):
    return req(op, version, status=None, error="reset")


def late(op, version=None):
    return req(op, version, status=None, error="timeout")


EXISTS = dict(status=409, message="capture rule 'c-w1-0' already exists on site-a")
MISSING = dict(status=404, message="no capture rule 'c-w1-0' on site-a")


@pytest.mark.parametrize("kind", ["captures", "mirrors"])
@pytest.mark.parametrize("version", [1, 255, 256, 4097, 65535, 65536, (1 << 20) - 1])
def test_each_version_has_an_address_of_its_own(kind, version):
    assert version_of(kind, marker(kind, version)) == version
    assert version_of(kind, marker(kind, version).split("/")[0]) == version


def test_addresses_that_are_no_version_say_so():
    assert version_of("captures", marker("mirrors", 3)) is None
    assert version_of("captures", "10.2.0.0/16") is None
    assert version_of("captures", "10.128.0.0/32") is None
    assert version_of("captures", "10.144.0.1/32") is None
    with pytest.raises(ValueError):
        marker("captures", 0)
    with pytest.raises(ValueError):
        marker("mirrors", 1 << 20)


@pytest.mark.parametrize("request_, outcome", [
    (create(1), OK), (delete(), OK), (create(1, **EXISTS), REFUSED), (create(1, status=504), LATE),
    (create(1, status=503), REFUSED), (reset(CREATE, 1), UNKNOWN), (late(CREATE, 1), LATE),
    (req(CREATE, 1, status=None, error="refused connection"), REFUSED)])
def test_an_answer_says_whether_it_happened(request_, outcome):
    assert request_.outcome == outcome


def test_acknowledged_writes_leave_exactly_their_version():
    assert replay([create(1), replace(2)]) == ({2}, [])
    assert replay([create(1), replace(2), delete()]) == ({ABSENT}, [])
    assert replay([create(1), replace(2, status=503)]) == ({1}, [])


def test_an_unanswered_write_may_have_happened_or_not():
    assert replay([create(1), reset(REPLACE, 2)]) == ({1, 2}, [])
    assert replay([create(1), reset(DELETE)]) == ({1, ABSENT}, [])
    assert replay([reset(CREATE, 1), reset(REPLACE, 2)]) == ({ABSENT, 1, 2}, [])


def test_a_refusal_tells_whether_an_unanswered_create_happened():
    assert replay([reset(CREATE, 1), create(2, **EXISTS)]) == ({1}, [])
    assert replay([reset(CREATE, 1), delete(**MISSING)]) == ({ABSENT}, [])


def test_a_broken_connection_settles_before_the_next_request_a_late_answer_does_not():
    ops = [create(1), reset(REPLACE, 2), replace(3)]
    assert replay(ops) == ({3}, [])
    ops = [create(1), late(REPLACE, 2), replace(3)]
    assert replay(ops) == ({2, 3}, [])
    ops = [create(1), late(DELETE), delete(), create(4)]
    assert replay(ops)[0] == {4, ABSENT}  # the late delete may still come


def test_a_refusal_contradicting_an_acknowledged_write_is_found_at_once():
    possible, problems = replay([create(1), delete(**MISSING)])
    assert len(problems) == 1 and "404" in problems[0] and "was v1 then" in problems[0]
    possible, problems = replay([create(1), delete(), create(2, **EXISTS)])
    assert len(problems) == 1 and "was absent then" in problems[0]


def test_an_acknowledged_create_of_an_object_that_must_exist_is_found():
    possible, problems = replay([create(1), create(2)])
    assert possible == {2} and len(problems) == 1 and "acknowledged" in problems[0]


def found_everywhere(value):
    return {place: {KEY: value} for place in ("store", "api one", "api two", "switches")}


def test_a_lost_write_and_a_deleted_object_back_are_found():
    verdict = check([create(1), replace(2)], found_everywhere(1))
    assert (verdict.lost, verdict.half) == (1, 0)
    assert "found v1, but after its history it can only be v2" in verdict.problems[0]
    assert "last acknowledged: " in verdict.problems[0]
    verdict = check([create(1), delete()], found_everywhere(ABSENT))
    assert verdict.ok
    verdict = check([create(1), delete()], {"store": {KEY: 1}, "switches": {KEY: 1}})
    assert verdict.lost == 1 and not verdict.ok


def test_a_write_half_applied_is_found_wherever_it_is_missing():
    places = found_everywhere(2)
    places["switches"] = {}
    verdict = check([create(1), replace(2)], places)
    assert (verdict.lost, verdict.half) == (0, 1)
    assert verdict.problems == ["site-a/captures/c-w1-0: half applied: api one v2, api two "
                                "v2, store v2, switches absent"]


def test_an_object_nobody_wrote_is_found_too():
    other = ("site-b", "mirrors", "m-w9-0")
    places = found_everywhere(ABSENT)
    places["store"][other] = 7
    verdict = check([], places)
    assert verdict.half == 1 and "m-w9-0" in verdict.problems[0]


def test_the_summary_counts_requests_by_outcome():
    ops = [create(1), reset(REPLACE, 2), late(DELETE), replace(3, status=503)]
    verdict = check(ops, found_everywhere(2))
    assert verdict.ok
    line = summary(ops, verdict)
    assert "requests: 4, acknowledged: 1, refused: 1, unknown: 1" in line
    assert "+ 1 (no answer in time)" in line and "lost: 0, half applied: 0" in line
