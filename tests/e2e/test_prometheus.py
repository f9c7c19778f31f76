"""Prometheus for real: Debian's prometheus scrapes a running sggw with the scrape config in
deploy/, promtool checks what /metrics serves, PromQL gives a mirror session's copy rate,
and every query of the Grafana dashboard in deploy/ returns data from that Prometheus."""
import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request

import pytest
import yaml

from tests.e2e.test_mirrors import both, session
from tests.e2e.test_remote_mirrors import ERSPAN_V1, TOKEN, bed  # noqa: F401 (the bed)
from testbed.proc import free_port, popen, stop_child, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRAPE_S = 1  # the shipped 5 s, shortened so that a 10 s run has enough samples
PINGS, INTERVAL = 200, 0.05  # 20 requests/s, each mirrored with its reply: 40 copies/s

pytestmark = pytest.mark.userspace_only("Prometheus reads /metrics: the same on any datapath")


class Prometheus:
    """A prometheus process of the test's own; queries over its HTTP API."""

    def __init__(self, workdir, target):
        with open(os.path.join(ROOT, "deploy", "prometheus.yml")) as handle:
            conf = yaml.safe_load(handle)
        job, = [j for j in conf["scrape_configs"] if j["job_name"] == "sggw"]
        token_file = os.path.join(workdir, "sggw.token")
        with open(token_file, "w") as handle:
            handle.write(TOKEN)
        job.update(static_configs=[{"targets": [target]}], scrape_interval="%ds" % SCRAPE_S,
                   scrape_timeout="%ds" % SCRAPE_S,
                   authorization={"type": "Bearer", "credentials_file": token_file})
        config = os.path.join(workdir, "prometheus.yml")
        with open(config, "w") as handle:
            yaml.safe_dump(conf, handle)
        self.url = "http://127.0.0.1:%d" % free_port()
        self.log = open(os.path.join(workdir, "prometheus.log"), "wb")
        self.process = popen("prometheus", "--config.file=" + config,
                             "--storage.tsdb.path=" + os.path.join(workdir, "data"),
                             "--web.listen-address=" + self.url[len("http://"):],
                             stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self):
        stop_child(self.process)
        self.log.close()

    def query(self, expr, at=None):
        """The result vector of an instant query (at ``at``, a Unix time, or now)."""
        params = {"query": expr}
        if at is not None:
            params["time"] = "%.3f" % at
        url = self.url + "/api/v1/query?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as response:
            answer = json.load(response)
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    def scraping(self):
        try:
            return [r for r in self.query('up{job="sggw"}') if r["value"][1] == "1"]
        except OSError:  # not listening yet
            return None


@pytest.fixture(scope="module")
def prometheus(bed, tmp_path_factory):  # noqa: F811 (the imported bed)
    if shutil.which("prometheus") is None:
        pytest.fail("prometheus is not installed (scripts/setup-env installs it)")
    server = Prometheus(str(tmp_path_factory.mktemp("prometheus")),
                        urllib.parse.urlsplit(bed.controller.api).netloc)
    try:
        wait_for(server.scraping, 30, what="prometheus scraping sggw")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def mirrored(bed, prometheus):  # noqa: F811
    """A session with a remote destination while hostA pings serverB for 10 s: (start,
    end, copies sent per second), once Prometheus has scraped the last of them."""
    host, server = bed["hostA"], bed["serverB"]
    with session(bed, "prom", both(bed), [ERSPAN_V1, {"port": bed["ana1"].outside}],
                 filter={"ip_proto": "icmp"}):
        start = time.time()
        out = host.run("ping", "-n", "-q", "-i", str(INTERVAL), "-c", str(PINGS), server.ipv4,
                       timeout=60)
        end = time.time()
        assert "%d received" % PINGS in out, out
        scraped = 'sggw_mirror_packets_total{job="sggw",session="prom"}'
        wait_for(lambda: [r for r in prometheus.query(scraped)
                          if r["value"][1] == str(2 * PINGS)], 15, what="every copy scraped")
        yield start, end, 2 * PINGS / (end - start)


def test_promtool_finds_nothing_to_fix_in_the_metrics(bed, mirrored):  # noqa: F811
    status, text = bed.controller.call("GET", "/metrics")
    assert status == 200
    assert 'sggw_mirror_truncated_packets_total{datapath="site-a",session="prom"}' in text
    done = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                          text=True, check=False)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_promql_gives_a_sessions_copy_rate(prometheus, mirrored):
    start, end, sent = mirrored
    # a window well inside the run (counters reach OVS's stats within about a second)
    at = start + (end - start) * 0.8
    rate, = prometheus.query('rate(sggw_mirror_packets_total{session="prom"}[5s])', at=at)
    print("copies sent %.1f/s, Prometheus's rate %.1f/s" % (sent, float(rate["value"][1])))
    assert 0.75 * sent <= float(rate["value"][1]) <= 1.25 * sent


def test_every_query_of_the_grafana_dashboard_returns_data(prometheus, mirrored):
    start, end, _ = mirrored
    with open(os.path.join(ROOT, "deploy", "grafana-dashboard.json")) as handle:
        dashboard = json.load(handle)
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert len(queries) >= 10
    for expr in queries:
        # Grafana's $__rate_interval is at least four scrape intervals
        result = prometheus.query(expr.replace("$__rate_interval", "%ds" % (5 * SCRAPE_S)),
                                  at=start + (end - start) * 0.8)
        assert result, expr
