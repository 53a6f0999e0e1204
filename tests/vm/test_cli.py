"""``racklet image build|publish`` and ``racklet get microvms`` against a real API and TUF
repository; bad input is one line and a non-zero exit, nothing half-written."""

from __future__ import annotations

from pathlib import Path

from racklet.api import MicroVM
from racklet.boot import TufRepository, build_default_payload
from racklet.vm import read_image
from tests.cli.conftest import LiveApi, live, run_main  # noqa: F401  (the fixture)


def test_build_then_publish_into_vm_images(live: LiveApi, tmp_path: Path) -> None:  # noqa: F811
    state = live.config_path.parent
    repo = TufRepository.create(state / "boot")  # a rack from before the vm-images channel
    repo.publish("stable", "racklet-os", "0.1.0", {"payload.bin": build_default_payload(8192)})
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"\x7fkernel" * 100)
    out = tmp_path / "busybox.img"
    built = run_main(
        "image", "build", "--name", "busybox", "--version", "1.0.0",
        "--kernel", str(kernel), "-o", str(out),
    )  # fmt: skip
    assert built.code == 0, built.err
    assert read_image(out.read_bytes()).kernel == kernel.read_bytes()
    assert out.stat().st_mode & 0o777 == 0o644

    published = live.cli("image", "publish", str(out))
    assert published.code == 0, published.err
    assert "vm-images/busybox/1.0.0/image.tar" in published.out
    reopened = TufRepository.open(state / "boot")
    assert "vm-images" in reopened.channels
    (release,) = [r for r in reopened.list() if r.channel == "vm-images"]
    assert (release.name, release.version, release.current) == ("busybox", "1.0.0", False)

    again = live.cli("image", "publish", str(out))
    assert again.code == 1 and "already published" in again.err
    assert len(again.err.strip().splitlines()) == 1


def test_bad_images_are_refused_in_one_line(live: LiveApi, tmp_path: Path) -> None:  # noqa: F811
    TufRepository.create(live.config_path.parent / "boot")
    junk = tmp_path / "junk.img"
    junk.write_bytes(b"not an image" * 100)
    for args, words in (
        (("image", "publish", str(junk)), "not an image archive"),
        (("image", "publish", str(tmp_path / "missing.img")), "No such file"),
    ):
        result = live.cli(*args)
        assert result.code == 1 and words in result.err, result.err
        assert len(result.err.strip().splitlines()) == 1
    missing_kernel = run_main(
        "image", "build", "--name", "b", "--version", "1", "--kernel", str(tmp_path / "nope"),
        "-o", str(tmp_path / "out.img"),
    )  # fmt: skip
    assert missing_kernel.code == 1 and "no such kernel file" in missing_kernel.err
    assert not (tmp_path / "out.img").exists()


def test_get_microvms_shows_phase_and_unit(live: LiveApi, tmp_path: Path) -> None:  # noqa: F811
    manifest = tmp_path / "vm.yaml"
    manifest.write_text(
        "apiVersion: racklet.dev/v1alpha1\nkind: MicroVM\nmetadata: {name: hello}\n"
        "spec: {image: {name: busybox, version: 1.0.0}, vcpus: 2, userData: 'echo hi'}\n"
    )
    applied = live.cli("apply", "-f", str(manifest))
    assert applied.code == 0, applied.err
    assert live.run(live.store.get(MicroVM, "hello")).spec.vcpus == 2
    listing = live.cli("get", "vms")
    assert listing.code == 0, listing.err
    header, row = (line.split() for line in listing.out.splitlines()[:2])
    assert header[:5] == ["NAME", "PHASE", "UNIT", "VCPUS", "MEMORY(MiB)"]
    assert row[:4] == ["hello", "Pending", "-", "2"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(manifest.read_text().replace("vcpus: 2", "vcpus: 500"))
    refused = live.cli("apply", "-f", str(bad))
    assert refused.code != 0 and "spec.vcpus" in refused.err


def test_console_and_logs_of_a_vm_refuse_bad_names_in_one_line(live: LiveApi) -> None:  # noqa: F811
    for args, code, words in (
        (("logs", "hello"), 2, "expected KIND/NAME"),
        (("logs", "unit/unit-1"), 2, "racklet console unit-1"),
        (("console", "fault/f1"), 2, "not a Fault's"),
        (("logs", "microvm/hello"), 1, "no MicroVM consoles"),  # this API reads none
    ):
        result = live.cli(*args)
        assert result.code == code and words in result.err, result.err
        assert len(result.err.strip().splitlines()) == 1
