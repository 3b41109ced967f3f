"""Read the payload set `--payloads SOURCE` names: a directory, a .tar.gz, a .jsonl file, or
a SageMaker Data Capture export on S3.

The I/O shell around `payloads`: it finds the bodies, reads them (checking each one's size
before reading it, and the total read), and hands the bytes to `payloads`' pure parsers and
checks. Every failure is a `PayloadError`, one line naming the problem and the fix, raised
before anything is written. boto3 is imported only when the source is on S3.
"""

from __future__ import annotations

import os
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, TypeVar

from tuner.inputs import path_problem, show
from tuner.measure.payloads import (
    Payload,
    PayloadError,
    PayloadSet,
    PayloadSourceKind,
    check_body_size,
    check_payloads,
    content_type_for,
    is_saved_set,
    looks_like_data_capture,
    parse_data_capture_lines,
    parse_payload_lines,
    sample_payloads,
)

if TYPE_CHECKING:
    import boto3

T = TypeVar("T")

__all__ = ["MAX_PAYLOADS", "MAX_TOTAL_BYTES", "load_payload_set"]

FLAG = "--payloads"
# Every payload is held in memory by the tuner and by each Locust process; past these a
# source is a data set, not a payload set, and `--payload-sample` should pick from it.
MAX_PAYLOADS = 100_000
MAX_TOTAL_BYTES = 2 * 1024**3
TARBALL_SUFFIXES = (".tar.gz", ".tgz")
JSONL_SUFFIX = ".jsonl"
S3_SCHEME = "s3://"
S3_PAGE_SIZE = 1000  # list_objects_v2's own maximum; tests lower it to page through a few
# How far into a .jsonl file to look for its first record when telling the formats apart.
FIRST_LINE_MAX_BYTES = 16 * 1024 * 1024
KINDS_HINT = ("give a directory of request bodies, a .tar.gz/.tgz of them, a .jsonl file or "
              "an s3:// Data Capture URI")


def load_payload_set(source: str, content_type: str | None, sample: int | None, seed: int,
                     session: boto3.session.Session | None = None) -> PayloadSet:
    """The payloads `source` holds, `sample` of them (seeded) if given, checked.

    - `s3://bucket/prefix`: a Data Capture export; every object under the prefix whose key
      ends in `.jsonl` (Data Capture writes `.../endpoint/variant/yyyy/mm/dd/hh/*.jsonl`).
    - a directory: every regular file in it and below it, hidden files and directories
      skipped, in path order. If all are `.jsonl` and the first one's first record is a
      Data Capture record, they are a Data Capture export copied down; otherwise each file
      is one body, sent with `content_type` (`--content-type`) or its extension's type.
    - a `.tar.gz`/`.tgz`: likewise, one body per regular member (read, never extracted).
    - a `.jsonl` file: Data Capture if its first record is one, else `{"body": ...}`
      records (`content_type` for records that name none).

    `content_type` should be None unless the user gave --content-type: it overrides every
    file's extension. Data Capture records keep the content type they were captured with.
    """
    sample_payloads((), sample, seed)  # refuses a bad --payload-sample before any I/O
    budget = _Budget(source, sample, seed)
    if source.startswith(S3_SCHEME):
        kind = PayloadSourceKind.DATA_CAPTURE
        payloads, found = _read_s3(source, budget, session)
    else:
        if (problem := path_problem(source, FLAG)) is not None:
            raise PayloadError(problem)
        path = Path(source)
        if path.is_dir():
            kind, payloads, found = _read_directory(path, content_type, budget)
        elif not path.exists():
            raise PayloadError(f"{FLAG} {source}: no such file or directory: {KINDS_HINT}")
        elif path.name.lower().endswith(TARBALL_SUFFIXES):
            kind = PayloadSourceKind.TARBALL
            payloads, found = _read_tarball(path, content_type, budget)
        elif path.name.lower().endswith(JSONL_SUFFIX):
            kind, payloads, found = _read_jsonl_file(path, content_type, budget)
        else:
            raise PayloadError(f"{FLAG} {source} is neither a directory, a .tar.gz/.tgz nor a "
                               f".jsonl file: {KINDS_HINT} (for one body, use --payload FILE)")
    check_payloads(payloads, source)
    return PayloadSet(tuple(payloads), source, kind, found)


