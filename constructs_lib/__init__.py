"""TranscodeX reusable CDK constructs (aws-cdk-lib v2).

``TranscodexPlatform`` composes the whole platform; each part is also usable alone.
"""

from constructs_lib._runtime_interface import AppSpec, Route
from constructs_lib.api import Api, ApiProps, load_app_spec
from constructs_lib.database import Database, DatabaseProps
from constructs_lib.dispatcher import Dispatcher, DispatcherProps
from constructs_lib.migrations import Migrations, MigrationsProps
from constructs_lib.network import Network, NetworkProps
from constructs_lib.observability import Observability, ObservabilityProps
from constructs_lib.platform import TranscodexPlatform, TranscodexPlatformProps
from constructs_lib.queue import JobQueue, JobQueueProps
from constructs_lib.storage import INPUT_PREFIX, OUTPUT_PREFIX, Storage, StorageProps
from constructs_lib.worker import CONTAINER_NAME, Worker, WorkerProps

__all__ = [
    "CONTAINER_NAME",
    "INPUT_PREFIX",
    "OUTPUT_PREFIX",
    "Api",
    "ApiProps",
    "AppSpec",
    "Database",
    "DatabaseProps",
    "Dispatcher",
    "DispatcherProps",
    "JobQueue",
    "JobQueueProps",
    "Migrations",
    "MigrationsProps",
    "Network",
    "NetworkProps",
    "Observability",
    "ObservabilityProps",
    "Route",
    "Storage",
    "StorageProps",
    "TranscodexPlatform",
    "TranscodexPlatformProps",
    "Worker",
    "WorkerProps",
    "load_app_spec",
]
