"""``python -m racklet.hardware_side --state-dir D``: the hardware side of a twin rack."""

import sys

from racklet.hardware_side._process import main

sys.exit(main())