@dataclass
class _Budget:
    """What one source may cost: at most MAX_PAYLOADS payloads unless sampled, and at most
    MAX_TOTAL_BYTES read, checked as it is read so that a huge source fails early; and the
    sample it keeps.

    Files and archive members are sampled by name before any is read (the same draw as
    sampling the payloads afterwards: `sample_payloads` depends only on the count and the
    seed); records inside .jsonl files can only be sampled once parsed.
    """

    source: str
    sample: int | None
    seed: int
    read_bytes: int = 0

    def keep(self, items: list[T]) -> list[T]:
        return sample_payloads(items, self.sample, self.seed)

    def count(self, found: int) -> None:
        if self.sample is None and found > MAX_PAYLOADS:
            raise PayloadError(f"{FLAG} {self.source} holds {found:,} payloads, more than "
                               f"{MAX_PAYLOADS:,}: use --payload-sample N to replay a seeded "
                               "sample of them")

    def take(self, size_bytes: int) -> None:
        self.read_bytes += size_bytes
        if self.read_bytes > MAX_TOTAL_BYTES:
            raise PayloadError(f"{FLAG} {self.source} holds more than {MAX_TOTAL_BYTES // 2**30}"
                               " GiB: give a smaller source (a sample of the files or of the "
                               "capture's hours)")


def _hidden(parts: tuple[str, ...]) -> bool:
    """Dot files and directories (.DS_Store, macOS's ._ AppleDouble files, .git) are
    never payloads."""
    return any(part.startswith(".") for part in parts)


def _read_directory(root: Path, content_type: str | None,
                    budget: _Budget) -> tuple[PayloadSourceKind, list[Payload], int]:
    def unreadable(exc: OSError) -> None:
        raise PayloadError(_unreadable(budget.source, str(exc.filename or root), exc))

    files = []
    for directory, subdirectories, names in os.walk(root, onerror=unreadable):
        subdirectories[:] = [d for d in subdirectories if not d.startswith(".")]
        for name in names:
            full = Path(directory, name)
            if not name.startswith(".") and full.is_file():
                files.append(full.relative_to(root).as_posix())
    files.sort()
    if not files:
        raise PayloadError(f"{FLAG} {budget.source} holds no payload files (hidden files are "
                           "skipped): "
                           f"{KINDS_HINT}")
    if (all(f.lower().endswith(JSONL_SUFFIX) for f in files)
            and looks_like_data_capture(_first_record(root / files[0], budget.source))):
        payloads: list[Payload] = []
        for relative in files:
            data = _read_file(root / relative, budget)
            payloads += parse_data_capture_lines(data, str(root / relative))
            budget.count(len(payloads))
        return PayloadSourceKind.DATA_CAPTURE, budget.keep(payloads), len(payloads)
    types = {relative: _file_content_type(budget.source, relative, content_type)
             for relative in files}
    budget.count(len(files))
    payloads = []
    for relative in budget.keep(files):
        full = root / relative
        try:
            size = full.stat().st_size
        except OSError as exc:
            raise PayloadError(_unreadable(budget.source, relative, exc)) from None
        check_body_size(budget.source, relative, size)
        payloads.append(Payload(relative, _read_file(full, budget), types[relative]))
    return PayloadSourceKind.DIRECTORY, payloads, len(files)


def _file_content_type(source: str, name: str, explicit: str | None) -> str:
    found = content_type_for(name, explicit)
    if found is None:
        raise PayloadError(f"{FLAG} {source}: no content type is known for {show(name)} (by its "
                           "extension): pass --content-type, or remove the file")
    return found


def _first_record(path: Path, source: str) -> bytes:
    """The first non-blank line of a .jsonl file (at most FIRST_LINE_MAX_BYTES of it)."""
    try:
        with path.open("rb") as file:
            while line := file.readline(FIRST_LINE_MAX_BYTES):
                if line.strip():
                    return line
    except OSError as exc:
        raise PayloadError(_unreadable(source, str(path), exc)) from None
    return b""


def _read_file(path: Path, budget: _Budget) -> bytes:
    try:
        budget.take(path.stat().st_size)
        return path.read_bytes()
    except OSError as exc:
        raise PayloadError(_unreadable(budget.source, str(path), exc)) from None


def _unreadable(source: str, name: str, exc: OSError) -> str:
    return (f"{FLAG} {source}: cannot read {show(name)} ({exc.strerror or exc}): check its "
            "permissions")


def _read_jsonl_file(path: Path, content_type: str | None,
                     budget: _Budget) -> tuple[PayloadSourceKind, list[Payload], int]:
    data = _read_file(path, budget)
    first = next((line for line in data.split(b"\n") if line.strip()), b"")
    if is_saved_set(first):  # a past run's payloads.jsonl: send exactly those again
        saved = PayloadSet.from_jsonl(data, str(path))
        budget.count(len(saved.payloads))
        return saved.kind, budget.keep(list(saved.payloads)), len(saved.payloads)
    if looks_like_data_capture(first):
        kind, payloads = PayloadSourceKind.DATA_CAPTURE, parse_data_capture_lines(data, str(path))
    else:
        kind, payloads = PayloadSourceKind.JSONL, parse_payload_lines(data, str(path),
                                                                      content_type)
    budget.count(len(payloads))
    return kind, budget.keep(payloads), len(payloads)


