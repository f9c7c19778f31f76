"""The state file: what REST made comes back after a restart exactly as it was, and a write
that is not committed changes nothing."""
import json
import random
from dataclasses import replace

import pytest
import yaml

from app import config
from app.api.service import Sggw
from app.store.store import FIRST_API_ID, IdsExhausted, Kept, Store
from flows import tables
from flows.capture import MAX_RULE_ID
from flows.tables import MAX_SESSION_ID
from stored import committed, made

CONFIG = {"datapaths": {"site": {"dp_id": 1, "ports": {"lan": ["lan1"], "wan": "wan0",
                                                       "tunnel": "tap0"}}}}
SESSION = {"name": "web", "sources": [{"port": "lan", "direction": "tx"}],
           "destinations": [{"port": "mon1", "vlan": 10}], "snaplen": 96,
           "filter": {"ip_proto": "tcp", "dst_port": 443}, "rate_limit": {"pps": 50}}
RULE = {"name": "to-b", "ipv4_dst": "10.2.0.0/16", "ip_proto": "udp", "dst_port": 53}


def test_objects_come_back_from_the_file_as_they_were(tmp_path):
    cfg = config.loads(yaml.safe_dump(CONFIG))
    store = Store(str(tmp_path / "state.json"))
    session = made(cfg, "mirrors", SESSION, FIRST_API_ID)
    rule = made(cfg, "captures", RULE, FIRST_API_ID + 1)
    committed(store, "mirrors", [session])
    committed(store, "captures", [rule])
    renamed = replace(session, name="web2", id=FIRST_API_ID + 2)
    committed(store, "mirrors", [session, renamed])
    committed(store, "mirrors", [renamed])  # the first one deleted

    again = Store(str(tmp_path / "state.json")).load(cfg)
    assert again.get("site", "mirrors") == [renamed]
    assert again.get("site", "captures") == [rule]
    assert again.numbered("site", "mirrors", session, "mirror session").obj.id == FIRST_API_ID
    assert json.loads((tmp_path / "state.json").read_text())["version"] == 1


def test_a_write_that_is_not_committed_leaves_the_file_as_it_was(tmp_path):
    cfg = config.loads(yaml.safe_dump(CONFIG))
    path = tmp_path / "state.json"
    store = Store(str(path))
    committed(store, "captures", [made(cfg, "captures", RULE, FIRST_API_ID)])
    before = path.read_text()
    temp = store.write(store.with_changed("site", "captures", drop=[FIRST_API_ID]))
    Store.discard(temp)
    assert path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
    assert len(Store(str(path)).load(cfg).get("site", "captures")) == 1


# --- objects that no longer fit the config are kept (issue 9, case 3) --------------------

def test_objects_that_no_longer_fit_are_kept_and_written_back(tmp_path):
    two = {"datapaths": dict(CONFIG["datapaths"], other={
        "dp_id": 2, "ports": {"lan": ["l2"], "wan": "w2", "tunnel": "t2"}})}
    cfg = config.loads(yaml.safe_dump(two))
    path = tmp_path / "state.json"
    store = Store(str(path))
    pinned = dict(RULE, name="from-lan1", in_port=["lan1"])
    committed(store, "captures", [made(cfg, "captures", pinned, FIRST_API_ID)])
    other = replace(config.capture_rule(RULE, None, cfg.datapaths["other"].ports),
                    id=FIRST_API_ID)
    changed = store.with_changed("other", "captures", put=[other])
    store.commit(store.write(changed), changed)

    # the port and the second datapath leave the config: nothing is lost
    smaller = {"datapaths": {"site": {"dp_id": 1, "ports": {"lan": ["lan9"], "wan": "wan0",
                                                            "tunnel": "tap0"}}}}
    cfg2 = config.loads(yaml.safe_dump(smaller))
    again = Store(str(path)).load(cfg2)
    assert again.get("site", "captures") == [] and again.get("other", "captures") == []
    kept = {(dp, item.name): item.reason for dp, _, item in again.all_kept()}
    assert set(kept) == {("site", "from-lan1"), ("other", "to-b")}
    assert "'lan1' is not one of this datapath's ports" in kept["site", "from-lan1"]
    assert "datapath 'other' is not in the config" in kept["other", "to-b"]
    # an unrelated write keeps them, with their ids
    new = again.numbered("site", "captures", made(cfg2, "captures", dict(RULE, name="n"), 0),
                         "capture rule")
    assert new.obj.id == FIRST_API_ID + 1  # the kept rule's id stays reserved
    changed = again.with_changed("site", "captures", new.put, new.drop)
    again.commit(again.write(changed), changed)
    # and they come back when the config fits them again
    back = Store(str(path)).load(cfg)
    assert [o.name for o in back.get("site", "captures")] == ["from-lan1", "n"]
    assert back.get("other", "captures") == [other]
    assert back.all_kept() == []


