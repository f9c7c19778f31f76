"""Configure a bridge's tables in OVSDB: names for all, size bounds for the learned ones.

OpenFlow 1.3 cannot limit a table's size; OVS keeps that in the bridge's Flow_Table rows
(``flow_limit`` with ``overflow_policy=evict``: when a learn() would exceed the limit, the
flow closest to expiry goes). sggw sets them with ``ovs-vsctl``, the tool operators know.
"""
import subprocess

from flows import tables

TIMEOUT = 10


class OvsdbError(Exception):
    pass


def _vsctl(db, *args):
    try:
        done = subprocess.run(["ovs-vsctl", "--db=" + db, "--timeout=%d" % TIMEOUT, *args],
                              capture_output=True, text=True, timeout=TIMEOUT + 2, check=False)
    except FileNotFoundError:
        raise OvsdbError("ovs-vsctl is not installed") from None
    except subprocess.TimeoutExpired:
        raise OvsdbError("ovs-vsctl --db=%s did not answer" % db) from None
    if done.returncode != 0:
        raise OvsdbError("ovs-vsctl --db=%s: %s" % (db, done.stderr.strip() or done.returncode))
    return done.stdout.strip()


def bridge_name(db, dp_id):
    name = _vsctl(db, "--bare", "--columns=name", "find", "Bridge",
                  "datapath_id=%016x" % dp_id)
    if not name:
        raise OvsdbError("no bridge with datapath_id %016x in %s" % (dp_id, db))
    return name.split()[0]


def configure_tables(db, dp_id, learned_limit):
    """Name every pipeline table; bound each learned table to ``learned_limit`` flows."""
    bridge = bridge_name(db, dp_id)
    args = []
    for table in tables.PIPELINE:
        row = ["--id=@t%d" % table.id, "create", "Flow_Table", "name=" + table.name]
        if table.learned:
            row += ["flow_limit=%d" % learned_limit, "overflow_policy=evict"]
        args += row + ["--"]
    args += ["set", "Bridge", bridge] + [
        "flow_tables:%d=@t%d" % (table.id, table.id) for table in tables.PIPELINE]
    _vsctl(db, *args)
    return bridge
