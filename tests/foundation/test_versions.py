"""The one version ordering and the rollback floor (``racklet.versions``), and that every
part that compares versions uses it."""

from __future__ import annotations

import pytest

from racklet import boot, versions
from racklet.versions import below_floor, newer, raised_floor, version_key


@pytest.mark.parametrize(
    ("low", "high"),
    [
        ("0.9.0", "0.10.0"),
        ("0.10.0", "1.0.0"),
        ("1.0", "1.0.1"),
        ("racklet-bmc 0.1.0", "0.2.0"),  # a factory label compares by its version
        ("racklet-bmc test", "0.0.1"),  # a label with no version is below every version
        ("0.1.0", "v0.2.0"),
    ],
)
def test_the_order(low: str, high: str) -> None:
    assert version_key(low) < version_key(high)
    assert newer(high, low) and not newer(low, high)


def test_labels_and_plain_versions_are_equal() -> None:
    assert version_key("racklet-bmc 0.1.0") == version_key("0.1.0") == version_key("v0.1.0")


def test_the_floor_only_rises() -> None:
    assert raised_floor(None, "0.2.0") == "0.2.0"
    assert raised_floor("0.2.0", "0.3.0") == "0.3.0"
    assert raised_floor("0.3.0", "0.2.0") == "0.3.0"
    assert below_floor("0.1.0", "0.2.0") and not below_floor("0.2.0", "0.2.0")
    assert not below_floor("0.0.1", None)


def test_boot_exports_the_same_function() -> None:
    assert boot.version_key is versions.version_key
