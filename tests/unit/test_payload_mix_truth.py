"""The truth for a payload mix: a service-time law scaled by a random row count R.

A per-row server (`tuner.demo.model_server --per-row`) fed a mix of payloads serves the law
times the payload's rows, so its saturation throughput is slots / (mean * E[R]) and its
capacity at an SLA is below the one-row payload's: `ServiceLaw.scales` lets
`capacity_at_sla` compute it.
"""

import numpy as np
import pytest

from tuner.measure.queueing import ServiceLaw, capacity_at_sla, latency_percentile_ms

MIX = "constant:10@rows=1:0.8,8:0.2"  # E[R] = 0.8 * 1 + 0.2 * 8 = 2.4


@pytest.mark.parametrize("text", ["constant:20", "exponential:25", "lognormal:40:1",
                                  "bimodal:20:0.05:400"])
def test_unscaled_laws_are_unchanged(text):
    law = ServiceLaw.parse(text)
    assert law.scales == () and law.mean_scale == 1.0 and law.unscaled is law
    assert str(law) == text and ServiceLaw.parse(str(law)) == law


def test_unscaled_draws_are_unchanged():
    law = ServiceLaw.parse("exponential:25")
    drawn = law.sample_s(np.random.default_rng(5), 100)
    assert drawn.tolist() == np.random.default_rng(5).exponential(0.025, 100).tolist()


def test_a_mix_round_trips_and_keeps_its_law():
    law = ServiceLaw.parse("lognormal:40:1@rows=1:0.8,8:0.2")
    assert law.scales == ((1.0, 0.8), (8.0, 0.2))
    assert law.unscaled == ServiceLaw.parse("lognormal:40:1")
    assert str(law) == "lognormal:40:1@rows=1:0.8,8:0.2"
    assert ServiceLaw.parse(str(law)) == law
    # Lists are taken as tuples: the law stays hashable and equal to its parsed form.
    built = ServiceLaw("lognormal", 40, sigma=1, scales=[[1, 0.8], [8, 0.2]])
    assert built == law and hash(built) == hash(law)


@pytest.mark.parametrize("text", ["constant:10@rows=", "constant:10@rows=1", "constant:10@rows=0:1",
                                  "constant:10@rows=2:-1", "constant:10@rows=nan:1",
                                  "constant:10@rows=1:x", "constant:10@1:1",
                                  "gamma:10@rows=1:1"])
def test_bad_mixes_are_refused(text):
    with pytest.raises(ValueError):
        ServiceLaw.parse(text)


def test_draws_are_the_one_row_draws_times_the_drawn_rows():
    law = ServiceLaw.parse("exponential:10@rows=1:0.8,8:0.2")
    scaled = law.sample_s(np.random.default_rng(3), 50_000)
    # The law's draws come first from the generator, the row counts after them.
    one_row = law.unscaled.sample_s(np.random.default_rng(3), 50_000)
    rows = scaled / one_row
    assert set(np.round(rows, 9).tolist()) == {1.0, 8.0}
    assert np.mean(np.isclose(rows, 8.0)) == pytest.approx(0.2, abs=0.01)


@pytest.mark.parametrize("text, one_row_ms", [
    ("constant:10", 10.0), ("lognormal:40:1", 40.0), ("bimodal:20:0.05:400", 39.0)])
@pytest.mark.parametrize("slots", [1, 3])
def test_saturation_divides_by_the_mean_rows(text, one_row_ms, slots):
    law = ServiceLaw.parse(text + "@rows=1:0.8,8:0.2")
    assert law.mean_scale == pytest.approx(2.4)
    assert law.average_ms == pytest.approx(one_row_ms * 2.4)
    assert law.saturation_rps(slots) == pytest.approx(slots * 1000 / (one_row_ms * 2.4))


def test_an_idle_server_shows_both_payloads_in_the_latency():
    law = ServiceLaw.parse(MIX)
    # 1 rps on 4 slots: no queueing, so the latencies are 10 ms (80%) and 80 ms (20%).
    assert latency_percentile_ms(1.0, law, 4, 50, requests=2000) == pytest.approx(10.0)
    assert latency_percentile_ms(1.0, law, 4, 95, requests=2000) == pytest.approx(80.0)


def test_a_mix_has_less_capacity_than_its_smallest_payload():
    def capacity(text: str) -> float:
        return capacity_at_sla(ServiceLaw.parse(text), 2, 90, 200.0, requests=20_000,
                               tolerance=0.01)

    mix, one_row, eight_rows = capacity(MIX), capacity("constant:10"), capacity("constant:80")
    assert eight_rows < mix < one_row
    assert mix < ServiceLaw.parse(MIX).saturation_rps(2)
    # Below even an endpoint serving the mean payload (2.4 rows) every time: the mix's
    # spread of service times queues requests sooner.
    assert mix < capacity("constant:24")


def test_the_demos_truth_is_the_mix_its_payload_file_sends():
    """`tuner demo` compares what it measures with DEMO_LAW: that law must be the rows and
    weights of the payload set the demo sends, as the per-row server counts them."""
    from tuner.demo.run import DEMO_LAW, DEMO_PAYLOADS
    from tuner.measure.payload_sources import load_payload_set
    from tuner.measure.queueing import ServiceLaw, rows_in_body

    sent = load_payload_set(str(DEMO_PAYLOADS), "application/json", None, 0).payloads
    total = sum(p.weight for p in sent)
    mix = sorted((float(rows_in_body(p.body, p.content_type)), p.weight / total) for p in sent)
    law = ServiceLaw.parse(DEMO_LAW)
    assert [(rows, round(weight, 9)) for rows, weight in sorted(law.scales)] == [
        (rows, round(weight, 9)) for rows, weight in mix]
