"""The payload set, pure: the parsers of JSON Lines and Data Capture records, the codec of
`payloads.jsonl` (exact round trip), the digest workers compare, the seeded sample and the
seeded weighted draw of each request's body."""

from __future__ import annotations

import base64
import json
import math
from collections import Counter

import pytest

from tuner.errors import InputError
from tuner.inputs import MAX_PAYLOAD_BYTES
from tuner.measure.payloads import (
    CODEC_FORMAT,
    Payload,
    PayloadError,
    PayloadPicker,
    PayloadSet,
    PayloadSourceKind,
    check_payloads,
    content_type_for,
    looks_like_data_capture,
    parse_data_capture_lines,
    parse_payload_lines,
    sample_payloads,
)


def one_line(excinfo: pytest.ExceptionInfo) -> str:
    """The error's message, which must be a single line."""
    message = str(excinfo.value)
    assert "\n" not in message and message.strip() == message
    return message


def jsonl(*records: object) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def capture(data: str, encoding: str = "CSV", content_type: str = "text/csv") -> dict:
    """A Data Capture record as SageMaker writes it (input and output captured)."""
    return {"captureData": {
        "endpointInput": {"observedContentType": content_type, "mode": "INPUT", "data": data,
                          "encoding": encoding},
        "endpointOutput": {"observedContentType": "text/csv; charset=utf-8", "mode": "OUTPUT",
                           "data": "0.5", "encoding": "CSV"}},
        "eventMetadata": {"eventId": "8f45e35c-fa44-40d2-8ed3-1bcab3a596f3",
                          "inferenceTime": "2020-07-30T13:36:30Z"},
        "eventVersion": "0"}


def a_set(*bodies: bytes, weights: tuple[float, ...] = (), source: str = "dir",
          kind: PayloadSourceKind = PayloadSourceKind.DIRECTORY) -> PayloadSet:
    weights = weights or (1.0,) * len(bodies)
    payloads = tuple(Payload(f"p{i}.json", body, "application/json", weight)
                     for i, (body, weight) in enumerate(zip(bodies, weights, strict=True)))
    return PayloadSet(payloads, source, kind, len(payloads))


# content types ------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "expected"), [
    ("a.json", "application/json"), ("a.jsonl", "application/jsonlines"),
    ("x/b.CSV", "text/csv"), ("c.txt", "text/plain"), ("d.npy", "application/x-npy"),
    ("e.jpg", "image/jpeg"), ("e.JPEG", "image/jpeg"), ("f.png", "image/png"),
    ("g.parquet", "application/x-parquet"), ("h.pb", "application/x-protobuf"),
    ("h.protobuf", "application/x-protobuf"), ("i.bin", None), ("noext", None),
    (".json", None),
])
def test_the_extension_implies_a_content_type(name, expected):
    assert content_type_for(name, None) == expected


def test_an_explicit_content_type_wins_over_the_extension():
    assert content_type_for("a.json", "text/csv") == "text/csv"
    assert content_type_for("i.bin", "application/octet-stream") == "application/octet-stream"


# JSON Lines records -------------------------------------------------------------------------

def test_records_give_text_and_base64_bodies_weights_and_content_types():
    data = (jsonl({"body": '{"x": 1}'}) + b"\n  \n"
            + jsonl({"body": base64.b64encode(b"\x00\xff").decode(), "encoding": "base64",
                     "content_type": "application/x-npy", "weight": 3}))
    first, second = parse_payload_lines(data, "data.jsonl", "application/json")
    assert first == Payload("data.jsonl:1", b'{"x": 1}', "application/json", 1.0)
    assert second == Payload("data.jsonl:4", b"\x00\xff", "application/x-npy", 3.0)
    assert isinstance(second.weight, float)


def test_a_text_body_is_sent_utf8_encoded():
    [payload] = parse_payload_lines(jsonl({"body": "héllo"}), "d.jsonl", "text/plain")
    assert payload.body == "héllo".encode()


