"""sggwctl, the installed command, against the real controller on the two-site bed: every
command, what a person reads (tables) and what a script reads (``--json``), and every kind
of failure as one line with its documented exit status."""
import contextlib
import json
import os
import re
import subprocess
import sys

import pytest

from testbed.controller import ROOT
from testbed.proc import free_port, stop_child, wait_for
from testbed.topology import TwoSites

SGGWCTL = os.path.join(os.path.dirname(sys.executable), "sggwctl")
TOKEN = "sggwctl-e2e-token"
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("SGGW_")}


@pytest.fixture(scope="module")
def bed():
    with TwoSites(token=TOKEN, analyzers=2) as two_sites:
        two_sites.warm_up()
        yield two_sites


def ctl(*args, api=None, token=TOKEN, env=None, stdin=None):
    """Run sggwctl; the API and token go as flags unless None."""
    flags = (["--api", api] if api else []) + (["--token", token] if token else [])
    return subprocess.run([SGGWCTL, *flags, *map(str, args)], capture_output=True, text=True,
                          timeout=60, env=dict(CLEAN_ENV, **(env or {})), input=stdin,
                          cwd="/", check=False)


def ok(bed, *args, **kwargs):
    done = ctl(*args, api=bed.controller.api, **kwargs)
    assert done.returncode == 0 and done.stderr == "", (args, done)
    return done.stdout


def fails(bed, code, *args, api=None, **kwargs):
    """The one stderr line of a failed sggwctl run with exit status ``code``."""
    done = ctl(*args, api=api or bed.controller.api, **kwargs)
    assert done.returncode == code and done.stdout == "", (args, done)
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def rows(text):
    """The rows of the (last) table in ``text`` as dicts, keyed by its header."""
    lines = text.rstrip("\n").splitlines()
    start = max(i for i, line in enumerate(lines) if re.match(r"^[A-Z_]+(  +[A-Z_]+)+$", line))
    header = re.split(r"  +", lines[start])
    return [dict(zip(header, re.split(r"  +", line.strip()))) for line in lines[start + 1:]]


def fields(text):
    """The ``key  value`` lines of a ``show`` (up to its first table) as a dict."""
    out = {}
    for line in text.splitlines():
        if re.match(r"^[A-Z_]+  ", line):
            break
        key, value = re.split(r"  +", line, maxsplit=1)
        out[key] = value
    return out


def api_get(bed, path):
    return bed.controller.call("GET", path, token=TOKEN)


# --- status and switches -------------------------------------------------------------------

def test_status_shows_health_and_every_switch(bed):
    out = ok(bed, "status")
    assert out.splitlines()[0] == "controller %s: ok" % bed.controller.api
    states = {r["SWITCH"]: (r["CONNECTED"], r["STATE"], r["TABLES_BOUNDED"]) for r in rows(out)}
    assert states == {"site-a": ("yes", "programmed", "yes"),
                      "site-b": ("yes", "programmed", "yes")}
    data = json.loads(ok(bed, "status", "--json"))
    assert data["health"] == api_get(bed, "/v1/health")[1]
    assert [s["name"] for s in data["switches"]] == ["site-a", "site-b"]


def test_switches_lists_them_and_one_switch_its_ports_and_roles(bed):
    listed = rows(ok(bed, "switches"))
    assert [(r["SWITCH"], r["DP_ID"], r["STATE"]) for r in listed] == [
        ("site-a", "0xa", "programmed"), ("site-b", "0xb", "programmed")]
    ports = {r["NAME"]: (r["PORT_NO"], r["ROLE"], r["UP"])
             for r in rows(ok(bed, "switches", "site-a"))}
    assert ports[bed["hostA"].outside] == ("1", "lan", "yes")
    assert ports[bed["routerA"].outside] == ("2", "wan", "yes")
    assert ports[bed.prefix + "ta"] == ("3", "tunnel", "yes")
    one = json.loads(ok(bed, "--json", "switches", "0xb"))  # a dp_id works as the name
    assert one["name"] == "site-b" and one["connected"] is True


# --- capture rules -------------------------------------------------------------------------

