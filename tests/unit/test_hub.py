"""Ryu's hub on the pinned eventlet keeps the timeout semantics app/openflow/channel.py relies on
(os-ken's threading hub, for one, does not: see the eventlet pin in scripts/constraints.txt)."""
import time

import pytest
from ryu.lib import hub


class NoAnswer(Exception):
    pass


def test_a_timeout_with_an_exception_interrupts_an_event_wait():
    event = hub.Event()
    start = time.monotonic()
    with pytest.raises(NoAnswer):
        with hub.Timeout(0.2, NoAnswer("no answer")):
            event.wait()
    assert 0.15 < time.monotonic() - start < 2


def test_event_wait_returns_on_set_or_after_its_timeout():
    event = hub.Event()
    start = time.monotonic()
    assert event.wait(timeout=0.2) is False
    assert 0.15 < time.monotonic() - start < 2
    hub.spawn_after(0.05, event.set)
    assert event.wait(timeout=5) is True


def test_a_cancelled_timeout_never_fires():
    with hub.Timeout(0.1, NoAnswer("late")):
        pass
    hub.sleep(0.3)
