"""The REST API, served by Ryu's WSGI server in the controller process.

Resource URLs under ``/v1``; every answer is JSON (``/metrics`` is Prometheus text);
errors are ``{"error": ..., "field": ...}`` with the right 4xx. Handlers are thin: the
work is done by :class:`app.sggw_app.SggwApp` and :class:`app.switch.Switch`.
"""
import hmac
import json

from ryu.app.wsgi import ControllerBase, Response, route

API = "sggw"
JSON = "application/json"


class ApiError(Exception):
    """An error answer: HTTP ``status`` with a message and, for bad input, the field."""

    def __init__(self, status, message, field=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


def json_response(body, status=200):
    return Response(status=status, content_type=JSON, charset="utf-8",
                    body=json.dumps(body, indent=1, sort_keys=True).encode() + b"\n")


def error_response(err):
    body = {"error": err.message}
    if err.field is not None:
        body["field"] = err.field
    response = json_response(body, err.status)
    if err.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="sggw"'
    return response


def endpoint(method):
    """Wrap a handler: check the bearer token, turn ApiError into a JSON error answer."""

    def handler(self, req, **kwargs):
        try:
            self.authorize(req)
            return method(self, req, **kwargs)
        except ApiError as err:
            return error_response(err)

    handler.__name__ = method.__name__
    handler.__doc__ = method.__doc__
    return handler


class RestApi(ControllerBase):
    """Routes; ``data["sggw"]`` is the running SggwApp."""

    def __init__(self, req, link, data, **config):
        super().__init__(req, link, data, **config)
        self.sggw = data[API]

    def authorize(self, req):
        token = self.sggw.config.api_token
        if token is None:
            return
        given = req.headers.get("Authorization", "")
        if not (given.startswith("Bearer ")
                and hmac.compare_digest(given[len("Bearer "):].encode(), token.encode())):
            raise ApiError(401, "missing or wrong bearer token")

    def switch(self, dp):
        found = self.sggw.find_switch(dp)
        if found is None:
            raise ApiError(404, "no configured switch %r" % dp, "dp")
        return found

    @route(API, "/v1/health", methods=["GET"])
    @endpoint
    def health(self, req, **_):
        """Controller status and, per configured switch, whether it is programmed."""
        return json_response(self.sggw.health())

    @route(API, "/v1/switches", methods=["GET"])
    @endpoint
    def list_switches(self, req, **_):
        return json_response([self.sggw.describe_switch(name)
                              for name in self.sggw.config.datapaths])

    @route(API, "/v1/switches/{dp}", methods=["GET"])
    @endpoint
    def get_switch(self, req, dp, **_):
        return json_response(self.sggw.describe_switch(self.switch(dp)))

    @route(API, "/metrics", methods=["GET"])
    @endpoint
    def metrics(self, req, **_):
        return Response(status=200, content_type="text/plain", charset="utf-8",
                        body=self.sggw.metrics().encode())
