"""CloudFormation custom resource (aws-cdk-lib custom_resources.Provider ``on_event``) that
applies the schema migrations at deploy time, before any API or worker needs them.

Create and Update apply pending migrations (the construct changes a property whenever the
migrations' content hash changes, so a new migration triggers an Update); Delete keeps the
data. Errors raise, so the deployment fails and rolls back instead of running new code on
an old schema.
"""

from __future__ import annotations

import logging
from typing import Any

from runtime.shared import aws
from runtime.shared.db import database_url
from runtime.shared.log import bind, configure
from runtime.shared.migrate import apply_migrations
from runtime.shared.settings import load_settings

PHYSICAL_RESOURCE_ID = "transcodex-migrations"

log = logging.getLogger(__name__)


@aws.acting_as("migrations")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = load_settings(sections=["database"])
    configure(settings.log_level)
    request_type = event.get("RequestType")
    with bind(request_type=request_type, request_id=event.get("RequestId")):
        if request_type == "Delete":
            log.info("migrations resource deleted; the schema and data are kept")
            return {"PhysicalResourceId": event.get("PhysicalResourceId") or PHYSICAL_RESOURCE_ID}
        if request_type not in ("Create", "Update"):
            raise ValueError(f"unknown RequestType {request_type!r}")
        applied = apply_migrations(database_url(settings))
        log.info("migrations applied", extra={"applied": applied})
        # CloudFormation attributes are strings.
        return {"PhysicalResourceId": PHYSICAL_RESOURCE_ID, "Data": {"Applied": ",".join(applied)}}
