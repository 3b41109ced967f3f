"""The bundled model server: a SageMaker inference container of known behaviour.

It speaks the container contract SageMaker hosting uses (`GET /ping` -> 200,
`POST /invocations`) and serves each invocation in one of `slots` concurrent slots. Each
request draws its own service time from a service-time law (`--service-law`, e.g.
`lognormal:40:1.0` or `bimodal:20:0.05:400`; by default `constant:<--service-ms>`), from a
random generator seeded with `--seed`, so a run is reproducible. Its saturation throughput
is exactly `slots * 1000 / mean service ms` requests per second; the highest rate meeting a
latency SLA under Poisson arrivals is lower (`tuner.measure.queueing.capacity_at_sla`).

With `--per-row`, a request's service time is its draw from the law times its row count
(`tuner.measure.queueing.rows_in_body`): `len(instances)` for a JSON object with a list
"instances", `len(body)` for a top-level JSON list, the non-empty lines of a `text/csv` (or
other plain-text) body, else 1. A test sending a mix of payloads then measures less than
the one-row payload's capacity; its truth is the law scaled by the mix's row counts
(`ServiceLaw.parse("constant:10@rows=1:0.8,8:0.2")`). `/ping` reports the one-row figures.
A body sent as `application/json` that does not parse is answered 400 at once, as a real
container's input handler answers it.

Slots are booked on a virtual clock (each request takes the earliest free slot, FIFO, and
finishes its service time after it frees), so event-loop jitter delays single responses but
never erodes the capacity: the demo, tests and benchmarks can compare what the tuner
measures against a known truth.

Run it with `python -m tuner.demo.model_server --port 8080 --slots 4 --service-ms 20`
or `python -m tuner.demo.model_server --slots 2 --service-law lognormal:40:1.0 --seed 7`
or `python -m tuner.demo.model_server --slots 2 --service-ms 5 --per-row`.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import math
import time

import numpy as np
import uvicorn

from tuner.measure.queueing import ServiceLaw, rows_in_body

# Service times are drawn this many at a time (one numpy call per batch, not per request).
_DRAW_BATCH = 1024


class SlotScheduler:
    """c identical slots behind a FIFO queue, each request's service time drawn from a law
    (constant by default: an M/D/c or D/D/c queue)."""

    def __init__(self, slots: int, service_s: float | None = None,
                 law: ServiceLaw | None = None, seed: int = 0) -> None:
        if law is None:
            if service_s is None or not service_s > 0:
                raise ValueError("slots must be >= 1 and service time > 0")
            law = ServiceLaw("constant", service_s * 1000.0)
        if slots < 1:
            raise ValueError("slots must be >= 1 and service time > 0")
        self.law = law
        self.slots = slots
        self._rng = np.random.default_rng(seed)
        self._draws: list[float] = []
        self._free_at = [0.0] * slots
        heapq.heapify(self._free_at)
        self.bookings = 0
        self.booked_service_s = 0.0

    @property
    def service_s(self) -> float:
        """The mean service time in seconds."""
        return self.law.average_ms / 1000.0

    def _draw(self) -> float:
        if not self._draws:
            self._draws = self.law.sample_s(self._rng, _DRAW_BATCH).tolist()
            self._draws.reverse()  # pop() from the end serves them in drawn order
        return self._draws.pop()

    def book_slot(self, now: float, scale: float = 1.0) -> tuple[float, float]:
        """Book the earliest free slot for a request arriving at `now`, with a fresh service
        time times `scale` (its row count, for a per-row server); return (start, finish).
        Requests start in the order they booked.

        One draw per booking whatever the scale, so a seed gives the same draws whatever
        payloads arrive: a run stays reproducible.
        """
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"service-time scale {scale} must be a positive number")
        service = self._draw() * scale
        start = max(now, heapq.heappop(self._free_at))
        finish = start + service
        heapq.heappush(self._free_at, finish)
        self.bookings += 1
        self.booked_service_s += service
        return start, finish

    def book(self, now: float, scale: float = 1.0) -> float:
        """Book the earliest free slot for a request arriving at `now`; return its finish."""
        return self.book_slot(now, scale)[1]

    @property
    def saturation_rps(self) -> float:
        """Throughput with every slot busy: slots / mean service time."""
        return self.law.saturation_rps(self.slots)

    @property
    def capacity_rps(self) -> float:
        """The saturation throughput (kept under its old name)."""
        return self.saturation_rps


def make_app(slots: int, service_ms: float = 20.0, error_rate: float = 0.0,
             law: ServiceLaw | None = None, seed: int = 0, per_row: bool = False):
    """An ASGI app; plain ASGI rather than a framework keeps the server's own CPU cost low.

    Without `law`, every request takes `service_ms` (the law `constant:<service_ms>`). With
    `per_row`, each request's drawn time is multiplied by its row count (`rows_in_body`);
    the status's service and saturation figures are then those of one-row requests.
    """
    if law is None:
        law = ServiceLaw("constant", service_ms)
    scheduler = SlotScheduler(slots, law=law, seed=seed)
    counter = {"requests": 0}
    status = {"status": "healthy", "slots": slots, "law": str(law),
              "service_ms": law.average_ms, "saturation_rps": scheduler.saturation_rps,
              "capacity_rps": scheduler.saturation_rps, "seed": seed, "per_row": per_row}

    async def send_json(send, code: int, body: dict) -> None:
        payload = json.dumps(body).encode()
        await send({"type": "http.response.start", "status": code,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == "/ping" and method == "GET":
            # The invocations served so far: tests check that load stops when it must.
            await send_json(send, 200, {**status, "requests": counter["requests"]})
            return
        # /endpoints/<name>/invocations is the runtime API's path: the same server can stand
        # in for InvokeEndpoint when benchmarking the signed load path.
        if method == "POST" and (path == "/invocations" or (
                path.startswith("/endpoints/") and path.endswith("/invocations"))):
            body = b""
            more = True
            while more:
                message = await receive()
                body += message.get("body", b"")
                more = message.get("more_body", False)
            counter["requests"] += 1
            content_type = _header(scope, b"content-type")
            if not _readable(body, content_type):
                # As a real container's input handler does: a body it cannot parse is the
                # client's error, answered at once without taking a slot.
                await send_json(send, 400, {"error": "the body is not valid JSON"})
                return
            rows = rows_in_body(body, content_type) if per_row else 1
            start, finish = scheduler.book_slot(time.monotonic(), scale=rows)
            await asyncio.sleep(max(0.0, finish - time.monotonic()))
            if error_rate and (counter["requests"] % max(1, round(1 / error_rate))) == 0:
                await send_json(send, 500, {"error": "injected failure"})
                return
            # The booked service time: tests check the per-row cost without a stopwatch.
            await send_json(send, 200, {"predictions": [0.5], "bytes_in": len(body),
                                        "rows": rows,
                                        "service_ms": (finish - start) * 1000.0})
            return
        await send_json(send, 404, {"error": f"no route {method} {path}"})

    return app


def _readable(body: bytes, content_type: str) -> bool:
    """A JSON body must parse; other content types are taken as they come."""
    if content_type.split(";", 1)[0].strip().lower() != "application/json":
        return True
    try:
        json.loads(body)
    except (ValueError, RecursionError):
        return False
    return True


def _header(scope: dict, name: bytes) -> str:
    """A request header's value ('' when absent); ASGI gives names in lower case."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return ""


