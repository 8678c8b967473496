"""``python -m adaptkit``."""

import sys

from adaptkit.cli import main

sys.exit(main())
