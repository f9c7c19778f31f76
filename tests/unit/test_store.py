"""The state file: what REST made comes back after a restart exactly as it was, and a write
that is not committed changes nothing."""
import json
from dataclasses import replace

import yaml

from app import config
from app.store import FIRST_API_ID, Store

CONFIG = {"datapaths": {"site": {"dp_id": 1, "ports": {"lan": ["lan1"], "wan": "wan0",
                                                       "tunnel": "tap0"}}}}
SESSION = {"name": "web", "sources": [{"port": "lan", "direction": "tx"}],
           "destinations": [{"port": "mon1", "vlan": 10}], "snaplen": 96,
           "filter": {"ip_proto": "tcp", "dst_port": 443}, "rate_limit": {"pps": 50}}
RULE = {"name": "to-b", "ipv4_dst": "10.2.0.0/16", "ip_proto": "udp", "dst_port": 53}


def made(cfg, kind, body, ident):
    dp = cfg.datapaths["site"]
    parse = config.capture_rule if kind == "captures" else config.mirror
    return replace(parse(body, None, dp.ports), id=ident)


def committed(store, kind, objects):
    changed = store.with_changed("site", kind, objects)
    store.commit(store.write(changed), changed)


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
    assert again.next_id("site", "mirrors") == FIRST_API_ID + 3
    assert json.loads((tmp_path / "state.json").read_text())["version"] == 1


def test_a_write_that_is_not_committed_leaves_the_file_as_it_was(tmp_path):
    cfg = config.loads(yaml.safe_dump(CONFIG))
    path = tmp_path / "state.json"
    store = Store(str(path))
    committed(store, "captures", [made(cfg, "captures", RULE, FIRST_API_ID)])
    before = path.read_text()
    temp = store.write(store.with_changed("site", "captures", []))
    Store.discard(temp)
    assert path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
    assert len(Store(str(path)).load(cfg).get("site", "captures")) == 1
