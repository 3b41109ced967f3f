"""POSTs to one URL, sent through a FastHttpUser's own HTTP client without per-request wrapping.

Why: at open-loop rates a generator process is bound by its CPU per request.
`FastHttpSession.request` spends about 60 of its ~155 µs per request (measured on this
project's bundled server) on work a prepared POST never needs: building the URL, merging the
headers three times, the cookie jar, redirects, gzip, wrapping the response. `FastPost`
resolves the path and headers once and calls the same `HTTPClient.request` that
FastHttpSession ends in, taken from the user's own client pool, so every FastHttpUser
setting (concurrency, timeouts, TLS verification, proxy) holds. It then reports the request
on `events.request` as FastHttpSession does, so Locust's statistics and tuner's recorder
both see it. `benchmarks/generator.py` measures the difference.

Imported only by locustfiles (inside the gevent-patched Locust process).
"""

from __future__ import annotations

import time
from typing import Any

from geventhttpclient.url import URL
from locust import FastHttpUser
from locust.contrib.fasthttp import FAILURE_EXCEPTIONS

from tuner.errors import RunError


class HTTPStatusError(Exception):
    """A response outside 2xx, reported to Locust as the request's failure; with AWS's
    error type (`x-amzn-ErrorType`, e.g. ThrottlingException) when the response names one,
    so throttling is never mistaken for a bad request."""

    def __init__(self, status: int, body: bytes, error_type: str | None = None) -> None:
        detail = " ".join(body[:200].decode("utf-8", errors="replace").split())
        kind = f" {error_type.split(':', 1)[0]}" if error_type else ""
        super().__init__(f"HTTP {status}{kind}" + (f": {detail}" if detail else ""))
        self.status = status


class FastPost:
    """One user's POSTs to one URL (each with a prepared body and headers); `send` is safe
    to call from many greenlets."""

    def __init__(self, user: FastHttpUser, url: str, name: str) -> None:
        target = URL(url)
        if target.scheme not in ("http", "https"):
            raise RunError(f"cannot send to {url!r}: the URL must start with http:// or "
                           "https://")
        self.http = user.client.client.clientpool.get_client(target)
        self.path = target.quoted_uri  # percent-encoded, as FastHttpSession sends it
        self.url = url
        self.name = name
        self.fire = user.environment.events.request.fire

    def send(self, context: dict[str, Any], body: bytes, headers: dict[str, str]) -> None:
        """POST `body` with `headers`, read the whole response, and report it; a status
        outside 2xx or a network error is a failure."""
        start_time = time.time()
        started = time.perf_counter()
        length, exception = 0, None
        try:
            with self.http.request("POST", self.path, body=body,
                                   headers=headers) as response:
                content = response.read()
                length = len(content)
                if not 200 <= response.status_code < 300:
                    error_type = response.get("x-amzn-errortype")
                    if isinstance(error_type, list):
                        error_type = error_type[0]
                    exception = HTTPStatusError(response.status_code, content, error_type)
        except FAILURE_EXCEPTIONS as error:
            exception = error
        self.fire(request_type="POST", name=self.name, context=context, response=None,
                  exception=exception, start_time=start_time, url=self.url,
                  response_time=(time.perf_counter() - started) * 1000.0,
                  response_length=length)

