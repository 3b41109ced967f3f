"""The run report people read: markdown, a self-contained HTML page, plots, CSV, JSON.

Rendering is pure (result dict in, text/PNG bytes out); `write_report` is the only part
that touches the disk, and it writes every file atomically so a crash never leaves a
half-written report.
"""

from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from jinja2 import Environment, FileSystemLoader  # noqa: E402

from tuner.measure.queue_model import latency_from_dict  # noqa: E402
from tuner.report.result import RunResult  # noqa: E402
from tuner.report.runfiles import SimulationRecord, read_record  # noqa: E402
from tuner.scaling.iac import FILE_NAMES  # noqa: E402
from tuner.scaling.iac import render as render_iac  # noqa: E402
from tuner.scaling.policy import cli_commands  # noqa: E402

SIMULATION_FILE = "simulation.json"
QUEUE_MODEL_TITLE = "Queue model: latency vs load"
SIMULATION_PLOTS = {"timeline": "simulation-timeline.png", "sweep": "simulation-sweep.png"}
IAC_LINKS = [("AWS CLI commands", "aws-cli.sh"), ("Terraform", "scaling.tf"),
             ("CloudFormation", "scaling-cfn.yaml")]
STEP_COLUMNS = ["index", "phase", "offered_rps", "achieved_rps", "requests", "errors",
                "error_rate", "p50_ms", "p90_ms", "p99_ms", "sla_percentile_ms", "verdict",
                "reasons"]


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def steps_frame(result: dict) -> pd.DataFrame:
    frame = pd.DataFrame(result["steps"], columns=STEP_COLUMNS + ["passed"])
    frame["reasons"] = frame["reasons"].map(lambda r: "; ".join(r) if r else "")
    return frame


def ci_text(result: dict) -> str:
    low, high = result["capacity_ci"]
    return f"{_fmt(low)}–{_fmt(high) if high is not None else 'not reached'} rps"


def headline(result: dict) -> str:
    if result.get("interrupted"):
        return f"**Interrupted:** {result['error']}"
    if result.get("error"):
        return f"**Failed:** {result['error']}"
    validation = result.get("validation")
    if validation:
        verdict = "PASSED" if validation["passed"] else "FAILED"
        return (f"**Validation {verdict}** against {validation['baseline']}: candidate "
                f"{_fmt(validation.get('candidate_rps_per_instance'))} rps per instance vs "
                f"baseline {_fmt(validation.get('baseline_rps_per_instance'))} "
                f"({100 * validation.get('change', 0):+.1f}%). "
                + " ".join(validation.get("reasons", [])))
    target = _fmt(result["target_invocations_per_instance"], 2)
    if result["applied"]:
        state = "applied"
    elif result["dry_run"]:
        state = "proposed (dry run, nothing written)"
        if result.get("aws_note"):
            state += f"; {result['aws_note']}"
    else:
        state = "unchanged (already in place)"
    return (f"**Target {target} invocations per instance per minute** — {state}. "
            f"Capacity {_fmt(result['max_sustainable_rps'])} rps "
            f"(interval {ci_text(result)}); the target uses the interval's lower end "
            f"{_fmt(result['target_basis_rps'])} rps on {result['instances_under_test']} "
            f"instance(s) = {_fmt(result['max_rps_per_instance'])} rps per instance, "
            f"× 60 × safety factor {result['safety_factor']:g}.")


def _money(value: float | None) -> str:
    return "-" if value is None else f"${value:,.2f}"


def simulation_lines(simulation: dict) -> list[str]:
    """The report's simulation section: the evaluated target, the 0.5 rule, the optimum."""
    s = simulation["summary"]
    rec = simulation.get("recommended")
    lines = ["", "## Simulation on real traffic", "", f"Traffic: {simulation['traffic']}.",
             f"Instance startup {simulation['model']['startup_minutes']} min; capacity "
             f"{simulation['model']['min_capacity']}-{simulation['model']['max_capacity']}.", "",
             "| target | instance-hours | cost | minutes over SLA | peak instances | actions |",
             "|---|---|---|---|---|---|"]
    rows = [("evaluated", s)]
    rule = next((r for r in simulation["sweep"] if r["target"] == simulation["rule_target"]),
                None)
    if rule:
        rows.append(("0.5 rule", rule))
    if rec:
        rows.append((f"recommended (≤ {simulation['max_violation_minutes']} min over SLA)", rec))
    for label, row in rows:
        lines.append(f"| {label}: {row['target']:g} | {row['instance_hours']:.1f} | "
                     f"{_money(row.get('cost'))} | {row['violation_minutes']} | "
                     f"{row['peak_instances']} | {row['scaling_actions']} |")
    if not rec:
        lines.append("\nNo target in the sweep kept SLA violations within the budget: raise "
                     "--max-capacity or shorten instance startup.")
    return lines


