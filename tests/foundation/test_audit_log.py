"""racklet.audit.AuditLog: JSON lines, mode 0600 whatever the umask, rotated by size, and a
reader that merges the files of a state dir."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from racklet.audit import AuditFilter, AuditLog, audit_files, read_records, redfish_verb
from racklet.controller._http import api_verb


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def entry(n: int, principal: str = "alice", when: str | None = None) -> dict[str, object]:
    return {
        "time": when or dt.datetime.now(dt.UTC).isoformat(),
        "component": "api",
        "principal": principal,
        "verb": "patch",
        "object": f"computeunits/unit-{n}",
        "outcome": "succeeded",
        "status": 200,
        "requestId": f"r{n}",
    }


def test_lines_are_json_and_the_file_is_0600_whatever_the_umask(
    tmp_path: Path, open_umask: None
) -> None:
    path = tmp_path / "controller" / "audit.log"
    audit = AuditLog(path)
    try:
        for n in range(3):
            audit.record(entry(n))
        audit.flush()
    finally:
        audit.close()
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert [json.loads(line)["requestId"] for line in path.read_text().splitlines()] == [
        "r0",
        "r1",
        "r2",
    ]


def test_an_existing_file_with_loose_mode_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    path.write_text("")
    path.chmod(0o644)
    audit = AuditLog(path)
    audit.record(entry(1))
    audit.close()
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_rotation_keeps_the_newest_lines_in_whole_files(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    one = len(json.dumps(entry(10), separators=(",", ":"))) + 1
    audit = AuditLog(path, max_bytes=one * 4, backups=2)
    try:
        for n in range(10, 30):
            audit.record(entry(n))
    finally:
        audit.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["audit.log", "audit.log.1", "audit.log.2"]
    kept = read_records([path.with_name("audit.log.2"), path.with_name("audit.log.1"), path])
    assert [r["requestId"] for r in kept] == [f"r{n}" for n in range(18, 30)]
    for name in files:
        assert (tmp_path / name).stat().st_size <= one * 4
        assert os.stat(tmp_path / name).st_mode & 0o777 == 0o600


async def test_recording_from_the_event_loop_only_queues(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "audit.log")
    for n in range(200):
        audit.record(entry(n))
    await audit.aclose()  # close writes everything queued
    assert len((tmp_path / "audit.log").read_text().splitlines()) == 200
    audit.record(entry(200))  # a record after close starts the writer again
    await asyncio.to_thread(audit.flush)
    await audit.aclose()
    assert len((tmp_path / "audit.log").read_text().splitlines()) == 201


def test_a_full_queue_drops_lines_and_says_so_in_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("racklet.audit._log.QUEUE_LIMIT", 3)
    audit = AuditLog(tmp_path / "audit.log")
    audit._thread = object()  # type: ignore[assignment]  # a writer that is stuck
    for n in range(5):
        audit.record(entry(n))
    audit._thread = None
    audit.record(entry(5))  # the writer starts, finds three lines queued and a gap
    audit.close()
    records = read_records([tmp_path / "audit.log"])
    gap = [r for r in records if "dropped" in r]
    written = [r["requestId"] for r in records if "dropped" not in r]
    assert len(gap) == 1 and gap[0]["dropped"] >= 2  # r3 and r4 (r5 too, if still full)
    assert written[:3] == ["r0", "r1", "r2"]
    assert gap[0]["dropped"] + len(written) == 6  # every line is either written or counted


def test_the_reader_merges_files_and_filters(tmp_path: Path) -> None:
    bmc = tmp_path / "bmc" / "unit-1" / "audit.log"
    api = tmp_path / "controller" / "audit.log"
    peer = tmp_path / "controller-2" / "audit.log"
    rmc = tmp_path / "rmc" / "audit.log"
    for path in (bmc, api, peer, rmc):
        path.parent.mkdir(parents=True)
    bmc.write_text(
        json.dumps({**entry(1, "admin", "2026-01-01T10:00:02Z"), "component": "bmc/unit-1"}) + "\n"
    )
    api.write_text(json.dumps(entry(2, "alice", "2026-01-01T10:00:01Z")) + "\n")
    peer.write_text(json.dumps(entry(3, "bob", "2026-01-01T10:00:03Z")) + "\n")
    rmc.write_text(
        json.dumps({**entry(4, "admin", "2026-01-01T09:00:00Z"), "component": "rmc"}) + "\n"
    )
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "audit.log").write_text("not ours\n")
    files = audit_files(tmp_path)
    assert len(files) == 4
    assert [r["requestId"] for r in read_records(files)] == ["r4", "r2", "r1", "r3"]
    since = dt.datetime(2026, 1, 1, 10, 0, 1, tzinfo=dt.UTC)
    assert [r["requestId"] for r in read_records(files, AuditFilter(since=since))] == [
        "r2",
        "r1",
        "r3",
    ]
    admin = read_records(files, AuditFilter(principal="admin"))
    assert [r["requestId"] for r in admin] == ["r4", "r1"]
    bmcs = read_records(files, AuditFilter(component="bmc"))
    assert [r["requestId"] for r in bmcs] == ["r1"]


def test_a_half_written_last_line_is_not_an_error(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    path.write_text(json.dumps(entry(1)) + "\n" + '{"time": "2026-')
    assert [r["requestId"] for r in read_records([path])] == ["r1"]


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("POST", "/redfish/v1/Systems/unit-1/Actions/ComputerSystem.Reset",
         ("ComputerSystem.Reset", "/redfish/v1/Systems/unit-1")),
        ("PATCH", "/redfish/v1/Systems/unit-1/", ("PATCH", "/redfish/v1/Systems/unit-1")),
        ("POST", "/redfish/v1/SessionService/Sessions",
         ("POST", "/redfish/v1/SessionService/Sessions")),
    ],
)  # fmt: skip
def test_redfish_verbs(method: str, path: str, expected: tuple[str, str]) -> None:
    assert redfish_verb(method, path) == expected


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("POST", "/api/v1/computeunits", ("create", "computeunits")),
        ("PATCH", "/api/v1/computeunits/unit-1", ("patch", "computeunits/unit-1")),
        ("PUT", "/api/v1/racks/rack-1/status", ("update-status", "racks/rack-1")),
        ("POST", "/api/v1/computeunits/unit-1/power-cycle", ("power-cycle", "computeunits/unit-1")),
        ("DELETE", "/api/v1/tokens/alice", ("delete", "tokens/alice")),
        ("POST", "/elsewhere", ("POST", "/elsewhere")),
    ],
)
def test_api_verbs(method: str, path: str, expected: tuple[str, str]) -> None:
    assert api_verb(method, path) == expected
