"""Prometheus file-SD targets that follow the rack: who to scrape, kept current while it runs.

:func:`scrape_targets` is the rule, pure: one document per job (controller, bmc, agent, rmc)
from ``racklet.yaml`` and, when the controller has them, the rack's ComputeUnits. A unit in
the store is scraped at its BMC (the BMC board stays in the tray when the unit is pulled, and
says ``Absent``) and at its OS agent unless it is ``Absent``; the agent's address is the one
its heartbeat reported (``status.agentUrl``: a new board that nobody wrote into
``racklet.yaml`` is found too), else ``racklet.yaml``'s. :class:`PrometheusTargets` is the
controller's service that rewrites ``<state-dir>/prometheus/targets/<job>.json`` every
``interval`` seconds when they changed — atomically, so Prometheus (which re-reads a file-SD
file when it changes) never reads half of one. It writes only once ``racklet prometheus
config`` has made that directory: a rack nobody scrapes gets no files.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from racklet import config as rack_config
from racklet.api import ComputeUnit, rack_of
from racklet.config import write_atomic
from racklet.controller._periodic import LoopObserver, Periodic
from racklet.log import get_logger
from racklet.store import Store

JOBS = ("controller", "bmc", "agent", "rmc")
TARGETS_DIR = Path("prometheus") / "targets"
"""Under the state dir: where the file-SD documents live (and the rack keeps them)."""

Documents = dict[str, list[dict[str, Any]]]


def address(url: str) -> str | None:
    """``host:port`` of an HTTPS endpoint, None if it names no host."""
    parts = urlsplit(url)
    if parts.hostname is None:
        return None
    return f"{parts.hostname}:{parts.port or 443}"


def _group(url: str | None, labels: dict[str, str]) -> list[dict[str, Any]]:
    target = address(url) if url else None
    return [] if target is None else [{"targets": [target], "labels": labels}]


def scrape_targets(
    config: rack_config.RackConfig, units: Iterable[ComputeUnit] | None = None
) -> Documents:
    """One file-SD document per job. Without ``units`` (no store at hand), every unit of
    ``racklet.yaml`` at the addresses it names."""
    rack = config.rack.name
    found: Documents = {job: [] for job in JOBS}
    found["controller"] = _group(config.api.url, {"rack": rack})
    if config.rmc is not None:
        found["rmc"] = _group(config.rmc.url, {"rack": rack})
    agents = {unit.name: f"https://127.0.0.1:{unit.agent_port}" for unit in config.units}
    if units is None:
        for unit in config.units:
            labels = {"rack": rack, "unit": unit.name}
            found["bmc"] += _group(unit.bmc.url, labels)
            found["agent"] += _group(agents[unit.name], labels)
        return found
    for item in sorted(units, key=lambda u: (u.spec.slot, u.metadata.name)):
        name = item.metadata.name
        if rack_of(item, rack) != rack:
            continue
        labels = {"rack": rack, "unit": name}
        found["bmc"] += _group(item.spec.bmc.url, labels)
        if item.status.phase != "Absent":
            found["agent"] += _group(item.status.agent_url or agents.get(name), labels)
    return found


def write_targets(directory: Path, documents: Documents) -> list[str]:
    """Write each job's document whose content changed (atomically); the jobs written."""
    written = []
    for job, document in documents.items():
        path = directory / f"{job}.json"
        text = json.dumps(document, indent=2) + "\n"
        try:
            if path.read_text() == text:
                continue
        except OSError:
            pass
        write_atomic(path, text)
        written.append(job)
    return written


class PrometheusTargets:
    """Keeps ``<state-dir>/prometheus/targets`` current while the rack runs (leader only)."""

    def __init__(
        self,
        config: rack_config.RackConfig,
        store: Store,
        *,
        interval_seconds: float = 2.0,
        observer: LoopObserver | None = None,
    ) -> None:
        self._config = config
        self._store = store
        self.directory = config.layout.root / TARGETS_DIR
        self._log = get_logger("controller")
        self._loop = Periodic(
            "prometheus-targets", self.run_once, interval=interval_seconds, observer=observer
        )

    async def run_once(self) -> bool:
        """One round: rewrite what changed, if ``racklet prometheus config`` made the files."""
        if not await asyncio.to_thread(self.directory.is_dir):
            return True
        documents = scrape_targets(self._config, await self._store.list(ComputeUnit))
        written = await asyncio.to_thread(write_targets, self.directory, documents)
        if written:
            self._log.info(f"prometheus targets rewritten: {', '.join(written)}")
        return True

    async def start(self) -> None:
        await self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
