"""Where the REST API is and which token it wants.

Each of the two comes from the first place that has it: the flag (``--api``, ``--token``),
the environment (``SGGW_API``, ``SGGW_TOKEN``), or the controller's own config file — the
one named by ``--config`` or ``SGGW_CONFIG``, else ``/etc/sggw/sggw.yaml`` if it is there and
readable — whose ``api:`` section says where the controller listens and its token. Without
any of these: http://127.0.0.1:8080 and no token.
"""
import ipaddress
import os

from app import config
from sggwctl.errors import USAGE, CtlError

DEFAULT_CONFIG = "/etc/sggw/sggw.yaml"


def resolve(api=None, token=None, config_path=None, environ=None):
    """(API base URL, token or None)."""
    environ = os.environ if environ is None else environ
    api = api or environ.get("SGGW_API")
    token = token or environ.get("SGGW_TOKEN")
    if api is None or token is None:
        named = config_path or environ.get("SGGW_CONFIG")
        cfg = _controller_config(named or DEFAULT_CONFIG, required=bool(named))
        if api is None:
            api = _url(cfg.api) if cfg else _url(config.Config.api)
        if token is None and cfg:
            token = cfg.api_token
    if "://" not in api:
        api = "http://" + api
    return api, token


def _controller_config(path, required):
    if not required and not os.access(path, os.R_OK):
        return None
    try:
        return config.load(path)
    except config.ConfigError as exc:
        raise CtlError(USAGE, "cannot read the API's address from the controller's config: "
                       "%s" % exc) from None


def _url(listen):
    """The URL that reaches a listener: a wildcard address is reached on loopback."""
    host = ipaddress.ip_address(listen.host)
    if host.is_unspecified:
        host = ipaddress.ip_address("::1" if host.version == 6 else "127.0.0.1")
    shown = "[%s]" % host if host.version == 6 else str(host)
    return "http://%s:%d" % (shown, listen.port)
