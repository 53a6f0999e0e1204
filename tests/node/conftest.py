"""The OS agent runs on what the bootstrap booted: reuse the boot tests' rig and fake host."""

from tests.boot.conftest import bmc, host, rig

__all__ = ["bmc", "host", "rig"]
