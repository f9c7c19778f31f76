"""The REST API, served by Ryu's WSGI server in the controller process.

Resource URLs under ``/v1`` (``/metrics`` is Prometheus text), described by the OpenAPI
document at ``/v1/openapi.json``; ``/v1/config-schema.json`` is the JSON Schema of
``sggw.yaml``. Every answer is JSON; errors are
``{"error": ..., "field": ...}`` with the right 4xx (or 5xx when the switch is the
problem). Handlers only translate HTTP: the work is done by :class:`app.api.service.Sggw`.
"""
import hmac
import json
import logging

from ryu.app.wsgi import ControllerBase, Response, route

from app import config
from app.api.openapi import document
from app.api.service import ApiError

LOG = logging.getLogger("sggw.rest")
API = "sggw"
JSON = "application/json"
MAX_BODY = 64 * 1024
MAX_DEPTH = 32  # nesting of a JSON body; the deepest valid one (a mirror) has 4 levels
KIND = {"kind": "captures|mirrors"}


def json_response(body, status=200):
    return Response(status=status, content_type=JSON, charset="utf-8",
                    body=json.dumps(body, indent=1, sort_keys=True).encode() + b"\n")


def error_response(err, allow=None):
    response = json_response({"error": err.message, "field": err.field}, err.status)
    if err.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="sggw"'
    if allow:
        response.headers["Allow"] = ", ".join(allow)
    for key, value in err.headers.items():
        response.headers[key] = value
    return response


def _deeper_than(value, limit):
    """Whether JSON ``value`` nests lists and objects more than ``limit`` levels deep."""
    level = [value]
    for _ in range(limit):
        level = [child for item in level if isinstance(item, (dict, list))
                 for child in (item.values() if isinstance(item, dict) else item)]
    return any(isinstance(item, (dict, list)) for item in level)


class RestApi(ControllerBase):
    """The routes; ``data["sggw"]`` is the running :class:`app.api.service.Sggw`."""

    def __init__(self, req, link, data, **config):
        super().__init__(req, link, data, **config)
        self.sggw = data[API]

    def answer(self, req, **handlers):
        """Check the token, pick the handler for the HTTP method, turn errors into JSON."""
        try:
            self._authorize(req)
            handler = handlers.get(req.method)
            if handler is None:
                return error_response(ApiError(405, "%s is not allowed here" % req.method),
                                      allow=sorted(handlers))
            if req.method not in ("GET", "HEAD"):
                self.sggw.may_change(req.path_qs)
            return handler()
        except ApiError as err:
            return error_response(err)
        except Exception:  # a bug: log it, never show a traceback to the client
            LOG.exception("%s %s failed", req.method, req.path)
            return error_response(ApiError(500, "internal error; the controller log has "
                                                "the details"))

    def _authorize(self, req):
        token = self.sggw.config.api_token
        if token is None:
            return
        given = req.headers.get("Authorization", "")
        if not (given.startswith("Bearer ")
                and hmac.compare_digest(given[len("Bearer "):].encode(), token.encode())):
            raise ApiError(401, "missing or wrong bearer token")

    @staticmethod
    def body(req):
        """The request's JSON body (at most MAX_BODY bytes, MAX_DEPTH levels). It must come
        as application/json: a web page can send other types to any site without asking
        first (a CORS "simple request"), which with no token set would be a write."""
        if (req.content_type or "").lower() != JSON:
            raise ApiError(415, "the body must be JSON sent as Content-Type: %s" % JSON)
        raw = req.body_file.read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            raise ApiError(400, "the body is larger than %d bytes" % MAX_BODY)
        too_deep = ApiError(400, "the body is nested deeper than %d levels" % MAX_DEPTH)
        try:
            value = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ApiError(400, "the body is not valid JSON: %s" % exc) from None
        except RecursionError:
            raise too_deep from None
        if _deeper_than(value, MAX_DEPTH):
            raise too_deep
        return value

    # --- service ---------------------------------------------------------------------------

    @route(API, "/v1/health")
    def health(self, req, **_):
        return self.answer(req, GET=lambda: json_response(self.sggw.health()))

    @route(API, "/v1/openapi.json")
    def openapi(self, req, **_):
        return self.answer(req, GET=lambda: json_response(document()))

    @route(API, "/v1/config-schema.json")
    def config_schema(self, req, **_):
        return self.answer(req, GET=lambda: json_response(config.json_schema()))

    @route(API, "/metrics")
    def metrics(self, req, **_):
        return self.answer(req, GET=lambda: Response(
            status=200, content_type="text/plain; version=0.0.4", charset="utf-8",
            body=self.sggw.metrics().encode()))  # Prometheus's text format, version 0.0.4

    # --- switches ---------------------------------------------------------------------------

    @route(API, "/v1/switches")
    def switches(self, req, **_):
        return self.answer(req, GET=lambda: json_response(
            [self.sggw.describe_switch(name) for name in self.sggw.config.datapaths]))

    @route(API, "/v1/switches/{dp}")
    def switch(self, req, dp, **_):
        return self.answer(req, GET=lambda: json_response(
            self.sggw.describe_switch(self.sggw.resolve_dp(dp))))

    # --- capture rules and mirror sessions ----------------------------------------------------

    @route(API, "/v1/switches/{dp}/{kind}", requirements=KIND)
    def collection(self, req, dp, kind, **_):
        return self.answer(
            req,
            GET=lambda: json_response(self.sggw.objects(self.sggw.resolve_dp(dp), kind)),
            POST=lambda: json_response(
                self.sggw.create(self.sggw.resolve_dp(dp), kind, self.body(req)), 201))

    @route(API, "/v1/switches/{dp}/{kind}/{name}", requirements=KIND)
    def item(self, req, dp, kind, name, **_):
        def delete():
            self.sggw.delete(self.sggw.resolve_dp(dp), kind, name)
            return Response(status=204, content_type=None)
        return self.answer(
            req,
            GET=lambda: json_response(self.sggw.object(self.sggw.resolve_dp(dp), kind, name)),
            PUT=lambda: json_response(
                self.sggw.replace(self.sggw.resolve_dp(dp), kind, name, self.body(req))),
            DELETE=delete)

    # --- learned reverse paths --------------------------------------------------------------

    @route(API, "/v1/switches/{dp}/paths")
    def paths(self, req, dp, **_):
        def listing():
            limit = req.GET.get("limit", "1000")
            if not limit.isdigit() or not 1 <= int(limit) <= 1_000_000:
                raise ApiError(400, "limit must be a number from 1 to 1000000", "limit")
            return json_response(self.sggw.paths(self.sggw.resolve_dp(dp), int(limit),
                                                 req.GET.get("port"), req.GET.get("host")))
        return self.answer(req, GET=listing, DELETE=lambda: json_response(
            self.sggw.flush_paths(self.sggw.resolve_dp(dp), req.GET.get("port"),
                                  req.GET.get("host"))))


class UnknownPath(ControllerBase):
    """Registered after RestApi, so it only sees what no route matched: a JSON 404."""

    @route(API + "-404", "/{path:.*}")
    def not_found(self, req, path, **_):
        return error_response(ApiError(404, "no such resource: /%s" % path, None))
