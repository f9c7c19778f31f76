"""sggwctl: operate a running sggw controller over its REST API.

    sggwctl [--api URL] [--token TOKEN] [--config FILE] [--json] COMMAND ...

    status                                health, and every switch
    switches [SWITCH]                     the switches; with SWITCH, its ports
    paths [-s SW] [--host IP] [--port P]  learned reverse paths
    paths flush [-s SW] [--host IP] [--port P]
    captures list|show|add|del ...        capture rules ("interesting traffic")
    mirrors list|show|add|del ...         mirror sessions
    export [-s SW] [-o FILE]              the REST-made rules and sessions, as one JSON file
    import [-s SW] FILE                   create or replace what FILE has (export wrote it)

A command that reads covers every switch unless ``--switch`` names one; one that changes
something needs ``--switch`` when the controller has more than one. Tables for people,
``--json`` for scripts: the server's JSON, keyed by switch name when it covers every switch.
Errors are one line on stderr; the exit statuses are in :mod:`sggwctl.errors`.
"""
import argparse
import ipaddress
import json
import sys

from sggwctl import backup, bodies, render, settings
from sggwctl.client import Client
from sggwctl.errors import DEGRADED, OK, REFUSED, USAGE, CtlError

KINDS = {"captures": ("capture rule", render.captures, render.capture, bodies.capture),
         "mirrors": ("mirror session", render.mirrors, render.mirror, bodies.mirror)}


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line and exit status 2, like every other sggwctl error."""

    def error(self, message):
        raise CtlError(USAGE, "%s: %s (see %s --help)" % (self.prog, message, self.prog))


def main(argv=None):
    try:
        args = parser().parse_args(sys.argv[1:] if argv is None else argv)
        api, token = settings.resolve(args.api, args.token, args.config)
        return args.run(Command(Client(api, token, args.timeout), args)) or OK
    except CtlError as err:
        print("sggwctl: %s" % err.line, file=sys.stderr)
        return err.code
    except KeyboardInterrupt:
        return 130


def _common(defaults):
    """The options every command takes, before or after its name. After the name they default
    to SUPPRESS, so they leave what the top level parsed alone. (The top level gets its own:
    parsers share their parents' action objects, defaults included.)"""
    def default(value):
        return value if defaults else argparse.SUPPRESS
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api", default=default(None), metavar="URL",
                        help="the REST API (default: SGGW_API, else from the config file, "
                             "else http://127.0.0.1:8080)")
    common.add_argument("--token", default=default(None),
                        help="bearer token (default: SGGW_TOKEN, else the config file's)")
    common.add_argument("--config", default=default(None), metavar="FILE",
                        help="the controller's YAML, to find the API and token (default: "
                             "SGGW_CONFIG, else %s if readable)" % settings.DEFAULT_CONFIG)
    common.add_argument("--json", action="store_true", default=default(False),
                        help="print the server's JSON instead of tables")
    common.add_argument("--timeout", type=float, default=default(30.0), metavar="S",
                        help="seconds to wait for an answer (default 30)")
    return common


