"""The OpenAPI 3 description of the REST API, served at ``/v1/openapi.json``.

It is the contract: the end-to-end tests fuzz the running controller against it
(schemathesis) and fail on any undocumented status, header or body.
"""
import copy

from app import config
from app.config import remote

_NAME = {"type": "string", "pattern": "^%s$" % config.NAME_RE.pattern}
_PORT_REF = {"oneOf": [{"type": "integer", "minimum": 1, "maximum": config.OFPP_MAX},
                       {"type": "string", "pattern": r"^\S*[^0-9\s]\S*$",
                        "description": "an interface name (numbers go as integers)"}]}
_PREFIX4 = {"type": "string", "pattern": r"^(\d{1,3}\.){3}\d{1,3}(/\d{1,2})?$",
            "description": "an IPv4 prefix without host bits, e.g. 10.2.0.0/16"}
_PREFIX6 = {"type": "string", "pattern": r"^[0-9a-fA-F:.]*:[0-9a-fA-F:.]*(/\d{1,3})?$",
            "description": "an IPv6 prefix without host bits, e.g. fd00:2::/48"}
_NULLABLE_INT = {"type": "integer", "nullable": True}

_MATCH = {
    "vlan": {"type": "integer", "minimum": 0, "maximum": 4094},
    "ipv4_src": _PREFIX4, "ipv4_dst": _PREFIX4, "ipv6_src": _PREFIX6, "ipv6_dst": _PREFIX6,
    "ip_proto": {"oneOf": [{"type": "string", "enum": sorted(config.IP_PROTOS)},
                           {"type": "integer", "minimum": 0, "maximum": 255}]},
    "src_port": {"type": "integer", "minimum": 1, "maximum": 65535},
    "dst_port": {"type": "integer", "minimum": 1, "maximum": 65535},
}

_CAPTURE_INPUT = {
    "type": "object", "additionalProperties": False, "required": ["name"],
    "description": "Packets matching every given field go into the tunnel. Rules without IP "
                   "prefixes apply to IPv4 and IPv6; src_port/dst_port need ip_proto tcp/udp.",
    "properties": dict({
        "name": _NAME,
        "in_port": {"description": "role (lan, wan, local) or configured port; default: any "
                                   "port but the tunnel",
                    # a role name matches the string branch as well
                    "oneOf": [_PORT_REF, {"type": "array", "minItems": 1, "items": _PORT_REF}]},
    }, **_MATCH),
}

_FILTER = {"type": "object", "nullable": True, "additionalProperties": False,
           "properties": _MATCH, "description": "copy only matching packets"}

_LOCAL_DESTINATION = {
    "type": "object", "additionalProperties": False, "required": ["port"],
    "properties": {
        "port": {"description": "an analyzer port (no role): it carries only copies",
                 **_PORT_REF},
        "vlan": {"type": "integer", "minimum": 0, "maximum": 4094, "nullable": True,
                 "description": "push this 802.1Q tag on the copies"},
        "eth_dst": {"type": "string", "nullable": True,
                    "pattern": "^%s$" % config.MAC_RE.pattern,
                    "description": "rewrite the copies' destination MAC"}}}
_REMOTE_FIELDS = {
    "erspan": {"version": {"type": "integer", "enum": [1, 2]},
               "session_id": {"type": "integer", "minimum": 0, "maximum": 1023},
               "index": {"type": "integer", "minimum": 0, "maximum": 2**20 - 1,
                         "description": "version 1 only (default 0)"},
               "direction": {"type": "string", "enum": list(remote.ERSPAN_DIRECTIONS),
                             "description": "version 2 only (default ingress)"},
               "hwid": {"type": "integer", "minimum": 0, "maximum": 63,
                        "description": "version 2 only (default 0)"}},
    "gre": {"key": {"type": "integer", "minimum": 0, "maximum": 2**32 - 1}},
    "vxlan": {"vni": {"type": "integer", "minimum": 0, "maximum": 2**24 - 1}},
}