def test_a_record_that_is_not_json_is_refused_naming_the_line_and_the_shape():
    data = jsonl(*[{"body": "a"}] * 6) + b"nope\n"
    with pytest.raises(PayloadError) as excinfo:
        parse_payload_lines(data, "data.jsonl", "application/json")
    message = one_line(excinfo)
    assert message.startswith("--payloads data.jsonl line 7 is not valid JSON (Expecting value):"
                              ' each line must be one JSON object {"body": ')


@pytest.mark.parametrize(("record", "fragment"), [
    ([1, 2], "is a JSON list, not an object"),
    ({"body": "a", "wieght": 2}, "unknown key 'wieght'"),
    ({"content_type": "text/csv"}, 'has no "body"'),
    ({"body": {"x": 1}}, '"body" that is not a string'),
    ({"body": "a", "weight": 0}, "must be a number above 0 and at most 1e+12"),
    ({"body": "a", "weight": -1.5}, "must be a number above 0 and at most 1e+12"),
    ({"body": "a", "weight": "2"}, "must be a number, not str"),
    ({"body": "a", "weight": True}, "must be a number, not bool"),
    ({"body": "a", "encoding": "gzip"}, "the only encoding is \"base64\""),
    ({"body": "!!!", "encoding": "base64"}, "not valid base64"),
    ({"body": "a", "content_type": 7}, '"content_type" that is not a string'),
])
def test_a_bad_record_is_refused_in_one_line(record, fragment):
    with pytest.raises(PayloadError) as excinfo:
        parse_payload_lines(jsonl(record), "d.jsonl", "application/json")
    message = one_line(excinfo)
    assert message.startswith("--payloads d.jsonl line 1")
    assert fragment in message


def test_nan_and_infinity_are_not_json():
    with pytest.raises(PayloadError, match="line 1 is not valid JSON"):
        parse_payload_lines(b'{"body": "a", "weight": NaN}\n', "d.jsonl", "text/plain")


def test_a_record_without_content_type_and_no_default_asks_for_content_type():
    data = jsonl({"body": "a", "content_type": "text/csv"}, {"body": "b"})
    with pytest.raises(PayloadError) as excinfo:
        parse_payload_lines(data, "d.jsonl", None)
    assert one_line(excinfo) == ('--payloads d.jsonl line 2 has no "content_type": add one to '
                                 "the record or pass --content-type for records without one")


def test_payload_errors_are_input_errors():
    assert issubclass(PayloadError, InputError)
    assert PayloadError("x").exit_code == 2


# Data Capture -------------------------------------------------------------------------------

def test_data_capture_records_keep_the_input_in_each_encoding():
    data = jsonl(capture("1,2,3"),
                 capture('{"inputs": [1]}', "JSON", "application/json"),
                 capture(base64.b64encode(b"\x89PNG").decode(), "BASE64", "image/png"))
    csv, js, png = parse_data_capture_lines(data, "s3://b/k.jsonl")
    assert csv == Payload("s3://b/k.jsonl:1", b"1,2,3", "text/csv")
    assert js == Payload("s3://b/k.jsonl:2", b'{"inputs": [1]}', "application/json")
    assert png == Payload("s3://b/k.jsonl:3", b"\x89PNG", "image/png")


def test_a_record_that_captured_only_the_output_is_skipped():
    output_only = capture("1")
    del output_only["captureData"]["endpointInput"]
    data = jsonl(output_only, capture("4,5"))
    assert [p.name for p in parse_data_capture_lines(data, "c.jsonl")] == ["c.jsonl:2"]
    assert parse_data_capture_lines(jsonl(output_only), "c.jsonl") == []


@pytest.mark.parametrize(("record", "fragment"), [
    ({"body": "a"}, 'has no "captureData" object'),
    ({"captureData": {"endpointInput": "x"}}, '"endpointInput" that is not an object'),
    (capture("1", "XML"), "Data Capture encodings are CSV, JSON and BASE64"),
    (capture("%%%", "BASE64"), "not valid base64"),
    (capture("1", content_type=""), 'no "observedContentType"'),
])
def test_a_bad_data_capture_record_is_refused_in_one_line(record, fragment):
    with pytest.raises(PayloadError) as excinfo:
        parse_data_capture_lines(jsonl(capture("0"), record), "c.jsonl")
    message = one_line(excinfo)
    assert message.startswith("--payloads c.jsonl line 2")
    assert fragment in message


