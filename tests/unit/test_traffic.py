from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from tuner.errors import InputError
from tuner.traffic import fetch_cloudwatch, read_csv


def write(tmp_path, text):
    path = tmp_path / "traffic.csv"
    path.write_text(text)
    return path


def test_csv_is_summed_per_minute_and_gaps_count_as_zero(tmp_path):
    path = write(tmp_path, "timestamp,invocations\n"
                 "2026-11-01T00:00:00Z,100\n2026-11-01T00:00:30Z,20\n"
                 "2026-11-01T00:02:00Z,300\n2026-11-01T00:03:00Z,400\n")
    traffic = read_csv(path)
    assert traffic.invocations.tolist() == [120, 0, 300, 400]
    assert traffic.filled_minutes == 1
    assert "1 missing minutes counted as 0" in traffic.describe()


@pytest.mark.parametrize(("text", "fragment"), [
    ("time,count\n2026-11-01T00:00:00Z,1\n", "needs columns timestamp,invocations"),
    ("timestamp,invocations\nyesterday-ish,5\n", "is not a date/time"),
    ("timestamp,invocations\n2026-11-01T00:00:00Z,lots\n", "is not a number"),
    ("timestamp,invocations\n2026-11-01T00:00:00Z,-4\n", "negative"),
    ("timestamp,invocations\n2026-11-01T00:00:00Z,1\n2026-11-01T03:00:00Z,1\n", "too gappy"),
])
def test_bad_traffic_is_a_clear_error(tmp_path, text, fragment):
    with pytest.raises(InputError, match=fragment):
        read_csv(write(tmp_path, text))


def test_cloudwatch_fetch_reads_invocations_per_minute():
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    with mock_aws():
        cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
        for minutes_ago, count in ((30, 600.0), (20, 1200.0), (10, 900.0)):
            cloudwatch.put_metric_data(Namespace="AWS/SageMaker", MetricData=[{
                "MetricName": "Invocations", "Value": count, "Unit": "None",
                "Timestamp": now - timedelta(minutes=minutes_ago),
                "Dimensions": [{"Name": "EndpointName", "Value": "ep"},
                               {"Name": "VariantName", "Value": "AllTraffic"}]}])
        traffic = fetch_cloudwatch(cloudwatch, "ep", "AllTraffic", days=1, now=now)
    assert traffic.minutes == 21
    assert traffic.invocations[0] == 600 and traffic.invocations[10] == 1200
    assert traffic.invocations[-1] == 900
    assert traffic.invocations.sum() == 2700


def test_cloudwatch_days_are_bounded_and_empty_is_an_error():
    with mock_aws():
        cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
        with pytest.raises(InputError, match="--days 30"):
            fetch_cloudwatch(cloudwatch, "ep", "AllTraffic", days=30)
        with pytest.raises(InputError, match="no datapoints"):
            fetch_cloudwatch(cloudwatch, "ep", "AllTraffic", days=1)
