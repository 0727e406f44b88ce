"""The TranscodeX HTTP client behind the ``transcodex`` CLI, the demo and the end-to-end tests.

It speaks the API's JSON (errors are ``{"error": {"code", "message", "details"}}`` and become
:class:`ApiError`), keeps credentials in a small config file (mode 0600) per API URL, refreshes
an expired access token once, uploads straight to the presigned URL and downloads outputs,
each with an optional tqdm progress bar.
"""

from __future__ import annotations

import contextlib
import io
import json
import mimetypes
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn
from urllib.parse import urljoin, urlsplit

import requests

from runtime.shared import hls, keys
from runtime.shared.settings import tool_settings
from runtime.shared.status import TERMINAL, OutputRole

if TYPE_CHECKING:
    from tqdm import tqdm

    #: A byte or percent progress bar (no iterable: updated by hand).
    Bar = tqdm[NoReturn]

DEFAULT_API_URL = "http://127.0.0.1:8000"
CHUNK = 256 * 1024
#: The first pause of Client.wait between status polls (it doubles up to the caller's interval).
FIRST_POLL_S = 0.025


class ApiError(Exception):
    """An error the API (or the network) returned, with its machine code and a readable message."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{message} ({code})")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}

    def describe(self) -> str:
        """The message plus any per-field problems, for people."""
        lines = [f"{self.message} [{self.code}]" if self.code else self.message]
        for problem in self.details.get("problems", []) if isinstance(self.details, dict) else []:
            if isinstance(problem, dict):
                where = problem.get("field") or problem.get("operation")
                lines.append(f"  - {where + ': ' if where else ''}{problem.get('message', problem)}")
        return "\n".join(lines)


# --- configuration ------------------------------------------------------------------------------


def config_path() -> Path:
    return tool_settings().config_path


@dataclass
class Credentials:
    access_token: str | None = None
    refresh_token: str | None = None
    api_key: str | None = None
    email: str | None = None


@dataclass
class CliConfig:
    """``{"api_url": last URL used, "profiles": {url: credentials}}``, stored with mode 0600."""

    api_url: str | None = None
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    path: Path = field(default_factory=config_path)

    @classmethod
    def load(cls, path: Path | None = None) -> CliConfig:
        path = path or config_path()
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return cls(path=path)
        except (OSError, ValueError) as err:
            raise ApiError(0, "BAD_CONFIG", f"cannot read the config file {path}: {err}") from None
        if not isinstance(data, dict):
            raise ApiError(0, "BAD_CONFIG", f"the config file {path} does not hold a JSON object")
        return cls(api_url=data.get("api_url"), profiles=dict(data.get("profiles") or {}), path=path)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"api_url": self.api_url, "profiles": self.profiles}, out, indent=1)
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)

    def credentials(self, api_url: str) -> Credentials:
        raw = self.profiles.get(api_url.rstrip("/"), {})
        return Credentials(**{k: raw.get(k) for k in ("access_token", "refresh_token", "api_key", "email")})

    def store(self, api_url: str, creds: Credentials) -> None:
        self.profiles[api_url.rstrip("/")] = {k: v for k, v in vars(creds).items() if v is not None}


def resolve_api_url(flag: str | None, config: CliConfig) -> str:
    """Flag > $TRANSCODEX_API_URL > config file > http://127.0.0.1:8000."""
    url = flag or tool_settings().api_url or config.api_url or DEFAULT_API_URL
    return url.rstrip("/")


# --- the client ---------------------------------------------------------------------------------


