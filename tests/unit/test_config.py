from pathlib import Path

import pytest

from tuner.config import build_config, load_toml
from tuner.errors import InputError

BASE = {"endpoint": "ep", "sla_latency_ms": 100}


def test_defaults_are_the_documented_ones():
    config = build_config({}, BASE)
    assert (config.variant, config.sla_percentile, config.safety_factor) == ("AllTraffic", 90, 0.5)
    assert (config.scale_in_cooldown, config.scale_out_cooldown) == (300, 300)
    assert config.resource_id == "endpoint/ep/variant/AllTraffic"


@pytest.mark.parametrize(("override", "fragment"), [
    ({"min_capacity": 3, "max_capacity": 2}, "below --min-capacity"),
    ({"min_capacity": 0}, "--min-capacity 0"),
    ({"safety_factor": 0}, "--safety-factor"),
    ({"safety_factor": 1.5}, "--safety-factor"),
    ({"sla_percentile": 100}, "--sla-percentile"),
    ({"sla_latency_ms": -5}, "--sla-latency-ms"),
    ({"scale_in_cooldown": 4000}, "--scale-in-cooldown"),
    ({"instances": 2}, "--instances only applies with --url"),
    ({"url": "localhost:8080"}, "must start with http"),
    ({"payload": Path("/nonexistent/payload.json")}, "--payload"),
    ({"search": "random"}, "--search"),
    ({"processes": 0}, "--processes"),
    ({"content_type": "json"}, "--content-type 'json' is not a media type"),
    ({"content_type": "text/csv\r\nX-Injected: 1"}, "--content-type"),
])
def test_bad_inputs_name_the_flag_in_one_line(override, fragment):
    with pytest.raises(InputError) as error:
        build_config({}, {**BASE, **override})
    assert fragment in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_sla_is_an_input_error():
    with pytest.raises(InputError, match="missing --sla-latency-ms"):
        build_config({}, {"endpoint": "ep"})


def test_toml_keys_match_flags_and_flags_win(tmp_path):
    path = tmp_path / "tune.toml"
    path.write_text('endpoint = "from-file"\nsla-latency-ms = 250\nsafety_factor = 0.4\n')
    config = build_config(load_toml(path), {"endpoint": "from-flag"})
    assert (config.endpoint, config.sla_latency_ms, config.safety_factor) == (
        "from-flag", 250, 0.4)


def test_unknown_toml_key_is_rejected(tmp_path):
    path = tmp_path / "tune.toml"
    path.write_text("sla_latancy_ms = 250\n")
    with pytest.raises(InputError, match="unknown key 'sla_latancy_ms'"):
        load_toml(path)


def test_bad_toml_is_rejected(tmp_path):
    path = tmp_path / "tune.toml"
    path.write_text("endpoint = \n")
    with pytest.raises(InputError, match="not valid TOML"):
        load_toml(path)


def test_keep_suspended_reaches_the_tune_apply():
    """tune's apply resumes suspended dynamic scaling unless told to keep it (flag or TOML)."""
    from tuner.config import build_config

    base = {"endpoint": "ep", "sla_latency_ms": 100}
    assert build_config({}, base).keep_suspended is False
    assert build_config({"keep_suspended": True}, base).keep_suspended is True
    assert build_config({}, {**base, "keep_suspended": True}).keep_suspended is True
