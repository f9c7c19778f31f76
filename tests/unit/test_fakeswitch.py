"""The simulator the pipeline tests rely on behaves like OpenFlow 1.3 + OVS extensions."""
import pytest
from ryu.ofproto import nicira_ext
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

import fakeswitch as fs
from flows.ofp import NXActionClone

A, B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"


def mod(table, priority, actions=(), goto=None, cookie=0, **match):
    instructions = []
    if actions:
        instructions.append(parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, list(actions)))
    if goto is not None:
        instructions.append(parser.OFPInstructionGotoTable(goto))
    return parser.OFPFlowMod(None, cookie=cookie, table_id=table, priority=priority,
                             match=parser.OFPMatch(**match), instructions=instructions)


def out(port):
    return parser.OFPActionOutput(port)


def pkt(in_port=1, **fields):
    return fs.udp(in_port, A, B, "10.0.0.1", "10.0.0.2", **fields)


def test_highest_priority_wins_a_miss_drops_and_add_replaces_the_same_match():
    sw = fs.FakeSwitch([mod(0, 1, [out(2)]), mod(0, 5, [out(3)], udp_dst=53)])
    assert sw.process(pkt(udp_dst=53)).ports == [3]
    assert sw.process(pkt(udp_dst=54)).ports == [2]
    sw.add(mod(0, 5, [out(4)], udp_dst=53))
    assert sw.process(pkt(udp_dst=53)).ports == [4]
    assert len(sw.flows(0)) == 2
    assert fs.FakeSwitch([mod(0, 1, [out(2)], udp_dst=1)]).process(pkt()).outputs == []


@pytest.mark.parametrize("field, value, hit, miss", [
    ("eth_dst", ("01:00:00:00:00:00", "01:00:00:00:00:00"), "01:00:5e:00:00:01", B),
    ("ipv4_dst", ("10.0.0.0", "255.255.255.0"), "10.0.0.9", "10.0.1.9"),
    ("ipv6_dst", ("fd00:1::", "ffff:ffff:ffff:ffff::"), "fd00:1::9", "fd00:2::9"),
    ("vlan_vid", (0x1000, 0x1000), 0x1005, 0),
])
def test_masked_matches(field, value, hit, miss):
    sw = fs.FakeSwitch([mod(0, 1, [out(2)], **{field: value})])
    base = fs.tcp(1, A, B, "fd00:1::1", "fd00:1::2") if "ipv6" in field else pkt()
    assert sw.process(dict(base, **{field: hit})).ports == [2]
    assert sw.process(dict(base, **{field: miss})).ports == []


def test_a_field_the_packet_lacks_does_not_match():
    sw = fs.FakeSwitch([mod(0, 1, [out(2)], eth_type=0x0800, ip_proto=6, tcp_dst=80)])
    assert sw.process(pkt(dport=80)).outputs == []


def test_registers_start_at_zero_and_are_not_sent():
    sw = fs.FakeSwitch([
        mod(0, 1, [parser.OFPActionSetField(reg3=7)], goto=1, reg3=0),
        mod(1, 1, [out(2)], reg3=7)])
    result = sw.process(pkt())
    assert result.ports == [2] and "reg3" not in result.sent(2)


def test_output_to_the_in_port_needs_ofpp_in_port():
    sw = fs.FakeSwitch([mod(0, 1, [out(1), out(2)])])
    assert sw.process(pkt(in_port=1)).ports == [2]
    sw = fs.FakeSwitch([mod(0, 1, [out(ofp.OFPP_IN_PORT)])])
    assert sw.process(pkt(in_port=1)).ports == [1]


def test_resubmit_is_a_subroutine_and_a_miss_in_it_does_nothing():
    sw = fs.FakeSwitch([
        mod(0, 1, [parser.NXActionResubmitTable(table_id=5), parser.OFPActionSetField(reg0=2),
                   parser.NXActionResubmitTable(table_id=5), out(9)]),
        mod(5, 1, [parser.OFPActionSetField(eth_dst="02:00:00:00:00:99")], goto=6, reg0=2),
        mod(6, 1, [out(3)]),
    ])
    result = sw.process(pkt())
    assert result.outputs == [(3, dict(fs.without_in_port(pkt()), eth_dst="02:00:00:00:00:99")),
                              (9, dict(fs.without_in_port(pkt()), eth_dst="02:00:00:00:00:99"))]


def test_a_resubmit_loop_is_stopped():
    sw = fs.FakeSwitch([mod(3, 1, [parser.NXActionResubmitTable(table_id=3)])])
    sw.add(mod(0, 1, goto=3))
    with pytest.raises(fs.SwitchError, match="loop"):
        sw.process(pkt())


