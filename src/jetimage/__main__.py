"""``python -m jetimage``: the same command line as the ``jetimage`` entry point."""

import sys

from .cli import main

sys.exit(main())
