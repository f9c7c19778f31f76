"""The OpenAPI 3 description of the REST API, served at ``/v1/openapi.json``.

It is the contract: the end-to-end tests fuzz the running controller against it
(schemathesis) and fail on any undocumented status, header or body. Every schema in it is
generated: the bodies a client sends from the same declarations that check them
(:mod:`app.config.objects`), the answers from the declarations below.
"""
from app.config.objects import CAPTURE_RULE, MIRROR
from app.config.schema import (
    OPENAPI, AnyOf, Bool, Choice, Field, Int, ListOf, MapOf, Record, Ref, Text)

TEXT, INT, BOOL = Text(), Int(), Bool()
NULLABLE_TEXT, NULLABLE_INT = TEXT.but(nullable=True), INT.but(nullable=True)


def _answer(*fields, **kw):
    """An answer's object: the keys given, and maybe more in a later version."""
    return Record(*fields, closed=False, **kw)


def _required(*names_and_nodes):
    return [Field(name, node, required=True) for name, node in names_and_nodes]


_COUNTS = _answer(*_required(("packets", INT), ("bytes", INT)))


def _stored(record, counters):
    """An object as the API shows it: what was sent, where it comes from, its counters."""
    return record.derived(add=(
        Field("source", Choice(("config", "api"),
                               description="config: from the YAML file (read-only here); "
                                           "api: made over REST"), required=True),
        Field("counters", counters)))


_OVS_SETTINGS = _answer(
    Field("ok", BOOL, required=True),
    Field("error", Text(description="why they could not be checked")),
    Field("problems", ListOf(TEXT)),
    Field("fix", Text(description="the ovs-vsctl command that fixes them")),
    description="the OVS settings sggw depends on, as last checked through OVSDB")
_ROLE = Choice(("master", "slave", "equal"),
               description="in a cluster: the OpenFlow role the switch granted this instance "
                           "(equal: a new connection whose MASTER request was refused)")
_STATES = ("connecting", "programmed", "failed", "repairing", "standby", "fenced")
_SWITCH_HEALTH = _answer(
    Field("connected", BOOL),
    Field("state", Choice(_STATES, nullable=True)),
    Field("error", NULLABLE_TEXT),
    Field("answering", BOOL.but(nullable=True)),
    Field("learned_tables_bounded", BOOL.but(nullable=True)),
    Field("ovs_settings", _OVS_SETTINGS.but(nullable=True)),
    Field("intruders", Ref("Intruders")),
    Field("remote_destinations", ListOf(
        _answer(*(Field(name, TEXT, required=name in ("session", "destination", "state"))
                  for name in ("session", "destination", "state", "error", "via", "source",
                               "next_hop", "mac"))),
        description="what copies to each remote analyzer meet in the underlay: state ok, "
                    "unroutable, unresolved or unknown")),
    Field("role", _ROLE))
_CLUSTER = _answer(
    Field("name", TEXT),
    Field("role", Choice(("master", "standby", "electing"))),
    Field("generation", INT.but(nullable=True, description="the OpenFlow role generation_id")),
    Field("store", ListOf(TEXT)),
    Field("store_connected", BOOL),
    Field("store_error", Text(nullable=True, description="while not connected: why, per "
                                                         "member (refused certificate, no "
                                                         "answer, ...)")),
    Field("master", NULLABLE_TEXT),
    Field("master_api", NULLABLE_TEXT),
    description="only in a cluster of controllers")
_KEPT = _answer(*_required(("switch", TEXT), ("kind", Choice(("captures", "mirrors"))),
                           ("name", TEXT), ("reason", TEXT)))
_PATH = _answer(
    *_required(
        ("reply", _answer(
            Field("family", Choice((4, 6))), Field("src", TEXT), Field("dst", TEXT),
            Field("proto", AnyOf(TEXT, INT)), Field("src_port", INT),
            Field("dst_port", INT), Field("vlan", NULLABLE_INT),
            Field("from", Choice(("tunnel", "wire"))))),
        ("to", _answer(Field("port_no", NULLABLE_INT), Field("port", NULLABLE_TEXT),
                       Field("eth_dst", NULLABLE_TEXT), Field("eth_src", NULLABLE_TEXT))),
        ("packets", NULLABLE_INT), ("bytes", NULLABLE_INT),
        ("duration", INT.but(nullable=True, description="seconds since learned (null with "
                                                        "conntrack, which keeps no counters "
                                                        "either)")),
        ("idle_timeout", INT),
        ("idle_age", INT.but(nullable=True, description="seconds since the path last carried "
                                                        "a reply. learn(): watched by the "
                                                        "controller between listings (null "
                                                        "the first time a used path is listed; "
                                                        "then a lower bound until its counter "
                                                        "moves). conntrack: from the time "
                                                        "left before the entry expires"))),
    description="A learned reverse path: the reply it waits for and where it sends it.")