def test_goto_must_go_forward():
    with pytest.raises(fs.SwitchError):
        fs.FakeSwitch([mod(2, 1, goto=2)])


def test_reg_move_honours_offsets():
    sw = fs.FakeSwitch([mod(0, 1, [
        parser.NXActionRegMove(src_field="ipv4_src_nxm", dst_field="reg1", n_bits=8,
                               src_ofs=8, dst_ofs=16),
        parser.OFPActionSetField(eth_src="00:00:00:00:00:00"),
        parser.NXActionRegMove(src_field="reg1", dst_field="eth_src", n_bits=16, src_ofs=16,
                               dst_ofs=0),
        out(2)])])
    assert sw.process(pkt(ipv4_src="10.0.7.1")).sent(2)["eth_src"] == "00:00:00:00:00:07"


def learn(*specs, **kwargs):
    return parser.NXActionLearn(table_id=kwargs.pop("table_id", 9), specs=list(specs),
                                priority=kwargs.pop("priority", 10), **kwargs)


def test_learn_builds_matches_and_loads_from_the_packet():
    action = learn(
        parser.NXFlowSpecMatch(src=("vlan_tci", 0), dst=("vlan_tci", 0), n_bits=13),
        parser.NXFlowSpecMatch(src=("eth_src_nxm", 0), dst=("eth_dst_nxm", 0), n_bits=48),
        parser.NXFlowSpecMatch(src=0x5, dst=("reg2", 4), n_bits=4),
        parser.NXFlowSpecLoad(src=("in_port", 0), dst=("reg0", 0), n_bits=32),
        parser.NXFlowSpecLoad(src=0xAB, dst=("eth_src", 8), n_bits=8),
        cookie=0x77, idle_timeout=30, fin_idle_timeout=3)
    sw = fs.FakeSwitch([mod(0, 1, [action])])
    [flow] = sw.process(pkt(in_port=4, vlan=12)).learned
    assert (flow.table_id, flow.priority, flow.cookie, flow.idle_timeout,
            flow.fin_idle_timeout) == (9, 10, 0x77, 30, 3)
    assert flow.fields == {"vlan_tci": (0x100C, 0x1FFF), "eth_dst": A, "reg2": (0x50, 0xF0)}
    assert sw.flows(9) == [flow]

    sw.add(mod(8, 1, [parser.NXActionResubmitTable(table_id=9), out(5)]))
    reply = fs.udp(8, B, A, "10.0.0.2", "10.0.0.1", vlan=12)
    sw.add(mod(0, 2, [parser.OFPActionSetField(reg2=0x5A)], goto=8, in_port=8))
    sent = sw.process(reply).sent(5)
    assert sent["eth_src"] == "02:00:00:00:ab:0b"
    # the same VID untagged, or another VID, does not match the learned vlan_tci
    assert sw.process(dict(reply, vlan_vid=0)).sent(5)["eth_src"] == B
    assert sw.process(dict(reply, vlan_vid=0x1000 | 13)).sent(5)["eth_src"] == B


def test_learning_the_same_match_again_replaces_the_flow():
    action = learn(parser.NXFlowSpecMatch(src=("ipv4_src", 0), dst=("ipv4_dst", 0), n_bits=32),
                   parser.NXFlowSpecLoad(src=("in_port", 0), dst=("reg0", 0), n_bits=32))
    sw = fs.FakeSwitch([mod(0, 1, [action])])
    sw.process(pkt(in_port=1))
    [flow] = sw.process(pkt(in_port=2)).learned
    assert sw.flows(9) == [flow]
    assert flow.actions[0].value == 2


def test_delete_by_cookie_mask_and_strict_delete():
    from flows.ofp import delete_flows
    sw = fs.FakeSwitch([mod(0, 1, [out(2)], cookie=0x101, udp_dst=1),
                        mod(0, 1, [out(2)], cookie=0x102, udp_dst=2),
                        mod(1, 5, [out(2)], cookie=0x201, udp_dst=1)])
    assert len(sw.apply(delete_flows(cookie=0x100, cookie_mask=0xF00))) == 2
    assert [f.cookie for f in sw.flows()] == [0x201]
    strict = delete_flows(table_id=1, match_=parser.OFPMatch(udp_dst=1), strict_priority=4)
    assert sw.apply(strict) == []
    strict = delete_flows(table_id=1, match_=parser.OFPMatch(udp_dst=1), strict_priority=5)
    assert len(sw.apply(strict)) == 1


def test_ryus_default_out_port_on_a_delete_is_refused():
    with pytest.raises(NotImplementedError):
        fs.FakeSwitch().apply(parser.OFPFlowMod(None, command=ofp.OFPFC_DELETE,
                                                table_id=ofp.OFPTT_ALL))


