"""The run record and what people read: result.json, the report, the run index.

Owns the run's result record (`result`), the checked readers of everything a run
directory holds (`runfiles`), the HTML/Markdown report and its plots (`render`, with
`templates/`), the index of runs and drift between them (`history`), a run directory
from its creation to its published report, interrupted runs included (`publish`),
`tuner report`, which rebuilds a report from a run's raw data (`regenerate`), `tuner
apply RUN_DIR` / `tuner export`, a past run's recommendation read back and applied
(`past_run`), and `tuner validate`'s baseline run (`baseline`).
Submodules are imported by name; importing the package loads none of them.
"""

__all__ = ["baseline", "history", "past_run", "publish", "regenerate", "render", "result",
           "runfiles"]
