"""The MicroVMSet kind: defaults, and bad input refused at apply time with the field named
(the template by the MicroVM's own rules)."""

from __future__ import annotations

from typing import Any

import pytest

from racklet.api import InvalidObject, MicroVMSet, parse, to_dict


def vmset(name: str = "web", **spec: Any) -> dict[str, Any]:
    template = spec.pop("template", {"spec": {"image": {"name": "busybox", "version": "1.0.0"}}})
    return {
        "apiVersion": "racklet.dev/v1alpha1",
        "kind": "MicroVMSet",
        "metadata": {"name": name},
        "spec": {"template": template, **spec},
    }


def test_defaults_a_deployments_strategy_and_vms_that_run_for_good() -> None:
    parsed = parse(vmset(replicas=3))
    assert isinstance(parsed, MicroVMSet)
    rolling = parsed.spec.strategy.rolling_update
    assert (parsed.spec.replicas, rolling.max_surge, rolling.max_unavailable) == (3, 1, 0)
    assert parsed.spec.template.spec.restart_policy == "Always"
    assert "ownerReferences" not in to_dict(parsed)["metadata"]  # only owned objects have it


def _image(**spec: Any) -> dict[str, Any]:
    return {"spec": {"image": {"name": "busybox", "version": "1.0.0"}, **spec}}


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({"replicas": -1}, "spec.replicas: Input should be greater than or equal to 0"),
        ({"replicas": 257}, "spec.replicas: Input should be less than or equal to 256"),
        ({"template": _image(vcpus=0)}, "spec.template.spec.vcpus: Input should be greater"),
        ({"template": _image(nodeSelector="a in (b)")}, "spec.template.spec.nodeSelector"),
        ({"template": _image(restartPolicy="Never")}, "spec.template.spec.restartPolicy: Input"),
        ({"template": {"spec": {}}}, "spec.template.spec.image: Field required"),
        (
            {"template": {"metadata": {"labels": {"racklet.dev/microvmset": "x"}}, **_image()}},
            "spec: Value error, template labels ['racklet.dev/microvmset'] are set by",
        ),
        (
            {"strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}},
            "spec.strategy.rollingUpdate: Value error, maxSurge and maxUnavailable cannot",
        ),
    ],
)
def test_bad_input_names_the_field(spec: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidObject) as caught:
        parse(vmset(**spec))
    assert caught.value.problems[0].startswith(problem), caught.value.problems


def test_a_name_leaves_room_for_its_vms_names() -> None:
    with pytest.raises(InvalidObject) as caught:
        parse(vmset(name="w" * 53))
    assert "at most 52" in caught.value.problems[0], caught.value.problems
