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

from tuner.iac import FILE_NAMES  # noqa: E402
from tuner.iac import render as render_iac  # noqa: E402
from tuner.policy import cli_commands  # noqa: E402

SIMULATION_FILE = "simulation.json"
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
    drift = result.get("drift")
    if drift:
        flag = (f" — **drift: more than {drift['limit']:.0%}**" if drift["flagged"] else "")
        lines.append(f"- Capacity {100 * drift['change']:+.1f}% from the previous run "
                     f"{drift['previous_run']} ({_fmt(drift['previous_capacity_rps'])} rps)"
                     f"{flag}")
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
    if plot_names:
        lines += ["", "## Plots", ""]
        lines += [f"![{title}]({name})" for title, name in plot_names.items()]
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
    ax.set_xlabel("achieved throughput (requests/s)")
    ax.set_ylabel("latency (ms)")
    ax.set_yscale("log")
    ax.set_title("Latency vs throughput")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return png_bytes(fig)


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
    ax.set_xlabel("offered (requests/s)")
    ax.set_ylabel("achieved (requests/s)")
    ax.set_title("Offered vs achieved load (numbers: step order)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return png_bytes(fig)


TEMPLATES = Path(__file__).resolve().parent / "templates"
HTML = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True).get_template(
    "report.html.j2")


def render_html(result: dict, plots: dict[str, bytes], simulation: dict | None = None) -> str:
    return HTML.render(
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


def write_report(run_dir: Path, result: dict) -> dict[str, Path]:
    """Write result.json, steps.csv, plots, report.md, report.html and the scaling as
    aws-cli.sh, scaling.tf and scaling-cfn.yaml."""
    plots: dict[str, bytes] = {}
    if result["steps"]:
        plots = {"Latency vs throughput": plot_latency(result),
                 "Offered vs achieved load": plot_throughput(result)}
    names = {"Latency vs throughput": "latency.png", "Offered vs achieved load": "throughput.png"}
    simulation = None
    if (run_dir / SIMULATION_FILE).exists():
        simulation = json.loads((run_dir / SIMULATION_FILE).read_text())
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
