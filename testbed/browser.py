"""A real browser for the tests: Debian's chromium driven by Playwright, in a process of its own.

Playwright's sync API runs greenlets and an asyncio loop of its own; in a process that
eventlet has monkey-patched (tests/unit/test_cluster_store.py patches as ryu-manager does,
and pytest runs everything in one process) it deadlocks when it stops. So the browser is
driven from a child process (``python -m testbed.browser``): the test calls a tab's
Playwright ``Page`` methods by name over a pipe, one JSON line each way. The child starts
chromium with a fresh profile; Playwright's own browser download is never used.
"""
import json
import subprocess
import sys
import tempfile

from testbed.proc import stop_child

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class BrowserError(RuntimeError):
    """What Playwright raised in the child (a timeout, a missing element)."""


class Browser:
    """The child process; :meth:`open` gives a tab."""

    def __init__(self):
        self.process = subprocess.Popen([sys.executable, "-m", "testbed.browser"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True)

    def ask(self, *request):
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise BrowserError("the browser process ended (exit %s)" % self.process.wait())
        answer = json.loads(line)
        if "error" in answer:
            raise BrowserError(answer["error"])
        return answer["result"]

    def open(self, url):
        return Tab(self, self.ask("open", url))

    def close(self):
        try:
            self.ask("quit")  # the child then closes chromium and Playwright, and ends
            self.process.wait(timeout=20)
        except (BrowserError, OSError, subprocess.TimeoutExpired):
            pass
        finally:
            stop_child(self.process)


class Tab:
    """One page: ``tab.fill("#token", "x")`` runs Playwright's ``page.fill`` in the child."""

    def __init__(self, browser, tab_id):
        self.browser, self.id = browser, tab_id

    def __getattr__(self, method):
        return lambda *args, **kwargs: self.browser.ask("call", self.id, method, args, kwargs)

    def wait(self, condition, timeout_s):
        """Wait until JavaScript expression ``condition`` is true on the page (given as a
        function: a bare expression would be eval'd, which the page's policy forbids)."""
        self.wait_for_function("() => (%s)" % condition, timeout=timeout_s * 1000, polling=50)

    def has_class(self, selector, name):
        """A JavaScript expression: the element matching ``selector`` has class ``name``."""
        return "document.querySelector(%s)?.classList.contains(%s) === true" % (
            json.dumps(selector), json.dumps(name))

    def console_errors(self):
        """What its console said at level error, and its uncaught exceptions."""
        return self.browser.ask("errors", self.id)

    def close(self):
        self.browser.ask("close", self.id)


def _handle(context, tabs, errors, request):
    """Carry out one request; returns what to answer."""
    command, args = request[0], request[1:]
    if command == "open":
        tab = context.new_page()
        tab_id = len(tabs) + 1
        tabs[tab_id], errors[tab_id] = tab, []
        tab.on("console", lambda m, e=errors[tab_id]: m.type == "error" and e.append(m.text))
        tab.on("pageerror", lambda exc, e=errors[tab_id]: e.append(str(exc)))
        tab.goto(args[0])
        return tab_id
    if command == "errors":
        return errors[args[0]]
    if command == "close":
        tabs.pop(args[0]).close()
        return None
    tab_id, method, positional, named = args  # call: a method of the Page
    result = getattr(tabs[tab_id], method)(*positional, **named)
    return result if isinstance(result, (str, int, float, bool, list, dict)) else None


def main():
    from playwright.sync_api import sync_playwright  # only the child needs it

    def answer(**what):
        sys.stdout.write(json.dumps(what) + "\n")
        sys.stdout.flush()

    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=ARGS, headless=True,
            viewport={"width": 1280, "height": 1000})
        tabs, errors = {}, {}
        try:
            for line in sys.stdin:
                request = json.loads(line)
                if request[0] == "quit":
                    answer(result=None)
                    return
                try:
                    answer(result=_handle(context, tabs, errors, request))
                except Exception as exc:  # noqa: BLE001 -- told to the test, which goes on
                    answer(error="%s: %s" % (type(exc).__name__, exc))
        finally:
            context.close()


if __name__ == "__main__":
    main()
