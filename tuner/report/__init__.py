"""The run record and what people read: result.json, the report, the run index.

Owns the run's result record (`result`), the checked readers of everything a run
directory holds (`runfiles`), the HTML/Markdown report and its plots (`render`, with
`templates/`), the index of runs and drift between them (`history`), `tuner report`,
which rebuilds a report from a run's raw data (`regenerate`), and `tuner apply RUN_DIR` /
`tuner export`, a past run's recommendation read back and applied (`past_run`).
Submodules are imported by name; importing the package loads none of them.
"""

__all__ = ["history", "past_run", "regenerate", "render", "result", "runfiles"]
