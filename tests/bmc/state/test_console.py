"""The console LogService: captured UART lines as LogEntries, newest last, $skip/$top."""

from __future__ import annotations

from racklet.bmc._state.console import MAX_LINE, ConsoleLog
from tests.bmc.conftest import UNIT, Bench, eventually

ENTRIES = f"/redfish/v1/Systems/{UNIT}/LogServices/Console/Entries"


def test_lines_are_split_across_chunks_and_bounded() -> None:
    log = ConsoleLog(capacity=3)
    log.feed(b"boot ROM v1\r\nfetch")
    log.feed(b"ing payload\nverified \xff\n")
    assert [line.text for line in log.lines()] == [
        "boot ROM v1",
        "fetching payload",
        "verified \ufffd",
    ]
    log.feed(b"one\n")
    assert [line.seq for line in log.lines()] == [2, 3, 4]
    log.feed(b"x" * (MAX_LINE * 2 + 1))
    assert all(len(line.text) <= MAX_LINE for line in log.lines())


async def test_console_entries_page_with_skip_and_top(bench: Bench) -> None:
    bench.uart.write(b"".join(f"line {i}\n".encode() for i in range(1, 8)))
    lines = bench.service.context.console
    await eventually(lambda: len(lines.lines()) == 7, "seven captured lines")
    async with bench.client() as client:
        everything = (await client.get(ENTRIES)).json()
        window = (await client.get(ENTRIES, params={"$skip": 2, "$top": 3})).json()
        one = await client.get(everything["Members"][-1]["@odata.id"])
        service = (await client.get(f"/redfish/v1/Systems/{UNIT}/LogServices/Console")).json()
        cleared = await client.post(service["Actions"]["#LogService.ClearLog"]["target"], json={})
        after = (await client.get(ENTRIES)).json()
    assert [m["Message"] for m in everything["Members"]] == [f"line {i}" for i in range(1, 8)]
    assert everything["Members@odata.count"] == 7
    assert [m["Message"] for m in window["Members"]] == ["line 3", "line 4", "line 5"]
    entry = one.json()
    assert entry["Message"] == "line 7"
    assert entry["EntryType"] == "Oem" and entry["OemRecordFormat"] == "Racklet"
    assert entry["Severity"] == "OK" and entry["Created"]
    assert cleared.status_code == 204
    assert after["Members"] == []
