"""The bundled model server: a SageMaker inference container of known capacity.

It speaks the container contract SageMaker hosting uses (`GET /ping` -> 200,
`POST /invocations`) and serves each invocation in one of `slots` concurrent slots for
`service_ms` milliseconds, so its true capacity is exactly `slots * 1000 / service_ms`
requests per second. Slots are booked on a virtual clock (each request takes the earliest
free slot and finishes `service_ms` after it frees), so event-loop jitter delays single
responses but never erodes the capacity: the demo, tests and benchmarks can compare what
the tuner measures against a known truth.

Run it with `python -m tuner.model_server --port 8080 --slots 4 --service-ms 20`.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import time

import uvicorn


class SlotScheduler:
    """c servers with deterministic service time, FIFO: an M/D/c (or D/D/c) queue."""

    def __init__(self, slots: int, service_s: float) -> None:
        if slots < 1 or service_s <= 0:
            raise ValueError("slots must be >= 1 and service time > 0")
        self.service_s = service_s
        self._free_at = [0.0] * slots
        heapq.heapify(self._free_at)

    def book(self, now: float) -> float:
        """Book the earliest free slot for a request arriving at `now`; return its finish."""
        start = max(now, heapq.heappop(self._free_at))
        finish = start + self.service_s
        heapq.heappush(self._free_at, finish)
        return finish

    @property
    def capacity_rps(self) -> float:
        return len(self._free_at) / self.service_s


def make_app(slots: int, service_ms: float, error_rate: float = 0.0):
    """An ASGI app; plain ASGI rather than a framework keeps the server's own CPU cost low."""
    scheduler = SlotScheduler(slots, service_ms / 1000.0)
    counter = {"requests": 0}

    async def send_json(send, status: int, body: dict) -> None:
        payload = json.dumps(body).encode()
        await send({"type": "http.response.start", "status": status,
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
            await send_json(send, 200, {"status": "healthy", "slots": slots,
                                        "service_ms": service_ms,
                                        "capacity_rps": scheduler.capacity_rps})
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--slots", type=int, default=4, help="concurrent requests served")
    parser.add_argument("--service-ms", type=float, default=20.0,
                        help="time each request occupies a slot")
    parser.add_argument("--error-rate", type=float, default=0.0,
                        help="share of invocations answered with HTTP 500 (for tests)")
    parser.add_argument("--certfile", help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--keyfile", help="the certificate's private key (PEM)")
    args = parser.parse_args(argv)
    uvicorn.run(make_app(args.slots, args.service_ms, args.error_rate), host=args.host,
                port=args.port, log_level="warning", access_log=False, backlog=4096,
                ssl_certfile=args.certfile, ssl_keyfile=args.keyfile)


if __name__ == "__main__":
    main()
