"""Acknowledge cdk-nag findings next to the resource that causes them.

cdk-nag v3 reports through CDK's validation framework, so an acknowledgement is
``Validations.of(scope).acknowledge(...)`` with the pack prefix in the id. Keeping
every acknowledgement in the construct that creates the resource means a consumer
app that applies ``AwsSolutionsChecks`` gets a clean report too.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct

PACK = "AwsSolutions"


def acknowledge(scope: IConstruct, rule: str, reason: str, *findings: str) -> None:
    """Acknowledge ``AwsSolutions-<rule>`` on ``scope``, or only the listed findings of it.

    ``findings`` are the bracketed finding ids of rules that report several findings
    per resource, e.g. ``acknowledge(policy, "IAM5", why, "Action::s3:GetObject*")``.
    """
    ids = [f"{PACK}-{rule}[{finding}]" for finding in findings] or [f"{PACK}-{rule}"]
    Validations.of(scope).acknowledge(*(Acknowledgment(id=f"{PACK}::{i}", reason=reason) for i in ids))
