"""The status page at GET /, in a real browser (Debian's chromium driven by Playwright), on
the real bed: a stalled ovs-vswitchd turns its switch red within 3 s and back; a session
made on the page appears in GET and its copy rate shows; writes and a wrong token show the
API's errors; the page logs no console error. It saves a screenshot (SGGW_SCREENSHOT names
the file; the README shows one)."""
import json
import os
import signal
import time
import urllib.request

import pytest

from tests.e2e.test_mirrors import TOKEN, bed  # noqa: F401 (the bed, with analyzers)
from testbed.browser import CHROMIUM, Browser
from testbed.faults import stalled
from testbed.proc import wait_for

RED_WITHIN_S = 3.0
# what chromium itself logs for an error answer, which the page then shows: a new tab asks
# once without a token (401), and a test sends a bad body on purpose (400)
NETWORK = "Failed to load resource: the server responded with a status of %s"
UNAUTHORIZED, BAD_REQUEST = NETWORK % "401 (Unauthorized)", NETWORK % "400 (Bad Request)"
SITE_A = '[data-switch="site-a"]'

pytestmark = pytest.mark.userspace_only("the page reads the REST API: the same on any datapath")


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail("chromium is not installed (scripts/setup-env installs it)")
    started = Browser()
    yield started
    started.close()


@pytest.fixture
def tab(bed, browser):  # noqa: F811 (the imported bed)
    opened = browser.open(bed.controller.api + "/")
    yield opened
    opened.close()


def text(selector):
    """A JavaScript expression: the text of the element matching ``selector``."""
    return "(document.querySelector(%s)?.textContent || '')" % json.dumps(selector)


def shows(tab, selector, wanted, timeout_s=5):
    tab.wait("%s.includes(%s)" % (text(selector), json.dumps(wanted)), timeout_s)


def console_errors(tab, *expected):
    """The console's errors but chromium's lines for the 401 of a new tab's first request
    and the ``expected`` ones."""
    return [e for e in tab.console_errors() if e not in (UNAUTHORIZED,) + expected]


def sign_in(tab, token=TOKEN):
    tab.fill("#token", token)
    tab.click("#token-form button")


def signed_in(tab):
    sign_in(tab)
    tab.wait("document.querySelector(%s) !== null && !(%s)"
             % (json.dumps(SITE_A), tab.has_class(SITE_A, "bad")), 10)
    assert tab.is_visible("#create")


def test_the_page_is_served_with_a_strict_content_security_policy(bed):  # noqa: F811
    with urllib.request.urlopen(bed.controller.api + "/") as response:
        policy = response.headers["Content-Security-Policy"]
        assert response.headers["Content-Type"].startswith("text/html")
        assert "status.js" in response.read().decode()
    assert "script-src 'self'" in policy and "unsafe" not in policy
    assert "frame-ancestors 'none'" in policy and "form-action 'none'" in policy


def test_a_wrong_token_shows_the_error_and_the_page_stays_read_only(tab):
    shows(tab, "#error", "401 missing or wrong bearer token")
    sign_in(tab, "not-the-token")
    shows(tab, "#error", "GET /v1/health: 401 missing or wrong bearer token")
    assert tab.is_visible("#token-form")
    assert not tab.is_visible("#create")  # no token: nothing to change with
    assert tab.evaluate("sessionStorage.getItem('sggw-token')") is None
    assert console_errors(tab) == []


def test_a_stalled_switch_turns_red_within_3_s_and_back(bed, tab):  # noqa: F811
    signed_in(tab)
    with stalled(bed.ovs.pids["ovs-vswitchd"]):
        stopped = time.monotonic()
        tab.wait(tab.has_class(SITE_A, "bad"), 10)
        red = time.monotonic() - stopped
        shows(tab, "#status", "degraded")
        shows(tab, "#reasons", "site-a: does not answer")
    resumed = time.monotonic()
    tab.wait("!(%s)" % tab.has_class(SITE_A, "bad"), 10)
    back = time.monotonic() - resumed
    print("the page showed the stalled switch red after %.2f s, back after %.2f s"
          % (red, back))
    assert red <= RED_WITHIN_S
    assert console_errors(tab) == []


def test_a_session_made_on_the_page_is_in_get_and_its_copy_rate_shows(bed, tab):  # noqa: F811
    host, server = bed["hostA"], bed["serverB"]
    signed_in(tab)
    tab.select_option("#create-switch", "site-a")
    tab.fill("#create-name", "from-page")
    tab.fill("#create-source", host.outside)
    tab.fill("#create-destination", "no-such-port")
    tab.click("#create button")
    shows(tab, "#error",
          "400 'no-such-port' is not a port of the switch (field: destinations[0].port)")
    tab.fill("#create-destination", bed["ana1"].outside)
    tab.click("#create button")
    shown = '[data-session="site-a/from-page"]'
    tab.wait("document.querySelector(%s) !== null" % json.dumps(shown), 5)
    tab.wait("document.querySelector('#error').hidden", 5)
    status, made = bed.controller.call("GET", "/v1/switches/site-a/mirrors/from-page")
    assert status == 200 and made["source"] == "api"
    assert made["sources"] == [{"port": host.outside, "direction": "both"}]
    # 20 pings a second, each copied with its reply: 40 copies a second
    pinger = host.popen("ping", "-n", "-q", "-i", "0.05", "-c", "240", server.ipv4)
    try:
        rate = shown + ' [data-rate="packets"]'
        wait_for(lambda: 30 <= int(tab.inner_text(rate)) <= 50, 10,
                 what="the page showing about 40 copies/s")
        print("the page shows %s copies/s for 40 sent" % tab.inner_text(rate))
        chart = shown + ' [data-chart="packets"] polyline'
        wait_for(lambda: len(tab.get_attribute(chart, "points").split()) >= 8, 15,
                 what="eight seconds of the copy rate charted")
        screenshot = os.environ.get("SGGW_SCREENSHOT") or os.path.join(
            bed.workdir, "status-page.png")
        tab.screenshot(path=os.path.abspath(screenshot), full_page=True)
        print("screenshot:", screenshot)
    finally:
        pinger.send_signal(signal.SIGINT)
        pinger.wait()
    tab.click(shown + " button")
    tab.wait("document.querySelector(%s) === null" % json.dumps(shown), 5)
    assert bed.controller.call("GET", "/v1/switches/site-a/mirrors/from-page")[0] == 404
    assert console_errors(tab, BAD_REQUEST) == []


def test_paths_are_listed_by_host_and_flushed_from_the_page(bed, tab):  # noqa: F811
    host, server = bed["hostA"], bed["serverB"]
    signed_in(tab)
    host.ping(server.ipv4, count=2)
    tab.select_option("#paths-switch", "site-a")
    tab.fill("#paths-host", server.ipv4)
    tab.click("#paths-filter button[type=submit]")
    shows(tab, "#paths tbody", server.ipv4)
    tab.click("#flush")
    shows(tab, "#paths-total", "flushed ")
    assert int(tab.inner_text("#paths-total").split()[-1]) >= 1
    assert console_errors(tab) == []
