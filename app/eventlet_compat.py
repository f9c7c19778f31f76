"""Let Ryu 4.34 run on the pinned eventlet (0.41.3): the ``ALREADY_HANDLED`` name, and
quiet about eventlet's maintenance mode.

``ryu-manager`` imports ``ryu.app.wsgi`` before it loads any application, and that module
does ``from eventlet.wsgi import ALREADY_HANDLED``, a name eventlet removed (0.30). Defining
it as ``[]`` keeps Ryu's WSGI and websocket paths working (sggw serves its REST API with
:mod:`app.api.http_server`, but Ryu's module is still imported).

eventlet warns on every import that it is deprecated (in bugfix-only maintenance): the
project knows, and an operator can do nothing about it, so the warning is filtered.

This module must run before Ryu is imported, so ``scripts/setup-env`` installs a
``sggw-eventlet-compat.pth`` file in the virtualenv that imports it at interpreter start.
Importing eventlet costs about a second, so nothing is imported here: an import hook adds
the name right after ``eventlet.wsgi`` itself is first imported.
"""
import importlib.abc
import importlib.machinery
import sys
import warnings

_MODULE = "eventlet.wsgi"


class _AddAlreadyHandled(importlib.abc.MetaPathFinder):
    """Finds ``eventlet.wsgi`` like the normal path finder, then patches it once loaded."""

    def find_spec(self, fullname, path, target=None):
        if fullname != _MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            if not hasattr(module, "ALREADY_HANDLED"):
                module.ALREADY_HANDLED = []

        spec.loader.exec_module = exec_module
        return spec


def install():
    """Put the hook first on ``sys.meta_path`` (idempotent)."""
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    if _MODULE in sys.modules:
        module = sys.modules[_MODULE]
        if not hasattr(module, "ALREADY_HANDLED"):
            module.ALREADY_HANDLED = []
        return
    if not any(isinstance(finder, _AddAlreadyHandled) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AddAlreadyHandled())


install()
