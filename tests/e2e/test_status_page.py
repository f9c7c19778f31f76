"""The status page at GET /, in a real browser (Debian's chromium driven by Playwright), on
the real bed: a stalled ovs-vswitchd turns its switch red within 3 s and back; a session
made on the page appears in GET and its copy rate shows; writes and a wrong token show the
API's errors; the page logs no console error. It saves a screenshot (SGGW_SCREENSHOT names
the file; the README shows one)."""
import os
import signal
import tempfile
import time
import urllib.request

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.e2e.test_mirrors import TOKEN, bed  # noqa: F401 (the bed, with analyzers)
from testbed.faults import stalled
from testbed.proc import wait_for

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
RED_WITHIN_S = 3.0
# what chromium itself logs for an error answer, which the page then shows: a new tab asks
# once without a token (401), and a test sends a bad body on purpose (400)
NETWORK = "Failed to load resource: the server responded with a status of %s"
UNAUTHORIZED, BAD_REQUEST = NETWORK % "401 (Unauthorized)", NETWORK % "400 (Bad Request)"


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail("chromium is not installed (scripts/setup-env installs it)")
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=ARGS, headless=True,
            viewport={"width": 1280, "height": 1000})
        try:
            yield context
        finally:
            context.close()


class Page:
    """One tab on the status page, with what its console said."""

    def __init__(self, context, url):
        self.tab = context.new_page()
        self.errors = []
        self.tab.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.tab.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.tab.goto(url)

    def sign_in(self, token):
        self.tab.fill("#token", token)
        self.tab.click("#token-form button")

    def switch(self, name):
        return self.tab.locator('[data-switch="%s"]' % name)

    def error(self):
        return self.tab.locator("#error")

    def console_errors(self, *expected):
        """What the console said that was an error, but chromium's lines for the 401 of a
        new tab's first request and the ``expected`` ones."""
        return [e for e in self.errors if e not in (UNAUTHORIZED,) + expected]


@pytest.fixture
def page(bed, browser):  # noqa: F811 (the imported bed)
    opened = Page(browser, bed.controller.api + "/")
    yield opened
    opened.tab.close()


def signed_in(page):
    page.sign_in(TOKEN)
    expect(page.switch("site-a")).to_have_class("card")
    expect(page.tab.locator("#create")).to_be_visible()


def test_the_page_is_served_with_a_strict_content_security_policy(bed):  # noqa: F811
    with urllib.request.urlopen(bed.controller.api + "/") as response:
        policy = response.headers["Content-Security-Policy"]
        assert response.headers["Content-Type"].startswith("text/html")
        assert "status.js" in response.read().decode()
    assert "script-src 'self'" in policy and "unsafe" not in policy
    assert "frame-ancestors 'none'" in policy and "form-action 'none'" in policy


def test_a_wrong_token_shows_the_error_and_the_page_stays_read_only(page):
    expect(page.error()).to_contain_text("401 missing or wrong bearer token")
    page.sign_in("not-the-token")
    expect(page.error()).to_contain_text("GET /v1/health: 401 missing or wrong bearer token")
    expect(page.tab.locator("#token-form")).to_be_visible()
    expect(page.tab.locator("#create")).to_be_hidden()  # no token: nothing to change with
    assert page.tab.evaluate("sessionStorage.getItem('sggw-token')") is None
    assert page.console_errors() == []


def test_a_stalled_switch_turns_red_within_3_s_and_back(bed, page):  # noqa: F811
    signed_in(page)
    vswitchd = bed.ovs.pids["ovs-vswitchd"]
    with stalled(vswitchd):
        stopped = time.monotonic()
        expect(page.switch("site-a")).to_have_class("card bad", timeout=10_000)
        red = time.monotonic() - stopped
        expect(page.tab.locator("#status")).to_have_text("degraded")
        expect(page.tab.locator("#reasons")).to_contain_text("site-a: does not answer")
    resumed = time.monotonic()
    expect(page.switch("site-a")).to_have_class("card", timeout=10_000)
    back = time.monotonic() - resumed
    print("the page showed the stalled switch red after %.2f s, back after %.2f s"
          % (red, back))
    assert red <= RED_WITHIN_S
    assert page.console_errors() == []


def test_a_session_made_on_the_page_is_in_get_and_its_copy_rate_shows(bed, page):  # noqa: F811
    host, server = bed["hostA"], bed["serverB"]
    signed_in(page)
    tab = page.tab
    tab.select_option("#create-switch", "site-a")
    tab.fill("#create-name", "from-page")
    tab.fill("#create-source", host.outside)
    tab.fill("#create-destination", "no-such-port")
    tab.click("#create button")
    expect(page.error()).to_contain_text(
        "400 'no-such-port' is not a port of the switch (field: destinations[0].port)")
    tab.fill("#create-destination", bed["ana1"].outside)
    tab.click("#create button")
    shown = tab.locator('[data-session="site-a/from-page"]')
    expect(shown).to_be_visible()
    expect(page.error()).to_be_hidden()
    status, made = bed.controller.call("GET", "/v1/switches/site-a/mirrors/from-page")
    assert status == 200 and made["source"] == "api"
    assert made["sources"] == [{"port": host.outside, "direction": "both"}]
    # 20 pings a second, each copied with its reply: 40 copies a second
    pinger = host.popen("ping", "-n", "-q", "-i", "0.05", "-c", "240", server.ipv4)
    try:
        rate = shown.locator('[data-rate="packets"]')
        wait_for(lambda: 30 <= int(rate.inner_text()) <= 50, 10,
                 what="the page showing about 40 copies/s")
        print("the page shows %s copies/s for 40 sent" % rate.inner_text())
        chart = shown.locator('[data-chart="packets"] polyline')
        wait_for(lambda: len(chart.get_attribute("points").split()) >= 8, 15,
                 what="eight seconds of the copy rate charted")
        screenshot = os.environ.get("SGGW_SCREENSHOT") or os.path.join(
            bed.workdir, "status-page.png")
        tab.screenshot(path=screenshot, full_page=True)
        print("screenshot:", screenshot)
    finally:
        pinger.send_signal(signal.SIGINT)
        pinger.wait()
    shown.get_by_role("button", name="Delete").click()
    expect(shown).to_have_count(0)
    assert bed.controller.call("GET", "/v1/switches/site-a/mirrors/from-page")[0] == 404
    assert page.console_errors(BAD_REQUEST) == []


def test_paths_are_listed_by_host_and_flushed_from_the_page(bed, page):  # noqa: F811
    host, server = bed["hostA"], bed["serverB"]
    signed_in(page)
    tab = page.tab
    host.ping(server.ipv4, count=2)
    tab.select_option("#paths-switch", "site-a")
    tab.fill("#paths-host", server.ipv4)
    tab.click("#paths-filter button[type=submit]")
    expect(tab.locator("#paths tbody tr").first).to_contain_text(server.ipv4)
    time.sleep(1.5)  # an active path is learned again by its next packet (OVS replays learn)
    tab.click("#flush")
    expect(tab.locator("#paths-total")).to_contain_text("flushed ")
    assert int(tab.locator("#paths-total").inner_text().split()[-1]) >= 1
    assert page.console_errors() == []
