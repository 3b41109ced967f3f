"""Config readers that live beside the Prefect tasks (importing them imports Prefect)."""

import pytest

from tuner.errors import InputError


def test_run_directory_readers_refuse_corrupt_result_json(tmp_path):
    from tuner.report.baseline import read_baseline
    from tuner.report.past_run import load_run

    (tmp_path / "result.json").write_text("{broken")
    for read in (load_run, read_baseline):
        with pytest.raises(InputError, match="is not valid JSON"):
            read(tmp_path)
    with pytest.raises(InputError, match="--baseline .* is not a run directory"):
        read_baseline(tmp_path / "missing")
