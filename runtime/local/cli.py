"""``transcodex``: run the local platform and drive any TranscodeX API from a terminal.

    transcodex local up [--port 8000] [--data-dir .transcodex]
    transcodex signup --name N --username U --email E      (password: prompt or $TRANSCODEX_PASSWORD)
    transcodex login --email E | logout
    transcodex apikey create|list|revoke ID
    transcodex upload FILE --op rotate=180 --op watermark="(c) ACME" [--wait] [--out DIR]
    transcodex status JOB | jobs | download JOB [--out DIR] | cancel JOB

The API URL comes from --api-url, then $TRANSCODEX_API_URL, then the config file
(~/.config/transcodex/config.json or $TRANSCODEX_CONFIG), then http://127.0.0.1:8000.
API errors print as their message and code (exit status 1), never as a traceback.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path
from typing import Any

from runtime.local.client import (
    ApiError,
    CliConfig,
    Client,
    Credentials,
    guess_mime,
    job_id_of,
    media_type_of,
    resolve_api_url,
)
from runtime.shared.settings import LOCAL_WORKER_MODES, tool_settings


def parse_op(text: str) -> dict[str, Any]:
    """``rotate=180`` / ``transcode`` / ``resize=800x600`` into the contract's list form."""
    from runtime.shared.contract import lookup

    name, _, value = text.partition("=")
    model = lookup(name)
    if model is None:
        from runtime.shared.contract import REGISTRY

        raise ApiError(0, "UNKNOWN_OPERATION", f"unknown operation {name!r}; known: {', '.join(sorted(REGISTRY))}")
    try:
        params = model.seed(value)
    except Exception as err:  # the contract's field errors carry a readable message
        raise ApiError(0, "INVALID_OPERATION", f"--op {text}: {err}") from None
    return {"op": model.op_name(), **params}


def build_operations(ops: list[str] | None, ops_json: str | None) -> Any:
    if ops_json:
        try:
            return json.loads(ops_json)
        except ValueError as err:
            raise ApiError(0, "INVALID_OPERATIONS", f"--ops is not JSON: {err}") from None
    if not ops:
        raise ApiError(
            0, "NO_OPERATIONS", "give at least one --op NAME[=VALUE] (e.g. --op resize=800x600) or --ops JSON"
        )
    return [parse_op(op) for op in ops]


def check_operations(job_type: str, operations: Any) -> None:
    """Validate with the job contract before uploading, so a typo never costs an upload."""
    from runtime.shared.contract import ContractError, parse_job

    try:
        parse_job(job_type, operations)
    except ContractError as err:
        raise ApiError(0, err.code, "the operations are not valid", err.details()) from None


def _password(args: argparse.Namespace, confirm: bool = False) -> str:
    if getattr(args, "password", None):
        return str(args.password)
    password = tool_settings().password
    if password:
        return password
    if not sys.stdin.isatty():
        raise ApiError(
            0, "PASSWORD_REQUIRED", "no password: pass --password, set TRANSCODEX_PASSWORD or use a terminal"
        )
    first = getpass.getpass("password: ")
    if confirm and getpass.getpass("again: ") != first:
        raise ApiError(0, "PASSWORD_MISMATCH", "the passwords differ")
    return first


def _print(value: Any, as_json: bool) -> None:
    if as_json or not isinstance(value, dict | list):
        print(json.dumps(value, indent=2, default=str))
        return
    if isinstance(value, dict):
        for key, item in value.items():
            shown = json.dumps(item, default=str) if isinstance(item, dict | list) else item
            print(f"{key:>14}: {shown}")
        return
    for item in value:
        print(json.dumps(item, default=str))


def _items(body: Any, *names: str) -> list[Any]:
    if isinstance(body, list):
        return body
    for name in names:
        value = body.get(name) if isinstance(body, dict) else None
        if isinstance(value, list):
            return value
    return []


def summarise_job(job: dict[str, Any]) -> str:
    line = f"{job_id_of(job)}  {job.get('job_type', ''):<5}  {job.get('status', ''):<10} {job.get('progress', 0):>3}%"
    error = job.get("error") or {}
    if error:
        line += f"  {error.get('code')}: {error.get('message')}"
    return line


# --- commands ------------------------------------------------------------------------------------


