"""The config: what users write in ``sggw.yaml`` (and in REST bodies), loaded and checked
into immutable objects. Imports nothing else of sggw.

Its names are read as ``config.X`` everywhere (``from app import config``): the objects
(:mod:`app.config.model`), the one error and the loaders. ``python -m app.config FILE``
checks a file without starting the controller.
"""
from app.config.fields import ConfigError
from app.config.loader import MirrorPorts, capture_rule, load, loads, main, mirror, parse
from app.config.model import (
    DEFAULT_OVSDB, DEFAULT_STATE_FILE, DIRECTIONS, FILTER_NAME, IP_PROTOS, MAC_RE,
    MATCH_MODES, MAX_CONFIG_OBJECTS, NAME_RE, OFPP_MAX, ROLES, SOURCE_ROLES, CaptureRule,
    Cluster, Config, Datapath, Listen, Mirror, MirrorDestination, MirrorSource, Ports,
    ReversePath, StoreTls)

__all__ = [
    "ConfigError", "MirrorPorts", "capture_rule", "load", "loads", "main", "mirror", "parse",
    "DEFAULT_OVSDB", "DEFAULT_STATE_FILE", "DIRECTIONS", "FILTER_NAME", "IP_PROTOS", "MAC_RE",
    "MATCH_MODES", "MAX_CONFIG_OBJECTS", "NAME_RE", "OFPP_MAX", "ROLES", "SOURCE_ROLES",
    "CaptureRule", "Cluster", "Config", "Datapath", "Listen", "Mirror", "MirrorDestination",
    "MirrorSource", "Ports", "ReversePath", "StoreTls"]
