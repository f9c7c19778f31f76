"""Request bodies for ``captures add`` and ``mirrors add``: a JSON or YAML file for anything,
flags for the common cases (a flag wins over the file's key). The controller checks the
result; here only the flags' own syntax is checked.
"""
import sys

import yaml

from sggwctl.errors import USAGE, CtlError

# match flags shared by capture rules and mirror filters: (flag, body key, type)
MATCH_FLAGS = (
    ("--vlan", "vlan", int), ("--ipv4-src", "ipv4_src", str), ("--ipv4-dst", "ipv4_dst", str),
    ("--ipv6-src", "ipv6_src", str), ("--ipv6-dst", "ipv6_dst", str),
    ("--proto", "ip_proto", str), ("--src-port", "src_port", int),
    ("--dst-port", "dst_port", int),
)


def add_match_flags(parser):
    for flag, key, kind in MATCH_FLAGS:
        parser.add_argument(flag, dest=key, type=kind, metavar=key.upper())


def capture(args):
    body = from_file(args.file)
    body.update(_match(args))
    if args.in_port:
        body["in_port"] = [port(p) for p in args.in_port]
    return _named(body, args.name)


def mirror(args):
    body = from_file(args.file)
    if args.source:
        body["sources"] = [_source(text) for text in args.source]
    if args.dest:
        body["destinations"] = [_destination(text) for text in args.dest]
    match = _match(args)
    if match:
        body["filter"] = dict(body.get("filter") or {}, **match)
    if args.snaplen is not None:
        body["snaplen"] = args.snaplen
    if args.pps is not None or args.kbps is not None:
        body["rate_limit"] = {"pps": args.pps} if args.pps is not None else {"kbps": args.kbps}
    return _named(body, args.name)


def port(text):
    """A port as the API takes it: a number goes as an integer, a name or role as text."""
    return int(text) if text.isdigit() else text


def _source(text):
    """``PORT[,rx|tx|both]``."""
    parts = text.split(",")
    if len(parts) > 2 or not parts[0]:
        raise CtlError(USAGE, "--source %s: expected PORT or PORT,DIRECTION (rx, tx, both)"
                       % text)
    out = {"port": port(parts[0])}
    if len(parts) == 2:
        out["direction"] = parts[1]
    return out


def _destination(text):
    """``PORT[,vlan=N][,eth_dst=MAC]``."""
    first, *options = text.split(",")
    if not first:
        raise CtlError(USAGE, "--dest %s: expected PORT[,vlan=N][,eth_dst=MAC]" % text)
    out = {"port": port(first)}
    for option in options:
        key, _, value = option.partition("=")
        if key == "vlan" and value.isdigit():
            out["vlan"] = int(value)
        elif key == "eth_dst" and value:
            out["eth_dst"] = value
        else:
            raise CtlError(USAGE, "--dest %s: %r is not vlan=N or eth_dst=MAC" % (text, option))
    return out


def _match(args):
    out = {}
    for _, key, _kind in MATCH_FLAGS:
        value = getattr(args, key)
        if value is not None:
            out[key] = int(value) if key == "ip_proto" and value.isdigit() else value
    return out


def _named(body, name):
    if name is not None:
        body["name"] = name
    if "name" not in body:
        raise CtlError(USAGE, "give a NAME (or a name: in the --file)")
    return body


def from_file(path):
    """The file's object (JSON is YAML too), or {} without a file; ``-`` is stdin."""
    if path is None:
        return {}
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        data = yaml.safe_load(text)
    except OSError as exc:
        raise CtlError(USAGE, "%s: cannot read: %s" % (path, exc.strerror)) from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise CtlError(USAGE, "%s: not JSON or YAML: %s"
                       % (path, " ".join(str(exc).split()))) from None
    if not isinstance(data, dict):
        raise CtlError(USAGE, "%s: expected one object (a mapping), got a %s"
                       % (path, type(data).__name__))
    return data
