"""endpoint-tuner: load-test-driven autoscaling targets for SageMaker real-time endpoints.

The package root imports nothing heavy: the Locust subprocess imports the pure modules
(`tuner.measure.analysis`, `tuner.measure.search`) and must not pull in Prefect or boto3.
"""

__version__ = "0.1.0"
