"""The ``racklet`` command: start a rack, inspect it, drive it. Sits on top of every layer."""

import sys

# httpx imports its own command-line client (click, rich, pygments: about 40 ms of every
# racklet command's start) whenever those are installed, as they are beside Racklet; no
# racklet command runs it. A None entry makes that import fail, which httpx expects.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
