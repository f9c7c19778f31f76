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


@pytest.fixture(scope="module", autouse=True)
def _green():
    """Patch the process as ryu-manager does, so the IDL's poller yields to other threads:
    when these tests run, not when the module is imported (collection imports every module,
    and the end-to-end tests' threads and subprocesses must not run on eventlet)."""
    hub.patch(thread=False)


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


def test_fresh_answers_while_the_store_answers_and_not_while_it_is_away(cluster):
    db = connected(cluster)
    assert db.fresh(5)
    cluster.stop()
    assert not db.fresh(1)


def test_a_store_deleted_and_made_anew_is_taken_up(cluster):
    """Its raft log starts again at 1: the IDL must not take every member of the new
    store for one with stale data (it kept the old store's index)."""
    cfg = config.loads(yaml.safe_dump(CONFIG))
    db = connected(cluster)
    until(lambda: db.has_lock)
    store = ClusterStore(db).load(cfg)
    for i in range(20):  # the old store's log well ahead of the new one's
        committed(store, "captures", [made(cfg, "captures", dict(RULE, dst_port=i + 1),
                                           FIRST_API_ID)])
    cluster.stop()
    cluster.remove()
    cluster.create()
    until(lambda: db.live and db.has_lock and not db.rows("Object"), timeout=20)
    assert db.fresh(5)
    store.refresh()
    assert store.get("site", "captures") == []
