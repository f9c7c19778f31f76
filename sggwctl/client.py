"""HTTP to the sggw REST API with the standard library.

JSON goes in and comes out; redirects are followed (a standby controller of a cluster may
answer with a redirect to the master: a write keeps its method, body and token through a
307 or 308); every failure becomes one :class:`CtlError` line with its exit status.
"""
import http
import json
import urllib.error
import urllib.parse
import urllib.request

from sggwctl.errors import AUTH, REFUSED, UNREACHABLE, USAGE, CtlError

MAX_REDIRECTS = 5
REDIRECTS = (301, 302, 303, 307, 308)
KEEP_METHOD = (307, 308)  # the only redirects a write may follow (RFC 9110 15.4)


class _HandBack(urllib.request.HTTPRedirectHandler):
    """Returns every redirect to :meth:`Client.call` as an HTTPError, which follows it."""

    def redirect_request(self, *args, **kwargs):
        return None


class Client:
    def __init__(self, api, token=None, timeout=30.0):
        if not _usable(api):
            raise CtlError(USAGE, "bad API URL %s: expected http://HOST:PORT" % api)
        self.api = api.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._opener = urllib.request.build_opener(_HandBack)

    def call(self, method, path, body=None, query=None):
        """The decoded answer (JSON, text, or None for 204) to ``method path``."""
        query = {k: v for k, v in (query or {}).items() if v is not None}
        url = self.api + urllib.parse.quote(path) + (
            "?" + urllib.parse.urlencode(query) if query else "")
        data = None if body is None else json.dumps(body).encode()
        for _ in range(MAX_REDIRECTS + 1):
            try:
                with self._opener.open(self._request(method, url, data),
                                       timeout=self.timeout) as response:
                    return _decode(response.status, response.headers, response.read())
            except urllib.error.HTTPError as err:
                location = err.headers.get("Location")
                if err.code not in REDIRECTS or not location:
                    raise _refusal(err) from None
                if method not in ("GET", "HEAD") and err.code not in KEEP_METHOD:
                    raise CtlError(REFUSED, "%s: the controller redirected a %s to %s; only "
                                   "307 and 308 keep a write's method" % (
                                       _status(err.code), method, location)) from None
                url = urllib.parse.urljoin(url, location)
            except (urllib.error.URLError, OSError) as err:
                raise CtlError(UNREACHABLE, "cannot reach the controller at %s: %s"
                               % (url, _reason(err))) from None
        raise CtlError(REFUSED, "more than %d redirects, the last to %s" % (MAX_REDIRECTS, url))

    def _request(self, method, url, data):
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", "Bearer " + self.token)
        return request


def _usable(url):
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # raises ValueError for a port that is no number
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _decode(status, headers, raw):
    if status == 204 or not raw:
        return None
    text = raw.decode("utf-8", errors="replace")
    if not headers.get("Content-Type", "").startswith("application/json"):
        return text
    try:
        return json.loads(text)
    except ValueError:
        raise CtlError(REFUSED, "%s: the answer is not the JSON it says it is"
                       % _status(status)) from None


def _status(code):
    """``409 Conflict``: the status in words."""
    try:
        return "%d %s" % (code, http.HTTPStatus(code).phrase)
    except ValueError:
        return str(code)


def _refusal(err):
    """One line for an error answer: status in words, the server's message and field."""
    try:
        body = json.loads(err.read().decode("utf-8"))
    except (OSError, ValueError):
        body = None
    if isinstance(body, dict) and "error" in body:
        line = "%s: %s" % (_status(err.code), body["error"])
        if body.get("field"):
            line += " (field: %s)" % body["field"]
    else:
        line = _status(err.code)
    retry = err.headers.get("Retry-After")
    if retry:
        line += " (retry after %s s)" % retry
    return CtlError(AUTH if err.code in (401, 403) else REFUSED, line)


def _reason(err):
    reason = getattr(err, "reason", err)
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    return str(reason) or type(reason).__name__