def test_captures_add_from_flags_show_list_and_del(bed):
    out = ok(bed, "captures", "add", "-s", "site-a", "web", "--in-port", "lan",
             "--ipv4-dst", "10.2.0.0/24", "--proto", "tcp", "--dst-port", "443")
    assert fields(out)["match"] == "in_port=lan ipv4_dst=10.2.0.0/24 ip_proto=tcp dst_port=443"
    status, stored = api_get(bed, "/v1/switches/site-a/captures/web")
    assert status == 200 and stored["source"] == "api"
    assert {k: stored[k] for k in ("in_port", "ipv4_dst", "ip_proto", "dst_port")} == {
        "in_port": ["lan"], "ipv4_dst": "10.2.0.0/24", "ip_proto": 6, "dst_port": 443}

    listed = rows(ok(bed, "captures", "list", "-s", "site-a"))
    assert [(r["NAME"], r["FROM"]) for r in listed] == [
        ("to-remote", "config"), ("to-remote-v6", "config"), ("web", "api")]
    every = json.loads(ok(bed, "captures", "list", "--json"))  # every switch, keyed by name
    assert set(every) == {"site-a", "site-b"}
    assert every["site-a"] == api_get(bed, "/v1/switches/site-a/captures")[1]
    shown = json.loads(ok(bed, "captures", "show", "-s", "site-a", "web", "--json"))
    assert shown["name"] == "web" and shown["counters"] == {"packets": 0, "bytes": 0}

    assert ok(bed, "captures", "del", "-s", "site-a", "web") == \
        "deleted capture rule web on site-a\n"
    assert api_get(bed, "/v1/switches/site-a/captures/web")[0] == 404


def test_captures_add_from_a_yaml_file_with_a_flag_on_top(bed, tmp_path):
    body = tmp_path / "dns.yaml"
    body.write_text("name: dns\nipv4_dst: 10.2.0.53/32\nip_proto: udp\ndst_port: 53\n")
    ok(bed, "captures", "add", "-s", "site-b", "-f", body, "--dst-port", "5353")
    stored = api_get(bed, "/v1/switches/site-b/captures/dns")[1]
    assert (stored["ipv4_dst"], stored["ip_proto"], stored["dst_port"]) == (
        "10.2.0.53/32", 17, 5353)
    ok(bed, "captures", "del", "-s", "site-b", "dns")


# --- mirror sessions -----------------------------------------------------------------------

def test_mirrors_add_from_flags_counts_real_copies_then_del(bed):
    ana1, ana2 = bed["ana1"].outside, bed["ana2"].outside
    ok(bed, "mirrors", "add", "-s", "site-a", "span1", "--source", "lan,both",
       "--source", "tunnel,rx", "--dest", ana1,
       "--dest", ana2 + ",vlan=100,eth_dst=02:00:00:00:00:99",
       "--proto", "icmp", "--snaplen", "128", "--pps", "1000")
    stored = api_get(bed, "/v1/switches/site-a/mirrors/span1")[1]
    assert stored["sources"] == [{"port": "lan", "direction": "both"},
                                 {"port": "tunnel", "direction": "rx"}]
    assert stored["destinations"] == [
        {"port": ana1, "vlan": None, "eth_dst": None},
        {"port": ana2, "vlan": 100, "eth_dst": "02:00:00:00:00:99"}]
    assert (stored["filter"], stored["snaplen"], stored["rate_limit"]) == (
        {"ip_proto": 1}, 128, {"pps": 1000})

    bed.ovs.revalidated()  # a flow OVS had cached is copied once it is re-translated
    bed["hostA"].ping(bed["serverB"].ipv4, count=3)

    def copied():
        out = ok(bed, "mirrors", "show", "-s", "site-a", "span1")
        dests = {r["DESTINATION"]: int(r["PACKETS"]) for r in rows(out)}
        return out if all(n >= 6 for n in dests.values()) else None
    shown = wait_for(copied, 5, interval=0.5, what="copies counted")
    assert fields(shown)["sources"] == "lan(both) tunnel(rx)"
    assert fields(shown)["rate_limit"] == "1000 pps"
    assert fields(shown)["filter"] == "ip_proto=icmp"

    listed = rows(ok(bed, "mirrors", "list", "-s", "site-a"))
    assert [(r["NAME"], r["DESTINATIONS"], r["FILTER"]) for r in listed] == [
        ("span1", "%s %s" % (ana1, ana2), "ip_proto=icmp")]
    ok(bed, "mirrors", "del", "-s", "site-a", "span1")
    assert api_get(bed, "/v1/switches/site-a/mirrors")[1] == []