def cmd_local_up(args: argparse.Namespace, _client: Client | None) -> int:
    from runtime.local.platform import run_foreground

    image = args.worker_image
    if image == "build":
        from runtime.local.images import build_worker_image

        image = build_worker_image()
    return run_foreground(
        Path(args.data_dir),
        args.port,
        args.concurrency,
        quiet=args.quiet,
        worker_image=image,
        worker_mode=args.workers,
    )


def cmd_signup(args: argparse.Namespace, client: Client) -> int:
    password = _password(args, confirm=True)
    user = client.signup(args.name, args.username, args.email, password)
    print(f"created user {user.get('username', args.username)} <{user.get('email', args.email)}>")
    client.login(args.email, password)
    print(f"logged in to {client.api_url}")
    return 0


def cmd_login(args: argparse.Namespace, client: Client) -> int:
    client.login(args.email, _password(args))
    print(f"logged in to {client.api_url} as {args.email}")
    return 0


def cmd_logout(_args: argparse.Namespace, client: Client) -> int:
    client.logout()
    print("logged out")
    return 0


def cmd_apikey(args: argparse.Namespace, client: Client) -> int:
    if args.apikey_command == "create":
        key = client.create_api_key(args.name)
        if args.save:
            client.creds.api_key = key.get("key")
            client._remember()
        print(f"API key {key.get('id')} ({key.get('name')}): {key.get('key')}")
        print("store it now: it is shown only once" + (" (saved to the config file)" if args.save else ""))
    elif args.apikey_command == "list":
        keys = _items(client.list_api_keys(), "api_keys", "items", "keys")
        if args.json:
            _print(keys, True)
        for key in keys if not args.json else []:
            print(f"{key.get('id')}  {key.get('prefix', ''):<12} {key.get('name', ''):<16} {key.get('created_at')}")
        if not keys and not args.json:
            print("no active API keys")
    else:
        client.revoke_api_key(args.key_id)
        print(f"revoked {args.key_id}")
    return 0


def cmd_upload(args: argparse.Namespace, client: Client) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise ApiError(0, "NO_SUCH_FILE", f"{path} is not a file")
    operations = build_operations(args.op, args.ops)
    job_type = args.type or media_type_of(guess_mime(path), path)
    check_operations(job_type, operations)
    progress = not args.no_progress
    job = client.submit_file(path, operations, job_type, args.idempotency_key, progress=progress)
    job_id = job_id_of(job)
    print(f"job {job_id} {job.get('status', 'QUEUED')}")
    if not (args.wait or args.out):
        return 0
    final = client.wait(job_id, progress=progress)
    print(summarise_job(final))
    if final.get("status") != "SUCCEEDED":
        return 1
    if args.out:
        files = client.download(job_id, Path(args.out), progress=progress)
        print(f"saved {len(files)} file(s) to {Path(args.out) / job_id}")
    return 0


def cmd_status(args: argparse.Namespace, client: Client) -> int:
    job = client.wait(args.job_id, progress=not args.no_progress) if args.wait else client.status(args.job_id)
    _print(job, args.json) if args.json else print(summarise_job(job))
    return 0


def cmd_jobs(args: argparse.Namespace, client: Client) -> int:
    body = client.jobs(status=args.status, limit=args.limit)
    jobs = _items(body, "jobs", "items")
    if args.json:
        _print(body, True)
    else:
        for job in jobs:
            print(summarise_job(job))
        if not jobs:
            print("no jobs")
    return 0


def cmd_download(args: argparse.Namespace, client: Client) -> int:
    if args.urls:
        _print(client.download_info(args.job_id), True)
        return 0
    files = client.download(args.job_id, Path(args.out), progress=not args.no_progress)
    for path in files:
        print(path)
    return 0 if files else 1


def cmd_cancel(args: argparse.Namespace, client: Client) -> int:
    print(summarise_job(client.cancel(args.job_id)))
    return 0


