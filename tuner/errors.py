"""The two ways a run can go wrong, mapped to the CLI's exit codes.

`InputError` (exit 2) means the user asked for something invalid or impossible and nothing
was written. `RunError` (exit 1) means the run started and failed on the way.
Messages are one line naming the problem and the fix.
"""


class TunerError(Exception):
    exit_code = 1


class InputError(TunerError):
    """Bad input: nothing was written. Exit code 2."""

    exit_code = 2


class RunError(TunerError):
    """A failure during the run (load test, AWS write, verification). Exit code 1.

    `run_dir` names the report written before failing, if any.
    """

    exit_code = 1

    def __init__(self, message: str, run_dir: str | None = None) -> None:
        super().__init__(message)
        self.run_dir = run_dir


class NoPassingStepError(RunError):
    """No load step met the SLA, so no safe target exists and nothing is applied."""
