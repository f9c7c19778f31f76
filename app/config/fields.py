"""The field parsers every part of the config is checked with, and its one error.

A parser takes a value and its key path and returns the value checked (and converted),
or raises :class:`ConfigError` naming the path and the reason.
"""
import ipaddress
import re

from app.config.model import IP_PROTOS, NAME_RE, OFPP_MAX


class ConfigError(ValueError):
    """A config problem at ``path`` (a key path like ``datapaths.a.ports.lan[0]``)."""

    def __init__(self, path, reason, source=None):
        super().__init__(reason)
        self.path = path
        self.reason = reason
        self.source = source

    def __str__(self):
        parts = [p for p in (self.source, self.path) if p]
        return ": ".join(parts + [self.reason])


def mapping(value, path, allowed, required=()):
    if not isinstance(value, dict):
        raise ConfigError(path, "expected a mapping, got %s" % show(value))
    for key in value:
        if key not in allowed:
            raise ConfigError(join(path, key_text(key)), "unknown key (expected one of: %s)"
                              % ", ".join(allowed))
    for key in required:
        if key not in value:
            raise ConfigError(join(path, key), "is required")
    return value


def integer(value, path, low, high, fmt="%d"):
    """An integer from YAML; strings of decimal digits or 0x-hex are read too."""
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"0[xX][0-9a-fA-F]+", text):
            value = int(text, 16)
        elif re.fullmatch(r"[0-9]+", text):
            value = int(text, 10)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(path, "expected an integer, got %s" % show(value))
    if not low <= value <= high:
        raise ConfigError(path, "%s is out of range %s..%s" % (fmt % value, fmt % low,
                                                               fmt % high))
    return value


def dp_id(value, path):
    """A datapath id: an integer, 0x-hex, or 16 hex digits as ``ovs-ofctl show`` prints it."""
    if isinstance(value, str) and re.fullmatch(r"[0-9a-fA-F]{16}", value.strip()):
        value = int(value.strip(), 16)
    return integer(value, path, 1, 2**64 - 1, fmt="%#x")


def name(value, path):
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        raise ConfigError(path, "%s is not a valid name (letters, digits, '_', '.', '-'; "
                                "at most 64)" % show(value))
    return value


def port_ref(value, path):
    """An OpenFlow port number or an interface name."""
    if isinstance(value, str) and value.strip():
        if value.isdigit():
            return integer(value, path, 1, OFPP_MAX)
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return integer(value, path, 1, OFPP_MAX)
    raise ConfigError(path, "expected a port number or interface name, got %s" % show(value))


def network(value, path, version):
    kind = "IPv%d prefix" % version
    if not isinstance(value, str):
        raise ConfigError(path, "expected an %s like %s, got %s" % (
            kind, "10.2.0.0/16" if version == 4 else "fd00:2::/48", show(value)))
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ConfigError(path, "%r is not an %s (%s)" % (value, kind, exc)) from None
    if net.version != version:
        raise ConfigError(path, "%r is not an %s" % (value, kind))
    return net


def ip_proto(value, path):
    if isinstance(value, str) and value.lower() in IP_PROTOS:
        return IP_PROTOS[value.lower()]
    if isinstance(value, (int, str)) and not isinstance(value, bool) \
            and str(value).strip().isdigit():
        return integer(value, path, 0, 255)
    raise ConfigError(path, "expected tcp, udp, icmp, icmpv6 or a number 0..255, got %s"
                      % show(value))


def list_of(value, path, what):
    if not isinstance(value, list) or not value:
        raise ConfigError(path, "expected a non-empty list of %s, got %s" % (what, show(value)))
    return value


def readable_file(value, path):
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(path, "expected a file path, got %s" % show(value))
    try:
        with open(value, "rb"):
            pass
    except OSError as exc:
        raise ConfigError(path, "cannot read %s: %s" % (value, exc.strerror)) from None


def join(path, key):
    return "%s.%s" % (path, key) if path else str(key)


def key_text(key):
    """A key as it may appear in a one-line key path."""
    if isinstance(key, str) and re.fullmatch(r"[\w.-]+", key):
        return key
    return repr(key)


def one_line(text):
    return " ".join(str(text).split())


def show(value):
    if isinstance(value, (dict, list)):
        return "a %s" % ("mapping" if isinstance(value, dict) else "list")
    if value is None:
        return "nothing"
    return repr(value)
