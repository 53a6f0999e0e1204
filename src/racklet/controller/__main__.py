"""Run the controller: ``python -m racklet.controller --state-dir D``."""

import sys

from racklet.controller._main import main

sys.exit(main())
