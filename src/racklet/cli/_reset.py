"""``racklet reset --factory``: a rack as new, trust included, re-provisioned from its spec.

A teacher runs it before every class. The running ``racklet up`` supervisor does the work (it
owns the processes and the state-dir lock): on SIGUSR1 it stops both sides, wipes every
secret and every unit's disk, provisions a new CA, identities and TUF root, and starts again;
the units then boot from the rack's declared state in the store. This command asks for
confirmation, signals, and waits until the new rack answers with its new credentials.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from racklet import config as rack_config
from racklet.cli._prepare import wipe_for_factory_reset
from racklet.cli._up import api_ready
from racklet.cli.errors import UsageError
from racklet.errors import RackletError

RESET_TIMEOUT = 120.0


class ResetError(RackletError):
    """The factory reset was refused, cancelled, or did not complete."""


def _confirm(rack: str) -> None:
    if not sys.stdin.isatty():
        raise UsageError("a factory reset needs confirmation: run it in a terminal or pass --yes")
    print(
        f"Factory reset of {rack}: a new CA, new identities and a new TUF root; every unit's "
        "disk and every BMC's state is wiped; old credentials stop working.",
        file=sys.stderr,
    )
    answer = input(f"Type the rack name ({rack}) to confirm: ")
    if answer.strip() != rack:
        raise ResetError("factory reset cancelled")


def factory_reset(config_path: str | None, *, yes: bool) -> int:
    config = rack_config.load(config_path)
    state_dir = Path(config.state_dir)
    if not yes:
        _confirm(config.rack.name)
    started = time.monotonic()
    pid = rack_config.supervisor_pid(state_dir)
    if pid is None:
        wipe_for_factory_reset(config.layout)
        config.layout.config.unlink(missing_ok=True)
        print(f"racklet: {config.rack.name} is not running; its secrets and unit disks were wiped")
        print("racklet: the next 'racklet up' provisions it anew from its declared state")
        return 0
    old_token = config.api.token
    os.kill(pid, rack_config.FACTORY_RESET_SIGNAL)
    deadline = started + RESET_TIMEOUT
    while time.monotonic() < deadline:
        time.sleep(0.3)
        try:
            fresh = rack_config.load(config_path)
        except RackletError:
            continue  # being rewritten
        if fresh.api.token != old_token and api_ready(fresh):
            print(
                f"racklet: {fresh.rack.name} factory reset in {time.monotonic() - started:.1f} s: "
                f"new CA, {len(fresh.units) * 2 + 2} identities, new TUF root; "
                "units are booting from the declared state"
            )
            return 0
    raise ResetError(
        f"the rack did not come back within {RESET_TIMEOUT:.0f} s; see {state_dir}/logs"
    )