def parser():
    common = _common(defaults=False)
    top = _Parser(prog="sggwctl", parents=[_common(defaults=True)],
                  description="Operate a running sggw controller over its REST API.",
                  epilog="exit status: 0 done, 1 the controller refused, 2 usage, "
                         "3 unreachable, 4 bad or missing token, 5 status: degraded")
    commands = top.add_subparsers(title="commands", metavar="COMMAND", required=True,
                                  parser_class=_Parser)

    status = commands.add_parser("status", parents=[common], help="health, and every switch")
    status.set_defaults(run=Command.status)

    switches = commands.add_parser("switches", parents=[common],
                                   help="the switches; with SWITCH, its ports")
    switches.add_argument("switch", nargs="?", metavar="SWITCH")
    switches.set_defaults(run=Command.switches)

    paths = commands.add_parser("paths", parents=[common],
                                help="learned reverse paths: list, or flush")
    paths.add_argument("action", nargs="?", choices=["flush"])
    _switch_flag(paths)
    paths.add_argument("--host", metavar="IP", help="only paths to or from this address")
    paths.add_argument("--port", metavar="PORT",
                       help="only paths whose replies go out of this port (name or number)")
    paths.add_argument("--limit", type=int, default=1000, metavar="N",
                       help="list from the newest N paths of each switch (default 1000)")
    paths.set_defaults(run=Command.paths)

    for kind, (noun, *_) in KINDS.items():
        group = commands.add_parser(kind, parents=[common], help="%ss" % noun)
        actions = group.add_subparsers(title="actions", metavar="ACTION", required=True,
                                       parser_class=_Parser)
        listing = actions.add_parser("list", parents=[common], help="every %s" % noun)
        _switch_flag(listing)
        listing.set_defaults(run=Command.list, kind=kind)
        for action, text in (("show", "one %s, with counters" % noun),
                             ("del", "delete a %s made over REST" % noun)):
            one = actions.add_parser(action, parents=[common], help=text)
            _switch_flag(one)
            one.add_argument("name", metavar="NAME")
            one.set_defaults(run=getattr(Command, "delete" if action == "del" else action),
                             kind=kind)
        add = actions.add_parser("add", parents=[common], help="create a %s" % noun)
        _switch_flag(add)
        add.add_argument("name", nargs="?", metavar="NAME")
        add.add_argument("-f", "--file", metavar="FILE",
                         help="the body as JSON or YAML ('-': stdin); flags override its keys")
        add.set_defaults(run=Command.add, kind=kind)
        _add_flags(kind, add)

    export = commands.add_parser("export", parents=[common],
                                 help="the REST-made capture rules and mirror sessions, as one "
                                      "JSON file for import")
    _switch_flag(export)
    export.add_argument("-o", "--output", metavar="FILE", help="write it to FILE, not stdout")
    export.set_defaults(run=Command.export)
    import_ = commands.add_parser("import", parents=[common],
                                  help="create or replace the capture rules and mirror "
                                       "sessions of a file export wrote (deletes nothing)")
    import_.add_argument("-s", "--switch", metavar="SWITCH",
                         help="only this switch of the file (default: every switch in it)")
    import_.add_argument("file", metavar="FILE", help="the file ('-': stdin)")
    import_.set_defaults(run=Command.import_)
    return top


def _switch_flag(parser_):
    parser_.add_argument("-s", "--switch", metavar="SWITCH",
                         help="a switch's name or dp_id (default: every switch, or the only one)")


def _add_flags(kind, add):
    if kind == "captures":
        add.add_argument("--in-port", action="append", metavar="PORT",
                         help="role (lan, wan, local) or port; repeat for several")
    else:
        add.add_argument("--source", action="append", metavar="PORT[,DIR]",
                         help="a source port or role, DIR rx, tx or both (default); repeat")
        add.add_argument("--dest", action="append", metavar="PORT[,vlan=N][,eth_dst=MAC]",
                         help="an analyzer port; repeat for several")
        add.add_argument("--snaplen", type=int, metavar="BYTES")
        rate = add.add_mutually_exclusive_group()
        rate.add_argument("--pps", type=int, help="cap the copies at this many packets/s")
        rate.add_argument("--kbps", type=int, help="cap the copies at this many kbit/s")
    bodies.add_match_flags(add)


