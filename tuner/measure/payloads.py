"""The set of request bodies a run replays (`--payloads SOURCE`), and the draw of each request.

Owns what is pure about payloads: the `Payload` and `PayloadSet` values, the parsers of the
formats a source may hold (JSON Lines of `{"body": ...}` records, SageMaker Data Capture
records), the content type a file name implies, the seeded sample `--payload-sample` keeps,
the checks every body passes before a run (SageMaker's 6 MB limit), the one normalised file
(`payloads.jsonl`) the tuner writes into a run directory for the Locust subprocess and its
workers to read back, the digest by which those workers prove they replay the same bodies,
and the seeded weighted draw (`PayloadPicker`) of the body each request sends. Reading a
source from disk or S3 is `payload_sources`' job; nothing here does I/O.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import random
import re
import struct
from bisect import bisect_right
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import accumulate
from pathlib import PurePosixPath
from typing import Any, TypeVar

from tuner.errors import InputError
from tuner.inputs import MAX_HEADER_CHARS, MAX_PAYLOAD_BYTES, show

__all__ = [
    "CODEC_FORMAT",
    "CODEC_VERSION",
    "DEFAULT_BODY",
    "DEFAULT_CONTENT_TYPE",
    "PAYLOADS_FILE",
    "Payload",
    "PayloadError",
    "PayloadPicker",
    "PayloadSet",
    "PayloadSourceKind",
    "check_body_size",
    "check_payloads",
    "content_type_for",
    "is_saved_set",
    "looks_like_data_capture",
    "parse_data_capture_lines",
    "parse_payload_lines",
    "sample_payloads",
    "single_payload_set",
]

FLAG = "--payloads"
CODEC_FORMAT = "endpoint-tuner-payloads"
CODEC_VERSION = 1
CODEC_HEADER_KEYS = frozenset({"format", "version", "source", "kind", "found"})
CODEC_PAYLOAD_KEYS = frozenset({"name", "content_type", "weight", "body_b64"})
RECORD_KEYS = frozenset({"body", "content_type", "weight", "encoding"})
RECORD_SHAPE = '{"body": "...", "content_type"?: "...", "weight"?: 1.0, "encoding"?: "base64"}'
# SageMaker Data Capture: `captureData.endpointInput.encoding` says how `data` holds the
# request body. CSV and JSON content types (the endpoint config's CaptureContentTypeHeader)
# are captured as the text itself; everything else is base64.
CAPTURE_TEXT_ENCODINGS = frozenset({"CSV", "JSON"})
CAPTURE_BASE64_ENCODING = "BASE64"
CONTENT_TYPES_BY_EXTENSION = {
    ".json": "application/json",
    ".jsonl": "application/jsonlines",
    ".csv": "text/csv",
    ".txt": "text/plain",
    ".npy": "application/x-npy",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".parquet": "application/x-parquet",
    ".protobuf": "application/x-protobuf",
    ".pb": "application/x-protobuf",
}
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Domain-separates the digest (and says which framing it used) from any other sha256.
DIGEST_TAG = b"endpoint-tuner-payloads/1\x00"

T = TypeVar("T")


class PayloadError(InputError):
    """A payload source that cannot be replayed: nothing was written. Exit code 2."""


class PayloadSourceKind(StrEnum):
    """What `--payloads` named: how the bodies were found, recorded with the run."""

    DIRECTORY = "directory"
    TARBALL = "tarball"
    JSONL = "jsonl"
    DATA_CAPTURE = "data-capture"
    FILE = "file"  # one body, `--payload FILE`
    BUILTIN = "built-in"  # the example body sent when no payload is given


# The run directory's copy of what a run sent (`PayloadSet.to_jsonl`), under locust/: the
# Locust processes read it, and a later run can send it again (`--payloads` takes it).
PAYLOADS_FILE = "payloads.jsonl"
DEFAULT_CONTENT_TYPE = "application/json"
DEFAULT_BODY = b'{"instances": [[0.1, 0.2, 0.3, 0.4]]}'


@dataclass(frozen=True)
class Payload:
    """One request body and how often, relative to the others, a request sends it.

    `name` only tells people where the body came from (a file name inside the directory or
    archive, `<file>:<line>` for a JSON Lines record, `s3://bucket/key:<line>` for a Data
    Capture record); it takes no part in what is sent or in `PayloadSet.sha256`.
    """

    name: str
    body: bytes
    content_type: str
    weight: float = 1.0


@dataclass(frozen=True)
class PayloadSet:
    """The bodies one run replays, in source order, with where they came from.

    `found` is how many payloads the source held before `--payload-sample` kept
    `len(payloads)` of them.
    """

    payloads: tuple[Payload, ...]
    source: str
    kind: PayloadSourceKind
    found: int

    def sha256(self) -> str:
        """Hex digest of what requests send: each payload's content type, weight and body,
        in order, every field length-prefixed so no two different sets frame alike.

        Names and the source are left out on purpose: the same bodies read from a directory
        or from a tarball of it are the same traffic, and the workers of a distributed run
        (which read the set from their own copy of `payloads.jsonl`) compare this digest.
        """
        digest = hashlib.sha256(DIGEST_TAG)
        digest.update(struct.pack(">Q", len(self.payloads)))
        for payload in self.payloads:
            content_type = payload.content_type.encode("utf-8")
            digest.update(struct.pack(">Q", len(content_type)))
            digest.update(content_type)
            digest.update(struct.pack(">d", float(payload.weight)))
            digest.update(struct.pack(">Q", len(payload.body)))
            digest.update(payload.body)
        return digest.hexdigest()

    def describe(self) -> dict[str, Any]:
        """What the run replays, JSON-ready, for the report and the run's record.

        `bytes.mean_weighted` is the body size an average request sends (sizes weighted as
        requests draw them); `weighted` is whether the weights differ at all, i.e. whether
        the draw is anything but uniform.
        """
        sizes = sorted(len(p.body) for p in self.payloads)
        weights = [p.weight for p in self.payloads]
        total_weight = math.fsum(weights)
        mean_weighted = (math.fsum(p.weight * len(p.body) for p in self.payloads) / total_weight
                         if self.payloads else None)
        return {
            "source": self.source,
            "kind": str(self.kind),
            "count": len(self.payloads),
            "found": self.found,
            "sha256": self.sha256(),
            "content_types": dict(sorted(Counter(p.content_type for p in self.payloads).items())),
            "bytes": {
                "min": sizes[0] if sizes else None,
                "median": _quantile(sizes, 0.5),
                "p90": _quantile(sizes, 0.9),
                "max": sizes[-1] if sizes else None,
                "mean_weighted": mean_weighted,
            },
            "weighted": len(set(weights)) > 1,
        }

    def to_jsonl(self) -> bytes:
        """The run directory's `payloads.jsonl`: a header line, then one line per payload
        with its body in base64. The one normalised form the tuner writes and the Locust
        subprocess (and each worker) reads, whatever the source was."""
        header = {"format": CODEC_FORMAT, "version": CODEC_VERSION, "source": self.source,
                  "kind": str(self.kind), "found": self.found}
        lines = [_dumps(header)]
        lines.extend(_dumps({"name": p.name, "content_type": p.content_type,
                             "weight": float(p.weight),
                             "body_b64": base64.b64encode(p.body).decode("ascii")})
                     for p in self.payloads)
        return ("\n".join(lines) + "\n").encode("utf-8")

    @classmethod
    def from_jsonl(cls, data: bytes, source: str | None = None) -> PayloadSet:
        """The set `to_jsonl` wrote, exactly; PayloadError (one line) on anything else.

        `source` names the file the bytes came from in error messages (default
        `payloads.jsonl`); the set's own `source` is the one its header records.
        """
        label = source or "payloads.jsonl"
        fix = "the tuner writes this file: run the tune again to write it afresh"
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        if not lines:
            raise PayloadError(f"{label} is empty: {fix}")
        header = _codec_line(lines[0], label, 1, fix)
        if set(header) != CODEC_HEADER_KEYS or header["format"] != CODEC_FORMAT:
            raise PayloadError(f"{label} line 1 is not an {CODEC_FORMAT} header: {fix}")
        if header["version"] != CODEC_VERSION:
            raise PayloadError(f"{label} is version {show(header['version'])}, this tuner "
                               f"reads version {CODEC_VERSION}: run the same tuner version "
                               "on every machine")
        kinds = {str(k) for k in PayloadSourceKind}
        if not isinstance(header["source"], str) or header["kind"] not in kinds:
            raise PayloadError(f"{label} line 1 has a bad source or kind: {fix}")
        payloads = tuple(_codec_payload(line, label, number, fix)
                         for number, line in enumerate(lines[1:], start=2))
        if not payloads:
            raise PayloadError(f"{label} holds no payloads: {fix}")
        found = header["found"]
        if isinstance(found, bool) or not isinstance(found, int) or found < len(payloads):
            raise PayloadError(f"{label} line 1 says the source held {show(found)} payloads "
                               f"but the file holds {len(payloads)}: {fix}")
        check_payloads(payloads, label)
        return cls(payloads, header["source"], PayloadSourceKind(header["kind"]), found)


def _dumps(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _loads(line: bytes) -> Any:
    """JSON of one line; ValueError (one-line reason) if it is not, NaN/Infinity included."""
    try:
        return json.loads(line, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise ValueError(exc.msg) from None
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None


def _codec_line(line: bytes, label: str, number: int, fix: str) -> dict[str, Any]:
    try:
        value = _loads(line)
    except ValueError as exc:
        raise PayloadError(f"{label} line {number} is not valid JSON ({exc}): {fix}") from None
    if not isinstance(value, dict):
        raise PayloadError(f"{label} line {number} is not a JSON object: {fix}")
    return value


def _codec_payload(line: bytes, label: str, number: int, fix: str) -> Payload:
    record = _codec_line(line, label, number, fix)
    name, content_type = record.get("name"), record.get("content_type")
    weight, body_b64 = record.get("weight"), record.get("body_b64")
    if (set(record) != CODEC_PAYLOAD_KEYS or not isinstance(name, str)
            or not isinstance(content_type, str) or not isinstance(body_b64, str)
            or _weight_problem(weight) is not None):
        raise PayloadError(f"{label} line {number} is not a payload record {{name, "
                           f"content_type, weight, body_b64}}: {fix}")
    try:
        body = base64.b64decode(body_b64, validate=True)
    except binascii.Error:
        raise PayloadError(f"{label} line {number} has a body_b64 that is not base64: "
                           f"{fix}") from None
    return Payload(name, body, content_type, float(weight))


def _quantile(sorted_values: Sequence[int], q: float) -> float | None:
    """The q-quantile by linear interpolation between closest ranks (numpy's default)."""
    if not sorted_values:
        return None
    position = q * (len(sorted_values) - 1)
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    fraction = position - low
    return float(sorted_values[low] + (sorted_values[high] - sorted_values[low]) * fraction)


# Weights are relative; capped so that no sum of 100,000 of them overflows a float.
MAX_WEIGHT = 1e12


def _weight_problem(weight: object) -> str | None:
    if isinstance(weight, bool) or not isinstance(weight, int | float):
        return f"must be a number, not {type(weight).__name__}"
    try:
        in_range = math.isfinite(weight) and 0 < weight <= MAX_WEIGHT
    except OverflowError:  # an integer too large for a float
        in_range = False
    if not in_range:
        return f"{show(weight)[:40]} must be a number above 0 and at most {MAX_WEIGHT:g}"
    return None


def _utf8(text: str, at: str) -> bytes:
    """A JSON string's text as UTF-8; a lone surrogate (JSON allows "\\ud800") is not text
    a request can carry."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise PayloadError(f"{at} has a body that is not valid Unicode text (a lone "
                           "surrogate escape such as \\ud800): send it base64-encoded "
                           "with \"encoding\": \"base64\"") from None


def _lines(data: bytes) -> list[tuple[int, bytes]]:
    """The non-blank lines of `data` with their 1-based line numbers."""
    return [(number, line) for number, line in enumerate(data.split(b"\n"), start=1)
            if line.strip()]


def parse_payload_lines(data: bytes, where: str,
                        default_content_type: str | None) -> list[Payload]:
    """Payloads from JSON Lines of `{"body": ..., "content_type"?, "weight"?, "encoding"?}`.

    `body` is text (sent UTF-8 encoded), or base64 when `"encoding": "base64"`. A record
    without `content_type` takes `default_content_type` (`--content-type`), and with
    neither there is no way to tell what to send: PayloadError. Blank lines are skipped.
    Unknown keys are refused rather than ignored: a misspelt `"wieght"` or `"contentType"`
    would otherwise change the traffic without a word.
    """
    payloads = []
    for number, line in _lines(data):
        at = f"{FLAG} {where} line {number}"
        try:
            record = _loads(line)
        except ValueError as exc:
            raise PayloadError(f"{at} is not valid JSON ({exc}): each line must be one JSON "
                               f"object {RECORD_SHAPE}") from None
        if not isinstance(record, dict):
            raise PayloadError(f"{at} is a JSON {type(record).__name__}, not an object: each "
                               f"line must be one JSON object {RECORD_SHAPE}")
        unknown = sorted(set(record) - RECORD_KEYS)
        if unknown:
            raise PayloadError(f"{at} has unknown key {show(unknown[0])}: a record holds only "
                               f"{RECORD_SHAPE}")
        body_text = record.get("body")
        if not isinstance(body_text, str):
            what = "no \"body\"" if body_text is None else "a \"body\" that is not a string"
            raise PayloadError(f"{at} has {what}: give the request body as a string (a JSON "
                               "body serialised to text, or base64 with \"encoding\": "
                               "\"base64\")")
        body = _record_body(body_text, record.get("encoding"), at)
        content_type = record.get("content_type", default_content_type)
        if content_type is None:
            raise PayloadError(f"{at} has no \"content_type\": add one to the record or pass "
                               "--content-type for records without one")
        if not isinstance(content_type, str):
            raise PayloadError(f"{at} has a \"content_type\" that is not a string: give a "
                               "media type such as \"application/json\"")
        weight = record.get("weight", 1.0)
        if (problem := _weight_problem(weight)) is not None:
            raise PayloadError(f"{at}: \"weight\" {problem} (the relative share of requests "
                               "sending this body)")
        payloads.append(Payload(f"{where}:{number}", body, content_type, float(weight)))
    return payloads


def _record_body(text: str, encoding: object, at: str) -> bytes:
    if encoding is None:
        return _utf8(text, at)
    if encoding != "base64":
        raise PayloadError(f"{at} has \"encoding\" {show(encoding)}: the only encoding is "
                           "\"base64\" (leave it out for a text body)")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise PayloadError(f"{at} has a \"body\" that is not valid base64 ({exc}): encode "
                           "the body with standard base64 or drop \"encoding\"") from None


def is_saved_set(first_line: bytes) -> bool:
    """Whether a JSON Lines file is a payload set this tool wrote (`PayloadSet.to_jsonl`)."""
    try:
        record = _loads(first_line)
    except ValueError:
        return False
    return isinstance(record, dict) and record.get("format") == CODEC_FORMAT


def looks_like_data_capture(first_line: bytes) -> bool:
    """Whether a JSON Lines file's first record is a SageMaker Data Capture record (an
    object with a `captureData` object), rather than a `{"body": ...}` record."""
    try:
        record = _loads(first_line)
    except ValueError:
        return False
    return isinstance(record, dict) and isinstance(record.get("captureData"), dict)


def parse_data_capture_lines(data: bytes, where: str) -> list[Payload]:
    """The request bodies recorded by SageMaker Data Capture, one per JSON Lines record.

    A record is `{"captureData": {"endpointInput": {"observedContentType", "mode": "INPUT",
    "data", "encoding"}, "endpointOutput": {...}}, "eventMetadata": {...},
    "eventVersion": "0"}`. `encoding` CSV or JSON means `data` is the body's text; BASE64
    means it is the body in base64. Only `endpointInput` is used, with its observed
    content type (what the endpoint really received; `--content-type` does not apply).
    A record without `endpointInput` (an endpoint capturing only its output) holds no
    request and is skipped, so a capture of outputs alone ends as an empty set, which
    `check_payloads` refuses naming the fix. Blank lines are skipped.
    """
    payloads = []
    shape = ("each line must be one SageMaker Data Capture record {\"captureData\": "
             "{\"endpointInput\": {...}}, ...}")
    for number, line in _lines(data):
        at = f"{FLAG} {where} line {number}"
        try:
            record = _loads(line)
        except ValueError as exc:
            raise PayloadError(f"{at} is not valid JSON ({exc}): {shape}") from None
        capture = record.get("captureData") if isinstance(record, dict) else None
        if not isinstance(capture, dict):
            raise PayloadError(f"{at} has no \"captureData\" object: {shape}")
        endpoint_input = capture.get("endpointInput")
        if endpoint_input is None:
            continue
        if not isinstance(endpoint_input, dict):
            raise PayloadError(f"{at} has an \"endpointInput\" that is not an object: {shape}")
        content_type = endpoint_input.get("observedContentType")
        text, encoding = endpoint_input.get("data"), endpoint_input.get("encoding")
        if not isinstance(content_type, str) or not content_type:
            raise PayloadError(f"{at} has no \"observedContentType\" in \"endpointInput\": "
                               "the capture does not say what was sent; re-export it or "
                               "use a directory of bodies with --content-type")
        if not isinstance(text, str):
            raise PayloadError(f"{at} has no \"data\" string in \"endpointInput\": {shape}")
        if encoding in CAPTURE_TEXT_ENCODINGS:
            body = _utf8(text, at)
        elif encoding == CAPTURE_BASE64_ENCODING:
            try:
                body = base64.b64decode(text, validate=True)
            except binascii.Error as exc:
                raise PayloadError(f"{at} has BASE64 \"data\" that is not valid base64 "
                                   f"({exc}): the capture is damaged; drop this line") from None
        else:
            raise PayloadError(f"{at} has \"encoding\" {show(encoding)}: Data Capture "
                               "encodings are CSV, JSON and BASE64")
        payloads.append(Payload(f"{where}:{number}", body, content_type))
    return payloads


def content_type_for(filename: str, explicit: str | None) -> str | None:
    """The content type to send a payload file with: `explicit` (`--content-type`) if
    given, else the one its extension implies, else None (the caller asks for
    --content-type)."""
    if explicit is not None:
        return explicit
    return CONTENT_TYPES_BY_EXTENSION.get(PurePosixPath(filename).suffix.lower())


def sample_payloads(payloads: Sequence[T], n: int | None, seed: int) -> list[T]:
    """`n` of `payloads`, drawn uniformly without replacement with `seed`, in source order;
    all of them when `n` is None or not below their count.

    Source order is kept so a sample is a subset of the set, not a shuffle of it: the
    report lists the same bodies in the same order as the source, and the picker's seeded
    draw (not the sample) decides the order requests send them in.
    """
    if n is None:
        return list(payloads)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise PayloadError(f"--payload-sample {show(n)} must be a whole number of at least 1")
    if n >= len(payloads):
        return list(payloads)
    kept = sorted(random.Random(seed).sample(range(len(payloads)), n))
    return [payloads[index] for index in kept]


def check_body_size(where: str, name: str, size_bytes: int) -> None:
    """PayloadError if one body is over the runtime API's limit (so a source can be
    checked before reading the body into memory)."""
    if size_bytes > MAX_PAYLOAD_BYTES:
        raise PayloadError(f"{FLAG} {where}: payload {show(name)} is {size_bytes:,} bytes; "
                           f"SageMaker's InvokeEndpoint takes at most {MAX_PAYLOAD_BYTES:,} "
                           "bytes (6 MB) per request body: remove or shrink it")


def check_payloads(payloads: Sequence[Payload], where: str) -> None:
    """PayloadError unless every payload can be sent: at least one, each body within the
    6 MB limit, each with a content type a header can carry."""
    if not payloads:
        raise PayloadError(f"{FLAG} {where} holds no payloads: give a directory or .tar.gz of "
                           "request bodies, JSON Lines of {\"body\": ...} records, or a Data "
                           "Capture export that captured requests (CaptureMode Input)")
    for payload in payloads:
        check_body_size(where, payload.name, len(payload.body))
        content_type = payload.content_type
        if (not content_type or len(content_type) > MAX_HEADER_CHARS
                or CONTROL.search(content_type) or not content_type.isascii()):
            raise PayloadError(f"{FLAG} {where}: payload {show(payload.name)} has content type "
                               f"{show(content_type)}: give a media type such as "
                               "application/json (ASCII, at most 1024 characters, one line)")


class PayloadPicker:
    """Which payload each request sends: a seeded draw in proportion to the weights.

    Every lane built with the same seed draws the same sequence, so a distributed run sends
    the same mix from every worker, and a re-run sends the same bodies in the same order.
    Each draw is O(log n) (a bisection of the cumulative weights built once); with one
    payload there is nothing to draw and no random number is spent.
    """

    def __init__(self, weights: Sequence[float], seed: int) -> None:
        if not weights:
            raise ValueError("PayloadPicker needs at least one weight")
        problems = [w for w in weights if _weight_problem(w) is not None]
        if problems:
            raise ValueError(f"PayloadPicker weights must be finite and above 0: {problems[0]!r}")
        self._cumulative = list(accumulate(float(w) for w in weights))
        self._total = self._cumulative[-1]
        self._last = len(self._cumulative) - 1
        self._seed = seed
        self._rng = random.Random()
        self.reset(0)

    def __len__(self) -> int:
        return self._last + 1

    def reset(self, step_index: int) -> None:
        """Start step `step_index`'s own sequence (a new picker is at step 0).

        Each step's draws depend only on (seed, step), not on how many requests earlier
        steps sent (which varies with the endpoint's latency and the lane's pacing): a step
        re-run, or the same step in another run, sends the same bodies in the same order.
        The seed is derived with sha256, not Python's `hash()`, which is salted per process.
        """
        material = f"endpoint-tuner/payload-picker:{self._seed}:{step_index}".encode()
        self._rng.seed(int.from_bytes(hashlib.sha256(material).digest()[:8], "big"))

    def next_index(self) -> int:
        """The index of the payload the next request sends."""
        if self._last == 0:
            return 0
        point = self._rng.random() * self._total
        # random() < 1, but the product may round up to the total itself.
        return min(bisect_right(self._cumulative, point), self._last)


def single_payload_set(body: bytes, content_type: str, path: str | None = None) -> PayloadSet:
    """One body (`--payload FILE`, or the built-in example when `path` is None) as a set of
    one, so every run records and sends its requests the same way."""
    name = path if path is not None else "built-in example"
    kind = PayloadSourceKind.FILE if path is not None else PayloadSourceKind.BUILTIN
    payloads = (Payload(name, body, content_type),)
    check_payloads(payloads, path or "the built-in example body")
    return PayloadSet(payloads, name, kind, 1)