def _remote_destination(kind, fields):
    required = ["remote_ip"] + (["version", "session_id"] if kind == "erspan" else [])
    return {"type": "object", "additionalProperties": False, "required": [kind],
            "properties": {kind: {
                "type": "object", "additionalProperties": False, "required": required,
                "description": "a remote analyzer reached over %s" % kind.upper(),
                "properties": dict(
                    remote_ip={"type": "string", "description": "IPv4 or IPv6 unicast"},
                    mtu={"type": "integer", "minimum": 576, "maximum": 65535,
                         "default": remote.DEFAULT_MTU,
                         "description": "the underlay's path MTU: longer copies are cut "
                                        "to fit before encapsulation"},
                    **fields)}}}


_MIRROR_INPUT = {
    "type": "object", "additionalProperties": False,
    "required": ["name", "sources", "destinations"],
    "properties": {
        "name": _NAME,
        "sources": {"type": "array", "minItems": 1, "items": {
            "type": "object", "additionalProperties": False, "required": ["port"],
            "properties": {
                "port": {"description": "a port, or a role: lan, wan, tunnel, local",
                         **_PORT_REF},
                "direction": {"type": "string", "enum": list(config.DIRECTIONS),
                              "default": "both"}}}},
        "destinations": {"type": "array", "minItems": 1, "items": {"oneOf": [
            _LOCAL_DESTINATION] + [_remote_destination(kind, fields)
                                   for kind, fields in _REMOTE_FIELDS.items()]}},
        "filter": _FILTER,
        "snaplen": {"type": "integer", "minimum": 64, "maximum": 65535, "nullable": True,
                    "description": "truncate copies to this many bytes"},
        "rate_limit": {"type": "object", "nullable": True, "additionalProperties": False,
                       "minProperties": 1, "maxProperties": 1,
                       "description": "cap the copies (never the original): one of pps, kbps",
                       "properties": {"pps": {"type": "integer", "minimum": 1},
                                      "kbps": {"type": "integer", "minimum": 1}}},
    },
}

_COUNTS = {"type": "object", "required": ["packets", "bytes"],
           "properties": {"packets": {"type": "integer"}, "bytes": {"type": "integer"}}}
_DESTINATION_COUNTS = dict(
    _COUNTS, description="per destination: a port, or a remote analyzer as kind:ip/key")


def _stored(schema, counters):
    out = copy.deepcopy(schema)
    out["additionalProperties"] = False
    out["required"] = sorted(set(out.get("required", [])) | {"source"})
    out["properties"]["source"] = {"type": "string", "enum": ["config", "api"],
                                   "description": "config: from the YAML file (read-only "
                                                  "here); api: made over REST"}
    out["properties"]["counters"] = counters
    return out


_CAPTURE = _stored(_CAPTURE_INPUT, dict(_COUNTS, description="packets captured by the rule"))
_MIRROR = _stored(_MIRROR_INPUT, {
    "type": "object", "required": ["packets", "bytes", "rate_limited", "destinations"],
    "description": "copies delivered (group/bucket counts less the meter's drops)",
    "properties": dict(_COUNTS["properties"], rate_limited={"type": "integer"},
                       truncated={"type": "integer", "description": "remote copies cut to "
                                  "fit a path MTU (all remote destinations of the session)"},
                       destinations={"type": "object",
                                     "additionalProperties": _DESTINATION_COUNTS})})
_OVS_SETTINGS = {
    "type": "object", "required": ["ok"],
    "description": "the OVS settings sggw depends on, as last checked through OVSDB",
    "properties": {
        "ok": {"type": "boolean"},
        "error": {"type": "string", "description": "why they could not be checked"},
        "problems": {"type": "array", "items": {"type": "string"}},
        "fix": {"type": "string", "description": "the ovs-vsctl command that fixes them"}}}
