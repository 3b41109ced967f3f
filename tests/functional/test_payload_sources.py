"""Reading `--payloads SOURCE`: directories, .tar.gz archives, JSON Lines and Data Capture
files on disk, and Data Capture exports on S3 (moto, in-process). Every bad source is
refused in one line that names the fix."""

from __future__ import annotations

import base64
import io
import json
import tarfile
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from tuner.inputs import MAX_PAYLOAD_BYTES
from tuner.measure import payload_sources
from tuner.measure.payload_sources import load_payload_set
from tuner.measure.payloads import PayloadError, PayloadSet, PayloadSourceKind, sample_payloads

BODIES = {"a.json": b'{"inputs": [1]}', "b.csv": b"1,2,3", "sub/c.txt": b"hello"}


def one_line(excinfo: pytest.ExceptionInfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, body in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(body)
    return root


def capture_line(data: str, encoding: str = "CSV", content_type: str = "text/csv") -> bytes:
    record = {"captureData": {
        "endpointInput": {"observedContentType": content_type, "mode": "INPUT", "data": data,
                          "encoding": encoding},
        "endpointOutput": {"observedContentType": "text/csv", "mode": "OUTPUT", "data": "1",
                           "encoding": "CSV"}},
        "eventMetadata": {"eventId": "e", "inferenceTime": "2024-01-01T00:00:00Z"},
        "eventVersion": "0"}
    return json.dumps(record).encode() + b"\n"


def load(source: Path | str, content_type: str | None = None, sample: int | None = None,
         seed: int = 0, **kwargs) -> PayloadSet:
    return load_payload_set(str(source), content_type, sample, seed, **kwargs)


def add_member(archive: tarfile.TarFile, name: str, body: bytes = b"x",
               kind: bytes = tarfile.REGTYPE) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(body) if kind == tarfile.REGTYPE else 0
    if kind == tarfile.SYMTYPE:
        info.linkname = "a.json"
    archive.addfile(info, io.BytesIO(body) if kind == tarfile.REGTYPE else None)


# directories and archives -------------------------------------------------------------------

def test_a_directory_holds_one_body_per_file_hidden_ones_skipped(tmp_path):
    root = write_tree(tmp_path / "bodies", {**BODIES, ".DS_Store": b"junk",
                                            ".git/HEAD": b"ref", "sub/._c.txt": b"apple"})
    payloads = load(root)
    assert payloads.kind is PayloadSourceKind.DIRECTORY
    assert payloads.source == str(root) and payloads.found == 3
    assert [(p.name, p.body, p.content_type) for p in payloads.payloads] == [
        ("a.json", b'{"inputs": [1]}', "application/json"), ("b.csv", b"1,2,3", "text/csv"),
        ("sub/c.txt", b"hello", "text/plain")]


def test_a_tarball_of_the_directory_is_the_same_traffic(tmp_path):
    root = write_tree(tmp_path / "bodies", BODIES)
    path = tmp_path / "bodies.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        archive.add(root, arcname=".")  # names like ./a.json, and a ./sub directory member
        add_member(archive, "./._a.json", b"appledouble")
        add_member(archive, "link.json", kind=tarfile.SYMTYPE)
    from_archive = load(path)
    assert from_archive.kind is PayloadSourceKind.TARBALL and from_archive.found == 3
    assert [p.name for p in from_archive.payloads] == ["a.json", "b.csv", "sub/c.txt"]
    assert from_archive.sha256() == load(root).sha256()
    tgz = tmp_path / "same.tgz"
    tgz.write_bytes(path.read_bytes())
    assert load(tgz).sha256() == from_archive.sha256()


@pytest.mark.parametrize("name", ["../evil.json", "/etc/evil.json", "ok/../../evil.json"])
def test_an_archive_member_escaping_its_root_is_refused(tmp_path, name):
    path = tmp_path / "bad.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        add_member(archive, "a.json")
        add_member(archive, name)
    with pytest.raises(PayloadError) as excinfo:
        load(path)
    message = one_line(excinfo)
    assert message.startswith(f"--payloads {path} holds member {name!r}, an absolute path")
    assert message.endswith("(tar czf payloads.tar.gz -C DIR .)")


@pytest.mark.parametrize("content", [b"not a gzip stream at all", b"truncate"])
def test_a_corrupt_archive_is_refused(tmp_path, content):
    path = tmp_path / "bad.tar.gz"
    if content == b"truncate":
        good = tmp_path / "good.tar.gz"
        with tarfile.open(good, "w:gz") as archive:
            add_member(archive, "a.json", bytes(range(256)) * 200)
        content = good.read_bytes()[:len(good.read_bytes()) // 2]
    path.write_bytes(content)
    with pytest.raises(PayloadError) as excinfo:
        load(path)
    message = one_line(excinfo)
    assert message.startswith(f"--payloads {path} is not a readable .tar.gz archive (")
    assert message.endswith("re-create it with tar czf NAME.tar.gz -C DIR .")


def test_an_unknown_extension_asks_for_content_type(tmp_path):
    root = write_tree(tmp_path / "bodies", {"a.json": b"{}", "b.bin": b"\x00"})
    with pytest.raises(PayloadError) as excinfo:
        load(root)
    assert one_line(excinfo) == (f"--payloads {root}: no content type is known for 'b.bin' (by "
                                 "its extension): pass --content-type, or remove the file")
    forced = load(root, content_type="application/octet-stream")
    assert {p.content_type for p in forced.payloads} == {"application/octet-stream"}


def test_an_empty_directory_is_refused(tmp_path):
    root = write_tree(tmp_path / "bodies", {".hidden": b"x"})
    with pytest.raises(PayloadError) as excinfo:
        load(root)
    assert one_line(excinfo).startswith(f"--payloads {root} holds no payload files (hidden "
                                        "files are skipped): give a directory")


def test_a_body_over_6_mb_is_refused_before_it_is_read(tmp_path):
    root = tmp_path / "bodies"
    root.mkdir()
    with (root / "big.npy").open("wb") as file:
        file.truncate(MAX_PAYLOAD_BYTES + 1)  # sparse: costs no disk and is never read
    with pytest.raises(PayloadError) as excinfo:
        load(root)
    assert one_line(excinfo) == (f"--payloads {root}: payload 'big.npy' is 6,291,457 bytes; "
                                 "SageMaker's InvokeEndpoint takes at most 6,291,456 bytes (6 "
                                 "MB) per request body: remove or shrink it")


def test_a_sample_reads_only_the_files_it_keeps_and_matches_sampling_afterwards(tmp_path):
    root = write_tree(tmp_path / "bodies", {f"{i:02d}.json": b"%d" % i for i in range(20)})
    full = load(root)
    sampled = load(root, sample=5, seed=42)
    assert sampled.found == 20 and len(sampled.payloads) == 5
    assert list(sampled.payloads) == sample_payloads(full.payloads, 5, seed=42)
    assert load(root, sample=5, seed=42) == sampled
    assert load(root, sample=50, seed=42).payloads == full.payloads


def test_too_many_payloads_ask_for_a_sample(tmp_path, monkeypatch):
    monkeypatch.setattr(payload_sources, "MAX_PAYLOADS", 3)
    root = write_tree(tmp_path / "bodies", {f"{i}.json": b"{}" for i in range(5)})
    with pytest.raises(PayloadError) as excinfo:
        load(root)
    assert one_line(excinfo) == (f"--payloads {root} holds 5 payloads, more than 3: use "
                                 "--payload-sample N to replay a seeded sample of them")
    assert len(load(root, sample=2).payloads) == 2


def test_too_many_bytes_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(payload_sources, "MAX_TOTAL_BYTES", 10)
    path = tmp_path / "data.jsonl"
    path.write_bytes(b'{"body": "a long enough body"}\n')
    with pytest.raises(PayloadError) as excinfo:
        load(path, content_type="text/plain")
    message = one_line(excinfo)
    assert message.startswith(f"--payloads {path} holds more than ")
    assert message.endswith("GiB: give a smaller source (a sample of the files or of the "
                            "capture's hours)")


@pytest.mark.parametrize("name", ["missing", "body.json"])
def test_a_path_that_is_no_source_is_refused(tmp_path, name):
    path = tmp_path / name
    if name == "body.json":
        path.write_bytes(b"{}")
    with pytest.raises(PayloadError) as excinfo:
        load(path)
    message = one_line(excinfo)
    assert message.startswith(f"--payloads {path}")
    assert "give a directory of request bodies, a .tar.gz/.tgz of them" in message
    if name == "body.json":
        assert message.endswith("(for one body, use --payload FILE)")


def test_a_bad_sample_is_refused_before_any_read(tmp_path):
    with pytest.raises(PayloadError) as excinfo:
        load(tmp_path / "missing", sample=0)
    assert one_line(excinfo) == "--payload-sample 0 must be a whole number of at least 1"


# JSON Lines and Data Capture files ----------------------------------------------------------

def test_a_jsonl_file_of_records_takes_content_type_for_records_without_one(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_bytes(b'{"body": "a"}\n\n{"body": "1,2", "content_type": "text/csv", '
                     b'"weight": 2}\n')
    payloads = load(path, content_type="application/json")
    assert payloads.kind is PayloadSourceKind.JSONL and payloads.found == 2
    assert [(p.name, p.content_type, p.weight) for p in payloads.payloads] == [
        (f"{path}:1", "application/json", 1.0), (f"{path}:3", "text/csv", 2.0)]
    with pytest.raises(PayloadError) as excinfo:
        load(path)
    assert "pass --content-type" in one_line(excinfo)


def test_a_data_capture_file_is_recognised_by_its_first_record(tmp_path):
    path = tmp_path / "capture.jsonl"
    path.write_bytes(b"\n" + capture_line("1,2") + capture_line(
        base64.b64encode(b"\x89PNG").decode(), "BASE64", "image/png"))
    payloads = load(path, content_type="application/json")  # recorded types win
    assert payloads.kind is PayloadSourceKind.DATA_CAPTURE
    assert [(p.name, p.body, p.content_type) for p in payloads.payloads] == [
        (f"{path}:2", b"1,2", "text/csv"), (f"{path}:3", b"\x89PNG", "image/png")]


def test_a_directory_of_data_capture_files_is_a_capture_export(tmp_path):
    root = write_tree(tmp_path / "capture", {
        "ep/AllTraffic/2024/01/01/00/a.jsonl": capture_line("1") + capture_line("2"),
        "ep/AllTraffic/2024/01/01/01/b.jsonl": capture_line("3")})
    payloads = load(root, sample=2, seed=1)
    assert payloads.kind is PayloadSourceKind.DATA_CAPTURE
    assert payloads.found == 3 and len(payloads.payloads) == 2
    assert {p.body for p in load(root).payloads} == {b"1", b"2", b"3"}


def test_a_directory_of_jsonl_bodies_is_a_directory(tmp_path):
    root = write_tree(tmp_path / "bodies", {"a.jsonl": b'{"x": 1}\n{"x": 2}\n'})
    payloads = load(root)
    assert payloads.kind is PayloadSourceKind.DIRECTORY
    assert payloads.payloads[0].content_type == "application/jsonlines"


# Data Capture on S3 -------------------------------------------------------------------------

@pytest.fixture
def bucket(moto_aws):
    s3 = boto3.session.Session(region_name="us-east-1").client("s3")
    s3.create_bucket(Bucket="captures")
    return s3


def test_every_jsonl_object_under_the_prefix_is_read_across_pages(bucket, monkeypatch):
    monkeypatch.setattr(payload_sources, "S3_PAGE_SIZE", 1)
    prefix = "dc/ep/AllTraffic/2024/01/01"
    for hour, body in (("00", b"1"), ("01", b"2"), ("02", b"3")):
        bucket.put_object(Bucket="captures", Key=f"{prefix}/{hour}/x.jsonl",
                          Body=capture_line(body.decode()))
    bucket.put_object(Bucket="captures", Key=f"{prefix}/notes.txt", Body=b"not a capture")
    bucket.put_object(Bucket="captures", Key="elsewhere/y.jsonl", Body=capture_line("9"))
    payloads = load("s3://captures/dc/")
    assert payloads.kind is PayloadSourceKind.DATA_CAPTURE and payloads.found == 3
    assert [(p.name, p.body) for p in payloads.payloads] == [
        (f"s3://captures/{prefix}/00/x.jsonl:1", b"1"),
        (f"s3://captures/{prefix}/01/x.jsonl:1", b"2"),
        (f"s3://captures/{prefix}/02/x.jsonl:1", b"3")]


def test_a_prefix_without_captures_is_refused(bucket):
    with pytest.raises(PayloadError) as excinfo:
        load("s3://captures/nothing/")
    assert one_line(excinfo).startswith("--payloads s3://captures/nothing/ holds no .jsonl "
                                        "objects: give the S3 URI the endpoint's Data Capture")


def test_a_missing_bucket_is_refused(moto_aws):
    with pytest.raises(PayloadError) as excinfo:
        load("s3://no-such-bucket/dc/")
    assert one_line(excinfo) == ("--payloads s3://no-such-bucket/dc/: bucket 'no-such-bucket' "
                                 "does not exist (NoSuchBucket): check the bucket name in the "
                                 "s3:// URI")


def test_an_object_that_is_not_a_capture_is_refused_naming_it(bucket):
    bucket.put_object(Bucket="captures", Key="dc/a.jsonl", Body=b'{"body": "a"}\n')
    with pytest.raises(PayloadError) as excinfo:
        load("s3://captures/dc")
    assert one_line(excinfo).startswith('--payloads s3://captures/dc/a.jsonl line 1 has no '
                                        '"captureData" object')


class StubbedSession:
    """A session whose S3 client answers from a botocore Stubber (errors moto cannot give)."""

    def __init__(self, code: str, status: int) -> None:
        self.s3 = boto3.session.Session(region_name="us-east-1").client("s3")
        self.stubber = Stubber(self.s3)
        self.stubber.add_client_error("list_objects_v2", service_error_code=code,
                                      service_message="Access Denied", http_status_code=status)
        self.stubber.activate()

    def client(self, service: str):
        assert service == "s3"
        return self.s3


def test_access_denied_names_the_permissions_needed():
    with pytest.raises(PayloadError) as excinfo:
        load("s3://captures/dc/", session=StubbedSession("AccessDenied", 403))
    assert one_line(excinfo) == ("--payloads s3://captures/dc/: access denied (AccessDenied): the "
                                 "AWS credentials need s3:ListBucket on the bucket and "
                                 "s3:GetObject (and kms:Decrypt, if the capture is encrypted) "
                                 "on its objects")


def test_another_s3_error_is_one_line():
    with pytest.raises(PayloadError) as excinfo:
        load("s3://captures/dc/", session=StubbedSession("SlowDown", 503))
    assert one_line(excinfo).startswith("--payloads s3://captures/dc/: S3 refused the request "
                                        "(SlowDown: 'Access Denied'): check the URI")


def test_missing_credentials_say_how_to_configure_them(monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_PROFILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(PayloadError) as excinfo:
        load("s3://captures/dc/", session=boto3.session.Session(region_name="us-east-1"))
    assert one_line(excinfo) == ("--payloads s3://captures/dc/: no AWS credentials found to read "
                                 "S3: configure them (aws configure, AWS_PROFILE or an instance "
                                 "role)")


def test_a_uri_without_a_bucket_is_refused():
    with pytest.raises(PayloadError) as excinfo:
        load("s3:///dc/")
    assert one_line(excinfo) == ("--payloads s3:///dc/ names no bucket: give s3://BUCKET/PREFIX "
                                 "of the endpoint's Data Capture")


@pytest.mark.parametrize("kind", ["directory", "tarball", "jsonl", "data-capture"])
def test_every_source_kind_reaches_the_run_directory_as_the_set_it_is(tmp_path, kind):
    """What `tuner tune --payloads` does before Locust starts: load, check, write the run's
    payloads.jsonl; the Locust processes read back exactly the set (same hash), and a later
    run can send that file again."""
    from tuner.measure.loadtest import payload_set_for, read_payload_set, write_payload_set

    bodies = {"a.json": b'{"instances": [[1]]}', "b.json": b'{"instances": [[1], [2]]}'}
    root = write_tree(tmp_path / "set", bodies)
    if kind == "tarball":
        source = tmp_path / "set.tar.gz"
        with tarfile.open(source, "w:gz") as archive:
            for name, body in bodies.items():
                add_member(archive, name, body)
    elif kind == "jsonl":
        source = tmp_path / "set.jsonl"
        source.write_text("".join(json.dumps({"body": b.decode(), "weight": 2 if n == "b.json"
                                              else 1}) + "\n" for n, b in bodies.items()))
    elif kind == "data-capture":
        source = tmp_path / "capture.jsonl"
        source.write_bytes(b"".join(capture_line(b.decode(), "JSON", "application/json")
                                    for b in bodies.values()))
    else:
        source = root
    loaded = payload_set_for(None, str(source), None, 0, "application/json" if kind == "jsonl"
                             else None)
    assert loaded.kind == kind and len(loaded.payloads) == 2
    written = write_payload_set(loaded, tmp_path / "run" / "locust")
    assert read_payload_set(written.parent).sha256() == loaded.sha256()
    again = payload_set_for(None, str(written), None, 0, None)
    assert again.sha256() == loaded.sha256()
