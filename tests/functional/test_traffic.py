"""Traffic from CloudWatch, against moto in-process."""

from datetime import UTC, datetime, timedelta

import boto3
import pytest

from tuner.errors import InputError
from tuner.simulate.traffic import fetch_cloudwatch


def test_cloudwatch_fetch_reads_invocations_per_minute(moto_aws):
    now = datetime.now(UTC).replace(second=0, microsecond=0)
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


def test_cloudwatch_days_are_bounded_and_empty_is_an_error(moto_aws):
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    with pytest.raises(InputError, match="--days 30"):
        fetch_cloudwatch(cloudwatch, "ep", "AllTraffic", days=30)
    with pytest.raises(InputError, match="no datapoints"):
        fetch_cloudwatch(cloudwatch, "ep", "AllTraffic", days=1)
