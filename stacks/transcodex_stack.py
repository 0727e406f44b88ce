"""The deployable stack: one TranscodexPlatform, configured from props or CDK context."""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Mapping
from typing import Any

from aws_cdk import CfnRule, CfnRuleAssertion, Fn, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from constructs_lib import TranscodexPlatform, TranscodexPlatformProps

#: Context key holding a JSON object of TranscodexPlatformProps fields (cdk.json or ``-c``).
CONTEXT_KEY = "transcodex"
#: Context key prefix for single fields, e.g. ``-c transcodex:worker_cpu=4096``.
CONTEXT_PREFIX = "transcodex:"
#: Context-only keys that are not platform props.
VPC_ID_KEY = "vpc_id"

_NOT_FROM_CONTEXT = {"vpc", "worker_image", "worker_function_code", "api_app_spec"}


_RETENTION_DAYS = {
    "ONE_DAY": 1, "THREE_DAYS": 3, "FIVE_DAYS": 5, "ONE_WEEK": 7, "TWO_WEEKS": 14, "ONE_MONTH": 30,
    "TWO_MONTHS": 60, "THREE_MONTHS": 90, "FOUR_MONTHS": 120, "FIVE_MONTHS": 150, "SIX_MONTHS": 180,
    "ONE_YEAR": 365, "THIRTEEN_MONTHS": 400, "EIGHTEEN_MONTHS": 545, "TWO_YEARS": 731, "THREE_YEARS": 1096,
    "FIVE_YEARS": 1827, "SIX_YEARS": 2192, "SEVEN_YEARS": 2557, "EIGHT_YEARS": 2922, "NINE_YEARS": 3288,
    "TEN_YEARS": 3653, "INFINITE": 9999,
}  # fmt: skip


def _retention(value: Any) -> logs.RetentionDays:
    """A CloudWatch retention given as days (30) or as a RetentionDays name ("ONE_MONTH")."""
    for name, days in _RETENTION_DAYS.items():
        if str(value).upper() == name or str(value) == str(days):
            return logs.RetentionDays[name]
    raise ValueError(
        f"log_retention must be a CloudWatch retention in days {sorted(_RETENTION_DAYS.values())}, got {value!r}"
    )


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "1", "yes"):
        return True
    if str(value).lower() in ("false", "0", "no"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _enum(enum: Any, field: str) -> Any:
    def convert(value: Any) -> Any:
        try:
            return enum[str(value).upper()]
        except KeyError:
            raise ValueError(f"{field} must be one of {[m.name for m in enum]}, got {value!r}") from None

    return convert


def _optional(convert: Any) -> Any:
    return lambda value: None if value is None or value == "" else convert(value)


def _converters() -> dict[str, Any]:
    hints = typing.get_type_hints(TranscodexPlatformProps)
    result: dict[str, Any] = {}
    for field in dataclasses.fields(TranscodexPlatformProps):
        if field.name in _NOT_FROM_CONTEXT:
            continue
        hint = str(hints[field.name])
        if field.name == "removal_policy":
            convert: Any = _enum(RemovalPolicy, field.name)
        elif field.name == "bucket_encryption":
            convert = _enum(s3.BucketEncryption, field.name)
        elif field.name == "log_retention":
            convert = _retention
        elif field.name in ("cors_allowed_origins", "output_cors_allowed_origins"):
            convert = lambda v: tuple(v if isinstance(v, list) else str(v).split(","))  # noqa: E731
        elif "bool" in hint:
            convert = _bool
        elif "int" in hint:
            convert = int
        else:
            convert = str
        result[field.name] = _optional(convert) if "None" in hint else convert
    return result


def platform_config_from_context(scope: Construct) -> dict[str, Any]:
    """Collect platform settings from the ``transcodex`` context object and ``transcodex:<field>`` keys."""
    raw: dict[str, Any] = {}
    whole = scope.node.try_get_context(CONTEXT_KEY)
    if isinstance(whole, str):
        whole = json.loads(whole)
    if whole is not None and not isinstance(whole, Mapping):
        raise ValueError(f"context {CONTEXT_KEY!r} must be a JSON object, got {whole!r}")
    raw.update(whole or {})
    converters = _converters()
    for name in [*converters, VPC_ID_KEY]:
        value = scope.node.try_get_context(CONTEXT_PREFIX + name)
        if value is not None:
            raw[name] = value
    unknown = set(raw) - set(converters) - {VPC_ID_KEY}
    if unknown:
        raise ValueError(f"unknown TranscodeX settings {sorted(unknown)}; allowed: {sorted([*converters, VPC_ID_KEY])}")
    return raw


def props_from_config(stack: Stack, config: Mapping[str, Any]) -> TranscodexPlatformProps:
    """Turn plain settings (strings, numbers, lists) into TranscodexPlatformProps."""
    converters = _converters()
    values = {name: converters[name](value) for name, value in config.items() if name != VPC_ID_KEY}
    if config.get(VPC_ID_KEY):
        values["vpc"] = ec2.Vpc.from_lookup(stack, "ImportedVpc", vpc_id=str(config[VPC_ID_KEY]))
    return TranscodexPlatformProps(**values)


class TranscodexStack(Stack):
    """The TranscodeX platform as one stack.

    ``platform_props`` wins; without it the settings come from CDK context
    (see README, "Configuration"). ``bundling_skipped`` adds a template rule that
    makes CloudFormation refuse the template, so Lambdas synthesized without their
    dependencies can never be deployed by mistake.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        platform_props: TranscodexPlatformProps | None = None,
        bundling_skipped: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        props = platform_props or props_from_config(self, platform_config_from_context(self))
        self.platform = TranscodexPlatform(self, "Platform", props)
        if bundling_skipped:
            CfnRule(
                self,
                "BundlingSkipped",
                assertions=[
                    CfnRuleAssertion(
                        assert_=Fn.condition_equals("bundling-skipped", "bundled"),
                        assert_description=(
                            "This template was synthesized with TRANSCODEX_SKIP_BUNDLING=1: its Lambda "
                            "functions lack their dependencies. Synthesize again without it to deploy."
                        ),
                    )
                ],
            )