def _member_name(member: tarfile.TarInfo, source: str) -> str | None:
    """The member's path inside the archive ("./" dropped), None if it is no payload (not a
    regular file, or hidden); PayloadError if the name is absolute or climbs out with "..".
    Nothing is extracted, so such a name could do no harm here; it means a hostile or
    broken archive all the same."""
    parts = PurePosixPath(member.name).parts
    if member.name.startswith("/") or ".." in parts:
        raise PayloadError(f"{FLAG} {source} holds member {show(member.name)}, an absolute path "
                           "or one with '..': re-create the archive from inside the payload "
                           "directory (tar czf payloads.tar.gz -C DIR .)")
    parts = tuple(part for part in parts if part != ".")
    if not member.isfile() or not parts or _hidden(parts):
        return None
    return "/".join(parts)


def _read_tarball(path: Path, content_type: str | None,
                  budget: _Budget) -> tuple[list[Payload], int]:
    source = budget.source
    try:
        with tarfile.open(path, "r:gz") as archive:
            named = [(name, member) for member in archive.getmembers()
                     if (name := _member_name(member, source)) is not None]
            named.sort(key=lambda pair: pair[0])
            types = {name: _file_content_type(source, name, content_type) for name, _ in named}
            budget.count(len(named))
            payloads = []
            for name, member in budget.keep(named):
                check_body_size(source, name, member.size)
                budget.take(member.size)
                extracted = archive.extractfile(member)
                if extracted is None:  # not a regular file after all: _member_name said so
                    continue
                payloads.append(Payload(name, extracted.read(), types[name]))
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise PayloadError(f"{FLAG} {source} is not a readable .tar.gz archive "
                           f"({show(reason, 120)}): re-create it with tar czf NAME.tar.gz -C "
                           "DIR .") from None
    if not named:
        raise PayloadError(f"{FLAG} {source} holds no payload files (hidden files, directories "
                           f"and links are skipped): {KINDS_HINT}")
    return payloads, len(named)


def _read_s3(source: str, budget: _Budget,
             session: boto3.session.Session | None) -> tuple[list[Payload], int]:
    """Every `.jsonl` object under the prefix, in key order, as Data Capture records."""
    bucket, _, prefix = source[len(S3_SCHEME):].partition("/")
    if not bucket:
        raise PayloadError(f"{FLAG} {source} names no bucket: give s3://BUCKET/PREFIX of the "
                           "endpoint's Data Capture")
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        s3 = (session or boto3.session.Session()).client("s3")
        pages = s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": S3_PAGE_SIZE})
        objects = sorted((item["Key"], int(item["Size"])) for page in pages
                         for item in page.get("Contents", [])
                         if item["Key"].endswith(JSONL_SUFFIX))
        if not objects:
            raise PayloadError(f"{FLAG} {source} holds no .jsonl objects: give the S3 URI the "
                               "endpoint's Data Capture writes to (its DestinationS3Uri, or a "
                               "prefix below it such as .../ENDPOINT/VARIANT/)")
        payloads: list[Payload] = []
        for key, size in objects:
            budget.take(size)
            data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            payloads += parse_data_capture_lines(data, f"{S3_SCHEME}{bucket}/{key}")
            budget.count(len(payloads))
    except ClientError as exc:
        raise PayloadError(_s3_problem(source, bucket, exc)) from None
    except BotoCoreError as exc:
        raise PayloadError(_s3_connection_problem(source, exc)) from None
    return budget.keep(payloads), len(payloads)


def _s3_problem(source: str, bucket: str, exc: Exception) -> str:
    error = getattr(exc, "response", {}).get("Error", {})
    code, message = str(error.get("Code", "")), " ".join(str(error.get("Message", "")).split())
    if code == "NoSuchBucket":
        return (f"{FLAG} {source}: bucket {show(bucket)} does not exist (NoSuchBucket): check "
                "the bucket name in the s3:// URI")
    if code in ("AccessDenied", "403", "AllAccessDisabled"):
        return (f"{FLAG} {source}: access denied ({code}): the AWS credentials need "
                "s3:ListBucket on the bucket and s3:GetObject (and kms:Decrypt, if the capture "
                "is encrypted) on its objects")
    return (f"{FLAG} {source}: S3 refused the request ({code or 'error'}: "
            f"{show(message, 120)}): check the URI and the AWS credentials")


def _s3_connection_problem(source: str, exc: Exception) -> str:
    from botocore.exceptions import NoCredentialsError

    if isinstance(exc, NoCredentialsError):
        return (f"{FLAG} {source}: no AWS credentials found to read S3: configure them "
                "(aws configure, AWS_PROFILE or an instance role)")
    reason = " ".join(str(exc).split())
    return (f"{FLAG} {source}: cannot reach S3 ({show(reason, 120)}): check the network, the "
            "region and AWS_ENDPOINT_URL")

