"""``racklet console microvm/NAME [-f]`` and ``racklet logs microvm/NAME [-f]``: a MicroVM's
serial console (its command's output), read through the controller's API from the agent of
the unit the VM runs on (``racklet.controller._workloads.VmConsoles``).

Without ``-f`` it prints what the agent holds (the last 2,000 lines of the VM's newest
attempt) and exits. With ``-f`` it follows: each request is a long poll that returns as soon
as the guest prints, until the VM ends; a VM not placed yet, or whose unit does not answer
for a moment, is waited for, and when the VM starts again (a new attempt, on this unit or
another) the console starts over from that attempt's first line.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from racklet import config as rack_config
from racklet.cli._client import ApiClient, HttpError

FOLLOW_WAIT_SECONDS = 10.0
"""The long poll's length (the controller holds at most 10 s)."""
RETRY_SECONDS = 1.0
ENDED = ("Succeeded", "Failed")


def add_logs_parser(commands: Any) -> None:
    logs = commands.add_parser("logs", help="print a MicroVM's console log (microvm/NAME)")
    logs.add_argument("name", help="microvm/NAME (or vm/NAME)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")


def _read(client: ApiClient, name: str, skip: int, wait: float) -> dict[str, Any]:
    params = {"skip": str(skip), "wait": f"{wait:g}"}
    reply: dict[str, Any] = client.request("GET", f"/api/v1/microvms/{name}/console", params=params)
    return reply


def print_vm_console(config: rack_config.RackConfig, name: str, follow: bool) -> int:
    with ApiClient(config, timeout=FOLLOW_WAIT_SECONDS + 10.0) as client:
        skip, attempt, waiting = 0, None, ""
        while True:
            try:
                reply = _read(client, name, skip, FOLLOW_WAIT_SECONDS if follow else 0.0)
            except HttpError as exc:
                if not follow or exc.status not in (409, 503):
                    raise
                if str(exc) != waiting:  # not placed yet, or its unit is out of reach: wait
                    waiting = str(exc)
                    print(f"racklet: waiting: {exc}", file=sys.stderr, flush=True)
                time.sleep(RETRY_SECONDS)
                continue
            waiting = ""
            if attempt is not None and reply["attempt"] != attempt and skip:
                attempt, skip = reply["attempt"], 0  # a new attempt: its console from line 0
                continue
            if attempt is not None and reply["attempt"] != attempt:
                print(f"racklet: attempt {reply['attempt']} on {reply['unit']}", file=sys.stderr)
            attempt = reply["attempt"]
            for line in reply["lines"]:
                print(line, flush=True)
            skip = int(reply["next"])
            if not reply["lines"] and (not follow or reply["phase"] in ENDED):
                return 0
