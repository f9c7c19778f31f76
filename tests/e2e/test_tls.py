"""OpenFlow over TLS: the bridges connect to ``ssl:`` targets with their own certificates,
the controller (Ryu's --ctl-privkey, --ctl-cert, --ca-certs) requires them, and programs
and changes the switches as over TCP. Certificates are made with openssl for the test."""
import os

import pytest

from testbed.certs import make_certs
from testbed.controller import Controller
from testbed.proc import wait_for
from testbed.topology import TwoSites


@pytest.fixture(scope="module")
def tls_bed(tmp_path_factory):
    with TwoSites(reverse_path={"max_flows": 1000}) as bed:
        bed.warm_up()
        certs = make_certs(str(tmp_path_factory.mktemp("certs")))
        bed.controller.stop()
        bed.ovs.vsctl("set-ssl", certs["switch.key"], certs["switch.pem"], certs["ca.pem"])
        for site in "ab":
            bed.ovs.vsctl("set-controller", bed.bridge(site), "ssl:127.0.0.1:%d" % bed.of_port)
        bed.controller = Controller(
            bed.config_path, bed.api_port, os.path.join(bed.workdir, "controller-tls.log"),
            extra_args=["--ctl-privkey", certs["controller.key"], "--ctl-cert",
                        certs["controller.pem"], "--ca-certs", certs["ca.pem"]]).start()
        yield bed


def test_switches_are_programmed_and_changed_over_tls(tls_bed):
    bed = tls_bed
    health = bed.controller.wait_programmed()
    assert all(s["answering"] for s in health["switches"].values())

    def both_connected():  # as OVS reports it (it updates the column every few seconds)
        status = bed.ovs.vsctl("--columns=target,is_connected", "--format=csv", "--data=bare",
                               "--no-headings", "list", "controller").splitlines()
        return status == ["ssl:127.0.0.1:%d,true" % bed.of_port] * 2
    wait_for(both_connected, 15, what="both bridges connected over TLS")
    assert "(TLS)" in bed.controller.log()
    status, body = bed.controller.call("POST", "/v1/switches/site-a/captures",
                                       {"name": "over-tls", "ipv4_dst": "10.96.0.0/16"})
    assert status == 201, body
    assert any("nw_dst=10.96.0.0/16" in f.line for f in bed.flows("a"))
    bed["hostA"].ping(bed["serverB"].ipv4, count=3)
