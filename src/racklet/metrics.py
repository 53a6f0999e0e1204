"""The one ``/metrics`` exposition every Racklet endpoint serves (controller, BMC, OS agent).

It negotiates the format as Prometheus clients expect (``prometheus_client``'s
``choose_encoder``): OpenMetrics 1.0.0 when the scraper's ``Accept`` header asks for
``application/openmetrics-text``, otherwise the Prometheus text format 0.0.4, which is what
``curl`` and ``promtool check metrics`` read. Prometheus itself asks for OpenMetrics first.

The same collectors feed both formats, so a metric family must be expressible in both: no
OpenMetrics-only types (``info``, ``stateset``); an info is a gauge ``*_info`` of value 1 with
its facts as labels, as node_exporter's ``node_uname_info``. Counters carry a ``_created``
time where the service knows when the count began (Unix seconds).

It imports nothing of Racklet, so every service can use it across the import contracts.
"""

from __future__ import annotations

from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry
from starlette.requests import Request
from starlette.responses import Response

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
"""An ``Accept`` header that asks for OpenMetrics, as Prometheus sends it."""


def exposition(registry: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """The registry rendered for a scraper whose ``Accept`` header is ``accept``, and the
    ``Content-Type`` to send it with."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


def metrics_response(registry: CollectorRegistry, request: Request) -> Response:
    """``GET /metrics`` for ``registry``, in the format the request accepts."""
    body, content_type = exposition(registry, request.headers.get("accept"))
    return Response(body, headers={"Content-Type": content_type, "Vary": "Accept"})
