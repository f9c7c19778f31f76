"""The house stays laid out: each package of ``app/`` imports only the packages below it
(docs/design.md, "Layout of the code"), with no import circle, and the install ships them all.

Imports are read from the source with ``ast`` (every ``import`` statement, inside functions
too), so nothing is imported to check them.
"""
import ast
import configparser
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
APP = ROOT / "app"
# each package of app/ -> the other packages it may import (docs/design.md's map)
ALLOWED = {
    "api": {"openflow", "store", "config"},
    "cluster": {"openflow", "store", "ovs", "config"},
    "openflow": {"ovs", "config"},
    "store": {"config"},
    "ovs": {"config"},
    "config": set(),
}
ENTRIES = {"sggw_app", "main", "eventlet_compat"}  # app/*.py: started or loaded by name
SGGWCTL_ALLOWED = {"config"}  # the CLI reads the config's names, nothing of the controller


def modules(top):
    return sorted(p for p in top.rglob("*.py") if "__pycache__" not in p.parts)


def dotted(path):
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def imports(path):
    """The dotted names ``path`` imports: ``from app import config`` gives ``app.config``,
    ``from app.config import remote`` gives ``app.config.remote`` (a module or a name)."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "%s: relative import (line %d)" % (path, node.lineno)
            yield from ("%s.%s" % (node.module, alias.name) for alias in node.names)


def room(name):
    """The part of app/ that dotted ``name`` is in: a package, an entry module, or None."""
    parts = name.split(".")
    if parts[0] != "app" or len(parts) < 2:
        return None
    return parts[1]


def test_every_package_is_on_the_map_and_every_top_module_is_an_entry():
    packages = {p.name for p in APP.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(ALLOWED)
    assert {p.stem for p in APP.glob("*.py")} - {"__init__"} == ENTRIES
    assert not [p for p in APP.iterdir() if p.is_dir() and p.name != "__pycache__"
                and not (p / "__init__.py").exists()]


def test_the_map_has_no_circle():
    done, order = set(), []
    while len(done) < len(ALLOWED):
        ready = [p for p in ALLOWED if p not in done and ALLOWED[p] <= done]
        assert ready, "circle among %s" % sorted(set(ALLOWED) - done)
        done.update(ready)
        order += ready
    assert order[0] == "config"


@pytest.mark.parametrize("path", modules(APP), ids=lambda p: str(p.relative_to(ROOT)))
def test_packages_import_only_downward(path):
    here = path.relative_to(APP).parts
    if len(here) == 1:  # an entry: any package, and only the shim of the other entries
        bad = [n for n in imports(path) if room(n) in ENTRIES - {"eventlet_compat"}]
        if path.stem == "eventlet_compat":  # it runs before anything: it imports nothing
            bad = [n for n in imports(path) if room(n)]
    else:
        allowed = ALLOWED[here[0]] | {here[0]}
        bad = [n for n in imports(path) if room(n) is not None and room(n) not in allowed]
    assert not bad, "%s imports %s" % (dotted(path), bad)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_no_import_circle_inside_a_package(package):
    """Modules of one package import each other by module, never through the package's
    ``__init__`` (which may gather their names), and without a circle."""
    prefix = "app.%s" % package
    names = {dotted(p).removesuffix(".__init__") for p in modules(APP / package)}
    edges = {}
    for path in modules(APP / package):
        me = dotted(path).removesuffix(".__init__")
        found = set()
        for name in imports(path):
            if name.startswith(prefix + ".") or name == prefix:
                target = name if name in names else name.rsplit(".", 1)[0]
                if target != me:
                    found.add(target)
        edges[me] = found
    for me, targets in edges.items():
        if me != prefix:
            assert prefix not in targets, "%s imports its own package's __init__" % me
    done = set()
    while len(done) < len(edges):
        ready = [m for m in edges if m not in done and edges[m] <= done | {m}]
        assert ready, "circle among %s" % sorted(set(edges) - done)
        done.update(ready)


def test_flows_and_sggwctl_stay_apart_from_the_controller():
    for path in modules(ROOT / "flows"):
        assert not [n for n in imports(path) if room(n)], dotted(path)
    for path in modules(ROOT / "sggwctl"):
        bad = [n for n in imports(path) if room(n) and room(n) not in SGGWCTL_ALLOWED]
        assert not bad, "%s imports %s" % (dotted(path), bad)


def test_the_install_ships_every_package():
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    listed = set(setup["options"]["packages"].split())
    assert {"app"} | {"app." + p for p in ALLOWED} <= listed
    shipped = {dotted(p.parent) for p in modules(APP) if p.name == "__init__.py"}
    assert shipped <= listed
    for package, files in setup["options.package_data"].items():
        for name in files.replace(",", " ").split():
            assert (ROOT.joinpath(*package.split(".")) / name).exists(), (package, name)
