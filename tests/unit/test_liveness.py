"""A switch that says nothing for TIMEOUT while an echo waits reads silent, unless it is busy
delivering answers to earlier requests."""
import time

from ryu.lib import hub
from ryu.ofproto import ofproto_v1_3_parser as parser

from app.openflow import liveness
from app.openflow.channel import Channel
from test_fence import Recording as Datapath


def echo_unanswered(monkeypatch, answer_at=None):
    """One echo the switch never answers (TIMEOUT 0.4 s), sent 0.15 s after the switch last
    said something; it answers another request at ``answer_at`` seconds after the echo,
    if given. Returns the watch and how long the echo waited."""
    monkeypatch.setattr(liveness, "TIMEOUT", 0.4)
    monkeypatch.setattr(liveness, "SHORTEST_WAIT", 0.05)
    monkeypatch.setattr(liveness, "BUSY", 0.1)
    channel = Channel(Datapath())
    watch = liveness.Liveness(channel, "site")
    channel.dispatch(parser.OFPBarrierReply(None))  # the switch's last answer
    hub.sleep(0.15)
    if answer_at is not None:  # e.g. one of the replies of a long dump
        hub.spawn_after(answer_at, channel.dispatch, parser.OFPBarrierReply(None))
    started = time.monotonic()
    watch.echo()
    return watch, time.monotonic() - started


def test_silence_counts_from_the_last_answer_not_from_the_echo(monkeypatch):
    watch, waited = echo_unanswered(monkeypatch)
    assert not watch.answering and watch.silent_since is not None
    assert 0.2 <= waited < 0.35  # TIMEOUT less the 0.15 s since the last answer


def test_a_switch_still_delivering_earlier_answers_is_busy_not_silent(monkeypatch):
    watch, _ = echo_unanswered(monkeypatch, answer_at=0.2)
    assert watch.answering
