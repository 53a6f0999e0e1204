"""A MicroVMSet on a real ``racklet up`` rack with real QEMU (TCG): two replicas spread over
the two units, a new image replaced one VM at a time (checked on the QEMU processes: never
fewer than the replicas, never more than one extra), scaled down, and deleted with its VMs.
One rack serves the steps, in order (each test starts where the one before left the set).

Where QEMU cannot run the module skips, and under CI fails (``tests/vm/conftest.py``).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from racklet.vm import build_image, download_kernel_deb
from tests.vm.conftest import CACHE, vm_image  # noqa: F401  (the fixture)

from .conftest import RunningRack, start_rack, stop_rack
from .test_microvms import BOOT_TIMEOUT, UNITS, _all_running, _qemus


@pytest.fixture(scope="module")
def set_rack(tmp_path_factory: pytest.TempPathFactory, vm_image: bytes) -> Iterator[RunningRack]:  # noqa: F811
    running = start_rack(tmp_path_factory.mktemp("vmsets"), "--units", "2", "--speed", "2")
    try:
        running.wait_for(_all_running, "both units to run", timeout=120)
        newer = build_image("busybox", "1.0.1", kernel=download_kernel_deb(CACHE))
        for version, data in (("1.0.0", vm_image), ("1.0.1", newer)):
            image = running.state_dir / f"busybox-{version}.img"
            image.write_bytes(data)
            running.cli("image", "publish", str(image))
        yield running
    finally:
        stop_rack(running)
        assert not _qemus(running), "a QEMU outlived the rack"


def _apply_set(rack: RunningRack, version: str, replicas: int = 2) -> None:
    manifest = rack.state_dir / "web.json"
    manifest.write_text(
        json.dumps(
            {
                "apiVersion": "racklet.dev/v1alpha1",
                "kind": "MicroVMSet",
                "metadata": {"name": "web"},
                "spec": {
                    "replicas": replicas,
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {
                            "image": {"name": "busybox", "version": version},
                            "memoryMiB": 128,
                            "userData": "echo serving; sleep 100000",
                        },
                    },
                },
            }
        )
    )
    rack.cli("apply", "-f", str(manifest))


def _get_set(rack: RunningRack) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(rack.cli("get", "microvmsets", "web", "-o", "json").stdout)
    return body


def _vms(rack: RunningRack) -> list[dict[str, Any]]:
    out = rack.cli("get", "microvms", "-l", "racklet.dev/microvmset=web", "-o", "json").stdout
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


def _wait(rack: RunningRack, done: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
    deadline = time.monotonic() + BOOT_TIMEOUT
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = _get_set(rack)
        if done(body):
            return body
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}: {body.get('status')}; VMs: {_vms(rack)}")


def _settled(replicas: int, version: str) -> Callable[[dict[str, Any]], bool]:
    def check(body: dict[str, Any]) -> bool:
        status = body.get("status") or {}
        image = body["spec"]["template"]["spec"]["image"]["version"]
        return image == version and (
            status.get("replicas"),
            status.get("readyReplicas"),
            status.get("updatedReplicas"),
        ) == (replicas, replicas, replicas)

    return check


class QemuCount:
    """Samples the rack's QEMU processes in the background (only the set's VMs run on it
    here): the fewest and the most at once."""

    def __init__(self, rack: RunningRack) -> None:
        self._rack = rack
        self.fewest, self.most = 1 << 30, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            count = len(_qemus(self._rack))
            self.fewest, self.most = min(self.fewest, count), max(self.most, count)
            self._stop.wait(0.1)

    def __enter__(self) -> QemuCount:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_a_set_keeps_its_replicas_spread_over_the_units(set_rack: RunningRack) -> None:
    _apply_set(set_rack, "1.0.0")
    body = _wait(set_rack, _settled(2, "1.0.0"), "two replicas Running")
    old_hash = body["status"]["templateHash"]
    vms = _vms(set_rack)
    assert sorted(v["metadata"]["name"] for v in vms) == [f"web-{old_hash}-0", f"web-{old_hash}-1"]
    assert sorted(v["status"]["unit"] for v in vms) == list(UNITS)  # spread over the units
    assert all(v["metadata"]["ownerReferences"][0]["name"] == "web" for v in vms)
    table = set_rack.cli("get", "microvmsets").stdout
    assert table.split("\n")[1].split()[:4] == ["web", "2", "2/2", "2"], table


def test_a_new_image_replaces_one_vm_at_a_time(set_rack: RunningRack) -> None:
    """Checked on the QEMU processes: never fewer than the replicas, at most one extra."""
    old_hash = _wait(set_rack, _settled(2, "1.0.0"), "two replicas Running")["status"][
        "templateHash"
    ]
    assert len(_qemus(set_rack)) == 2
    with QemuCount(set_rack) as watch:
        _apply_set(set_rack, "1.0.1")
        body = _wait(set_rack, _settled(2, "1.0.1"), "two replicas of 1.0.1 Running")
    new_hash = body["status"]["templateHash"]
    assert new_hash != old_hash
    assert watch.fewest >= 2, f"only {watch.fewest} QEMU(s) of the set at one time"
    assert watch.most <= 3, f"{watch.most} QEMUs of the set at one time (maxSurge is 1)"
    vms = _vms(set_rack)
    assert {v["spec"]["image"]["version"] for v in vms} == {"1.0.1"}
    assert {v["metadata"]["name"].split("-")[1] for v in vms} == {new_hash}
    events = set_rack.cli("events", "--for", "microvmset/web").stdout
    assert "TemplateChanged" in events and events.count("Replaced") == 2
    described = set_rack.cli("describe", "microvmset", "web").stdout
    assert "NewReplicasAvailable" in described


def test_a_set_scales_down_and_goes_with_its_vms(set_rack: RunningRack) -> None:
    _wait(set_rack, _settled(2, "1.0.1"), "two replicas of 1.0.1 Running")
    scaled = set_rack.cli("scale", "microvmset/web", "--replicas", "1").stdout
    assert "microvmset/web scaled to 1" in scaled
    _wait(set_rack, _settled(1, "1.0.1"), "one replica")
    refused = set_rack.cli("scale", "microvmset/web", "--replicas", "-1", check=False)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    set_rack.cli("delete", "microvmset", "web")
    deadline = time.monotonic() + 60
    while (_vms(set_rack) or _qemus(set_rack)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _vms(set_rack) and not _qemus(set_rack)


def test_a_bad_set_is_refused_with_one_line(set_rack: RunningRack) -> None:
    manifest = set_rack.state_dir / "bad.json"
    manifest.write_text(
        json.dumps(
            {
                "apiVersion": "racklet.dev/v1alpha1",
                "kind": "MicroVMSet",
                "metadata": {"name": "bad"},
                "spec": {
                    "replicas": 1,
                    "template": {
                        "spec": {"image": {"name": "busybox", "version": "1.0.0"}, "vcpus": 0}
                    },
                },
            }
        )
    )
    refused = set_rack.cli("apply", "-f", str(manifest), check=False)
    assert refused.returncode == 1, refused
    assert "spec.template.spec.vcpus" in refused.stderr
    assert set_rack.cli("get", "microvmsets", "bad", check=False).returncode == 1
