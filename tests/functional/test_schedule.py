import importlib
from pathlib import Path

import pytest
import yaml

from tuner.config import TuneConfig, ValidateConfig
from tuner.errors import InputError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def schedule():
    """`flows.schedule`, imported by the tests that use it, not at collection: Prefect takes
    seconds to import, and every test worker collects this module."""
    return importlib.import_module("flows.schedule")


def test_prefect_yaml_parses_and_names_flows_that_exist():
    from prefect import Flow

    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    models = {"tune_endpoint": TuneConfig, "validate_capacity": ValidateConfig}
    names = []
    for item in spec["deployments"]:
        path, function = item["entrypoint"].split(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        flow = getattr(module, function)
        assert isinstance(flow, Flow)
        models[function].model_validate(item["parameters"]["config"])  # typed parameters
        assert item["schedules"][0]["cron"]
        names.append(function)
    assert sorted(names) == ["tune_endpoint", "validate_capacity"]
    tune = next(d for d in spec["deployments"] if d["entrypoint"].endswith("tune_endpoint"))
    assert tune["parameters"]["config"]["dry_run"] is True


def test_schedules_are_dry_runs_unless_the_config_says_apply(schedule, tmp_path):
    base = {"endpoint": "ep", "sla-latency-ms": 100}
    assert schedule.scheduled_config(base, tmp_path).dry_run is True
    assert schedule.scheduled_config({**base, "apply": True}, tmp_path).dry_run is False
    with pytest.raises(InputError, match="apply = true|false"):
        schedule.scheduled_config({**base, "dry_run": False}, tmp_path)


def test_invalid_cron_is_an_input_error(schedule):
    schedule.validate_cron("0 3 * * 1")
    with pytest.raises(InputError, match="not a valid cron"):
        schedule.validate_cron("every monday")


def test_deployment_carries_schedule_and_typed_config(schedule, tmp_path):
    config = schedule.scheduled_config({"endpoint": "ep", "sla_latency_ms": 100}, tmp_path)
    built = schedule.deployment(config, "0 3 * * 1", "weekly")
    assert built.name == "weekly"
    assert built.schedules[0].schedule.cron == "0 3 * * 1"
    assert built.parameters["config"]["dry_run"] is True
    assert built.enforce_parameter_schema


def test_flow_parameters_have_a_typed_schema_for_the_ui_form():
    from prefect.utilities.callables import parameter_schema

    from flows.tune import tune_endpoint
    from flows.validate import validate_capacity

    tune = parameter_schema(tune_endpoint).model_dump()
    fields = tune["definitions"]["TuneConfig"]["properties"]
    assert fields["sla_latency_ms"]["type"] == "number"
    assert fields["min_capacity"]["anyOf"][0]["type"] == "integer"
    assert "ValidateConfig" in parameter_schema(validate_capacity).model_dump()["definitions"]