def test_mirrors_add_from_json_on_stdin(bed):
    body = {"name": "span2", "sources": [{"port": "wan", "direction": "tx"}],
            "destinations": [{"port": bed["ana1"].outside}], "rate_limit": {"kbps": 512}}
    created = json.loads(ok(bed, "--json", "mirrors", "add", "-s", "site-a", "-f", "-",
                            stdin=json.dumps(body)))
    stored = api_get(bed, "/v1/switches/site-a/mirrors/span2")[1]
    assert created == {k: v for k, v in stored.items() if k != "counters"}
    assert created["rate_limit"] == {"kbps": 512} and created["source"] == "api"
    assert ok(bed, "--json", "mirrors", "del", "-s", "site-a", "span2") == ""
    assert api_get(bed, "/v1/switches/site-a/mirrors/span2")[0] == 404


# --- learned reverse paths -----------------------------------------------------------------

def test_paths_list_by_host_and_port_then_flush(bed):
    # UDP: a TCP path ends fin_idle_timeout (5 s) after the FIN, which a slow run outlasts;
    # a new five-tuple's first packet learns its path before it is forwarded
    bed.exchange("udp", bed["serverB"].ipv4, port=5201)
    host_a, server_b = bed["hostA"], bed["serverB"]

    found = rows(ok(bed, "paths", "-s", "site-a", "--host", server_b.ipv4))
    udp = next(r for r in found if r["PROTO"] == "udp")
    assert udp["REPLY_SRC"] == "%s:5201" % server_b.ipv4
    assert udp["REPLY_DST"].startswith(host_a.ipv4 + ":")
    assert (udp["FROM"], udp["OUT"], udp["ETH_DST"]) == ("tunnel", host_a.outside, host_a.mac)

    by_port = json.loads(ok(bed, "paths", "-s", "site-a", "--port", host_a.outside, "--json"))
    assert by_port["paths"] and all(p["to"]["port"] == host_a.outside for p in by_port["paths"])
    assert ok(bed, "paths", "-s", "site-a", "--host", "10.99.0.1").startswith(
        "site-a: 0 of ")
    every = json.loads(ok(bed, "paths", "--json", "--host", server_b.ipv4))
    assert set(every) == {"site-a", "site-b"}

    bed.ovs.revalidated()  # the exchange's packets are counted: no learn() after the flush
    out = ok(bed, "paths", "flush", "-s", "site-a", "--host", server_b.ipv4)
    flushed = int(re.fullmatch(r"site-a: flushed (\d+) learned reverse paths\n", out).group(1))
    assert flushed >= 1
    left = api_get(bed, "/v1/switches/site-a/paths")[1]["paths"]
    assert not [p for p in left if server_b.ipv4 in (p["reply"]["src"], p["reply"]["dst"])]


# --- export and import ---------------------------------------------------------------------

def listed(bed):
    """Every switch's REST-made objects as GET lists them, without counters."""
    return {(switch, kind): [{k: v for k, v in o.items() if k != "counters"}
                             for o in api_get(bed, "/v1/switches/%s/%s" % (switch, kind))[1]
                             if o["source"] == "api"]
            for switch in ("site-a", "site-b") for kind in ("captures", "mirrors")}


