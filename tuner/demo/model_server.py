"""The bundled model server: a SageMaker inference container of known behaviour.

It speaks the container contract SageMaker hosting uses (`GET /ping` -> 200,
`POST /invocations`) and serves each invocation in one of `slots` concurrent slots. Each
request draws its own service time from a service-time law (`--service-law`, e.g.
`lognormal:40:1.0` or `bimodal:20:0.05:400`; by default `constant:<--service-ms>`), from a
random generator seeded with `--seed`, so a run is reproducible. Its saturation throughput
is exactly `slots * 1000 / mean service ms` requests per second; the highest rate meeting a
latency SLA under Poisson arrivals is lower (`tuner.measure.queueing.capacity_at_sla`).

Slots are booked on a virtual clock (each request takes the earliest free slot, FIFO, and
finishes its service time after it frees), so event-loop jitter delays single responses but
never erodes the capacity: the demo, tests and benchmarks can compare what the tuner
measures against a known truth.

Run it with `python -m tuner.demo.model_server --port 8080 --slots 4 --service-ms 20`
or `python -m tuner.demo.model_server --slots 2 --service-law lognormal:40:1.0 --seed 7`.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import time

import numpy as np
import uvicorn

from tuner.measure.queueing import ServiceLaw

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

    def book_slot(self, now: float) -> tuple[float, float]:
        """Book the earliest free slot for a request arriving at `now`, with a fresh service
        time; return (start, finish). Requests start in the order they booked."""
        service = self._draw()
        start = max(now, heapq.heappop(self._free_at))
        finish = start + service
        heapq.heappush(self._free_at, finish)
        self.bookings += 1
        self.booked_service_s += service
        return start, finish

    def book(self, now: float) -> float:
        """Book the earliest free slot for a request arriving at `now`; return its finish."""
        return self.book_slot(now)[1]

    @property
    def saturation_rps(self) -> float:
        """Throughput with every slot busy: slots / mean service time."""
        return self.law.saturation_rps(self.slots)

    @property
    def capacity_rps(self) -> float:
        """The saturation throughput (kept under its old name)."""
        return self.saturation_rps


def make_app(slots: int, service_ms: float = 20.0, error_rate: float = 0.0,
             law: ServiceLaw | None = None, seed: int = 0):
    """An ASGI app; plain ASGI rather than a framework keeps the server's own CPU cost low.

    Without `law`, every request takes `service_ms` (the law `constant:<service_ms>`).
    """
    if law is None:
        law = ServiceLaw("constant", service_ms)
    scheduler = SlotScheduler(slots, law=law, seed=seed)
    counter = {"requests": 0}
    status = {"status": "healthy", "slots": slots, "law": str(law),
              "service_ms": law.average_ms, "saturation_rps": scheduler.saturation_rps,
              "capacity_rps": scheduler.saturation_rps, "seed": seed}

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
            finish = scheduler.book(time.monotonic())
            await asyncio.sleep(max(0.0, finish - time.monotonic()))
            if error_rate and (counter["requests"] % max(1, round(1 / error_rate))) == 0:
                await send_json(send, 500, {"error": "injected failure"})
                return
            await send_json(send, 200, {"predictions": [0.5], "bytes_in": len(body)})
            return
        await send_json(send, 404, {"error": f"no route {method} {path}"})

    return app


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
                             "exponential:MS, lognormal:MS:SIGMA, bimodal:MS:SHARE:SLOW_MS")
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
    uvicorn.run(make_app(args.slots, law.average_ms, args.error_rate, law=law, seed=args.seed),
                host=args.host, port=args.port, log_level="warning", access_log=False,
                backlog=4096, ssl_certfile=args.certfile, ssl_keyfile=args.keyfile)


if __name__ == "__main__":
    main()