_SCHEMAS = {
    "Error": Record(Field("error", TEXT, required=True),
                    Field("field", Text(nullable=True, description="the key path of the bad "
                                                                   "input"), required=True)),
    "Health": _answer(
        Field("status", Choice(("ok", "degraded")), required=True),
        Field("switches", MapOf(TEXT, _SWITCH_HEALTH), required=True),
        Field("cluster", _CLUSTER),
        Field("kept_not_applied", ListOf(_KEPT, description="REST-made objects kept in the "
                                                            "state file that the config does "
                                                            "not fit now; applied again once "
                                                            "it does"))),
    "Intruders": ListOf(_answer(Field("address", TEXT), Field("bridge", NULLABLE_TEXT)),
                        description="other connections claiming this datapath id: left "
                                    "unprogrammed"),
    "Switch": _answer(
        *_required(("name", TEXT), ("dp_id", TEXT), ("connected", BOOL)),
        Field("state", Choice(_STATES)),
        Field("error", NULLABLE_TEXT),
        Field("packet_ins", INT), Field("neighbour_probes", INT),
        Field("learned_tables_bounded", BOOL),
        Field("answering", BOOL),
        Field("ovs_settings", _OVS_SETTINGS),
        Field("intruders", Ref("Intruders")), Field("role", _ROLE),
        Field("ports", ListOf(_answer(*_required(
            ("port_no", INT), ("name", TEXT),
            ("role", Choice(("lan", "wan", "tunnel", "local"), nullable=True)),
            ("up", BOOL)))))),
    "CaptureRuleInput": CAPTURE_RULE,
    "CaptureRule": _stored(CAPTURE_RULE,
                           _COUNTS.but(description="packets captured by the rule")),
    "MirrorInput": MIRROR,
    "Mirror": _stored(MIRROR, _answer(
        *_required(("packets", INT), ("bytes", INT), ("rate_limited", INT),
                   ("destinations", MapOf(TEXT, _COUNTS.but(
                       description="per destination: a port, or a remote analyzer as "
                                   "kind:ip/key")))),
        Field("truncated", INT.but(description="remote copies cut to fit a path MTU (all "
                                               "remote destinations of the session)")),
        description="copies delivered (group/bucket counts less the meter's drops)")),
    "Paths": _answer(*_required(("total", INT), ("paths", ListOf(Ref("Path"))))),
    "Path": _PATH,
    "Flushed": _answer(*_required(("flushed", INT))),
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
    504: "A cluster's store lost its answer and has not settled whether the change was "
         "made: it may have been; GET shows what the store holds, and the switches follow it",
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
                                         (400, 401, 404, 409, 415, 500, 502, 503, 504))},
    }


def _item(kind, item, input_schema):
    return {
        "parameters": _params("dp", "name"),
        "get": {"summary": "One %s, with live counters" % kind,
                "responses": _responses(200, _ref(item), (401, 404))},
        "put": {"summary": "Replace a REST-made %s" % kind,
                "requestBody": dict({"required": True}, **_json(_ref(input_schema))),
                "responses": _responses(200, _ref(item),
                                        (400, 401, 404, 409, 415, 500, 502, 503, 504))},
        "delete": {"summary": "Delete a REST-made %s: its flows, groups and meters go" % kind,
                   "responses": _responses(204, None, (401, 404, 409, 500, 502, 503, 504))},
    }


def document():
    return {
        "openapi": "3.0.3",
        "info": {"title": "sggw", "version": "1",
                 "description": "A self-learning VPN bump in the wire on Open vSwitch: "
                                "switches, capture rules, mirror sessions, learned paths."},
        "components": {"schemas": {name: node.schema(OPENAPI)
                                   for name, node in _SCHEMAS.items()}, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer",
                       "description": "required when the config sets api.token"}}},
        "security": [{}, {"bearer": []}],
        "paths": {
            "/v1/health": {"get": {"summary": "Controller and switch status",
                                   "responses": _responses(200, _ref("Health"), (401,))}},
            "/v1/openapi.json": {"get": {"summary": "This document",
                                         "responses": _responses(200, {"type": "object"},
                                                                 (401,))}},
            "/v1/config-schema.json": {"get": {
                "summary": "The JSON Schema (draft-07) of sggw.yaml, for editors",
                "responses": _responses(200, {"type": "object"}, (401,))}},
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
                "get": {"summary": "Learned reverse paths, with idle age and counters "
                                   "(optionally by port/host)",
                        "parameters": _params("limit", "port", "host"),
                        "responses": _responses(200, _ref("Paths"), (400, 401, 404, 503))},
                "delete": {"summary": "Flush learned reverse paths (optionally by port/host)",
                           "parameters": _params("port", "host"),
                           "responses": _responses(200, _ref("Flushed"),
                                                   (400, 401, 404, 503))}},
        },
    }
