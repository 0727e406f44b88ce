"""CloudFormation custom resource (aws-cdk-lib custom_resources.Provider ``on_event``) that
applies the schema migrations at deploy time, before any API or worker needs them.

Create and Update apply pending migrations (the construct changes a property whenever the
migrations' content hash changes, so a new migration triggers an Update); Delete keeps the
data. Errors raise, so the deployment fails and rolls back instead of running new code on
an old schema.

Only a request for the migrations this code ships is applied: on a rollback CloudFormation
sends an Update carrying the *old* ``MigrationsHash`` while this (new) code still runs, and
re-running the SQL that just failed would end the stack UPDATE_ROLLBACK_FAILED. Such a
request succeeds without touching the database (migrations are forward-only; the old code
runs on the newer schema, which each migration must keep compatible).
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg

from runtime.shared import aws
from runtime.shared.db import database_url, is_auth_failure
from runtime.shared.log import bind, configure
from runtime.shared.migrate import apply_migrations, content_hash
from runtime.shared.settings import load_settings

PHYSICAL_RESOURCE_ID = "transcodex-migrations"

log = logging.getLogger(__name__)


@aws.acting_as("migrations")
def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    settings = load_settings(sections=["database"])
    configure(settings.log_level)
    request_type = event.get("RequestType")
    with bind(request_type=request_type, request_id=event.get("RequestId")):
        if request_type == "Delete":
            log.info("migrations resource deleted; the schema and data are kept")
            return {"PhysicalResourceId": event.get("PhysicalResourceId") or PHYSICAL_RESOURCE_ID}
        if request_type not in ("Create", "Update"):
            raise ValueError(f"unknown RequestType {request_type!r}")
        requested = (event.get("ResourceProperties") or {}).get("MigrationsHash")
        shipped = content_hash()
        if requested is not None and requested != shipped:
            log.warning(
                "migrations hash differs from the shipped one (a rollback); nothing applied",
                extra={"requested": requested, "shipped": shipped},
            )
            return {"PhysicalResourceId": PHYSICAL_RESOURCE_ID, "Data": {"Applied": ""}}
        try:
            applied = apply_migrations(database_url(settings))
        except psycopg.OperationalError as error:
            if not is_auth_failure(error) or not settings.database_secret_arn:
                raise
            # Rotated between reading the secret and logging in: read it again, once.
            log.warning("database login refused; re-reading the secret", extra={"error": str(error)})
            applied = apply_migrations(database_url(settings))
        log.info("migrations applied", extra={"applied": applied})
        # CloudFormation attributes are strings.
        return {"PhysicalResourceId": PHYSICAL_RESOURCE_ID, "Data": {"Applied": ",".join(applied)}}
