"""``python -m jetimage``: the same command line as the ``jetimage`` entry point."""

import sys

from jetimage.cli import main

sys.exit(main())
