
import asyncio
import json

import numpy as np
import pytest

from tuner.demo.model_server import SlotScheduler, main, make_app
from tuner.demo.servers import model_server
from tuner.measure.queueing import ServiceLaw, rows_in_body


def test_slots_serve_exactly_their_capacity():
    scheduler = SlotScheduler(slots=4, service_s=0.02)
    finishes = [scheduler.book(0.0) for _ in range(1000)]
    assert max(finishes) == pytest.approx(1000 / 200)  # 200 rps
    assert scheduler.capacity_rps == pytest.approx(200)


def test_idle_slot_serves_at_once():
    scheduler = SlotScheduler(slots=2, service_s=0.1)
    assert scheduler.book(5.0) == pytest.approx(5.1)


@pytest.mark.parametrize("law", ["lognormal:40:1.0", "bimodal:20:0.05:400"])
def test_drawn_service_times_book_fifo_with_the_law_mean(law):
    parsed = ServiceLaw.parse(law)
    scheduler = SlotScheduler(slots=3, law=parsed, seed=1)
    arrivals = np.cumsum(np.random.default_rng(2).exponential(0.02, 20_000))  # ~2x overload
    free_at = [0.0, 0.0, 0.0]
    last_start = 0.0
    for now in arrivals.tolist():
        start, finish = scheduler.book_slot(now)
        # FIFO: a request starts when it arrives or when the earliest slot frees, never
        # before an earlier request.
        assert start == pytest.approx(max(now, min(free_at)))
        assert start >= last_start
        free_at[free_at.index(min(free_at))] = finish
        last_start = start
    mean_ms = 1000 * scheduler.booked_service_s / scheduler.bookings
    assert mean_ms == pytest.approx(parsed.average_ms, rel=0.04)
    assert scheduler.capacity_rps == pytest.approx(parsed.saturation_rps(3))


def test_same_seed_same_service_times():
    def finishes(seed):
        scheduler = SlotScheduler(1, law=ServiceLaw.parse("exponential:10"), seed=seed)
        return [scheduler.book(float(i)) for i in range(5)]

    assert finishes(3) == finishes(3)
    assert finishes(3) != finishes(4)


@pytest.mark.parametrize("law", ["gamma:20", "lognormal:40", "lognormal:40:0",
                                 "bimodal:20:1.5:400", "constant:-5", "constant:abc"])
def test_bad_laws_are_refused(law, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--service-law", law])
    assert exit_.value.code == 2
    error_lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(error_lines) == 1 and "--service-law" in error_lines[0]
    with pytest.raises(ValueError), model_server(slots=1, law=law):
        pass


@pytest.mark.parametrize("body, content_type, rows", [
    (b'{"instances": [[1, 2], [3, 4], [5, 6]]}', "application/json", 3),
    (b'{"instances": [[1, 2], [3, 4]]}', "", 2),  # JSON is recognised without its type
    (b'{"instances": []}', "application/json", 1),  # at least one row
    (b'{"inputs": [[1], [2]]}', "application/json", 1),  # another shape: one request
    (b'{\n  "instances": "not a list"\n}', "application/json", 1),
    (b"[[1, 2], [3, 4], [5, 6], [7, 8]]", "application/json", 4),
    (b"[1, 2]", "application/json; charset=utf-8", 2),
    (b"1,2,3\n4,5,6\n\n7,8,9\n", "text/csv", 3),
    (b"1,2\r\n3,4\r\n", "text/csv; charset=utf-8", 2),
    (b"[1, 2]\n[3, 4]\n", "TEXT/CSV", 2),  # the content type decides: CSV lines
    (b"1,2,3\n4,5,6\n", "", 2),  # sniffed as text
    (b'{"a": 1}\n{"a": 2}\n{"a": 3}\n', "application/jsonlines", 3),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image/png", 1),
    (b"\xff\xfe\x00\x01\n\n\x02", "application/octet-stream", 1),
    (b"", "", 1),
    (b"42", "application/json", 1),
])
def test_rows_in_a_body(body, content_type, rows):
    assert rows_in_body(body, content_type) == rows


def test_a_two_row_request_takes_twice_the_time():
    scheduler = SlotScheduler(slots=1, service_s=0.02)
    assert scheduler.book_slot(0.0, scale=2) == pytest.approx((0.0, 0.04))
    assert scheduler.book(0.0) == pytest.approx(0.06)  # queued behind it, one row
    assert 1000 * scheduler.booked_service_s == pytest.approx(60.0)
    with pytest.raises(ValueError):
        scheduler.book(0.0, scale=0)


def test_scaling_keeps_the_draw_sequence():
    def services_s(scales):
        scheduler = SlotScheduler(1, law=ServiceLaw.parse("exponential:10"), seed=3)
        return [scheduler.book_slot(100.0 * i, scale)[1] - 100.0 * i
                for i, scale in enumerate(scales)]

    plain, scaled = services_s([1, 1, 1, 1]), services_s([1, 3, 1, 8])
    assert [s / p for s, p in zip(scaled, plain, strict=True)] == pytest.approx([1, 3, 1, 8])


def call_app(app, method: str, path: str, body: bytes = b"",
             content_type: str = "") -> tuple[int, dict]:
    """One request straight into the ASGI app, no network: (status, JSON body)."""
    sent: list[dict] = []
    headers = [(b"content-type", content_type.encode())] if content_type else []
    scope = {"type": "http", "method": method, "path": path, "headers": headers}
    chunks = [{"type": "http.request", "body": body[:5], "more_body": True},
              {"type": "http.request", "body": body[5:], "more_body": False}]

    async def receive() -> dict:
        return chunks.pop(0)

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], json.loads(b"".join(m.get("body", b"") for m in sent[1:]))


@pytest.mark.parametrize("per_row", [False, True])
def test_the_app_serves_rows_when_per_row(per_row):
    app = make_app(slots=4, service_ms=2.0, per_row=per_row)
    status, ping = call_app(app, "GET", "/ping")
    assert status == 200 and ping["per_row"] is per_row
    assert ping["saturation_rps"] == pytest.approx(2000)  # the one-row figure
    requests = [(b'{"instances": [[1], [2], [3]]}', "application/json", 3),
                (b"1,2\n3,4\n5,6\n7,8\n", "text/csv", 4),
                (b"[0.5]", "application/json", 1),
                (b"\x00\x01\x02 opaque", "application/octet-stream", 1)]
    for body, content_type, rows in requests:
        status, answer = call_app(app, "POST", "/invocations", body, content_type)
        expected = rows if per_row else 1
        assert status == 200 and answer["rows"] == expected
        assert answer["bytes_in"] == len(body)
        assert answer["service_ms"] == pytest.approx(2.0 * expected)
    assert call_app(app, "GET", "/ping")[1]["requests"] == len(requests)


def test_per_row_refuses_a_law_with_random_rows(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--per-row", "--service-law", "constant:10@rows=1:0.8,8:0.2"])
    assert exit_.value.code == 2
    assert "--per-row" in capsys.readouterr().err