_ROLE = {"type": "string", "enum": ["master", "slave", "equal"],
         "description": "in a cluster: the OpenFlow role the switch granted this instance "
                        "(equal: a new connection whose MASTER request was refused)"}
_SCHEMAS = {
    "Error": {"type": "object", "additionalProperties": False, "required": ["error", "field"],
              "properties": {"error": {"type": "string"},
                             "field": {"type": "string", "nullable": True,
                                       "description": "the key path of the bad input"}}},
    "Health": {"type": "object", "required": ["status", "switches"], "properties": {
        "status": {"type": "string", "enum": ["ok", "degraded"]},
        "switches": {"type": "object", "additionalProperties": {
            "type": "object", "properties": {
                "connected": {"type": "boolean"},
                "state": {"type": "string", "nullable": True,
                          "enum": ["connecting", "programmed", "failed", "repairing", "standby",
                                   "fenced", None]},
                "error": {"type": "string", "nullable": True},
                "answering": {"type": "boolean", "nullable": True},
                "learned_tables_bounded": {"type": "boolean", "nullable": True},
                "ovs_settings": dict(_OVS_SETTINGS, nullable=True),
                "intruders": {"$ref": "#/components/schemas/Intruders"},
                "remote_destinations": {
                    "type": "array", "description": "what copies to each remote analyzer "
                    "meet in the underlay: state ok, unroutable, unresolved or unknown",
                    "items": {"type": "object",
                              "required": ["session", "destination", "state"],
                              "properties": {k: {"type": "string"} for k in (
                                  "session", "destination", "state", "error", "via",
                                  "source", "next_hop", "mac")}}},
                "role": _ROLE}}},
        "cluster": {
            "type": "object", "description": "only in a cluster of controllers",
            "properties": {
                "name": {"type": "string"},
                "role": {"type": "string", "enum": ["master", "standby", "electing"]},
                "generation": {"type": "integer", "nullable": True,
                               "description": "the OpenFlow role generation_id"},
                "store": {"type": "array", "items": {"type": "string"}},
                "store_connected": {"type": "boolean"},
                "store_error": {"type": "string", "nullable": True,
                                "description": "while not connected: why, per member "
                                "(refused certificate, no answer, ...)"},
                "master": {"type": "string", "nullable": True},
                "master_api": {"type": "string", "nullable": True}}},
        "kept_not_applied": {
            "type": "array", "description": "REST-made objects kept in the state file that "
            "the config does not fit now; applied again once it does",
            "items": {"type": "object", "required": ["switch", "kind", "name", "reason"],
                      "properties": {"switch": {"type": "string"},
                                     "kind": {"type": "string",
                                              "enum": ["captures", "mirrors"]},
                                     "name": {"type": "string"},
                                     "reason": {"type": "string"}}}}}},
    "Intruders": {
        "type": "array", "description": "other connections claiming this datapath id: "
                                        "left unprogrammed",
        "items": {"type": "object", "properties": {
            "address": {"type": "string"}, "bridge": {"type": "string", "nullable": True}}}},
    "Switch": {"type": "object", "required": ["name", "dp_id", "connected"], "properties": {
        "name": {"type": "string"}, "dp_id": {"type": "string"},
        "connected": {"type": "boolean"},
        "state": {"type": "string",
                  "enum": ["connecting", "programmed", "failed", "repairing", "standby",
                           "fenced"]},
        "error": {"type": "string", "nullable": True},
        "packet_ins": {"type": "integer"}, "neighbour_probes": {"type": "integer"},
        "learned_tables_bounded": {"type": "boolean"},
        "answering": {"type": "boolean"},
        "ovs_settings": _OVS_SETTINGS,
        "intruders": {"$ref": "#/components/schemas/Intruders"}, "role": _ROLE,
        "ports": {"type": "array", "items": {
            "type": "object", "required": ["port_no", "name", "role", "up"], "properties": {
                "port_no": {"type": "integer"}, "name": {"type": "string"},
                "role": {"type": "string", "nullable": True,
                         "enum": ["lan", "wan", "tunnel", "local", None]},
                "up": {"type": "boolean"}}}}}},
    "CaptureRuleInput": _CAPTURE_INPUT,
    "CaptureRule": _CAPTURE,
    "MirrorInput": _MIRROR_INPUT,
    "Mirror": _MIRROR,
    "Paths": {"type": "object", "required": ["total", "paths"], "properties": {
        "total": {"type": "integer"},
        "paths": {"type": "array", "items": {"$ref": "#/components/schemas/Path"}}}},
    "Path": {
        "type": "object", "required": ["reply", "to", "packets", "bytes", "duration",
                                       "idle_timeout", "idle_age"],
        "description": "A learned reverse path: the reply it waits for and where it sends it.",
        "properties": {
            "reply": {"type": "object", "properties": {
                "family": {"type": "integer", "enum": [4, 6]},
                "src": {"type": "string"}, "dst": {"type": "string"},
                "proto": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
                "src_port": {"type": "integer"}, "dst_port": {"type": "integer"},
                "vlan": _NULLABLE_INT,
                "from": {"type": "string", "enum": ["tunnel", "wire"]}}},
            "to": {"type": "object", "properties": {
                "port_no": _NULLABLE_INT, "port": {"type": "string", "nullable": True},
                "eth_dst": {"type": "string", "nullable": True},
                "eth_src": {"type": "string", "nullable": True}}},
            "packets": _NULLABLE_INT, "bytes": _NULLABLE_INT,
            "duration": {"type": "integer", "nullable": True,
                         "description": "seconds since learned (null with conntrack, which "
                                        "keeps no counters either)"},
            "idle_timeout": {"type": "integer"},
            "idle_age": {"type": "integer", "nullable": True,
                         "description": "seconds since the path last carried a reply. "
                                        "learn(): watched by the controller between "
                                        "listings (null the first time a used path is "
                                        "seen; then a lower bound until its counter "
                                        "moves). conntrack: from the time left before "
                                        "the entry expires"}}},
    "Flushed": {"type": "object", "required": ["flushed"],
                "properties": {"flushed": {"type": "integer"}}},
}