def _error_from_response(response: requests.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()[:300] or response.reason
        return ApiError(response.status_code, f"HTTP_{response.status_code}", text)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return ApiError(
            response.status_code,
            str(error.get("code") or f"HTTP_{response.status_code}"),
            str(error.get("message") or response.reason),
            error.get("details") if isinstance(error.get("details"), dict) else {},
        )
    if isinstance(body, dict) and ("Message" in body or "message" in body):
        return ApiError(
            response.status_code,
            str(body.get("Code") or body.get("code") or f"HTTP_{response.status_code}"),
            str(body.get("Message") or body.get("message")),
        )
    return ApiError(response.status_code, f"HTTP_{response.status_code}", str(body)[:300])


class _ProgressReader:
    """A file object that reports bytes read, so ``requests`` can stream it with a progress bar."""

    def __init__(self, handle: IO[bytes], size: int, on_read: Callable[[int], Any]) -> None:
        self._handle = handle
        self._on_read = on_read
        self.len = size  # requests uses this for Content-Length

    def read(self, amount: int = -1) -> bytes:
        chunk = self._handle.read(CHUNK if amount is None or amount < 0 else amount)
        if chunk:
            self._on_read(len(chunk))
        return chunk

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(CHUNK):
            yield chunk


def _bar(enabled: bool, total: int | None, desc: str, unit: str = "B") -> Bar:
    from tqdm import tqdm

    scale = unit == "B"
    return tqdm(
        total=total, desc=desc, unit=unit, unit_scale=scale, unit_divisor=1024 if scale else 1000, disable=not enabled
    )


class Client:
    """One API base URL plus credentials; ``on_credentials`` persists refreshed tokens."""

    def __init__(
        self,
        api_url: str,
        credentials: Credentials | None = None,
        on_credentials: Callable[[Credentials], None] | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.creds = credentials or Credentials()
        self.on_credentials = on_credentials
        self.timeout = timeout
        self.http = requests.Session()
        # The local platform is on loopback: a proxy from the environment must not get in the way.
        # A deployed API keeps the environment's proxy and CA settings.
        self.http.trust_env = (urlsplit(self.api_url).hostname or "") not in ("127.0.0.1", "localhost", "::1")

    # --- plumbing ------------------------------------------------------------------------------

    def _auth_headers(self) -> dict[str, str]:
        env_key = tool_settings().api_key
        if env_key:
            return {"x-api-key": env_key}
        if self.creds.access_token:
            return {"Authorization": f"Bearer {self.creds.access_token}"}
        if self.creds.api_key:
            return {"x-api-key": self.creds.api_key}
        return {}

    def _send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = path if path.startswith("http") else f"{self.api_url}{path}"
        try:
            return self.http.request(method, url, timeout=kwargs.pop("timeout", self.timeout), **kwargs)
        except requests.ConnectionError:
            raise ApiError(
                0,
                "UNREACHABLE",
                f"cannot reach {urlsplit(url).netloc}; is the API running (`transcodex local up`) "
                "and the URL right (--api-url, TRANSCODEX_API_URL)?",
            ) from None
        except requests.Timeout:
            raise ApiError(0, "TIMEOUT", f"{method} {url} timed out after {self.timeout:.0f}s") from None
        except requests.RequestException as err:  # a malformed URL, too many redirects, …
            raise ApiError(0, "HTTP_ERROR", f"{method} {url} failed: {err}") from None

    def request(
        self, method: str, path: str, body: Any = None, *, auth: bool = True, headers: dict[str, str] | None = None
    ) -> Any:
        """Call the API; return the decoded JSON body (None for 204) or raise ApiError."""
        for attempt in (1, 2):
            all_headers = {"Accept": "application/json", **(self._auth_headers() if auth else {}), **(headers or {})}
            response = self._send(method, path, json=body, headers=all_headers)
            if (
                response.status_code == 401
                and auth
                and attempt == 1
                and self.creds.refresh_token
                and not tool_settings().api_key
                and self._refresh()
            ):
                continue
            break
        if response.status_code >= 400:
            raise _error_from_response(response)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ApiError(
                response.status_code, "BAD_RESPONSE", "the API answered with something that is not JSON"
            ) from None

    def _object(
        self, method: str, path: str, body: Any = None, *, auth: bool = True, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """:meth:`request` for the routes that answer a JSON object; ApiError for anything else."""
        answer = self.request(method, path, body, auth=auth, headers=headers)
        if not isinstance(answer, dict):
            raise ApiError(0, "BAD_RESPONSE", f"{method} {path} answered {type(answer).__name__}, not a JSON object")
        return answer

    def _remember(self) -> None:
        if self.on_credentials is not None:
            self.on_credentials(self.creds)

    def _refresh(self) -> bool:
        response = self._send("POST", "/sessions/refresh", json={"refresh_token": self.creds.refresh_token})
        if response.status_code >= 400:
            self.creds.access_token = self.creds.refresh_token = None
            self._remember()
            return False
        body = response.json()
        self._take_tokens(body if isinstance(body, dict) else {})
        return True

    def _take_tokens(self, body: dict[str, Any]) -> None:
        nested = body.get("tokens")
        tokens: dict[str, Any] = nested if isinstance(nested, dict) else body
        self.creds.access_token = tokens.get("access_token") or self.creds.access_token
        self.creds.refresh_token = tokens.get("refresh_token") or self.creds.refresh_token
        self._remember()

    # --- accounts ----------------------------------------------------------------------------------

    def signup(self, name: str, username: str, email: str, password: str) -> dict[str, Any]:
        body = {"name": name, "username": username, "email": email, "password": password}
        return self._object("POST", "/users", body, auth=False)

    def login(self, email: str, password: str) -> dict[str, Any]:
        body = self._object(
            "POST", "/sessions", {"email": email, "password": password, "include_refresh_token": True}, auth=False
        )
        self.creds.email = email
        self._take_tokens(body)
        return body

    def logout(self) -> None:
        try:
            if self.creds.access_token:
                self.request("DELETE", "/sessions")
        finally:
            self.creds.access_token = self.creds.refresh_token = None
            self._remember()

    def create_api_key(self, name: str | None = None) -> dict[str, Any]:
        return self._object("POST", "/apikeys", {"name": name} if name else {})

    def list_api_keys(self) -> Any:
        return self.request("GET", "/apikeys")

    def revoke_api_key(self, key_id: str) -> Any:
        return self.request("DELETE", f"/apikeys/{key_id}")

    # --- media ----------------------------------------------------------------------------------------

    def create_upload(self, path: Path, media_type: str, mime: str) -> dict[str, Any]:
        body = {"file_name": path.name, "file_type": media_type, "mime_type": mime, "size_bytes": path.stat().st_size}
        return self._object("POST", "/media/upload", body)

    def put_file(self, upload: dict[str, Any], path: Path, progress: bool = False) -> None:
        """Send the file to the presigned URL (PUT, POST form or multipart parts) with a progress bar."""
        size = path.stat().st_size
        nested = upload.get("upload")
        target: dict[str, Any] = nested if isinstance(nested, dict) else upload
        if isinstance(target.get("multipart"), dict):
            self._put_parts(target, path, progress)
            return
        url = target.get("upload_url") or target.get("url") or target.get("presigned_url")
        if not url:
            raise ApiError(0, "BAD_RESPONSE", f"the upload response has no URL: {sorted(target)}")
        method = str(target.get("method") or ("POST" if target.get("fields") else "PUT")).upper()
        with _bar(progress, size, f"upload {path.name}") as bar, path.open("rb") as handle:
            if method == "POST":
                # A presigned POST policy: form fields, then the file (sent in one go).
                response = self._send("POST", url, data=target["fields"], files={"file": (path.name, handle)})
                bar.update(size)
            else:
                headers = {str(k): str(v) for k, v in (target.get("headers") or {}).items()}
                reader = _ProgressReader(handle, size, bar.update)
                headers.setdefault("Content-Length", str(size))
                response = self._send("PUT", url, data=reader, headers=headers, timeout=max(self.timeout, 600))
        if response.status_code >= 300:
            raise ApiError(
                response.status_code,
                "UPLOAD_FAILED",
                f"storage refused the upload ({response.status_code}): {response.text.strip()[:300]}",
            )

    def _put_parts(self, upload: dict[str, Any], path: Path, progress: bool) -> None:
        """A large file: PUT each presigned part, then ask the API to complete (or abort) it."""
        multipart = upload["multipart"]
        done: list[dict[str, Any]] = []
        try:
            with _bar(progress, path.stat().st_size, f"upload {path.name}") as bar, path.open("rb") as handle:
                offset = 0
                for part in sorted(multipart["parts"], key=lambda p: p["part_number"]):
                    length = int(part["size_bytes"])
                    handle.seek(offset)
                    reader = _ProgressReader(io.BytesIO(handle.read(length)), length, bar.update)
                    response = self._send(
                        "PUT", part["url"], data=reader, headers={"Content-Length": str(length)}, timeout=600
                    )
                    if response.status_code >= 300:
                        raise ApiError(
                            response.status_code,
                            "UPLOAD_FAILED",
                            f"storage refused part {part['part_number']}: {response.text.strip()[:300]}",
                        )
                    done.append({"part_number": part["part_number"], "etag": response.headers.get("ETag", "")})
                    offset += length
        except BaseException:
            with contextlib.suppress(ApiError):
                self.request("POST", multipart["abort_path"])
            raise
        self.request("POST", multipart["complete_path"], {"parts": done})

    def process(
        self, upload_id: str, job_type: str, operations: Any, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        body = {"upload_id": upload_id, "job_type": job_type, "operations": operations}
        return self._object("POST", "/media/process", body, headers=headers)

    def status(self, job_id: str) -> dict[str, Any]:
        return self._object("GET", f"/media/status/{job_id}")

    def jobs(self, status: str | None = None, limit: int | None = None) -> Any:
        query = {k: v for k, v in (("status", status), ("limit", limit)) if v}
        suffix = ("?" + "&".join(f"{k}={v}" for k, v in query.items())) if query else ""
        return self.request("GET", f"/media/jobs{suffix}")

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._object("POST", f"/media/jobs/{job_id}/cancel")

    def download_info(self, job_id: str) -> dict[str, Any]:
        return self._object("GET", f"/media/download/{job_id}")

    def wait(
        self, job_id: str, progress: bool = False, timeout_s: float = 3600, interval_s: float = 0.5
    ) -> dict[str, Any]:
        """Poll until the job is terminal, with a progress bar; return the final status.

        The first polls come quickly (from FIRST_POLL_S, doubling up to ``interval_s``): a small
        image job is done in about 100 ms, and a fixed half-second poll would triple its latency."""
        deadline = time.monotonic() + timeout_s
        pause = min(FIRST_POLL_S, interval_s)
        with _bar(progress, 100, f"job {job_id[:8]}", unit="%") as bar:
            while True:
                job = self.status(job_id)
                done = int(job.get("progress") or 0)
                bar.set_postfix_str(str(job.get("status")))
                bar.update(max(0, done - bar.n))
                if job.get("status") in TERMINAL:
                    return job
                if time.monotonic() > deadline:
                    raise ApiError(0, "WAIT_TIMEOUT", f"job {job_id} is still {job.get('status')} after {timeout_s}s")
                time.sleep(pause)
                pause = min(interval_s, pause * 2)

    def download(self, job_id: str, out_dir: Path, progress: bool = False) -> list[Path]:
        """Save every output of a finished job under ``out_dir/<job_id>/``, keeping sub-paths.

        HLS segments are not listed as outputs; they are fetched through the playback URL (each
        variant playlist there names its segments with presigned URLs), so the saved folder is
        a complete stream that plays from disk.
        """
        info = self.download_info(job_id)
        target = (out_dir / job_id).resolve()
        saved: list[Path] = []
        with _bar(progress, None, f"download {job_id[:8]}") as bar:
            for output in _outputs(info):
                url = output.get("url") or output.get("download_url")
                if url:
                    dest = self._save(url, target, _relative_name(output, job_id), bar)
                    saved.append(dest)
                    output["path"] = dest
            masters = [o for o in _outputs(info) if o.get("role") == OutputRole.HLS_MASTER and o.get("path")]
            if masters and info.get("playback_url"):
                saved += self._download_segments(str(info["playback_url"]), masters[0]["path"], target, bar)
            bar.set_postfix_str(f"{len(saved)} files")
        return saved

    def _save(self, url: str, target: Path, relative: str, bar: Bar) -> Path:
        dest = (target / relative).resolve()
        if target not in dest.parents:  # never write outside the job's folder
            raise ApiError(0, "BAD_RESPONSE", f"refusing to write outside {target}: {relative}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        response = self._send("GET", url, stream=True, timeout=max(self.timeout, 600))
        if response.status_code >= 300:
            raise ApiError(response.status_code, "DOWNLOAD_FAILED", f"could not download {relative}")
        part = dest.with_name(dest.name + ".part")
        with part.open("wb") as out:
            for chunk in response.iter_content(CHUNK):
                out.write(chunk)
                bar.update(len(chunk))
        os.replace(part, dest)
        return dest

    def _playlist(self, url: str) -> str:
        response = self._send("GET", url)
        if response.status_code >= 300:
            raise _error_from_response(response)
        return response.text

    def _download_segments(self, playback_url: str, master: Path, target: Path, bar: Bar) -> list[Path]:
        """Pair each playlist's URIs on disk (relative) with the playback ones (signed), by position."""
        saved: list[Path] = []
        served_master = self._playlist(playback_url)
        for local_uri, served_uri in zip(_uris(master.read_text()), _uris(served_master), strict=False):
            variant_path = (master.parent / local_uri.split("?")[0]).resolve()
            if target not in variant_path.parents or not variant_path.exists():
                continue
            served_variant_url = urljoin(playback_url, served_uri)
            served_variant = self._playlist(served_variant_url)
            for segment, signed in zip(_uris(variant_path.read_text()), _uris(served_variant), strict=False):
                relative = (variant_path.parent / segment.split("?")[0]).resolve().relative_to(target)
                saved.append(self._save(urljoin(served_variant_url, signed), target, str(relative), bar))
        return saved

    # --- the whole flow ----------------------------------------------------------------------------

    def submit_file(
        self,
        path: Path,
        operations: Any,
        job_type: str | None = None,
        idempotency_key: str | None = None,
        progress: bool = False,
    ) -> dict[str, Any]:
        """Upload ``path`` and create its job; return the job."""
        mime = guess_mime(path)
        media_type = job_type or media_type_of(mime, path)
        upload = self.create_upload(path, media_type, mime)
        self.put_file(upload, path, progress=progress)
        upload_id = str(upload.get("upload_id") or upload.get("id") or (upload.get("upload") or {}).get("id"))
        return self.process(upload_id, media_type, operations, idempotency_key or str(uuid.uuid4()))


def _outputs(info: dict[str, Any]) -> list[dict[str, Any]]:
    outputs = info.get("outputs")
    if outputs is None and isinstance(info.get("job"), dict):
        outputs = info["job"].get("outputs")
    return [o for o in outputs or [] if isinstance(o, dict)]


def _uris(playlist: str) -> list[str]:
    """Every URI a playlist references, in runtime.shared.hls's order (the same for the
    stored playlist and the one playback serves, so they pair by position)."""
    try:
        return hls.uris(playlist)
    except ValueError as err:
        raise ApiError(0, "BAD_RESPONSE", f"not an HLS playlist: {err}") from None


def _relative_name(output: dict[str, Any], job_id: str) -> str:
    """Where an output is saved in the job's folder: the ``name`` the API gives it (the key
    layout's relative name), else the name its key has in ``job_id``'s folder."""
    name = str(output.get("name") or "")
    if not name:
        key = str(output.get("key") or output.get("object_key") or "")
        parsed = keys.parse_output_key(key)
        name = parsed.name if parsed and parsed.job_id == job_id else key.rsplit("/", 1)[-1]
    return name.lstrip("/") or "output"


def job_id_of(job: dict[str, Any]) -> str:
    return str(job.get("job_id") or job.get("id") or (job.get("job") or {}).get("id"))


def guess_mime(path: Path) -> str:
    mime, _ = mimetypes.guess_type(path.name)
    if mime:
        return mime
    return {".avif": "image/avif", ".webp": "image/webp", ".mkv": "video/x-matroska"}.get(
        path.suffix.lower(), "application/octet-stream"
    )


def media_type_of(mime: str, path: Path) -> str:
    if mime.startswith("image/"):
        return "IMAGE"
    if mime.startswith("video/"):
        return "VIDEO"
    raise ApiError(0, "UNKNOWN_TYPE", f"cannot tell whether {path.name} ({mime}) is an image or a video; pass --type")