# --- ids stay inside the switch's layout (issue 9, case 4) -------------------------------

def test_mirror_ids_are_reused_and_bounded(tmp_path):
    cfg = config.loads(yaml.safe_dump(CONFIG))
    store = Store(str(tmp_path / "state.json"))
    session = made(cfg, "mirrors", SESSION, 0)
    # create-new/delete-old swaps: the id space is never left
    current = None
    for i in range(70000):
        current = store.numbered("site", "mirrors", replace(session, name="s%d" % i),
                                 "mirror session").obj
        store.objects = {"site": {"captures": [], "mirrors": [current]}}
    assert current.id in (FIRST_API_ID, FIRST_API_ID + 1)
    # every id taken: a clear error, never an id past the layout's bound
    full = [replace(session, name="s%d" % i, id=i)
            for i in range(FIRST_API_ID, MAX_SESSION_ID + 1)]
    store.objects = {"site": {"captures": [], "mirrors": full}}
    with pytest.raises(IdsExhausted, match="all 64535 ids for a mirror session on site"):
        store.numbered("site", "mirrors", session, "mirror session")
    store.objects["site"]["mirrors"] = full[:100] + full[101:]
    assert store.numbered("site", "mirrors", session, "mirror session").obj.id == \
        FIRST_API_ID + 100


def test_session_ids_never_reach_hook_groups_or_leave_the_meter_range():
    for session_id in (FIRST_API_ID, MAX_SESSION_ID):
        group = tables.session_group(session_id)
        assert group in tables.GROUP_RANGE
        assert group not in {tables.hook_group(d, p) for d in ("rx", "tx")
                             for p in (0, 1, 0xfffe)}
        assert tables.session_meter(session_id) in tables.METER_RANGE
    assert tables.session_group(MAX_SESSION_ID + 1) == tables.hook_group("rx", 0)


def test_capture_ids_keep_creation_order_and_are_renumbered_at_the_top(tmp_path):
    cfg = config.loads(yaml.safe_dump(CONFIG))
    store = Store(str(tmp_path / "state.json"))
    rule = made(cfg, "captures", RULE, 0)
    top = [replace(rule, name="a", id=MAX_RULE_ID - 1), replace(rule, name="b", id=MAX_RULE_ID)]
    store.objects = {"site": {"captures": top, "mirrors": []}}
    numbered = store.numbered("site", "captures", replace(rule, name="c"), "capture rule")
    objects = numbered.put
    assert numbered.drop == [MAX_RULE_ID - 1, MAX_RULE_ID]
    assert [(o.name, o.id) for o in objects] == [
        ("a", FIRST_API_ID), ("b", FIRST_API_ID + 1), ("c", FIRST_API_ID + 2)]
    # below the top, a new rule goes after every other one
    store.objects = {"site": {"captures": objects[1:], "mirrors": []}}
    assert store.numbered("site", "captures", rule, "capture rule").obj.id == FIRST_API_ID + 3


def test_temporary_files_of_a_killed_controller_go_at_the_next_start(tmp_path):
    cfg = config.loads(yaml.safe_dump(CONFIG))
    path = tmp_path / "state.json"
    store = Store(str(path))
    committed(store, "captures", [made(cfg, "captures", RULE, FIRST_API_ID)])
    store.write(store.with_changed("site", "captures", drop=[FIRST_API_ID]))  # killed: no rename
    (tmp_path / "other.json").write_text("{}")
    assert len(list(tmp_path.iterdir())) == 3
    assert len(Store(str(path)).load(cfg).get("site", "captures")) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.json", "state.json"]


