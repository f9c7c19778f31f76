"""The status page at ``GET /``: static files from ``app/api/static/``, no build step.

The page is plain JavaScript that reads and writes through the REST API itself, with the
same bearer token and the same errors; serving it adds no new way in. Its files hold no
data, so they are served without the token (a browser cannot send one when it navigates),
under a Content-Security-Policy that allows only this origin's script, style and requests:
no inline script, no other site, no framing. Writes stay JSON with a bearer header, which a
cross-site form can never send.
"""
import os

from ryu.app.wsgi import ControllerBase, Response, route

from app.api.rest import error_response
from app.api.service import ApiError

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
FILES = {"index.html": "text/html", "status.js": "text/javascript",
         "status.css": "text/css"}
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "connect-src 'self'; img-src 'self' data:; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _file(req, name):
    if req.method not in ("GET", "HEAD"):
        return error_response(ApiError(405, "%s is not allowed here" % req.method),
                               allow=["GET", "HEAD"])
    with open(os.path.join(STATIC, name), "rb") as handle:
        response = Response(status=200, content_type=FILES[name], charset="utf-8",
                            body=handle.read())
    response.headers.update(HEADERS)
    return response


class StatusPage(ControllerBase):
    """The page and its two files (registered before the JSON 404 of unknown paths)."""

    @route("sggw-page", "/")
    def index(self, req, **_):
        return _file(req, "index.html")

    @route("sggw-page", "/page/{name}", requirements={"name": "status\\.(js|css)"})
    def asset(self, req, name, **_):
        return _file(req, name)