def test_export_then_import_puts_the_rest_made_objects_back(bed, tmp_path):
    ok(bed, "captures", "add", "-s", "site-b", "dns", "--ipv4-dst", "10.1.0.53/32",
       "--proto", "udp", "--dst-port", "53")
    ok(bed, "mirrors", "add", "-s", "site-a", "span3", "--source", "lan,rx",
       "--dest", bed["ana1"].outside + ",vlan=7", "--pps", "100")
    before = listed(bed)
    saved = tmp_path / "objects.json"
    assert ok(bed, "export", "-o", saved) == ""
    document = json.loads(saved.read_text())
    assert json.loads(ok(bed, "export")) == document
    assert document["switches"]["site-b"]["captures"] == [
        {"name": "dns", "ipv4_dst": "10.1.0.53/32", "ip_proto": 17, "dst_port": 53}]
    assert [m["name"] for m in document["switches"]["site-a"]["mirrors"]] == ["span3"]
    assert json.loads(ok(bed, "export", "-s", "site-b")) == {
        "sggw_export": 1, "switches": {"site-b": document["switches"]["site-b"]}}

    ok(bed, "captures", "del", "-s", "site-b", "dns")
    ok(bed, "mirrors", "del", "-s", "site-a", "span3")
    assert ok(bed, "import", saved) == ("site-a: mirror session span3: created\n"
                                        "site-b: capture rule dns: created\n")
    assert listed(bed) == before
    assert ok(bed, "import", saved) == ("site-a: mirror session span3: unchanged\n"
                                        "site-b: capture rule dns: unchanged\n")
    document["switches"]["site-b"]["captures"][0]["dst_port"] = 5353
    changed = json.loads(ok(bed, "--json", "import", "-s", "site-b", "-",
                            stdin=json.dumps(document)))
    assert changed == [{"switch": "site-b", "kind": "captures", "name": "dns",
                        "result": "replaced"}]
    assert api_get(bed, "/v1/switches/site-b/captures/dns")[1]["dst_port"] == 5353
    ok(bed, "captures", "del", "-s", "site-b", "dns")
    ok(bed, "mirrors", "del", "-s", "site-a", "span3")


def test_import_does_what_it_can_and_says_what_it_could_not(bed, tmp_path):
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps({"sggw_export": 1, "switches": {
        "site-a": {"captures": [{"name": "to-remote", "ipv4_dst": "10.9.0.0/16"},
                                {"name": "ok-rule", "ipv4_dst": "10.9.0.0/16"},
                                {"name": "bad-port", "in_port": ["nowhere"]}]},
        "site-z": {"mirrors": [{"name": "m", "sources": [{"port": "lan"}],
                                "destinations": [{"port": "ana1"}]}]}}}))
    done = ctl("import", path, api=bed.controller.api)
    assert done.returncode == 1, done
    lines = done.stdout.splitlines()
    assert lines[0] == ("site-a: capture rule to-remote: failed (capture rule 'to-remote' is "
                        "defined in the controller's config file; change it there)")
    assert lines[1] == "site-a: capture rule ok-rule: created"
    assert lines[2].startswith("site-a: capture rule bad-port: failed (400 Bad Request: ")
    assert lines[3].startswith("site-z: mirror session m: failed (404 Not Found: ")
    assert done.stderr == "sggwctl: 3 of 4 objects not imported\n"
    assert api_get(bed, "/v1/switches/site-a/captures/ok-rule")[0] == 200
    ok(bed, "captures", "del", "-s", "site-a", "ok-rule")
    path.write_text('{"switches": {}}')
    assert fails(bed, 2, "import", path) == (
        "sggwctl: %s: top level: expected {\"sggw_export\": 1, \"switches\": {...}} as "
        "sggwctl export writes it" % path)
    assert fails(bed, 2, "import", "-s", "site-q", tmp_path / "objects.json").endswith(
        "cannot read: No such file or directory")


# --- failures: one line each, documented exit statuses ------------------------------------

def test_a_bad_token_is_exit_4(bed):
    assert fails(bed, 4, "status", token="not-the-token") == \
        "sggwctl: 401 Unauthorized: missing or wrong bearer token"
    assert fails(bed, 4, "switches", token=None) == \
        "sggwctl: 401 Unauthorized: missing or wrong bearer token"


def test_an_unreachable_controller_is_exit_3(bed):
    port = free_port()
    assert fails(bed, 3, "status", api="http://127.0.0.1:%d" % port) == (
        "sggwctl: cannot reach the controller at http://127.0.0.1:%d/v1/health: "
        "connection refused" % port)


def test_a_conflict_is_exit_1_with_the_field(bed):
    assert fails(bed, 1, "captures", "del", "-s", "site-a", "to-remote") == (
        "sggwctl: 409 Conflict: capture rule 'to-remote' is defined in %s; change it there "
        "(field: name)" % bed.config_path)
    ok(bed, "mirrors", "add", "-s", "site-a", "dup", "--source", "lan", "--dest",
       bed["ana1"].outside)
    try:
        assert fails(bed, 1, "mirrors", "add", "-s", "site-a", "dup", "--source", "wan",
                     "--dest", bed["ana2"].outside) == \
            "sggwctl: 409 Conflict: mirror session 'dup' already exists on site-a (field: name)"
    finally:
        ok(bed, "mirrors", "del", "-s", "site-a", "dup")


