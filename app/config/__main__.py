"""``python -m app.config FILE``: exit 0 if FILE is a valid config, else print its error."""
import sys

from app.config.loader import main

sys.exit(main())
