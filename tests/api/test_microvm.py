"""The MicroVM kind: defaults, and bad input refused at apply time with the field named."""

from __future__ import annotations

from typing import Any

import pytest

from racklet.api import MAX_USER_DATA_BYTES, InvalidObject, MicroVM, parse


def microvm(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "racklet.dev/v1alpha1",
        "kind": "MicroVM",
        "metadata": {"name": "hello"},
        "spec": {"image": {"name": "busybox", "version": "1.0.0"}, **spec},
    }


def test_defaults_and_wire_names() -> None:
    vm = parse(microvm(memoryMiB=256, userData="echo hi", restartPolicy="Always"))
    assert isinstance(vm, MicroVM)
    assert (vm.spec.vcpus, vm.spec.memory_mi_b, vm.spec.restart_policy) == (1, 256, "Always")
    assert vm.status.phase == "Pending" and vm.status.unit is None
    assert vm.model_dump(by_alias=True)["spec"]["memoryMiB"] == 256


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({"vcpus": 0}, "spec.vcpus: Input should be greater than or equal to 1"),
        ({"vcpus": 65}, "spec.vcpus: Input should be less than or equal to 64"),
        ({"memoryMiB": 8}, "spec.memoryMiB: Input should be greater than or equal to 16"),
        ({"nodeSelector": "a in (b)"}, "spec.nodeSelector: Value error"),
        ({"antiAffinity": "=x"}, "spec.antiAffinity: Value error"),
        ({"userData": "x" * (MAX_USER_DATA_BYTES + 1)}, "spec.userData: String should have"),
        ({"userData": "é" * (MAX_USER_DATA_BYTES // 2 + 1)}, "spec.userData: Value error"),
        ({"restartPolicy": "Sometimes"}, "spec.restartPolicy: Input should be"),
        ({"image": {"name": "../etc", "version": "1"}}, "spec.image.name: String should match"),
    ],
)
def test_bad_input_names_the_field(spec: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidObject) as caught:
        parse(microvm(**spec))
    assert caught.value.problems[0].startswith(problem), caught.value.problems
