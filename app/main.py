"""The ``sggw`` command, installed by ``pip install .``:

    sggw --config /etc/sggw/sggw.yaml [Ryu's flags: --ofp-tcp-listen-port, --wsapi-port, ...]
    sggw check-config FILE

The first is ``SGGW_CONFIG=FILE ryu-manager app/sggw_app.py`` without a checkout: the app is
imported from the installed package, and the ``eventlet.wsgi`` shim (app.eventlet_compat),
which a development venv loads from a .pth file, is loaded here before Ryu. (A SIGTERM ends
it with exit 0: app.sggw_app handles it like Ctrl-C.) The second is
``python -m app.config FILE``: the same lines, the same exit statuses.
"""
import os
import sys

from app import eventlet_compat  # noqa: F401 (before anything imports Ryu)
from app import config

APP = "app.sggw_app"
USAGE = ("usage: sggw --config FILE [ryu-manager's flags: see sggw --help]\n"
         "       sggw check-config FILE")


def main(argv=None):
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["check-config"]:
        return config.main(args[1:], prog="sggw check-config")
    if "-h" in args or "--help" in args:
        print(USAGE + "\n\nRyu's flags:", flush=True)
        return _ryu(["--help"])
    path, ryu_args = _config_flag(args)
    if path is None:
        print(USAGE, file=sys.stderr)
        return 2
    try:  # before Ryu logs a word: a bad file is one line (app.sggw_app checks it again)
        config.load(path)
    except config.ConfigError as exc:
        print("sggw: %s" % exc, file=sys.stderr)
        return 2
    os.environ["SGGW_CONFIG"] = os.path.abspath(path)  # what app.sggw_app reads
    return _ryu(ryu_args + [APP])


def _config_flag(args):
    """(the --config FILE value or None, the other arguments)."""
    rest = []
    path = None
    it = iter(args)
    for arg in it:
        if arg == "--config":
            path = next(it, None)
        elif arg.startswith("--config="):
            path = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    return path or None, rest


def _ryu(args):
    from ryu.cmd import manager  # after the shim; costs a second or two
    try:
        manager.main(args=args, prog="sggw")
    except SystemExit as exc:  # --help, or a config error (one line already printed)
        return exc.code if isinstance(exc.code, int) else 0
    return 0
