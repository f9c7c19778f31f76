"""sggwctl's own logic, without a controller: the request bodies its flags and files make,
and where it finds the API and the token. (Every command against the real controller:
tests/e2e/test_sggwctl.py.)"""
import pytest

from sggwctl import backup, bodies, cli, settings
from sggwctl.errors import USAGE, CtlError


def body(*argv):
    args = cli.parser().parse_args(list(argv))
    return cli.KINDS[args.kind][3](args)


def usage_error(*argv):
    with pytest.raises(CtlError) as err:
        body(*argv)
    assert err.value.code == USAGE
    return err.value.line


def test_mirror_flags_make_the_body_the_api_takes():
    assert body("mirrors", "add", "-s", "site-a", "m1", "--source", "lan", "--source", "5,rx",
                "--dest", "ana1,vlan=7,eth_dst=02:00:00:00:00:99", "--dest", "12",
                "--proto", "tcp", "--dst-port", "443", "--snaplen", "96", "--kbps", "100") == {
        "name": "m1",
        "sources": [{"port": "lan"}, {"port": 5, "direction": "rx"}],
        "destinations": [{"port": "ana1", "vlan": 7, "eth_dst": "02:00:00:00:00:99"},
                         {"port": 12}],
        "filter": {"ip_proto": "tcp", "dst_port": 443}, "snaplen": 96,
        "rate_limit": {"kbps": 100}}


def test_capture_flags_make_the_body_the_api_takes():
    assert body("captures", "add", "web", "--in-port", "lan", "--in-port", "7", "--vlan", "10",
                "--ipv6-dst", "fd00:2::/48", "--proto", "17", "--src-port", "53") == {
        "name": "web", "in_port": ["lan", 7], "vlan": 10, "ipv6_dst": "fd00:2::/48",
        "ip_proto": 17, "src_port": 53}