def test_data_capture_is_told_from_body_records_by_its_first_line():
    assert looks_like_data_capture(json.dumps(capture("1")).encode())
    assert not looks_like_data_capture(b'{"body": "a"}')
    assert not looks_like_data_capture(b"not json")
    assert not looks_like_data_capture(b"")
    assert not looks_like_data_capture(b'{"captureData": 1}')


# sampling and checks ------------------------------------------------------------------------

def test_a_sample_is_seeded_without_replacement_in_source_order():
    items = list(range(100))
    kept = sample_payloads(items, 10, seed=7)
    assert len(set(kept)) == 10 and kept == sorted(kept)
    assert sample_payloads(items, 10, seed=7) == kept
    assert sample_payloads(items, 10, seed=8) != kept
    assert sample_payloads(items, None, seed=7) == items
    assert sample_payloads(items, 100, seed=7) == items
    assert sample_payloads(items, 500, seed=7) == items


@pytest.mark.parametrize("n", [0, -1, 2.5, True])
def test_a_sample_of_less_than_one_is_refused(n):
    with pytest.raises(PayloadError) as excinfo:
        sample_payloads([1, 2], n, seed=0)
    assert "--payload-sample" in one_line(excinfo)


def test_an_empty_set_is_refused_naming_what_to_give():
    with pytest.raises(PayloadError) as excinfo:
        check_payloads([], "capture/")
    message = one_line(excinfo)
    assert message.startswith("--payloads capture/ holds no payloads: give a directory")
    assert "CaptureMode Input" in message


def test_a_body_over_6_mb_is_refused_naming_it_and_its_size():
    big = Payload("big.npy", b"\0" * (MAX_PAYLOAD_BYTES + 1), "application/x-npy")
    check_payloads([Payload("ok", b"\0" * MAX_PAYLOAD_BYTES, "application/x-npy")], "d")
    with pytest.raises(PayloadError) as excinfo:
        check_payloads([big], "d")
    assert one_line(excinfo) == ("--payloads d: payload 'big.npy' is 6,291,457 bytes; SageMaker's "
                                 "InvokeEndpoint takes at most 6,291,456 bytes (6 MB) per "
                                 "request body: remove or shrink it")


@pytest.mark.parametrize("content_type", ["", "text/csv\nX-Evil: 1", "a/" + "b" * 1030])
def test_a_content_type_a_header_cannot_carry_is_refused(content_type):
    with pytest.raises(PayloadError) as excinfo:
        check_payloads([Payload("p", b"x", content_type)], "d")
    assert "give a media type such as application/json" in one_line(excinfo)


# the digest and the description -------------------------------------------------------------

def test_the_digest_covers_what_is_sent_not_where_it_came_from():
    base = a_set(b"a", b"bc")
    renamed = PayloadSet(tuple(Payload(f"other/{p.name}", p.body, p.content_type, p.weight)
                               for p in base.payloads), "x.tar.gz", PayloadSourceKind.TARBALL, 9)
    assert renamed.sha256() == base.sha256()
    assert len(base.sha256()) == 64 and int(base.sha256(), 16) >= 0


