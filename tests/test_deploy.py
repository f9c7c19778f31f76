"""The deployment files: docker-compose.yml (checked with Debian's docker-compose, since no
Docker engine runs here) and the example config."""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from app import config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def compose():
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose is not installed (scripts/setup-env installs it)")
    done = subprocess.run(["docker-compose", "-f", os.path.join(ROOT, "docker-compose.yml"),
                           "config"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def test_compose_has_an_ovs_and_a_controller_service_and_prometheus_on_request(compose):
    assert set(compose["services"]) == {"ovs", "controller", "prometheus"}
    for name, service in compose["services"].items():
        assert service["build"]["target"] == name
    assert "profiles" not in compose["services"]["controller"]
    assert compose["services"]["prometheus"]["profiles"] == ["monitoring"]  # only if asked


def test_controller_finds_its_config_and_the_switch_database(compose):
    ctl, ovs = compose["services"]["controller"], compose["services"]["ovs"]
    mounts = {v.split(":")[1]: v for v in ctl["volumes"]}
    assert ctl["environment"]["SGGW_CONFIG"] in mounts
    assert mounts[ctl["environment"]["SGGW_CONFIG"]].endswith(":ro")
    shared = {v.split(":")[0] for v in ctl["volumes"]} & {v.split(":")[0] for v in ovs["volumes"]}
    assert "ovs-run" in shared  # ovs-vsctl in the controller reaches db.sock


def test_the_switch_database_and_sggws_store_are_in_volumes(compose):
    # bridges, ports and controller settings (conf.db, where docker/ovs-start keeps it) and
    # the REST-made objects (the default state_file) survive recreated containers
    with open(os.path.join(ROOT, "docker", "ovs-start")) as handle:
        db_dir = re.search(r"^DB=(\S+)/conf\.db$", handle.read(), re.M).group(1)
    named = {service: {v.split(":")[1]: v.split(":")[0] for v in spec["volumes"]}
             for service, spec in compose["services"].items()}
    assert named["ovs"][db_dir] == "ovs-db"
    assert named["controller"][os.path.dirname(config.DEFAULT_STATE_FILE)] == "sggw-state"
    assert set(compose["volumes"]) >= {"ovs-db", "sggw-state"}


def test_listeners_stay_on_the_hosts_loopback(compose):
    # host networking: the app's 127.0.0.1 defaults are the host's loopback, nothing published
    for service in compose["services"].values():
        assert service["network_mode"] == "host"
        assert "ports" not in service


def test_example_config_is_valid():
    cfg = config.load(os.path.join(ROOT, "sggw.example.yaml"))
    assert cfg.api.host == "127.0.0.1" and cfg.openflow.host == "127.0.0.1"
    assert list(cfg.datapaths) == ["site-a"]


# --- systemd -----------------------------------------------------------------------------

SERVICE = os.path.join(ROOT, "deploy", "sggw.service")
INSTALLED_SGGW = "/opt/sggw/bin/sggw"  # where deploy/sggw.service's install lines put it


def unit(path=SERVICE):
    """{section: {key: [values]}} of a systemd unit file."""
    out, section = {}, None
    with open(path) as handle:
        for line in handle:
            line = line.strip()
            if line.startswith("[") and line.endswith("]"):
                section = out.setdefault(line[1:-1], {})
            elif line and not line.startswith("#"):
                key, value = line.split("=", 1)
                section.setdefault(key, []).append(value)
    return out


def test_systemd_accepts_the_unit_without_a_warning(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is not installed (scripts/setup-env installs systemd)")
    # verify insists that ExecStart's program exists: the development venv's sggw stands in
    sggw = os.path.join(os.path.dirname(sys.executable), "sggw")
    with open(SERVICE) as handle:
        text = handle.read()
    assert text.count("ExecStart=" + INSTALLED_SGGW) == 1
    copy = tmp_path / "sggw.service"
    copy.write_text(text.replace("ExecStart=" + INSTALLED_SGGW, "ExecStart=" + sggw))
    done = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True,
                          text=True, check=False)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_the_unit_runs_after_open_vswitch_with_the_config_and_state_where_sggw_looks():
    sections = unit()
    service = sections["Service"]
    assert "openvswitch-switch.service" in sections["Unit"]["Requires"][0].split()
    assert "openvswitch-switch.service" in sections["Unit"]["After"][0].split()
    assert service["ExecStart"] == [INSTALLED_SGGW + " --config /etc/sggw/sggw.yaml"]
    assert service["ConfigurationDirectory"] == ["sggw"]  # /etc/sggw
    # StateDirectory=sggw is /var/lib/sggw: where the store lives unless the config says
    assert service["StateDirectory"] == ["sggw"]
    assert os.path.dirname(config.DEFAULT_STATE_FILE) == "/var/lib/sggw"
    assert service["KillSignal"] == ["SIGTERM"]  # sggw exits 0 on it (tests/e2e/test_install.py)
    assert service["RestartPreventExitStatus"] == ["2"]  # a bad config: one line, no retry loop


@pytest.fixture(scope="module")
def cluster_compose():
    done = subprocess.run(["docker-compose", "-f", os.path.join(ROOT, "docker-compose.yml"),
                           "-f", os.path.join(ROOT, "docker-compose.cluster.yml"), "config"],
                          capture_output=True, text=True, check=False,
                          env=dict(os.environ, STORE_ADDRESS="10.0.0.1"))
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def test_the_cluster_example_adds_a_store_member_with_its_log_in_a_volume(cluster_compose):
    store = cluster_compose["services"]["store"]
    assert store["command"] == ["store-start"] and store["network_mode"] == "host"
    assert store["environment"]["STORE_ADDRESS"] == "10.0.0.1"
    mounts = {v.split(":")[1]: v.split(":")[0] for v in store["volumes"]}
    assert mounts["/var/lib/sggw-store"] == "sggw-store"
    assert os.access(mounts["/usr/local/bin/store-start"], os.X_OK)
    assert set(cluster_compose["services"]["controller"]["depends_on"]) == {"ovs", "store"}


def test_the_cluster_example_needs_this_hosts_address():
    done = subprocess.run(["docker-compose", "-f", os.path.join(ROOT, "docker-compose.yml"),
                           "-f", os.path.join(ROOT, "docker-compose.cluster.yml"), "config"],
                          capture_output=True, text=True, check=False,
                          env={k: v for k, v in os.environ.items() if k != "STORE_ADDRESS"})
    assert done.returncode != 0 and "STORE_ADDRESS" in done.stderr


def test_cluster_example_config_is_valid():
    cfg = config.load(os.path.join(ROOT, "sggw.cluster.example.yaml"))
    assert cfg.cluster.name == "sggw-1" and len(cfg.cluster.store.split(",")) == 3
    assert cfg.cluster.api_url == "http://%s:%d" % (cfg.api.host, cfg.api.port)


def test_the_controller_image_copies_every_package_setup_cfg_installs():
    """`pip install .` in the image fails on a package the Dockerfile did not copy."""
    with open(os.path.join(ROOT, "setup.cfg")) as handle:
        packages = re.search(r"^packages\s*=\s*(.+)$", handle.read(), re.M).group(1)
    with open(os.path.join(ROOT, "Dockerfile")) as handle:
        copied = set(re.findall(r"^COPY (\w+)/ \1/$", handle.read(), re.M))
    assert {p.strip() for p in packages.split(",")} <= copied, copied


# --- Prometheus and Grafana -------------------------------------------------------------------

def test_prometheus_accepts_the_scrape_config_which_scrapes_sggws_default_rest_port():
    path = os.path.join(ROOT, "deploy", "prometheus.yml")
    done = subprocess.run(["promtool", "check", "config", path], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    with open(path) as handle:
        job, = yaml.safe_load(handle)["scrape_configs"]
    default = config.load(os.path.join(ROOT, "sggw.example.yaml")).api
    assert job["static_configs"] == [{"targets": ["%s:%d" % (default.host, default.port)]}]
    assert job["metrics_path"] == "/metrics"


def test_the_prometheus_image_runs_the_shipped_scrape_config():
    with open(os.path.join(ROOT, "Dockerfile")) as handle:
        stage = handle.read().split("AS prometheus", 1)[1]
    assert "COPY deploy/prometheus.yml /etc/prometheus/prometheus.yml" in stage
    assert "--config.file=/etc/prometheus/prometheus.yml" in stage


def test_the_dashboard_asks_only_for_what_sggw_serves():
    """Every query names sggw's metrics (or the scrape's up); the e2e test runs them all."""
    with open(os.path.join(ROOT, "deploy", "grafana-dashboard.json")) as handle:
        dashboard = json.load(handle)
    with open(os.path.join(ROOT, "app", "api", "metrics.py")) as handle:
        served = set(re.findall(r'_Family\("(sggw_\w+)"', handle.read()))
    asked = {name for panel in dashboard["panels"] for target in panel["targets"]
             for name in re.findall(r"\b(sggw_\w+|up)\b", target["expr"])}
    assert asked - {"up"} == served
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