def test_a_file_gives_the_rest_and_flags_win_over_its_keys(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("name: from-file\nsources: [{port: wan}]\ndestinations: [{port: ana1}]\n"
                    "filter: {vlan: 5}\nrate_limit: {pps: 10}\n")
    assert body("mirrors", "add", "renamed", "-f", str(path), "--proto", "udp", "--pps",
                "20") == {
        "name": "renamed", "sources": [{"port": "wan"}], "destinations": [{"port": "ana1"}],
        "filter": {"vlan": 5, "ip_proto": "udp"}, "rate_limit": {"pps": 20}}
    json_file = tmp_path / "c.json"
    json_file.write_text('{"name": "c", "ipv4_dst": "10.2.0.0/16"}')
    assert body("captures", "add", "-f", str(json_file)) == {"name": "c",
                                                             "ipv4_dst": "10.2.0.0/16"}


def test_bad_flags_and_files_are_one_line_usage_errors(tmp_path):
    assert usage_error("mirrors", "add", "m", "--source", "lan,rx,tx") == \
        "--source lan,rx,tx: expected PORT or PORT,DIRECTION (rx, tx, both)"
    assert usage_error("mirrors", "add", "m", "--dest", "ana1,vlan=x") == \
        "--dest ana1,vlan=x: 'vlan=x' is not vlan=N or eth_dst=MAC"
    assert usage_error("captures", "add", "--ipv4-dst", "10.2.0.0/16") == \
        "give a NAME (or a name: in the --file)"
    assert usage_error("mirrors", "add", "m", "--pps", "1", "--kbps", "2") == \
        "sggwctl mirrors add: argument --kbps: not allowed with argument --pps " \
        "(see sggwctl mirrors add --help)"
    listed = tmp_path / "list.yaml"
    listed.write_text("- name: a\n")
    assert usage_error("captures", "add", "-f", str(listed)) == \
        "%s: expected one object (a mapping), got a list" % listed
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": ')
    assert usage_error("captures", "add", "-f", str(broken)).startswith(
        "%s: not JSON or YAML: " % broken)
    assert usage_error("captures", "add", "-f", str(tmp_path / "none")) == \
        "%s: cannot read: No such file or directory" % (tmp_path / "none")


def test_port_numbers_go_as_integers_and_names_as_text():
    assert [bodies.port(p) for p in ("3", "tap0", "lan")] == [3, "tap0", "lan"]


# --- where the API and token come from -------------------------------------------------------

def controller_config(tmp_path, api):
    path = tmp_path / "sggw.yaml"
    path.write_text("api: %s\ndatapaths:\n  a: {dp_id: 1, ports: {lan: [1], wan: 2}}\n" % api)
    return str(path)


def test_flags_then_environment_then_the_controllers_config(tmp_path):
    cfg = controller_config(tmp_path, "{host: 0.0.0.0, port: 9999, token: file-token}")
    assert settings.resolve(config_path=cfg, environ={}) == (
        "http://127.0.0.1:9999", "file-token")
    assert settings.resolve(environ={"SGGW_CONFIG": cfg}) == (
        "http://127.0.0.1:9999", "file-token")
    env = {"SGGW_API": "10.0.0.1:8080", "SGGW_TOKEN": "env-token", "SGGW_CONFIG": cfg}
    assert settings.resolve(environ=env) == ("http://10.0.0.1:8080", "env-token")
    assert settings.resolve(api="https://ctl:1", token="flag-token", environ=env) == (
        "https://ctl:1", "flag-token")
    assert settings.resolve(api="http://ctl:1", environ={"SGGW_CONFIG": cfg}) == (
        "http://ctl:1", "file-token")  # each value from the first place that has it


def test_a_wildcard_or_ipv6_listener_is_reached_on_loopback(tmp_path):
    cfg = controller_config(tmp_path, "{host: '::', port: 8081}")
    assert settings.resolve(config_path=cfg, environ={}) == ("http://[::1]:8081", None)
    cfg = controller_config(tmp_path, "{host: 'fd00::5'}")
    assert settings.resolve(config_path=cfg, environ={}) == ("http://[fd00::5]:8080", None)


def test_without_any_the_default_and_a_named_config_must_be_readable(tmp_path, monkeypatch):
    monkeypatch.setattr(settings, "DEFAULT_CONFIG", str(tmp_path / "absent.yaml"))
    assert settings.resolve(environ={}) == ("http://127.0.0.1:8080", None)
    with pytest.raises(CtlError) as err:
        settings.resolve(config_path=str(tmp_path / "absent.yaml"), environ={})
    assert (err.value.code, err.value.line) == (
        USAGE, "cannot read the API's address from the controller's config: %s: cannot "
               "read: No such file or directory" % (tmp_path / "absent.yaml"))


def test_a_bad_api_url_is_a_usage_error_before_anything_is_sent(capsys):
    assert cli.main(["--api", "http://ctl:port", "--token", "t", "status"]) == USAGE
    assert capsys.readouterr().err == \
        "sggwctl: bad API URL http://ctl:port: expected http://HOST:PORT\n"


# --- export and import ---------------------------------------------------------------------

LISTED = {"site-a": {
    "captures": [{"name": "to-b", "ipv4_dst": "10.2.0.0/16", "source": "config",
                  "counters": {"packets": 1, "bytes": 60}},
                 {"name": "web", "ipv4_dst": "10.2.0.0/24", "ip_proto": 6, "dst_port": 443,
                  "source": "api", "counters": {"packets": 0, "bytes": 0}}],
    "mirrors": [{"name": "span", "sources": [{"port": "lan", "direction": "both"}],
                 "filter": None, "destinations": [{"port": "ana1", "vlan": None,
                                                   "eth_dst": None}],
                 "snaplen": None, "rate_limit": {"pps": 10}, "source": "api"}]}}


def test_export_keeps_the_rest_made_objects_as_the_api_takes_them():
    assert backup.exported(LISTED) == {"sggw_export": 1, "switches": {"site-a": {
        "captures": [{"name": "web", "ipv4_dst": "10.2.0.0/24", "ip_proto": 6,
                      "dst_port": 443}],
        "mirrors": [{"name": "span", "sources": [{"port": "lan", "direction": "both"}],
                     "destinations": [{"port": "ana1"}], "rate_limit": {"pps": 10}}]}}}


def test_import_creates_what_is_missing_replaces_what_differs_and_leaves_the_rest():
    existing = LISTED["site-a"]["captures"]
    wanted = [{"name": "web", "ipv4_dst": "10.2.0.0/24", "ip_proto": 6, "dst_port": 443},
              {"name": "dns", "ipv4_dst": "10.2.0.53/32"},
              {"name": "to-b", "ipv4_dst": "10.3.0.0/16"}]
    assert [a for a, _ in backup.plan(existing, wanted)] == [
        backup.UNCHANGED, backup.CREATE, backup.IN_CONFIG]
    changed = [dict(wanted[0], dst_port=8443)]
    assert backup.plan(existing, changed) == [(backup.REPLACE, changed[0])]
    exported = backup.exported(LISTED)["switches"]["site-a"]["mirrors"]
    assert [a for a, _ in backup.plan(LISTED["site-a"]["mirrors"], exported)] == [
        backup.UNCHANGED]


@pytest.mark.parametrize("document, said", [
    ([], "top level: expected {\"sggw_export\": 1, \"switches\": {...}}"),
    ({"sggw_export": 2, "switches": {}}, "sggw_export: expected 1, got 2"),
    ({"sggw_export": True, "switches": {}}, "sggw_export: expected 1, got True"),
    ({"sggw_export": 1, "switches": []}, "switches: expected a mapping of switch names"),
    ({"sggw_export": 1, "switches": {"s": {"paths": []}}},
     "switches.s: expected a mapping with captures and/or mirrors"),
    ({"sggw_export": 1, "switches": {"s": {"captures": {}}}}, "switches.s.captures: "
                                                             "expected a list"),
    ({"sggw_export": 1, "switches": {"s": {"mirrors": [{"sources": []}]}}},
     "switches.s.mirrors[0]: expected an object with a name"),
    ({"sggw_export": 1, "switches": {"s": {"captures": [{"name": "a"}, {"name": "a"}]}}},
     "switches.s.captures[1]: capture rule 'a' is in the file twice"),
])
def test_a_file_import_cannot_take_is_a_one_line_usage_error(document, said):
    with pytest.raises(CtlError) as err:
        backup.checked(document, "objects.json")
    assert err.value.code == USAGE and err.value.line.startswith("objects.json: " + said)


def test_import_says_what_became_of_each_object():
    assert backup.describe({"switch": "site-a", "kind": "mirrors", "name": "span",
                            "result": "created"}) == "site-a: mirror session span: created"
    assert backup.describe(backup.failed("site-b", "captures", {"name": "x"}, "409 Conflict")) \
        == "site-b: capture rule x: failed (409 Conflict)"