def test_the_digest_changes_with_any_body_weight_content_type_or_order():
    base = a_set(b"a", b"bc").sha256()
    assert a_set(b"bc", b"a").sha256() != base
    assert a_set(b"ab", b"c").sha256() != base  # framing: the body boundary counts
    assert a_set(b"a", b"bc", weights=(1.0, 2.0)).sha256() != base
    assert a_set(b"a", b"bc", b"").sha256() != base
    other_type = a_set(b"a", b"bc")
    other_type = PayloadSet((other_type.payloads[0],
                             Payload("p1.json", b"bc", "text/csv", 1.0)),
                            "dir", PayloadSourceKind.DIRECTORY, 2)
    assert other_type.sha256() != base
    # Content type and body framed apart: moving bytes between them changes the digest.
    moved = PayloadSet((Payload("p", b"sonx", "application/j", 1.0),),
                       "d", PayloadSourceKind.DIRECTORY, 1)
    unmoved = PayloadSet((Payload("p", b"x", "application/json", 1.0),),
                         "d", PayloadSourceKind.DIRECTORY, 1)
    assert moved.sha256() != unmoved.sha256()


def test_an_integer_weight_digests_as_the_same_float():
    assert a_set(b"a", weights=(2,)).sha256() == a_set(b"a", weights=(2.0,)).sha256()


def test_describe_reports_counts_sizes_and_the_weighted_mean():
    payloads = (Payload("a", b"x" * 10, "text/csv", 1.0),
                Payload("b", b"x" * 20, "application/json", 3.0),
                Payload("c", b"x" * 30, "application/json", 1.0),
                Payload("d", b"x" * 40, "application/json", 5.0))
    described = PayloadSet(payloads, "d/", PayloadSourceKind.DIRECTORY, 12).describe()
    assert described == {
        "source": "d/", "kind": "directory", "count": 4, "found": 12,
        "sha256": PayloadSet(payloads, "d/", PayloadSourceKind.DIRECTORY, 12).sha256(),
        "content_types": {"application/json": 3, "text/csv": 1},
        "bytes": {"min": 10, "median": 25.0, "p90": 37.0, "max": 40,
                  "mean_weighted": (10 + 60 + 30 + 200) / 10},
        "weighted": True,
    }
    assert json.loads(json.dumps(described)) == described
    assert a_set(b"a", b"b", weights=(2.0, 2.0)).describe()["weighted"] is False


# the codec ----------------------------------------------------------------------------------

def test_the_codec_round_trips_exactly():
    payloads = (Payload("a/b.json", b'{"x": 1}', "application/json", 1.0),
                Payload("s3://b/k.jsonl:3", bytes(range(256)), "image/png", 0.1 + 0.2),
                Payload("ünï:7", b"", "text/csv; charset=utf-8", 1e-300))
    original = PayloadSet(payloads, "s3://b/capture/", PayloadSourceKind.DATA_CAPTURE, 40)
    encoded = original.to_jsonl()
    decoded = PayloadSet.from_jsonl(encoded)
    assert decoded == original
    assert decoded.sha256() == original.sha256()
    assert decoded.to_jsonl() == encoded
    header, *lines = encoded.decode().splitlines()
    assert json.loads(header) == {"format": CODEC_FORMAT, "version": 1,
                                  "source": "s3://b/capture/", "kind": "data-capture",
                                  "found": 40}
    assert set(json.loads(lines[0])) == {"name", "content_type", "weight", "body_b64"}


def good_lines() -> list[bytes]:
    return a_set(b"a", b"b").to_jsonl().splitlines()


def edited(index: int, **changes: object) -> bytes:
    lines = good_lines()
    record = json.loads(lines[index])
    for key, value in changes.items():
        if value is ...:
            del record[key]
        else:
            record[key] = value
    lines[index] = json.dumps(record).encode()
    return b"\n".join(lines) + b"\n"