def target_load_rps(result: dict) -> float | None:
    """The target's load on the endpoint as tested, in requests/s: invocations per instance
    per minute / 60 x instances under test. None without a target."""
    recommendation = result.get("recommendation")
    target = (recommendation.get("target_invocations_per_instance")
              if isinstance(recommendation, dict) else None)
    if target is None:
        target = result.get("target_invocations_per_instance")
    if not isinstance(target, int | float) or not math.isfinite(target) or target <= 0:
        return None
    return target / 60.0 * (result.get("instances_under_test") or 1)


def _fit_quality(fit_error: float | None) -> str:
    if fit_error is None:
        return "unknown"
    if fit_error <= 0.15:
        return "good"
    if fit_error <= 0.35:
        return "fair"
    return "poor: read the curve as a rough guide"


def queue_model_lines(result: dict) -> list[str]:
    """The report's queue-model section: capacity under Poisson and under even arrivals,
    the latency expected at the target load, and the fit quality. Empty without a model."""
    qm = result.get("queue_model")
    if not qm:
        return []
    sla = result["sla"]
    pct = f"p{sla['percentile']:g}"
    poisson = qm["poisson_capacity_rps"]
    uniform = qm["uniform_capacity_rps"]
    low, high = qm["poisson_capacity_band"]
    slots = qm["slots"]
    spread = qm.get("slots_range") or [slots, slots]
    slot_text = (f"{slots} slots" if spread[0] == spread[1]
                 else f"{slots} slots, {spread[0]}–{spread[1]} plausible")
    lines = ["", "## Queue model", "",
             f"An M/G/c queue ({slot_text}) fitted to the steps: service times are the "
             f"latencies measured at the lowest load ({qm.get('service_requests', '?')} "
             f"requests: mean {_fmt(qm['service_mean_ms'])} ms, p50 "
             f"{_fmt(qm.get('service_p50_ms'))} ms, p99 {_fmt(qm.get('service_p99_ms'))} ms). "
             f"Fit {_fit_quality(qm.get('fit_error'))} (RMS error "
             f"{_fmt(100 * qm['fit_error'] if qm.get('fit_error') is not None else None, 0)}% "
             f"on the steps' {pct} latencies).", "",
             "| arrivals | capacity at the SLA | band (95%) |", "|---|---|---|",
             f"| Poisson (the basis) | {_fmt(poisson)} rps | {_fmt(low)}–"
             f"{_fmt(high) if high is not None else 'unbounded'} rps |",
             f"| evenly spaced | {_fmt(uniform)} rps | - |", ""]
    if poisson and uniform:
        change = 100 * (uniform / poisson - 1)
        lines.append(f"Even arrivals would allow {abs(change):.0f}% "
                     f"{'more' if change >= 0 else 'less'}. Poisson is the basis because "
                     "production traffic from many independent clients arrives Poisson-like, "
                     "and queues build long before saturation under it; evenly spaced "
                     "arrivals are optimistic.")
    else:
        lines.append("Poisson is the basis because production traffic from many independent "
                     "clients arrives Poisson-like; evenly spaced arrivals are optimistic.")
    rate = target_load_rps(result)
    if rate is not None:
        expected = latency_from_dict(qm, rate)
        band = [latency_from_dict(qm, rate, key=k) for k in ("low_ms", "high_ms")]
        if math.isfinite(expected):
            verdict = "within" if expected <= sla["latency_ms"] else "**over**"
            lines += ["", f"At the target load ({_fmt(rate)} rps on "
                      f"{result.get('instances_under_test') or 1} instance(s)) the model "
                      f"expects {pct} {_fmt(expected)} ms (band {_fmt(band[0])}–"
                      f"{_fmt(band[1]) if math.isfinite(band[1]) else 'unbounded'} ms), "
                      f"{verdict} the {sla['latency_ms']:g} ms SLA."]
        else:
            lines += ["", f"At the target load ({_fmt(rate)} rps) the model's queue does not "
                      "settle: the target is beyond what the model can sustain."]
    if qm.get("queueing_observed") is False:
        lines += ["", "No step showed queueing, so the slot count is only a lower bound: the "
                  "real capacity may be higher than the model's."]
    if qm.get("measured_arrivals") == "uniform":
        lines += ["", "The run sent evenly spaced requests; the model replays them that way "
                  "and predicts Poisson arrivals from the same slots."]
    return lines


