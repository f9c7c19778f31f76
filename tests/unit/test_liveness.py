"""A switch that does not answer its echo reads silent, unless it is busy answering."""
from ryu.lib import hub
from ryu.ofproto import ofproto_v1_3_parser as parser

from app.openflow import liveness
from app.openflow.channel import Channel
from test_streaming import Datapath


def echo_unanswered(monkeypatch, answer_meanwhile):
    """Run one echo that the switch never answers (timeout 0.2 s), while it answers
    ``answer_meanwhile`` other requests 0.05 s before the echo times out."""
    monkeypatch.setattr(liveness, "TIMEOUT", 0.2)
    monkeypatch.setattr(liveness, "BUSY", 0.1)
    channel = Channel(Datapath())
    watch = liveness.Liveness(channel, "site")
    for _ in range(answer_meanwhile):  # e.g. the replies of a long dump
        hub.spawn_after(0.3, channel.dispatch, parser.OFPBarrierReply(None))
    hub.sleep(0.15)  # what was heard before the echo was sent does not count
    watch.echo()
    return watch


def test_a_switch_that_answers_nothing_reads_silent(monkeypatch):
    watch = echo_unanswered(monkeypatch, 0)
    assert not watch.answering and watch.silent_since is not None


def test_a_switch_still_delivering_earlier_answers_is_busy_not_silent(monkeypatch):
    assert echo_unanswered(monkeypatch, 1).answering
