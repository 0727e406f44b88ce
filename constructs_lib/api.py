"""The HTTP API: the Chalice app on a Lambda behind a native API Gateway REST API.

Chalice's own CDK construct packages at synth with ``pip download`` and emits SAM
resources; instead the app object is deployed as an ordinary PythonFunction and
the REST API is generated from the app's route table, one resource and method per
route with Lambda proxy integration. Chalice dispatches on
``requestContext.resourcePath``, which a native resource per route provides
(a ``{proxy+}`` catch-all would not).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from aws_cdk import Duration, Names, RemovalPolicy
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from constructs_lib._grants import (
    INPUT_PREFIX,
    OUTPUT_PREFIX,
    acknowledge_prefix_grants,
    grant_object_delete,
    grant_object_read,
    grant_object_write,
)
from constructs_lib._lambda import runtime_function
from constructs_lib._nag import acknowledge
from constructs_lib._runtime_interface import APP_ATTRIBUTE, AppSpec, runtime_interface
from constructs_lib.worker_function import WorkerFunction

#: Answers API Gateway gives itself (no route, throttled, integration failed) in the API's error
#: shape ``{"error": {"code", "message", "details"}}``; the status code is kept.
#: ``$context.error.messageString`` is the gateway's message, already quoted as a JSON string.
GATEWAY_ERROR_TEMPLATE = (
    '{"error": {"code": "$context.error.responseType", "message": $context.error.messageString, "details": {}}}'
)


def load_app_spec() -> AppSpec:
    """The routes and binary media types of the Chalice app in runtime/api/app.py, as checked in
    (constructs_lib/runtime_interface.json): synth imports neither Chalice nor the app."""
    return runtime_interface().app


#: The per-user limits (runtime.shared.settings.Limits), as props of ApiProps and the platform.
PER_USER_LIMITS = (
    "max_active_jobs_per_user",
    "max_jobs_per_hour_per_user",
    "max_pending_uploads_per_user",
    "max_stored_bytes_per_user",
)


@dataclass(frozen=True)
class ApiProps:
    """Properties of :class:`Api`."""

    #: The VPC of the function (it reaches the database).
    vpc: ec2.IVpc
    #: Bucket of uploads; the API signs uploads to ``input/`` and HEADs them.
    input_bucket: s3.IBucket
    #: Bucket of outputs; the API signs downloads from ``output/``.
    output_bucket: s3.IBucket
    #: The job queue the API sends job ids to.
    queue: sqs.IQueue
    #: Database credentials.
    database_secret: secretsmanager.ISecret
    #: Subnets of the function.
    #: Default: - the VPC's private subnets with egress.
    vpc_subnets: ec2.SubnetSelection | None = None
    #: The routes and binary media types to expose.
    #: Default: - the routes of the Chalice app in runtime/api/app.py (:func:`load_app_spec`).
    app_spec: AppSpec | None = None
    #: Stage name, the first path segment of the URL.
    #: Default: - "v1".
    stage_name: str = "v1"
    #: Steady-state request rate limit of the stage, requests per second.
    #: Default: - 100.
    throttling_rate_limit: int = 100
    #: Burst limit of the stage, requests.
    #: Default: - 200.
    throttling_burst_limit: int = 200
    #: Reserved (and maximum) concurrency of the function. Each container holds one database
    #: connection, so this bounds the API's share of the database's max_connections; requests
    #: beyond it are throttled by Lambda (an error answer) instead of exhausting the database.
    #: Default: - 100 (db.t4g.small allows ~200 connections, see stacks/quotas.py).
    reserved_concurrency: int = 100
    #: Memory of the function, in MiB (argon2id hashing is memory-hard).
    #: Default: - 1024.
    memory_size_mib: int = 1024
    #: Timeout of the function, in seconds (API Gateway stops waiting at 29).
    #: Default: - 29.
    timeout_seconds: int = 29
    #: Origins (``scheme://host[:port]``) whose pages may make cookie-authenticated requests that
    #: change state (POST/PUT/PATCH/DELETE); any other Origin or Referer is 403
    #: CSRF_ORIGIN_REFUSED. Bearer and API-key requests are never asked for an origin.
    #: Default: - only the API's own origin.
    allowed_origins: Sequence[str] = ()
    #: Extra environment of the function (limits, log level, the task-size bounds of
    #: runtime.shared.settings.Runners that POST /media/process refuses by).
    #: Default: - none.
    environment: Mapping[str, str] = field(default_factory=dict)
    #: Jobs of one user QUEUED, DISPATCHED or RUNNING at once; over it POST /media/process is 429.
    #: Default: - the runtime's (10).
    max_active_jobs_per_user: int | None = None
    #: Jobs one user may create in any rolling hour.
    #: Default: - the runtime's (100).
    max_jobs_per_hour_per_user: int | None = None
    #: Uploads of one user pending (presigned, not uploaded) at once.
    #: Default: - the runtime's (20).
    max_pending_uploads_per_user: int | None = None
    #: Input bytes one user may hold (uploads in the input lifecycle plus pending reservations).
    #: Default: - the runtime's (20 GiB).
    max_stored_bytes_per_user: int | None = None
    #: Refuse uploads that do not declare ``size_bytes`` (422 SIZE_REQUIRED) rather than give
    #: them a POST policy form (``content-length-range`` up to the input limit).
    #: Default: - false (the seed's body, which omits the size, gets the bounded form).
    require_upload_size: bool = False
    #: The worker Lambda, which probes a video's duration and frame size for POST
    #: /media/process's work estimate (a synchronous Invoke).
    #: Default: - none: videos are accepted unprobed and sized by the dispatcher's default.
    worker_function: WorkerFunction | None = None
    #: Retention of the function and access log groups.
    #: Default: - one month.
    log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH
    #: Removal policy of the log groups.
    #: Default: - RETAIN.
    log_removal_policy: RemovalPolicy = RemovalPolicy.RETAIN

    def limits_environment(self) -> dict[str, str]:
        """The per-user limits set on these props, as the runtime's TRANSCODEX_* variables."""
        env = {
            f"TRANSCODEX_{name.upper()}": str(getattr(self, name))
            for name in PER_USER_LIMITS
            if getattr(self, name) is not None
        }
        if self.require_upload_size:
            env["TRANSCODEX_REQUIRE_UPLOAD_SIZE"] = "1"
        return env

    def validate(self) -> None:
        for name in PER_USER_LIMITS:
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {value}")
        if not self.stage_name or not self.stage_name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"stage_name must be letters, digits, '-' or '_', got {self.stage_name!r}")
        if self.throttling_rate_limit < 1 or self.throttling_burst_limit < 1:
            raise ValueError(
                "throttling limits must be >= 1, got "
                f"rate={self.throttling_rate_limit} burst={self.throttling_burst_limit}"
            )
        if not 1 <= self.reserved_concurrency <= 1000:
            raise ValueError(f"reserved_concurrency must be between 1 and 1000, got {self.reserved_concurrency}")
        if not 128 <= self.memory_size_mib <= 10240:
            raise ValueError(f"memory_size_mib must be between 128 and 10240, got {self.memory_size_mib}")
        if not 1 <= self.timeout_seconds <= 29:
            raise ValueError(
                f"timeout_seconds must be between 1 and 29 (API Gateway's limit), got {self.timeout_seconds}"
            )
        if self.app_spec is not None and not self.app_spec.routes:
            raise ValueError("app_spec.routes must not be empty")
        for origin in self.allowed_origins:
            scheme, sep, rest = origin.rstrip("/").partition("://")
            if scheme not in ("http", "https") or not sep or not rest or "/" in rest or "," in rest:
                raise ValueError(f"allowed_origins entries must be scheme://host[:port], got {origin!r}")

    def origin_environment(self) -> dict[str, str]:
        """The function's TRANSCODEX_ALLOWED_ORIGINS (none: the runtime's default, its own origin)."""
        if not self.allowed_origins:
            return {}
        return {"TRANSCODEX_ALLOWED_ORIGINS": ",".join(o.rstrip("/").lower() for o in self.allowed_origins)}


