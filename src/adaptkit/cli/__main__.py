"""``python -m adaptkit.cli``."""

import sys

from adaptkit.cli import main

sys.exit(main())
