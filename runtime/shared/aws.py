"""Small boto3 adapters: every AWS client is made here, so an endpoint override (moto in
tests and in the local platform) and the region apply everywhere, and nothing else in the
runtime imports boto3 configuration details."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import boto3
from botocore.config import Config

from runtime.shared.settings import Settings

_CONFIG = Config(retries={"max_attempts": 5, "mode": "standard"}, signature_version="s3v4")


def client(service: str, settings: Settings) -> Any:
    """A boto3 client for ``service`` honouring the endpoint override and region."""
    return _client(service, settings.aws_region, settings.aws_endpoint_url)


@lru_cache(maxsize=32)
def _client(service: str, region: str, endpoint_url: str | None) -> Any:
    return boto3.session.Session().client(service, region_name=region, endpoint_url=endpoint_url, config=_CONFIG)


def secret_string(arn: str, settings: Settings) -> str:
    """The SecretString of a Secrets Manager secret."""
    return client("secretsmanager", settings).get_secret_value(SecretId=arn)["SecretString"]


def secret_json(arn: str, settings: Settings) -> dict[str, Any]:
    value = json.loads(secret_string(arn, settings))
    if not isinstance(value, dict):
        raise ValueError(f"secret {arn} does not hold a JSON object")
    return value