def drift_lines(drift: dict | None) -> list[str]:
    """The capacity's change from the previous run with the same payload set, and the
    later run not compared because it sent another set."""
    if not drift:
        return []
    lines = []
    if drift.get("change") is not None:
        flag = (f" — **drift: more than {drift['limit']:.0%}**" if drift["flagged"] else "")
        lines.append(f"- Capacity {100 * drift['change']:+.1f}% from the previous run "
                     f"{drift['previous_run']} ({_fmt(drift['previous_capacity_rps'])} rps)"
                     f"{flag}")
    if drift.get("other_payloads_run"):
        lines.append(f"- Not compared with {drift['other_payloads_run']}: it sent another "
                     "payload set, so its capacity is of other requests")
    return lines


def rate_lines(rates: list[dict]) -> list[str]:
    """The pooled verdict of each rate, which the capacity rests on: a step's own verdict
    (the steps table) is what its requests showed alone when it ran, and a rate's can
    differ (its steps pooled, each one more look held to a stricter confidence; the
    queue model's correlation and warm-up as the whole run shows them; the requests of
    the rates above it). Without this table a step marked pass above the reported last
    pass reads as a contradiction. Empty for runs recorded before it existed."""
    if not rates:
        return []
    lines = ["", "## Verdicts by rate", "",
             "The capacity rests on these: each rate's steps pooled, counted in effective "
             "requests (raw requests over their correlation), each step one more look at a "
             "stricter confidence. A step's own verdict above is what it showed alone when "
             "it ran.", "",
             "| offered rps | steps | requests | slow | effective (slow) | verdict | why |",
             "|---|---|---|---|---|---|---|"]
    for rate in rates:
        why = "; ".join(rate["reasons"])
        if rate.get("pooled_up_to_rps") is not None:
            why = ("passed with the requests of the rates above it up to "
                   f"{_fmt(rate['pooled_up_to_rps'])} rps")
        share = rate.get("slow_share")
        slow = (f"{rate['slow']} ({share:.1%})" if isinstance(share, int | float)
                else str(rate["slow"]))
        lines.append(
            f"| {_fmt(rate['offered_rps'])} | {', '.join(str(i) for i in rate['steps'])} | "
            f"{rate['requests']} | {slow} | {rate['effective_requests']} "
            f"({rate['effective_slow']}) | {rate['verdict']} | {why} |")
    return lines


