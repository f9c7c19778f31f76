"""The config: what users write in ``sggw.yaml`` (and in REST bodies), loaded and checked
into immutable objects. Imports nothing else of sggw.

Each object is declared once (:mod:`app.config.schema`): the declarations check the file
(:mod:`app.config.file`) and REST bodies (:mod:`app.config.objects`), and describe both as
JSON Schema. Its names are read as ``config.X`` everywhere (``from app import config``).
``python -m app.config FILE`` checks a file without starting the controller.
"""
from app.config.file import json_schema, parse
from app.config.loader import load, loads, main
from app.config.model import (
    DEFAULT_OVSDB, DEFAULT_STATE_FILE, DIRECTIONS, FILTER_NAME, IP_PROTOS, MAC_RE,
    MATCH_MODES, MAX_CONFIG_OBJECTS, NAME_RE, OFPP_MAX, ROLES, SOURCE_ROLES, CaptureRule,
    Cluster, Config, Datapath, Listen, Mirror, MirrorDestination, MirrorSource, Ports,
    ReversePath, StoreTls)
from app.config.objects import MirrorPorts, capture_rule, mirror
from app.config.schema import ConfigError

__all__ = [
    "ConfigError", "MirrorPorts", "capture_rule", "json_schema", "load", "loads", "main",
    "mirror", "parse",
    "DEFAULT_OVSDB", "DEFAULT_STATE_FILE", "DIRECTIONS", "FILTER_NAME", "IP_PROTOS", "MAC_RE",
    "MATCH_MODES", "MAX_CONFIG_OBJECTS", "NAME_RE", "OFPP_MAX", "ROLES", "SOURCE_ROLES",
    "CaptureRule", "Cluster", "Config", "Datapath", "Listen", "Mirror", "MirrorDestination",
    "MirrorSource", "Ports", "ReversePath", "StoreTls"]
