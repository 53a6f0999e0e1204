"""Entry point for ``python -m racklet.boot.rpi``."""

import sys

from racklet.boot.rpi._cli import main

sys.exit(main())