def test_group_all_sends_each_bucket_a_copy():
    group = parser.OFPGroupMod(None, ofp.OFPGC_ADD, ofp.OFPGT_ALL, 1, [
        parser.OFPBucket(actions=[parser.OFPActionSetField(eth_dst=A), out(7)]),
        parser.OFPBucket(actions=[out(8)])])
    sw = fs.FakeSwitch([mod(0, 1, [parser.OFPActionGroup(1), out(2)])], [group])
    result = sw.process(pkt())
    assert result.ports == [2, 7, 8]
    assert result.sent(7)["eth_dst"] == A and result.sent(2)["eth_dst"] == B


def test_two_different_flows_of_equal_priority_matching_is_an_error():
    sw = fs.FakeSwitch([mod(0, 1, [out(2)], udp_dst=53), mod(0, 1, [out(3)], ipv4_dst="10.0.0.2")])
    with pytest.raises(fs.SwitchError):
        sw.process(pkt(dport=53))


def test_problems_finds_what_ovs_refuses():
    move = parser.NXActionRegMove(src_field="arp_sha_nxm", dst_field="arp_tha_nxm", n_bits=48,
                                  src_ofs=0, dst_ofs=0)
    assert fs.problems(mod(9, 0, [move]))
    assert fs.problems(mod(9, 0, [move], eth_type=0x0806)) == []
    assert fs.problems(mod(0, 0, [out(1)], tcp_dst=80))
    bad_learn = learn(parser.NXFlowSpecMatch(src=("ipv4_src", 0), dst=("ipv4_dst", 0),
                                             n_bits=32))
    assert fs.problems(mod(0, 0, [bad_learn], eth_type=0x0800))
    good_learn = learn(parser.NXFlowSpecMatch(src=0x0800, dst=("eth_type_nxm", 0), n_bits=16),
                       *bad_learn.specs)
    assert fs.problems(mod(0, 0, [good_learn], eth_type=0x0800)) == []
    assert fs.problems(mod(0, 0, [good_learn]))  # it reads ipv4_src: the flow must be IP


def test_learned_loads_are_real_ryu_actions():
    [flow] = fs.FakeSwitch([mod(0, 1, [learn(
        parser.NXFlowSpecLoad(src=("eth_src", 0), dst=("eth_dst", 0), n_bits=48))])]
    ).process(pkt()).learned
    [load] = flow.actions
    assert (load.dst, load.ofs_nbits, load.value) == ("eth_dst", nicira_ext.ofs_nbits(0, 47),
                                                      int(A.replace(":", ""), 16))


# --- groups, clones, truncation, meters (what mirror sessions use) ----------------------------

def group(gid, *buckets, type_=ofp.OFPGT_ALL):
    return parser.OFPGroupMod(None, ofp.OFPGC_ADD, type_, gid,
                              [parser.OFPBucket(actions=list(b)) for b in buckets])


def meter(mid):
    return parser.OFPMeterMod(None, ofp.OFPMC_ADD, ofp.OFPMF_PKTPS, mid,
                              [parser.OFPMeterBandDrop(rate=10, burst_size=10)])


def metered(table, priority, meter_id, actions, **match):
    flow = mod(table, priority, actions, **match)
    flow.instructions.insert(0, parser.OFPInstructionMeter(meter_id))
    return flow


def clone(*actions):
    return NXActionClone(list(actions))


def trunc(port, max_len):
    return parser.NXActionOutputTrunc(port=port, max_len=max_len)


def test_clone_runs_on_a_copy_and_the_packet_and_registers_carry_on_as_before():
    sw = fs.FakeSwitch([
        mod(0, 1, [clone(parser.OFPActionSetField(eth_dst=A), parser.OFPActionSetField(reg0=7),
                         parser.NXActionResubmitTable(table_id=1)),
                   parser.NXActionResubmitTable(table_id=1), out(2)]),
        mod(1, 1, [out(3)], reg0=7),
        mod(1, 0, [out(4)])])
    result = sw.process(pkt())
    assert result.outputs == [(3, dict(fs.without_in_port(pkt()), eth_dst=A)),
                              (4, fs.without_in_port(pkt())), (2, fs.without_in_port(pkt()))]


def test_output_trunc_records_its_length_and_a_port_the_switch_lacks_gets_nothing():
    sw = fs.FakeSwitch([mod(0, 1, [trunc(2, 100), out(3), trunc(0xFEFF, 0xFFFF), out(9)])],
                       ports={1, 2, 3})
    result = sw.process(pkt())
    assert result.ports == [2, 3]
    assert (result.output(2).max_len, result.output(3).max_len) == (100, None)


