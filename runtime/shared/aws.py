"""Small boto3 adapters: every AWS client is made here, so the endpoint overrides (SeaweedFS
for S3 and moto for the rest, in tests and in the local platform) and the region apply
everywhere, and nothing else in the runtime imports boto3 configuration details."""

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
    endpoint = settings.aws_endpoint_url_s3 if service == "s3" and settings.aws_endpoint_url_s3 else None
    return _client(service, settings.aws_region, endpoint or settings.aws_endpoint_url)


#: An S3 server on an IP address (SeaweedFS on 127.0.0.1) takes path-style URLs only.
_PATH_STYLE = _CONFIG.merge(Config(s3={"addressing_style": "path"}))


@lru_cache(maxsize=32)
def _client(service: str, region: str, endpoint_url: str | None) -> Any:
    config = _PATH_STYLE if service == "s3" and endpoint_url else _CONFIG
    return boto3.session.Session().client(service, region_name=region, endpoint_url=endpoint_url, config=config)


def secret_string(arn: str, settings: Settings) -> str:
    """The SecretString of a Secrets Manager secret."""
    return client("secretsmanager", settings).get_secret_value(SecretId=arn)["SecretString"]


def secret_json(arn: str, settings: Settings) -> dict[str, Any]:
    value = json.loads(secret_string(arn, settings))
    if not isinstance(value, dict):
        raise ValueError(f"secret {arn} does not hold a JSON object")
    return value
