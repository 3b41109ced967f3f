"""The bundled model server as a process: its container contract and its service law."""

import json
import time
import urllib.error
import urllib.request

import pytest

from tuner.demo.servers import model_server

pytestmark = pytest.mark.integration


def test_container_contract(server_200):
    with urllib.request.urlopen(server_200.url + "/ping") as response:
        assert response.status == 200
        assert json.load(response)["capacity_rps"] == 200
    request = urllib.request.Request(server_200.url + "/invocations", data=b'{"x": 1}',
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        assert "predictions" in json.load(response)
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(server_200.url + "/nope")
    assert error.value.code == 404


def test_bimodal_server_serves_a_fifth_slowly():
    with model_server(slots=1, law="bimodal:5:0.2:50", seed=0) as server:
        assert server.law == "bimodal:5:0.2:50"
        assert server.capacity_rps == pytest.approx(1000 / 14)
        with urllib.request.urlopen(server.url + "/ping") as response:
            ping = json.load(response)
        assert ping["law"] == "bimodal:5:0.2:50" and ping["slots"] == 1
        assert ping["service_ms"] == pytest.approx(14)
        assert ping["saturation_rps"] == pytest.approx(1000 / 14)
        slow = 0
        for _ in range(50):
            request = urllib.request.Request(server.url + "/invocations", data=b"{}")
            sent = time.perf_counter()
            with urllib.request.urlopen(request) as response:
                response.read()
            slow += time.perf_counter() - sent >= 0.050
    assert 4 <= slow <= 18  # 10 expected (binomial sd 2.8)
