"""Fixtures: the boot rig (real boot server over mutual TLS) and a unit wired to a BMC."""

from tests.boot.conftest import bmc, host, rig

__all__ = ["bmc", "host", "rig"]