class Api(Construct):
    """The Chalice app as a Lambda function behind a REST API generated from its routes.

    Attributes: ``function``, ``rest_api``, ``jwt_secret`` (the generated signing
    key), ``access_log_group``, ``security_group`` and ``url``. Answers API Gateway
    gives itself are in the app's error shape: an unknown path is 404 ``NOT_FOUND``
    (not 403 "Missing Authentication Token"), other 4XX/5XX keep their status.
    """

    def __init__(self, scope: Construct, construct_id: str, props: ApiProps) -> None:
        super().__init__(scope, construct_id)
        props.validate()
        spec = props.app_spec or load_app_spec()
        self.jwt_secret = secretsmanager.Secret(
            self,
            "JwtSecret",
            description="TranscodeX JWT signing key",
            generate_secret_string=secretsmanager.SecretStringGenerator(password_length=64, exclude_punctuation=True),
        )
        acknowledge(
            self.jwt_secret,
            "SMG4",
            "The JWT signing key is not rotated on a schedule: rotation would sign out every user at once; "
            "refresh tokens are bound to revocable session rows instead.",
        )
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=props.vpc,
            description="TranscodeX API function (no inbound)",
            allow_all_outbound=True,
        )
        self.function = runtime_function(
            self,
            "Function",
            component="api",
            index="runtime/api/app.py",
            handler=APP_ATTRIBUTE,
            description="TranscodeX API (Chalice app)",
            vpc=props.vpc,
            vpc_subnets=props.vpc_subnets or ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_groups=[self.security_group],
            environment={
                "TRANSCODEX_DATABASE_SECRET_ARN": props.database_secret.secret_arn,
                "TRANSCODEX_INPUT_BUCKET": props.input_bucket.bucket_name,
                "TRANSCODEX_OUTPUT_BUCKET": props.output_bucket.bucket_name,
                "TRANSCODEX_QUEUE_URL": props.queue.queue_url,
                "TRANSCODEX_JWT_SECRET_ARN": self.jwt_secret.secret_arn,
                # One request at a time per container: one connection is all it can use.
                runtime_interface().api_pool_size_env: "1",
                **(props.worker_function.runtime_environment() if props.worker_function else {}),
                **props.origin_environment(),
                **props.environment,
                **props.limits_environment(),
            },
            timeout=Duration.seconds(props.timeout_seconds),
            memory_size_mib=props.memory_size_mib,
            log_retention=props.log_retention,
            log_removal_policy=props.log_removal_policy,
        )
        cfn_function = self.function.node.default_child
        assert isinstance(cfn_function, lambda_.CfnFunction)
        cfn_function.reserved_concurrent_executions = props.reserved_concurrency
        grant_object_write(props.input_bucket, self.function, INPUT_PREFIX)
        grant_object_read(props.input_bucket, self.function, INPUT_PREFIX)
        # Aborted and oversized uploads are deleted.
        grant_object_delete(props.input_bucket, self.function, INPUT_PREFIX)
        grant_object_read(props.output_bucket, self.function, OUTPUT_PREFIX)
        assert self.function.role is not None
        acknowledge_prefix_grants(self.function.role, props.input_bucket, props.output_bucket)
        props.queue.grant_send_messages(self.function)
        props.database_secret.grant_read(self.function)
        self.jwt_secret.grant_read(self.function)
        if props.worker_function is not None:
            props.worker_function.grant_invoke(self.function)

        self.access_log_group = logs.LogGroup(
            self, "AccessLogs", retention=props.log_retention, removal_policy=props.log_removal_policy
        )
        self.rest_api = apigateway.RestApi(
            self,
            "RestApi",
            # Unique per construct path: the API's CloudWatch metrics are keyed by this name.
            rest_api_name=Names.unique_resource_name(self, max_length=128),
            description="TranscodeX API",
            endpoint_types=[apigateway.EndpointType.REGIONAL],
            cloud_watch_role=True,
            deploy_options=apigateway.StageOptions(
                stage_name=props.stage_name,
                throttling_rate_limit=props.throttling_rate_limit,
                throttling_burst_limit=props.throttling_burst_limit,
                tracing_enabled=True,
                logging_level=apigateway.MethodLoggingLevel.ERROR,
                metrics_enabled=True,
                access_log_destination=apigateway.LogGroupLogDestination(self.access_log_group),
                access_log_format=apigateway.AccessLogFormat.json_with_standard_fields(
                    caller=False,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=False,
                ),
            ),
            binary_media_types=list(spec.binary_media_types) or None,
        )
        self.url = self.rest_api.url
        self.request_validator = self.rest_api.add_request_validator(
            "RequestValidator", validate_request_body=True, validate_request_parameters=True
        )
        # One resource-based permission for the whole API (source ``<api-arn>/*/*/*``), not two per
        # method: Lambda caps a function's policy at 20 KB, which ~28 methods x 2 statements exceed.
        integration = apigateway.LambdaIntegration(self.function, proxy=True, scope_permission_to_method=False)
        for route in spec.routes:
            resource = self._resource(route.path)
            params = {
                f"method.request.path.{name}": True
                for name in (part[1:-1] for part in route.path.split("/") if part.startswith("{"))
            }
            for method in route.methods:
                resource.add_method(
                    method,
                    integration,
                    request_parameters=params or None,
                    request_validator=self.request_validator,
                )
            if route.cors is not None and "OPTIONS" not in route.methods:
                self._add_preflight(resource, route.cors, route.methods)
        self._add_gateway_responses(spec)
        self._acknowledge_auth()

    def _add_gateway_responses(self, spec: AppSpec) -> None:
        """Unknown paths → 404 in the app's shape (runtime.api.chalicelib.errors.GATEWAY_NOT_FOUND);
        every other gateway-made 4XX/5XX in the same shape, with the app's headers (and its CORS
        origin, so a browser can read the error)."""
        interface = runtime_interface()
        headers = {
            name: f"'{value}'" for name, value in interface.response_headers.items() if name.lower() != "content-type"
        }
        origins = {route.cors.get("Access-Control-Allow-Origin", "*") for route in spec.routes if route.cors}
        if len(origins) == 1:
            headers["Access-Control-Allow-Origin"] = f"'{origins.pop()}'"
        self.not_found_response = self.rest_api.add_gateway_response(
            "NotFound",
            type=apigateway.ResponseType.of(interface.not_found.response_type),
            status_code=interface.not_found.status_code,
            response_headers=headers,
            templates={"application/json": interface.not_found.template},
        )
        for name, response_type in (
            ("Default4xx", apigateway.ResponseType.DEFAULT_4_XX),
            ("Default5xx", apigateway.ResponseType.DEFAULT_5_XX),
        ):
            self.rest_api.add_gateway_response(
                name,
                type=response_type,
                response_headers=headers,
                templates={"application/json": GATEWAY_ERROR_TEMPLATE},
            )

    def _resource(self, path: str) -> apigateway.IResource:
        resource: apigateway.IResource = self.rest_api.root
        for part in (p for p in path.split("/") if p):
            resource = resource.get_resource(part) or resource.add_resource(part)
        return resource

    @staticmethod
    def _add_preflight(resource: apigateway.IResource, headers: Mapping[str, str], methods: Sequence[str]) -> None:
        origin = headers.get("Access-Control-Allow-Origin", "*")
        resource.add_cors_preflight(
            allow_origins=[origin],
            allow_headers=[h for h in headers.get("Access-Control-Allow-Headers", "").split(",") if h],
            allow_methods=[*methods, "OPTIONS"],
            allow_credentials=headers.get("Access-Control-Allow-Credentials") == "true",
            max_age=Duration.seconds(int(headers["Access-Control-Max-Age"]))
            if "Access-Control-Max-Age" in headers
            else None,
            expose_headers=[h for h in headers.get("Access-Control-Expose-Headers", "").split(",") if h] or None,
        )

    def _acknowledge_auth(self) -> None:
        reason = (
            "Authentication is the application's: JWT bearer tokens bound to revocable sessions and hashed "
            "API keys, checked by the Chalice app on every protected route; sign-up, login and CORS "
            "preflights must be reachable without credentials."
        )
        acknowledge(self.rest_api, "APIG4", reason)
        acknowledge(self.rest_api, "COG4", reason)
        acknowledge(
            self.rest_api,
            "APIG3",
            "No WAF web ACL by default: stage throttling bounds abuse and WAF is an account-level, priced "
            "choice; attach one to the stage ARN if required.",
        )
        role = self.rest_api.node.try_find_child("CloudWatchRole")
        if role is not None:
            acknowledge(
                role,
                "IAM4",
                "API Gateway's account-level logging role must use the AWS managed push-to-CloudWatch policy.",
                "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs",
            )
