"""Locustfile: open-loop capacity search against a model container's `/invocations` URL.

Used by `tuner tune --url ...` (the plan comes in through $TUNER_PLAN), and on its own:

    TUNER_SLA_LATENCY_MS=100 locust -f loadtests/http_invocations.py --headless \
        --host http://127.0.0.1:8080
"""

from __future__ import annotations

from locust import FastHttpUser, task

from loadtests.fastpost import FastPost
from loadtests.openloop import OpenLoopLane, SearchShape, install, load_payloads, load_plan

PLAN = load_plan()
PAYLOADS = load_payloads(PLAN)
install(PLAN, PAYLOADS)

__all__ = ["InvocationsUser", "SearchShape"]


def invocations_url(base: str) -> str:
    """Accept a container base URL or its full /invocations URL."""
    base = base.rstrip("/")
    return base if base.endswith("/invocations") else base + "/invocations"


class InvocationsUser(OpenLoopLane, FastHttpUser):
    """One lane of arrivals; concurrent requests within the lane share a connection pool."""

    plan = PLAN
    payloads = PAYLOADS
    host = PLAN["target"].get("url")
    concurrency = PLAN["max_in_flight"]
    network_timeout = PLAN["request_timeout_s"]
    connection_timeout = PLAN["request_timeout_s"]

    def on_start(self) -> None:
        self.post = FastPost(self, invocations_url(self.host), name="/invocations")
        # Each payload's body and headers, prepared once.
        self.requests = [(p.body, {"Content-Type": p.content_type, "Accept": "application/json"})
                         for p in PAYLOADS.payloads]

    @task
    def lanes(self) -> None:
        self.run_lanes()

    def invoke(self, tag: tuple[int, float, float, int]) -> None:
        body, headers = self.requests[tag[3]]
        self.post.send({"tuner": tag}, body, headers)