@pytest.mark.parametrize(("data", "fragment"), [
    (b"", "run/payloads.jsonl is empty"),
    (b"{]\n", "line 1 is not valid JSON"),
    (b"[1]\n", "line 1 is not a JSON object"),
    (edited(0, format="other"), "line 1 is not an endpoint-tuner-payloads header"),
    (edited(0, extra=1), "line 1 is not an endpoint-tuner-payloads header"),
    (edited(0, version=2), "is version 2, this tuner reads version 1"),
    (edited(0, kind="ftp"), "line 1 has a bad source or kind"),
    (edited(0, found=1), "says the source held 1 payloads but the file holds 2"),
    (edited(0, found="2"), "says the source held '2' payloads"),
    (good_lines()[0] + b"\n", "holds no payloads"),
    (edited(2, weight=0), "line 3 is not a payload record"),
    (edited(2, name=...), "line 3 is not a payload record"),
    (edited(2, body_b64="***"), "line 3 has a body_b64 that is not base64"),
    (b"\n".join([good_lines()[0], b"", *good_lines()[1:]]), "line 2 is not valid JSON"),
])
def test_a_damaged_payloads_file_is_refused_in_one_line(data, fragment):
    with pytest.raises(PayloadError) as excinfo:
        PayloadSet.from_jsonl(data, "run/payloads.jsonl")
    message = one_line(excinfo)
    assert message.startswith("run/payloads.jsonl")
    assert fragment in message


def test_a_version_mismatch_says_to_run_one_version_everywhere():
    with pytest.raises(PayloadError) as excinfo:
        PayloadSet.from_jsonl(edited(0, version=2))
    assert one_line(excinfo).endswith("run the same tuner version on every machine")


# the picker ---------------------------------------------------------------------------------

def draws(picker: PayloadPicker, n: int) -> list[int]:
    return [picker.next_index() for _ in range(n)]


def test_every_picker_with_the_same_seed_draws_the_same_sequence():
    weights = [1.0, 2.0, 3.0, 0.5]
    first = draws(PayloadPicker(weights, seed=11), 500)
    assert draws(PayloadPicker(weights, seed=11), 500) == first
    assert draws(PayloadPicker(weights, seed=12), 500) != first
    assert set(first) == {0, 1, 2, 3}


def test_a_step_draws_the_same_sequence_whatever_earlier_steps_sent():
    weights = [1.0, 1.0, 1.0]
    busy, idle = PayloadPicker(weights, seed=3), PayloadPicker(weights, seed=3)
    draws(busy, 977)
    busy.reset(2)
    idle.reset(2)
    step_two = draws(busy, 200)
    assert draws(idle, 200) == step_two
    fresh = PayloadPicker(weights, seed=3)
    zero = draws(fresh, 200)
    fresh.reset(0)
    assert draws(fresh, 200) == zero  # a new picker is at step 0
    assert step_two != zero


def test_one_payload_is_always_index_zero_and_spends_no_random_number():
    picker = PayloadPicker([4.0], seed=1)
    state = picker._rng.getstate()
    assert draws(picker, 100) == [0] * 100
    assert picker._rng.getstate() == state
    assert len(picker) == 1


def test_draws_follow_the_weights_within_binomial_tolerance():
    weights = [1.0, 2.0, 7.0, 0.1]
    n = 20_000
    counts = Counter(draws(PayloadPicker(weights, seed=2024), n))
    total = sum(weights)
    for index, weight in enumerate(weights):
        p = weight / total
        sigma = math.sqrt(n * p * (1 - p))
        assert abs(counts[index] - n * p) < 5 * sigma, (index, counts[index], n * p)


@pytest.mark.parametrize("weights", [[], [1.0, 0.0], [1.0, float("nan")], [float("inf")]])
def test_a_picker_refuses_weights_it_cannot_draw_from(weights):
    with pytest.raises(ValueError):
        PayloadPicker(weights, seed=0)


@pytest.mark.parametrize(("line", "says"), [
    (b'{"body": "x", "weight": 1' + b"0" * 400 + b"}", "at most 1e+12"),
    (b'{"body": "x", "weight": 1e308}', "at most 1e+12"),
    (b'{"body": "\\ud800"}', "not valid Unicode text"),
    (b'{"body": "x", "content_type": "t\\u00e9xt/plain"}', "ASCII"),
])
def test_hostile_records_are_refused_in_one_line_not_a_traceback(line, says):
    with pytest.raises(PayloadError) as error:
        check_payloads(parse_payload_lines(line, "f.jsonl", "application/json"), "f.jsonl")
    assert says in str(error.value) and "\n" not in str(error.value)
