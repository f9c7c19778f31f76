"""``pip install .`` into a fresh virtualenv, the way the README installs sggw on an endpoint
(with the project's Ryu recipe: scripts/constraints.txt as PIP_CONSTRAINT and
PIP_BUILD_CONSTRAINT). The installed ``sggw`` then runs the controller from outside the
checkout — no .pth hook, no checkout on its path — and programs the two-site bed.

The dependencies come from the wheelhouse scripts/setup-env builds (.venv/wheelhouse, Ryu's
wheel included), so the test needs no network and takes about 30 s: 10 s for the venv, 15 s
for the install (sggw's own wheel is built from the checkout), then one bed.
"""
import functools
import os
import signal
import subprocess
import sys
import time

import pytest

from testbed.controller import ROOT, Controller
from testbed.proc import free_port
from testbed.topology import TwoSites

CONSTRAINTS = os.path.join(ROOT, "scripts", "constraints.txt")
WHEELHOUSE = os.path.join(ROOT, ".venv", "wheelhouse")


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    if not os.path.exists(os.path.join(WHEELHOUSE, ".sggw-deps")):
        pytest.fail("%s is missing: run scripts/setup-env where the package index is "
                    "reachable" % WHEELHOUSE)
    path = str(tmp_path_factory.mktemp("fresh") / "venv")
    subprocess.run([sys.executable, "-m", "venv", path], check=True, timeout=120)
    env = dict(os.environ, PIP_CONSTRAINT=CONSTRAINTS, PIP_BUILD_CONSTRAINT=CONSTRAINTS)
    done = subprocess.run([os.path.join(path, "bin", "pip"), "install", "-q",
                           "--disable-pip-version-check", "--no-index", "--find-links",
                           WHEELHOUSE, ROOT], env=env, cwd=path,
                          capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return path


def command(venv, name):
    return os.path.join(venv, "bin", name)


def test_the_installed_code_is_the_venvs_not_the_checkouts(venv, tmp_path):
    where = subprocess.run(
        [command(venv, "python"), "-c",
         "import app.main, flows.tables, sggwctl.cli; print(app.main.__file__); "
         "print(flows.tables.__file__); print(sggwctl.cli.__file__)"],
        cwd=tmp_path, capture_output=True, text=True, check=True, env={}).stdout.split()
    assert len(where) == 3
    assert all(path.startswith(os.path.join(venv, "lib")) for path in where), where


def test_the_install_holds_the_checkouts_files_and_no_other(venv, tmp_path):
    """Every module and data file of app/ is installed (setup.cfg's packages and package_data
    name them all), and nothing that the checkout does not have (a module moved away and left
    in build/)."""
    installed = subprocess.run(
        [command(venv, "python"), "-c", "import app, os; print(os.path.dirname(app.__file__))"],
        cwd=tmp_path, capture_output=True, text=True, check=True, env={}).stdout.strip()

    def files(top):
        return {os.path.relpath(os.path.join(where, name), top)
                for where, _, names in os.walk(top) if "__pycache__" not in where
                for name in names}
    assert files(installed) == files(os.path.join(ROOT, "app"))


def test_check_config_says_what_python_m_app_config_says(venv, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("datapaths:\n  a: {dp_id: 1, ports: {lan: [1], wan: 2}, extra: 3}\n")
    installed = subprocess.run([command(venv, "sggw"), "check-config", str(bad)],
                               capture_output=True, text=True, cwd=tmp_path, check=False)
    checkout = subprocess.run([sys.executable, "-m", "app.config", str(bad)],
                              capture_output=True, text=True, cwd=ROOT, check=False)
    assert (installed.returncode, installed.stderr) == (checkout.returncode, checkout.stderr)
    assert installed.returncode == 1
    assert installed.stderr.startswith("%s: datapaths.a.extra: unknown key" % bad)
    assert len(installed.stderr.splitlines()) == 1
    good = os.path.join(ROOT, "sggw.example.yaml")
    done = subprocess.run([command(venv, "sggw"), "check-config", good],
                          capture_output=True, text=True, cwd=tmp_path, check=False)
    assert (done.returncode, done.stdout) == (0, "%s: ok (1 datapaths)\n" % good)


def test_installed_sggw_programs_the_bed_takes_ryu_flags_and_stops_on_sigterm(venv):
    with TwoSites(controller=functools.partial(Controller, sggw=command(venv, "sggw"))) as bed:
        bed.warm_up()
        bed.exchange("udp", bed["serverB"].ipv4)  # captured, tunnelled, answered
        status = subprocess.run([command(venv, "sggwctl"), "--api", bed.controller.api,
                                 "status"], capture_output=True, text=True, check=False)
        assert status.returncode == 0 and status.stdout.startswith(
            "controller %s: ok" % bed.controller.api), status
        for path in ("/", "/page/status.js", "/page/status.css"):  # the status page's files
            assert bed.controller.call("GET", path)[0] == 200, path

        process = bed.controller.process
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        stopped_in = time.monotonic() - started
        assert stopped_in < 5, stopped_in
        bed["hostA"].ping(bed["serverB"].ipv4, count=2)  # the bridge keeps forwarding

        # Ryu's flags pass through and win over the config: REST on another port
        other = free_port()
        again = Controller(bed.config_path, other, os.path.join(bed.workdir, "again.log"),
                           extra_args=["--wsapi-port", str(other)], sggw=command(venv, "sggw"))
        bed.controller = again.start()
        again.wait_programmed()
        assert "REST on 127.0.0.1:%d" % other in again.log()
