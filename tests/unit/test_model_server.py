
import numpy as np
import pytest

from tuner.demo.model_server import SlotScheduler, main
from tuner.demo.servers import model_server
from tuner.measure.queueing import ServiceLaw


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
