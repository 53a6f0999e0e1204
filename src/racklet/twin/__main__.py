"""``python -m racklet.twin --state-dir D``: the hardware side of a twin rack."""

import sys

from racklet.twin._process import main

sys.exit(main())
