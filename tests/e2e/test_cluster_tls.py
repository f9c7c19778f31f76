"""The cluster's store over TLS: a real 3-member clustered ovsdb-server whose members talk
raft and serve clients only over TLS (``pssl:``), each with its own certificate, and sggw
reaching them through ``ssl:`` members with ``cluster.store_tls``. Certificates are made
with openssl for the test: one CA for the members and sggw, and a second CA that nobody
trusts. Checked as a user sees it: health, the REST API, ``dump-flows``, the log, and
the store read back with ``ovsdb-client`` over TLS.
"""
import os

import pytest
import yaml

from testbed.certs import make_certs
from testbed.controller import Controller
from testbed.proc import free_port, run, wait_for
from tests.e2e.test_cluster import RULE, ClusterBed
from testbed.ovsdb_cluster import DB_NAME, Cluster


@pytest.fixture(scope="module")
def tls_cbed(tmp_path_factory):
    certs = make_certs(str(tmp_path_factory.mktemp("ca")), ("s0", "s1", "s2", "sggw"))
    rogue = make_certs(str(tmp_path_factory.mktemp("rogue-ca")), ("sggw",))
    members = [(certs["s%d.key" % i], certs["s%d.pem" % i]) for i in range(3)]
    store = Cluster(tmp_path_factory.mktemp("store"), tls=(certs["ca.pem"], members)).create()
    tls = {"private_key": certs["sggw.key"], "certificate": certs["sggw.pem"],
           "ca_cert": certs["ca.pem"]}
    try:
        with ClusterBed(store, str(tmp_path_factory.mktemp("bed")), store_tls=tls) as bed:
            bed.warm_up()
            bed.certs, bed.rogue = certs, rogue
            yield bed
    finally:
        store.stop()


def stored_capture_names(bed):
    """The names of the captures in the store, read with ovsdb-client over TLS."""
    out = run("ovsdb-client", "--private-key=" + bed.certs["sggw.key"],
              "--certificate=" + bed.certs["sggw.pem"], "--ca-cert=" + bed.certs["ca.pem"],
              "--format=csv", "--data=bare", "--no-headings", "dump", bed.store.remotes,
              DB_NAME, "Object", "kind", "name")
    return {line.split(",")[1] for line in out.splitlines() if line.startswith("captures,")}


def test_sggw_reaches_its_store_over_tls_becomes_master_and_what_it_makes_persists(tls_cbed):
    bed = tls_cbed
    for i in range(3):  # raft among the members runs over TLS too
        assert "Address: ssl:127.0.0.1:%d" % bed.store.raft[i] in bed.store.status(i)
    health = bed.controller.health()
    cluster = health["cluster"]
    assert cluster["role"] == "master" and cluster["generation"] >= 1, cluster
    assert cluster["store_connected"] and cluster["store_error"] is None, cluster
    assert all(m.startswith("ssl:127.0.0.1:") for m in cluster["store"]) and len(
        cluster["store"]) == 3
    assert {s["state"] for s in health["switches"].values()} == {"programmed"}

    status, body = bed.controller.call("POST", "/v1/switches/site-a/captures", RULE)
    assert status == 201, body
    assert any("nw_dst=10.99.0.0/16" in f.line for f in bed.flows("a"))
    wait_for(lambda: RULE["name"] in stored_capture_names(bed), 5,
             what="the capture in the store")
    bed["hostA"].ping(bed["serverB"].ipv4, count=2)


def start_instance(bed, name, **tls):
    """A second instance, ``name``, with the store files changed by ``tls``: its log."""
    cfg = bed.instance_config("two")
    cfg["openflow"], cfg["api"] = {"port": free_port()}, {"port": free_port()}
    cfg["cluster"].update(name=name, api_url="http://127.0.0.1:%d" % cfg["api"]["port"])
    cfg["cluster"]["store_tls"].update(tls)
    path = os.path.join(bed.workdir, name + ".yaml")
    with open(path, "w") as handle:
        yaml.safe_dump(cfg, handle, sort_keys=False)
    instance = Controller(path, cfg["api"]["port"], os.path.join(bed.workdir, name + ".log"))
    bed._undo.callback(instance.stop)
    return instance.start()


def test_a_certificate_the_store_does_not_trust_is_refused_and_said_precisely(tls_cbed):
    bed = tls_cbed
    before = bed.controller.health()["cluster"]
    untrusted = start_instance(bed, "untrusted", private_key=bed.rogue["sggw.key"],
                               certificate=bed.rogue["sggw.pem"])
    distrustful = start_instance(bed, "distrustful", ca_cert=bed.rogue["ca.pem"])
    refused = ["%s: it refuses this instance's certificate (cluster.store_tls.certificate): "
               "tlsv1 alert unknown ca" % m for m in bed.store.remotes.split(",")]
    unverified = ["%s: its certificate does not verify with cluster.store_tls.ca_cert: "
                  % m for m in bed.store.remotes.split(",")]
    try:
        wait_for(lambda: all(line in untrusted.log() for line in refused), 20,
                 what="the refused certificate in the log")
        wait_for(lambda: all(line in distrustful.log() for line in unverified), 20,
                 what="the unverified members in the log")
        for instance in (untrusted, distrustful):
            assert instance.running() and instance.health() is None
            assert "Traceback" not in instance.log()
    finally:
        untrusted.stop()
        distrustful.stop()
    after = bed.controller.health()["cluster"]
    assert (after["role"], after["generation"]) == ("master", before["generation"])


def test_a_store_that_does_not_answer_is_said_in_health(tls_cbed):
    bed = tls_cbed
    for i in range(3):
        bed.store.kill(i)
    try:
        def said():
            cluster = (bed.controller.health() or {}).get("cluster", {})
            return cluster.get("role") == "standby" and all(
                "%s: cannot connect: Connection refused" % m in (cluster["store_error"] or "")
                for m in cluster["store"]) and cluster
        cluster = wait_for(said, 15, what="the store's outage in health")
        assert not cluster["store_connected"]
    finally:
        for i in range(3):
            bed.store.start(i)
    wait_for(lambda: bed.controller.health()["cluster"]["role"] == "master", 30,
             what="master again")
    bed.controller.wait_programmed()
    assert bed.controller.health()["cluster"]["store_error"] is None
    status, body = bed.controller.call("POST", "/v1/switches/site-a/captures",
                                       dict(RULE, name="after-outage", ipv4_dst="10.98.0.0/16"))
    assert status == 201, body
    wait_for(lambda: "after-outage" in stored_capture_names(bed), 5,
             what="the capture in the store")
