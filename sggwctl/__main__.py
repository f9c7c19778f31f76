"""``python -m sggwctl``: the same as the ``sggwctl`` command."""
import sys

from sggwctl.cli import main

sys.exit(main())
