"""Deployable stacks of TranscodeX."""

from stacks.app import SKIP_BUNDLING_ENV, apply_policy_checks, create_app
from stacks.transcodex_stack import TranscodexStack, platform_config_from_context, props_from_config

__all__ = [
    "SKIP_BUNDLING_ENV",
    "TranscodexStack",
    "apply_policy_checks",
    "create_app",
    "platform_config_from_context",
    "props_from_config",
]