# --- wiring --------------------------------------------------------------------------------------


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="transcodex", description="TranscodeX: media transcoding, locally or on AWS.")
    parser.add_argument("--api-url", help="API base URL (default: $TRANSCODEX_API_URL, the config file, :8000)")
    parser.add_argument("--json", action="store_true", help="print raw JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True)

    local = sub.add_parser("local", help="the local platform").add_subparsers(dest="local_command", required=True)
    up = local.add_parser("up", help="start PostgreSQL, moto (S3/SQS), the API and the dispatcher; Ctrl-C stops")
    up.add_argument("--port", type=int, default=8000, help="API port (0: any free port)")
    up.add_argument("--data-dir", default=".transcodex", help="state folder (database, files, logs)")
    up.add_argument("--concurrency", type=_positive, default=2, help="workers run at once")
    up.add_argument(
        "--workers",
        choices=LOCAL_WORKER_MODES,
        default=tool_settings().local_worker_mode,
        help="pool: warm worker processes that take jobs one after another; subprocess: a new process"
        " per job (default: $TRANSCODEX_LOCAL_WORKER_MODE, else pool; --worker-image: one container per job)",
    )
    up.add_argument("--quiet", action="store_true", help="log to DATA_DIR/logs/platform.log only")
    up.add_argument(
        "--worker-image",
        metavar="IMAGE",
        default=tool_settings().local_worker_image,
        help="run workers inside this image with podman (`build`: build runtime/worker/Dockerfile first;"
        " default: $TRANSCODEX_LOCAL_WORKER_IMAGE, else workers run in this Python)",
    )
    up.set_defaults(func=cmd_local_up, needs_client=False)

    signup = sub.add_parser("signup", help="create an account and log in")
    for name in ("name", "username", "email"):
        signup.add_argument(f"--{name}", required=True)
    signup.add_argument("--password", help="default: $TRANSCODEX_PASSWORD or a prompt")
    signup.set_defaults(func=cmd_signup)

    login = sub.add_parser("login", help="log in and store the tokens")
    login.add_argument("--email", required=True)
    login.add_argument("--password", help="default: $TRANSCODEX_PASSWORD or a prompt")
    login.set_defaults(func=cmd_login)
    sub.add_parser("logout", help="end this session").set_defaults(func=cmd_logout)

    apikey = sub.add_parser("apikey", help="API keys").add_subparsers(dest="apikey_command", required=True)
    create = apikey.add_parser("create", help="create a key (shown once)")
    create.add_argument("--name")
    create.add_argument("--save", action="store_true", help="store it in the config file for this API URL")
    listing = apikey.add_parser("list", help="active keys")
    revoke = apikey.add_parser("revoke", help="revoke a key at once")
    revoke.add_argument("key_id")
    for p in (create, listing, revoke):
        p.set_defaults(func=cmd_apikey)

    upload = sub.add_parser("upload", help="upload a file and create a job")
    upload.add_argument("file")
    upload.add_argument("--op", action="append", metavar="NAME[=VALUE]", help="an operation, in order (repeatable)")
    upload.add_argument("--ops", metavar="JSON", help="operations as JSON (list or the seed's object form)")
    upload.add_argument("--type", choices=["IMAGE", "VIDEO"], help="default: from the file's MIME type")
    upload.add_argument("--idempotency-key", help="retrying with the same key never creates a second job")
    upload.add_argument("--wait", action="store_true", help="wait for the job with a progress bar")
    upload.add_argument("--out", metavar="DIR", help="wait, then download the outputs to DIR/JOB_ID/")
    upload.set_defaults(func=cmd_upload)

    status = sub.add_parser("status", help="a job's status")
    status.add_argument("job_id")
    status.add_argument("--wait", action="store_true")
    status.set_defaults(func=cmd_status)

    jobs = sub.add_parser("jobs", help="your jobs, newest first")
    jobs.add_argument("--status")
    jobs.add_argument("--limit", type=int)
    jobs.set_defaults(func=cmd_jobs)

    download = sub.add_parser("download", help="save a job's outputs")
    download.add_argument("job_id")
    download.add_argument("--out", default=".", metavar="DIR")
    download.add_argument("--urls", action="store_true", help="print the presigned URLs instead")
    download.set_defaults(func=cmd_download)

    cancel = sub.add_parser("cancel", help="cancel a job")
    cancel.add_argument("job_id")
    cancel.set_defaults(func=cmd_cancel)
    return parser


def make_client(api_url_flag: str | None = None) -> Client:
    """A client for the resolved URL whose token changes are saved to the config file."""
    config = CliConfig.load()
    url = resolve_api_url(api_url_flag, config)

    def persist(creds: Credentials) -> None:
        config.api_url = url
        config.store(url, creds)
        config.save()

    return Client(url, config.credentials(url), on_credentials=persist)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        client = make_client(args.api_url) if getattr(args, "needs_client", True) else None
        return int(args.func(args, client) or 0)
    except ApiError as err:
        print(f"error: {err.describe()}", file=sys.stderr)
        return 1
    except OSError as err:  # a file that cannot be read or written
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
