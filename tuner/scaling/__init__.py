"""What AWS is told: the target, the built-in policy, and changing them safely.

Owns the policy and scalable-target requests and the plan from the scaling found to the
scaling wanted (`policy`), their CloudFormation/Terraform form (`iac`), the release gate's
rules (`release_gate`, pure), and the shell against Application Auto Scaling and SageMaker:
the boto3 adapter (`aws`), the checks before a run (`preflight`), the suspension of dynamic
scaling during a test and its repair after a crash (`suspension`) and the verified,
idempotent apply (`apply`). The endpoint ends up scaling as found or as applied.
Submodules are imported by name; importing the package loads none of them.
"""

__all__ = ["apply", "aws", "iac", "policy", "preflight", "release_gate", "suspension"]