def test_push_vlan_tags_an_untagged_frame_and_keeps_an_existing_tag_inside():
    sw = fs.FakeSwitch([mod(0, 1, [parser.OFPActionPushVlan(0x8100),
                                   parser.OFPActionSetField(vlan_vid=0x1000 | 99), out(2)])])
    assert sw.process(pkt()).sent(2)["vlan_vid"] == 0x1000 | 99
    sent = sw.process(pkt(vlan=5)).sent(2)
    assert (sent["vlan_vid"], sent["inner_vlan_vid"]) == (0x1000 | 99, 0x1000 | 5)


def test_group_buckets_are_action_sets_as_in_ovs():
    """Reordered (push_vlan, then set_field, then one final action), and clone or learn
    ignored: a bucket holding only a clone does nothing."""
    flows = [mod(0, 1, [parser.OFPActionGroup(1)]), mod(5, 1, [out(6)])]
    groups = [group(1, [parser.OFPActionSetField(vlan_vid=0x1000 | 7),
                        parser.OFPActionPushVlan(0x8100), out(7), out(8)],
                    [clone(out(9))],
                    [out(10), parser.NXActionResubmitTable(table_id=5)])]
    result = fs.FakeSwitch(flows, groups).process(pkt())
    assert result.ports == [8, 10]
    assert result.sent(8)["vlan_vid"] == 0x1000 | 7


def test_a_meter_drop_ends_the_packet_unless_it_happens_in_a_datapath_clone():
    """OVS runs a clone of reversible actions inline: only an irreversible action in it
    (a truncating output) makes a real datapath clone, whose meter drop ends just the clone."""
    flows = [mod(0, 1, [clone(parser.NXActionResubmitTable(table_id=1)), out(2)], udp_dst=1),
             mod(0, 1, [clone(trunc(0xFEFF, 0xFFFF), parser.NXActionResubmitTable(table_id=1)),
                        out(2)], udp_dst=2),
             metered(1, 1, 9, [out(3)])]
    sw = fs.FakeSwitch(flows, meter_mods=[meter(9)], ports={1, 2, 3}, meters_drop={9})
    inline = sw.process(pkt(dport=1))
    assert inline.outputs == [] and inline.dropped == [9]
    isolated = sw.process(pkt(dport=2))
    assert isolated.ports == [2] and isolated.dropped == [9]
    assert fs.FakeSwitch(flows, meter_mods=[meter(9)]).process(pkt(dport=1)).ports == [2, 3]


def test_meters_and_groups_must_exist_and_deleting_them_deletes_their_flows():
    with pytest.raises(fs.SwitchError, match="INVALID_METER"):
        fs.FakeSwitch([metered(0, 1, 9, [out(2)])])
    with pytest.raises(fs.SwitchError, match="BAD_OUT_GROUP"):
        fs.FakeSwitch([mod(0, 1, [clone(parser.OFPActionGroup(4))])])
    sw = fs.FakeSwitch([metered(0, 1, 9, [out(2)], udp_dst=1),
                        mod(0, 1, [clone(parser.OFPActionGroup(4))], udp_dst=2),
                        mod(0, 1, [out(2)], udp_dst=3)], [group(4, [out(5)])], [meter(9)])
    with pytest.raises(fs.SwitchError, match="EXISTS"):
        sw.apply(meter(9))
    with pytest.raises(fs.SwitchError, match="EXISTS"):
        sw.apply(group(4))
    [gone] = sw.apply(parser.OFPGroupMod(None, ofp.OFPGC_DELETE, ofp.OFPGT_ALL, 4))
    assert gone.match == {"udp_dst": (2, None)}
    [gone] = sw.apply(parser.OFPMeterMod(None, ofp.OFPMC_DELETE, 0, 9))
    assert gone.meter == 9
    assert [f.match for f in sw.flows()] == [{"udp_dst": (3, None)}]


def test_group_and_meter_stats_are_round_tripped():
    sw = fs.FakeSwitch([], [group(4, [clone(trunc(0xFEFF, 0xFFFF), out(5))])], [meter(9)])
    [desc] = sw.group_desc()
    [[action]] = [b.actions for b in desc.buckets]
    assert (desc.group_id, desc.type, type(action)) == (4, ofp.OFPGT_ALL, NXActionClone)
    assert [type(a) for a in action.actions] == [parser.NXActionOutputTrunc,
                                                 parser.OFPActionOutput]
    [config] = sw.meter_config()
    assert (config.meter_id, config.flags, [(b.rate, b.burst_size) for b in config.bands]) == (
        9, ofp.OFPMF_PKTPS, [(10, 10)])
