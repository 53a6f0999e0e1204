"""The controller follows each BMC's event stream: a power change at the unit wakes its
reconciler at once, rather than at its next look (resync); a stream opened again after it
dropped (the BMC came back, maybe as a new board) also wakes the certificate chore.

A real BMC service over TLS on a fake board; the controller's real Redfish client (pinned
to the BMC's identity; a session login, as this BMC asks no client certificate) and
:class:`BmcEvents` as the controller wires it, with the wakes recorded. Nothing here polls
the BMC: only an event can wake.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from racklet.controller._bmc_events import BmcEvents, wakes
from racklet.pki import CRL_NAME, RackCA, write_crl
from racklet.redfish import RedfishClient
from tests.bmc.conftest import ADMIN, UNIT, FastClock, eventually, running_bench


def _controller_client(pki: Path, url: str) -> RedfishClient:
    """The controller's client, pinned to the BMC's identity and following the CRL; this
    BMC asks no client certificate, so it logs in with a session."""
    ca = RackCA.load(pki)
    write_crl(ca, pki)
    return RedfishClient(
        url,
        *ADMIN,
        ca_bundle=pki / "ca.crt",
        expect=ca.spiffe_id(f"bmc/{UNIT}"),
        crl=pki / CRL_NAME,
    )


async def test_a_power_loss_at_the_unit_wakes_its_reconciler_and_a_dropped_stream_reopens(
    tmp_path: Path,
) -> None:
    woken: Counter[str] = Counter()
    reopened: list[str] = []
    async with running_bench(tmp_path, FastClock(speed=50.0)) as bench:
        client = _controller_client(bench.ca.parent, bench.url)
        events = BmcEvents(
            {UNIT: client},
            lambda unit: woken.update([unit]),
            retry_first=0.05,
            reopened=reopened.append,
        )
        await events.start()
        try:
            await eventually(lambda: UNIT in events.connected, "the stream open")
            await eventually(lambda: woken[UNIT] == 1, "a wake on opening (events missed)")

            bench.unit.on = True  # powered at the board, by nobody the controller knows
            await eventually(lambda: woken[UNIT] >= 2, "the PoweredOn event's wake")
            before = woken[UNIT]
            bench.unit.on = False  # the supply is cut
            await eventually(lambda: woken[UNIT] > before, "the PoweredOff event's wake")

            before = woken[UNIT]
            bench.service.close_streams()  # the BMC ends its streams (a restart)
            await eventually(lambda: woken[UNIT] > before, "the stream opened again, a wake")
            assert UNIT in events.connected
            # The BMC came back (maybe a new board): told once, not at the first opening.
            assert reopened == [UNIT]
        finally:
            await events.stop()
            await client.aclose()
    assert not events.connected


def test_only_events_that_may_change_a_phase_wake() -> None:
    def event(message_id: str) -> dict[str, object]:
        return {"Events": [{"MessageId": message_id}]}

    assert wakes(event("ResourceEvent.1.4.ResourcePoweredOff"))
    assert wakes(event("Platform.1.3.DeviceSecureBootFailure"))
    assert wakes(event("Racklet.1.0.BmcStarted"))
    assert not wakes(event("SensorEvent.1.1.ReadingAboveUpperCautionThreshold"))
    assert not wakes(event("AccountSecurity.1.0.InvalidCredentials"))
    assert not wakes({"Events": "not a list"})
    assert not wakes({})
