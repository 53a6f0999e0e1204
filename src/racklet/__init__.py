"""Racklet: open software for a scale-model data-centre rack.

Subpackages follow the blueprint's layers; see ``docs/architecture.md``.
"""

__version__ = "0.1.0"
