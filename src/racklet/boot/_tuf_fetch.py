"""ngclient's network seam (``FetcherInterface``) over httpx, for the conformance CLI and tests.

Given a mutual-TLS context, every request presents that certificate and trusts only the rack
CA, and URLs must be ``https://``; the conformance CLI passes no context and may use plain HTTP
on its local test server. The bootstrap itself uses the leaner
:class:`~racklet.boot._stream_fetch.StreamFetcher` (same contract; 64 MB bodies cost it about
half the CPU).

Bodies are read raw (no content decoding: no decompression bombs). Three bounds stop a slow
server: the connect timeout, the gap allowed between two chunks (read timeout) and one
deadline for the whole boot; each raises ngclient's ``SlowRetrievalError``. A ``cancel`` event
lets the async caller stop a download that runs in a worker thread (a power cut).
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator

import httpx
from tuf.api import exceptions as tuf_errors

from racklet.boot._tuf_api import FetcherInterface

_HEADERS = {"Accept-Encoding": "identity", "User-Agent": "racklet-bootstrap"}


def check_time(url: str, cancel: threading.Event, deadline: float | None) -> None:
    """Stop a download that was cancelled (a power cut) or ran past the boot's deadline;
    every fetcher checks before each request and between chunks."""
    if cancel.is_set():
        raise tuf_errors.DownloadError(f"download of {url} cancelled")
    if deadline is not None and time.monotonic() > deadline:
        raise tuf_errors.SlowRetrievalError(f"{url} did not arrive within the boot deadline")


class HttpxFetcher(FetcherInterface):
    """Fetch over one pooled httpx client; close it with :meth:`close`."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None,
        connect_timeout: float,
        read_timeout: float,
        deadline: float | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        self._mutual_tls = ssl_context is not None
        self._client = httpx.Client(
            verify=ssl_context if ssl_context is not None else True,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            trust_env=False,
        )
        self._deadline = deadline
        self._cancel = cancel or threading.Event()

    def close(self) -> None:
        self._client.close()

    def _check_time(self, url: str) -> None:
        check_time(url, self._cancel, self._deadline)

    def _fetch(self, url: str) -> Iterator[bytes]:
        if self._mutual_tls and not url.startswith("https://"):
            raise tuf_errors.DownloadError(f"refusing a non-HTTPS URL on the boot path: {url}")
        self._check_time(url)
        try:
            request = self._client.build_request("GET", url, headers=_HEADERS)
            response = self._client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise tuf_errors.SlowRetrievalError(f"{url}: {_describe(exc)}") from exc
        except httpx.HTTPError as exc:
            raise tuf_errors.DownloadError(f"cannot fetch {url}: {_describe(exc)}") from exc
        if response.status_code >= 400:
            response.close()
            raise tuf_errors.DownloadHTTPError(
                f"server answered HTTP {response.status_code} for {url}", response.status_code
            )
        return self._chunks(url, response)

    def _chunks(self, url: str, response: httpx.Response) -> Iterator[bytes]:
        try:
            for chunk in response.iter_raw():
                self._check_time(url)
                yield chunk
        except httpx.TimeoutException as exc:
            raise tuf_errors.SlowRetrievalError(f"{url}: {_describe(exc)}") from exc
        except httpx.HTTPError as exc:
            raise tuf_errors.DownloadError(f"cannot fetch {url}: {_describe(exc)}") from exc
        finally:
            response.close()


def _describe(exc: httpx.HTTPError) -> str:
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())