def test_a_kept_object_is_in_health_and_can_be_deleted(tmp_path):
    cfg = config.loads(yaml.safe_dump(CONFIG))
    path = tmp_path / "state.json"
    store = Store(str(path))
    committed(store, "captures", [made(cfg, "captures", dict(RULE, in_port=["lan1"]),
                                       FIRST_API_ID)])
    moved = {"datapaths": {"site": {"dp_id": 1, "ports": {"lan": ["lan2"], "wan": "wan0",
                                                          "tunnel": "tap0"}}}}
    cfg2 = config.loads(yaml.safe_dump(moved))
    service = Sggw(cfg2, Store(str(path)).load(cfg2))
    health = service.health()
    assert health["status"] == "degraded"
    assert [(k["switch"], k["kind"], k["name"]) for k in health["kept_not_applied"]] == [
        ("site", "captures", "to-b")]
    service.delete("site", "captures", "to-b")  # no switch needed: it is not on one
    assert "kept_not_applied" not in service.health()
    assert json.loads(path.read_text())["datapaths"]["site"]["captures"] == []


# --- a change costs the same with one object or a thousand (issue 13) ------------------------

def test_the_lowest_free_id_is_found_among_applied_and_kept_ids():
    store = Store("unused")
    session = made(config.loads(yaml.safe_dump(CONFIG)), "mirrors", SESSION, 0)
    rng = random.Random(13)
    for _ in range(300):
        ids = sorted(rng.sample(range(FIRST_API_ID, FIRST_API_ID + 60), rng.randint(0, 59)))
        kept = set(rng.sample(ids, rng.randint(0, len(ids))))
        store.objects = {"site": {"captures": [], "mirrors": [
            replace(session, name="s%d" % i, id=i) for i in ids if i not in kept]}}
        store.kept = {"site": {"captures": [], "mirrors": [
            Kept(i, {"name": "k%d" % i}, "gone") for i in sorted(kept)]}}
        expected = next(i for i in range(FIRST_API_ID, MAX_SESSION_ID) if i not in ids)
        assert store.numbered("site", "mirrors", session, "mirror session").obj.id == expected


def test_lookups_follow_committed_changes_only(tmp_path):
    cfg = config.loads(yaml.safe_dump(CONFIG))
    store = Store(str(tmp_path / "state.json")).load(cfg)
    web = made(cfg, "mirrors", SESSION, FIRST_API_ID)
    changed = store.with_changed("site", "mirrors", put=[web])
    Store.discard(store.write(changed))  # written, never committed
    assert store.named("site", "mirrors", "web") is None
    store.commit(store.write(changed), changed)
    assert store.named("site", "mirrors", "web") is web
    # a session of web's analyzer port would copy copies: refused while web exists
    copies_of_copies = config.mirror(dict(SESSION, name="x", sources=[{"port": "mon1"}],
                                          destinations=[{"port": "mon2"}]), None,
                                     cfg.datapaths["site"].ports)
    with pytest.raises(config.ConfigError, match="'mon1' is a destination of another"):
        store.mirror_ports("site").check(copies_of_copies, "x")
    store.mirror_ports("site", leave_out={"web"}).check(copies_of_copies, "x")  # replacing web
    changed = store.with_changed("site", "mirrors", drop=[FIRST_API_ID])
    store.commit(store.write(changed), changed)
    assert store.named("site", "mirrors", "web") is None
    store.mirror_ports("site").check(copies_of_copies, "x")


def test_the_file_after_many_changes_is_what_a_fresh_start_writes(tmp_path):
    cfg = config.loads(yaml.safe_dump(CONFIG))
    path = tmp_path / "state.json"
    store = Store(str(path)).load(cfg)
    rng = random.Random(9)
    for step in range(200):
        names = [o.name for o in store.get("site", "captures")]
        if names and rng.random() < 0.4:
            victim = store.named("site", "captures", rng.choice(names))
            changed = store.with_changed("site", "captures", drop=[victim.id])
        elif names and rng.random() < 0.3:  # replaced under the same id
            old = store.named("site", "captures", rng.choice(names))
            new = made(cfg, "captures", dict(RULE, name=old.name, dst_port=step + 1), old.id)
            changed = store.with_changed("site", "captures", put=[new])
        else:
            rule = made(cfg, "captures", dict(RULE, name="r%d" % step), 0)
            numbered = store.numbered("site", "captures", rule, "capture rule")
            changed = store.with_changed("site", "captures", numbered.put, numbered.drop)
        store.commit(store.write(changed), changed)
    written = path.read_text()
    again = Store(str(path)).load(cfg)
    assert again.get("site", "captures") == store.get("site", "captures")
    fresh = again.with_changed("site", "captures")
    assert again._render(fresh) == written
    assert [o.id for o in store.get("site", "captures")] == \
        sorted(o.id for o in store.get("site", "captures"))
