"""Run history: the index of every run under a reports directory, drift, and index.html.

The index is rebuilt from the run directories' result.json files (so it can never disagree
with them, and survives a crash mid-run); `update_index` rewrites `index.json` and
`index.html` after each run. Drift: a run whose capacity moved more than 10% from the
previous run of the same endpoint, variant and SLA.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from tuner.errors import InputError  # noqa: E402
from tuner.inputs import read_json_object  # noqa: E402
from tuner.report.render import png_bytes  # noqa: E402
from tuner.report.result import RunResult  # noqa: E402

DRIFT_LIMIT = 0.10
INDEX_JSON = "index.json"
INDEX_HTML = "index.html"


@dataclass(frozen=True)
class RunEntry:
    run_dir: str  # relative to the reports directory
    endpoint: str
    variant: str
    kind: str  # "tune" or "validate"
    time: str
    sla: str
    capacity_rps: float | None
    capacity_ci: list | None
    target: float | None
    applied: bool
    error: str | None
    # The payload set's sha256 (None: a run recorded before payload sets, comparable with
    # any); capacities measured with different sets are not compared.
    payloads_sha256: str | None = None
    drift: float | None = None  # change of capacity from the previous comparable run
    previous_run: str | None = None
    previous_capacity_rps: float | None = None
    # The latest earlier run of the series not compared because it sent another payload set.
    other_payloads_run: str | None = None

    @property
    def series(self) -> tuple[str, str, str]:
        return (self.endpoint, self.variant, self.sla)

    @property
    def drifted(self) -> bool:
        return self.drift is not None and abs(self.drift) > DRIFT_LIMIT


def sla_key(sla: dict) -> str:
    return f"p{sla['percentile']:g}<={sla['latency_ms']:g}ms err<={sla['max_error_rate']:g}"


def entry_from_result(run_dir: str, result: RunResult) -> RunEntry:
    return RunEntry(
        run_dir=run_dir, endpoint=result.endpoint, variant=result.variant,
        kind="validate" if result.validation else "tune",
        time=result.started_at, sla=sla_key(asdict(result.sla)),
        capacity_rps=result.max_sustainable_rps,
        capacity_ci=None if result.capacity_ci is None else list(result.capacity_ci),
        target=result.target_invocations_per_instance,
        applied=result.applied, error=result.error,
        payloads_sha256=(result.payloads or {}).get("set", {}).get("sha256"))


def same_requests(a: RunEntry, b: RunEntry) -> bool:
    """Capacities are comparable only when measured with the same payload set."""
    return a.payloads_sha256 is None or b.payloads_sha256 is None or (
        a.payloads_sha256 == b.payloads_sha256)


def with_drift(entries: list[RunEntry]) -> list[RunEntry]:
    """Each run's capacity change from the previous run of the same series that sent the
    same payload set (pure); a later run of the series with another set is named instead."""
    out, measured = [], {}
    for entry in sorted(entries, key=lambda e: (e.time, e.run_dir)):
        earlier = measured.get(entry.series, [])
        previous = next((e for e in reversed(earlier) if same_requests(e, entry)), None)
        other = next((e for e in reversed(earlier) if not same_requests(e, entry)), None)
        found: dict = {"drift": None, "previous_run": None, "previous_capacity_rps": None,
                       "other_payloads_run": None}
        if other is not None and (previous is None or other.time > previous.time):
            found["other_payloads_run"] = other.run_dir
        if previous is not None and entry.capacity_rps:
            found.update({"drift": (entry.capacity_rps - previous.capacity_rps)
                          / previous.capacity_rps, "previous_run": previous.run_dir,
                          "previous_capacity_rps": previous.capacity_rps})
        out.append(RunEntry(**{**asdict(entry), **found}))
        if entry.capacity_rps:
            measured.setdefault(entry.series, []).append(entry)
    return out


def read_entries(reports_dir: Path) -> list[RunEntry]:
    """Every run under reports_dir (reports/<endpoint>/<run>/result.json), without drift."""
    entries = []
    for path in sorted(Path(reports_dir).glob("*/*/result.json")):
        try:
            result = RunResult.from_json(read_json_object(path, str(path)), str(path))
        except InputError:
            continue  # a foreign, half-written, hostile or newer file is not a run we read
        entries.append(entry_from_result(str(path.parent.relative_to(reports_dir)), result))
    return entries


def scan(reports_dir: Path) -> list[RunEntry]:
    """Every run under reports_dir, with drift."""
    return with_drift(read_entries(reports_dir))


def entries_with_run(reports_dir: Path, run_dir: Path,
                     result: RunResult) -> tuple[list[RunEntry], dict | None]:
    """Every run including this one as it is about to be reported, and this run's drift.

    One read of the reports directory serves both the run's report and the index.
    """
    here = str(Path(run_dir).relative_to(reports_dir))
    others = [e for e in read_entries(reports_dir) if e.run_dir != here]
    entries = with_drift([*others, entry_from_result(here, result)])
    entry = next(e for e in entries if e.run_dir == here)
    if entry.drift is None and entry.other_payloads_run is None:
        return entries, None
    drift = {"change": entry.drift, "flagged": entry.drifted, "limit": DRIFT_LIMIT,
             "previous_run": entry.previous_run,
             "previous_capacity_rps": entry.previous_capacity_rps}
    if entry.other_payloads_run is not None:
        drift["other_payloads_run"] = entry.other_payloads_run
    return entries, drift


def trend_plot(entries: list[RunEntry]) -> bytes:
    """Capacity (with its interval) and target over time for one endpoint."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for series in sorted({e.series for e in entries}):
        runs = [e for e in entries if e.series == series and e.capacity_rps]
        if not runs:
            continue
        x = list(range(len(runs)))
        label = f"{series[1]} {series[2]}"
        ax.plot(x, [e.capacity_rps for e in runs], marker="o", label=f"capacity {label}")
        lows = [e.capacity_ci[0] if e.capacity_ci else e.capacity_rps for e in runs]
        highs = [e.capacity_ci[1] if e.capacity_ci and e.capacity_ci[1] else e.capacity_rps
                 for e in runs]
        ax.fill_between(x, lows, highs, alpha=0.2)
        for i, e in enumerate(runs):
            if e.drifted:
                ax.annotate("drift", (i, e.capacity_rps), color="red", fontsize=8)
        ax.set_xticks(x, [e.time[:10] for e in runs], rotation=30, fontsize=7)
    ax.set_ylabel("capacity (rps)")
    other = ax.twinx()
    for series in sorted({e.series for e in entries}):
        runs = [e for e in entries if e.series == series and e.capacity_rps]
        other.plot(range(len(runs)), [e.target or 0 for e in runs], linestyle="--",
                   color="grey")
    other.set_ylabel("target (dashed)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return png_bytes(fig)


def render_index(entries: list[RunEntry]) -> str:
    rows = []
    for e in sorted(entries, key=lambda e: e.time, reverse=True):
        ci = (f"{e.capacity_ci[0]:.1f}–{e.capacity_ci[1]:.1f}"
              if e.capacity_ci and e.capacity_ci[1] else "")
        drift = "" if e.drift is None else f"{100 * e.drift:+.1f}%"
        flag = ' class="drift"' if e.drifted else ""
        status = html.escape(e.error[:80]) if e.error else ("applied" if e.applied else "")
        rows.append(
            f"<tr{flag}><td>{html.escape(e.time)}</td><td>{html.escape(e.endpoint)}</td>"
            f"<td>{html.escape(e.variant)}</td><td>{e.kind}</td><td>{html.escape(e.sla)}</td>"
            f"<td>{'' if e.capacity_rps is None else f'{e.capacity_rps:.1f}'}</td><td>{ci}</td>"
            f"<td>{'' if e.target is None else f'{e.target:g}'}</td><td>{drift}</td>"
            f"<td>{status}</td><td><a href=\"{html.escape(e.run_dir)}/report.html\">report</a>"
            "</td></tr>")
    plots = []
    for endpoint in sorted({e.endpoint for e in entries}):
        data = base64.b64encode(trend_plot([e for e in entries if e.endpoint == endpoint]))
        plots.append(f"<h2>{html.escape(endpoint)}</h2>"
                     f'<img alt="trend {html.escape(endpoint)}" '
                     f'src="data:image/png;base64,{data.decode()}">')
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>endpoint-tuner runs</title><style>
body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse;font-size:13px}}td,th{{border:1px solid #ccc;padding:3px 6px}}
tr.drift{{background:#fdecea}}img{{max-width:100%}}</style></head><body>
<h1>endpoint-tuner runs</h1><p>{len(entries)} run{"" if len(entries) == 1 else "s"}.
Rows in red drifted more than {DRIFT_LIMIT:.0%} in capacity from the previous run of the
same endpoint, variant and SLA.</p>
<table><tr><th>started</th><th>endpoint</th><th>variant</th><th>kind</th><th>SLA</th>
<th>capacity rps</th><th>interval</th><th>target</th><th>drift</th><th>status</th><th></th></tr>
{''.join(rows)}</table>
{''.join(plots)}
</body></html>
"""


def update_index(reports_dir: Path) -> list[RunEntry]:
    """Rewrite index.json and index.html from the run directories on disk."""
    entries = scan(reports_dir)
    write_index(reports_dir, entries)
    return entries


def write_index(reports_dir: Path, entries: list[RunEntry]) -> None:
    """index.json and index.html, each written whole (temporary file, then rename)."""
    records = [{**asdict(e), "drifted": e.drifted} for e in entries]
    for name, text in ((INDEX_JSON, json.dumps(records, indent=2)),
                       (INDEX_HTML, render_index(entries))):
        path = Path(reports_dir) / name
        tmp = path.with_name(name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