def payload_lines(result: dict) -> list[str]:
    """What the run sent (the payload set) and, at one step, latency by payload or by size,
    so a reader sees which requests are slow."""
    payloads = result.get("payloads")
    if not payloads:
        return []
    described = payloads["set"]
    sizes = described["bytes"]
    types = ", ".join(f"{t} ({n})" for t, n in described["content_types"].items())
    sampled = (f", a seeded sample of {described['found']:,}"
               if described["found"] > described["count"] else "")
    lines = ["", "## Requests", "",
             f"- Payload set: {described['count']:,} payload(s){sampled} from "
             f"`{described['source']}` ({described['kind']}), sha256 "
             f"`{described['sha256'][:12]}`",
             f"- Bodies: {sizes['min']:,}-{sizes['max']:,} bytes (median "
             f"{_fmt(sizes['median'], 0)}, weighted mean {_fmt(sizes['mean_weighted'], 0)}); "
             f"{types}"
             + ("; drawn by weight" if described.get("weighted") else "; drawn uniformly")]
    breakdown = payloads.get("breakdown")
    if breakdown and breakdown["rows"] and described["count"] > 1:
        by = "payload" if breakdown["grouping"] == "payload" else "body size"
        lines += ["", f"Latency by {by} at step {breakdown['step']} ({breakdown['why']}); "
                  "percentiles of answered requests, errors counted apart:", "",
                  f"| {by} | payloads in it | bytes | requests | share | errors | p50 ms "
                  "| p90 ms | p99 ms |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for row in breakdown["rows"]:
            size = (f"{row['bytes_min']:,}" if row["bytes_min"] == row["bytes_max"]
                    else f"{row['bytes_min']:,}-{row['bytes_max']:,}")
            lines.append(f"| {row['label']} | {row['payloads']} | {size} | {row['requests']} | "
                         f"{row['share']:.1%} | {row['errors']} | {_fmt(row['p50_ms'])} | "
                         f"{_fmt(row['p90_ms'])} | {_fmt(row['p99_ms'])} |")
    return lines


def capacity_definition(result: dict) -> str:
    """What the capacity figure claims, in one sentence (README's definition)."""
    sla = result["sla"]
    arrivals = result["search"].get("arrivals", "poisson")
    basis = ("Poisson arrivals, like production traffic from many independent clients"
             if arrivals == "poisson" else
             "evenly spaced arrivals (optimistic: production traffic is burstier)")
    return (f"the highest mean arrival rate at which p{sla['percentile']:g} latency, from "
            f"the intended send time with errors and timeouts counted as slower than "
            f"{sla['latency_ms']:g} ms, stays within the SLA, under {basis}; the target "
            f"uses the lower end of its {sla['confidence']:.0%} interval")


def render_markdown(result: dict, plot_names: dict[str, str] | None = None,
                    simulation: dict | None = None) -> str:
    sla = result["sla"]
    lines = [
        f"# Scaling report: {result['endpoint']} / {result['variant']}",
        "",
        headline(result),
        "",
        f"- Region: {result['region']}; load through "
        f"{'URL ' + result['url'] if result['url'] else 'the SageMaker runtime API'}",
        f"- SLA: p{sla['percentile']:g} ≤ {sla['latency_ms']:g} ms, errors ≤ "
        f"{sla['max_error_rate']:.2%}, at {sla['confidence']:.0%} confidence",
        f"- Instances under test: {result['instances_under_test']}",
        f"- Capacity means: {capacity_definition(result)}",
        f"- Search: {result['search']['strategy']}, {len(result['steps'])} steps, "
        f"{_fmt(result['load_test_seconds'])} s of load, stopped: "
        f"{result['search']['stop_reason']}",
    ]
    if result["search"]["bracket"]:
        low, high = result["search"]["bracket"]
        lines.append(f"- Capacity bracket: last pass {_fmt(low)} rps, first fail "
                     f"{_fmt(high) if high else 'not reached'} rps "
                     f"({result['capacity_method']}); search path "
                     f"{' → '.join(f'{r:g}' for r in result['search']['path'])}")
    lines += drift_lines(result.get("drift"))
    generator = result["search"].get("generator") or []
    cpus = [c for g in generator for c in g.get("generator_cpu_percent", []) if c is not None]
    lags = [v for g in generator for v in g.get("send_lag_p90_ms", []) if v is not None]
    if cpus:
        lines.append(f"- Load generator: {result['search']['processes']} process(es), peak CPU "
                     f"{max(cpus):.0f}% of a core, worst p90 send lag {max(lags or [0]):.1f} ms")
    lines += ["", "## Steps", "",
              "| # | phase | offered rps | achieved rps | requests | errors | p50 ms | p90 ms "
              "| p99 ms | verdict | why |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in result["steps"]:
        lines.append(
            f"| {s['index']} | {s['phase']} | {_fmt(s['offered_rps'])} | "
            f"{_fmt(s['achieved_rps'])} | {s['requests']} | {s['errors']} | "
            f"{_fmt(s['p50_ms'])} | {_fmt(s['p90_ms'])} | {_fmt(s['p99_ms'])} | "
            f"{s['verdict']} | {'; '.join(s['reasons'])} |")
    lines += rate_lines(result["search"].get("rates") or [])
    if plot_names:
        lines += ["", "## Plots", ""]
        lines += [f"![{title}]({name})" for title, name in plot_names.items()]
    lines += payload_lines(result)
    lines += queue_model_lines(result)
    if simulation:
        lines += simulation_lines(simulation)
    lines += ["", "## Scaling policy", "", f"Apply: **{result.get('apply_status')}**."]
    if result.get("plan_text"):
        lines += ["", "```text", *result["plan_text"], "```"]
    if result["policy"]:
        lines += ["", "Exactly what was sent (or would be):", "", "```json",
                  json.dumps({"scalable_target": result["scalable_target"],
                              "policy": result["policy"]}, indent=2), "```",
                  "", "## Reproduce by hand or in infrastructure code", "",
                  *[f"- [{label}]({name})" for label, name in IAC_LINKS], "", "```sh",
                  cli_commands(result["scalable_target"], result["policy"],
                               result["region"]).rstrip(), "```"]
    return "\n".join(lines) + "\n"


def png_bytes(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def plot_latency(result: dict) -> bytes:
    """Latency percentiles against achieved throughput, with the SLA line and chosen point."""
    steps = sorted(result["steps"], key=lambda s: s["offered_rps"])
    sla = result["sla"]
    fig, ax = plt.subplots(figsize=(7, 4))
    x = [s["achieved_rps"] for s in steps]
    for key, label in (("p50_ms", "p50"), ("p90_ms", "p90"), ("p99_ms", "p99")):
        ax.plot(x, [s[key] if s[key] is not None else math.nan for s in steps], marker="o",
                label=label)
    ax.axhline(sla["latency_ms"], color="red", linestyle="--",
               label=f"SLA p{sla['percentile']:g} {sla['latency_ms']:g} ms")
    if result.get("max_sustainable_rps"):
        ax.axvline(result["max_sustainable_rps"], color="green", linestyle=":")
        ax.plot([result["max_sustainable_rps"]], [sla["latency_ms"]], marker="*", markersize=14,
                color="green", linestyle="none",
                label=f"chosen: max sustainable {result['max_sustainable_rps']:.1f} rps")
    ax.set_yscale("log")
    return _finished(fig, ax, "achieved throughput (requests/s)", "latency (ms)",
                     "Latency vs throughput")


def plot_throughput(result: dict) -> bytes:
    """Offered vs achieved rate per step: saturation shows as points under the diagonal."""
    steps = result["steps"]
    fig, ax = plt.subplots(figsize=(7, 4))
    colours = {"pass": "green", "fail": "red", "inconclusive": "orange"}
    offered = [s["offered_rps"] for s in steps]
    ax.plot([0, max(offered or [1])], [0, max(offered or [1])], color="grey", linewidth=0.8,
            label="achieved = offered")
    for verdict, colour in colours.items():
        chosen = [s for s in steps if s["verdict"] == verdict]
        if not chosen:
            continue
        ax.scatter([s["offered_rps"] for s in chosen], [s["achieved_rps"] for s in chosen],
                   color=colour, label=verdict, zorder=3)
    for s in steps:
        ax.annotate(str(s["index"]), (s["offered_rps"], s["achieved_rps"]), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    return _finished(fig, ax, "offered (requests/s)", "achieved (requests/s)",
                     "Offered vs achieved load (numbers: step order)")


def _finished(fig, ax, xlabel: str, ylabel: str, title: str) -> bytes:
    """Labels, legend and grid as every report plot has them; the PNG."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return png_bytes(fig)


def plot_queue_model(result: dict) -> bytes | None:
    """The queue model's SLA-percentile curve against load, with its band (Poisson
    arrivals) and the even-arrivals curve dashed, over the measured steps; the SLA line and
    the target's load. None when the run has no queue model."""
    qm = result.get("queue_model")
    if not qm or not qm.get("curve"):
        return None
    sla = result["sla"]
    pct = f"p{sla['percentile']:g}"
    fig, ax = plt.subplots(figsize=(7, 4))
    curve = [p for p in qm["curve"] if p["p_ms"] is not None]
    rps = [p["rps"] for p in curve]
    ax.fill_between(rps, [p["low_ms"] or p["p_ms"] for p in curve],
                    [p["high_ms"] or p["p_ms"] for p in curve], color="tab:blue", alpha=0.2,
                    label="model band (95%)")
    ax.plot(rps, [p["p_ms"] for p in curve], color="tab:blue",
            label=f"model {pct}, Poisson arrivals ({qm['slots']} slots)")
    uniform = [p for p in qm.get("uniform_curve") or [] if p["p_ms"] is not None]
    if uniform:
        ax.plot([p["rps"] for p in uniform], [p["p_ms"] for p in uniform], color="tab:blue",
                linestyle="--", label=f"model {pct}, evenly spaced arrivals")
    measured = [s for s in result["steps"] if s.get("sla_percentile_ms") is not None
                and not math.isnan(s["sla_percentile_ms"]) and s.get("achieved_rps")]
    if measured:
        ax.scatter([s["achieved_rps"] for s in measured],
                   [s["sla_percentile_ms"] for s in measured], color="black", zorder=3,
                   label=f"measured {pct} per step")
    ax.axhline(sla["latency_ms"], color="red", linestyle="--",
               label=f"SLA {pct} {sla['latency_ms']:g} ms")
    if qm.get("poisson_capacity_rps"):
        ax.axvline(qm["poisson_capacity_rps"], color="tab:blue", linestyle=":", linewidth=1)
    rate = target_load_rps(result)
    if rate is not None:
        expected = latency_from_dict(qm, rate)
        ax.axvline(rate, color="green", linestyle=":")
        if math.isfinite(expected):
            ax.plot([rate], [expected], marker="*", markersize=14, color="green",
                    linestyle="none", label=f"target load {rate:.1f} rps: {expected:.0f} ms")
    ax.set_xlabel("arrival rate / achieved throughput (requests/s)")
    ax.set_ylabel(f"{pct} latency (ms)")
    ax.set_yscale("log")
    ax.set_title("Queue model: latency vs load")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return png_bytes(fig)


TEMPLATES = Path(__file__).resolve().parent / "templates"
HTML = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True).get_template(
    "report.html.j2")


def render_html(result: dict, plots: dict[str, bytes], simulation: dict | None = None) -> str:
    return HTML.render(
        queue_model_md=queue_model_lines(result), definition=capacity_definition(result),
        payloads_md=payload_lines(result),
        rates_md=rate_lines(result["search"].get("rates") or []),
        drift_md=drift_lines(result.get("drift")),
        simulation_md=simulation_lines(simulation) if simulation else [],
        r=result, headline=headline(result).replace("**", ""), fmt=_fmt, iac_links=IAC_LINKS,
        plots={title: base64.b64encode(data).decode() for title, data in plots.items()},
        sent=json.dumps({"scalable_target": result["scalable_target"],
                         "policy": result["policy"]}, indent=2),
        commands=cli_commands(result["scalable_target"], result["policy"], result["region"])
        if result["policy"] else "",
    )


def _write(path: Path, data: str | bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    if isinstance(data, bytes):
        tmp.write_bytes(data)
    else:
        tmp.write_text(data)
    tmp.replace(path)


def write_report(run_dir: Path, record: RunResult) -> dict[str, Path]:
    """Write result.json, steps.csv, plots, report.md, report.html and the scaling as
    aws-cli.sh, scaling.tf and scaling-cfn.yaml. Everything renders the record's JSON
    form: the report shows exactly what result.json says."""
    result = record.to_json()
    plots: dict[str, bytes] = {}
    if result["steps"]:
        plots = {"Latency vs throughput": plot_latency(result),
                 "Offered vs achieved load": plot_throughput(result)}
    names = {"Latency vs throughput": "latency.png", "Offered vs achieved load": "throughput.png",
             QUEUE_MODEL_TITLE: "queue-model.png"}
    model_plot = plot_queue_model(result) if result["steps"] else None
    if model_plot is not None:
        plots[QUEUE_MODEL_TITLE] = model_plot
    simulation = None
    if (run_dir / SIMULATION_FILE).exists():
        simulation = read_record(run_dir / SIMULATION_FILE, SimulationRecord)
        for title, key in (("Simulated cost vs violations", "sweep"),
                           ("Simulated timeline", "timeline")):
            if (run_dir / SIMULATION_PLOTS[key]).exists():
                plots[title] = (run_dir / SIMULATION_PLOTS[key]).read_bytes()
                names[title] = SIMULATION_PLOTS[key]
    paths = {"result": run_dir / "result.json", "steps": run_dir / "steps.csv",
             "markdown": run_dir / "report.md", "html": run_dir / "report.html"}
    _write(paths["result"], json.dumps(result, indent=2))
    _write(paths["steps"], steps_frame(result).to_csv(index=False))
    for title, data in plots.items():
        _write(run_dir / names[title], data)
    _write(paths["markdown"],
           render_markdown(result, {t: names[t] for t in plots}, simulation))
    _write(paths["html"], render_html(result, plots, simulation))
    if result["policy"]:
        for fmt, name in FILE_NAMES.items():
            text = render_iac(fmt, result["scalable_target"], result["policy"], result["region"])
            if fmt == "cli":
                text = "#!/bin/sh\n# Apply the same scaling by hand.\nset -e\n\n" + text
            paths[fmt] = run_dir / name
            _write(paths[fmt], text)
    return paths