class Command:
    """One run: the client and the parsed arguments; each method is a command."""

    def __init__(self, client, args):
        self.client, self.args = client, args

    def print(self, text, data):
        print(json.dumps(data, indent=1, sort_keys=True) if self.args.json else text)

    def status(self):
        health = self.client.call("GET", "/v1/health")
        found = self.client.call("GET", "/v1/switches")
        self.print(render.status(self.client.api, health, found),
                   {"health": health, "switches": found})
        return OK if health["status"] == "ok" else DEGRADED

    def switches(self):
        if self.args.switch is None:
            found = self.client.call("GET", "/v1/switches")
            self.print(render.switches(found), found)
            return
        one = self.client.call("GET", "/v1/switches/" + self.args.switch)
        self.print(render.switches([one]) + "\n\n" + render.ports(one), one)

    def paths(self):
        if self.args.action == "flush":
            name = self._one_switch()
            done = self.client.call("DELETE", "/v1/switches/%s/paths" % name,
                                    query={"host": self.args.host, "port": self.args.port})
            self.print("%s: flushed %d learned reverse paths" % (name, done["flushed"]), done)
            return
        self._check_host()
        out, text = {}, []
        for name in self._switches():
            listing = self.client.call("GET", "/v1/switches/%s/paths" % name,
                                       query={"limit": self.args.limit})
            shown = [p for p in listing["paths"] if self._selected(p)]
            out[name] = dict(listing, paths=shown)
            text.append(render.paths(name, listing, shown))
        self.print("\n\n".join(text), self._keyed(out))

    def list(self):
        noun, table = KINDS[self.args.kind][:2]
        out, text = {}, []
        for name in self._switches():
            out[name] = self.client.call("GET", "/v1/switches/%s/%s" % (name, self.args.kind))
            text.append("%s: %d %ss\n%s" % (name, len(out[name]), noun, table(out[name])))
        self.print("\n\n".join(text), self._keyed(out))

    def show(self):
        found = self.client.call("GET", self._item_path(self._one_switch(), self.args.name))
        self.print(KINDS[self.args.kind][2](found), found)

    def add(self):
        body = KINDS[self.args.kind][3](self.args)
        created = self.client.call("POST", "/v1/switches/%s/%s"
                                   % (self._one_switch(), self.args.kind), body)
        self.print(KINDS[self.args.kind][2](created), created)

    def delete(self):
        name = self._one_switch()
        self.client.call("DELETE", self._item_path(name, self.args.name))
        if not self.args.json:
            print("deleted %s %s on %s" % (KINDS[self.args.kind][0], self.args.name, name))

    def export(self):
        listings = {name: {kind: self.client.call("GET", "/v1/switches/%s/%s" % (name, kind))
                           for kind in backup.KINDS} for name in self._switches()}
        text = json.dumps(backup.exported(listings), indent=1, sort_keys=True) + "\n"
        if self.args.output is None:
            sys.stdout.write(text)
            return
        try:
            with open(self.args.output, "w", encoding="utf-8") as handle:
                handle.write(text)
        except OSError as exc:
            raise CtlError(USAGE, "%s: cannot write: %s" % (self.args.output,
                                                            exc.strerror)) from None

    def import_(self):
        wanted = backup.checked(bodies.from_file(self.args.file), self.args.file)
        if self.args.switch is not None:
            if self.args.switch not in wanted:
                raise CtlError(USAGE, "%s has no switch %s (it has: %s)" % (
                    self.args.file, self.args.switch, ", ".join(sorted(wanted)) or "none"))
            wanted = {self.args.switch: wanted[self.args.switch]}
        done = [result for name, kinds in wanted.items() for kind, objects in kinds.items()
                for result in self._imported(name, kind, objects)]
        self.print("\n".join(backup.describe(r) for r in done), done)
        failed = sum("error" in r for r in done)
        if failed:
            print("sggwctl: %d of %d objects not imported" % (failed, len(done)),
                  file=sys.stderr)
            return REFUSED
        return None

    def _imported(self, name, kind, objects):
        """What became of each object of one switch and kind (backup.describe says it)."""
        path = "/v1/switches/%s/%s" % (name, kind)
        try:
            actions = backup.plan(self.client.call("GET", path), objects)
        except CtlError as err:
            if err.code != REFUSED:
                raise
            return [backup.failed(name, kind, obj, err.line) for obj in objects]
        return [self._apply(path, name, kind, action, obj) for action, obj in actions]

    def _apply(self, path, name, kind, action, obj):
        try:
            if action == backup.IN_CONFIG:
                raise CtlError(REFUSED, "%s %r is defined in the controller's config file; "
                               "change it there" % (backup.NOUNS[kind], obj["name"]))
            if action == backup.CREATE:
                self.client.call("POST", path, obj)
            elif action == backup.REPLACE:
                self.client.call("PUT", "%s/%s" % (path, obj["name"]), obj)
        except CtlError as err:
            if err.code != REFUSED:
                raise
            return backup.failed(name, kind, obj, err.line)
        return {"switch": name, "kind": kind, "name": obj["name"], "result": action}

    # --- helpers ----------------------------------------------------------------------------

    def _item_path(self, switch, name):
        return "/v1/switches/%s/%s/%s" % (switch, self.args.kind, name)

    def _switches(self):
        """The switch ``--switch`` names, else every configured switch."""
        if self.args.switch:
            return [self.args.switch]
        return [s["name"] for s in self.client.call("GET", "/v1/switches")]

    def _one_switch(self):
        names = self._switches()
        if len(names) > 1:
            raise CtlError(USAGE, "the controller has several switches (%s): choose one "
                           "with --switch" % ", ".join(names))
        return names[0]

    def _keyed(self, out):
        """JSON output: the one switch's answer as is, or every switch's keyed by name."""
        return out[self.args.switch] if self.args.switch else out

    def _check_host(self):
        if self.args.host is not None:
            try:
                ipaddress.ip_address(self.args.host)
            except ValueError:
                raise CtlError(USAGE, "--host %s: not an IP address" % self.args.host) from None

    def _selected(self, path):
        args, reply, to = self.args, path["reply"], path["to"]
        if args.host is not None and ipaddress.ip_address(args.host) not in {
                ipaddress.ip_address(a) for a in (reply.get("src"), reply.get("dst")) if a}:
            return False
        return args.port is None or args.port in (to.get("port"), str(to.get("port_no")))
