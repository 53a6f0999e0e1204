"""The controller API's event-loop lag under fuzz load (issue 9, item 5).

A real API (SQLite store, TLS, bearer token, ``racklet.limits``) runs in a process of its
own on uvloop (``tests/controller/api_process.py``) with a loop-lag probe: a task that
sleeps 5 ms and records how late it wakes. This process loads the API's OpenAPI document
from ``/openapi/v3``, has schemathesis generate valid and invalid requests for every
operation, adds the hostile inputs of issue 9 (JSON nested 1,000 and 100,000 deep, 1 MB and
3 MB bodies, ``Infinity``/``1e999``/``.inf``, 5,000-digit numbers and resource versions,
YAML alias bombs), and replays them all from ``--clients`` threads, authenticated. The
server reports the lag it saw (p50, p99, max of the late wake-ups, and the largest part of
one that the loop spent computing), under the load and in 5 idle seconds before it.
Run: ``python -m bench loop_lag_fuzz [--cases 30] [--clients 8]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.controller.api_process import TOKEN


def _hostile() -> list[tuple[str, str, bytes, str]]:
    """(method, path, body, content type) of the issue's inputs, each on several routes."""
    bomb = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    bomb += [f"a{n}: &a{n} [{','.join([f'*a{n - 1}'] * 10)}]" for n in range(1, 7)]
    bodies = [
        (b"[" * 1000 + b"]" * 1000, "application/json"),
        (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "application/json"),
        (b'{"spec": {"psuRatedWatts": Infinity}}', "application/merge-patch+json"),
        (b'{"spec": {"psuRatedWatts": 1e999}}', "application/merge-patch+json"),
        (b"spec:\n  psuRatedWatts: .inf\n", "application/yaml"),
        (("metadata:\n  labels:\n    " + "\n    ".join(bomb)).encode(), "application/yaml"),
        (b'{"metadata": {"name": "' + b"x" * (1024 * 1024) + b'"}}', "application/json"),
        (b" " * (3 * 1024 * 1024), "application/json"),
        (b'{"spec": {"slot": ' + b"9" * 5000 + b"}}", "application/json"),
    ]
    routes = [
        ("PATCH", "/api/v1/racks/rack-1"),
        ("POST", "/api/v1/computeunits"),
        ("PUT", "/api/v1/computeunits/unit-1"),
        ("POST", "/api/v1/events"),
    ]
    out = [(m, p, b, t) for m, p in routes for b, t in bodies]
    out += [("GET", f"/api/v1/racks?watch=1&resourceVersion={'9' * 5000}", b"", "")]
    return out


def _cases(url: str, ca: str, per_operation: int) -> list[Any]:
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable

    schema = schemathesis.openapi.from_url(
        f"{url}/openapi/v3", headers={"Authorization": f"Bearer {TOKEN}"}, verify=ca
    )
    cases: list[Any] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=per_operation, deadline=None, database=None, derandomize=True,
                suppress_health_check=list(HealthCheck),
            )  # fmt: skip
            def collect(case: Any) -> None:
                if case.query and str(case.query.get("watch")).lower() in ("true", "1"):
                    case.query["watch"] = "false"
                cases.append(case)

            with contextlib.suppress(Unsatisfiable):  # no inputs: no invalid form
                collect()
    return cases


def run(per_operation: int, clients: int) -> dict[str, Any]:
    from tests.controller.api_process import ApiProcess

    with tempfile.TemporaryDirectory(prefix="racklet-lag-") as tmp:
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            port = free.getsockname()[1]
        api = ApiProcess(Path(tmp), port)
        try:
            cases = _cases(api.url, str(api.ca), per_operation)
            api.record()  # the first requests' warm-up is not part of either phase
            time.sleep(5)
            idle = api.record()  # what the probe sees with no load
            statuses, seconds = _replay(api.url, str(api.ca), cases, _hostile(), clients)
            fuzz = api.record()
        finally:
            api.stop()
    return {
        "schemathesis_cases": len(cases),
        "hostile_requests": len(_hostile()),
        "clients": clients,
        "seconds": round(seconds, 1),
        "statuses": dict(sorted(statuses.items())),
        "idle": idle["summary"],
        "fuzz": fuzz["summary"],
    }


def _replay(
    url: str, ca: str, cases: list[Any], hostile: list[tuple[str, str, bytes, str]], clients: int
) -> tuple[Counter[int], float]:
    import requests

    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    local = threading.local()
    auth = {"Authorization": f"Bearer {TOKEN}"}

    def session() -> requests.Session:
        if not hasattr(local, "session"):  # verify= per request: the environment beats a
            local.session = requests.Session()  # session's own setting in requests
        return local.session  # type: ignore[no-any-return]

    def one(item: Any) -> None:
        if isinstance(item, tuple):
            method, path, body, content_type = item
            headers = {**auth, **({"Content-Type": content_type} if content_type else {})}
            answer = session().request(method, url + path, data=body, headers=headers, verify=ca)
            code = answer.status_code
        else:
            item.headers = {**(item.headers or {}), **auth}
            code = item.call(base_url=url, session=session(), verify=ca, timeout=60).status_code
        with lock:
            statuses[code] += 1

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, [*cases, *hostile]))
    return statuses, time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench loop_lag_fuzz")
    parser.add_argument("--cases", type=int, default=40, help="examples per operation and mode")
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.cases, args.clients), indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