def test_bad_input_is_exit_1_from_the_server_or_2_before_sending(bed):
    line = fails(bed, 1, "mirrors", "add", "-s", "site-a", "bad", "--source", "lan",
                 "--dest", "no-such-port")
    assert line.startswith("sggwctl: 400 Bad Request: ") and \
        line.endswith("(field: destinations[0].port)")
    assert fails(bed, 1, "mirrors", "show", "-s", "site-a", "nothing") == \
        "sggwctl: 404 Not Found: no mirror session 'nothing' on site-a (field: name)"
    assert fails(bed, 2, "mirrors", "add", "-s", "site-a", "bad", "--source", "lan",
                 "--dest", "ana1,colour=red") == \
        "sggwctl: --dest ana1,colour=red: 'colour=red' is not vlan=N or eth_dst=MAC"
    assert fails(bed, 2, "captures", "add", "web", "--ipv4-dst", "10.2.0.0/16").startswith(
        "sggwctl: the controller has several switches (site-a, site-b): choose one")
    assert fails(bed, 2, "mirrors", "frob").startswith("sggwctl: sggwctl mirrors: argument")
    assert api_get(bed, "/v1/switches/site-a/mirrors")[1] == []


# --- where the API and token come from; redirects -----------------------------------------

def test_api_and_token_from_the_environment_or_the_controllers_config(bed):
    env = {"SGGW_API": bed.controller.api, "SGGW_TOKEN": TOKEN}
    assert ctl("status", token=None, env=env).returncode == 0
    done = ctl("--config", bed.config_path, "status", token=None)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("controller %s: ok" % bed.controller.api)
    done = ctl("status", token=None, env={"SGGW_CONFIG": bed.config_path})
    assert done.returncode == 0, done.stderr


@contextlib.contextmanager
def redirector(bed, code):
    """The API of a stand-in standby controller that redirects everything with ``code``."""
    proc = subprocess.Popen([sys.executable, "-m", "testbed.redirector", bed.controller.api,
                             str(code)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        yield "http://127.0.0.1:%d" % int(proc.stdout.readline())
    finally:
        stop_child(proc)
        proc.stdout.close()


def test_a_write_follows_a_307_and_a_302_is_not_followed_for_a_write(bed):
    with redirector(bed, 307) as api:
        done = ctl("captures", "add", "-s", "site-a", "moved", "--ipv4-dst", "10.2.7.0/24",
                   api=api)
    assert done.returncode == 0, done.stderr
    assert api_get(bed, "/v1/switches/site-a/captures/moved")[1]["ipv4_dst"] == "10.2.7.0/24"
    with redirector(bed, 302) as api:
        assert ctl("status", api=api).returncode == 0  # a read follows any redirect
        line = fails(bed, 1, "captures", "del", "-s", "site-a", "moved", api=api)
    assert line == (
        "sggwctl: 302 Found: the controller redirected a DELETE to %s/v1/switches/site-a/"
        "captures/moved; only 307 and 308 keep a write's method" % bed.controller.api)
    assert api_get(bed, "/v1/switches/site-a/captures/moved")[0] == 200
    ok(bed, "captures", "del", "-s", "site-a", "moved")


def test_status_is_exit_5_while_a_switch_is_away(bed):  # the module's last: site-b goes
    bed.ovs.vsctl("del-controller", bed.bridge("b"))

    def degraded():
        done = ctl("status", api=bed.controller.api)
        return done if done.returncode == 5 else None
    done = wait_for(degraded, 10, interval=0.5, what="status: degraded")
    assert done.stderr == ""
    assert done.stdout.splitlines()[0] == "controller %s: degraded" % bed.controller.api
    assert {r["SWITCH"]: (r["CONNECTED"], r["STATE"]) for r in rows(done.stdout)} == {
        "site-a": ("yes", "programmed"), "site-b": ("no", "-")}
