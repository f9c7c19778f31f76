"""The sggw controller as a real process: ``ryu-manager app/sggw_app.py`` in the checkout,
or an installed ``sggw --config FILE`` run from outside it."""
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request

from testbed.proc import stop_child, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RYU_MANAGER = os.path.join(os.path.dirname(sys.executable), "ryu-manager")


class Controller:
    def __init__(self, config_path, api_port, log_path, extra_args=(), token=None, sggw=None):
        self.config_path = config_path
        self.sggw = sggw  # an installed sggw command to run instead of the checkout's app
        self.api = "http://127.0.0.1:%d" % api_port
        self.log_path = log_path
        self.extra_args = list(extra_args)
        self.token = token
        self.process = None

    def start(self):
        if self.sggw is None:
            argv, cwd = [RYU_MANAGER, "app/sggw_app.py"], ROOT
            env = dict(os.environ, SGGW_CONFIG=self.config_path)
        else:  # nothing from the checkout: not its directory, not its environment
            argv, cwd = [self.sggw, "--config", self.config_path], os.path.dirname(self.log_path)
            env = {k: v for k, v in os.environ.items()
                   if k not in ("SGGW_CONFIG", "PYTHONPATH", "VIRTUAL_ENV")}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([*argv, *self.extra_args], cwd=cwd, env=env,
                                            stdout=log, stderr=subprocess.STDOUT)
        return self

    @property
    def pid(self):
        return self.process.pid if self.process else None

    def running(self):
        return self.process is not None and self.process.poll() is None

    def stop(self, kill=False):
        if self.process is None:
            return
        stop_child(self.process, sig=signal.SIGKILL if kill else signal.SIGTERM)
        self.process = None

    def log(self):
        with open(self.log_path, errors="replace") as handle:
            return handle.read()

    # --- REST ---------------------------------------------------------------------------------

    def call(self, method, path, body=None, token=None, raw=None, headers=None, timeout=30):
        """(status, parsed JSON or text) of an HTTP request to the REST API."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None
                                            else None)
        request = urllib.request.Request(self.api + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        token = token if token is not None else self.token
        if token:
            request.add_header("Authorization", "Bearer " + token)
        for key, value in (headers or {}).items():
            request.add_header(key, value)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, _decode(response)
        except urllib.error.HTTPError as err:
            return err.code, _decode(err)

    def get(self, path, timeout=30):
        status, body = self.call("GET", path, timeout=timeout)
        assert status == 200, "GET %s: %s %s" % (path, status, body)
        return body

    def health(self):
        try:
            return self.call("GET", "/v1/health")[1]
        except (urllib.error.URLError, ConnectionError, OSError):
            return None

    def wait_programmed(self, timeout=30):
        """Wait until every configured switch is connected, programmed and its OVS settings
        checked (sggw checks them beside the first programming: ``pending`` until then)."""
        def ready():
            if not self.running():
                raise RuntimeError("controller exited:\n" + self.log()[-3000:])
            health = self.health()
            return health if health and all(
                s["state"] == "programmed" and "pending" not in s["ovs_settings"]
                for s in health["switches"].values()) else None
        return wait_for(ready, timeout, interval=0.2, what="switches programmed")

    def packet_ins(self, switch):
        return self.get("/v1/switches/" + switch)["packet_ins"]


def _decode(response):
    text = response.read().decode()
    if response.headers.get("Content-Type", "").startswith("application/json"):
        return json.loads(text)
    return text
