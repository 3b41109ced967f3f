"""Input hardening: the checks every value from outside passes before AWS or the disk sees it.

Pure functions shared by the flags, the TOML config and the files the tool reads back (run
directories, traffic CSVs). Each returns or raises one line naming the problem.

- Names: SageMaker's own pattern for endpoint and variant names (botocore's `sagemaker`
  service model, shapes `EndpointName` and `VariantName`), so a name can never be a path.
- Regions: the shape of every region botocore's partitions know (`us-east-1`,
  `us-gov-west-1`, `eusc-de-east-1`, ...).
- Numbers: finite and within a stated range (`Limit`); NaN and infinity never pass.
- Request bodies: at most 6 MiB, the runtime API's `InvokeEndpoint` body limit.
- Paths written: proven to resolve inside the directory they belong to.
- JSON files read back: UTF-8, an object, no NaN/Infinity, bounded size and depth.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tuner.errors import InputError

__all__ = [
    "MAX_HEADER_CHARS",
    "MAX_JSON_BYTES",
    "MAX_PAYLOAD_BYTES",
    "MAX_URL_CHARS",
    "SAGEMAKER_NAME_MAX",
    "Limit",
    "check",
    "host_problem",
    "inside",
    "number_problem",
    "path_problem",
    "payload_problem",
    "read_json_object",
    "region_problem",
    "sagemaker_name_problem",
    "show",
    "url_problem",
]

# botocore: sagemaker shapes EndpointName and VariantName ({"max": 63, "pattern": ...}).
SAGEMAKER_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
SAGEMAKER_NAME_MAX = 63
# Every region in botocore's partitions.json matches (checked by a test).
REGION = re.compile(r"[a-z]{2,4}(-[a-z]+)+-[0-9]{1,2}")
# botocore: sagemaker-runtime InvokeEndpoint Body is a BodyBlob of at most 6,291,456 bytes.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
MAX_HEADER_CHARS = 1024  # botocore: sagemaker-runtime ContentType (Header, max 1024)
MAX_URL_CHARS = 2048
MAX_JSON_BYTES = 64 * 1024 * 1024  # a run file larger than this is not one we wrote
# The tool's own files nest a handful of levels; far deeper is hostile, and recursive code
# reading it back (rendering, `json_safe`) would hit Python's recursion limit.
MAX_JSON_DEPTH = 64
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def sagemaker_name_problem(value: object, what: str) -> str | None:
    """Why `value` is not a SageMaker endpoint/variant name, or None."""
    if not isinstance(value, str):
        return f"{what} must be a name, not {type(value).__name__}"
    if not value:
        return f"{what} is empty: name the SageMaker {_noun(what)}"
    if len(value) > SAGEMAKER_NAME_MAX or SAGEMAKER_NAME.fullmatch(value) is None:
        return (f"{what} {show(value)} is not a SageMaker {_noun(what)} name: 1-63 letters, "
                "digits and hyphens, starting and ending with a letter or digit")
    return None


def _noun(what: str) -> str:
    return "variant" if "variant" in what else "endpoint"


def region_problem(value: object, what: str = "--region") -> str | None:
    if not isinstance(value, str):
        return f"{what} must be a region name, not {type(value).__name__}"
    if REGION.fullmatch(value) is None:
        return f"{what} {show(value)} is not an AWS region name such as us-east-1"
    return None


def check(problem: str | None) -> None:
    if problem is not None:
        raise InputError(problem)


def show(value: object, limit: int = 80) -> str:
    """A value as it may appear in a one-line message: repr (escapes newlines), cut short."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


