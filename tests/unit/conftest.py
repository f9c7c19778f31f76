"""Make tests/fakeswitch.py and tests/unit/sites.py importable as ``fakeswitch`` and ``sites``,
whatever pytest's import mode and whether tests/ and tests/unit/ are packages."""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for path in (HERE, HERE.parent):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