_DESCRIPTIONS = {
    200: "OK", 201: "Created", 204: "Deleted", 400: "Bad input: the field says which",
    401: "A token is configured and the request's bearer token is missing or wrong",
    404: "No such switch or object", 405: "Method not allowed here",
    409: "Name taken (also by an object kept in the state file), the object is defined in "
         "the config file, or every id is in use",
    415: "The body is not sent as Content-Type: application/json",
    500: "Internal error (see the controller log), or the REST-made objects could not be "
         "stored: nothing was changed",
    502: "The switch refused the change: nothing was changed",
    503: "The switch is not connected, not programmed, or did not answer: nothing was "
         "changed (a switch that did not answer is put back as it was)",
}


def _ref(name):
    return {"$ref": "#/components/schemas/%s" % name}


def _json(schema):
    return {"content": {"application/json": {"schema": schema}}}


def _responses(ok, ok_schema=None, errors=(400, 401, 404)):
    out = {str(ok): dict({"description": _DESCRIPTIONS[ok]},
                         **(_json(ok_schema) if ok_schema else {}))}
    for status in errors:
        out[str(status)] = dict({"description": _DESCRIPTIONS[status]}, **_json(_ref("Error")))
    return out


def _params(*names):
    specs = {
        "dp": {"name": "dp", "in": "path", "required": True, "schema": {"type": "string"},
               "description": "datapath name, or dp_id in decimal or 0x-hex"},
        "name": {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
        "limit": {"name": "limit", "in": "query", "schema": {
            "type": "integer", "minimum": 1, "maximum": 1000000, "default": 1000},
            "description": "how many paths to return, newest first (total counts them all)"},
        "port": {"name": "port", "in": "query", "schema": {"type": "string", "minLength": 1},
                 "description": "only paths whose replies go out of this port"},
        "host": {"name": "host", "in": "query", "schema": {"type": "string", "minLength": 1},
                 "description": "only paths to or from this IP address"},
    }
    return [specs[n] for n in names]


def _collection(kind, item, input_schema):
    return {
        "parameters": _params("dp"),
        "get": {"summary": "List %ss (config file's first), with live counters" % kind,
                "responses": _responses(200, {"type": "array", "items": _ref(item)},
                                        (401, 404))},
        "post": {"summary": "Create a %s; returns once the switch confirmed it" % kind,
                 "requestBody": dict({"required": True}, **_json(_ref(input_schema))),
                 "responses": _responses(201, _ref(item),
                                         (400, 401, 404, 409, 415, 500, 502, 503))},
    }


def _item(kind, item, input_schema):
    return {
        "parameters": _params("dp", "name"),
        "get": {"summary": "One %s, with live counters" % kind,
                "responses": _responses(200, _ref(item), (401, 404))},
        "put": {"summary": "Replace a REST-made %s" % kind,
                "requestBody": dict({"required": True}, **_json(_ref(input_schema))),
                "responses": _responses(200, _ref(item),
                                        (400, 401, 404, 409, 415, 500, 502, 503))},
        "delete": {"summary": "Delete a REST-made %s: its flows, groups and meters go" % kind,
                   "responses": _responses(204, None, (401, 404, 409, 500, 502, 503))},
    }


def document():
    return {
        "openapi": "3.0.3",
        "info": {"title": "sggw", "version": "1",
                 "description": "A self-learning VPN bump in the wire on Open vSwitch: "
                                "switches, capture rules, mirror sessions, learned paths."},
        "components": {"schemas": _SCHEMAS, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer",
                       "description": "required when the config sets api.token"}}},
        "security": [{}, {"bearer": []}],
        "paths": {
            "/v1/health": {"get": {"summary": "Controller and switch status",
                                   "responses": _responses(200, _ref("Health"), (401,))}},
            "/v1/openapi.json": {"get": {"summary": "This document",
                                         "responses": _responses(200, {"type": "object"},
                                                                 (401,))}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": dict(
                {"200": {"description": "OK", "content": {"text/plain": {
                    "schema": {"type": "string"}}}}},
                **{k: v for k, v in _responses(200, None, (401,)).items() if k != "200"})}},
            "/v1/switches": {"get": {"summary": "Configured switches",
                                     "responses": _responses(200, {"type": "array",
                                                                   "items": _ref("Switch")},
                                                             (401,))}},
            "/v1/switches/{dp}": {"parameters": _params("dp"), "get": {
                "summary": "One switch: ports with roles and link state",
                "responses": _responses(200, _ref("Switch"), (401, 404))}},
            "/v1/switches/{dp}/captures": _collection("capture rule", "CaptureRule",
                                                      "CaptureRuleInput"),
            "/v1/switches/{dp}/captures/{name}": _item("capture rule", "CaptureRule",
                                                       "CaptureRuleInput"),
            "/v1/switches/{dp}/mirrors": _collection("mirror session", "Mirror",
                                                     "MirrorInput"),
            "/v1/switches/{dp}/mirrors/{name}": _item("mirror session", "Mirror",
                                                      "MirrorInput"),
            "/v1/switches/{dp}/paths": {
                "parameters": _params("dp"),
                "get": {"summary": "Learned reverse paths, with idle age and counters",
                        "parameters": _params("limit"),
                        "responses": _responses(200, _ref("Paths"), (400, 401, 404, 503))},
                "delete": {"summary": "Flush learned reverse paths (optionally by port/host)",
                           "parameters": _params("port", "host"),
                           "responses": _responses(200, _ref("Flushed"),
                                                   (400, 401, 404, 503))}},
        },
    }
