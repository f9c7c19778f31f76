"""Load ``sggw.yaml``: read the file (bounded, UTF-8), parse its YAML strictly, and check it
(:mod:`app.config.file`). Every problem becomes one :class:`ConfigError` line:
``file: key.path: reason``. Unknown keys, wrong types and bad values are rejected; nothing
is guessed.

Check a file without starting the controller: ``python -m app.config sggw.yaml``.
"""
import sys

import yaml

from app.config import strict_yaml
from app.config.file import parse
from app.config.schema import ConfigError


def load(path):
    """Read and validate ``path``; raises ConfigError (one line) on any problem."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(strict_yaml.MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(None, "cannot read: %s" % exc.strerror, path) from None
    if len(data) > strict_yaml.MAX_BYTES:
        raise ConfigError(None, strict_yaml.TOO_LARGE, path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ConfigError(None, "not UTF-8 text (line %d)" % line, path) from None
    return loads(text, path)


def loads(text, source="<config>"):
    try:
        data = strict_yaml.load(text)
    except strict_yaml.LimitError as exc:
        raise ConfigError(_where(exc.problem_mark), exc.problem, source) from None
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(_where(exc.problem_mark), "invalid YAML: %s" % _one_line(exc.problem),
                          source) from None
    except yaml.reader.ReaderError as exc:
        line = text[:exc.position].count("\n") + 1
        raise ConfigError("line %d" % line, "invalid YAML: character %#x is not allowed"
                          % exc.character, source) from None
    except yaml.YAMLError as exc:
        raise ConfigError(None, "invalid YAML: %s" % _one_line(str(exc)), source) from None
    if data is None:
        raise ConfigError(None, "the file is empty", source)
    try:
        return parse(data, source)
    except ConfigError as exc:
        exc.source = source
        raise


def _where(mark):
    return "line %d column %d" % (mark.line + 1, mark.column + 1) if mark else None


def _one_line(text):
    return " ".join(str(text).split())


def main(argv=None, prog="python -m app.config"):
    """``python -m app.config FILE`` (also ``sggw check-config FILE``): exit 0 if FILE is
    valid, else print the error."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: %s sggw.yaml" % prog, file=sys.stderr)
        return 2
    try:
        cfg = load(args[0])
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    print("%s: ok (%d datapaths)" % (args[0], len(cfg.datapaths)))
    return 0
