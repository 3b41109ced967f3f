import json
import urllib.error
import urllib.request

import pytest

from tuner.model_server import SlotScheduler


def test_slots_serve_exactly_their_capacity():
    scheduler = SlotScheduler(slots=4, service_s=0.02)
    finishes = [scheduler.book(0.0) for _ in range(1000)]
    assert max(finishes) == pytest.approx(1000 / 200)  # 200 rps
    assert scheduler.capacity_rps == pytest.approx(200)


def test_idle_slot_serves_at_once():
    scheduler = SlotScheduler(slots=2, service_s=0.1)
    assert scheduler.book(5.0) == pytest.approx(5.1)


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
