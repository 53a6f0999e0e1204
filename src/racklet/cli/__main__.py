"""``python -m racklet.cli``."""

import sys

from racklet.cli.main import main

sys.exit(main())
