"""The worker's S3 adapter: head, download, upload (with content type and caching), prune.

Only this module (and runtime.shared.storage, which it HEADs with) talks to boto3; the runner
deals in keys and local paths.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.shared.aws import client
from runtime.shared.settings import Settings
from runtime.shared.storage import head_size

#: HLS caching: playlists may be replaced by a re-run, segments are written once per run.
PLAYLIST_CACHE = "max-age=60"
SEGMENT_CACHE = "max-age=31536000, immutable"
UPLOAD_THREADS = 8
#: Up to this size an object moves in one GetObject/PutObject: s3transfer's managed transfer
#: (a HEAD before the GET, a thread pool per call) costs more than a small image takes to process.
SINGLE_REQUEST_BYTES = 8 * 1024 * 1024


class ObjectMissing(Exception):
    """The input object does not exist."""


@dataclass(frozen=True)
class Upload:
    path: Path
    key: str
    content_type: str
    cache_control: str | None = None


def cache_control_for(content_type: str) -> str | None:
    if content_type == "application/vnd.apple.mpegurl":
        return PLAYLIST_CACHE
    if content_type in ("video/mp2t", "video/iso.segment"):
        return SEGMENT_CACHE
    return None


class S3Storage:
    def __init__(self, settings: Settings) -> None:
        self._s3 = client("s3", settings)
        self.input_bucket = settings.input_bucket
        self.output_bucket = settings.output_bucket

    def input_size(self, key: str) -> int:
        """The input object's size; ObjectMissing when it is not there."""
        size = head_size(self._s3, self.input_bucket, key)
        if size is None:
            raise ObjectMissing(key)
        return size

    def download(self, key: str, target: Path, size: int | None = None) -> None:
        """Save the input object to ``target``; ``size`` (from :meth:`input_size`) lets a small
        one come in a single GET."""
        if size is not None and size <= SINGLE_REQUEST_BYTES:
            body = self._s3.get_object(Bucket=self.input_bucket, Key=key)["Body"]
            with body, target.open("wb") as out:
                shutil.copyfileobj(body, out)
            return
        self._s3.download_file(self.input_bucket, key, str(target))

    def upload_all(self, uploads: Iterable[Upload]) -> None:
        """Upload in parallel (thousands of segments for a long video); any failure raises."""
        items = list(uploads)

        def put(item: Upload) -> None:
            extra: dict[str, Any] = {"ContentType": item.content_type}
            if item.cache_control:
                extra["CacheControl"] = item.cache_control
            if item.path.stat().st_size <= SINGLE_REQUEST_BYTES:
                with item.path.open("rb") as body:
                    self._s3.put_object(Bucket=self.output_bucket, Key=item.key, Body=body, **extra)
                return
            self._s3.upload_file(str(item.path), self.output_bucket, item.key, ExtraArgs=extra)

        if len(items) <= 1:  # one image: no pool to start
            for item in items:
                put(item)
            return
        with ThreadPoolExecutor(max_workers=UPLOAD_THREADS) as pool:
            for future in [pool.submit(put, item) for item in items]:
                future.result()

    def prune(self, prefix: str, keep: set[str]) -> int:
        """Delete objects under ``prefix`` that a re-run no longer produces; return how many."""
        stale: list[str] = []
        for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.output_bucket, Prefix=prefix):
            stale += [obj["Key"] for obj in page.get("Contents", []) if obj["Key"] not in keep]
        for start in range(0, len(stale), 1000):
            batch = stale[start : start + 1000]
            self._s3.delete_objects(
                Bucket=self.output_bucket, Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True}
            )
        return len(stale)
