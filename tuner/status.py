"""Status values that cross module, process and file boundaries, as enums.

Each is a `StrEnum` whose values are the strings result.json, loadtest plans and apply
records always held, so files written before these enums existed read the same, and a
member compares equal to its string. Step verdicts (`analysis.Verdict`) and search phases
(`search.Phase`) live with the code that decides them; these are the rest.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ApplyStatus", "EndState", "TargetKind"]


class ApplyStatus(StrEnum):
    """How an apply of the recommended scaling ended (`apply.ApplyOutcome.status`)."""

    APPLIED = "applied"  # written, read back and verified
    NO_CHANGE = "no-change"  # AWS already held exactly the plan: nothing written
    DRY_RUN = "dry-run"  # previewed only
    REFUSED = "refused"  # an input or guard said no before anything was written
    FAILED = "failed"  # AWS said no or a write failed (then rolled back: see EndState)
    NOT_ATTEMPTED = "not attempted"  # the run never got to applying

    @property
    def is_error(self) -> bool:
        """The apply was wanted and did not happen."""
        return self in (ApplyStatus.REFUSED, ApplyStatus.FAILED)


class EndState(StrEnum):
    """What AWS holds after an apply, as read back."""

    UNCHANGED = "unchanged"  # nothing was written
    NEW = "new"  # exactly the plan
    PREVIOUS = "previous"  # exactly as before: rolled back
    PARTIAL = "partial"  # neither: repair needed
    UNKNOWN = "unknown"  # could not be read back


class TargetKind(StrEnum):
    """What the load test sends requests to."""

    URL = "url"  # a container's /invocations (or any) URL, plain HTTP(S)
    SAGEMAKER_RUNTIME = "sagemaker-runtime"  # InvokeEndpoint, SigV4-signed
