"""Build the CDK app the same way for ``python app.py``, ``npx cdk`` and the tests."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

from aws_cdk import App, Environment, Validations
from cdk_nag import AwsSolutionsChecks

from constructs_lib import TranscodexPlatformProps
from runtime.shared.settings import tool_settings
from stacks.transcodex_stack import TranscodexStack

#: Set to 1 to synthesize without Docker: Lambda bundles then lack their dependencies,
#: and the template carries a rule that refuses deployment.
SKIP_BUNDLING_ENV = "TRANSCODEX_SKIP_BUNDLING"


#: Feature flags the constructs are written for; set in code so that ``python app.py``,
#: ``npx cdk`` and the tests synthesize the same template.
FEATURE_FLAGS: dict[str, Any] = {
    "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": True,
    "@aws-cdk/aws-s3:createDefaultLoggingPolicy": True,
    "@aws-cdk/aws-iam:minimizePolicies": True,
    "@aws-cdk/aws-iam:standardizedServicePrincipals": True,
    "@aws-cdk/aws-kms:reduceCrossAccountRegionPolicyScope": True,
    "@aws-cdk/aws-ecs:arnFormatIncludesClusterName": True,
    "@aws-cdk/core:enablePartitionLiterals": True,
}


def skip_bundling_requested(environ: Mapping[str, str] | None = None) -> bool:
    """$TRANSCODEX_SKIP_BUNDLING is 1 (ConfigError, a ValueError, when neither 1 nor 0)."""
    return tool_settings(environ).skip_bundling


def apply_policy_checks(app: App) -> None:
    """Run cdk-nag's AwsSolutions pack on every synth; any unacknowledged finding fails it."""
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def create_app(
    *,
    skip_bundling: bool | None = None,
    context: Mapping[str, Any] | None = None,
    outdir: str | None = None,
    platform_props: TranscodexPlatformProps | None = None,
) -> tuple[App, TranscodexStack]:
    """Create the app and its one stack. ``skip_bundling`` defaults to $TRANSCODEX_SKIP_BUNDLING.

    The policy checks are added by the caller (app.py, the tests) with :func:`apply_policy_checks`.
    """
    skip = skip_bundling_requested() if skip_bundling is None else skip_bundling
    if skip:
        print(
            f"WARNING: {SKIP_BUNDLING_ENV}=1: Lambda bundling is skipped; this assembly is for "
            "inspection only and its template refuses deployment.",
            file=sys.stderr,
        )
    app = App(
        context={**FEATURE_FLAGS, **(context or {})},
        outdir=outdir,
        post_cli_context={"aws:cdk:bundling-stacks": []} if skip else None,
    )
    account = app.node.try_get_context("transcodex:account") or os.environ.get("CDK_DEFAULT_ACCOUNT")
    region = app.node.try_get_context("transcodex:region") or os.environ.get("CDK_DEFAULT_REGION")
    stack = TranscodexStack(
        app,
        app.node.try_get_context("transcodex:stack_name") or "Transcodex",
        description="TranscodeX media transcoding platform",
        env=Environment(account=account, region=region) if account or region else None,
        platform_props=platform_props,
        bundling_skipped=skip,
    )
    return app, stack