def _law(text: str) -> ServiceLaw:
    try:
        return ServiceLaw.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--slots", type=int, default=4, help="concurrent requests served")
    parser.add_argument("--service-ms", type=float, default=20.0,
                        help="time each request occupies a slot (the law constant:MS)")
    parser.add_argument("--service-law", type=_law, metavar="LAW",
                        help="service-time law, overrides --service-ms: constant:MS, "
                             "exponential:MS, lognormal:MS:SIGMA, bimodal:MS:SHARE:SLOW_MS; "
                             "LAW@rows=R:WEIGHT,... scales it by random row counts")
    parser.add_argument("--per-row", action="store_true",
                        help="multiply each request's drawn time by its row count: JSON "
                             "'instances' or top-level list length, non-empty CSV/text "
                             "lines, else 1")
    parser.add_argument("--seed", type=int, default=0, help="seed of the service-time draws")
    parser.add_argument("--error-rate", type=float, default=0.0,
                        help="share of invocations answered with HTTP 500 (for tests)")
    parser.add_argument("--certfile", help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--keyfile", help="the certificate's private key (PEM)")
    args = parser.parse_args(argv)
    if args.slots < 1:
        parser.error(f"--slots {args.slots} must be at least 1")
    law = args.service_law
    if law is None:
        try:
            law = ServiceLaw("constant", args.service_ms)
        except ValueError as error:
            parser.error(f"--service-ms: {error}")
    if args.per_row and law.scales:
        # Rows would be counted twice: drawn at random by the law and read from each body.
        parser.error(f"--service-law {law}: a law with a payload mix draws row counts at "
                     "random; with --per-row they come from each request: use one")
    app = make_app(args.slots, law.average_ms, args.error_rate, law=law, seed=args.seed,
                   per_row=args.per_row)
    uvicorn.run(app,
                host=args.host, port=args.port, log_level="warning", access_log=False,
                backlog=4096, ssl_certfile=args.certfile, ssl_keyfile=args.keyfile)


if __name__ == "__main__":
    main()
