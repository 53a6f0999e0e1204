"""The ``racklet`` command: start a rack, inspect it, drive it. Sits on top of every layer."""
