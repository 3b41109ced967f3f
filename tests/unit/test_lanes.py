"""Distributed integrity, in process: a step some lane never reported is no evidence, and
workers join only a master running the same code and sending the same body."""

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from tuner.config import build_config
from tuner.measure.analyse import analyse_output
from tuner.measure.analysis import Sla, StepSpec, summarize_samples
from tuner.measure.lanes import (
    check_lanes,
    handshake_problem,
    hello,
    lane_label,
    lost_step_reason,
    wire_version,
)
from tuner.measure.loadtest import LoadTestOutput

SLA = Sla(percentile=90, latency_ms=100, max_error_rate=0.01)
LANES = {"a": "worker hostA pid 11 (a)", "b": "worker hostB pid 22 (b)"}


def test_a_step_is_complete_only_when_every_lane_it_started_with_reported():
    assert check_lanes(LANES, {"a", "b"}, alive={"a"}, overdue=False).complete
    waiting = check_lanes(LANES, {"a"}, alive={"a", "b"}, overdue=False)
    assert waiting.waiting and not waiting.lost


def test_a_lane_that_left_or_stayed_silent_is_lost_by_name():
    gone = check_lanes(LANES, {"a"}, alive={"a"}, overdue=False)
    assert gone.lost == ("worker hostB pid 22 (b)",) and not gone.complete
    silent = check_lanes(LANES, {"a"}, alive={"a", "b"}, overdue=True)
    assert silent.lost == ("worker hostB pid 22 (b) (no report)",)
    # A lane that reported and then left takes nothing away from the step.
    assert check_lanes(LANES, {"a", "b"}, alive=set(), overdue=True).complete


def test_a_lane_whose_report_was_malformed_is_lost_even_if_it_also_reported():
    """All the lane rules in one place: a report that was not a report is no evidence."""
    why = "tuner_step_done message without samples"
    check = check_lanes(LANES, {"a", "b"}, alive={"a", "b"}, overdue=False,
                        malformed={"b": why})
    assert not check.complete
    assert check.lost == (f"worker hostB pid 22 (b) (its report was malformed: {why})",)
    # A lane not in this step is none of its business.
    assert check_lanes(LANES, {"a", "b"}, alive={"a"}, overdue=False,
                       malformed={"z": why}).complete


def samples_of(index: int, rate: float, duration_s: float, share: float = 1.0) -> pd.DataFrame:
    """Fast answers for `share` of a step's arrivals: what reaches the disk when only some
    of its lanes reported."""
    intended = np.arange(0, duration_s, 1.0 / (rate * share))
    return pd.DataFrame({"step": index, "intended_s": intended,
                         "completed_s": intended + 0.01, "latency_ms": 10.0, "ok": True})


def output_of(specs: list[StepSpec], samples: pd.DataFrame, meta: list[dict]) -> LoadTestOutput:
    summary = {"plan": {"sla": asdict(SLA), "arrivals": "uniform"}, "step_meta": meta,
               "steps": [asdict(s) for s in specs], "stop_reason": "search complete"}
    return LoadTestOutput(Path("."), specs, samples, summary)


def two_steps(second: StepSpec) -> tuple[list[StepSpec], pd.DataFrame]:
    first = StepSpec(0, 50.0, 10.0, 1.0, "ramp")
    samples = pd.concat([samples_of(0, 50.0, 10.0), samples_of(1, 100.0, 10.0, share=0.5)])
    return [first, second], samples


CONFIG = build_config({}, {"endpoint": "ep", "url": "http://127.0.0.1:9", "sla_latency_ms": 100,
                           "arrivals": "uniform"})


def test_a_step_with_a_lost_lane_is_not_judged_and_ends_the_measurement():
    # Step 1 offered 100 rps over two lanes; one was lost, so the endpoint got 50 rps,
    # which it passes easily: judged, that step would "show" a capacity of 100 rps.
    reason = lost_step_reason(1, 100.0, ["worker hostB pid 22 (b)"], 2)
    specs, samples = two_steps(StepSpec(1, 100.0, 10.0, 1.0, "ramp", invalid_reason=reason))
    assert [s.index for s in summarize_samples(specs, samples, SLA)] == [0]
    meta = [{"index": 0, "lanes_expected": 2, "lanes_reported": 2},
            {"index": 1, "lanes_expected": 2, "lanes_reported": 1, "invalid_reason": reason}]
    analysis = analyse_output(CONFIG, output_of(specs, samples, meta), instances_under_test=1)
    assert analysis.capacity is None and analysis.recommendation is None
    assert analysis.error.startswith("measurement incomplete: worker hostB pid 22 (b) lost "
                                     "during step 1")
    assert [s.index for s in analysis.steps] == [0]


def test_an_old_run_whose_metadata_shows_a_missing_lane_is_not_judged_on_it_either():
    specs, samples = two_steps(StepSpec(1, 100.0, 10.0, 1.0, "ramp"))
    meta = [{"index": 0, "lanes_expected": 2, "lanes_reported": 2},
            {"index": 1, "lanes_expected": 2, "lanes_reported": 1}]
    analysis = analyse_output(CONFIG, output_of(specs, samples, meta), instances_under_test=1)
    assert analysis.capacity is None
    assert "1 of 2 lanes did not report step 1" in analysis.error
    assert [s.index for s in analysis.steps] == [0]
    # Every lane reported: the same data is judged as before.
    full = [dict(m, lanes_reported=2) for m in meta]
    analysis = analyse_output(CONFIG, output_of(specs, samples, full), instances_under_test=1)
    assert analysis.error is None and analysis.capacity.last_pass_rps == 100.0


def test_the_handshake_accepts_the_same_code_and_body_and_names_both_sides_otherwise():
    master = hello("a" * 64, "hostA", 1)
    assert handshake_problem(master, hello("a" * 64, "hostB", 2)) is None
    other = hello("b" * 64, "hostB", 2)
    problem = handshake_problem(master, other)
    assert str(master["payload_sha256"])[:12] in problem
    assert str(other["payload_sha256"])[:12] in problem
    assert "--payloads" in problem and "\n" not in problem
    older = {**master, "version": "0.0.9/protocol-0"}
    problem = handshake_problem(master, older)
    assert "0.0.9/protocol-0" in problem and wire_version() in problem


def test_a_lane_is_named_so_that_a_user_can_find_it():
    assert lane_label("host_ab12", {"host": "host", "pid": 42}) == "worker host pid 42 (host_ab12)"
    assert lane_label("local", None) == "the local Locust process"
