"""The store in a real 3-member clustered ovsdb-server: what one instance commits every
other reads the same, only the lock holder can write, and a refused write changes nothing."""
from dataclasses import replace

import pytest
import yaml

from app import config
from app.store.cluster_store import ClusterStore
from app.store.ovsdb_client import Ovsdb
from app.store.store import FIRST_API_ID, StoreError
from testbed.ovsdb_cluster import Cluster
from stored import committed, made
from ryu.lib import hub

hub.patch(thread=False)  # as ryu-manager does: the IDL's poller then yields to other threads

CONFIG = {"datapaths": {"site": {"dp_id": 1, "ports": {"lan": ["lan1"], "wan": "wan0",
                                                       "tunnel": "tap0"}}}}
RULE = {"name": "to-b", "ipv4_dst": "10.2.0.0/16", "ip_proto": "udp", "dst_port": 53}
SESSION = {"name": "web", "sources": [{"port": "lan", "direction": "tx"}],
           "destinations": [{"port": "mon1", "vlan": 10}]}


@pytest.fixture
def cluster(tmp_path):
    found = Cluster(tmp_path).create()
    yield found
    found.stop()


def connected(cluster):
    db = Ovsdb(cluster.remotes).start()
    assert db.wait_live(15)
    return db


def until(check, timeout=10):
    deadline = hub.Timeout(timeout)
    try:
        while not check():
            hub.sleep(0.02)
    finally:
        deadline.cancel()


def test_what_the_lock_holder_commits_every_instance_reads_and_others_cannot_write(cluster):
    cfg = config.loads(yaml.safe_dump(CONFIG))
    first = connected(cluster)
    until(lambda: first.has_lock)
    second = connected(cluster)
    master, standby = ClusterStore(first).load(cfg), ClusterStore(second).load(cfg)
    rule = made(cfg, "captures", RULE, FIRST_API_ID)
    session = made(cfg, "mirrors", SESSION, FIRST_API_ID)
    committed(master, "captures", [rule])
    committed(master, "mirrors", [session])

    until(lambda: len(second.rows("Object")) == 2)
    standby.refresh()
    assert standby.get("site", "captures") == [rule]
    assert standby.get("site", "mirrors") == [session]

    with pytest.raises(StoreError, match="not locked"):
        committed(standby, "captures", [])
    assert standby.get("site", "captures") == [rule]
    hub.sleep(0.3)
    assert len(first.rows("Object")) == 2

    renumbered = replace(rule, id=FIRST_API_ID + 5)
    committed(master, "captures", [renumbered])
    until(lambda: {r.ident for r in second.rows("Object") if r.kind == "captures"}
          == {FIRST_API_ID + 5})
    standby.refresh()
    assert standby.get("site", "captures") == [renumbered]


def test_a_row_that_breaks_the_rules_stops_the_load_with_a_precise_error(cluster):
    cfg = config.loads(yaml.safe_dump(CONFIG))
    db = connected(cluster)
    until(lambda: db.has_lock)

    def bad(txn, tables):
        row = txn.insert(tables["Object"])
        row.datapath, row.kind, row.ident, row.name = "site", "captures", 7, "x"
        row.body = '{"name":"x","id":7}'
    db.transact(bad)
    with pytest.raises(StoreError, match=r"datapaths.site.captures\[0\].id: 7 is outside"):
        ClusterStore(db).load(cfg)