@dataclass(frozen=True)
class Limit:
    """A closed or half-open range a number must be finite and inside of."""

    low: float
    high: float
    low_open: bool = False
    high_open: bool = False
    integer: bool = False

    def admits(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.integer and not isinstance(value, int):
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def text(self) -> str:
        low, high = _plain(self.low), _plain(self.high)
        if self.integer:
            return f"{low}-{high}"
        return f"{'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"


def _plain(value: float) -> str:
    """1000000 rather than 1e+06: ranges are read by people."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def number_problem(value: object, what: str, limit: Limit, hint: str = "") -> str | None:
    """Why `value` is not a finite number within `limit`, or None (None values pass)."""
    if value is None or limit.admits(value):
        return None
    kind = "a whole number" if limit.integer else "a finite number"
    return (f"{what} {show(value)} must be {kind} in {limit.text()}"
            + (f" ({hint})" if hint else ""))


def url_problem(url: str | None, what: str = "--url") -> str | None:
    if url is None:
        return None
    if not url.startswith(("http://", "https://")):
        return f"{what} {show(url)} must start with http:// or https://"
    if len(url) > MAX_URL_CHARS or CONTROL.search(url) or " " in url:
        return f"{what} {show(url)} is not a URL: no spaces or control characters, at most " \
               f"{MAX_URL_CHARS} characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return f"{what} {show(url)} has an invalid host or port"
    if not parts.hostname:
        return f"{what} {show(url)} names no host"
    if port == 0:
        return f"{what} {show(url)} has port 0"
    return None


def host_problem(host: str, what: str) -> str | None:
    """A host name or address for a network connection (no scheme, port or spaces)."""
    if not host or len(host) > 253 or not re.fullmatch(r"[A-Za-z0-9._:\[\]-]+", host):
        return f"{what} {show(host)} is not a host name or IP address"
    return None


def payload_problem(payload: Path | None, what: str = "--payload") -> str | None:
    """The request body file: a readable regular file within the runtime API's limit."""
    if payload is None:
        return None
    if path_problem(payload, what) is not None:
        return path_problem(payload, what)
    try:
        if not payload.is_file():
            return f"{what} {payload} is not a readable file"
        size = payload.stat().st_size
        with payload.open("rb"):
            pass
    except OSError as exc:
        return f"{what} {payload} is not a readable file ({exc.strerror or exc})"
    if size > MAX_PAYLOAD_BYTES:
        return (f"{what} {payload} is {size:,} bytes: SageMaker's InvokeEndpoint takes at most "
                f"{MAX_PAYLOAD_BYTES:,} bytes (6 MB) per request body")
    return None


def path_problem(path: Path | str | None, what: str) -> str | None:
    """A path the operating system can take: not empty, no NUL or other control character."""
    if path is None:
        return None
    text = str(path)
    if not text or CONTROL.search(text):
        return f"{what} {show(text)} is not a usable path (empty or control characters)"
    return None


def inside(base: Path, path: Path, what: str) -> Path:
    """`path`, proven to resolve (symlinks followed) inside `base`; InputError otherwise."""
    root = Path(base).resolve()
    resolved = Path(path).resolve()
    if resolved != root and not resolved.is_relative_to(root):
        raise InputError(f"{what} {path} would be written outside {base} (it resolves to "
                         f"{resolved}): remove the link or pick another --reports-dir")
    return Path(path)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def read_csv_table(path: Path, label: str, missing_hint: str = "") -> Any:
    """A CSV file as a pandas DataFrame, or one line saying why not (`missing_hint` says
    what the file should have been). pandas is imported here, not at module import: the
    CLI's start-up stays fast."""
    import pandas as pd

    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise InputError(f"{label}: no such file{missing_hint}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError,
            ValueError) as exc:
        raise InputError(f"{label} is not a readable CSV ({show(str(exc), 120)})") from None


def read_json_object(path: Path, label: str, *, allow_nan: bool = False) -> dict:
    """A JSON object from a file the tool wrote earlier, or one line saying why not.

    `allow_nan` admits NaN/Infinity tokens (Locust-side files write NaN for missing stats);
    result files never contain them.
    """
    try:
        if not path.is_file():
            raise InputError(f"{label}: no such file")
        if path.stat().st_size > MAX_JSON_BYTES:
            raise InputError(f"{label} is larger than {MAX_JSON_BYTES // 2**20} MiB: not a "
                             "file this tool wrote")
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise InputError(f"{label}: no such file") from None
    except UnicodeDecodeError:
        raise InputError(f"{label} is not UTF-8 text: not a file this tool wrote") from None
    except OSError as exc:
        raise InputError(f"{label} cannot be read ({exc.strerror or exc})") from None
    try:
        value = json.loads(text, parse_constant=None if allow_nan else _no_constants)
    except json.JSONDecodeError as exc:
        raise InputError(f"{label} is not valid JSON ({exc})") from None
    except RecursionError:
        raise InputError(f"{label} is not valid JSON (nested too deeply)") from None
    except ValueError as exc:  # NaN/Infinity, or an integer too long to convert
        raise InputError(f"{label} is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise InputError(f"{label} is not a JSON object (found {type(value).__name__})")
    if _depth(value) > MAX_JSON_DEPTH:
        raise InputError(f"{label} nests deeper than {MAX_JSON_DEPTH} levels: not a file this "
                         "tool wrote")
    return value


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in a JSON value (iteratively: no recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1)
                         for child in (item.values() if isinstance(item, dict) else item))
    return deepest
